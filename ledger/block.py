"""Blocks: a header and the ordered transactions it commits.

The block hash is SHA-256 over the tagged canonical header; the header's
`tx_root` is the RFC 9162 root over the leaves `encode(tx)`, the same leaves
the node appends to the chain-wide transaction log, so a transaction's proof
in its block and in the log use one leaf hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.encoding import encode
from ledger.hashing import Hash, sha256, tag
from ledger.keys import PublicKeyBytes
from ledger.merkle import leaf_hash, root_of
from ledger.tx import ChainId, Transaction

BLOCK_DOMAIN: Final = tag("block/v1")


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: ChainId
    height: int
    view: int
    time_ms: int
    previous_hash: Hash
    tx_root: Hash
    proposer: PublicKeyBytes

    @property
    def hash(self) -> bytes:
        return sha256(BLOCK_DOMAIN + encode(self))


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @property
    def hash(self) -> bytes:
        return self.header.hash


def tx_leaf(tx: Transaction) -> bytes:
    """The transaction's leaf hash in a block's tree and in the log."""
    return leaf_hash(tx.leaf_data)


def transactions_root(transactions: tuple[Transaction, ...]) -> bytes:
    return root_of([tx_leaf(tx) for tx in transactions])
