"""View changes (Castro and Liskov, OSDI'99, section 4.4; the f + 1 rule is section 4.5.2).

A backup whose timer for a pending request expires suspects the primary and
multicasts a VIEW-CHANGE for view v + 1 carrying its stable checkpoint and
prepared certificates. The primary of v + 1 collects 2f + 1 of them and
multicasts a NEW-VIEW whose pre-prepares re-propose, for every sequence number
between the latest stable checkpoint and the highest prepared one, the batch
prepared in the highest view, or a null batch where none was prepared. So a
request that may have committed somewhere keeps its sequence number.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.events import Resumed, ViewChanged
from consensus.messages import (
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    Proposal,
    Status,
    ViewChange,
)
from consensus.types import ReplicaId, View

if TYPE_CHECKING:
    from conftest import Cluster

MakeCluster = Callable[..., "Cluster"]
TIMEOUT_MS = 3_000  # Parameters.request_timeout_ms


def from_replica(replica: int) -> Callable[[int, int, Message], bool]:
    """A filter that silences one replica (nothing it sends arrives)."""
    return lambda sender, receiver, message: sender != replica


def view_changes_sent(cluster: Cluster, index: int) -> list[ViewChange]:
    return [m for m in cluster.sent(index, ViewChange) if isinstance(m, ViewChange)]


def the_new_view(cluster: Cluster, index: int) -> NewView:
    """The one NewView replica `index` multicast (it may re-send that same one to a laggard)."""
    sent = [(t, m) for o in cluster.outputs(index) for t, m in o.send if isinstance(m, NewView)]
    broadcast = [m for t, m in sent if t is None]
    assert len(broadcast) == 1, sent
    assert {m for _, m in sent} == set(broadcast)
    return broadcast[0]


def test_a_backup_whose_request_is_not_ordered_in_time_asks_for_the_next_view(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.4: a backup with a pending request starts a timer; when it expires in view v
    the backup multicasts VIEW-CHANGE for v + 1 (persisted before it is sent)."""
    cluster = make_cluster()
    cluster.filter = from_replica(0)  # the primary's proposals never arrive
    cluster.submit(2, cluster.kit.tx(b"ignored by the primary"))
    cluster.run()
    backup = cluster.replicas[2]

    [early] = cluster.tick(TIMEOUT_MS - 1, replicas=[2])
    assert not any(isinstance(m, ViewChange) for _, m in early.send)
    assert (backup.view, backup.active) == (0, True)

    [output] = cluster.tick(1, replicas=[2])
    [(target, message)] = [(t, m) for t, m in output.send if isinstance(m, ViewChange)]
    assert target is None
    assert isinstance(message, ViewChange)
    assert (message.new_view, message.replica, message.stable, message.prepared) == (
        1,
        2,
        None,
        (),
    )
    assert message in output.persist, "persisted in the Output that sends it"
    assert ViewChanged(View(1), active=False) in output.notices
    assert (backup.view, backup.active) == (1, False)
    cluster.assert_write_ahead(2)


def test_one_peer_claiming_a_height_no_one_has_does_not_silence_the_request_timer(
    make_cluster: MakeCluster,
) -> None:
    """A primary that ignores a request and announces a height far past everyone's must
    still be suspected in time. A height counts only once f + 1 peers claim it, one of
    them honest; a single claim used to make every backup think itself behind and stop
    timing requests (found by tests/node/test_node_byzantine_peer.py)."""
    cluster = make_cluster()
    cluster.filter = from_replica(0)
    cluster.submit(2, cluster.kit.tx(b"ignored by a lying primary"))
    cluster.run()
    backup = cluster.replicas[2]
    cluster.receive(2, cluster.kit.sign(Status(0, View(0), 2**62, 2**62, ReplicaId(0), b"")))
    assert backup.peers_executed_height() == 0

    [output] = cluster.tick(TIMEOUT_MS, replicas=[2])
    sent = [(t, m.new_view) for t, m in output.send if isinstance(m, ViewChange)]
    assert (None, 1) in sent, output.send
    assert (backup.view, backup.active) == (1, False)


