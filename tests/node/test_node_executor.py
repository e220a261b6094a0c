"""The executor and its store: the state tree on disk, across restarts, and proofs of old roots.

These run the node's own `Executor` on a real SQLite store, without consensus:
blocks of signed evidence registrations are built here and executed in order.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from consensus.events import CommittedBlock
from ledger.block import Block, BlockHeader, transactions_root
from ledger.checkpoint import Checkpoint, CheckpointCertificate
from ledger.encoding import decode, encode
from ledger.families.evidence import Item, Kind, Register, Registered
from ledger.families.identity import identity_key
from ledger.genesis import Genesis, GenesisIdentity
from ledger.keys import PrivateKey, public_key_text
from ledger.proofs import StateProof
from ledger.smt import verify_exclusion, verify_inclusion
from ledger.tx import Transaction, TransactionBody, sign_transaction
from node.executor import Executor
from node.families import code_hashes, instantiate
from node.families.base import Context, TableFamily
from node.families.evidence import register_reads
from node.loadgen import make_transactions
from node.material import InstitutionSpec, create_consortium
from node.proofs import NotYetProvable, build_bundle, state_proof
from node.storage import (
    RECORDS_CACHE_KIB,
    SCHEMA_VERSION,
    WAL_CHECKPOINT_PAGES,
    Head,
    Reader,
    StorageError,
    Store,
)

KEY = PrivateKey.generate()


@pytest.fixture(scope="module")
def genesis(tmp_path_factory: pytest.TempPathFactory) -> Genesis:
    specs = [
        InstitutionSpec(name, role, "127.0.0.1", 20000 + 2 * i, 20001 + 2 * i)
        for i, (name, role) in enumerate((("notary-office", "notary"), ("acme", "enterprise")))
    ]
    identity = GenesisIdentity(
        key=public_key_text(KEY.public_key), institution="acme", role="applicant", name="load"
    )
    return create_consortium(
        tmp_path_factory.mktemp("consortium"),
        specs,
        chain_id="notarychain-executor",
        families=code_hashes(),
        identities=(identity,),
    )


def execute_txs(executor: Executor, genesis: Genesis, txs: tuple[Transaction, ...]) -> None:
    """Execute one block of `txs` on the executor's head (its time follows from its height,
    so the same transactions make the same block on any executor)."""
    header = BlockHeader(
        genesis.chain_id,
        executor.head.height + 1,
        0,
        1_000 * (executor.head.height + 1),
        executor.head.block_hash,
        transactions_root(txs),
        genesis.validator_set().validators[0],
    )
    executor.execute(CommittedBlock(Block(header, txs), None))


def execute_blocks(executor: Executor, genesis: Genesis, blocks: int, size: int) -> None:
    for _ in range(blocks):
        execute_txs(executor, genesis, tuple(make_transactions(KEY, genesis.chain_id, size, 40)))


def execute_on(path: Path, genesis: Genesis, blocks: int, size: int = 20) -> Executor:
    """Open the store at `path` (a first start or a restart), execute `blocks` blocks of
    `size` transactions with a new executor, close the store; the executor keeps its head."""
    store = Store(path, genesis.genesis_hash)
    try:
        executor = Executor(store, genesis, instantiate(genesis))
        execute_blocks(executor, genesis, blocks, size)
    finally:
        store.close()
    return executor


def state_rows(path: Path) -> dict[bytes, bytes]:
    with sqlite3.connect(path) as db:
        return {bytes(k): bytes(v) for k, v in db.execute("SELECT key, value FROM state")}


def test_tree_nodes_are_stored_under_the_height_that_wrote_them(
    genesis: Genesis, tmp_path: Path
) -> None:
    path = tmp_path / "chain.db"
    execute_on(path, genesis, 3)
    with sqlite3.connect(path) as db:
        versions = {int(v) for (v,) in db.execute("SELECT DISTINCT version FROM smt_pages")}
        roots = dict(db.execute("SELECT version, hash FROM smt_roots"))
    assert versions == {0, 1, 2, 3}
    assert set(roots) == {0, 1, 2, 3}


def test_a_restarted_executor_continues_the_tree_and_old_roots_stay_provable(
    genesis: Genesis, tmp_path: Path
) -> None:
    path = tmp_path / "chain.db"
    old_root = execute_on(path, genesis, 2, 30).head.state_root
    old_state = state_rows(path)
    # A restart: the root's version comes from disk.
    assert execute_on(path, genesis, 0).state_version == 2
    new_root = execute_on(path, genesis, 2, 30).head.state_root
    new_state = state_rows(path)
    assert len(new_state) > len(old_state)

    reader = Reader(path)
    try:
        for root, state in ((old_root, old_state), (new_root, new_state)):
            for key, value in state.items():
                proven = state_proof(reader, root, key)
                assert proven == StateProof(key, value, proven.proof)
                verify_inclusion(root, key, value, proven.proof)
        for key in new_state.keys() - old_state.keys():  # written after the old root
            proven = state_proof(reader, old_root, key)
            assert proven.value is None
            verify_exclusion(old_root, key, proven.proof)
    finally:
        reader.close()


def certificate_of(genesis: Genesis, head: Head) -> CheckpointCertificate:
    """Unsigned: building a bundle never checks endorsements (its reader does)."""
    checkpoint = Checkpoint(
        genesis.chain_id,
        head.height,
        head.block_hash,
        head.state_root,
        head.log_size,
        head.log_root,
        head.time_ms,
    )
    return CheckpointCertificate(checkpoint, ())


def test_a_bundle_uses_the_newest_certificate_of_an_executed_block(
    genesis: Genesis, tmp_path: Path
) -> None:
    """A lagging replica stores the others' certificate of a block it has not executed
    yet; a proof asked for then is built on the certificate before it, not on roots
    this database does not hold yet (that used to end in an internal error)."""
    path = tmp_path / "chain.db"
    executed = execute_on(path, genesis, 2).head
    ahead = replace(executed, height=3, state_root=bytes(32), log_size=executed.log_size + 20)
    store = Store(path, genesis.genesis_hash)
    try:
        store.append_records([certificate_of(genesis, executed), certificate_of(genesis, ahead)])
    finally:
        store.close()
    key = next(iter(state_rows(path)))
    reader = Reader(path)
    try:
        bundle = build_bundle(reader, genesis, (key,))
        assert bundle.certificate.checkpoint.height == 2
        [proven] = bundle.state
        verify_inclusion(executed.state_root, key, proven.value, proven.proof)
        with pytest.raises(NotYetProvable):
            build_bundle(reader, genesis, (key,), at_least=3)
    finally:
        reader.close()


def test_a_database_of_another_schema_version_is_refused_and_left_as_it_was(
    genesis: Genesis, tmp_path: Path
) -> None:
    path = tmp_path / "chain.db"
    Store(path, genesis.genesis_hash).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (b"1",))
        db.execute("DROP TABLE smt_roots")
    with pytest.raises(StorageError, match=f"schema version 1 .* reads version {SCHEMA_VERSION}"):
        Store(path, genesis.genesis_hash)
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "smt_roots" not in tables


# --- reading a block's keys ahead ---------------------------------------------------


def registration(genesis: Genesis, digest: bytes) -> Transaction:
    payload = encode(Register((Item(digest, False, Kind.DOCUMENT, 100, "a title"),)))
    body = TransactionBody(
        genesis.chain_id,
        KEY.public_key,
        "evidence",
        "register",
        payload,
        os.urandom(16),
        int(time.time() * 1000) + 600_000,
    )
    return sign_transaction(body, KEY)


def test_a_block_reads_its_evidence_keys_in_one_query(genesis: Genesis, tmp_path: Path) -> None:
    store = Store(tmp_path / "chain.db", genesis.genesis_hash)
    try:
        executor = Executor(store, genesis, instantiate(genesis))
        execute_blocks(executor, genesis, 1, 5)  # the sender's identity is now cached
        statements: list[str] = []
        store.db.set_trace_callback(statements.append)
        execute_blocks(executor, genesis, 1, 50)
        store.db.set_trace_callback(None)
    finally:
        store.close()
    reads = [s for s in statements if s.startswith("SELECT") and " FROM state " in s]
    assert len(reads) == 1
    assert "WHERE key IN (" in reads[0]
    assert executor.head.height == 2


def test_results_do_not_depend_on_the_read_ahead(genesis: Genesis, tmp_path: Path) -> None:
    digests = [os.urandom(32) for _ in range(30)]
    blocks = [
        tuple(registration(genesis, d) for d in digests[:20]),
        # Ten keys the block before wrote, ten new ones, then one key of each kind again.
        tuple(registration(genesis, d) for d in [*digests[10:], digests[0], digests[-1]]),
    ]

    def run(name: str, hint: Callable[[Context], tuple[bytes, ...]] | None) -> tuple[object, ...]:
        path = tmp_path / name / "chain.db"
        path.parent.mkdir()
        store = Store(path, genesis.genesis_hash)
        try:
            families = instantiate(genesis)
            evidence = families["evidence"]
            assert isinstance(evidence, TableFamily)
            evidence.hints = {} if hint is None else {"register": hint}
            for txs in blocks:
                # A new executor per block, as after a restart: its cache is empty, so the
                # keys of the block before are read (ahead or not) from the database.
                executor = Executor(store, genesis, families)
                execute_txs(executor, genesis, txs)
            results = store.db.execute(
                "SELECT id, height, position, code, result FROM transactions ORDER BY id"
            ).fetchall()
        finally:
            store.close()
        return executor.head, results, state_rows(path)

    def wrong_keys(ctx: Context) -> tuple[bytes, ...]:
        return (b"no such key", identity_key(ctx.sender))

    hinted = run("hinted", register_reads)
    assert hinted == run("unhinted", None)
    assert hinted == run("wrongly-hinted", wrong_keys)
    head, results, _ = hinted
    assert head.height == 2
    codes = [code for _, _, _, code, _ in results]
    assert codes.count("ok") == len(results)
    registered = [decode(Registered, bytes(result)) for *_, result in results]
    assert sum(not any(r.new) for r in registered) == 12  # 10 + 1 from block 1, 1 from block 2


def test_writing_connections_checkpoint_at_the_larger_threshold(
    genesis: Genesis, tmp_path: Path
) -> None:
    # Every writing connection must share it: one left at SQLite's 1,000 pages would run
    # the checkpoints the others put off.
    path = tmp_path / "chain.db"
    executor_store = Store(path, genesis.genesis_hash)
    records_store = Store(path, genesis.genesis_hash, cache_kib=RECORDS_CACHE_KIB)
    try:
        for store in (executor_store, records_store):
            (pages,) = store.db.execute("PRAGMA wal_autocheckpoint").fetchone()
            assert pages == WAL_CHECKPOINT_PAGES > 1_000
    finally:
        executor_store.close()
        records_store.close()
