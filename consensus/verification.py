"""Checks of what peers send: signatures, membership, certificates (the peer's fault when wrong).

Rule: every check here is pure and either returns or raises `PeerError` with
the reason; no check changes replica state, so a rejected message leaves the
replica exactly as it was. (Our own broken invariants are `assert`s in the
replica: a bug, not an input.)
"""

from __future__ import annotations

from consensus.messages import (
    CheckpointVote,
    CommitCertificate,
    PreparedCertificate,
    Signed,
    ViewChange,
    signing_bytes,
)
from ledger.checkpoint import CheckpointCertificate, verify_certificate
from ledger.errors import CertificateError
from ledger.keys import VerifyFn
from ledger.validators import ValidatorSet


class PeerError(Exception):
    """A peer's message is invalid; the reason says why."""

    @property
    def reason(self) -> str:
        return str(self)


class Verifier:
    __slots__ = ("chain_id", "epoch", "validators", "verify")

    def __init__(
        self, chain_id: str, validators: ValidatorSet, verify: VerifyFn, epoch: int = 0
    ) -> None:
        self.chain_id = chain_id
        self.validators = validators
        self.verify = verify
        self.epoch = epoch

    def signed(self, message: Signed) -> None:
        """The sender is a member and the signature is theirs."""
        replica = message.replica
        if not 0 <= replica < self.validators.n:
            raise PeerError(f"replica {replica} is not a member")
        key = self.validators.validators[replica]
        signed = signing_bytes(self.chain_id, message, self.epoch)
        if not self.verify(key, message.signature, signed):
            raise PeerError(f"bad signature from replica {replica}")

    def checkpoint_vote(self, vote: CheckpointVote) -> None:
        replica = vote.replica
        if not 0 <= replica < self.validators.n:
            raise PeerError(f"replica {replica} is not a member")
        if vote.checkpoint.chain_id != self.chain_id:
            raise PeerError(f"checkpoint for chain {vote.checkpoint.chain_id!r}")
        key = self.validators.validators[replica]
        if not self.verify(key, vote.signature, vote.checkpoint.signing_bytes()):
            raise PeerError(f"bad checkpoint signature from replica {replica}")

    def certificate(self, certificate: CheckpointCertificate) -> None:
        try:
            verify_certificate(certificate, self.validators, self.chain_id, self.verify)
        except CertificateError as exc:
            raise PeerError(f"checkpoint certificate: {exc.reason}") from None

    def prepared_certificate(self, certificate: PreparedCertificate) -> None:
        """A PrePrepare from its view's primary and 2f matching Prepares from other members."""
        pre_prepare = certificate.pre_prepare
        view, seq, digest = pre_prepare.view, pre_prepare.seq, pre_prepare.digest
        primary = view % self.validators.n
        if pre_prepare.replica != primary:
            raise PeerError(f"prepared certificate for seq {seq}: pre-prepare not from the primary")
        if certificate.batch.digest != digest:
            raise PeerError(f"prepared certificate for seq {seq}: batch does not match its digest")
        if certificate.batch.header.height != seq:
            raise PeerError(f"prepared certificate for seq {seq}: batch is for another height")
        self.signed(pre_prepare)
        senders: set[int] = set()
        for prepare in certificate.prepares:
            if (prepare.view, prepare.seq, prepare.digest) != (view, seq, digest):
                raise PeerError(f"prepared certificate for seq {seq}: a prepare does not match")
            if prepare.replica == primary or prepare.replica in senders:
                raise PeerError(f"prepared certificate for seq {seq}: repeated or primary prepare")
            self.signed(prepare)
            senders.add(prepare.replica)
        if len(senders) < self.validators.quorum - 1:
            raise PeerError(f"prepared certificate for seq {seq}: {len(senders)} prepares")

    def view_change(self, message: ViewChange, window_size: int, base: int = 0) -> None:
        """A signed ViewChange whose stable checkpoint and prepared certificates all hold.

        `base` is the last height of earlier validator sets: a ViewChange without a
        stable certificate starts from there.
        """
        self.signed(message)
        stable_height = base
        if message.stable is not None:
            self.certificate(message.stable)
            stable_height = message.stable.checkpoint.height
            if stable_height <= base:
                raise PeerError("view change carries a checkpoint of an earlier validator set")
        seen: set[int] = set()
        for certificate in message.prepared:
            seq = certificate.pre_prepare.seq
            if certificate.pre_prepare.view >= message.new_view:
                raise PeerError(f"view change carries seq {seq} prepared in a future view")
            if not stable_height < seq <= stable_height + window_size:
                raise PeerError(f"view change carries seq {seq} outside its window")
            if seq in seen:
                raise PeerError(f"view change carries seq {seq} twice")
            seen.add(seq)
            self.prepared_certificate(certificate)

    def commit_certificate(self, certificate: CommitCertificate, seq: int) -> None:
        """2f + 1 distinct members committed this batch header at `seq` in one view."""
        digest = certificate.batch.digest
        if certificate.batch.height != seq:
            raise PeerError(
                f"commit certificate for seq {seq} names height {certificate.batch.height}"
            )
        commits = certificate.commits
        if not commits:
            raise PeerError(f"commit certificate for seq {seq} is empty")
        view = commits[0].view
        senders: set[int] = set()
        for commit in commits:
            if (commit.view, commit.seq, commit.digest) != (view, seq, digest):
                raise PeerError(f"commit certificate for seq {seq}: a commit does not match")
            if commit.replica in senders:
                raise PeerError(f"commit certificate for seq {seq}: repeated commit")
            self.signed(commit)
            senders.add(commit.replica)
        if len(senders) < self.validators.quorum:
            raise PeerError(f"commit certificate for seq {seq}: {len(senders)} commits")
