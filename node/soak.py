"""`notarychain-node soak`: real nodes, a client that keeps writing, and a nemesis.

Real node processes on 127.0.0.1, each sending its peer traffic through its
own fault-injecting proxy (`node.faultproxy`). A client registers evidence
continuously and records every transaction whose commit was acknowledged. A
nemesis, in turn and never with more than f nodes faulty at once: kills a
node with SIGKILL and restarts it later; kills the primary; cuts one node off
(both directions) or cuts single links (one direction); slows links; restarts
a node with its clock skewed within the consensus bound; pauses a node
(SIGSTOP, then SIGCONT). At the end it heals
everything and checks that every acknowledged transaction is on every node,
that all nodes hold identical chains and state roots, that no more than f
faults were ever active at once, and that commits resumed after every fault;
it reports the longest pause. Every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from ledger.encoding import encode
from ledger.families.evidence import FAMILY, REGISTER, Item, Kind, Register
from ledger.genesis import ConsensusSettings, GenesisIdentity
from ledger.keyfile import save_private_key
from ledger.keys import PrivateKey, public_key_text
from ledger.tx import TransactionBody, sign_transaction
from node.families import code_hashes
from node.faultproxy import FaultProxy, route_through
from node.material import InstitutionSpec, create_consortium

READY_S: Final = 60.0
SETTLE_S: Final = 120.0
FAULT_GAP_S: Final = (2.0, 6.0)
FAULT_LENGTH_S: Final = (2.0, 6.0)
RESUME_WINDOW_S: Final = 10.0
"""The load goes on this long after the last fault ends (a primary's replacement takes
about 3.5 s with the default settings)."""
PRIMARY_KILL: Final = "kill -9 the primary"


@dataclass
class SoakOptions:
    duration_s: float = 600.0
    nodes: int = 4
    rate: float = 20.0
    seed: int = 1
    json_path: Path | None = None


@dataclass
class NodeProcess:
    name: str
    config: Path
    api: str
    peer_port: int
    process: subprocess.Popen[bytes] | None = None
    clock_offset_ms: int = 0

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Report:
    acknowledged: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    submitted_times: list[float] = field(default_factory=list)
    """When each acknowledged transaction was first submitted (same order as ack_times)."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    max_concurrent_faults: int = 0
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Soak:
    def __init__(self, options: SoakOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)  # noqa: S311  (a test's schedule, not secrecy)
        self.dir = Path(tempfile.mkdtemp(prefix="notarychain-soak-"))
        self.report = Report()
        self.proxies: list[FaultProxy] = []
        self.nodes: list[NodeProcess] = []
        self.faulty: set[str] = set()
        self.f = (options.nodes - 1) // 3
        self.started = time.monotonic()
        """When the load began (times in the report count from here)."""

    # ------------------------------------------------------------ setup

    async def setup(self) -> None:
        names = ["notary-office"] + [f"enterprise-{i}" for i in range(1, self.options.nodes)]
        specs = [
            InstitutionSpec(
                name, "notary" if i == 0 else "enterprise", "127.0.0.1", free_port(), free_port()
            )
            for i, name in enumerate(names)
        ]
        self.key = PrivateKey.generate()
        self.genesis = create_consortium(
            self.dir / "consortium",
            specs,
            chain_id="notarychain-soak",
            consensus=ConsensusSettings(),
            families=code_hashes(),
            identities=(
                GenesisIdentity(
                    key=public_key_text(self.key.public_key),
                    institution=names[-1],
                    role="applicant",
                    name="soak writer",
                ),
            ),
        )
        save_private_key(self.dir / "writer.key", self.key)
        for spec in specs:
            proxy = FaultProxy(spec.name)
            port = await proxy.start()
            self.proxies.append(proxy)
            config = self.dir / "consortium" / spec.name / "node.toml"
            self.nodes.append(
                NodeProcess(spec.name, config, f"http://127.0.0.1:{spec.api_port}", spec.peer_port)
            )
            route_through(config, port)

    def start(self, node: NodeProcess) -> None:
        log = (node.config.parent / "node.log").open("ab")
        node.process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "node",
                "run",
                "--config",
                str(node.config),
                "--log-format",
                "text",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self, node: NodeProcess) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    # ------------------------------------------------------------ HTTP

    async def status(
        self, session: aiohttp.ClientSession, node: NodeProcess
    ) -> dict[str, Any] | None:
        try:
            async with session.get(f"{node.api}/v1/status", timeout=aiohttp.ClientTimeout(3)) as r:
                data: dict[str, Any] = await r.json()
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            statuses = [await self.status(session, n) for n in self.nodes]
            if all(s is not None and all(p["reachable"] for p in s["peers"]) for s in statuses):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the nodes did not come up")

    # ------------------------------------------------------------ the writer

    async def writer(self, session: aiohttp.ClientSession, until: float) -> None:
        interval = 1.0 / self.options.rate
        pending: set[asyncio.Task[None]] = set()
        while time.monotonic() < until:
            task = asyncio.create_task(self._write_one(session, until + 60))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(interval)
        if pending:
            await asyncio.wait(pending, timeout=90)

    async def _write_one(self, session: aiohttp.ClientSession, give_up: float) -> None:
        body = TransactionBody(
            self.genesis.chain_id,
            self.key.public_key,
            FAMILY,
            REGISTER,
            encode(Register((Item(os.urandom(32), False, Kind.DOCUMENT, 1, None),))),
            os.urandom(16),
            int(time.time() * 1000) + 100_000,
        )
        tx = sign_transaction(body, self.key)
        data, tx_id = encode(tx), tx.id.hex()
        submitted_at = time.monotonic()
        while time.monotonic() < give_up:
            node = self.rng.choice(self.nodes)
            try:
                async with session.post(
                    f"{node.api}/v1/transactions",
                    data=data,
                    headers={"Content-Type": "application/msgpack"},
                    timeout=aiohttp.ClientTimeout(5),
                ) as r:
                    if r.status not in (200, 202):
                        await asyncio.sleep(0.5)
                        continue
                async with session.get(
                    f"{node.api}/v1/transactions/{tx_id}?wait=10", timeout=aiohttp.ClientTimeout(15)
                ) as r:
                    answer = await r.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                await asyncio.sleep(0.5)
                continue
            if answer.get("state") == "committed":
                self.report.acknowledged.append(tx_id)
                self.report.ack_times.append(time.monotonic())
                self.report.submitted_times.append(submitted_at)
                return
        self.report.problems.append(f"transaction {tx_id[:16]} never acknowledged")

    # ------------------------------------------------------------ the nemesis

    async def nemesis(self, session: aiohttp.ClientSession, until: float) -> None:
        actions = [
            self._crash,
            self._crash_primary,
            self._isolate,
            self._cut_links,
            self._slow_links,
            self._skew,
            self._pause,
        ]
        while True:
            gap_s = self.rng.uniform(*FAULT_GAP_S)
            # Every fault ends while the writer still writes, with time to commit after it:
            # otherwise "commits resumed after each fault" could not be seen for the last.
            if time.monotonic() + gap_s + FAULT_LENGTH_S[1] > until - RESUME_WINDOW_S:
                return
            await asyncio.sleep(gap_s)
            action = self.rng.choice(actions)
            await action(session)

    def _candidates(self) -> list[NodeProcess]:
        return [n for n in self.nodes if n.name not in self.faulty and n.up]

    def _begin(self, node: NodeProcess, kind: str) -> None:
        self.faulty.add(node.name)
        self.report.max_concurrent_faults = max(self.report.max_concurrent_faults, len(self.faulty))
        self.report.faults.append({"kind": kind, "node": node.name, "at": time.monotonic()})
        if len(self.faulty) > self.f:
            self.report.problems.append(f"{len(self.faulty)} nodes faulty at once (f = {self.f})")

    def _end(self, node: NodeProcess) -> None:
        self.faulty.discard(node.name)
        self.report.faults[-1]["until"] = time.monotonic()

    async def _hold(self) -> None:
        await asyncio.sleep(self.rng.uniform(*FAULT_LENGTH_S))

    async def _crash_node(self, node: NodeProcess, kind: str) -> None:
        self._begin(node, kind)
        self.kill(node)
        await self._hold()
        self.start(node)
        self._end(node)

    async def _crash(self, session: aiohttp.ClientSession) -> None:
        if len(self.faulty) < self.f and self._candidates():
            await self._crash_node(self.rng.choice(self._candidates()), "kill -9")

    async def _crash_primary(self, session: aiohttp.ClientSession) -> None:
        """Kill the node that f + 1 nodes name as primary (one node's view may be stale)."""
        if len(self.faulty) >= self.f:
            return
        statuses = await asyncio.gather(*(self.status(session, n) for n in self._candidates()))
        named = collections.Counter(
            s["primary"] % len(self.nodes) for s in statuses if s is not None and s["view_active"]
        )
        if not named:
            return
        index, votes = named.most_common(1)[0]
        primary = self.nodes[index]
        if votes >= self.f + 1 and primary.name not in self.faulty and primary.up:
            await self._crash_node(primary, PRIMARY_KILL)

    async def _isolate(self, session: aiohttp.ClientSession) -> None:
        if len(self.faulty) >= self.f or not self._candidates():
            return
        node = self.rng.choice(self._candidates())
        index = self.nodes.index(node)
        self._begin(node, "partition: cut off")
        for i, proxy in enumerate(self.proxies):
            if i == index:
                for other in self.nodes:
                    proxy.cut_link(other.peer_port)
            else:
                proxy.cut_link(node.peer_port)
        await self._hold()
        for i, proxy in enumerate(self.proxies):
            proxy.cut.discard(node.peer_port)
            if i == index:
                proxy.cut.clear()
        self._end(node)

    async def _cut_links(self, session: aiohttp.ClientSession) -> None:
        """One direction only: this node can no longer reach one peer (asymmetric)."""
        if len(self.faulty) >= self.f or not self._candidates():
            return
        node = self.rng.choice(self._candidates())
        target = self.rng.choice([n for n in self.nodes if n is not node])
        proxy = self.proxies[self.nodes.index(node)]
        self._begin(node, f"one-way cut to {target.name}")
        proxy.cut_link(target.peer_port)
        await self._hold()
        proxy.cut.discard(target.peer_port)
        self._end(node)

    async def _slow_links(self, session: aiohttp.ClientSession) -> None:
        node = self.rng.choice(self.nodes)
        proxy = self.proxies[self.nodes.index(node)]
        for other in self.nodes:
            proxy.delay_ms[other.peer_port] = self.rng.randint(20, 200)
        self.report.faults.append({"kind": "slow links", "node": node.name, "at": time.monotonic()})
        await self._hold()
        proxy.delay_ms.clear()
        self.report.faults[-1]["until"] = time.monotonic()

    async def _skew(self, session: aiohttp.ClientSession) -> None:
        if len(self.faulty) >= self.f or not self._candidates():
            return
        node = self.rng.choice(self._candidates())
        bound = self.genesis.consensus.clock_skew_max_ms // 2
        offset = self.rng.randint(-bound, bound)
        self._begin(node, f"restart with clock skewed {offset} ms")
        self.kill(node)
        route_through(node.config, self.proxies[self.nodes.index(node)].port, offset)
        self.start(node)
        await self._hold()
        self._end(node)

    async def _pause(self, session: aiohttp.ClientSession) -> None:
        """SIGSTOP, then SIGCONT: a frozen virtual machine or a long collector pause. The
        node wakes with its clock past its timers and its peers' news still queued."""
        if len(self.faulty) >= self.f or not self._candidates():
            return
        node = self.rng.choice(self._candidates())
        process = node.process
        assert process is not None
        self._begin(node, "pause (SIGSTOP)")
        process.send_signal(signal.SIGSTOP)
        try:
            await self._hold()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
        self._end(node)

    # ------------------------------------------------------------ the end

    async def heal_and_check(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        for proxy in self.proxies:
            proxy.heal()
        for node in self.nodes:
            if not node.up:
                self.start(node)
        heights = await self._settle(session)
        await self._check_acknowledged(session)
        await self._check_chains(session, heights)
        return self._summary(heights)

    async def _settle(self, session: aiohttp.ClientSession) -> list[int]:
        deadline = time.monotonic() + SETTLE_S
        last: list[int] = []
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            statuses = [await self.status(session, n) for n in self.nodes]
            heights = [-1 if s is None else int(s["height"]) for s in statuses]
            if heights != last:
                last, stable_since = heights, time.monotonic()
            elif len(set(heights)) == 1 and heights[0] >= 0 and time.monotonic() - stable_since > 3:
                return heights
            await asyncio.sleep(0.5)
        self.report.problems.append(f"nodes did not settle on one height: {last}")
        return last

    async def _check_acknowledged(self, session: aiohttp.ClientSession) -> None:
        semaphore = asyncio.Semaphore(32)

        async def on_node(node: NodeProcess, tx_id: str) -> None:
            async with semaphore:
                try:
                    async with session.get(f"{node.api}/v1/transactions/{tx_id}") as r:
                        state = (await r.json()).get("state")
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    state = "unreachable"
            if state != "committed":
                self.report.problems.append(f"{tx_id[:16]} is {state} on {node.name}")

        await asyncio.gather(*(on_node(n, t) for n in self.nodes for t in self.report.acknowledged))

    async def _check_chains(self, session: aiohttp.ClientSession, heights: list[int]) -> None:
        top = min(heights) if heights else 0
        semaphore = asyncio.Semaphore(32)

        async def block_hash(node: NodeProcess, height: int) -> str | None:
            async with semaphore:
                try:
                    async with session.get(f"{node.api}/v1/blocks/{height}") as r:
                        return str((await r.json())["hash"])
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    return None

        for height in range(1, top + 1):
            hashes = await asyncio.gather(*(block_hash(n, height) for n in self.nodes))
            if len(set(hashes)) != 1 or hashes[0] is None:
                self.report.problems.append(f"chains differ at height {height}")
                break
        roots = set()
        for node in self.nodes:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                async with session.get(f"{node.api}/v1/checkpoints/latest") as r:
                    checkpoint = (await r.json())["checkpoint"]
                    roots.add((checkpoint["height"], checkpoint["state_root"]))
        if len({root for height, root in roots if height == top}) > 1:
            self.report.problems.append("state roots differ at the same height")

    def _summary(self, heights: list[int]) -> dict[str, Any]:
        times = sorted(self.report.ack_times)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        longest = max(gaps, default=0.0)
        # Where the longest pause began, to set against the fault log's times.
        longest_at = times[gaps.index(longest)] - self.started if gaps else 0.0
        for fault in self.report.faults:
            end = fault.get("until", fault["at"])
            if not any(t > end for t in times):
                self.report.problems.append(
                    f"commits did not resume after {fault['kind']} on {fault['node']} "
                    f"(ended {end - self.started:.1f} s in)"
                )
        kinds: dict[str, int] = {}
        for fault in self.report.faults:
            kind = str(fault["kind"]).split(" to ")[0].split(" skewed")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "duration_s": self.options.duration_s,
            "nodes": self.options.nodes,
            "acknowledged": len(self.report.acknowledged),
            "height": max(heights, default=0),
            "faults": kinds,
            "max_concurrent_faults": self.report.max_concurrent_faults,
            "longest_pause_s": round(longest, 2),
            "longest_pause_from_s": round(longest_at, 2),
            "primary_kill_resume_s": self._primary_kill_resumes(),
            "fault_log": [
                {
                    "kind": fault["kind"],
                    "node": fault["node"],
                    "from_s": round(fault["at"] - self.started, 2),
                    "until_s": round(fault.get("until", fault["at"]) - self.started, 2),
                }
                for fault in self.report.faults
            ],
            "problems": self.report.problems[:20],
            "ok": not self.report.problems,
        }

    def _primary_kill_resumes(self) -> list[float | None]:
        """For each kill of the primary, in order: the time until a transaction submitted
        after the kill was acknowledged as committed (the view change and a new block, end
        to end), or None if none was."""
        spans = list(zip(self.report.submitted_times, self.report.ack_times, strict=True))
        resumes: list[float | None] = []
        for fault in self.report.faults:
            if fault["kind"] == PRIMARY_KILL:
                after = [acked for submitted, acked in spans if submitted > fault["at"]]
                resumes.append(round(min(after) - fault["at"], 2) if after else None)
        return resumes

    # ------------------------------------------------------------ running

    async def run(self) -> dict[str, Any]:
        await self.setup()
        for node in self.nodes:
            self.start(node)
        try:
            async with aiohttp.ClientSession() as session:
                await self.wait_ready(session)
                self.started = time.monotonic()
                until = self.started + self.options.duration_s
                await asyncio.gather(self.writer(session, until), self.nemesis(session, until))
                return await self.heal_and_check(session)
        finally:
            for node in self.nodes:
                if node.up and node.process is not None:
                    node.process.send_signal(signal.SIGTERM)
            for node in self.nodes:
                if node.process is not None:
                    try:
                        node.process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        node.process.kill()
                        node.process.wait()
            for proxy in self.proxies:
                await proxy.stop()


def run_soak(options: SoakOptions) -> dict[str, Any]:
    """Run a soak; its nodes' data and logs are removed if it passed, kept to inspect if not."""
    soak = Soak(options)
    summary: dict[str, Any] | None = None
    try:
        summary = asyncio.run(soak.run())
    finally:
        if summary is not None and summary["ok"]:
            shutil.rmtree(soak.dir, ignore_errors=True)
        else:
            print(f"notarychain-node soak: node data and logs kept in {soak.dir}", file=sys.stderr)
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
