"""The invariants every simulated run must keep, checked as the run goes.

One canonical history (TigerBeetle's state checker): the first honest replica
to deliver a height fixes its block, the first to execute it fixes its state,
and every other honest replica is compared with those. Also: every executed
transaction was submitted by a client with a valid signature; no honest
replica executes a transaction twice; an honest replica never signs two
different messages for one (kind, view, seq), even across crashes; and its
view never goes back below what it has already sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.events import CommittedBlock, Executed
from consensus.messages import Commit, Message, NewView, Prepare, Proposal, ViewChange
from ledger.keys import VerifyFn

Signer = tuple[int, int]
"""(key index, epoch): who signed, within one validator set's numbering."""


@dataclass(slots=True)
class Checker:
    verify: VerifyFn
    submitted: dict[bytes, int] = field(default_factory=dict)
    """Client transaction id -> virtual time of first submission."""
    block_hashes: dict[int, bytes] = field(default_factory=dict)
    states: dict[int, tuple[bytes, int, bytes]] = field(default_factory=dict)
    signed: dict[tuple[Signer, int, int, int], bytes] = field(default_factory=dict)
    sent_view: dict[Signer, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def violate(self, now_ms: int, text: str) -> None:
        self.violations.append(f"t={now_ms}ms {text}")

    def on_deliver(self, now_ms: int, host: int, committed: CommittedBlock) -> None:
        block = committed.block
        height = block.header.height
        known = self.block_hashes.setdefault(height, block.hash)
        if known != block.hash:
            self.violate(now_ms, f"agreement: host {host} delivered another block at {height}")
        for tx in block.transactions:
            if tx.id not in self.submitted:
                self.violate(now_ms, f"validity: block {height} holds an unsubmitted transaction")
            elif not self.verify(tx.body.sender, tx.signature, tx.body.signing_bytes()):
                self.violate(now_ms, f"validity: block {height} holds a badly signed transaction")

    def on_executed(self, now_ms: int, host: int, executed: Executed) -> None:
        state = (executed.state_root, executed.log_size, executed.log_root)
        known = self.states.setdefault(executed.height, state)
        if known != state:
            self.violate(now_ms, f"state: host {host} differs at height {executed.height}")

    def on_sent(self, now_ms: int, replica: Signer, message: Message) -> None:
        """An honest replica's signed votes: one per (epoch, kind, view, seq), forever."""
        match message:
            case Proposal(pre_prepare=p):
                self._signed_once(now_ms, (replica, 1, p.view, p.seq), p.signature)
                self._saw_view(replica, p.view)
            case Prepare() | Commit():
                kind = 2 if isinstance(message, Prepare) else 3
                key = (replica, kind, message.view, message.seq)
                self._signed_once(now_ms, key, message.signature)
                self._saw_view(replica, message.view)
            case ViewChange():
                self._signed_once(now_ms, (replica, 4, message.new_view, 0), message.signature)
                self._saw_view(replica, message.new_view)
            case NewView():
                self._saw_view(replica, message.view)
            case _:
                pass

    def _signed_once(
        self, now_ms: int, key: tuple[Signer, int, int, int], signature: bytes
    ) -> None:
        known = self.signed.setdefault(key, signature)
        if known != signature:
            kind = ("pre-prepare", "prepare", "commit", "view-change")[key[1] - 1]
            self.violate(
                now_ms,
                f"replica {key[0][0]} signed two different {kind}s in view {key[2]}"
                f" of epoch {key[0][1]}",
            )

    def _saw_view(self, replica: Signer, view: int) -> None:
        if view > self.sent_view.get(replica, 0):
            self.sent_view[replica] = view

    def on_restart(
        self, now_ms: int, host: int, replica: Signer, view: int, records_lost: bool
    ) -> None:
        # A replica that lost its records may restart in an older view; what must hold
        # then is that it signs nothing conflicting, which `on_sent` checks.
        if not records_lost and view < self.sent_view.get(replica, 0):
            self.violate(
                now_ms,
                f"host {host} restarted in view {view} below its sent view "
                f"{self.sent_view[replica]}",
            )
