"""A tiny in-memory cluster for unit tests of the pure PBFT replica (`consensus.replica`).

Everything here is deterministic: FastSigner keys from fixed secrets, a clock
that only moves when a test moves it, and a FIFO network queue. The driver
follows the runtime contract of `consensus.events`: it applies `Output.persist`
to a per-replica list, then queues `Output.send`, then "executes" each
delivered block and reports it back with `Executed`, then answers fetches.

Test modules reach these helpers through the `make_cluster` and `kit`
fixtures (with `--import-mode=importlib` a conftest cannot be imported by name
at run time; the `TYPE_CHECKING` imports in the tests are for type checkers).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from consensus.config import Parameters, ReplicaConfig
from consensus.crypto import FastSigner, fast_verifier
from consensus.events import (
    BlocksFetched,
    CommitRecord,
    CommittedBlock,
    Event,
    Executed,
    Fetch,
    FetchFailed,
    MessageReceived,
    Notice,
    Output,
    PersistItem,
    Rejected,
    RequestsReceived,
    Restored,
    Tick,
)
from consensus.messages import (
    Batch,
    BatchHeader,
    CheckpointVote,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Signed,
    ViewChange,
    signing_bytes,
)
from consensus.replica import GENESIS_HASH, Replica
from consensus.types import ReplicaId, SeqNo, View
from consensus.view_change import plan_new_view
from ledger.block import transactions_root, tx_leaf
from ledger.checkpoint import Checkpoint, CheckpointCertificate
from ledger.keys import VerifyFn
from ledger.tx import Transaction, TransactionBody
from ledger.validators import ValidatorSet

CHAIN = "test"
START_MS = 1_000_000
"""The clock reading every cluster starts at (any value well above the transaction lifetime)."""

S = TypeVar("S", bound=Signed)
Filter = Callable[[int, int, Message], bool]
"""(sender, receiver, message) -> whether the message passes."""


def replica_secret(index: int) -> bytes:
    return b"replica-secret-%d" % index


def client_secret(index: int) -> bytes:
    return b"client-secret-%d" % index


# ---------------------------------------------------------------- keys and builders


class Kit:
    """Keys of n replicas and a few clients, and builders of validly (or badly) signed messages."""

    def __init__(self, n: int = 4, clients: int = 2, chain_id: str = CHAIN) -> None:
        self.n = n
        self.chain_id = chain_id
        self.signers = [FastSigner(replica_secret(i)) for i in range(n)]
        self.clients = [FastSigner(client_secret(i)) for i in range(clients)]
        self.outsider = FastSigner(b"outsider-secret")
        secrets = {
            s.public_key: secret
            for s, secret in zip(
                [*self.signers, *self.clients, self.outsider],
                [
                    *(replica_secret(i) for i in range(n)),
                    *(client_secret(i) for i in range(clients)),
                    b"outsider-secret",
                ],
                strict=True,
            )
        }
        self.verify: VerifyFn = fast_verifier(secrets)
        self.validators = ValidatorSet(0, tuple(s.public_key for s in self.signers))

    # ------------------------------------------------------------ replicas

    @property
    def f(self) -> int:
        return self.validators.f

    @property
    def quorum(self) -> int:
        return self.validators.quorum

    def key(self, replica: int) -> bytes:
        return self.validators.validators[replica]

    def primary(self, view: int) -> int:
        return view % self.n

    def validate_request(self, tx: Transaction) -> str | None:
        """The application's check of a client request: its FastSigner signature."""
        if not self.verify(tx.body.sender, tx.signature, tx.body.signing_bytes()):
            return "bad client signature"
        return None

    def config(self, replica: int, params: Parameters) -> ReplicaConfig:
        return ReplicaConfig(self.chain_id, self.validators, ReplicaId(replica), params)

    def replica(
        self, index: int, params: Parameters | None = None, restored: Restored | None = None
    ) -> Replica:
        return Replica(
            self.config(index, params or Parameters()),
            self.signers[index],
            self.verify,
            self.validate_request,
            restored,
        )

    # ------------------------------------------------------------ client transactions

    def tx(
        self,
        payload: bytes,
        now_ms: int = START_MS,
        *,
        client: int = 0,
        chain_id: str | None = None,
        expires_at_ms: int | None = None,
        nonce: bytes | None = None,
        valid_signature: bool = True,
    ) -> Transaction:
        signer = self.clients[client]
        body = TransactionBody(
            chain_id=self.chain_id if chain_id is None else chain_id,
            sender=signer.public_key,
            family="test",
            operation="put",
            payload=payload,
            nonce=hashlib.sha256(b"nonce" + payload).digest()[:16] if nonce is None else nonce,
            expires_at_ms=now_ms + 60_000 if expires_at_ms is None else expires_at_ms,
        )
        signature = signer.sign(body.signing_bytes()) if valid_signature else bytes(64)
        return dataclasses.replace(Transaction(body, bytes(64)), signature=signature)

    def txs(self, count: int, prefix: str = "tx", now_ms: int = START_MS) -> list[Transaction]:
        return [self.tx(f"{prefix}-{i}".encode(), now_ms) for i in range(count)]

    # ------------------------------------------------------------ protocol messages

    def sign(self, message: S, signer: FastSigner | None = None, chain_id: str | None = None) -> S:
        """Sign as `message.replica` (or as `signer`) for this chain (or `chain_id`)."""
        signer = self.signers[message.replica] if signer is None else signer
        chain = self.chain_id if chain_id is None else chain_id
        return dataclasses.replace(message, signature=signer.sign(signing_bytes(chain, message)))

    def batch(
        self,
        seq: int,
        transactions: Sequence[Transaction],
        *,
        view: int = 0,
        time_ms: int = START_MS,
        proposer: int | None = None,
        chain_id: str | None = None,
        tx_root: bytes | None = None,
    ) -> Batch:
        txs = tuple(transactions)
        header = BatchHeader(
            self.chain_id if chain_id is None else chain_id,
            seq,
            view,
            time_ms,
            transactions_root(txs) if tx_root is None else tx_root,
            self.key(self.primary(view) if proposer is None else proposer),
        )
        return Batch(header, txs)

    def pre_prepare(
        self, view: int, seq: int, digest: bytes, replica: int | None = None
    ) -> PrePrepare:
        sender = self.primary(view) if replica is None else replica
        return self.sign(PrePrepare(View(view), SeqNo(seq), digest, ReplicaId(sender), b""))

    def proposal(
        self, batch: Batch, *, view: int | None = None, replica: int | None = None
    ) -> Proposal:
        view = batch.header.view if view is None else view
        seq = batch.header.height
        return Proposal(self.pre_prepare(view, seq, batch.digest, replica), batch)

    def prepare(self, view: int, seq: int, digest: bytes, replica: int) -> Prepare:
        return self.sign(Prepare(View(view), SeqNo(seq), digest, ReplicaId(replica), b""))

    def commit(self, view: int, seq: int, digest: bytes, replica: int) -> Commit:
        return self.sign(Commit(View(view), SeqNo(seq), digest, ReplicaId(replica), b""))

    def prepared_certificate(
        self, batch: Batch, view: int, prepared_by: Iterable[int]
    ) -> PreparedCertificate:
        seq = batch.header.height
        return PreparedCertificate(
            self.pre_prepare(view, seq, batch.digest),
            tuple(self.prepare(view, seq, batch.digest, r) for r in prepared_by),
            batch,
        )

    def view_change(
        self,
        replica: int,
        new_view: int,
        prepared: Sequence[PreparedCertificate] = (),
        stable: CheckpointCertificate | None = None,
    ) -> ViewChange:
        message = ViewChange(View(new_view), stable, tuple(prepared), ReplicaId(replica), b"")
        return self.sign(message)

    def new_view(
        self, view: int, view_changes: Sequence[ViewChange], replica: int | None = None
    ) -> NewView:
        """A NewView as the primary of `view` (or `replica`) computes it from `view_changes`."""
        sender = self.primary(view) if replica is None else replica
        plan = plan_new_view(self.chain_id, View(view), self.key(sender), view_changes)
        pre_prepares = tuple(
            self.pre_prepare(view, b.header.height, b.digest, sender) for b in plan.batches
        )
        message = NewView(View(view), tuple(view_changes), pre_prepares, ReplicaId(sender), b"")
        return self.sign(message)

    def checkpoint_vote(
        self, replica: int, checkpoint: Checkpoint, signer: FastSigner | None = None
    ) -> CheckpointVote:
        signer = self.signers[replica] if signer is None else signer
        signature = signer.sign(checkpoint.signing_bytes())
        return CheckpointVote(checkpoint, ReplicaId(replica), signature)


