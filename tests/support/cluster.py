"""A harness for multi-process tests of the node: a real consortium on 127.0.0.1.

`Cluster` creates a consortium in a temporary directory (a notary office and
three enterprises, free ports, the node's own family hashes, and two
development identities like `notarychain-node up` makes), starts each node as
its own process exactly as `node.up` does (`python -m node run --config ...`,
its output in `DIR/NAME/node.log`), and talks to the nodes over their public
HTTP API with the standard library only.

Rules kept here: network only to 127.0.0.1; every loop is bounded in count and
time and fails with a message naming what did not happen (with the tail of
each node's log); processes are ended only by the PIDs this harness started;
every node is stopped by the fixture's finalizer, even when a test fails.

Test modules reach this through fixtures (`cluster_factory`, `make_cluster`,
`txkit`, `fast_consensus`), which the conftests of tests/node and
tests/operations import from here, and name its types with `from cluster
import Cluster` (tests/support is on `sys.path`; see `harness`).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import free_ports, tail

from ledger.encoding import encode
from ledger.families.evidence import Item, Kind, Register
from ledger.genesis import ConsensusSettings, Genesis, GenesisIdentity
from ledger.keyfile import load_private_key, save_private_key
from ledger.keys import PrivateKey, public_key_text
from ledger.tx import Transaction, TransactionBody, sign_transaction
from node.families import code_hashes
from node.material import InstitutionSpec, create_consortium

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.2
NAMES = (
    ("notary-office", "notary"),
    ("enterprise-1", "enterprise"),
    ("enterprise-2", "enterprise"),
    ("enterprise-3", "enterprise"),
)
FAST_CONSENSUS = ConsensusSettings(request_timeout_ms=1500, view_change_timeout_ms=1000)


_STARTED: list[subprocess.Popen[bytes]] = []
"""Every node process this harness started (ended by PID if the test run itself is ended)."""


def _kill_started() -> None:
    for process in _STARTED:
        if process.poll() is None:  # still our unreaped child, so the PID is still its own
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)


class ClusterError(AssertionError):
    """A bounded wait ran out, or a node did something the harness did not expect."""


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


def expect_refusal(reply: Reply, status: int, code: str) -> None:
    """The API's refusal shape: this status, and a JSON `{"error": {"code", "message"}}`."""
    assert reply.status == status, (code, reply.status, reply.body[:300])
    assert reply.content_type.startswith("application/json"), reply.content_type
    data = reply.json()
    assert set(data) == {"error"}, data
    assert set(data["error"]) == {"code", "message"}, data
    assert data["error"]["code"] == code, data
    assert isinstance(data["error"]["message"], str) and data["error"]["message"], data


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Reply:
    """One request to 127.0.0.1:port; any HTTP status is a `Reply`, a dead socket an OSError."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status, data, response.getheader("Content-Type", ""))
    finally:
        connection.close()


# ---------------------------------------------------------------- transactions


@dataclass(frozen=True, slots=True)
class Tx:
    """A signed transaction: its id (hex) and canonical bytes."""

    id: str
    data: bytes
    tx: Transaction


def evidence_body(
    chain_id: str,
    sender: PrivateKey,
    *,
    title: str = "doc",
    expires_in_ms: int = 100_000,
    operation: str = "register",
    family: str = "evidence",
) -> TransactionBody:
    payload = encode(Register((Item(os.urandom(32), False, Kind.DOCUMENT, 100, title),)))
    return TransactionBody(
        chain_id,
        sender.public_key,
        family,
        operation,
        payload,
        os.urandom(16),
        int(time.time() * 1000) + expires_in_ms,
    )


def signed(body: TransactionBody, key: PrivateKey) -> Tx:
    tx = sign_transaction(body, key)
    return Tx(tx.id.hex(), tx.encode(), tx)


class TxKit:
    """Builders of signed evidence transactions (reached through the `txkit` fixture)."""

    evidence_body = staticmethod(evidence_body)
    signed = staticmethod(signed)
    Tx = Tx

    @staticmethod
    def evidence(
        chain_id: str, key: PrivateKey, count: int, expires_in_ms: int = 100_000
    ) -> list[Tx]:
        """`count` evidence registrations of random 32-byte digests, signed by `key`."""
        return [
            signed(evidence_body(chain_id, key, title=f"doc {i}", expires_in_ms=expires_in_ms), key)
            for i in range(count)
        ]


# ---------------------------------------------------------------- the cluster


class Cluster:
    """A consortium of node processes in `root`; created by `create`, started by `start`."""

    def __init__(self, root: Path, consensus: ConsensusSettings | None = None) -> None:
        self.root = root
        self.consensus = consensus
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.genesis: Genesis | None = None
        self.specs: list[InstitutionSpec] = []
        self.applicant: PrivateKey | None = None
        self.officer: PrivateKey | None = None

    # ---------------------------------------------------------- material

    def create(self, names: Sequence[tuple[str, str]] = NAMES) -> Genesis:
        ports = free_ports(2 * len(names))
        self.specs = [
            InstitutionSpec(name, role, HOST, ports[2 * i], ports[2 * i + 1])
            for i, (name, role) in enumerate(names)
        ]
        applicant, officer = PrivateKey.generate(), PrivateKey.generate()
        identities = (
            GenesisIdentity(
                key=public_key_text(applicant.public_key),
                institution=self.specs[-1].name,
                role="applicant",
                name="Development applicant",
                level=1,
            ),
            GenesisIdentity(
                key=public_key_text(officer.public_key),
                institution=self.specs[0].name,
                role="officer",
                name="Development notary officer",
                level=3,
            ),
        )
        self.genesis = create_consortium(
            self.root,
            self.specs,
            chain_id=f"notarychain-test-{os.getpid()}-{int(time.time() * 1000) % 10**8}",
            consensus=self.consensus,
            families=code_hashes(),
            identities=identities,
        )
        dev = self.root / "dev"
        dev.mkdir()
        save_private_key(dev / "applicant.key", applicant)
        save_private_key(dev / "officer.key", officer)
        self.applicant = load_private_key(dev / "applicant.key")
        self.officer = load_private_key(dev / "officer.key")
        return self.genesis

    @property
    def n(self) -> int:
        return len(self.specs)

    @property
    def chain_id(self) -> str:
        assert self.genesis is not None
        return self.genesis.chain_id

    def name(self, i: int) -> str:
        return self.specs[i].name

    def directory(self, i: int) -> Path:
        return self.root / self.specs[i].name

    def config_path(self, i: int) -> Path:
        return self.directory(i) / "node.toml"

    def log_path(self, i: int) -> Path:
        return self.directory(i) / "node.log"

    def log_text(self, i: int, since: int = 0) -> str:
        """What node `i` logged after its log held `since` bytes (all of it by default)."""
        with self.log_path(i).open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def api_port(self, i: int) -> int:
        return self.specs[i].api_port

    def peer_port(self, i: int) -> int:
        return self.specs[i].peer_port

    def make_txs(self, count: int, expires_in_ms: int = 100_000) -> list[Tx]:
        assert self.applicant is not None
        return TxKit.evidence(self.chain_id, self.applicant, count, expires_in_ms)

    # ---------------------------------------------------------- processes

    def start(self, indices: Sequence[int] | None = None) -> None:
        for i in range(self.n) if indices is None else indices:
            running = self.processes.get(i)
            assert running is None or running.poll() is not None, f"{self.name(i)} is running"
            with self.log_path(i).open("ab") as log:
                log.write(f"---- harness: starting {self.name(i)} at {time.time():.3f}\n".encode())
                log.flush()
                self.processes[i] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "node",
                        "run",
                        "--config",
                        str(self.config_path(i)),
                        "--log-format",
                        "text",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                _STARTED.append(self.processes[i])

    def running(self, i: int) -> bool:
        process = self.processes.get(i)
        return process is not None and process.poll() is None

    def alive(self) -> list[int]:
        return [i for i in range(self.n) if self.running(i)]

    def kill(self, i: int) -> None:
        """SIGKILL node i by its PID (a crash: no clean shutdown)."""
        process = self.processes[i]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, i: int) -> None:
        """SIGTERM node i by its PID, then SIGKILL if it does not exit in time."""
        process = self.processes.get(i)
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self, i: int) -> None:
        if self.running(i):
            self.stop(i)
        self.start([i])

    def close(self) -> None:
        for i in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(i)
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT_S)

    def logs(self, indices: Sequence[int] | None = None, lines: int = 25) -> str:
        parts = []
        for i in range(self.n) if indices is None else indices:
            parts.append(
                f"==== {self.name(i)} ({self.log_path(i)}) ====\n{tail(self.log_path(i), lines)}"
            )
        return "\n".join(parts)

    def fail(self, message: str) -> ClusterError:
        return ClusterError(f"{message}\nnodes now: {self.summary()}\n{self.logs()}")

    # ---------------------------------------------------------- API

    def request(self, i: int, method: str, path: str, **kwargs: Any) -> Reply:
        return http_request(self.api_port(i), method, path, **kwargs)

    def status(self, i: int) -> dict[str, Any]:
        reply = self.request(i, "GET", "/v1/status")
        if reply.status != 200:
            raise self.fail(f"{self.name(i)}: GET /v1/status answered {reply.status}")
        data: dict[str, Any] = reply.json()
        return data

    def try_status(self, i: int) -> dict[str, Any] | None:
        try:
            return self.status(i)
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def summary(self) -> str:
        """Each node's height, view, whether the view is active, and mempool size."""
        parts = []
        for i in range(self.n):
            status = None
            if self.running(i):
                with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                    reply = self.request(i, "GET", "/v1/status", timeout=2)
                    status = reply.json() if reply.status == 200 else None
            if status is None:
                parts.append(f"{self.name(i)}: down")
            else:
                parts.append(
                    f"{self.name(i)}: height {status['height']} view {status['view']}"
                    f"{'' if status['view_active'] else ' (changing)'} mempool {status['mempool']}"
                )
        return "; ".join(parts)

    def height(self, i: int) -> int:
        return int(self.status(i)["height"])

    def submit(self, tx_bytes: bytes, i: int) -> Reply:
        return self.request(
            i,
            "POST",
            "/v1/transactions",
            body=tx_bytes,
            headers={"Content-Type": "application/msgpack"},
        )

    def submit_acked(self, tx: Tx, i: int, attempts: int = 50) -> dict[str, Any]:
        """Submit until the node takes it (202, or 200 if already known); retry 429/503."""
        last = None
        for _ in range(attempts):
            last = self.submit(tx.data, i)
            if last.status in (200, 202):
                data: dict[str, Any] = last.json()
                assert data["tx_id"] == tx.id, (data, tx.id)
                return data
            if last.status not in (429, 503):
                break
            time.sleep(0.1)
        assert last is not None
        raise self.fail(f"{self.name(i)} refused tx {tx.id}: {last.status} {last.body[:300]!r}")

    def transaction(self, tx_id: str, i: int, wait_s: int = 0) -> Reply:
        query = f"?wait={wait_s}" if wait_s else ""
        return self.request(
            i, "GET", f"/v1/transactions/{tx_id}{query}", timeout=HTTP_TIMEOUT_S + wait_s
        )

    def wait_committed(self, tx_id: str, i: int, timeout: float = 30.0) -> dict[str, Any]:
        """The committed status of tx_id on node i, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                reply = self.transaction(tx_id, i, wait_s=max(1, min(10, int(remaining))))
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                time.sleep(POLL_S)
                continue
            last = (reply.status, reply.body[:300])
            if reply.status == 200:
                data: dict[str, Any] = reply.json()
                if data["state"] == "committed":
                    return data
                if data["state"] == "rejected":
                    raise self.fail(f"tx {tx_id} was rejected on {self.name(i)}: {data}")
            elif reply.status == 404:
                time.sleep(POLL_S)
        raise self.fail(
            f"tx {tx_id} not committed on {self.name(i)} within {timeout:.0f} s (last: {last})"
        )

    def block(self, i: int, height: int) -> dict[str, Any]:
        reply = self.request(i, "GET", f"/v1/blocks/{height}")
        if reply.status != 200:
            raise self.fail(f"{self.name(i)}: block {height}: {reply.status} {reply.body[:200]!r}")
        data: dict[str, Any] = reply.json()
        return data

    def latest_checkpoint(self, i: int) -> dict[str, Any]:
        reply = self.request(i, "GET", "/v1/checkpoints/latest")
        if reply.status != 200:
            raise self.fail(f"{self.name(i)}: latest checkpoint: {reply.status} {reply.body!r}")
        data: dict[str, Any] = reply.json()["checkpoint"]
        return data

    # ---------------------------------------------------------- bounded waits

    def _check_alive(self, indices: Sequence[int]) -> None:
        for i in indices:
            process = self.processes.get(i)
            if process is not None and process.poll() is not None:
                raise self.fail(f"node {self.name(i)} exited with status {process.returncode}")

    def wait_ready(
        self, indices: Sequence[int] | None = None, timeout: float = READY_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Until every node in `indices` answers and sees every other one of them reachable."""
        indices = list(range(self.n) if indices is None else indices)
        names = {self.name(i) for i in indices}
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any] | None] = []
        for _ in range(int(timeout / POLL_S) + 10):
            self._check_alive(indices)
            last = [self.try_status(i) for i in indices]
            if all(
                s is not None
                and all(p["reachable"] for p in s["peers"] if p["institution"] in names)
                for s in last
            ):
                return [s for s in last if s is not None]
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        raise self.fail(f"nodes {sorted(names)} not all ready within {timeout:.0f} s: {last}")

    def wait_settled(
        self,
        indices: Sequence[int] | None = None,
        timeout: float = 60.0,
        quiet_polls: int = 4,
        interval: float = 0.5,
    ) -> int:
        """Until the nodes all report one height, empty mempools, unchanged for a while."""
        indices = list(range(self.n) if indices is None else indices)
        deadline = time.monotonic() + timeout
        previous: tuple[int, ...] | None = None
        stable = 0
        heights: tuple[int, ...] = ()
        statuses: list[dict[str, Any] | None] = []
        for _ in range(int(timeout / interval) + 10):
            self._check_alive(indices)
            statuses = [self.try_status(i) for i in indices]
            if all(s is not None for s in statuses):
                heights = tuple(int(s["height"]) for s in statuses if s is not None)
                quiet = len(set(heights)) == 1 and all(
                    s is not None and s["mempool"] == 0 for s in statuses
                )
                if quiet and heights == previous:
                    stable += 1
                    if stable >= quiet_polls:
                        return heights[0]
                else:
                    stable = 0
                previous = heights
            if time.monotonic() > deadline:
                break
            time.sleep(interval)
        summary = [
            None if s is None else {k: s[k] for k in ("height", "view", "view_active", "mempool")}
            for s in statuses
        ]
        raise self.fail(
            f"nodes {[self.name(i) for i in indices]} did not settle on one height within "
            f"{timeout:.0f} s: {summary}"
        )

    def wait_height(self, i: int, height: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        last = None
        for _ in range(int(timeout / POLL_S) + 10):
            self._check_alive([i])
            status = self.try_status(i)
            if status is not None:
                last = status["height"]
                if last >= height:
                    return int(last)
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        raise self.fail(f"{self.name(i)} did not reach height {height} in {timeout:.0f} s: {last}")

    # ---------------------------------------------------------- bulk

    def submit_all(self, txs: Sequence[Tx], indices: Sequence[int], workers: int = 8) -> None:
        """Submit round-robin to `indices` from a few threads; every one must be taken."""

        def one(k: int) -> None:
            self.submit_acked(txs[k], indices[k % len(indices)])

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(txs))))

    def statuses_of(self, txs: Sequence[Tx], i: int, workers: int = 8) -> list[dict[str, Any]]:
        def one(tx: Tx) -> dict[str, Any]:
            reply = self.transaction(tx.id, i)
            if reply.status != 200:
                return {"tx_id": tx.id, "state": f"http {reply.status}"}
            data: dict[str, Any] = reply.json()
            return data

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, txs))

    def load(self, targets: Sequence[int], **kwargs: Any) -> Load:
        return Load(self, targets, **kwargs)

    def monitor(self, node: int, **kwargs: Any) -> Monitor:
        return Monitor(self, node, **kwargs)

    def block_hashes(self, i: int, top: int, workers: int = 8) -> list[str]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda h: self.block(i, h)["hash"], range(1, top + 1)))

    def assert_identical_chains(self, nodes: Sequence[int], height: int) -> None:
        """The same block hash at every height up to `height` on each of `nodes`."""
        chains = {i: self.block_hashes(i, height) for i in nodes}
        for h in range(1, height + 1):
            hashes = {self.name(i): chains[i][h - 1] for i in nodes}
            assert len(set(hashes.values())) == 1, f"block {h} differs: {hashes}"


