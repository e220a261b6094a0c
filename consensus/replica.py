"""The PBFT replica: a deterministic state machine, events in, actions out.

Castro and Liskov, "Practical Byzantine Fault Tolerance" (OSDI 1999) and
"... and Proactive Recovery" (TOCS 2002), with Ed25519 signatures in place of
authenticators. Section numbers below refer to the OSDI paper.

Rules this class keeps:
- It never reads a clock, a socket, a file or a random source; `step` gets the
  clock reading, and everything it wants done comes back in an `Output`
  (see `consensus.events` for the order the runtime must follow).
- Every message of its own that it signs is in `Output.persist` before it is in
  `Output.send`, and a restarted replica rebuilds from those records, so it
  never signs two different messages for one (view, seq) or falls back to an
  earlier view.
- A peer's invalid message raises `PeerError` inside a handler; `step` turns
  it into a `Rejected` entry, and the state is unchanged because every check
  happens before the first assignment.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from consensus.batching import (
    BatchRules,
    ValidateRequest,
    build_batch,
    check_batch_shape,
    check_batch_transactions,
    check_fresh_time,
    check_lifetime,
)
from consensus.chain import block_of, check_fetched_chain
from consensus.config import ReplicaConfig
from consensus.crypto import Signer
from consensus.events import (
    BlocksFetched,
    CatchUp,
    CommitRecord,
    CommittedBlock,
    Diverged,
    EpochScheduled,
    EpochStarted,
    Event,
    Executed,
    Fetch,
    FetchFailed,
    MessageReceived,
    Output,
    Rejected,
    Rejoined,
    RequestsReceived,
    Restored,
    Resumed,
    StableCheckpoint,
    Tick,
    ViewChanged,
)
from consensus.messages import (
    Batch,
    CheckpointVote,
    Commit,
    CommitCertificate,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    Requests,
    Signed,
    Status,
    ViewChange,
    signing_bytes,
)
from consensus.pool import RequestPool
from consensus.recovery import restore_into
from consensus.slot import Slot
from consensus.types import ReplicaId, SeqNo, View
from consensus.verification import PeerError, Verifier
from consensus.view_change import VIEW_CHANGES_KEPT, NewViewPlan, plan_new_view
from ledger.block import Block
from ledger.checkpoint import Checkpoint, CheckpointCertificate, Endorsement
from ledger.keys import VerifyFn
from ledger.merkle import EMPTY_ROOT
from ledger.validators import ValidatorSet

S = TypeVar("S", bound=Signed)

GENESIS_HASH = EMPTY_ROOT
NO_EPOCH_END = 2**63
SILENCE_STATUS_INTERVALS = 3
"""A replica that hears no peer for this many status intervals polls for blocks."""
IN_TOUCH_STATUS_INTERVALS = 2
"""A peer heard within this many status intervals is in touch (a replica that hears too
few peers does not suspect the primary). Shorter than a request timeout would be too
tight for a Status that waits behind load; longer lets a replica cut off at about the
time a request arrived still count its peers when the request's timer expires."""
VIEW_AHEAD_MAX = 1_000
"""ViewChanges for views further ahead than this are refused (they would pin memory)."""
REFORWARD_REQUESTS_MAX = 256
"""Waiting requests shared again per request timeout while the primary makes progress."""


