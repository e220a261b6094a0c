"""What a replica refuses from its peers, and that a refusal changes nothing.

PBFT (OSDI'99, section 4.2) has a backup accept a pre-prepare only if it is
signed by the view's primary, in the current view, with a sequence number
between the water marks h and H, and for the digest of the request; a prepare
or commit only if its signature is right and it is in the view and window.
This implementation adds content rules for batches (time within the clock
skew, valid, live, same-chain client transactions). Every refusal must come
back as an `Output.rejected` entry with a specific reason, and must leave the
replica's state exactly as it was ("every check happens before the first
assignment", consensus/replica.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from consensus.events import MessageReceived, Output, Rejected, RequestsReceived, Resumed
from consensus.messages import Message, Prepare, PrePrepare, Proposal, Requests
from consensus.types import ReplicaId, SeqNo, View
from ledger.checkpoint import Checkpoint

if TYPE_CHECKING:
    from conftest import Cluster, Helpers, Kit

MakeCluster = Callable[..., "Cluster"]

RECEIVER = 3
"""A backup in view 0 that is not the primary of view 1 either."""
T0 = 1_000_000  # conftest.START_MS


def checkpoint(kit: Kit, height: int = 1, chain_id: str | None = None) -> Checkpoint:
    return Checkpoint(
        kit.chain_id if chain_id is None else chain_id,
        height,
        bytes([height]) * 32,
        b"\x01" * 32,
        height,
        b"\x02" * 32,
        T0 + height,
    )


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Cluster:
    """Replica 3 has accepted the primary's proposal for seq 1 (and prepared it), has a vote
    of replica 0 for the checkpoint at height 1, and holds one more pending request."""
    cluster = make_cluster(checkpoint_interval=100)
    kit = cluster.kit
    first = kit.tx(b"first")
    cluster.submit(RECEIVER, kit.tx(b"pending"), from_client=False)
    cluster.receive(RECEIVER, kit.proposal(kit.batch(1, [first])))
    cluster.receive(RECEIVER, kit.checkpoint_vote(0, checkpoint(kit)))
    replica = cluster.replicas[RECEIVER]
    assert replica.slots[SeqNo(1)].my_prepare is not None
    assert set(replica.checkpoint_votes[1]) == {0}
    assert cluster.rejected(RECEIVER) == []
    return cluster


# Each case: (message built from the kit, how far the receiver's clock moved, expected reason).
Case = Callable[["Kit"], Message]


def _bad_signature_prepare(kit: Kit) -> Message:
    digest = kit.batch(1, [kit.tx(b"first")]).digest
    return dataclasses.replace(kit.prepare(0, 1, digest, 2), signature=bytes(64))


def _non_member_prepare(kit: Kit) -> Message:
    digest = kit.batch(1, [kit.tx(b"first")]).digest
    return kit.sign(Prepare(View(0), SeqNo(1), digest, ReplicaId(7), b""), signer=kit.outsider)


def _proposal_from_a_backup(kit: Kit) -> Message:
    batch = kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1, proposer=2)
    return kit.proposal(batch, replica=2)


def _proposal_with_another_batch(kit: Kit) -> Message:
    announced = kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1)
    carried = kit.batch(2, [kit.tx(b"substituted")], time_ms=T0 + 1)
    return Proposal(kit.proposal(announced).pre_prepare, carried)


def _proposal_from_the_future(kit: Kit) -> Message:
    return kit.proposal(kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 5_001))


def _proposal_with_a_forged_client_transaction(kit: Kit) -> Message:
    forged = kit.tx(b"forged", valid_signature=False)
    return kit.proposal(kit.batch(2, [forged], time_ms=T0 + 1))


def _proposal_with_an_expired_transaction(kit: Kit) -> Message:
    expired = kit.tx(b"expired", expires_at_ms=T0)
    return kit.proposal(kit.batch(2, [expired], time_ms=T0 + 1))


def _prepare_beyond_the_window(kit: Kit) -> Message:
    return kit.prepare(0, 65, b"\x05" * 32, 2)  # window_size 64 above stable height 0


def _lone_pre_prepare(kit: Kit) -> Message:
    batch = kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1)
    return kit.pre_prepare(0, 2, batch.digest)


def _new_view_from_a_non_primary(kit: Kit) -> Message:
    changes = [kit.view_change(r, 1) for r in (0, 1, 2)]
    return kit.new_view(1, changes, replica=2)


def _new_view_without_a_quorum(kit: Kit) -> Message:
    return kit.new_view(1, [kit.view_change(r, 1) for r in (1, 2)])


def _new_view_with_a_repeated_view_change(kit: Kit) -> Message:
    return kit.new_view(1, [kit.view_change(r, 1) for r in (1, 2, 2)])


def _checkpoint_vote_with_a_bad_signature(kit: Kit) -> Message:
    return kit.checkpoint_vote(2, checkpoint(kit), signer=kit.signers[1])


def _prepare_for_another_chain(kit: Kit) -> Message:
    digest = kit.batch(1, [kit.tx(b"first")]).digest
    return kit.sign(Prepare(View(0), SeqNo(1), digest, ReplicaId(2), b""), chain_id="other")


def _proposal_signed_for_another_chain(kit: Kit) -> Message:
    batch = kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1)
    pre_prepare = PrePrepare(View(0), SeqNo(2), batch.digest, ReplicaId(0), b"")
    return Proposal(kit.sign(pre_prepare, chain_id="other"), batch)


def _batch_for_another_chain(kit: Kit) -> Message:
    return kit.proposal(kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1, chain_id="other"))


def _checkpoint_for_another_chain(kit: Kit) -> Message:
    return kit.checkpoint_vote(2, checkpoint(kit, chain_id="other"))


REFUSED: dict[str, tuple[Case, int, str]] = {
    "prepare-with-a-bad-signature": (_bad_signature_prepare, 0, r"bad signature from replica 2$"),
    "prepare-from-a-non-member": (_non_member_prepare, 0, r"replica 7 is not a member"),
    "proposal-from-a-non-primary": (
        _proposal_from_a_backup,
        0,
        r"pre-prepare from replica 2, not the primary",
    ),
    "proposal-whose-batch-does-not-match-its-digest": (
        _proposal_with_another_batch,
        0,
        r"seq 2: the batch does not match the pre-prepare's digest",
    ),
    "proposal-time-ahead-of-the-clock-skew": (
        _proposal_from_the_future,
        0,
        r"batch time is 5001 ms from this replica's clock",
    ),
    "proposal-time-behind-the-clock-skew": (
        lambda kit: kit.proposal(kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1)),
        5_002,
        r"batch time is 5001 ms from this replica's clock",
    ),
    "batch-with-a-badly-signed-client-transaction": (
        _proposal_with_a_forged_client_transaction,
        0,
        r"transaction [0-9a-f]{64}: bad client signature",
    ),
    "batch-with-an-expired-transaction": (
        _proposal_with_an_expired_transaction,
        0,
        r"transaction [0-9a-f]{64}: transaction expired",
    ),
    "prepare-beyond-the-window": (
        _prepare_beyond_the_window,
        0,
        r"seq 65 is outside the window above 0",
    ),
    "pre-prepare-outside-a-proposal": (
        _lone_pre_prepare,
        0,
        r"a pre-prepare travels only inside a proposal",
    ),
    "new-view-from-a-non-primary": (
        _new_view_from_a_non_primary,
        0,
        r"new-view for view 1 from a replica that is not its primary",
    ),
    "new-view-without-a-quorum-of-view-changes": (
        _new_view_without_a_quorum,
        0,
        r"new-view for view 1 lacks 3 distinct view changes",
    ),
    "new-view-with-a-repeated-view-change": (
        _new_view_with_a_repeated_view_change,
        0,
        r"new-view for view 1 lacks 3 distinct view changes",
    ),
    "checkpoint-vote-with-a-bad-signature": (
        _checkpoint_vote_with_a_bad_signature,
        0,
        r"bad checkpoint signature from replica 2",
    ),
    "prepare-signed-for-another-chain": (
        _prepare_for_another_chain,
        0,
        r"bad signature from replica 2$",
    ),
    "proposal-signed-for-another-chain": (
        _proposal_signed_for_another_chain,
        0,
        r"bad signature from replica 0$",
    ),
    "batch-for-another-chain": (_batch_for_another_chain, 0, r"batch for chain 'other'"),
    "checkpoint-vote-for-another-chain": (
        _checkpoint_for_another_chain,
        0,
        r"checkpoint for chain 'other'",
    ),
}


def _sender(message: Message) -> int | None:
    replica = getattr(message, "replica", None)
    return replica if isinstance(replica, int) else None


@pytest.mark.parametrize("case", list(REFUSED))
def test_an_invalid_message_is_rejected_and_changes_nothing(
    case: str, cluster: Cluster, helpers: type[Helpers]
) -> None:
    build, clock_moved_ms, reason = REFUSED[case]
    message = build(cluster.kit)
    replica = cluster.replicas[RECEIVER]
    before = helpers.snapshot(replica)

    cluster.now_ms += clock_moved_ms
    output = cluster.receive(RECEIVER, message)

    assert len(output.rejected) == 1, output
    rejected = output.rejected[0]
    kind = "Proposal" if isinstance(message, Proposal) else type(message).__name__
    assert rejected.kind == kind
    if not isinstance(message, Proposal):  # see test_a_rejected_proposal_names_its_sender
        assert rejected.sender == _sender(message)
    assert re.search(reason, rejected.reason), rejected.reason
    assert output.send == [] and output.persist == [] and output.deliver == []
    # A clock moved by more than a request timeout with no step between is a stall to
    # the replica, which says so (Resumed); the message itself changes nothing.
    assert [n for n in output.notices if not isinstance(n, Resumed)] == []
    assert helpers.snapshot(replica) == before


def test_a_rejected_proposal_names_its_sender(cluster: Cluster) -> None:
    """`Rejected.sender` says whose fault a refusal is (logs and metrics find a faulty peer
    by it); a Proposal's sender is the replica that signed its pre-prepare."""
    message = _proposal_from_a_backup(cluster.kit)
    output = cluster.receive(RECEIVER, message)
    assert [(r.kind, r.sender) for r in output.rejected] == [("Proposal", 2)]


