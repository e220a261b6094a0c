"""Backup under load, restore into a fresh data directory, and the node rejoins.

Real node processes on 127.0.0.1 (the harness of tests/node). While a client
writes through the SDK, `notarychain-node backup` copies one node's database;
the node is stopped, its data directory moved aside, and `notarychain-node
restore` puts the backup in place. Started again, the node catches up to the
same chain and state root as the others, holds every transaction whose commit
the client saw, and votes again (the consortium needs its vote to commit
once another node is down). `restore` refuses bad input with one line and a
non-zero exit status, and leaves the data directory as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from client.errors import ClientError
from client.sdk import AsyncClient
from ledger.encoding import decode
from ledger.families import evidence
from ledger.genesis import ConsensusSettings, Genesis
from ledger.keys import PrivateKey

if TYPE_CHECKING:
    from cluster import Cluster

TARGET = 2  # enterprise-2: a backup (not the primary of view 0), backed up and restored
OTHER = 3  # enterprise-3: stopped at the end, so that commits need the restored node's vote
CLI_TIMEOUT_S = 60.0
LOAD_WORKERS = 4
LOAD_LIMIT = 1500
LOAD_DURATION_S = 60.0
REJOIN_LOG_LINE = "rejoined at stable height"


def node_command() -> list[str]:
    """The `notarychain-node` script next to this interpreter (else the same `main`)."""
    script = Path(sys.executable).with_name("notarychain-node")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "node"]


def node_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*node_command(), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A non-zero exit with exactly one line on stderr (naming `fragments`), no traceback."""
    shown = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    assert result.returncode != 0, shown
    assert "Traceback" not in result.stderr, shown
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("notarychain-node: "), shown
    for fragment in fragments:
        assert fragment in line, shown
    assert result.stdout == "", shown
    return line


# ---------------------------------------------------------------- a client writing through the SDK


@dataclass(frozen=True, slots=True)
class Acked:
    """A registration whose commit the SDK reported to its caller."""

    tx_id: str
    height: int
    evidence_id: bytes
    at: float
    """time.monotonic() when the caller learnt of the commit."""


class SdkLoad:
    """`workers` writers, each registering one piece of evidence at a time through
    `AsyncClient.execute` (submit, then wait for the commit), on an event loop of their
    own in a background thread. Bounded: at most `limit` registrations, `duration_s`."""

    def __init__(
        self,
        urls: list[str],
        genesis: Genesis,
        key: PrivateKey,
        *,
        workers: int = LOAD_WORKERS,
        limit: int = LOAD_LIMIT,
        duration_s: float = LOAD_DURATION_S,
    ) -> None:
        self.urls = urls
        self.genesis = genesis
        self.key = key
        self.workers = workers
        self.limit = limit
        self.duration_s = duration_s
        self.acked: list[Acked] = []
        self.errors: list[str] = []
        self.issued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sdk-load", daemon=True)

    def start(self) -> SdkLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        deadline = time.monotonic() + self.duration_s
        async with AsyncClient(self.urls, self.genesis, self.key, timeout_s=20.0) as client:
            await asyncio.gather(*(self._worker(client, deadline) for _ in range(self.workers)))

    async def _worker(self, client: AsyncClient, deadline: float) -> None:
        for _ in range(self.limit):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            with self._lock:
                if self.issued >= self.limit:
                    return
                self.issued += 1
                number = self.issued
            content = os.urandom(64)
            item = evidence.Item(
                hashlib.sha256(content).digest(),
                False,
                evidence.Kind.DOCUMENT,
                len(content),
                f"load {number}",
            )
            try:
                receipt = await client.execute(
                    evidence.FAMILY, evidence.REGISTER, evidence.Register((item,))
                )
            except ClientError as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            registered = decode(evidence.Registered, receipt.result)
            acked = Acked(receipt.tx_id, receipt.height, registered.ids[0], time.monotonic())
            with self._lock:
                self.acked.append(acked)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Until at least `count` commits were acknowledged (False if `timeout` runs out)."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.1) + 10):
            if self.count() >= count:
                return True
            if time.monotonic() > deadline or not self._thread.is_alive():
                break
            time.sleep(0.1)
        return self.count() >= count

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the SDK load did not stop in {timeout:.0f} s"

    def summary(self) -> str:
        return f"issued {self.issued}, acknowledged {self.count()}, errors {self.errors[:3]}"


# ---------------------------------------------------------------- checks