def test_a_backup_that_did_not_run_for_a_while_does_not_suspect_at_once(
    make_cluster: MakeCluster,
) -> None:
    """A paused process (SIGSTOP, a starved host) resumes with its clock far past every
    timer. It did not watch the primary meanwhile, and the peers' news is still queued
    behind that first step: its timers start again and it says so. Firing them would
    put it alone in a view no one else wants (seen with a node stopped for 25 s)."""
    cluster = make_cluster()
    cluster.filter = from_replica(0)
    cluster.submit(2, cluster.kit.tx(b"pending while this backup was paused"))
    cluster.run()
    backup = cluster.replicas[2]

    [resumed] = cluster.tick(10 * TIMEOUT_MS, replicas=[2])
    assert not any(isinstance(m, ViewChange) for _, m in resumed.send)
    assert resumed.notices == [Resumed(10 * TIMEOUT_MS)]
    assert (backup.view, backup.active) == (0, True)

    # Watched for a whole timeout after that, the primary is suspected as ever.
    outputs = cluster.advance(TIMEOUT_MS + 500)
    assert any(isinstance(m, ViewChange) for o in outputs for _, m in o.send)
    assert backup.view == 1


def test_a_backup_cut_off_from_its_peers_holds_its_suspicion(
    make_cluster: MakeCluster,
) -> None:
    """A view change needs a quorum. A backup that hears from too few peers to make one
    (a partition around it) would only strand itself in a view no one else wants, out of
    consensus until the next real view change; it waits another timeout instead."""
    cluster = make_cluster(suspect_in_touch_only=True)
    cluster.filter = lambda sender, receiver, m: receiver != 2  # replica 2 hears no one
    cluster.submit(2, cluster.kit.tx(b"pending while cut off"))
    cluster.run()
    backup = cluster.replicas[2]
    cluster.receive(2, cluster.kit.sign(Status(0, View(0), 0, 0, ReplicaId(1), b"")))
    cluster.advance(3 * TIMEOUT_MS + 1)
    assert cluster.sent(2, ViewChange) == []
    assert (backup.view, backup.active) == (0, True)
    assert backup.marks["suspicion_held_out_of_touch"] >= 2


