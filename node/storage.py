"""The node's durable store: SQLite in WAL mode, one file per node.

Rule: everything the node has acknowledged is in a committed SQLite
transaction with `synchronous=FULL`, so a kill -9 (or a power cut) loses
nothing acknowledged. Two kinds of writes, each one transaction:
  - consensus records (the replica's write-ahead log), before any message
    they cover is sent;
  - an executed block: the block and its certificate, its transactions'
    index entries and results, the state changes and the Merkle log nodes,
    and the execution head (height, hash, time, roots), all at once, so the
    stored state always matches the stored executed height.
`Store` is synchronous and must be used from one thread (the node's storage
thread); `node.driver` and the API reach it through that thread only, so the
event loop never blocks on the database. Readers get their own connection.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from consensus.events import CommitRecord, CommittedBlock, EpochScheduled, PersistItem, Restored
from consensus.messages import CheckpointVote, NewView, Prepare, Proposal, ViewChange
from consensus.recovery import compact, record_seq
from consensus.replica import GENESIS_HASH
from ledger.checkpoint import CheckpointCertificate
from ledger.encoding import decode, encode
from ledger.errors import DecodeError
from ledger.validators import ValidatorSet

SCHEMA_VERSION: Final = 3
"""2: state-tree nodes and state values are keyed by (version, hash), and roots find
their version in `smt_roots`. 3: the state tree is stored in 16-slot pages
(`ledger.smt`), table `smt_pages`. A database of another schema version is refused,
never half-read."""

_RECORD_KINDS: Final[dict[type, int]] = {
    Proposal: 1,
    Prepare: 2,
    CommitRecord: 3,
    CheckpointVote: 4,
    ViewChange: 5,
    NewView: 6,
    CheckpointCertificate: 7,
}
_RECORD_TYPES: Final = {kind: cls for cls, kind in _RECORD_KINDS.items()}

WRITER_CACHE_KIB: Final = 48 * 1024
"""The page cache of a writer's connection (execution's; consensus records' too)."""
WAL_CHECKPOINT_PAGES: Final = 10_000
"""Pages the write-ahead log grows to before a commit copies them into the database."""
RECORDS_CACHE_KIB: Final = 4 * 1024
"""Consensus records are few and recent: a small cache holds them."""
READER_CACHE_KIB: Final = 8 * 1024
"""The page cache of each reader's connection (API reads and proofs)."""
HEIGHT_MAX: Final = 2**63 - 1
"""Above every height (SQLite's largest integer)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, seq INTEGER, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, time_ms INTEGER NOT NULL,
    tx_count INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (height INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (
    id BLOB PRIMARY KEY, height INTEGER NOT NULL, position INTEGER NOT NULL,
    log_index INTEGER NOT NULL, code TEXT NOT NULL, result BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL, position INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS smt_pages (
    version INTEGER NOT NULL, hash BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (version, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS smt_roots (
    hash BLOB PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_values (
    version INTEGER NOT NULL, hash BLOB NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (version, hash)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY, start_height INTEGER NOT NULL, validators BLOB NOT NULL);
"""


class StorageError(Exception):
    """The database cannot be opened or is not this node's; the message says why."""


@dataclass(frozen=True, slots=True)
class Head:
    """The execution head: the last executed block and the roots after it."""

    height: int
    block_hash: bytes
    time_ms: int
    state_root: bytes
    log_size: int
    log_root: bytes


GENESIS_HEAD = Head(0, GENESIS_HASH, 0, bytes(32), 0, b"")


@dataclass(frozen=True, slots=True)
class TxEntry:
    height: int
    position: int
    log_index: int
    code: str
    """"ok", or the stable code of the reason the family refused it."""
    result: bytes


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """Everything one executed block changes, written in one transaction."""

    committed: CommittedBlock
    tx_entries: list[tuple[bytes, TxEntry]]
    state_changes: dict[bytes, bytes]
    log_nodes: list[tuple[int, int, bytes]]
    smt_pages: list[tuple[int, bytes, bytes]]
    """(version, hash, encoded page) of each new state-tree page."""
    state_version: int
    """The version the state root page is stored under."""
    head: Head


