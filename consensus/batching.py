"""Building a batch (the primary) and checking one (a backup): the content rules of a block.

Rule: a backup prepares a fresh batch only if it could have built it itself:
the right chain, height, view and proposer; within the size limits; a
transaction root that matches; a time after the previous batch's and within
`clock_skew_max_ms` of its own clock; and transactions that are valid, not
expired, not already ordered, and not held by another batch of the view.
Batches carried into a new view skip the fresh-only rules (view, proposer,
time): a quorum checked those when the batch was first prepared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consensus.config import Parameters
from consensus.messages import Batch, BatchHeader
from consensus.pool import RequestPool
from consensus.verification import PeerError
from ledger.merkle import leaf_hash, root_of
from ledger.tx import Transaction

ValidateRequest = Callable[[Transaction], str | None]
"""Returns None for a valid client transaction, or the reason it is not."""


@dataclass(frozen=True, slots=True)
class BatchRules:
    chain_id: str
    parameters: Parameters
    validate_request: ValidateRequest


def check_lifetime(tx: Transaction, time_ms: int, lifetime_max_ms: int) -> str | None:
    expires = tx.body.expires_at_ms
    if expires < time_ms:
        return "transaction expired"
    if expires > time_ms + lifetime_max_ms:
        return f"transaction expiry is more than {lifetime_max_ms} ms ahead"
    return None


def build_batch(
    rules: BatchRules,
    candidates: Sequence[tuple[bytes, Transaction]],
    header_fields: tuple[int, int, int, bytes],
) -> tuple[Batch, list[bytes], list[bytes]]:
    """The primary's next batch from the oldest free requests.

    `header_fields` is (height, view, time_ms, proposer). Returns the batch,
    the ids it holds, and the ids that expired and should be dropped.
    """
    height, view, time_ms, proposer = header_fields
    limits = rules.parameters
    chosen: list[Transaction] = []
    ids: list[bytes] = []
    leaves: list[bytes] = []
    expired: list[bytes] = []
    size_bytes = 0
    for tx_id, tx in candidates:
        if len(chosen) >= limits.batch_size_max:
            break
        reason = check_lifetime(tx, time_ms, limits.tx_lifetime_max_ms)
        if reason is not None:
            if tx.body.expires_at_ms < time_ms:
                expired.append(tx_id)
            continue  # too far ahead: it stays pending until it fits
        data = tx.leaf_data
        if size_bytes + len(data) > limits.batch_bytes_max and chosen:
            break
        size_bytes += len(data)
        chosen.append(tx)
        ids.append(tx_id)
        leaves.append(leaf_hash(data))
    header = BatchHeader(rules.chain_id, height, view, time_ms, root_of(leaves), proposer)
    return Batch(header, tuple(chosen)), ids, expired


def check_batch_shape(rules: BatchRules, seq: int, batch: Batch) -> list[bytes]:
    """Chain, height, limits and transaction root; returns the transactions' ids."""
    header = batch.header
    limits = rules.parameters
    if header.chain_id != rules.chain_id:
        raise PeerError(f"batch for chain {header.chain_id!r}")
    if header.height != seq:
        raise PeerError(f"batch for height {header.height} proposed at seq {seq}")
    if len(batch.transactions) > limits.batch_size_max:
        raise PeerError(f"batch of {len(batch.transactions)} transactions exceeds the limit")
    leaves: list[bytes] = []
    size_bytes = 0
    for tx in batch.transactions:
        data = tx.leaf_data
        size_bytes += len(data)
        leaves.append(leaf_hash(data))
    if size_bytes > limits.batch_bytes_max:
        raise PeerError(f"batch of {size_bytes} bytes exceeds the limit")
    if root_of(leaves) != header.tx_root:
        raise PeerError("batch transactions do not match its root")
    return [tx.id for tx in batch.transactions]


def check_fresh_time(rules: BatchRules, batch: Batch, previous_ms: int, now_ms: int) -> None:
    time_ms = batch.header.time_ms
    if time_ms <= previous_ms:
        raise PeerError(f"batch time {time_ms} is not after the previous block's {previous_ms}")
    skew = abs(time_ms - now_ms)
    if skew > rules.parameters.clock_skew_max_ms:
        raise PeerError(f"batch time is {skew} ms from this replica's clock")


def check_batch_transactions(
    rules: BatchRules, seq: int, batch: Batch, ids: list[bytes], pool: RequestPool
) -> None:
    """Every transaction is valid, alive at the batch time, and ordered nowhere else."""
    time_ms = batch.header.time_ms
    lifetime = rules.parameters.tx_lifetime_max_ms
    seen: set[bytes] = set()
    for tx_id, tx in zip(ids, batch.transactions, strict=True):
        if tx_id in seen:
            raise PeerError(f"transaction {tx_id.hex()} appears twice in the batch")
        seen.add(tx_id)
        if tx.body.chain_id != rules.chain_id:
            raise PeerError(f"transaction {tx_id.hex()} is for chain {tx.body.chain_id!r}")
        if pool.is_delivered(tx_id):
            raise PeerError(f"transaction {tx_id.hex()} is already ordered")
        other = pool.batch_of(tx_id)
        if other is not None and other != seq:
            raise PeerError(f"transaction {tx_id.hex()} is already in the batch at seq {other}")
        reason = check_lifetime(tx, time_ms, lifetime)
        if reason is None and pool.get(tx_id) != tx:
            reason = rules.validate_request(tx)
        if reason is not None:
            raise PeerError(f"transaction {tx_id.hex()}: {reason}")