def test_a_batch_with_a_transaction_for_another_chain_is_refused(
    cluster: Cluster, helpers: type[Helpers]
) -> None:
    """A client transaction names its chain so that it cannot be replayed on another one.

    A replica refuses such a request from a client (`_request_problem`), so a backup must not
    prepare a batch holding one either: batching.py says a backup prepares a fresh batch
    "only if it could have built it itself".
    """
    kit = cluster.kit
    foreign = kit.tx(b"replayed from another chain", chain_id="other")
    assert kit.validate_request(foreign) is None  # validly signed by its client
    message = kit.proposal(kit.batch(2, [foreign], time_ms=T0 + 1))
    replica = cluster.replicas[RECEIVER]
    before = helpers.snapshot(replica)

    output = cluster.receive(RECEIVER, message)

    assert [p for _, p in output.send if isinstance(p, Prepare)] == [], (
        "the backup prepared a batch holding a transaction for chain 'other'"
    )
    assert len(output.rejected) == 1
    assert re.search(r"chain 'other'", output.rejected[0].reason)
    assert helpers.snapshot(replica) == before


def test_a_client_request_for_another_chain_is_rejected(
    cluster: Cluster, helpers: type[Helpers]
) -> None:
    kit = cluster.kit
    foreign = kit.tx(b"for another chain", chain_id="other")
    replica = cluster.replicas[RECEIVER]
    before = helpers.snapshot(replica)
    output = cluster.step(RECEIVER, RequestsReceived((foreign,)))
    assert output.rejected == [
        Rejected("request", None, f"{foreign.id.hex()}: transaction for chain 'other'")
    ]
    assert output.send == []
    assert helpers.snapshot(replica) == before