def connect(
    path: Path, *, readonly: bool = False, cache_kib: int = READER_CACHE_KIB
) -> sqlite3.Connection:
    try:
        if readonly:
            connection = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        else:
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open the database: {exc}") from None
    try:
        if not readonly:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            # Checkpoint every 10,000 pages (about 40 MB of log) rather than SQLite's 1,000:
            # a page written by many blocks in between (a B-tree's upper levels, the ends
            # the append-ordered tables grow at) is then copied to the database once, not
            # at every checkpoint. Set on every writing connection, so none of them runs a
            # checkpoint at the old threshold.
            connection.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        connection.execute("PRAGMA busy_timeout=5000")
        # The latest-state and transaction tables are keyed by hash, so their inserts and
        # reads land on random pages: a page cache far above SQLite's 2 MB default keeps
        # them off the disk.
        connection.execute(f"PRAGMA cache_size=-{cache_kib}")
    except sqlite3.Error as exc:
        connection.close()
        raise StorageError(f"{path}: cannot open the database: {exc}") from None
    return connection


class Store:
    def __init__(self, path: Path, genesis_hash: str, *, cache_kib: int = WRITER_CACHE_KIB) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(path, cache_kib=cache_kib)
        try:
            self._check_schema_version()
            self.db.executescript(_SCHEMA)
            self._check_identity(genesis_hash)
        except sqlite3.Error as exc:
            self.db.close()
            raise StorageError(f"{path}: the database is damaged: {exc}") from None
        except StorageError:
            self.db.close()
            raise

    def _check_schema_version(self) -> None:
        """Refuse, before changing anything, a database laid out by another version."""
        has_meta = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        found = self._meta("schema_version") if has_meta else None
        if found is not None and found != str(SCHEMA_VERSION).encode():
            raise StorageError(
                f"{self.path}: the database has schema version {found.decode(errors='replace')}"
                f" and this node reads version {SCHEMA_VERSION}; start the node on an empty"
                " data directory (it fetches the chain from its peers) or restore a backup"
                " made by this version"
            )

    def _check_identity(self, genesis_hash: str) -> None:
        known = self._meta("genesis_hash")
        if known is None:
            with self.transaction():
                self._set_meta("genesis_hash", genesis_hash.encode())
                self._set_meta("schema_version", str(SCHEMA_VERSION).encode())
        elif known.decode() != genesis_hash:
            raise StorageError(
                f"{self.path}: the data directory belongs to another chain "
                f"(genesis {known.decode()[:12]}..., this node's is {genesis_hash[:12]}...)"
            )

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _meta(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _set_meta(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------ consensus records

    def append_records(self, items: Iterable[PersistItem]) -> None:
        rows = [(_RECORD_KINDS[type(item)], record_seq(item), encode(item)) for item in items]
        with self.transaction():
            self.db.executemany("INSERT INTO records (kind, seq, data) VALUES (?, ?, ?)", rows)
            for item in items:
                if isinstance(item, CheckpointCertificate):
                    self.db.execute(
                        "INSERT OR REPLACE INTO certificates (height, data) VALUES (?, ?)",
                        (item.checkpoint.height, encode(item)),
                    )

    def records(self) -> list[PersistItem]:
        rows = self.db.execute("SELECT kind, data FROM records ORDER BY id").fetchall()
        return [decode(_RECORD_TYPES[kind], bytes(data)) for kind, data in rows]

    def compact_records(self) -> None:
        """Keep only what a restart needs (`consensus.recovery.compact`)."""
        kept = compact(self.records())
        rows = [(_RECORD_KINDS[type(item)], record_seq(item), encode(item)) for item in kept]
        with self.transaction():
            self.db.execute("DELETE FROM records")
            self.db.executemany("INSERT INTO records (kind, seq, data) VALUES (?, ?, ?)", rows)

    def compact_records_below(self, stable_height: int) -> None:
        """While running: delete the records of heights at or below the stable checkpoint
        (a restart keeps that checkpoint's certificate); `compact_records`, at start-up,
        also drops the older views' records."""
        certificate = _RECORD_KINDS[CheckpointCertificate]
        with self.transaction() as db:
            db.execute(
                "DELETE FROM records WHERE seq IS NOT NULL AND seq < ? OR (seq = ? AND kind != ?)",
                (stable_height, stable_height, certificate),
            )

    def restored(self, scheduled: EpochScheduled | None = None) -> Restored:
        self.compact_records()
        head = self.head()
        rejoining = self._meta("rejoining") is not None
        epoch, validators = self.current_epoch()
        return Restored(
            head.height,
            head.block_hash,
            head.time_ms,
            tuple(self.records()),
            rejoining,
            epoch,
            validators,
            scheduled,
        )

    def current_epoch(self) -> tuple[int, ValidatorSet | None]:
        row = self.db.execute(
            "SELECT epoch, validators FROM epochs ORDER BY epoch DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return 0, None
        return int(row[0]), decode(ValidatorSet, bytes(row[1]))

    def start_epoch(self, epoch: int, validators: ValidatorSet) -> None:
        """A new validator set: remember it; the previous set's records can never count again
        (their votes are signed for their epoch), so only certificates are kept."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs (epoch, start_height, validators) VALUES (?, ?, ?)",
                (epoch, validators.from_height, encode(validators)),
            )
            kept = _RECORD_KINDS[CheckpointCertificate]
            db.execute("DELETE FROM records WHERE kind != ?", (kept,))

    def clear_rejoining(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = 'rejoining'")

    # ------------------------------------------------------------ blocks and execution

    def head(self) -> Head:
        data = self._meta("head")
        return GENESIS_HEAD if data is None else decode(Head, data)

    def write_genesis(
        self,
        state: dict[bytes, bytes],
        smt_pages: list[tuple[int, bytes, bytes]],
        state_version: int,
        head: Head,
    ) -> None:
        with self.transaction():
            self._write_state(state, head.height)
            self._write_smt(smt_pages, head.state_root, state_version)
            self._set_meta("head", encode(head))

    def _write_smt(
        self, smt_pages: list[tuple[int, bytes, bytes]], root: bytes, version: int
    ) -> None:
        """New tree pages, which sort after every stored one (appends), and the root's version."""
        self.db.executemany(
            "INSERT OR IGNORE INTO smt_pages (version, hash, data) VALUES (?, ?, ?)",
            sorted(smt_pages),
        )
        self.db.execute(
            "INSERT OR IGNORE INTO smt_roots (hash, version) VALUES (?, ?)", (root, version)
        )

    def smt_root_version(self, root: bytes) -> int:
        return _smt_root_version(self.db, root)

    def smt_page_data(self, version: int, page_hash: bytes) -> bytes | None:
        return _smt_page_data(self.db, version, page_hash)

    def _write_state(self, changes: dict[bytes, bytes], height: int) -> None:
        """Latest values by key, and every value ever written under (height, its hash).

        The second is for proofs under old roots: a tree leaf is stored under the
        height that set its value, so its value is found there; and keyed by
        height first, a block's values append to the table.
        """
        items = sorted(changes.items())
        self.db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", items)
        self.db.executemany(
            "INSERT OR IGNORE INTO state_values (version, hash, value) VALUES (?, ?, ?)",
            sorted((height, hashlib.sha256(value).digest(), value) for _, value in items),
        )

    def write_block(self, write: BlockWrite) -> None:
        block = write.committed.block
        header = block.header
        with self.transaction() as db:
            db.execute(
                "INSERT INTO blocks (height, hash, time_ms, tx_count, data) VALUES (?, ?, ?, ?, ?)",
                (
                    header.height,
                    block.hash,
                    header.time_ms,
                    len(block.transactions),
                    encode(write.committed),
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO transactions (id, height, position, log_index, code, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                sorted(
                    (tx_id, e.height, e.position, e.log_index, e.code, e.result)
                    for tx_id, e in write.tx_entries
                ),
            )
            self._write_state(write.state_changes, header.height)
            db.executemany(
                "INSERT OR IGNORE INTO log_nodes (level, position, hash) VALUES (?, ?, ?)",
                sorted(write.log_nodes),
            )
            if write.smt_pages:
                self._write_smt(write.smt_pages, write.head.state_root, write.state_version)
            self._set_meta("head", encode(write.head))


class Reader:
    """Read-only queries, on a connection of their own (WAL lets them run beside the writer)."""

    def __init__(self, path: Path) -> None:
        self.db = connect(path, readonly=True)

    def close(self) -> None:
        self.db.close()

    def one(self, sql: str, *args: Any) -> Any:
        return self.db.execute(sql, args).fetchone()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state (and pay for one read transaction, not one each)."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def all(self, sql: str, *args: Any) -> list[Any]:
        return self.db.execute(sql, args).fetchall()

    def head(self) -> Head:
        row = self.one("SELECT value FROM meta WHERE key = 'head'")
        return GENESIS_HEAD if row is None else decode(Head, bytes(row[0]))

    def block(self, height: int) -> CommittedBlock | None:
        data = self.block_data(height)
        return None if data is None else decode(CommittedBlock, data)

    def block_data(self, height: int) -> bytes | None:
        """The block as stored (encoded)."""
        row = self.one("SELECT data FROM blocks WHERE height = ?", height)
        return None if row is None else bytes(row[0])

    def blocks(self, start: int, end: int) -> dict[int, CommittedBlock]:
        rows = self.all(
            "SELECT height, data FROM blocks WHERE height BETWEEN ? AND ? ORDER BY height",
            start,
            end,
        )
        return {height: decode(CommittedBlock, bytes(data)) for height, data in rows}

    def certificates(self, start: int, end: int) -> dict[int, CheckpointCertificate]:
        rows = self.all(
            "SELECT height, data FROM certificates WHERE height BETWEEN ? AND ?", start, end
        )
        return {height: decode(CheckpointCertificate, bytes(data)) for height, data in rows}

    def epoch_starts(self) -> list[tuple[int, int, ValidatorSet]]:
        """(epoch, first height, validators) of every validator set after the genesis one."""
        rows = self.all("SELECT epoch, start_height, validators FROM epochs ORDER BY epoch")
        return [(int(e), int(h), decode(ValidatorSet, bytes(v))) for e, h, v in rows]

    def certificate_at_or_after(self, height: int) -> CheckpointCertificate | None:
        row = self.one(
            "SELECT data FROM certificates WHERE height >= ? ORDER BY height LIMIT 1", height
        )
        return None if row is None else decode(CheckpointCertificate, bytes(row[0]))

    def latest_certificate(self, at_most: int = HEIGHT_MAX) -> CheckpointCertificate | None:
        """The newest certificate held of a height up to `at_most` (by default, any)."""
        row = self.one(
            "SELECT data FROM certificates WHERE height <= ? ORDER BY height DESC LIMIT 1",
            at_most,
        )
        return None if row is None else decode(CheckpointCertificate, bytes(row[0]))

    def transaction(self, tx_id: bytes) -> TxEntry | None:
        row = self.one(
            "SELECT height, position, log_index, code, result FROM transactions WHERE id = ?", tx_id
        )
        return None if row is None else TxEntry(row[0], row[1], row[2], row[3], bytes(row[4]))

    def state(self, key: bytes) -> bytes | None:
        row = self.one("SELECT value FROM state WHERE key = ?", key)
        return None if row is None else bytes(row[0])

    def state_value(self, version: int, value_hash: bytes) -> bytes | None:
        row = self.one(
            "SELECT value FROM state_values WHERE version = ? AND hash = ?", version, value_hash
        )
        return None if row is None else bytes(row[0])

    def smt_page_data(self, version: int, page_hash: bytes) -> bytes | None:
        return _smt_page_data(self.db, version, page_hash)

    def smt_root_version(self, root: bytes) -> int:
        return _smt_root_version(self.db, root)

    def log_node(self, level: int, position: int) -> bytes:
        row = self.one(
            "SELECT hash FROM log_nodes WHERE level = ? AND position = ?", level, position
        )
        if row is None:
            raise KeyError((level, position))
        return bytes(row[0])

    def log_count(self, level: int) -> int:
        row = self.one("SELECT MAX(position) FROM log_nodes WHERE level = ?", level)
        return 0 if row is None or row[0] is None else int(row[0]) + 1


def _smt_page_data(db: sqlite3.Connection, version: int, page_hash: bytes) -> bytes | None:
    row = db.execute(
        "SELECT data FROM smt_pages WHERE version = ? AND hash = ?", (version, page_hash)
    ).fetchone()
    return None if row is None else bytes(row[0])


def _smt_root_version(db: sqlite3.Connection, root: bytes) -> int:
    """The version the state-tree page of `root` is stored under (0 for the empty tree).

    A root this database never had gets 0 too; reading the tree there then
    finds no page and says so.
    """
    row = db.execute("SELECT version FROM smt_roots WHERE hash = ?", (root,)).fetchone()
    return 0 if row is None else int(row[0])


def backup(source: Path, destination: Path) -> Head:
    """A consistent copy of a node's database, taken while the node runs; it holds no
    consensus records and is marked rejoining (`_copy_for_rejoining`)."""
    if destination.exists():
        raise StorageError(f"{destination}: already exists; refusing to overwrite it")
    reader = connect(source, readonly=True)
    try:
        return _copy_for_rejoining(reader, destination, "DELETE")
    finally:
        reader.close()


def restore(backup_file: Path, database: Path, genesis_hash: str) -> Head:
    """Put a backup in place as the node's database (the node must be stopped).

    Whatever the file (one `backup` wrote, or a plain copy or snapshot of a database of
    this chain), the restored database holds no consensus records and is marked
    rejoining: the node catches up and does not vote until it is past anything it may
    have signed after the copy was taken, so it cannot sign twice."""
    leftovers = [p for p in (database, *_sidecars(database)) if p.exists()]
    if leftovers:
        names = ", ".join(p.name for p in leftovers)
        raise StorageError(
            f"{database.parent}: the data directory already holds a database ({names}); "
            "stop the node and move it away first"
        )
    head = _check_backup(backup_file, genesis_hash)
    # Copied beside the database and renamed into place only when whole, so a copy that
    # fails (a full disk) leaves no half database to block the next attempt.
    partial = database.with_name(database.name + ".restoring")
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        for stale in (partial, *_sidecars(partial)):
            stale.unlink(missing_ok=True)
        source = connect(backup_file, readonly=True)
        try:
            _copy_for_rejoining(source, partial, "WAL")
        finally:
            source.close()
        os.replace(partial, database)
        _sync_directory(database.parent)
    except (sqlite3.Error, OSError, StorageError) as exc:
        for leftover in (partial, *_sidecars(partial)):
            leftover.unlink(missing_ok=True)
        raise StorageError(f"{database}: the restore failed: {exc}") from None
    return head


def _check_backup(backup_file: Path, genesis_hash: str) -> Head:
    """The head of a sound database of this chain, or a StorageError saying what is wrong."""
    try:
        probe = connect(backup_file, readonly=True)
    except StorageError:
        raise StorageError(f"{backup_file}: not a readable backup") from None
    try:
        known = probe.execute("SELECT value FROM meta WHERE key = 'genesis_hash'").fetchone()
        row = probe.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        check = probe.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.Error:
        raise StorageError(f"{backup_file}: not a node backup") from None
    finally:
        probe.close()
    if check is None or check[0] != "ok":
        detail = "no answer" if check is None else " ".join(str(check[0]).split())
        raise StorageError(f"{backup_file}: the backup is damaged ({detail})")
    if known is None or not isinstance(known[0], bytes) or known[0] != genesis_hash.encode():
        raise StorageError(f"{backup_file}: the backup belongs to another chain")
    try:
        return GENESIS_HEAD if row is None else decode(Head, bytes(row[0]))
    except (DecodeError, TypeError):
        raise StorageError(f"{backup_file}: the backup's head record is damaged") from None


def _copy_for_rejoining(source: sqlite3.Connection, target_path: Path, journal_mode: str) -> Head:
    """Copy a database (SQLite's online backup, a consistent snapshot) to `target_path`,
    without its consensus records and marked rejoining; the copy's head. A node started on
    the copy cannot know what it signed after the copy was taken, so it must not vote
    until it is past all of that."""
    target = sqlite3.connect(target_path, isolation_level=None)
    try:
        source.backup(target)
        target.execute(f"PRAGMA journal_mode={journal_mode}")
        target.execute("BEGIN IMMEDIATE")
        target.execute("DELETE FROM records")
        target.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rejoining', x'01')")
        target.execute("COMMIT")
        row = target.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
    finally:
        target.close()
    return GENESIS_HEAD if row is None else decode(Head, bytes(row[0]))


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _sidecars(database: Path) -> tuple[Path, Path]:
    """SQLite's write-ahead log and shared-memory index beside a database file."""
    return (
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    )
