"""One seeded run: real replicas on a simulated network, clock and disks, with a nemesis.

A run has two phases (as in TigerBeetle's VOPR). Until `heal_at_ms` the
swarm of faults chosen by the seed is active: drops, duplicates, delays,
clogged links, symmetric and asymmetric partitions, crashes (some losing the
unsynced tail of a step), clock skew, and the Byzantine behaviours of up to f
replicas; with `execution_delay_max_ms`, executors of different speeds too.
Safety is checked after every step throughout. Then every crashed host
restarts, the network heals (Byzantine replicas keep misbehaving), and every
transaction a client submitted must be executed by every honest replica
within `liveness_bound_ms` (plus, with slow executors, the time the slowest
needs to execute a block per transaction).
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consensus.config import Parameters, ReplicaConfig
from consensus.crypto import Ed25519Signer, FastSigner, Signer, ed25519_verify, fast_verifier
from consensus.events import (
    BlocksFetched,
    CommittedBlock,
    Diverged,
    EpochScheduled,
    EpochStarted,
    Event,
    Executed,
    FetchFailed,
    MessageReceived,
    Output,
    Rejoined,
    RequestsReceived,
    Tick,
    ViewChanged,
)
from consensus.messages import (
    Batch,
    BatchHeader,
    Commit,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    Proposal,
    Status,
    signing_bytes,
)
from consensus.replica import Replica
from consensus.simulate.checker import Checker
from consensus.simulate.host import Behaviour, Host
from consensus.simulate.rng import Rng
from consensus.types import ReplicaId, SeqNo, View
from ledger.block import transactions_root
from ledger.checkpoint import CheckpointCertificate
from ledger.keys import PrivateKey, VerifyFn
from ledger.tx import Transaction, TransactionBody, sign_transaction
from ledger.validators import ValidatorSet

CHAIN_ID = "sim"
FETCH_CHUNK_MAX = 32
TICK_GAP_MIN_MS = 5
CHECK_INTERVAL_MS = 250
EVENTS_MAX = 2_000_000
"""A run that needs more events than this is a message storm: reported as a liveness failure."""
LIE_HEIGHTS = 1_000_000
"""How far ahead a forging replica claims to be in its Status."""

# Event kinds in the queue.
DELIVER, TICK, SUBMIT, FAULT, RESTART, FETCH, ANSWER, HEAL, CHECK, UNBLOCK, SCRIPTED, EXECUTE = (
    range(12)
)


@dataclass(frozen=True, slots=True)
class Scripted:
    """One fault of a scripted scenario: at `at_ms`, do `action` to `hosts`.

    Actions: "crash" (between steps), "crash_mid_step" (inside the host's next
    step, losing its unsynced tail), "lose_records" (crash, and come back from a
    backup without consensus records), "restart", "isolate" (cut the hosts from
    all others), "partition" (cut the hosts from the rest), "heal_links".
    """

    at_ms: int
    action: str
    hosts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    nodes: int = 4
    faults: str = "swarm"
    """"none", "swarm" (faults chosen by the seed) or "scripted" (`script` only)."""
    byzantine: int = 0
    real_crypto: bool = False
    liveness_bound_ms: int = 60_000
    replica_class: type[Replica] = Replica
    script: tuple[Scripted, ...] = ()
    heal_at_ms: int = 0
    """For scripted runs: when the network heals and liveness starts to count."""
    behaviours: tuple[tuple[int, str], ...] = ()
    """Explicit Byzantine replicas as (replica id, behaviour value); overrides `byzantine`."""
    reconfigure: tuple[int, tuple[int, ...]] | None = None
    """(height, members): after executing that height every replica schedules a new
    validator set, made of these keys (0..nodes-1 are the genesis validators, higher
    numbers are joiners, which run from the start as followers)."""
    execution_delay_max_ms: int = 0
    """If set, each host's executor takes its own time per block, up to this (some hosts
    none), as a node's execution thread does; 0: every block executes in the step that
    delivers it."""


@dataclass(slots=True)
class RunResult:
    seed: int
    violations: list[str]
    liveness_failure: str | None
    commits: int
    view_changes: int
    state_transfers: int
    marks: Counter[str]
    trace_hash: str
    virtual_ms: int

    @property
    def ok(self) -> bool:
        return not self.violations and self.liveness_failure is None


def _parameters(rng: Rng) -> Parameters:
    interval = rng.choice([1, 1, 2, 4])
    return Parameters(
        batch_size_max=rng.choice([1, 4, 64]),
        window_size=16,
        in_flight_max=rng.choice([1, 2, 4]),
        checkpoint_interval=interval,
        view_change_timeout_ms=800,
        view_change_timeout_max_ms=6_400,
        request_timeout_ms=1_500,
        resend_interval_ms=250,
        status_interval_ms=500,
        clock_skew_max_ms=1_000,
        tx_lifetime_max_ms=120_000,
        fetch_timeout_ms=1_000,
    )


class World:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        root = Rng(config.seed)
        self.rng = root.fork("world")
        self.net_rng = root.fork("network")
        self.fault_rng = root.fork("faults")
        self.now = 0
        self.queue: list[tuple[int, int, int, Any, Any]] = []
        self.counter = 0
        self.trace = hashlib.sha256(f"{config}".encode())
        self.params = _parameters(root.fork("parameters"))
        self.reconfigure = config.reconfigure or self._swarm_reconfiguration(
            root.fork("reconfigure")
        )
        if self.reconfigure is not None:
            # One transaction per block, so the chain reaches the change's height.
            self.params = dataclasses.replace(self.params, batch_size_max=1)
        self._make_keys(root.fork("keys"))
        self.checker = Checker(self.verify)
        self.marks: Counter[str] = Counter()
        self._retired_marks: Counter[str] = Counter()  # marks of replicas lost in crashes
        self.views_installed: set[int] = set()
        self.drop_probability = 0.0
        self.duplicate_probability = 0.0
        self.blocked: set[tuple[int, int]] = set()
        self.twin_blocked: set[tuple[int, int]] = set()
        self.clogged: dict[tuple[int, int], tuple[int, int]] = {}
        self.faults_enabled: list[str] = []
        self.healed = config.faults == "none"
        self.heal_at_ms = 0
        self.finished = False
        self.liveness_failure: str | None = None
        self._make_hosts(root.fork("hosts"))
        self._make_workload(root.fork("workload"))
        if config.execution_delay_max_ms:
            self._slow_executors(root.fork("execution"), config.execution_delay_max_ms)

    # ------------------------------------------------------------ setup

    def _swarm_reconfiguration(self, rng: Rng) -> tuple[int, tuple[int, ...]] | None:
        """In a quarter of the swarm runs without Byzantine replicas, the validator set
        changes: an institution joins, leaves, or is replaced, from some height on."""
        config = self.config
        if config.faults != "swarm" or config.byzantine or config.behaviours:
            return None
        if not rng.chance(0.25):
            return None
        n = config.nodes
        members = list(range(n))
        change = rng.below(3)
        if change == 0 or n <= 4:
            members.append(n)
        if change == 1 and n > 4:
            members.remove(rng.below(n))
        if change == 2:
            members[rng.below(len(members))] = n + 1
        return rng.between(2, 8), tuple(members)

    def _make_keys(self, rng: Rng) -> None:
        reconfigure = self.reconfigure
        n = max(self.config.nodes, 1 + max(reconfigure[1], default=0) if reconfigure else 0)
        signers: list[Signer]
        if self.config.real_crypto:
            keys = [PrivateKey.from_seed(rng.bytes(32)) for _ in range(n)]
            signers = [Ed25519Signer(k) for k in keys]
            self.client_keys = [PrivateKey.from_seed(rng.bytes(32)) for _ in range(3)]
            self.verify: VerifyFn = ed25519_verify
            self.client_signers: list[Any] = self.client_keys
        else:
            secrets = [rng.bytes(32) for _ in range(n + 3)]
            fast = [FastSigner(s) for s in secrets]
            signers = list(fast[:n])
            self.client_signers = fast[n:]
            self.verify = fast_verifier(
                {f.public_key: s for f, s in zip(fast, secrets, strict=True)}
            )
        self.signers = signers
        self.validators = ValidatorSet(0, tuple(s.public_key for s in signers[: self.config.nodes]))
        self.key_index = {s.public_key: i for i, s in enumerate(signers)}

    def _validate_request(self, tx: Transaction) -> str | None:
        if not self.verify(tx.body.sender, tx.signature, tx.body.signing_bytes()):
            return "bad client signature"
        return None

    def _make_hosts(self, rng: Rng) -> None:
        n = self.config.nodes
        byzantine = rng.shuffled(range(n))[: self.config.byzantine]
        if byzantine and 0 not in byzantine and rng.chance(0.5):
            byzantine[0] = 0  # the first primary: where a Byzantine replica hurts most
        # Twins first: two honest copies in different partitions produce every
        # equivocation and double vote, which is what exposes a weak quorum rule.
        choices = (
            [Behaviour.TWIN] * 3
            + [Behaviour.EQUIVOCATE] * 2
            + [
                Behaviour.FORGE,
                Behaviour.WRONG_CHECKPOINT,
                Behaviour.SILENT,
            ]
        )
        chosen = {r: Behaviour(b) for r, b in self.config.behaviours}
        self.hosts: list[Host] = []
        for replica_id in range(n):
            if self.config.behaviours:
                behaviour = chosen.get(replica_id, Behaviour.HONEST)
            elif replica_id in byzantine:
                behaviour = rng.choice(choices)
            else:
                behaviour = Behaviour.HONEST
            self.hosts.append(Host(len(self.hosts), replica_id, behaviour))
            if behaviour is Behaviour.TWIN:
                self.hosts.append(Host(len(self.hosts), replica_id, behaviour))
        for joiner in range(n, len(self.signers)):
            self.hosts.append(Host(len(self.hosts), joiner, Behaviour.HONEST))
        for host in self.hosts:
            self.marks[f"byzantine_{host.behaviour.value}"] += (
                host.behaviour is not Behaviour.HONEST
            )
            host.replica = self._new_replica(host)
            self._schedule_tick(host)
        self._split_twins(rng)

    def _slow_executors(self, rng: Rng, delay_max_ms: int) -> None:
        """Executors of different speeds: some keep up within the step, some fall behind."""
        for host in self.hosts:
            speed = rng.below(3)  # 0: keeps up, 1: up to a tenth of the maximum, 2: up to it
            if speed:
                slowest_ms = delay_max_ms // 10 if speed == 1 else delay_max_ms
                host.execution_delay_ms = rng.between(1, max(1, slowest_ms))
            self.marks["slow_executor"] += host.execution_delay_ms > 0

    def _new_replica(self, host: Host) -> Replica:
        member = host.replica_id < self.config.nodes
        replica_id = ReplicaId(host.replica_id) if member else None
        config = ReplicaConfig(CHAIN_ID, self.validators, replica_id, self.params)
        restored = host.disk.restored() if host.restarts else None
        return self.config.replica_class(
            config, self.signers[host.replica_id], self.verify, self._validate_request, restored
        )

    def _split_twins(self, rng: Rng) -> None:
        """Each twin talks to one half of the others until the network heals.

        The halves are drawn again now and then (Twins: a new partition per
        round), so the twins' conflicting votes reach different replicas over
        time, which is what exposes a quorum rule that is too weak.
        """
        self.twin_blocked.clear()
        for replica_id in range(self.config.nodes):
            twins = [h for h in self.hosts if h.replica_id == replica_id]
            if len(twins) != 2:
                continue
            others = rng.shuffled([h.index for h in self.hosts if h.replica_id != replica_id])
            half = len(others) // 2
            for twin, blocked in ((twins[0], others[half:]), (twins[1], others[:half])):
                for other in blocked:
                    self.twin_blocked.add((twin.index, other))
                    self.twin_blocked.add((other, twin.index))

    def _make_workload(self, rng: Rng) -> None:
        if self.config.faults == "swarm":
            self.heal_at_ms = rng.between(3_000, 12_000)
            kinds = ["drop", "duplicate", "delay", "partition", "asymmetric", "crash", "skew"]
            self.faults_enabled = [k for k in kinds if rng.chance(0.5)]
            if "drop" in self.faults_enabled:
                self.drop_probability = rng.choice([0.01, 0.05, 0.2])
            if "duplicate" in self.faults_enabled:
                self.duplicate_probability = rng.choice([0.02, 0.1])
            self._push(rng.between(50, 500), FAULT, None, None)
            self._push(self.heal_at_ms, HEAL, None, None)
        elif self.config.faults == "scripted":
            self.heal_at_ms = self.config.heal_at_ms
            for fault in self.config.script:
                self._push(fault.at_ms, SCRIPTED, fault, None)
            self._push(self.heal_at_ms, HEAL, None, None)
        count = rng.between(10, 40)
        if self.reconfigure is not None:
            count = self.reconfigure[0] + self.params.window_size + rng.between(10, 30)
        self.transactions: list[Transaction] = []
        self.executed_at: list[set[int]] = []
        last_submit = self.heal_at_ms + 3_000
        for index in range(count):
            signer = rng.choice(self.client_signers)
            at = rng.between(0, last_submit)
            body = TransactionBody(
                CHAIN_ID,
                signer.public_key,
                "sim",
                "put",
                rng.bytes(rng.between(0, 64)),
                rng.bytes(16),
                at + 100_000,
            )
            tx = (
                sign_transaction(body, signer)
                if isinstance(signer, PrivateKey)
                else dataclasses.replace(
                    Transaction(body, bytes(64)), signature=signer.sign(body.signing_bytes())
                )
            )
            self.transactions.append(tx)
            self.executed_at.append(set())
            self._push(at, SUBMIT, index, None)
        self.tx_index = {tx.id: i for i, tx in enumerate(self.transactions)}
        self._push(last_submit, CHECK, None, None)

    # ------------------------------------------------------------ the loop

    def _push(self, at: int, kind: int, a: Any, b: Any) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (at, self.counter, kind, a, b))

    def run(self) -> RunResult:
        end = self._liveness_deadline()
        handlers: dict[int, Callable[[Any, Any], None]] = {
            DELIVER: self._on_deliver,
            TICK: self._on_tick,
            SUBMIT: self._on_submit,
            FAULT: self._on_fault,
            RESTART: self._on_restart,
            FETCH: self._on_fetch,
            ANSWER: self._on_answer,
            HEAL: self._on_heal,
            CHECK: self._on_check,
            UNBLOCK: self._on_unblock,
            SCRIPTED: self._on_scripted,
            EXECUTE: self._on_execute,
        }
        events = 0
        while self.queue and not self.finished:
            at, _, kind, a, b = heapq.heappop(self.queue)
            if at > end:
                end = self._liveness_deadline()  # the chain may have grown meanwhile
                if at > end:
                    break
            events += 1
            if events > EVENTS_MAX:
                self.liveness_failure = f"liveness: more than {EVENTS_MAX} events by t={at}ms"
                break
            self.now = at
            self.trace.update(b"%d:%d:" % (at, kind))
            handlers[kind](a, b)
        if not self.finished and self.liveness_failure is None:
            self.liveness_failure = self._missing_description(end)
        return self._result()

    def _liveness_deadline(self) -> int:
        """When every submitted transaction must be executed everywhere.

        A slow executor needs its delay for every block of the chain whatever the network
        does (at least a block per transaction, more with the empty blocks of view
        changes), so liveness is owed only after that too.
        """
        deadline = self.heal_at_ms + 3_000 + self.config.liveness_bound_ms
        slowest_ms = max(host.execution_delay_ms for host in self.hosts)
        if slowest_ms:
            chain = max((h.replica.last_delivered for h in self.hosts if h.replica), default=0)
            deadline += slowest_ms * max(chain, len(self.transactions))
        return deadline

    def _result(self) -> RunResult:
        marks = Counter(self.marks)
        for host in self.hosts:
            if host.replica is not None:
                marks.update(host.replica.marks)
        marks.update(self._retired_marks)
        honest = [h for h in self.hosts if h.honest]
        commits = max((h.disk.app.executed_height for h in honest), default=0)
        return RunResult(
            seed=self.config.seed,
            violations=list(self.checker.violations),
            liveness_failure=self.liveness_failure,
            commits=commits,
            view_changes=len(self.views_installed),
            state_transfers=marks["state_transfer"],
            marks=marks,
            trace_hash=self.trace.hexdigest(),
            virtual_ms=self.now,
        )

    # ------------------------------------------------------------ hosts

    def _step(self, host: Host, event: Event) -> None:
        replica = host.replica
        if replica is None:
            return
        out = replica.step(event, self.now + host.skew_ms)
        self._apply(host, out)

    def _apply(self, host: Host, out: Output) -> None:
        disk = host.disk
        if host.crash_mid_step and (out.persist or out.send or out.deliver):
            keep = self.fault_rng.below(len(out.persist) + 1)
            disk.records.extend(out.persist[:keep])
            self.marks["crash_lost_unsynced_tail"] += keep < len(out.persist)
            self._crash(host)
            return
        for item in out.persist:
            disk.records.append(item)
            if isinstance(item, CheckpointCertificate):
                disk.certificates[item.checkpoint.height] = item
        for target, message in out.send:
            self._send(host, target, message)
        delivered = out.deliver if host.execution_delay_ms == 0 else []
        for committed in out.deliver[len(delivered) :]:
            host.to_execute.append(committed)
            host.executor_free_ms = max(host.executor_free_ms, self.now) + host.execution_delay_ms
            self._push(host.executor_free_ms, EXECUTE, host.index, host.restarts)
        executed = [self._execute(host, committed) for committed in delivered]
        scheduled = self._approve_epoch(host, delivered)
        for fetch in out.fetch:
            request = (fetch.peer, fetch.from_height, fetch.until_height)
            self._push(self.now + self._delay(), FETCH, host.index, request)
        self._observe(host, out)
        self._report_executed(host, executed, scheduled)
        self._schedule_tick(host)

    def _execute(self, host: Host, committed: CommittedBlock) -> Executed:
        """Execute a delivered block: the block and its state become durable together."""
        host.disk.blocks[committed.block.header.height] = committed
        result = host.disk.app.execute(committed)
        if host.honest:
            self._on_honest_delivery(host, committed)
            self.checker.on_executed(self.now, host.index, result)
        elif host.behaviour is Behaviour.WRONG_CHECKPOINT:
            wrong = hashlib.sha256(b"wrong" + result.state_root).digest()
            result = dataclasses.replace(result, state_root=wrong)
        return result

    def _on_execute(self, index: int, incarnation: int) -> None:
        """A slow executor finishes the oldest block it was given (unless it crashed since)."""
        host = self.hosts[index]
        if not host.up or incarnation != host.restarts or not host.to_execute:
            return
        committed = host.to_execute.popleft()
        result = self._execute(host, committed)
        self._report_executed(host, [result], self._approve_epoch(host, [committed]))

    def _report_executed(
        self, host: Host, results: list[Executed], scheduled: EpochScheduled | None
    ) -> None:
        """Give the replica its executor's results, then any change of set they approved."""
        for result in results:
            self._step(host, result)
        if scheduled is not None:
            self._step(host, scheduled)

    def epoch_end(self) -> int | None:
        """The last height of the genesis validator set, if the run changes the set."""
        if self.reconfigure is None:
            return None
        return self.reconfigure[0] + self.params.window_size + 2

    def _approve_epoch(self, host: Host, executed: list[CommittedBlock]) -> EpochScheduled | None:
        """The simulated governance: executing the chosen height approves a new set, which
        the host keeps on its disk (as a node finds it again in its state)."""
        end = self.epoch_end()
        if self.reconfigure is None or end is None:
            return None
        height, members = self.reconfigure
        if not any(c.block.header.height == height for c in executed):
            return None
        keys = tuple(self.signers[i].public_key for i in members)
        host.disk.scheduled = EpochScheduled(end, ValidatorSet(end + 1, keys))
        return host.disk.scheduled

    def _observe(self, host: Host, out: Output) -> None:
        for notice in out.notices:
            if isinstance(notice, ViewChanged) and notice.active and host.honest:
                self.views_installed.add(notice.view)
            elif isinstance(notice, Rejoined):
                host.disk.rejoining = False
            elif isinstance(notice, EpochStarted):
                end = notice.validators.from_height - 1
                if host.honest and host.disk.app.executed_height < end:
                    self.checker.violate(
                        self.now,
                        f"host {host.index} started epoch {notice.epoch} having executed "
                        f"{host.disk.app.executed_height} of the {end} blocks before it",
                    )
                host.disk.start_epoch(notice.epoch, notice.validators)
                self.marks["epoch_started_hosts"] += 1
            elif isinstance(notice, Diverged) and host.honest:
                self.checker.violate(self.now, f"host {host.index} diverged: {notice.reason}")

    def _on_honest_delivery(self, host: Host, committed: CommittedBlock) -> None:
        self.checker.on_deliver(self.now, host.index, committed)
        self.trace.update(b"%d" % host.index + committed.block.hash)
        for tx in committed.block.transactions:
            index = self.tx_index.get(tx.id)
            if index is not None:
                self.executed_at[index].add(host.index)

    def _schedule_tick(self, host: Host) -> None:
        if host.replica is None:
            return
        at = max(host.replica.next_deadline_ms() - host.skew_ms, self.now + TICK_GAP_MIN_MS)
        if host.tick_at < self.now or at < host.tick_at:
            host.tick_at = at
            self._push(at, TICK, host.index, None)

    def _on_tick(self, index: int, _: Any) -> None:
        host = self.hosts[index]
        if host.tick_at != self.now:
            return  # superseded by an earlier tick
        host.tick_at = -1
        self._step(host, Tick())
        if host.behaviour is Behaviour.FORGE and host.up:
            self._forge(host)
        self._schedule_tick(host)

    def _crash(self, host: Host) -> None:
        if host.replica is not None:
            self._retired_marks.update(host.replica.marks)
        host.replica = None
        host.crash_mid_step = False
        host.tick_at = -1
        host.to_execute.clear()  # delivered, not executed: in memory only
        host.executor_free_ms = 0
        self.marks["crash"] += 1

    def _lose_records(self, host: Host) -> None:
        """The disk is replaced by a backup: blocks and state kept, consensus records gone."""
        self._crash(host)
        host.disk.records = []
        host.disk.rejoining = True
        self.marks["records_lost"] += 1

    def _on_restart(self, index: int, _: Any) -> None:
        host = self.hosts[index]
        if host.up:
            return
        host.restarts += 1
        host.replica = self._new_replica(host)
        replica = host.replica
        identity = (host.replica_id, replica.epoch)
        self.checker.on_restart(self.now, index, identity, replica.view, host.disk.rejoining)
        self.marks["restart"] += 1
        self._schedule_tick(host)

    # ------------------------------------------------------------ network

    def _delay(self) -> int:
        return self.net_rng.between(1, 5)

    def _link_up(self, src: int, dst: int) -> bool:
        return (src, dst) not in self.blocked and (src, dst) not in self.twin_blocked

    def _send(self, host: Host, target: int | None, message: Message) -> None:
        """Deliver to the sender's validators: `target` indexes its current validator set."""
        if host.behaviour is Behaviour.SILENT:
            return
        replica = host.replica
        assert replica is not None
        if host.honest:
            self.checker.on_sent(self.now, (host.replica_id, replica.epoch), message)
        if (
            host.behaviour is Behaviour.EQUIVOCATE
            and target is None
            and isinstance(message, Proposal)
        ):
            self._equivocate(host, message)
            return
        if host.behaviour is Behaviour.FORGE and isinstance(message, Status):
            # Heights no one has: f + 1 peers must agree before one moves anything.
            lie = dataclasses.replace(
                message,
                executed_height=message.executed_height + LIE_HEIGHTS,
                stable_height=message.stable_height + LIE_HEIGHTS,
            )
            message = self._sign(host, lie)
            self.marks["lying_status_sent"] += 1
        keys = replica.keys if target is None else (replica.keys[target],)
        wanted = {self.key_index[k] for k in keys}
        for other in self.hosts:
            if other.replica_id != host.replica_id and other.replica_id in wanted:
                self._transmit(host.index, other.index, message)

    def _transmit(self, src: int, dst: int, message: Any) -> None:
        if not self._link_up(src, dst):
            return
        rng = self.net_rng
        if not self.healed and self.drop_probability and rng.chance(self.drop_probability):
            return
        delay = self._delay()
        clog = self.clogged.get((src, dst))
        if clog is not None and clog[0] > self.now:
            delay += clog[1]
        self._push(self.now + delay, DELIVER, dst, message)
        if (
            not self.healed
            and self.duplicate_probability
            and rng.chance(self.duplicate_probability)
        ):
            self._push(self.now + delay + rng.between(1, 50), DELIVER, dst, message)

    def _on_deliver(self, index: int, message: Message) -> None:
        host = self.hosts[index]
        if host.behaviour is Behaviour.FORGE and len(host.heard) < 64:
            host.heard.append(message)
        self._step(host, MessageReceived(message))

    def _on_fetch(self, index: int, request: tuple[bytes, int, int | None]) -> None:
        peer_key, from_height, until_height = request
        peer_id = self.key_index[peer_key]
        peers = [h for h in self.hosts if h.replica_id == peer_id and h.up]
        if not peers:
            return
        peer = self.rng.choice(peers)
        if not (self._link_up(index, peer.index) and self._link_up(peer.index, index)):
            return
        if peer.behaviour is Behaviour.SILENT:
            return
        served = peer.disk.serve_fetch(from_height, FETCH_CHUNK_MAX, until_height)
        answer: Event
        if served is None:
            answer = FetchFailed(peer_key)
        else:
            certificate, blocks = served
            if peer.behaviour is Behaviour.FORGE and blocks[0].block.transactions:
                tampered = dataclasses.replace(blocks[0].block, transactions=())
                blocks = (dataclasses.replace(blocks[0], block=tampered), *blocks[1:])
                self.marks["forged_fetch_answer"] += 1
            answer = BlocksFetched(peer_key, certificate, blocks)
        self._push(self.now + 2 * self._delay(), ANSWER, index, answer)

    def _on_answer(self, index: int, answer: Event) -> None:
        self._step(self.hosts[index], answer)

    # ------------------------------------------------------------ clients

    def _on_submit(self, index: int, _: Any) -> None:
        if self.finished or len(self.executed_at[index]) >= self.validators.quorum:
            return
        tx = self.transactions[index]
        self.checker.submitted.setdefault(tx.id, self.now)
        up = [h for h in self.hosts if h.up]
        if up:
            host = self.rng.choice(up)
            self._step(host, RequestsReceived((tx,), from_client=True))
        self._push(self.now + self.rng.between(1_500, 3_000), SUBMIT, index, None)

    def _on_check(self, _: Any, __: Any) -> None:
        if self.healed and self._missing_description(self.now) is None:
            self.finished = True
            return
        self._push(self.now + CHECK_INTERVAL_MS, CHECK, None, None)

    def _missing_description(self, at: int) -> str | None:
        honest = {h.index for h in self.hosts if h.honest}
        missing = [i for i, hosts in enumerate(self.executed_at) if not honest <= hosts]
        if not missing:
            return None
        first = missing[0]
        lacking = sorted(honest - self.executed_at[first])
        return (
            f"liveness: {len(missing)} of {len(self.transactions)} transactions not executed "
            f"by every honest host by t={at}ms (first: #{first}, lacking hosts {lacking})"
        )

    # ------------------------------------------------------------ nemesis

    def _on_fault(self, _: Any, __: Any) -> None:
        if self.healed:
            return
        rng = self.fault_rng
        if self.twin_blocked and rng.chance(0.5):
            self._split_twins(rng)
            self.marks["twins_split_again"] += 1
        active = [k for k in self.faults_enabled if k not in ("drop", "duplicate")]
        if active:
            kind = rng.choice(active)
            getattr(self, f"_fault_{kind}")(rng)
        self._push(self.now + rng.between(100, 1_500), FAULT, None, None)

    def _block(self, pairs: list[tuple[int, int]], duration_ms: int) -> None:
        for pair in pairs:
            self.blocked.add(pair)
        self._push(self.now + duration_ms, UNBLOCK, pairs, None)

    def _on_unblock(self, pairs: list[tuple[int, int]], _: Any) -> None:
        for pair in pairs:
            self.blocked.discard(pair)

    def _fault_partition(self, rng: Rng) -> None:
        order = rng.shuffled([h.index for h in self.hosts])
        cut = rng.between(1, len(order) - 1)
        left, right = order[:cut], order[cut:]
        pairs = [(a, b) for a in left for b in right] + [(b, a) for a in left for b in right]
        self.marks["fault_partition"] += 1
        self._block(pairs, rng.between(300, 4_000))

    def _fault_asymmetric(self, rng: Rng) -> None:
        hosts = [h.index for h in self.hosts]
        pairs = []
        for _ in range(rng.between(1, 3)):
            src = rng.choice(hosts)
            dst = rng.choice([h for h in hosts if h != src])
            pairs.append((src, dst))
        self.marks["fault_asymmetric"] += 1
        self._block(pairs, rng.between(300, 4_000))

    def _fault_delay(self, rng: Rng) -> None:
        hosts = [h.index for h in self.hosts]
        src = rng.choice(hosts)
        dst = rng.choice([h for h in hosts if h != src])
        self.clogged[(src, dst)] = (self.now + rng.between(300, 4_000), rng.between(50, 1_000))
        self.marks["fault_clogged_link"] += 1

    def _fault_crash(self, rng: Rng) -> None:
        honest = [h for h in self.hosts if h.honest]
        down = sum(1 for h in honest if not h.up)
        candidates = [h for h in honest if h.up and not h.crash_mid_step]
        if down >= self.validators.f or not candidates:
            return
        host = rng.choice(candidates)
        roll = rng.below(10)
        # A replica that lost its records cannot vote until it rejoins, so it counts
        # against f with the Byzantine ones: only when they leave room for it.
        rejoining = sum(1 for h in honest if h.disk.rejoining)
        if roll == 9 and self.config.byzantine + rejoining < self.validators.f:
            self._lose_records(host)
        elif roll < 5:
            host.crash_mid_step = True  # crashes inside its next step, losing the unsynced tail
        else:
            self._crash(host)
        self._push(self.now + rng.between(200, 4_000), RESTART, host.index, None)

    def _fault_skew(self, rng: Rng) -> None:
        # Honest clocks stay within half the bound of true time, so within the bound of each other.
        bound = self.params.clock_skew_max_ms // 2 - 10
        host = rng.choice([h for h in self.hosts if h.honest])
        host.skew_ms = rng.between(-bound, bound)
        self.marks["fault_clock_skew"] += 1

    def _on_scripted(self, fault: Scripted, _: Any) -> None:
        everyone = [h.index for h in self.hosts]
        if fault.action in ("isolate", "partition"):
            rest = [h for h in everyone if h not in fault.hosts]
            for a in fault.hosts:
                others = rest if fault.action == "partition" else [h for h in everyone if h != a]
                for b in others:
                    self.blocked.update({(a, b), (b, a)})
            return
        if fault.action == "heal_links":
            self.blocked.clear()
            return
        for index in fault.hosts:
            host = self.hosts[index]
            if fault.action == "crash":
                self._crash(host)
            elif fault.action == "crash_mid_step":
                host.crash_mid_step = True
            elif fault.action == "restart":
                self._on_restart(index, None)
            elif fault.action == "lose_records":
                self._lose_records(host)
            else:
                raise ValueError(f"unknown scripted action {fault.action!r}")

    def _on_heal(self, _: Any, __: Any) -> None:
        self.healed = True
        self.blocked.clear()
        self.twin_blocked.clear()
        self.clogged.clear()
        for host in self.hosts:
            host.crash_mid_step = False
            if not host.up:
                self._on_restart(host.index, None)

    # ------------------------------------------------------------ Byzantine acts

    def _equivocate(self, host: Host, proposal: Proposal) -> None:
        """Send one batch to half of the others and a different one to the rest."""
        batch = proposal.batch
        header = batch.header
        transactions = batch.transactions[:-1]
        other = Batch(
            BatchHeader(
                header.chain_id,
                header.height,
                header.view,
                header.time_ms + 1,
                transactions_root(transactions),
                header.proposer,
            ),
            transactions,
        )
        pre_prepare = proposal.pre_prepare
        forged = self._sign(
            host,
            PrePrepare(pre_prepare.view, pre_prepare.seq, other.digest, pre_prepare.replica, b""),
        )
        others = self.rng.shuffled([h.index for h in self.hosts if h.replica_id != host.replica_id])
        half = len(others) // 2
        for index in others[:half]:
            self._transmit(host.index, index, proposal)
        for index in others[half:]:
            self._transmit(host.index, index, Proposal(forged, other))
        self.marks["equivocating_proposal_sent"] += 1

    def _sign(self, host: Host, message: Any) -> Any:
        epoch = 0 if host.replica is None else host.replica.epoch
        signing = signing_bytes(CHAIN_ID, message, epoch)
        signature = self.signers[host.replica_id].sign(signing)
        return dataclasses.replace(message, signature=signature)

    def _forge(self, host: Host) -> None:
        rng = self.rng
        if not rng.chance(0.3):
            return
        targets = [h.index for h in self.hosts if h.replica_id != host.replica_id]
        replica = host.replica
        assert replica is not None
        act = rng.below(5)
        message: Any = None
        heard = [m for m in host.heard if isinstance(m, Prepare | Commit)]
        if act == 0 and heard:  # tamper with someone's vote: the signature no longer fits
            message = dataclasses.replace(rng.choice(heard), digest=rng.bytes(32))
        elif act == 1 and host.heard:  # replay an old message verbatim
            message = rng.choice(host.heard)
        elif act == 2:  # far outside the window, validly signed
            far = SeqNo(replica.stable_height + 10_000)
            message = self._sign(host, Prepare(replica.view, far, rng.bytes(32), replica.id, b""))
        elif act == 3:  # impersonate another replica
            victim = ReplicaId(rng.choice([r for r in range(self.config.nodes) if r != replica.id]))
            seq = SeqNo(replica.last_delivered + 1)
            message = self._sign(host, Commit(replica.view, seq, rng.bytes(32), victim, b""))
        elif act == 4:  # a new view it has no right to send
            message = self._sign(host, NewView(View(replica.view + 1), (), (), replica.id, b""))
        if message is not None:
            self.marks["forged_message_sent"] += 1
            self._transmit(host.index, rng.choice(targets), message)


def run(config: SimConfig) -> RunResult:
    return World(config).run()
