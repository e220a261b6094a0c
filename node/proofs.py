"""Building proof bundles from the node's database (see `ledger.proofs` for what they prove).

Rule: a bundle is built against the latest stable checkpoint certificate of a
block the node has executed, and every proof in it is checked against that
certificate's roots, never against the node's newer, uncertified state. All of
a bundle's reads see one database snapshot. Runs on reader threads.
"""

from __future__ import annotations

from ledger.checkpoint import CheckpointCertificate
from ledger.families.governance import INSTITUTIONS_KEY
from ledger.genesis import Genesis
from ledger.merkle import MerkleLog
from ledger.proofs import LogProof, ProofBundle, StateProof, ValidatorSetChange
from ledger.smt import SmtPage, SparseMerkleTree, decode_page, key_path
from node.storage import Reader


class NotYetProvable(Exception):
    """The answer is newer than the latest checkpoint certificate; ask again shortly."""


class ReaderSmtStore:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def get(self, version: int, page_hash: bytes) -> SmtPage | None:
        data = self.reader.smt_page_data(version, page_hash)
        return None if data is None else decode_page(data)

    def put(self, version: int, page_hash: bytes, page: SmtPage) -> None:
        raise AssertionError("proofs never write the state tree")


class ReaderLogStore:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def get(self, level: int, index: int) -> bytes:
        return self.reader.log_node(level, index)

    def append(self, level: int, digest: bytes) -> None:
        raise AssertionError("proofs never write the log")

    def count(self, level: int) -> int:
        return self.reader.log_count(level)


def state_proof(reader: Reader, root: bytes, key: bytes) -> StateProof:
    """`key`'s value (or its absence) under the state root `root`, with its proof."""
    tree = SparseMerkleTree(ReaderSmtStore(reader), root, reader.smt_root_version(root))
    proof, leaf_version = tree.locate(key)
    value = None
    if proof.leaf is not None and proof.leaf.path == key_path(key):
        value = reader.state_value(leaf_version, proof.leaf.value_hash)
        assert value is not None, "every value written is kept under its height and hash"
    return StateProof(key, value, proof)


def log_proof(reader: Reader, certificate: CheckpointCertificate, tx_id: bytes) -> LogProof:
    entry = reader.transaction(tx_id)
    if entry is None:
        raise KeyError(tx_id)
    if entry.log_index >= certificate.checkpoint.log_size:
        raise NotYetProvable("the transaction is not under a checkpoint yet")
    committed = reader.block(entry.height)
    assert committed is not None, "an indexed transaction's block is stored"
    tx = committed.block.transactions[entry.position]
    log = MerkleLog(ReaderLogStore(reader))
    proof = log.inclusion_proof(entry.log_index, certificate.checkpoint.log_size)
    return LogProof(tx, entry.log_index, tuple(proof))


def latest_certificate(reader: Reader, at_least: int = 0) -> CheckpointCertificate:
    """The newest certificate of a block this node has executed.

    A certificate can be stored before its block is executed here: a replica
    that lags is sent the other replicas' checkpoint votes, and their quorum is
    a certificate. The state and log it certifies are not in this database yet.
    """
    certificate = reader.latest_certificate(at_most=reader.head().height)
    if certificate is None or certificate.checkpoint.height < at_least:
        raise NotYetProvable("no checkpoint certificate covers this yet")
    return certificate


def validator_set_changes(reader: Reader, height: int) -> tuple[ValidatorSetChange, ...]:
    """From the genesis set to the one that signed at `height`: each change proven by the
    previous set's certificate of the change's last block and the members in its state."""
    changes = []
    for _, start, _ in reader.epoch_starts():
        end = start - 1
        if end >= height:
            break
        found = reader.certificates(end, end).get(end)
        if found is None:
            raise NotYetProvable(f"this node lacks the certificate of height {end}")
        changes.append(
            ValidatorSetChange(
                found, state_proof(reader, found.checkpoint.state_root, INSTITUTIONS_KEY)
            )
        )
    return tuple(changes)


def build_bundle(
    reader: Reader,
    genesis: Genesis,
    state_keys: tuple[bytes, ...] = (),
    tx_ids: tuple[bytes, ...] = (),
    at_least: int = 0,
) -> ProofBundle:
    with reader.snapshot():  # one state: the head, the certificate and the trees agree
        return _build_bundle(reader, genesis, state_keys, tx_ids, at_least)


def _build_bundle(
    reader: Reader,
    genesis: Genesis,
    state_keys: tuple[bytes, ...],
    tx_ids: tuple[bytes, ...],
    at_least: int,
) -> ProofBundle:
    certificate = latest_certificate(reader, at_least)
    return ProofBundle(
        chain_id=genesis.chain_id,
        genesis_hash=bytes.fromhex(genesis.genesis_hash),
        certificate=certificate,
        validator_set_changes=validator_set_changes(reader, certificate.checkpoint.height),
        state=tuple(
            state_proof(reader, certificate.checkpoint.state_root, key) for key in state_keys
        ),
        log=tuple(log_proof(reader, certificate, tx_id) for tx_id in tx_ids),
    )