# ---------------------------------------------------------------- execution


class Executor:
    """The application stand-in: a SHA-256 chain over executed transaction ids."""

    def __init__(self, salt: bytes = b"") -> None:
        self.height = 0
        self.state_root = hashlib.sha256(b"state" + salt).digest()
        self.log_size = 0
        self.log_root = hashlib.sha256(b"log").digest()

    def execute(self, committed: CommittedBlock) -> Executed:
        block = committed.block
        assert block.header.height == self.height + 1, "blocks are executed in height order"
        for tx in block.transactions:
            self.state_root = hashlib.sha256(self.state_root + tx.id).digest()
            self.log_size += 1
            self.log_root = hashlib.sha256(self.log_root + tx_leaf(tx)).digest()
        self.height = block.header.height
        return Executed(self.height, self.state_root, self.log_size, self.log_root)


# ---------------------------------------------------------------- the cluster


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One call of `Replica.step` made by the driver, with what came out."""

    replica: int
    event: Event
    output: Output


OWN_RECORD_TYPES = (Proposal, Prepare, Commit, CheckpointVote, ViewChange, NewView)


def _author(message: Message) -> int | None:
    if isinstance(message, Proposal):
        return message.pre_prepare.replica
    replica = getattr(message, "replica", None)
    return replica if isinstance(replica, int) else None


def _persisted_messages(item: PersistItem) -> Iterator[object]:
    yield item
    if isinstance(item, CommitRecord):
        yield item.commit


class Cluster:
    """n replicas joined by a FIFO queue; the test decides what is delivered and when."""

    def __init__(
        self,
        n: int = 4,
        params: Parameters | None = None,
        *,
        now_ms: int = START_MS,
        auto_execute: bool = True,
        salts: dict[int, bytes] | None = None,
    ) -> None:
        self.kit = Kit(n)
        self.n = n
        self.params = params or Parameters(suspect_in_touch_only=False)
        self.now_ms = now_ms
        self.auto_execute = auto_execute
        salts = salts or {}
        self.executors = [Executor(salts.get(i, b"")) for i in range(n)]
        self.replicas = [self.kit.replica(i, self.params) for i in range(n)]
        self.persisted: list[list[PersistItem]] = [[] for _ in range(n)]
        self.delivered: list[list[CommittedBlock]] = [[] for _ in range(n)]
        self.history: list[list[Step]] = [[] for _ in range(n)]
        self.pending_execution: list[deque[CommittedBlock]] = [deque() for _ in range(n)]
        self.queue: deque[tuple[int, int, Message]] = deque()
        self.answers: deque[tuple[int, Event]] = deque()
        self.dropped: list[tuple[int, int, Message]] = []
        self.held: list[tuple[int, int, Message]] = []
        self.filter: Filter | None = None
        """Messages for which this returns False are dropped when they would be delivered."""
        self.hold: Filter | None = None
        """Messages for which this returns True are set aside until `release_held`."""
        self.down: set[int] = set()
        self.disk_at_start: list[list[PersistItem]] = [[] for _ in range(n)]
        """Records a restarted replica was built from (the write-ahead check starts from them)."""

    # ------------------------------------------------------------ driving

    def step(self, index: int, event: Event) -> Output:
        """Step one replica and carry out its Output as the runtime contract says."""
        output = self.replicas[index].step(event, self.now_ms)
        self.history[index].append(Step(index, event, output))
        self.persisted[index].extend(output.persist)
        for target, message in output.send:
            receivers = [target] if target is not None else [r for r in range(self.n) if r != index]
            for receiver in receivers:
                self.queue.append((index, receiver, message))
        for committed in output.deliver:
            self.delivered[index].append(committed)
            self.pending_execution[index].append(committed)
        if self.auto_execute:
            self.execute(index)
        for fetch in output.fetch:
            self.answers.append((index, self._answer(index, fetch)))
        return output

    def execute(self, index: int, count: int | None = None) -> list[Output]:
        """Execute delivered blocks (all, or the first `count`) and report each one."""
        outputs: list[Output] = []
        pending = self.pending_execution[index]
        while pending and (count is None or len(outputs) < count):
            executed = self.executors[index].execute(pending.popleft())
            outputs.append(self.step(index, executed))
        return outputs

    def submit(self, index: int, *transactions: Transaction, from_client: bool = True) -> Output:
        return self.step(index, RequestsReceived(tuple(transactions), from_client))

    def submit_everywhere(
        self, *transactions: Transaction, replicas: Sequence[int] | None = None
    ) -> None:
        """A client that saw no commit gives its request to every replica (PBFT 4.1)."""
        for index in range(len(self.replicas)) if replicas is None else replicas:
            self.submit(index, *transactions)

    def receive(self, index: int, message: Message) -> Output:
        """Hand one message to a replica directly (not through the queue)."""
        return self.step(index, MessageReceived(message))

    def deliver_next(self) -> bool:
        """Deliver the oldest queued message or fetch answer; False when nothing is queued."""
        if self.answers:
            index, event = self.answers.popleft()
            if index not in self.down:
                self.step(index, event)
            return True
        if not self.queue:
            return False
        sender, receiver, message = self.queue.popleft()
        if receiver in self.down:
            self.dropped.append((sender, receiver, message))
        elif self.hold is not None and self.hold(sender, receiver, message):
            self.held.append((sender, receiver, message))
        elif self.filter is not None and not self.filter(sender, receiver, message):
            self.dropped.append((sender, receiver, message))
        else:
            self.step(receiver, MessageReceived(message))
        return True

    def run(self, steps_max: int = 20_000) -> int:
        """Deliver until the network is quiet; returns the number of deliveries."""
        for count in range(steps_max):
            if not self.deliver_next():
                return count
        raise AssertionError(f"the network did not go quiet within {steps_max} deliveries")

    def release_held(self) -> None:
        self.hold = None
        self.queue.extend(self.held)
        self.held.clear()

    def tick(self, advance_ms: int = 0, replicas: Iterable[int] | None = None) -> list[Output]:
        """Move the clock and give a Tick to each (live) replica, without running the network."""
        self.now_ms += advance_ms
        chosen = range(self.n) if replicas is None else replicas
        return [self.step(i, Tick()) for i in chosen if i not in self.down]

    def advance(self, advance_ms: int, step_ms: int = 500) -> list[Output]:
        """Move the clock as a running runtime does: every live replica is ticked at
        least every `step_ms` (a jump with no step between is a stall, which restarts
        the request timers). Returns the outputs of the ticks, network not run."""
        outputs = []
        target = self.now_ms + advance_ms
        while self.now_ms < target:
            outputs.extend(self.tick(min(step_ms, target - self.now_ms)))
        return outputs

    def _answer(self, index: int, fetch: Fetch) -> Event:
        """A peer's answer to a fetch: its delivered blocks from the height asked for."""
        peer = self.kit.validators.validators.index(fetch.peer)
        blocks = tuple(
            b for b in self.delivered[peer] if b.block.header.height >= fetch.from_height
        )
        if peer in self.down or not blocks or any(b.certificate is None for b in blocks):
            return FetchFailed(fetch.peer)
        return BlocksFetched(fetch.peer, None, blocks)

    # ------------------------------------------------------------ restarting

    def restored(self, index: int, records: Sequence[PersistItem] | None = None) -> Restored:
        """What replica `index` would find on its disk (all its records unless told otherwise)."""
        height = self.executors[index].height
        if height == 0:
            last_hash, last_time = GENESIS_HASH, 0
        else:
            block = self.delivered[index][height - 1].block
            last_hash, last_time = block.hash, block.header.time_ms
        items = self.persisted[index] if records is None else records
        return Restored(height, last_hash, last_time, tuple(items))

    def restart(self, index: int, records: Sequence[PersistItem] | None = None) -> Replica:
        """Replace replica `index` by a new one built from its disk; its queued mail is lost."""
        restored = self.restored(index, records)
        replica = self.kit.replica(index, self.params, restored)
        self.replicas[index] = replica
        self.delivered[index] = self.delivered[index][: restored.executed_height]
        self.pending_execution[index].clear()
        self.persisted[index] = list(restored.records)
        self.disk_at_start[index] = list(restored.records)
        return replica

    # ------------------------------------------------------------ observing

    def outputs(self, index: int) -> list[Output]:
        return [s.output for s in self.history[index]]

    def sent(self, index: int, kind: type | tuple[type, ...] = object) -> list[Message]:
        return [m for o in self.outputs(index) for _, m in o.send if isinstance(m, kind)]

    def notices(self, index: int, kind: type | tuple[type, ...] = object) -> list[Notice]:
        return [n for o in self.outputs(index) for n in o.notices if isinstance(n, kind)]

    def rejected(self, index: int) -> list[Rejected]:
        return [r for o in self.outputs(index) for r in o.rejected]

    def blocks(self, index: int) -> list[Any]:
        return [c.block for c in self.delivered[index]]

    def delivered_tx_ids(self, index: int) -> list[bytes]:
        return [tx.id for block in self.blocks(index) for tx in block.transactions]

    def assert_write_ahead(self, index: int) -> None:
        """Every own signed record the replica sent was in `persist` of that Output or earlier."""
        persisted: set[object] = set()
        for item in self.disk_at_start[index]:
            persisted.update(_persisted_messages(item))
        for step in self.history[index]:
            for item in step.output.persist:
                persisted.update(_persisted_messages(item))
            for _, message in step.output.send:
                if isinstance(message, OWN_RECORD_TYPES) and _author(message) == index:
                    assert message in persisted, f"replica {index} sent {message!r} unpersisted"