def log_since_last_start(cluster: Cluster, i: int) -> str:
    text = cluster.log_path(i).read_text(errors="replace")
    return text.rsplit("---- harness: starting", 1)[-1]


def wait_rejoined(cluster: Cluster, i: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2) + 10):
        if REJOIN_LOG_LINE in log_since_last_start(cluster, i):
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise cluster.fail(f"{cluster.name(i)} did not log {REJOIN_LOG_LINE!r} in {timeout:.0f} s")


def assert_same_chain_and_state(cluster: Cluster, nodes: list[int], height: int) -> None:
    checkpoints = {cluster.name(i): cluster.latest_checkpoint(i) for i in nodes}
    assert {c["height"] for c in checkpoints.values()} == {height}, checkpoints
    for field in ("block_hash", "state_root", "log_root", "log_size"):
        assert len({c[field] for c in checkpoints.values()}) == 1, (field, checkpoints)
    cluster.assert_identical_chains(nodes, height)


def assert_all_present(cluster: Cluster, acked: list[Acked], i: int) -> None:
    """Every acknowledged transaction is committed on node i at the height the client saw,
    and the evidence it registered is in node i's state."""

    def check(item: Acked) -> str | None:
        reply = cluster.transaction(item.tx_id, i)
        if reply.status != 200:
            return f"tx {item.tx_id[:16]}: http {reply.status}"
        data = reply.json()
        if data["state"] != "committed" or data["height"] != item.height:
            return f"tx {item.tx_id[:16]}: {data['state']} at {data.get('height')}, "
        record = cluster.request(i, "GET", f"/v1/evidence/{item.evidence_id.hex()}")
        if record.status != 200:
            return f"evidence {item.evidence_id.hex()[:16]}: http {record.status}"
        return None

    with ThreadPoolExecutor(8) as pool:
        problems = [p for p in pool.map(check, acked) if p is not None]
    assert not problems, f"{len(problems)} acknowledged on {cluster.name(i)}: {problems[:5]}"