@pytest.mark.parametrize(
    ("name", "reason"),
    [("forged", "bad client signature"), ("expired", "transaction expired")],
)
def test_an_invalid_client_request_is_rejected_and_not_relayed(
    name: str, reason: str, cluster: Cluster, helpers: type[Helpers]
) -> None:
    kit = cluster.kit
    if name == "forged":
        tx = kit.tx(b"forged request", valid_signature=False)
    else:
        tx = kit.tx(b"expired request", expires_at_ms=T0 - 1)
    replica = cluster.replicas[RECEIVER]
    before = helpers.snapshot(replica)
    output = cluster.receive(RECEIVER, Requests((tx,)))
    assert output.rejected == [Rejected("request", None, f"{tx.id.hex()}: {reason}")]
    assert output.send == []
    assert helpers.snapshot(replica) == before


# ---------------------------------------------------------------- old views


@pytest.fixture
def in_view_1(cluster: Cluster) -> Cluster:
    """Replica 3 has installed a NewView for view 1 from its primary, replica 1."""
    kit = cluster.kit
    new_view = kit.new_view(1, [kit.view_change(r, 1) for r in (0, 1, 2)])
    output = cluster.receive(RECEIVER, new_view)
    assert output.rejected == []
    replica = cluster.replicas[RECEIVER]
    assert (replica.view, replica.active) == (1, True)
    return cluster