# ---------------------------------------------------------------- load


@dataclass(frozen=True, slots=True)
class Ack:
    tx: Tx
    node: int
    at: float
    """time.monotonic() when the node acknowledged it."""


@dataclass(frozen=True, slots=True)
class Commit:
    tx: Tx
    node: int
    at: float
    """time.monotonic() when the client saw it committed."""
    height: int
    acked_at: float
    """time.monotonic() when the node had acknowledged it."""


class Load:
    """A client that keeps submitting (round-robin over `targets`) and waits for commits.

    One thread submits one fresh transaction every `interval` seconds (at most
    `limit` in all); a few more wait for each acknowledged one to commit on the
    node that took it. `targets` may be changed while it runs.
    """

    def __init__(
        self,
        cluster: Cluster,
        targets: Sequence[int],
        interval: float = 0.02,
        limit: int = 20_000,
        commit_timeout: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.targets = list(targets)
        self.interval = interval
        self.limit = limit
        self.commit_timeout = commit_timeout
        self.acked: list[Ack] = []
        self.commits: dict[str, Commit] = {}
        self.refused: list[tuple[int, int, bytes]] = []
        self.unreachable: list[tuple[int, str]] = []
        self.not_committed: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at = float("inf")
        self._waiters = ThreadPoolExecutor(16, thread_name_prefix="load-wait")
        self._thread = threading.Thread(target=self._run, name="load-submit", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def _run(self) -> None:
        for k in range(self.limit):
            if self._stop.is_set():
                return
            targets = list(self.targets)
            node = targets[k % len(targets)]
            tx = self.cluster.make_txs(1)[0]
            try:
                reply = self.cluster.submit(tx.data, node)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.unreachable.append((node, type(exc).__name__))
            else:
                if reply.status in (200, 202):
                    ack = Ack(tx, node, time.monotonic())
                    with self._lock:
                        self.acked.append(ack)
                    self._waiters.submit(self._wait, ack)
                else:
                    with self._lock:
                        self.refused.append((node, reply.status, reply.body[:200]))
            self._stop.wait(self.interval)

    def _wait(self, ack: Ack) -> None:
        tx, node = ack.tx, ack.node
        deadline = time.monotonic() + self.commit_timeout
        last = "no answer"
        for _ in range(200):
            if time.monotonic() > min(deadline, self._give_up_at):
                break
            try:
                reply = self.cluster.transaction(tx.id, node, wait_s=5)
            except (OSError, http.client.HTTPException) as exc:
                last = type(exc).__name__
                time.sleep(POLL_S)
                continue
            if reply.status == 200:
                data = reply.json()
                if data["state"] == "committed":
                    with self._lock:
                        self.commits[tx.id] = Commit(
                            tx, node, time.monotonic(), data["height"], ack.at
                        )
                    return
                last = data["state"]
                if last == "rejected":
                    break
            else:
                last = f"http {reply.status}"
                time.sleep(POLL_S)
        with self._lock:
            self.not_committed.append((tx.id, node, last))

    def stop(self, grace: float = 30.0) -> None:
        """Stop submitting; give the commit waiters `grace` seconds more, all together."""
        self._stop.set()
        self._thread.join(grace)
        self._give_up_at = time.monotonic() + grace
        self._waiters.shutdown(wait=True, cancel_futures=False)

    def summary(self) -> str:
        return (
            f"acked {len(self.acked)}, committed {len(self.commits)}, "
            f"refused {len(self.refused)} {self.refused[:3]}, "
            f"unreachable {len(self.unreachable)}, not committed {self.not_committed[:3]}"
        )


class Monitor:
    """Samples one node's /v1/status every `interval` s: (time.monotonic(), height, view)."""

    def __init__(self, cluster: Cluster, node: int, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.node = node
        self.interval = interval
        self.samples: list[tuple[float, int, int, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        for _ in range(100_000):
            if self._stop.is_set():
                return
            status = self.cluster.try_status(self.node)
            if status is not None:
                self.samples.append(
                    (time.monotonic(), status["height"], status["view"], status["view_active"])
                )
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_nodes() -> Iterator[None]:
    """Nodes run in their own sessions, so a test run ended by SIGTERM (a CI timeout) would
    leave them running: end them by PID first. (Fixture finalizers cover every other end.)"""
    installed = False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: object) -> None:
        _kill_started()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if previous == signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
        installed = True
    atexit.register(_kill_started)
    try:
        yield
    finally:
        _kill_started()
        if installed:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fast_consensus() -> ConsensusSettings:
    """Shorter timeouts, so that a dead primary is replaced quickly."""
    return FAST_CONSENSUS


@pytest.fixture
def txkit() -> type[TxKit]:
    return TxKit


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Make clusters (created, not started) under tmp_path; all their nodes stop at teardown."""
    made: list[Cluster] = []

    def make(name: str = "consortium", consensus: ConsensusSettings | None = None) -> Cluster:
        cluster = Cluster(tmp_path / name, consensus)
        made.append(cluster)
        cluster.create()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


@pytest.fixture
def make_cluster(cluster_factory: Callable[..., Cluster]) -> Callable[..., Cluster]:
    """Make, start and wait for a cluster (all nodes see all peers reachable)."""

    def make(name: str = "consortium", consensus: ConsensusSettings | None = None) -> Cluster:
        cluster = cluster_factory(name, consensus)
        cluster.start()
        cluster.wait_ready()
        return cluster

    return make