def with_junk_page(database: bytes, table: str) -> bytes:
    """A copy of a SQLite database with the root page of `table` overwritten by 0xff bytes."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "copy.db"
        path.write_bytes(database)
        with contextlib.closing(sqlite3.connect(path)) as db:
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            row = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
            root = int(row.fetchone()[0])
    assert root > 1 and root * page_size <= len(database), (root, page_size, len(database))
    start = (root - 1) * page_size
    return database[:start] + b"\xff" * page_size + database[start + page_size :]


# ---------------------------------------------------------------- the tests


@pytest.mark.cluster
def test_backup_under_load_restore_rejoins_with_identical_state(
    make_cluster: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
    tmp_path: Path,
) -> None:
    cluster = make_cluster(consensus=fast_consensus)
    everyone = list(range(cluster.n))
    others = [i for i in everyone if i != TARGET]
    assert cluster.applicant is not None and cluster.genesis is not None
    config = cluster.config_path(TARGET)
    data_dir = cluster.directory(TARGET) / "data"
    assert (data_dir / "chain.db").is_file()
    backup_file = tmp_path / "enterprise-2.backup"

    urls = [f"http://127.0.0.1:{cluster.api_port(i)}" for i in others]
    load = SdkLoad(urls, cluster.genesis, cluster.applicant).start()
    try:
        assert load.wait_for(30, timeout=30), f"no progress before the backup: {load.summary()}"

        # The backup, taken while the node runs and the client keeps writing.
        acked_before_backup = load.count()
        taken = node_cli("backup", "--config", config, "--out", backup_file)
        assert taken.returncode == 0, taken.stderr
        assert taken.stdout.startswith("backed up height "), taken.stdout
        backup_height = int(taken.stdout.split()[3])
        assert backup_height >= 1, taken.stdout
        assert backup_file.is_file()
        assert cluster.running(TARGET), "the backup stopped the node"

        # The chain moves on past the backup, then the node stops (by its PID).
        assert load.wait_for(acked_before_backup + 60, timeout=30), load.summary()
        cluster.stop(TARGET)
        assert not cluster.running(TARGET)
        stopped_height = cluster.height(others[0])
        assert stopped_height > backup_height

        # Restore refuses to overwrite a data directory that holds a database; the old
        # one is moved aside and the backup goes into a fresh one.
        assert_refused(
            node_cli("restore", "--config", config, "--from", backup_file),
            "already holds a database",
        )
        data_dir.rename(data_dir.with_name("data.before-restore"))
        restored = node_cli("restore", "--config", config, "--from", backup_file)
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout.startswith(f"restored height {backup_height} into "), restored.stdout
        assert (data_dir / "chain.db").is_file()

        # Started again, it catches up while the load runs, and votes again once the
        # chain has moved a window past anything it may have signed after the backup.
        cluster.start([TARGET])
        cluster.wait_ready()
        cluster.wait_height(TARGET, stopped_height, timeout=30)
        wait_rejoined(cluster, TARGET, timeout=40)
    finally:
        load.stop()

    assert not load.errors, load.summary()
    assert load.count() >= 90, load.summary()
    assert max(a.height for a in load.acked) > stopped_height, "no commits after the stop"
    height = cluster.wait_settled(everyone, timeout=30)
    status = cluster.status(TARGET)
    assert status["validator"] and not status["diverged"], status
    assert_same_chain_and_state(cluster, everyone, height)
    assert_all_present(cluster, load.acked, TARGET)

    # With another node down, nothing commits without the restored node's vote.
    cluster.stop(OTHER)
    txs = cluster.make_txs(5)
    for tx in txs:
        cluster.submit_acked(tx, TARGET)
    for tx in txs:
        committed = cluster.wait_committed(tx.id, TARGET, timeout=30)
        assert committed["height"] > height
    up = [i for i in everyone if i != OTHER]
    final = cluster.wait_settled(up, timeout=30)
    checkpoints = {cluster.name(i): cluster.latest_checkpoint(i) for i in up}
    assert {(c["height"], c["state_root"]) for c in checkpoints.values()} == {
        (final, checkpoints[cluster.name(TARGET)]["state_root"])
    }, checkpoints


@pytest.mark.cluster
def test_backup_and_restore_refuse_bad_input_with_one_line(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory()
    node = 0
    config = cluster.config_path(node)
    data_dir = cluster.directory(node) / "data"
    backup_file = tmp_path / "notary-office.backup"
    other_chain = cluster_factory("other-chain")

    # Nothing to back up before the node ever ran.
    assert_refused(
        node_cli("backup", "--config", config, "--out", backup_file), "no database to back up"
    )
    assert not backup_file.exists()

    # One node alone (no quorum, but it runs and has its database); back it up running.
    cluster.start([node])
    cluster.wait_ready([node])
    taken = node_cli("backup", "--config", config, "--out", backup_file)
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith("backed up height 0 to "), taken.stdout
    good = backup_file.read_bytes()
    assert_refused(node_cli("backup", "--config", config, "--out", backup_file), "already exists")
    assert backup_file.read_bytes() == good, "a refused backup changed the existing file"
    cluster.stop(node)

    assert_refused(
        node_cli("restore", "--config", config, "--from", backup_file),
        "already holds a database",
    )
    data_dir.rename(data_dir.with_name("data.before-restore"))

    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good[: len(good) // 2])
    short = tmp_path / "short.backup"  # its tail lost: the last page and a bit more
    short.write_bytes(good[: len(good) - 5000])
    garbage = tmp_path / "garbage.backup"
    garbage.write_bytes(os.urandom(64 * 1024))
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.backup"  # a SQLite database, but not a node's
    with contextlib.closing(sqlite3.connect(foreign)) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('not a chain')")
        db.commit()
    missing = tmp_path / "missing.backup"
    damaged = tmp_path / "damaged.backup"  # opens, its meta reads fine, one table's page is junk
    damaged.write_bytes(with_junk_page(good, "blocks"))
    for bad in (truncated, short, garbage, empty, foreign, missing, damaged):
        line = assert_refused(node_cli("restore", "--config", config, "--from", bad), str(bad))
        assert not (data_dir / "chain.db").exists(), f"{bad.name} left a database behind"
        if bad is damaged:
            assert "damaged" in line, line

    # A backup of this chain does not go into a node of another chain.
    assert_refused(
        node_cli("restore", "--config", other_chain.config_path(node), "--from", backup_file),
        "another chain",
    )
    assert not (other_chain.directory(node) / "data" / "chain.db").exists()

    # After all that, the good backup restores and the node starts from it.
    restored = node_cli("restore", "--config", config, "--from", backup_file)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("restored height 0 into "), restored.stdout
    cluster.start([node])
    status = cluster.wait_ready([node])[0]
    assert status["chain_id"] == cluster.chain_id and status["height"] == 0, status