def _old_view_messages(kit: Kit) -> dict[str, Message]:
    batch = kit.batch(2, [kit.tx(b"second")], time_ms=T0 + 1)
    return {
        "proposal": kit.proposal(batch),
        "prepare": kit.prepare(0, 2, batch.digest, 2),
        "prepare-with-a-bad-signature": dataclasses.replace(
            kit.prepare(0, 2, batch.digest, 2), signature=bytes(64)
        ),
        "commit": kit.commit(0, 2, batch.digest, 2),
        "view-change": kit.view_change(2, 0),
        "new-view": kit.new_view(0, [kit.view_change(r, 0) for r in (0, 1, 2)]),
    }


@pytest.mark.parametrize(
    "name",
    ["proposal", "prepare", "prepare-with-a-bad-signature", "commit", "view-change", "new-view"],
)
def test_a_message_from_an_older_view_is_ignored_without_rejection(
    name: str, in_view_1: Cluster, helpers: type[Helpers]
) -> None:
    """Section 4.2: a replica accepts protocol messages only for its current view."""
    message = _old_view_messages(in_view_1.kit)[name]
    replica = in_view_1.replicas[RECEIVER]
    before = helpers.snapshot(replica)
    output = in_view_1.step(RECEIVER, MessageReceived(message))
    assert output == Output()
    assert helpers.snapshot(replica) == before


# ---------------------------------------------------------------- no trace of a refusal


def _fresh_seq_prepare(kit: Kit) -> Message:
    return dataclasses.replace(kit.prepare(0, 5, b"\x05" * 32, 2), signature=bytes(64))


def _fresh_seq_commit(kit: Kit) -> Message:
    return dataclasses.replace(kit.commit(0, 5, b"\x05" * 32, 2), signature=bytes(64))


def _fresh_height_checkpoint_vote(kit: Kit) -> Message:
    return kit.checkpoint_vote(2, checkpoint(kit, height=3), signer=kit.signers[1])


def _forged_view_change(kit: Kit) -> Message:
    return dataclasses.replace(kit.view_change(2, 4), signature=bytes(64))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (_fresh_seq_prepare, "bad signature from replica 2"),
        (_fresh_seq_commit, "bad signature from replica 2"),
        (_fresh_height_checkpoint_vote, "bad checkpoint signature from replica 2"),
        (_forged_view_change, "bad signature from replica 2"),
    ],
    ids=["prepare-new-seq", "commit-new-seq", "checkpoint-vote-new-height", "view-change"],
)
def test_a_forged_vote_for_a_new_seq_height_or_view_leaves_no_trace(
    build: Case, reason: str, cluster: Cluster, helpers: type[Helpers]
) -> None:
    """A forged vote about a sequence number, height or view the replica holds nothing for
    must not create an (empty) entry for it: the refusal leaves the state as it was."""
    replica = cluster.replicas[RECEIVER]
    before = helpers.snapshot(replica)
    output = cluster.receive(RECEIVER, build(cluster.kit))
    assert [r.reason for r in output.rejected] == [reason]
    assert helpers.snapshot(replica) == before
