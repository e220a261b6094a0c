"""The executor and its store: the state tree on disk, across restarts, and proofs of old roots.

These run the node's own `Executor` on a real SQLite store, without consensus:
blocks of signed evidence registrations are built here and executed in order.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from consensus.events import CommittedBlock
from ledger.block import Block, BlockHeader, transactions_root
from ledger.genesis import Genesis, GenesisIdentity
from ledger.keys import PrivateKey, public_key_text
from ledger.proofs import StateProof
from ledger.smt import verify_exclusion, verify_inclusion
from node.executor import Executor
from node.families import code_hashes, instantiate
from node.loadgen import make_transactions
from node.material import InstitutionSpec, create_consortium
from node.proofs import state_proof
from node.storage import SCHEMA_VERSION, Reader, StorageError, Store

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


def execute_blocks(executor: Executor, genesis: Genesis, blocks: int, size: int) -> None:
    proposer = genesis.validator_set().validators[0]
    for _ in range(blocks):
        txs = tuple(make_transactions(KEY, genesis.chain_id, size, 40))
        header = BlockHeader(
            genesis.chain_id,
            executor.head.height + 1,
            0,
            int(time.time() * 1000),
            executor.head.block_hash,
            transactions_root(txs),
            proposer,
        )
        executor.execute(CommittedBlock(Block(header, txs), None))


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
        versions = {int(v) for (v,) in db.execute("SELECT DISTINCT version FROM smt_nodes")}
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