class Replica:
    def __init__(
        self,
        config: ReplicaConfig,
        signer: Signer,
        verify: VerifyFn,
        validate_request: ValidateRequest,
        restored: Restored | None = None,
    ) -> None:
        self.config = config
        self.chain_id = config.chain_id
        self.params = config.parameters
        self._signer = signer
        self._verify = verify
        if config.replica_id is not None:
            assert signer.public_key == config.validators.validators[config.replica_id], (
                "wrong signing key"
            )
        self.epoch_end: int | None = None
        """The last height the current validator set orders, once a new set is scheduled."""
        self.next_validators: ValidatorSet | None = None
        self._set_validators(config.validators, 0)
        self.rules = BatchRules(config.chain_id, config.parameters, validate_request)
        self.pool = RequestPool(config.parameters.pending_requests_max)
        self.marks: Counter[str] = Counter()
        """Rare branches reached, by name (the simulator checks that swarms reach them)."""

        self.now_ms = 0
        self._first_step = True
        self.view = View(0)
        self.active = True
        self.diverged = False
        self.slots: dict[SeqNo, Slot] = {}
        self.prepared: dict[SeqNo, PreparedCertificate] = {}
        self.committed: dict[SeqNo, tuple[Batch, CommitCertificate]] = {}
        self.next_seq = SeqNo(1)

        self.last_delivered = 0
        self.last_progress_ms = 0
        """When a block was last delivered: a primary that makes progress is not suspected
        merely because requests wait (see `_request_timers_ms`)."""
        self.last_reforward_ms = 0
        self.last_block_hash = GENESIS_HASH
        self.last_block_time_ms = 0
        self.executed = 0
        self._delivered_meta: dict[int, tuple[bytes, int]] = {}  # height -> (hash, time)

        self.stable: CheckpointCertificate | None = None
        self.own_checkpoints: dict[int, Checkpoint] = {}
        self.checkpoint_votes: dict[int, dict[ReplicaId, CheckpointVote]] = {}

        self.view_changes: dict[View, dict[ReplicaId, ViewChange]] = {}
        """Valid ViewChange messages for views above the active one, ours included."""
        self.my_view_changes: dict[View, ViewChange] = {}
        """Our own recent ViewChanges, re-sent to peers still collecting for those views."""
        self.view_change_quorum_seen = False
        self.new_view_message: NewView | None = None
        """The NewView of the last view installed (kept during a later view change)."""
        self.view_change_timeout_ms = self.params.view_change_timeout_ms
        self.view_change_deadline_ms: int | None = None

        self._init_runtime_state(restored)
        if restored is not None:
            self._restore(restored)

    def _set_validators(self, validators: ValidatorSet, epoch: int) -> None:
        """Adopt a validator set: quorums, this replica's index in it, the signing epoch."""
        self.epoch = epoch
        self.validators = validators
        self.epoch_base = validators.from_height - 1 if epoch else 0
        """The last height ordered by earlier validator sets (its certificate is theirs)."""
        self.n = validators.n
        self.f = validators.f
        self.quorum = validators.quorum
        self.prepare_quorum = validators.quorum - 1  # 2f Prepares besides the PrePrepare
        self.commit_quorum = validators.quorum
        self.keys = validators.validators
        self.member = self._signer.public_key in self.keys
        # A replica outside the set follows the chain by fetching blocks; -1 matches no sender.
        self.id = ReplicaId(self.keys.index(self._signer.public_key) if self.member else -1)
        self.verifier = Verifier(self.chain_id, validators, self._verify, epoch)

    def _init_runtime_state(self, restored: Restored | None) -> None:
        self.peer_status: dict[ReplicaId, Status] = {}
        self.rejoining = restored is not None and restored.rejoining
        self.rejoin_floor: int | None = None
        """The stable height this replica must reach before it votes again, once known."""
        self.fetching: tuple[bytes, int] | None = None
        """(peer key, deadline) of the fetch in flight."""
        self.fetch_rotation = 0
        self.last_heard_ms = 0
        """When a peer's Status last arrived (a silent set makes this replica poll for blocks)."""
        self.heard_ms: dict[ReplicaId, int] = {}
        """When each peer's Status last arrived."""
        self.next_resend_ms = 0
        self.next_status_ms = 0

    # ------------------------------------------------------------ public

    @property
    def stable_height(self) -> int:
        return 0 if self.stable is None else self.stable.checkpoint.height

    @property
    def low_watermark(self) -> int:
        """PBFT's h: the stable checkpoint, or the epoch's base if that is higher (a replica
        that lost its records may hold no certificate of its own yet)."""
        return max(self.stable_height, self.epoch_base)

    def primary_of(self, view: int) -> ReplicaId:
        return ReplicaId(view % self.n)

    @property
    def is_primary(self) -> bool:
        return self.primary_of(self.view) == self.id

    def step(self, event: Event, now_ms: int) -> Output:
        previous_ms, self.now_ms = self.now_ms, max(self.now_ms, now_ms)
        out = Output()
        if self.diverged:
            return out  # a diverged replica signs nothing more; an operator must look
        self._start_timers_if_unwatched(previous_ms, out)
        if not self.active and self.view_change_deadline_ms is None:  # e.g. restored mid-change
            self.view_change_deadline_ms = self.now_ms + self.view_change_timeout_ms
        try:
            match event:
                case MessageReceived(message=message):
                    self._on_message(message, out)
                case RequestsReceived(transactions=transactions, from_client=from_client):
                    self._on_requests(transactions, from_client, out)
                case Tick():
                    self._on_tick(out)
                case Executed():
                    self._on_executed(event, out)
                case BlocksFetched():
                    self._on_blocks_fetched(event, out)
                case FetchFailed(peer=peer):
                    if self.fetching is not None and self.fetching[0] == peer:
                        self.fetching = None
                case EpochScheduled():
                    self._on_epoch_scheduled(event)
        except PeerError as exc:
            out.rejected.append(Rejected(_kind(event), _sender(event), exc.reason))
        self._maybe_propose(out)
        # Last: a step's messages and records all belong to the epoch it began in.
        self._maybe_start_epoch(out)
        return out

    def next_deadline_ms(self) -> int:
        """The clock reading at which the next `Tick` has work to do."""
        if not self.member:
            deadlines = [self.next_status_ms]
            if self.fetching is not None:
                deadlines.append(self.fetching[1])
            return min(deadlines)
        deadlines = [self.next_resend_ms, self.next_status_ms]
        if not self.active and self.view_change_deadline_ms is not None:
            deadlines.append(self.view_change_deadline_ms)
        timers = self._request_timers_ms()
        if self.active and timers is not None:
            deadlines.extend(timers)
        if self.fetching is not None:
            deadlines.append(self.fetching[1])
        return min(deadlines)

    # ------------------------------------------------------------ dispatch

    def _on_follower_message(self, message: Message, out: Output) -> None:
        """Not a validator (yet, or any more): follow the chain by fetching blocks."""
        match message:
            case Status():
                self._on_status(message, out)
            case Requests():
                self._on_requests(message.transactions, False, out)

    def _on_message(self, message: Message, out: Output) -> None:
        if not self.member:
            self._on_follower_message(message, out)
            return
        sender = _sender(MessageReceived(message))
        if sender is not None and not 0 <= sender < self.n:
            raise PeerError(f"replica {sender} is not a member of validator set {self.epoch}")
        match message:
            case Proposal():
                self._on_pre_prepare(message, out)
            case Prepare():
                self._on_prepare(message, out)
            case Commit():
                self._on_commit(message, out)
            case CheckpointVote():
                self._on_checkpoint(message, out)
            case ViewChange():
                self._on_view_change(message, out)
            case NewView():
                self._on_new_view(message, out)
            case Status():
                self._on_status(message, out)
            case Requests():
                self._on_requests(message.transactions, False, out)
            case PrePrepare():
                raise PeerError("a pre-prepare travels only inside a proposal")

    # ------------------------------------------------------------ normal case (4.2)

    def _on_pre_prepare(self, proposal: Proposal, out: Output) -> None:
        pre_prepare, batch = proposal.pre_prepare, proposal.batch
        if not self._accepts_view(pre_prepare.view) or pre_prepare.replica == self.id:
            return
        if pre_prepare.replica != self.primary_of(self.view):
            raise PeerError(f"pre-prepare from replica {pre_prepare.replica}, not the primary")
        seq = pre_prepare.seq
        if not self._in_window(seq):
            return
        slot = self.slots.get(seq)
        if slot is not None and slot.pre_prepare is not None:
            if slot.pre_prepare.digest != pre_prepare.digest:
                self._on_equivocation(pre_prepare, out)
            return
        self.verifier.signed(pre_prepare)
        if batch.digest != pre_prepare.digest:
            raise PeerError(f"seq {seq}: the batch does not match the pre-prepare's digest")
        mine = None if slot is None else slot.my_prepare
        if mine is not None and mine.digest != pre_prepare.digest:
            raise PeerError(f"seq {seq}: this replica prepared another batch in this view")
        ids = self._check_fresh_batch(seq, batch)
        self._accept_batch(seq, pre_prepare, batch, ids, out)

    def _check_fresh_batch(self, seq: SeqNo, batch: Batch) -> list[bytes]:
        header = batch.header
        if header.view != self.view or header.proposer != self.keys[self.primary_of(self.view)]:
            raise PeerError(f"seq {seq}: batch names another view or proposer")
        ids = check_batch_shape(self.rules, seq, batch)
        check_fresh_time(self.rules, batch, self._latest_time_before(seq), self.now_ms)
        check_batch_transactions(self.rules, seq, batch, ids, self.pool)
        return ids

    def _on_equivocation(self, pre_prepare: PrePrepare, out: Output) -> None:
        """Two signed pre-prepares for one (view, seq): proof that the primary is faulty."""
        self.verifier.signed(pre_prepare)
        self.marks["equivocation_detected"] += 1
        self._enter_view_change(View(self.view + 1), out)
        raise PeerError(f"seq {pre_prepare.seq}: the primary sent two different pre-prepares")

    def _accept_batch(
        self, seq: SeqNo, pre_prepare: PrePrepare, batch: Batch, ids: list[bytes], out: Output
    ) -> None:
        slot = self._slot(seq)
        slot.pre_prepare = pre_prepare
        slot.batch = batch
        if seq > self.last_delivered:
            for tx_id, tx in zip(ids, batch.transactions, strict=True):
                self.pool.add(tx_id, tx, self.now_ms)
            self.pool.assign(ids, seq)
        if not self.is_primary and slot.my_prepare is None and not self.rejoining:
            prepare = self._sign(Prepare(self.view, seq, pre_prepare.digest, self.id, b""))
            out.persist.append(prepare)
            out.broadcast(prepare)
            slot.my_prepare = prepare
            slot.prepares[self.id] = prepare
        self._check_prepared(seq, slot, out)

    def _on_prepare(self, prepare: Prepare, out: Output) -> None:
        if not self._accepts_view(prepare.view) or prepare.replica == self.id:
            return
        if prepare.replica == self.primary_of(prepare.view):
            raise PeerError("the primary does not send prepares")
        if not self._in_window(prepare.seq):
            return
        known = self.slots.get(prepare.seq)
        if known is not None and prepare.replica in known.prepares:
            return
        self.verifier.signed(prepare)
        slot = self._slot(prepare.seq)
        slot.prepares[prepare.replica] = prepare
        self._check_prepared(prepare.seq, slot, out)

    def _check_prepared(self, seq: SeqNo, slot: Slot, out: Output) -> None:
        """prepared(m, v, n, i): the pre-prepare and 2f matching prepares (section 4.2)."""
        if slot.my_commit is not None or slot.pre_prepare is None or slot.batch is None:
            return
        if self.rejoining:
            return
        digest = slot.pre_prepare.digest
        matching = sorted(
            (p for p in slot.prepares.values() if p.digest == digest), key=lambda p: p.replica
        )
        if len(matching) < self.prepare_quorum:
            return
        certificate = PreparedCertificate(
            slot.pre_prepare, tuple(matching[: self.prepare_quorum]), slot.batch
        )
        commit = self._sign(Commit(self.view, seq, digest, self.id, b""))
        out.persist.append(CommitRecord(commit, certificate))
        out.broadcast(commit)
        self.prepared[seq] = certificate
        slot.my_commit = commit
        slot.commits[self.id] = commit
        self._check_committed(seq, slot, out)

    def _on_commit(self, commit: Commit, out: Output) -> None:
        if not self._accepts_view(commit.view) or commit.replica == self.id:
            return
        if not self._in_window(commit.seq):
            return
        known = self.slots.get(commit.seq)
        if known is not None and commit.replica in known.commits:
            return
        self.verifier.signed(commit)
        slot = self._slot(commit.seq)
        slot.commits[commit.replica] = commit
        self._check_committed(commit.seq, slot, out)

    def _check_committed(self, seq: SeqNo, slot: Slot, out: Output) -> None:
        """committed-local(m, v, n, i): prepared and 2f + 1 matching commits (section 4.2)."""
        if slot.committed or slot.my_commit is None or slot.batch is None:
            return
        digest = slot.my_commit.digest
        matching = sorted(
            (c for c in slot.commits.values() if c.digest == digest), key=lambda c: c.replica
        )
        if len(matching) < self.commit_quorum:
            return
        slot.committed = True
        if seq > self.last_delivered:
            certificate = CommitCertificate(
                slot.batch.header, tuple(matching[: self.commit_quorum])
            )
            self.committed[seq] = (slot.batch, certificate)
            self._deliver_ready(out)

    def _deliver_ready(self, out: Output) -> None:
        """Execute in sequence-number order (section 4.2): deliver each decided block once."""
        while (seq := SeqNo(self.last_delivered + 1)) in self.committed:
            batch, certificate = self.committed.pop(seq)
            block = block_of(batch, self.last_block_hash, self.last_block_time_ms)
            out.deliver.append(CommittedBlock(block, certificate))
            self._record_delivery(block)
            if batch.transactions:
                self.view_change_timeout_ms = self.params.view_change_timeout_ms

    def _record_delivery(self, block: Block) -> None:
        header = block.header
        self.last_delivered = header.height
        self.last_progress_ms = self.now_ms
        self.last_block_hash = block.hash
        self.last_block_time_ms = header.time_ms
        self._delivered_meta[header.height] = (self.last_block_hash, header.time_ms)
        for tx in block.transactions:
            self.pool.mark_delivered(tx.id, tx.body.expires_at_ms)
        self.pool.forget_expired(header.time_ms)

    # ------------------------------------------------------------ requests and proposals

    def _on_requests(self, transactions: tuple[Any, ...], from_client: bool, out: Output) -> None:
        """Admit requests; a backup forwards its clients' requests to the primary.

        As in PBFT, a request goes to the primary, and every replica that holds
        one times it; a client that sees no commit in time gives its request to
        other replicas too, and once f + 1 of them suspect the primary, the view
        changes. (Forwarding to the primary only, rather than to everyone, spares
        each backup one decoding and check of every transaction.) A replica that
        is changing view has no primary to forward to, and may be alone in that
        view change while the others still run the old one: it gives its
        clients' requests to every replica.
        """
        forward = []
        for tx in transactions:
            tx_id = tx.id
            if tx_id in self.pool or self.pool.is_delivered(tx_id):
                continue
            reason = self._request_problem(tx)
            if reason is None and self.pool.is_full():
                reason = "the request pool is full"
            if reason is not None:
                out.rejected.append(Rejected("request", None, f"{tx_id.hex()}: {reason}"))
                continue
            self.pool.add(tx_id, tx, self.now_ms)
            if from_client:
                forward.append(tx)
        if not forward:
            return
        if not self.active:
            # Changing view, possibly alone (it suspected a primary the others still
            # follow): no primary takes requests from it, so they go to every replica.
            out.broadcast(Requests(tuple(forward)))
        elif not self.is_primary:
            out.send.append((self.primary_of(self.view), Requests(tuple(forward))))

    def _forward_pending_to_primary(self, out: Output) -> None:
        """A new view: hand the new primary every request still waiting here."""
        if self.is_primary:
            return
        pending = self.pool.unassigned(self.params.pending_requests_max)
        size = self.params.batch_size_max
        for start in range(0, len(pending), size):
            chunk = tuple(tx for _, tx in pending[start : start + size])
            out.send.append((self.primary_of(self.view), Requests(chunk)))

    def _request_problem(self, tx: Any) -> str | None:
        if tx.body.chain_id != self.chain_id:
            return f"transaction for chain {tx.body.chain_id!r}"
        reason = check_lifetime(tx, self.now_ms, self.params.tx_lifetime_max_ms)
        if reason is not None:
            return reason
        result: str | None = self.rules.validate_request(tx)
        return result

    def _maybe_propose(self, out: Output) -> None:
        """The primary proposes while there are free requests and room in flight."""
        if not self.active or not self.is_primary or self.diverged or self.rejoining:
            return
        params = self.params
        self.next_seq = SeqNo(max(self.next_seq, self.last_delivered + 1, self.stable_height + 1))
        epoch_end = self.epoch_end if self.epoch_end is not None else NO_EPOCH_END
        while True:
            ordered_max = min(
                self.last_delivered + params.in_flight_max,
                self.low_watermark + params.window_size,
                epoch_end,
            )
            executed_max = self.executed + params.unexecuted_max
            if self.next_seq > min(ordered_max, executed_max):
                if self.next_seq <= ordered_max and self.pool.unassigned(1):
                    self.marks["proposal_waits_for_execution"] += 1
                return
            candidates = self.pool.unassigned(params.batch_size_max)
            if not candidates:
                return
            seq = self.next_seq
            in_flight = seq > self.last_delivered + 1
            if in_flight and len(candidates) < self.pipelined_batch_min:
                return  # wait for the block in flight; more requests gather meanwhile
            time_ms = max(self.now_ms, self._latest_time_before(seq) + 1)
            batch, ids, expired = build_batch(
                self.rules, candidates, (seq, self.view, time_ms, self.keys[self.id])
            )
            for tx_id in expired:
                self.pool.drop(tx_id)
            if not ids:
                if not expired:
                    return  # every free request expires too far ahead; wait for time to pass
                continue
            pre_prepare = self._sign(PrePrepare(self.view, seq, batch.digest, self.id, b""))
            proposal = Proposal(pre_prepare, batch)
            out.persist.append(proposal)
            out.broadcast(proposal)
            self.next_seq = SeqNo(seq + 1)
            self._accept_batch(seq, pre_prepare, batch, ids, out)
            self.slots[seq].proposal_sent_ms = self.now_ms

    @property
    def pipelined_batch_min(self) -> int:
        return min(self.params.pipelined_batch_min, self.params.batch_size_max)

    def _latest_time_before(self, seq: int) -> int:
        latest = self.last_block_time_ms
        for other, slot in self.slots.items():
            if other < seq and slot.batch is not None:
                latest = max(latest, slot.batch.header.time_ms)
        return latest

    # ------------------------------------------------------------ checkpoints (4.3)

    def _on_executed(self, executed: Executed, out: Output) -> None:
        height = executed.height
        assert height == self.executed + 1, f"executed {height} after {self.executed}"
        self.executed = height
        if self.is_primary:
            # A primary held back by its own executor (`unexecuted_max`) is making progress
            # towards its next proposal, and must not time out its own waiting requests.
            self.last_progress_ms = self.now_ms
        block_hash, time_ms = self._delivered_meta.pop(height)
        # An epoch's last block is always checkpointed: the next set starts from it.
        if height % self.params.checkpoint_interval and height != self.epoch_end:
            return
        checkpoint = Checkpoint(
            self.chain_id,
            height,
            block_hash,
            executed.state_root,
            executed.log_size,
            executed.log_root,
            time_ms,
        )
        if self.stable is not None and height == self.stable_height:
            if self.stable.checkpoint != checkpoint:
                self._diverge(height, "state differs from the stable checkpoint", out)
            return
        if height < self.stable_height or not self.member:
            return
        self.own_checkpoints[height] = checkpoint
        vote = CheckpointVote(checkpoint, self.id, self._signer.sign(checkpoint.signing_bytes()))
        out.persist.append(vote)
        out.broadcast(vote)
        self.checkpoint_votes.setdefault(height, {})[self.id] = vote
        self._check_stable(height, out)

    def _on_checkpoint(self, vote: CheckpointVote, out: Output) -> None:
        height = vote.checkpoint.height
        if height <= self.stable_height or vote.replica == self.id:
            return
        if height > self.low_watermark + 2 * self.params.window_size:
            return  # far ahead: Status messages will lead to a fetch
        if vote.replica in self.checkpoint_votes.get(height, {}):
            return
        self.verifier.checkpoint_vote(vote)
        self.checkpoint_votes.setdefault(height, {})[vote.replica] = vote
        self._check_stable(height, out)

    def _check_stable(self, height: int, out: Output) -> None:
        votes = self.checkpoint_votes.get(height, {})
        tally = Counter(vote.checkpoint for vote in votes.values())
        for checkpoint, count in tally.items():
            if count < self.quorum:
                continue
            mine = self.own_checkpoints.get(height)
            if mine is not None and mine != checkpoint:
                self._diverge(height, "a quorum signed a different checkpoint", out)
                return
            endorsements = tuple(
                Endorsement(self.keys[replica], vote.signature)
                for replica, vote in sorted(votes.items())
                if vote.checkpoint == checkpoint
            )[: self.quorum]
            self._adopt_stable(CheckpointCertificate(checkpoint, endorsements), out)
            return

    def _adopt_stable(self, certificate: CheckpointCertificate, out: Output) -> None:
        """A stable checkpoint: garbage-collect the log below it (section 4.3)."""
        height = certificate.checkpoint.height
        if height <= self.stable_height:
            return
        self.stable = certificate
        out.persist.append(certificate)
        out.notices.append(StableCheckpoint(certificate))
        self._check_rejoined(out)
        for table in (self.slots, self.prepared, self.committed):
            for seq in [s for s in table if s <= height]:
                del table[seq]
        for old in [h for h in self.checkpoint_votes if h <= height]:
            del self.checkpoint_votes[old]
        for old in [h for h in self.own_checkpoints if h < height]:
            del self.own_checkpoints[old]
        if height > self.last_delivered:
            signers = [e.signer for e in certificate.endorsements]
            self._fetch_from(signers[self.last_delivered % len(signers)], out)

    def _start_timers_if_unwatched(self, previous_ms: int, out: Output) -> None:
        """Timers measure how long this replica watched the primary fail to order.

        At the first step the clock is known only now: timers of restored work start
        here, not at 0. A replica not stepped for longer than a request timeout (and
        two status intervals), though a deadline of its own always falls within one
        status interval, had its process paused or starved: it did not watch
        meanwhile, and what came in meanwhile is still queued behind this step. Its
        timers start again rather than expire at once (firing them alone would move
        it into a view no one else wants, out of the running until the next real
        view change)."""
        if self._first_step:
            self._first_step = False
            self.pool.restart_timers(self.now_ms)
            return
        stalled_ms = self.now_ms - previous_ms
        params = self.params
        if stalled_ms <= max(params.request_timeout_ms, 2 * params.status_interval_ms):
            return
        self.marks["resumed_after_stall"] += 1
        self.pool.restart_timers(self.now_ms)
        if not self.active and self.view_change_deadline_ms is not None:
            self.view_change_deadline_ms = self.now_ms + self.view_change_timeout_ms
        out.notices.append(Resumed(stalled_ms))

    def _check_rejoined(self, out: Output) -> None:
        """Rejoined once the stable checkpoint passes the floor: everything signed in the
        past life is then below it, and a NewView from this replica (whose own ViewChange
        carries that checkpoint) can only hold sequence numbers above it."""
        floor = self.rejoin_floor
        if self.rejoining and floor is not None and self.stable_height >= floor:
            self.rejoining = False
            self.marks["rejoined_after_losing_records"] += 1
            out.notices.append(Rejoined(self.stable_height))

    def _diverge(self, height: int, reason: str, out: Output) -> None:
        self.diverged = True
        self.marks["diverged"] += 1
        out.notices.append(Diverged(height, reason))

    # ------------------------------------------------------------ view change (4.4)

    def _enter_view_change(self, view: View, out: Output) -> None:
        if view <= self.view or self.rejoining:
            return
        self.view = view
        self.active = False
        self.view_change_quorum_seen = False
        self.view_change_deadline_ms = self.now_ms + self.view_change_timeout_ms
        self.slots.clear()
        self.pool.clear_batches()
        prepared = tuple(self.prepared[seq] for seq in sorted(self.prepared))
        message = self._sign(ViewChange(view, self._own_stable(), prepared, self.id, b""))
        self.my_view_changes[view] = message
        for old in sorted(self.my_view_changes)[:-VIEW_CHANGES_KEPT]:
            del self.my_view_changes[old]
        self._forget_view_changes_below(view)
        self.view_changes.setdefault(view, {})[self.id] = message
        out.persist.append(message)
        out.broadcast(message)
        out.notices.append(ViewChanged(view, active=False))
        self._view_change_progress(out)

    def _own_stable(self) -> CheckpointCertificate | None:
        """The stable certificate a ViewChange carries: none while it is the previous
        validator set's (the epoch's base, which every member starts from)."""
        if self.stable is None or self.stable_height <= self.epoch_base:
            return None
        return self.stable

    def _on_view_change(self, message: ViewChange, out: Output) -> None:
        if message.replica == self.id:
            return
        if message.new_view < self.view or (message.new_view == self.view and self.active):
            # Old news. If it is for the view we run, its sender missed our NewView: resend
            # that (a NewView never prompts an answer, so this cannot loop between replicas).
            if message.new_view == self.view:
                self._help_laggard(message.replica, message.new_view, out)
            return
        if message.new_view > self.view + VIEW_AHEAD_MAX:
            raise PeerError(f"view change for view {message.new_view}, far beyond {self.view}")
        if message.replica in self.view_changes.get(message.new_view, {}):
            return
        self.verifier.view_change(message, self.params.window_size, self.epoch_base)
        self.view_changes.setdefault(message.new_view, {})[message.replica] = message
        self._view_change_progress(out)

    def _help_laggard(self, replica: ReplicaId, their_view: int, out: Output) -> None:
        """A peer is in an older view (its Status says so): give it what lets it catch up.

        The NewView of the last view we installed, if the peer has not reached it
        (it may have missed it). If we are ourselves changing view, also our
        ViewChange for the peer's view, which it may need to complete that view,
        and our current one, so it sees where we are.
        """
        installed = self.new_view_message
        if installed is not None and installed.view >= their_view:
            self.marks["new_view_resent_to_laggard"] += 1
            out.send.append((replica, installed))
        if self.active:
            return
        older = self.my_view_changes.get(View(their_view))
        if older is not None:
            self.marks["old_view_change_resent_to_laggard"] += 1
            out.send.append((replica, older))
        current = self.my_view_changes.get(self.view)
        if current is not None:
            out.send.append((replica, current))

    def _view_change_progress(self, out: Output) -> None:
        ahead: dict[ReplicaId, View] = {}
        for view, received in self.view_changes.items():
            if view > self.view:
                for replica in received:
                    ahead[replica] = max(view, ahead.get(replica, view))
        if len(ahead) > self.f:
            # f + 1 replicas are past our view, so at least one honest one is: join them
            # at the highest view that f + 1 of them have reached (section 4.5.2).
            self.marks["joined_view_change_of_f_plus_one"] += 1
            self._enter_view_change(sorted(ahead.values(), reverse=True)[self.f], out)
            return
        supporters = self.view_changes.get(self.view, {})
        if self.active or len(supporters) < self.quorum:
            return
        first_time = not self.view_change_quorum_seen
        self.view_change_quorum_seen = True
        if self.is_primary and first_time and not self.rejoining:
            chosen = [supporters[r] for r in sorted(supporters)][: self.quorum]
            self._send_new_view(chosen, out)

    def _forget_view_changes_below(self, view: View) -> None:
        for old in [v for v in self.view_changes if v < view]:
            del self.view_changes[old]

    def _send_new_view(self, view_changes: list[ViewChange], out: Output) -> None:
        plan = plan_new_view(
            self.chain_id, self.view, self.keys[self.id], view_changes, self.epoch_base
        )
        pre_prepares = tuple(
            self._sign(PrePrepare(self.view, SeqNo(b.header.height), b.digest, self.id, b""))
            for b in plan.batches
        )
        message = self._sign(NewView(self.view, tuple(view_changes), pre_prepares, self.id, b""))
        out.broadcast(message)
        self._install_new_view(message, plan, out)

    def _on_new_view(self, message: NewView, out: Output) -> None:
        view = message.view
        if view < self.view or (view == self.view and self.active) or message.replica == self.id:
            return
        if message.replica != self.primary_of(view):
            raise PeerError(f"new-view for view {view} from a replica that is not its primary")
        self.verifier.signed(message)
        senders = {m.replica for m in message.view_changes}
        if len(senders) != len(message.view_changes) or len(senders) < self.quorum:
            raise PeerError(f"new-view for view {view} lacks {self.quorum} distinct view changes")
        for view_change in message.view_changes:
            if view_change.new_view != view:
                raise PeerError(f"new-view for view {view} holds a view change for another view")
            self.verifier.view_change(view_change, self.params.window_size, self.epoch_base)
        plan = plan_new_view(
            self.chain_id, view, self.keys[message.replica], message.view_changes, self.epoch_base
        )
        expected = [(b.header.height, b.digest) for b in plan.batches]
        if [(p.seq, p.digest) for p in message.pre_prepares] != expected:
            raise PeerError(f"new-view for view {view} does not carry the prepared batches")
        for pre_prepare in message.pre_prepares:
            if pre_prepare.view != view or pre_prepare.replica != message.replica:
                raise PeerError(f"new-view for view {view} holds a foreign pre-prepare")
            self.verifier.signed(pre_prepare)
        self._install_new_view(message, plan, out)

    def _install_new_view(self, message: NewView, plan: NewViewPlan, out: Output) -> None:
        self.view = message.view
        self.active = True
        self.view_change_deadline_ms = None
        self.new_view_message = message
        self.slots.clear()
        self.pool.clear_batches()
        self._forget_view_changes_below(View(self.view + 1))
        for old in [v for v in self.my_view_changes if v <= self.view]:
            del self.my_view_changes[old]
        out.persist.append(message)
        out.notices.append(ViewChanged(self.view, active=True))
        if plan.stable is not None:
            self._adopt_stable(plan.stable, out)
        carried = False
        for pre_prepare, batch in zip(message.pre_prepares, plan.batches, strict=True):
            if pre_prepare.seq <= self.stable_height:
                continue
            carried = carried or bool(batch.transactions)
            ids = [tx.id for tx in batch.transactions]
            self._accept_batch(pre_prepare.seq, pre_prepare, batch, ids, out)
        if carried:
            self.marks["prepared_batch_carried_into_new_view"] += 1
        self.next_seq = SeqNo(max(plan.min_s + len(plan.batches), self.last_delivered) + 1)
        self.pool.restart_timers(self.now_ms)
        self._forward_pending_to_primary(out)

    # ------------------------------------------------------------ validator-set changes

    def _on_epoch_scheduled(self, scheduled: EpochScheduled) -> None:
        """Execution approved a new validator set for the blocks after `end_height`."""
        assert scheduled.validators.from_height == scheduled.end_height + 1
        if self.epoch_end is not None or scheduled.end_height < self.epoch_base:
            return
        self.epoch_end = scheduled.end_height
        self.next_validators = scheduled.validators
        self.marks["epoch_scheduled"] += 1

    def _maybe_start_epoch(self, out: Output) -> None:
        """The current set's last block is executed and certified: hand over to the next.

        Executed, not only delivered: the new epoch is recorded durably, and a replica
        that restarts in it can no longer check the old set's certificates, so any old
        block it had still to execute would be out of its reach.
        """
        end = self.epoch_end
        validators = self.next_validators
        if end is None or validators is None:
            return
        if self.executed < end or self.stable_height < end:
            return
        self.epoch_end = None
        self.next_validators = None
        self._set_validators(validators, self.epoch + 1)
        self.view = View(0)
        self.active = True
        self.view_change_quorum_seen = False
        self.view_change_deadline_ms = None
        self.view_change_timeout_ms = self.params.view_change_timeout_ms
        for table in (self.slots, self.prepared, self.committed, self.checkpoint_votes):
            table.clear()
        self.own_checkpoints.clear()
        self.view_changes.clear()
        self.my_view_changes.clear()
        self.new_view_message = None
        self.peer_status.clear()
        self.heard_ms.clear()
        self.next_seq = SeqNo(self.last_delivered + 1)
        self.pool.clear_batches()
        self.pool.restart_timers(self.now_ms)
        self.marks["epoch_started"] += 1
        out.notices.append(EpochStarted(self.epoch, validators, self.member))
        if self.member:
            self._forward_pending_to_primary(out)

    # ------------------------------------------------------------ catch-up and status

    def _on_status(self, status: Status, out: Output) -> None:
        if status.epoch != self.epoch:
            # Another validator set's announcement cannot be checked here; if it is ahead,
            # this replica is behind an epoch change: ask the validators it knows for blocks.
            if status.epoch > self.epoch:
                self._poll_fetch(out)
            return
        if status.replica == self.id or not self.member:
            return
        self.verifier.signed(status)
        self.last_heard_ms = self.heard_ms[status.replica] = self.now_ms
        previous = self.peer_status.get(status.replica)
        self.peer_status[status.replica] = status
        if previous is not None and self._primary_catching_up(previous, status):
            # It proposes again once it has executed enough (`unexecuted_max`): waiting for
            # that is not waiting for a failed primary. A false claim gains a lying primary
            # little: it cannot claim past this replica's own chain, whose end does not
            # move while it proposes nothing, and `request_wait_max_ms` still applies.
            self.last_progress_ms = self.now_ms
            self.marks["primary_catching_up"] += 1
        if self.rejoining and self.rejoin_floor is None and len(self.peer_status) >= self.quorum:
            # How far the chain is (PBFT's recovery estimate of the high watermark): every
            # vote this replica signed before it lost its records is for a sequence number
            # at or below that plus a window. Of a quorum of peers (2f + 1 or more), f + 1
            # are honest, so the (f + 1)-th highest stable height they claim is at least
            # the lowest honest claim, and at most the highest: a liar that claims a height
            # no one has cannot keep this replica from ever voting again. Waiting for a
            # quorum asks nothing new: the others must order a window of blocks without
            # this replica before it rejoins, which they can only do as a quorum.
            stable = self._peers_claim(lambda s: s.stable_height)
            self.rejoin_floor = stable + self.params.window_size
            self._check_rejoined(out)
        if status.view < self.view:
            self._help_laggard(status.replica, status.view, out)
        if status.executed_height > self.last_delivered:
            self._fetch_from(self.keys[status.replica], out)

    def _fetch_from(self, peer: bytes, out: Output) -> None:
        if self.fetching is not None or peer == self._signer.public_key:
            return
        self.fetching = (peer, self.now_ms + self.params.fetch_timeout_ms)
        start = self.last_delivered + 1
        if self.epoch_end is not None and self.last_delivered >= self.epoch_end:
            start = self.epoch_end  # all blocks are here: only the certificate is missing
        out.fetch.append(Fetch(peer, start, self.epoch_end))

    def _adopt_certificate_of_own_block(
        self, certificate: CheckpointCertificate | None, out: Output
    ) -> bool:
        """An answer certifying the block this replica already has at its height."""
        if certificate is None or certificate.checkpoint.height != self.last_delivered:
            return False
        if certificate.checkpoint.block_hash != self.last_block_hash:
            raise PeerError("the certificate is for another block at this replica's height")
        self._adopt_stable(certificate, out)
        return True

    def _poll_fetch(self, out: Output) -> None:
        """Ask the validators in turn for blocks (a follower, or a replica left behind)."""
        others = [k for k in self.keys if k != self._signer.public_key]
        if others:
            self.fetch_rotation += 1
            self._fetch_from(others[self.fetch_rotation % len(others)], out)

    def _on_blocks_fetched(self, fetched: BlocksFetched, out: Output) -> None:
        if self.fetching is None or self.fetching[0] != fetched.peer:
            return  # unsolicited or late
        self.fetching = None
        certificate = fetched.certificate
        if certificate is not None:
            self.verifier.certificate(certificate)
        if self._adopt_certificate_of_own_block(certificate, out):
            return
        start = self.last_delivered + 1
        last = start + len(fetched.blocks) - 1
        if self.epoch_end is not None and last > self.epoch_end:
            raise PeerError(f"blocks past height {self.epoch_end}, where the validator set changes")
        check_fetched_chain(
            self.verifier,
            fetched.blocks,
            start,
            (self.last_block_hash, self.last_block_time_ms),
            certificate,
        )
        for committed in fetched.blocks:
            out.deliver.append(committed)
            self._record_delivery(committed.block)
        for seq in [s for s in self.committed if s <= self.last_delivered]:
            del self.committed[seq]
        self.marks["state_transfer"] += 1
        out.notices.append(CatchUp(fetched.peer, start, self.last_delivered))
        if certificate is not None:
            self._adopt_stable(certificate, out)
        self._deliver_ready(out)

    # ------------------------------------------------------------ timers

    def _on_tick(self, out: Output) -> None:
        now = self.now_ms
        params = self.params
        # Requests expired even by a clock that is behind by the largest skew allowed can
        # no longer go into any block this replica would accept: stop timing and sharing them.
        self.pool.drop_expired(now - params.clock_skew_max_ms)
        if self.fetching is not None and now >= self.fetching[1]:
            self.fetching = None
        if not self.member:
            if now >= self.next_status_ms:
                self.next_status_ms = now + params.status_interval_ms
                self._poll_fetch(out)
            return
        deadline = self.view_change_deadline_ms
        if not self.active and deadline is not None and now >= deadline:
            self._on_view_change_timeout(out)
        elif self.active and (timers := self._request_timers_ms()) is not None:
            reforward_at, suspect_at = timers
            if now >= suspect_at and not self._in_touch_with_a_quorum():
                # Cut off: a view change needs a quorum, so asking for one alone would only
                # strand this replica in a view no one else wants. Wait a timeout more for
                # news, and share the requests in case only the primary is out of reach.
                self.marks["suspicion_held_out_of_touch"] += 1
                self.pool.restart_timers(now)
                self._share_waiting_requests(params.batch_size_max, out)
            elif now >= suspect_at:
                # Tell the other replicas about the requests the primary ignores, so that
                # they time them too and join the view change (the primary alone had them).
                self._share_waiting_requests(params.batch_size_max, out)
                self._enter_view_change(View(self.view + 1), out)
            elif now >= reforward_at:
                # Requests wait while the primary makes progress: a backlog, or a forward
                # that was lost. Every replica gets them again, and holds and times them.
                self.last_reforward_ms = now
                self._share_waiting_requests(REFORWARD_REQUESTS_MAX, out)
        if now >= self.next_resend_ms:
            self.next_resend_ms = now + params.resend_interval_ms
            self._resend(out)
        if now >= self.next_status_ms:
            self.next_status_ms = now + params.status_interval_ms
            status = Status(self.epoch, self.view, self.executed, self.stable_height, self.id, b"")
            out.broadcast(self._sign(status))
            if now - self.last_heard_ms > SILENCE_STATUS_INTERVALS * params.status_interval_ms:
                # No peer of this validator set is talking to us (they may have moved on to
                # the next set, or we were cut off): ask them for blocks instead.
                self._poll_fetch(out)
            elif self._epoch_certificate_missing():
                self.marks["epoch_certificate_fetched"] += 1
                self._poll_fetch(out)

    def _primary_catching_up(self, previous: Status, status: Status) -> bool:
        """Whether the primary's Status shows its executor, far enough behind this replica's
        chain to hold its proposals back, catching up."""
        return (
            status.replica == self.primary_of(self.view)
            and status.view == self.view == previous.view
            and previous.executed_height < status.executed_height <= self.last_delivered
            and self.last_delivered - previous.executed_height >= self.params.unexecuted_max
        )

    def _epoch_certificate_missing(self) -> bool:
        """This set's last block is executed here but not certified, a status interval on.

        Its certificate would have come from checkpoint votes; once the votes are lost
        and the peers of the next set have moved on, only a fetch brings it. Hearing from
        other replicas stuck the same way (institutions leaving with this one) is no
        sign of progress, so the silence rule above does not cover this.
        """
        end = self.epoch_end
        return end is not None and self.executed >= end and self.stable_height < end

    def _in_touch_with_a_quorum(self) -> bool:
        """Whether this replica heard lately from enough peers to make a quorum with them
        (each sends its Status every status interval)."""
        if not self.params.suspect_in_touch_only:
            return True
        since = self.now_ms - IN_TOUCH_STATUS_INTERVALS * self.params.status_interval_ms
        heard = sum(1 for at in self.heard_ms.values() if at >= since)
        return heard >= self.quorum - 1

    def _on_view_change_timeout(self, out: Output) -> None:
        if not self.view_change_quorum_seen:
            # Too few peers have joined this view change for a new view to be possible yet:
            # wait again rather than run ahead alone, and repeat our ViewChange.
            self.view_change_deadline_ms = self.now_ms + self.view_change_timeout_ms
            own = self.my_view_changes.get(self.view)
            if own is not None:
                out.broadcast(own)
            # The others may still follow the primary this replica suspected (it may only
            # have been unreachable from here): its waiting requests can commit there.
            self._share_waiting_requests(self.params.batch_size_max, out)
            return
        # 2f + 1 replicas want this view but its NewView did not come: try the next one,
        # waiting longer (section 4.5.2).
        self.marks["view_change_timeout_doubled"] += 1
        self.view_change_timeout_ms = min(
            2 * self.view_change_timeout_ms, self.params.view_change_timeout_max_ms
        )
        self._enter_view_change(View(self.view + 1), out)

    def _request_timers_ms(self) -> tuple[int, int] | None:
        """(share again at, suspect the primary at) for the oldest waiting request; None
        when nothing waits or this replica is catching up (it then sees requests that the
        others ordered long ago).

        A request waits `request_timeout_ms` from its arrival or from the primary's last
        progress, whichever is later, so that a backlog under load is not taken for a
        failure; but never more than `request_wait_max_ms` in all, so that a primary that
        keeps ordering other requests while it ignores one is replaced too.
        """
        oldest = self.pool.oldest_arrival_ms()
        if oldest is None or self._behind():
            return None
        params = self.params
        timeout = params.request_timeout_ms
        suspect_at = min(
            oldest + params.request_wait_max_ms, max(oldest, self.last_progress_ms) + timeout
        )
        reforward_at = max(oldest, self.last_reforward_ms) + timeout
        return reforward_at, suspect_at

    def peers_executed_height(self) -> int:
        """The highest height that f + 1 peers say they have executed (0 until f + 1 have
        spoken). One of them is honest, so the chain is at least that long; a height
        that f or fewer claim may be a lie, which alone must move nothing here: a
        primary that claimed a height no one has would otherwise make every backup
        think itself behind and stop timing the requests it ignores."""
        return self._peers_claim(lambda s: s.executed_height)

    def _peers_claim(self, height_of: Callable[[Status], int]) -> int:
        """The (f + 1)-th highest of a height the peers claim: at least one honest peer
        claims that much or more. 0 until f + 1 have spoken."""
        heights = sorted((height_of(s) for s in self.peer_status.values()), reverse=True)
        return heights[self.f] if len(heights) > self.f else 0

    def _behind(self) -> bool:
        return (
            self.stable_height > self.last_delivered
            or self.peers_executed_height() > self.last_delivered
        )

    def _share_waiting_requests(self, limit: int, out: Output) -> None:
        waiting = self.pool.unassigned(limit)
        if waiting:
            out.broadcast(Requests(tuple(tx for _, tx in waiting)))

    def _resend(self, out: Output) -> None:
        """Links lose messages: repeat our own part of every unfinished step."""
        if not self.active:
            own = self.my_view_changes.get(self.view)
            if own is not None:
                out.broadcast(own)
            return
        interval_ms = self.params.resend_interval_ms
        for slot in self.slots.values():
            if (
                self.is_primary
                and slot.pre_prepare is not None
                and slot.batch is not None
                and (
                    slot.proposal_sent_ms is None
                    or self.now_ms - slot.proposal_sent_ms >= interval_ms
                )
            ):
                # A proposal is large: only to the backups that have not answered it, and
                # only once it has gone unanswered for a whole interval.
                slot.proposal_sent_ms = self.now_ms
                proposal = Proposal(slot.pre_prepare, slot.batch)
                for replica in range(self.n):
                    if replica != self.id and not (
                        replica in slot.prepares or replica in slot.commits
                    ):
                        out.send.append((ReplicaId(replica), proposal))
            if slot.my_prepare is not None:
                out.broadcast(slot.my_prepare)
            if slot.my_commit is not None:
                out.broadcast(slot.my_commit)
        latest = max((h for h in self.own_checkpoints if h > self.stable_height), default=None)
        if latest is not None:
            vote = self.checkpoint_votes.get(latest, {}).get(self.id)
            if vote is not None:
                out.broadcast(vote)

    # ------------------------------------------------------------ helpers

    def _accepts_view(self, view: int) -> bool:
        return view == self.view and self.active

    def _in_window(self, seq: int) -> bool:
        """h < n <= H (section 4.2): below is stale, above is refused until the log moves."""
        if seq <= self.low_watermark:
            return False
        if self.epoch_end is not None and seq > self.epoch_end:
            return False  # the next validator set orders it
        if seq > self.low_watermark + self.params.window_size:
            raise PeerError(f"seq {seq} is outside the window above {self.low_watermark}")
        return True

    def _slot(self, seq: SeqNo) -> Slot:
        slot = self.slots.get(seq)
        if slot is None:
            slot = self.slots[seq] = Slot()
        return slot

    def _sign(self, message: S) -> S:
        assert self.member, "only a validator signs votes"
        signature = self._signer.sign(signing_bytes(self.chain_id, message, self.epoch))
        return dataclasses.replace(message, signature=signature)

    # ------------------------------------------------------------ recovery

    def _restore(self, restored: Restored) -> None:
        restore_into(self, restored)


def _kind(event: Event) -> str:
    if isinstance(event, MessageReceived):
        return type(event.message).__name__
    return type(event).__name__


def _sender(event: Event) -> int | None:
    if isinstance(event, MessageReceived):
        message = event.message
        if isinstance(message, Proposal):
            return message.pre_prepare.replica
        replica = getattr(message, "replica", None)
        return replica if isinstance(replica, int) else None
    return None