def snapshot(replica: Replica) -> dict[str, object]:
    """The replica state that a rejected message must leave exactly as it was."""
    return {
        "view": replica.view,
        "active": replica.active,
        "diverged": replica.diverged,
        "slots": copy.deepcopy(replica.slots),
        "prepared": dict(replica.prepared),
        "committed": dict(replica.committed),
        "last_delivered": replica.last_delivered,
        "next_seq": replica.next_seq,
        "pool": len(replica.pool),
        "stable": replica.stable,
        "view_changes": copy.deepcopy(replica.view_changes),
        "checkpoint_votes": copy.deepcopy(replica.checkpoint_votes),
    }


def is_empty(output: Output) -> bool:
    return output == Output()


# ---------------------------------------------------------------- fixtures


class Helpers:
    """Module-level helpers of this conftest, reachable from tests through the `helpers` fixture."""

    Cluster = Cluster
    Kit = Kit
    Executor = Executor
    snapshot = staticmethod(snapshot)
    is_empty = staticmethod(is_empty)
    CHAIN = CHAIN
    START_MS = START_MS


@pytest.fixture
def helpers() -> type[Helpers]:
    return Helpers


@pytest.fixture
def kit() -> Kit:
    return Kit(4)


@pytest.fixture
def make_cluster() -> Callable[..., Cluster]:
    """`make_cluster(n=4, **parameters)`: a fresh cluster whose Parameters override the defaults."""

    def build(
        n: int = 4,
        *,
        auto_execute: bool = True,
        salts: dict[int, bytes] | None = None,
        **parameters: Any,
    ) -> Cluster:
        # Scripted tests time requests out without the Status traffic of a running
        # cluster, so a backup here suspects without checking it is in touch (the rule
        # has tests of its own, and the simulator and the nodes run with it).
        parameters.setdefault("suspect_in_touch_only", False)
        return Cluster(n, Parameters(**parameters), auto_execute=auto_execute, salts=salts)

    return build
