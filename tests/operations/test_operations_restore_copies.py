"""Restore from any copy of a node's database, not only from `notarychain-node backup`.

A plain copy (cp of a stopped node's chain.db, a filesystem snapshot) still
holds the node's consensus records: restored as it is, the node could sign
again what it signed after the copy. Restore therefore always clears them and
marks the database rejoining. And a data directory that still holds the old
database's write-ahead log is refused, since SQLite would replay that log over
the restored database.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from node.storage import StorageError, Store, restore

GENESIS_HASH = "ab" * 32


def make_database(path: Path) -> None:
    """A node database of this chain with a consensus record in it."""
    store = Store(path, GENESIS_HASH)
    store.db.execute("INSERT INTO records (kind, seq, data) VALUES (1, 7, x'00')")
    store.db.close()


def test_a_plain_copy_is_restored_without_records_and_rejoining(tmp_path: Path) -> None:
    original = tmp_path / "node" / "chain.db"
    make_database(original)
    copy = tmp_path / "copy.db"
    shutil.copyfile(original, copy)
    target = tmp_path / "restored" / "chain.db"

    restore(copy, target, GENESIS_HASH)

    db = sqlite3.connect(target)
    try:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (0,)
        assert db.execute("SELECT value FROM meta WHERE key = 'rejoining'").fetchone() == (b"\x01",)
    finally:
        db.close()
    store = Store(target, GENESIS_HASH)  # the node opens it as its own
    store.db.close()
    assert not (target.parent / "chain.db.restoring").exists()


@pytest.mark.parametrize("leftover", ["chain.db-wal", "chain.db-shm", "chain.db"])
def test_a_directory_with_the_old_database_or_its_log_is_refused(
    tmp_path: Path, leftover: str
) -> None:
    source = tmp_path / "copy.db"
    make_database(source)
    data = tmp_path / "data"
    data.mkdir()
    (data / leftover).write_bytes(b"left behind")

    with pytest.raises(StorageError, match=r"already holds a database \(" + leftover):
        restore(source, data / "chain.db", GENESIS_HASH)

    assert (data / leftover).read_bytes() == b"left behind"
    assert not (data / "chain.db.restoring").exists()


def test_a_copy_of_another_chain_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "copy.db"
    make_database(source)
    with pytest.raises(StorageError, match="another chain"):
        restore(source, tmp_path / "data" / "chain.db", "cd" * 32)
    assert not (tmp_path / "data" / "chain.db").exists()