def test_a_backup_in_touch_with_a_quorum_suspects_a_silent_primary(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(suspect_in_touch_only=True)
    cluster.filter = from_replica(0)
    cluster.submit(2, cluster.kit.tx(b"ignored by a silent primary"))
    cluster.run()
    backup = cluster.replicas[2]
    cluster.now_ms += TIMEOUT_MS
    for peer in (1, 3):  # the peers' Status of the last interval
        cluster.receive(2, cluster.kit.sign(Status(0, View(0), 0, 0, ReplicaId(peer), b"")))
    [output] = cluster.tick(1, replicas=[2])
    assert any(isinstance(m, ViewChange) and m.new_view == 1 for _, m in output.send)
    assert (backup.view, backup.active) == (1, False)


def test_f_plus_1_peers_ahead_make_a_backup_catch_up_rather_than_suspect(
    make_cluster: MakeCluster,
) -> None:
    """f + 1 peers ahead, one of them honest: the requests this backup holds may have been
    ordered long ago, so it catches up instead of timing them."""
    cluster = make_cluster()
    cluster.filter = from_replica(0)
    cluster.submit(2, cluster.kit.tx(b"ordered elsewhere, perhaps"))
    cluster.run()
    backup = cluster.replicas[2]
    for peer in (0, 1):
        cluster.receive(2, cluster.kit.sign(Status(0, View(0), 5, 0, ReplicaId(peer), b"")))
    assert backup.peers_executed_height() == 5

    outputs = cluster.tick(TIMEOUT_MS, replicas=[2])
    assert not any(isinstance(m, ViewChange) for o in outputs for _, m in o.send)
    assert (backup.view, backup.active) == (0, True)


def test_a_backup_with_nothing_pending_does_not_suspect_the_primary(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster()
    outputs = cluster.tick(10 * TIMEOUT_MS)
    cluster.run()
    assert not any(isinstance(m, ViewChange) for o in outputs for _, m in o.send)
    assert all((r.view, r.active) == (0, True) for r in cluster.replicas)


def test_f_plus_1_view_changes_for_a_higher_view_make_a_replica_join(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.5.2: a replica that receives f + 1 valid VIEW-CHANGEs for views above its own
    sends a VIEW-CHANGE too, even if its timer has not expired."""
    cluster = make_cluster()
    kit = cluster.kit
    first = cluster.receive(3, kit.view_change(1, 1))
    assert first.send == [] and first.rejected == []
    assert cluster.replicas[3].view == 0, "f view changes may all come from faulty replicas"

    second = cluster.receive(3, kit.view_change(2, 1))
    [message] = [m for _, m in second.send if isinstance(m, ViewChange)]
    assert (message.new_view, message.replica) == (1, 3)
    assert message in second.persist
    assert ViewChanged(View(1), active=False) in second.notices
    assert (cluster.replicas[3].view, cluster.replicas[3].active) == (1, False)


def test_the_f_plus_1_rule_joins_the_highest_view_f_plus_1_replicas_reached(
    make_cluster: MakeCluster,
) -> None:
    """With f = 2 (n = 7): views 5, 3, 2 from three replicas; the third highest, 2, is the
    highest view that f + 1 of them have passed, so the replica moves to view 2 (not 5)."""
    cluster = make_cluster(7)
    kit = cluster.kit
    assert cluster.receive(6, kit.view_change(1, 5)).send == []
    assert cluster.receive(6, kit.view_change(2, 3)).send == []
    output = cluster.receive(6, kit.view_change(3, 2))
    [message] = [m for _, m in output.send if isinstance(m, ViewChange)]
    assert (message.new_view, message.replica) == (2, 6)
    assert cluster.replicas[6].view == 2


def test_the_new_primary_sends_new_view_after_2f_plus_1_view_changes(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.4: the primary of v + 1 multicasts NEW-VIEW once it has 2f + 1 VIEW-CHANGEs
    (its own included); every replica installs it and is active in v + 1."""
    cluster = make_cluster()
    cluster.filter = from_replica(0)
    tx = cluster.kit.tx(b"needs a new primary")
    cluster.submit_everywhere(tx)
    cluster.run()
    cluster.tick(TIMEOUT_MS)
    cluster.run()

    new_view = the_new_view(cluster, 1)
    assert (new_view.view, new_view.replica) == (1, 1)
    assert len(new_view.view_changes) == cluster.kit.quorum
    assert {vc.new_view for vc in new_view.view_changes} == {1}
    assert len({vc.replica for vc in new_view.view_changes}) == cluster.kit.quorum
    assert new_view in cluster.persisted[1]
    for index in range(4):
        replica = cluster.replicas[index]
        assert (replica.view, replica.active) == (1, True)
        assert ViewChanged(View(1), active=True) in cluster.notices(index, ViewChanged)
        if index != 1:
            assert new_view in cluster.persisted[index]
    # Only the primary of view 1 sent a NewView.
    assert all(cluster.sent(i, NewView) == [] for i in (0, 2, 3))
    # The request that started it all is ordered by the new primary.
    for index in range(4):
        assert cluster.delivered_tx_ids(index) == [tx.id]
        [block] = cluster.blocks(index)
        assert block.header.view == 1
        assert block.header.proposer == cluster.kit.key(1)
        cluster.assert_write_ahead(index)


def test_a_replica_without_2f_plus_1_view_changes_stays_inactive(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster()
    cluster.filter = lambda sender, receiver, m: sender in (1, 2)  # 0 and 3 are silent
    cluster.submit(1, cluster.kit.tx(b"no quorum"))
    cluster.run()
    cluster.tick(TIMEOUT_MS, replicas=[1, 2])
    cluster.run()
    assert cluster.sent(1, NewView) == []
    assert (cluster.replicas[1].view, cluster.replicas[1].active) == (1, False)


def test_prepared_certificate_survives_view_change(make_cluster: MakeCluster) -> None:
    """Section 4.4: a batch prepared (not committed) in view 0 at some replicas is carried
    into view 1 by the NEW-VIEW and delivered there with the same transactions at the same
    height (its sequence number), because any 2f + 1 view changes include one from a
    replica that prepared it."""
    cluster = make_cluster(checkpoint_interval=100)
    kit = cluster.kit
    # Only replicas 1 and 2 see enough prepares to be prepared; no commit ever arrives.
    cluster.filter = lambda sender, receiver, m: (
        not (isinstance(m, Commit) or (isinstance(m, Prepare) and receiver in (0, 3)))
    )
    txs = [kit.tx(b"prepared in view 0"), kit.tx(b"also prepared in view 0")]
    cluster.submit(0, *txs)
    cluster.run()
    [proposal] = [m for m in cluster.sent(0, Proposal) if isinstance(m, Proposal)]
    batch = proposal.batch
    assert set(cluster.replicas[1].prepared) == set(cluster.replicas[2].prepared) == {1}
    assert cluster.replicas[0].prepared == {} and cluster.replicas[3].prepared == {}
    assert all(cluster.delivered[i] == [] for i in range(4)), "nothing committed in view 0"

    cluster.tick(TIMEOUT_MS)
    cluster.filter = None
    cluster.run()

    new_view = the_new_view(cluster, 1)
    assert [(p.view, p.seq, p.digest) for p in new_view.pre_prepares] == [(1, 1, batch.digest)]
    for index in range(4):
        assert (cluster.replicas[index].view, cluster.replicas[index].active) == (1, True)
        [committed] = cluster.delivered[index]
        block = committed.block
        assert block.header.height == 1
        assert block.transactions == batch.transactions == tuple(txs)
        assert block.header.tx_root == batch.header.tx_root
        assert committed.certificate is not None
        assert {c.view for c in committed.certificate.commits} == {1}
        assert {c.digest for c in committed.certificate.commits} == {batch.digest}
    assert len({cluster.blocks(i)[0].hash for i in range(4)}) == 1


def test_a_sequence_number_nobody_prepared_gets_a_null_batch(make_cluster: MakeCluster) -> None:
    """Section 4.4: in the NEW-VIEW, a sequence number between min-s and max-s with no prepared
    certificate gets a null request; the batch prepared above it keeps its number."""
    cluster = make_cluster(checkpoint_interval=100, batch_size_max=1, in_flight_max=2)
    kit = cluster.kit
    lost, kept = kit.tx(b"seq 1, never seen by a backup"), kit.tx(b"seq 2, prepared")
    cluster.filter = lambda sender, receiver, m: (
        not (isinstance(m, Commit) or (isinstance(m, Proposal) and m.pre_prepare.seq == 1))
    )
    cluster.submit(0, lost, kept)
    cluster.run()
    assert all(set(cluster.replicas[i].prepared) <= {2} for i in range(4))
    assert any(cluster.replicas[i].prepared for i in range(4))

    cluster.tick(TIMEOUT_MS)
    cluster.filter = None
    cluster.run()

    new_view = the_new_view(cluster, 1)
    assert [p.seq for p in new_view.pre_prepares] == [1, 2]
    for index in range(4):
        blocks = cluster.blocks(index)
        assert blocks[0].header.height == 1
        assert blocks[0].transactions == (), "a null batch"
        assert blocks[0].header.proposer == kit.key(1)
        assert blocks[1].header.height == 2
        assert blocks[1].transactions == (kept,)
        assert blocks[1].header.time_ms > blocks[0].header.time_ms
        # The request of the null slot is still pending and is ordered later, once.
        assert cluster.delivered_tx_ids(index).count(lost.id) == 1
        assert [b.header.height for b in blocks] == [1, 2, 3]
    assert all(cluster.blocks(i) == cluster.blocks(0) for i in range(4))


def test_a_primary_that_equivocates_is_replaced(make_cluster: MakeCluster) -> None:
    """Two different pre-prepares signed by the primary for one (view, seq) prove it faulty:
    the backup that sees both starts a view change (sections 4.2 and 4.4)."""
    cluster = make_cluster()
    kit = cluster.kit
    first = kit.proposal(kit.batch(1, [kit.tx(b"version A")]))
    second = kit.proposal(kit.batch(1, [kit.tx(b"version B")]))
    assert first.pre_prepare.digest != second.pre_prepare.digest
    accepted = cluster.receive(2, first)
    assert any(isinstance(m, Prepare) for _, m in accepted.send)

    output = cluster.receive(2, second)
    [rejected] = output.rejected
    assert re.search(r"seq 1: the primary sent two different pre-prepares", rejected.reason)
    [message] = [m for _, m in output.send if isinstance(m, ViewChange)]
    assert (message.new_view, message.replica) == (1, 2)
    assert message in output.persist
    assert not any(
        isinstance(m, Prepare) and m.digest == second.pre_prepare.digest for _, m in output.send
    )
    assert (cluster.replicas[2].view, cluster.replicas[2].active) == (1, False)


def test_a_forged_second_pre_prepare_does_not_start_a_view_change(
    make_cluster: MakeCluster,
) -> None:
    """Only a pre-prepare that the primary really signed proves equivocation."""
    cluster = make_cluster()
    kit = cluster.kit
    cluster.receive(2, kit.proposal(kit.batch(1, [kit.tx(b"version A")])))
    batch = kit.batch(1, [kit.tx(b"version B")])
    forged = Proposal(
        dataclasses.replace(kit.pre_prepare(0, 1, batch.digest), signature=bytes(64)), batch
    )
    output = cluster.receive(2, forged)
    assert [r.reason for r in output.rejected] == ["bad signature from replica 0"]
    assert output.send == [] and output.persist == []
    assert (cluster.replicas[2].view, cluster.replicas[2].active) == (0, True)


def test_a_view_change_with_a_short_prepared_certificate_is_rejected(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.4: a VIEW-CHANGE's P set holds, per sequence number, a pre-prepare and 2f
    matching prepares; one with fewer does not count (so it cannot help a join)."""
    cluster = make_cluster()
    kit = cluster.kit
    batch = kit.batch(1, [kit.tx(b"prepared by too few")])
    short = kit.prepared_certificate(batch, 0, prepared_by=[2])
    assert isinstance(short, PreparedCertificate)
    message = kit.view_change(2, 1, prepared=[short])
    output = cluster.receive(1, message)
    assert [(r.kind, r.sender, r.reason) for r in output.rejected] == [
        ("ViewChange", 2, "prepared certificate for seq 1: 1 prepares")
    ]
    assert output.send == []
    # With a valid view change from replica 3 there would be f + 1 = 2 if the short one had
    # counted; it did not, so replica 1 stays in view 0.
    after = cluster.receive(1, kit.view_change(3, 1))
    assert after.send == [] and after.rejected == []
    assert (cluster.replicas[1].view, cluster.replicas[1].active) == (0, True)
    # A full certificate (2f = 2 prepares) from the same sender is accepted and, with 3's,
    # makes replica 1 join view 1.
    full = kit.view_change(2, 1, prepared=[kit.prepared_certificate(batch, 0, prepared_by=[2, 3])])
    joined = cluster.receive(1, full)
    assert joined.rejected == []
    assert any(isinstance(m, ViewChange) for _, m in joined.send)
    assert cluster.replicas[1].view == 1


def test_a_waiting_replica_that_sees_no_quorum_repeats_its_view_change(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.5.2: a replica does not run ahead to v + 2 alone; it repeats its request."""
    cluster = make_cluster()
    cluster.filter = lambda sender, receiver, m: False  # a partition: nobody hears anybody
    cluster.submit(2, cluster.kit.tx(b"alone"))
    cluster.tick(TIMEOUT_MS, replicas=[2])
    [own] = set(view_changes_sent(cluster, 2))
    [again] = cluster.tick(2_000, replicas=[2])
    assert (cluster.replicas[2].view, cluster.replicas[2].active) == (1, False)
    repeated = [m for _, m in again.send if isinstance(m, ViewChange)]
    assert repeated and set(repeated) == {own}


WAIT_MAX_MS = 30_000  # Parameters.request_wait_max_ms


def carries(tx_id: bytes) -> Callable[[Message], bool]:
    def check(message: Message) -> bool:
        transactions = getattr(message, "transactions", ())
        batch = getattr(message, "batch", None)
        if batch is not None:
            transactions = batch.transactions
        return any(tx.id == tx_id for tx in transactions)

    return check


def test_a_busy_primary_that_makes_progress_is_not_suspected_and_waiting_requests_are_shared(
    make_cluster: MakeCluster,
) -> None:
    """Under a backlog a request may wait longer than the request timeout while the primary
    keeps delivering blocks: that is not a failure. The backup shares the waiting request
    with every replica instead (a lost forward is repaired), and stays in the view."""
    cluster = make_cluster()
    waiting = cluster.kit.tx(b"waits behind a backlog")
    cluster.filter = lambda sender, receiver, message: (
        not (receiver == 0 and carries(waiting.id)(message))
    )
    cluster.submit(2, waiting)
    cluster.run()
    for step in range(1, 8):  # the primary keeps ordering other requests, every second
        cluster.tick(1_000)
        cluster.submit(1, cluster.kit.tx(b"other %d" % step))
        cluster.run()
    backup = cluster.replicas[2]
    assert (backup.view, backup.active) == (0, True), "no view change while blocks are delivered"
    shared = [m for m in cluster.sent(2) if carries(waiting.id)(m)]
    assert len(shared) >= 2, "forwarded once, then shared again after the request timeout"
    assert waiting.id not in cluster.delivered_tx_ids(2)


def test_a_primary_that_orders_others_but_censors_one_request_is_replaced(
    make_cluster: MakeCluster,
) -> None:
    """However busy the primary, a request waiting request_wait_max_ms makes the replicas
    that hold it suspect the primary; the next primary orders it."""
    cluster = make_cluster()
    censored = cluster.kit.tx(b"censored")
    cluster.filter = lambda sender, receiver, message: (
        not (receiver == 0 and carries(censored.id)(message))
    )
    cluster.submit(2, censored)
    cluster.run()
    for step in range(WAIT_MAX_MS // 1_000 + 4):
        cluster.tick(1_000)
        cluster.submit(1, cluster.kit.tx(b"other %d" % step))
        cluster.run()
        if cluster.replicas[1].view > 0:
            break
    cluster.tick(5_000)
    cluster.run()
    assert all(r.view >= 1 and r.active for r in cluster.replicas[1:])
    for index in (1, 2, 3):
        assert censored.id in cluster.delivered_tx_ids(index)


def test_a_replica_alone_in_a_higher_view_hands_its_clients_requests_to_the_others(
    make_cluster: MakeCluster,
) -> None:
    """Regression (a consortium starting up, its nodes one by one): a backup that timed a
    request while the primary was not running yet asked for view 1 alone, and the others,
    started later, follow the primary in view 0 and never join it. The requests its
    clients keep sending it must still reach them and commit, not wait there forever."""
    cluster = make_cluster()
    cluster.down = {0, 1, 3}  # not running yet: what is sent to them is lost
    held_before = cluster.kit.tx(b"sent before the others ran")
    cluster.submit(2, held_before)
    cluster.tick(TIMEOUT_MS, replicas=[2])
    cluster.run()
    lonely = cluster.replicas[2]
    assert (lonely.view, lonely.active) == (1, False)

    cluster.down = set()
    sent_after = cluster.kit.tx(b"sent to the lonely replica after the others started")
    cluster.submit(2, sent_after)
    cluster.run()
    for index in (0, 1, 3):
        assert sent_after.id in cluster.delivered_tx_ids(index)
        assert held_before.id not in cluster.delivered_tx_ids(index)

    # Its view change times out with no quorum: it repeats it and shares what still waits.
    cluster.tick(2_000)
    cluster.run()
    for index in (0, 1, 3):
        assert held_before.id in cluster.delivered_tx_ids(index)
        assert (cluster.replicas[index].view, cluster.replicas[index].active) == (0, True)
    # The lonely replica stays in view 1 (it cannot take back its ViewChange) but
    # follows the chain by fetching the blocks the others' Status messages announce.
    cluster.tick(1_000)
    cluster.run()
    assert (lonely.view, lonely.active) == (1, False)
    assert cluster.delivered_tx_ids(2) == cluster.delivered_tx_ids(0)
    assert len(lonely.pool) == 0
    cluster.assert_write_ahead(2)


def test_a_waiting_request_that_expires_is_dropped_and_no_longer_shared(
    make_cluster: MakeCluster,
) -> None:
    """A backup or a replica changing view never builds the batch that drops expired
    requests: it drops them itself once even a clock behind by the largest skew allowed
    says they expired, else it would time, share and suspect primaries for them forever."""
    cluster = make_cluster(view_change_timeout_ms=2_000, clock_skew_max_ms=5_000)
    cluster.filter = lambda sender, receiver, message: False  # nobody hears anybody
    start = cluster.now_ms
    short_lived = cluster.kit.tx(b"short-lived", expires_at_ms=start + 4_000)
    long_lived = cluster.kit.tx(b"long-lived", expires_at_ms=start + 60_000)
    cluster.submit(2, short_lived, long_lived)
    cluster.tick(TIMEOUT_MS, replicas=[2])
    lonely = cluster.replicas[2]
    assert (lonely.view, lonely.active) == (1, False)

    cluster.tick(4_000 + 5_000 + 1 - TIMEOUT_MS, replicas=[2])
    assert short_lived.id not in lonely.pool
    assert long_lived.id in lonely.pool
    [output] = cluster.tick(2_000, replicas=[2])
    shared = [m for _, m in output.send if carries(short_lived.id)(m)]
    assert not shared
    assert any(carries(long_lived.id)(m) for _, m in output.send)


def test_a_new_primary_catching_up_on_execution_is_not_replaced(
    make_cluster: MakeCluster,
) -> None:
    """A backup whose executor lags becomes primary: it proposes only once it is within
    `unexecuted_max` blocks of its execution. Its Status showing its executed height rising
    is progress, so the others wait for it rather than replace it after a request timeout."""
    cluster = make_cluster(auto_execute=False, batch_size_max=1, in_flight_max=4, unexecuted_max=2)
    cluster.submit(0, *cluster.kit.txs(6, prefix="before"))
    while len(cluster.delivered[1]) < 6:
        cluster.run()
        for index in (0, 2, 3):  # replica 1 executes nothing meanwhile
            cluster.execute(index)
    lagging = cluster.replicas[1]
    assert (lagging.last_delivered, lagging.executed) == (6, 0)

    cluster.down.add(0)
    tx = cluster.kit.tx(b"after the primary failed")
    cluster.submit_everywhere(tx, replicas=[1, 2, 3])
    cluster.advance(TIMEOUT_MS)
    cluster.run()
    assert all(cluster.replicas[i].view == 1 and cluster.replicas[i].active for i in (1, 2, 3))
    assert lagging.is_primary and tx.id in lagging.pool

    for _ in range(8):  # one block executed per second: slower than a request timeout in all
        cluster.execute(1, 1)
        cluster.advance(1_000)
        cluster.run()
        for index in (2, 3):
            cluster.execute(index)
    assert [cluster.replicas[i].view for i in (1, 2, 3)] == [1, 1, 1], "no second view change"
    assert lagging.marks["proposal_waits_for_execution"] > 0
    for index in (1, 2, 3):
        assert tx.id in cluster.delivered_tx_ids(index)
