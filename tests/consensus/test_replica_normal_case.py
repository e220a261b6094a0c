"""The normal-case operation of the PBFT replica (Castro and Liskov, OSDI'99, section 4.2).

A client request reaches some replica, which relays it; the primary assigns it
a sequence number in a PRE-PREPARE (here a `Proposal` carrying the batch);
backups PREPARE; a replica that is *prepared* (pre-prepare plus 2f matching
prepares) COMMITs; a replica with 2f + 1 matching commits has the request
*committed-local* and executes it in sequence-number order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.events import CommitRecord, Output, RequestsReceived
from consensus.messages import Commit, Prepare, Proposal, Requests
from consensus.replica import GENESIS_HASH

if TYPE_CHECKING:
    from conftest import Cluster, Kit

MakeCluster = Callable[..., "Cluster"]


def test_a_request_given_to_a_backup_is_forwarded_to_the_primary(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.1: a backup that gets a request passes it to the primary, and times it."""
    cluster = make_cluster()
    tx = cluster.kit.tx(b"relayed")
    output = cluster.submit(2, tx)
    assert output.send == [(0, Requests((tx,)))]
    assert output.rejected == []
    assert tx.id in cluster.replicas[2].pool
    assert not any(isinstance(m, Proposal) for _, m in output.send), "a backup never proposes"


def test_a_relayed_request_is_not_relayed_again(make_cluster: MakeCluster) -> None:
    cluster = make_cluster()
    tx = cluster.kit.tx(b"relayed once")
    output = cluster.step(3, RequestsReceived((tx,), from_client=False))
    assert output.send == []
    assert tx.id in cluster.replicas[3].pool


def test_the_primary_proposes_and_the_backups_prepare(make_cluster: MakeCluster) -> None:
    """Section 4.2: the primary multicasts PRE-PREPARE; each backup that accepts it PREPAREs."""
    cluster = make_cluster()
    tx = cluster.kit.tx(b"ordered")
    cluster.submit(2, tx)
    cluster.run()

    proposals = cluster.sent(0, Proposal)
    assert len(proposals) == 1
    proposal = proposals[0]
    assert isinstance(proposal, Proposal)
    pre_prepare = proposal.pre_prepare
    assert (pre_prepare.view, pre_prepare.seq, pre_prepare.replica) == (0, 1, 0)
    assert proposal.batch.transactions == (tx,)
    assert pre_prepare.digest == proposal.batch.digest
    assert proposal in cluster.persisted[0], "the primary persists its proposal"
    for backup in (1, 2, 3):
        prepares = cluster.sent(backup, Prepare)
        assert len(prepares) == 1
        prepare = prepares[0]
        assert isinstance(prepare, Prepare)
        assert (prepare.view, prepare.seq, prepare.digest, prepare.replica) == (
            0,
            1,
            pre_prepare.digest,
            backup,
        )
        assert prepare in cluster.persisted[backup]


def test_the_primary_never_sends_a_prepare(make_cluster: MakeCluster) -> None:
    """Section 4.2: "the primary does not send a prepare"; only backups do."""
    cluster = make_cluster(batch_size_max=1, in_flight_max=3)
    cluster.submit(1, *cluster.kit.txs(5))
    cluster.run()
    assert len(cluster.blocks(0)) == 5
    assert cluster.sent(0, Prepare) == []
    assert not any(isinstance(item, Prepare) for item in cluster.persisted[0])


def test_a_commit_is_persisted_in_the_same_output_that_sends_it(make_cluster: MakeCluster) -> None:
    """Section 4.2 with write-ahead logging: after pre-prepare and 2f prepares a replica COMMITs.

    Its `CommitRecord` (the commit and the prepared certificate that allowed it) is in
    `Output.persist` of the very Output whose `send` holds the commit, so the runtime
    stores it before the commit leaves the process.
    """
    cluster = make_cluster()
    cluster.submit(1, cluster.kit.tx(b"committed"))
    cluster.run()
    kit = cluster.kit
    for index in range(4):
        commit_steps = [
            step
            for step in cluster.history[index]
            if any(isinstance(m, Commit) for _, m in step.output.send)
        ]
        assert len(commit_steps) == 1
        output = commit_steps[0].output
        commit = next(m for _, m in output.send if isinstance(m, Commit))
        assert isinstance(commit, Commit)
        assert commit.replica == index
        records = [r for r in output.persist if isinstance(r, CommitRecord)]
        assert [r.commit for r in records] == [commit]
        certificate = records[0].prepared
        assert certificate.pre_prepare.digest == commit.digest == certificate.batch.digest
        assert len(certificate.prepares) == 2 * kit.f, "prepared: the pre-prepare and 2f prepares"
        assert {p.digest for p in certificate.prepares} == {commit.digest}
        assert 0 not in {p.replica for p in certificate.prepares}
        cluster.assert_write_ahead(index)


def test_a_replica_commits_only_after_2f_prepares(make_cluster: MakeCluster) -> None:
    """Section 4.2: prepared(m, v, n, i) needs 2f prepares matching the pre-prepare."""
    cluster = make_cluster(checkpoint_interval=100)  # no checkpoint, so no state transfer
    cluster.filter = lambda sender, receiver, m: not (isinstance(m, Prepare) and receiver == 3)
    cluster.submit(1, cluster.kit.tx(b"only own prepare at 3"))
    cluster.run()
    # Replica 3 has the pre-prepare and its own prepare only: one short of 2f.
    assert cluster.sent(3, Prepare) != []
    assert cluster.sent(3, Commit) == []
    assert not any(isinstance(r, CommitRecord) for r in cluster.persisted[3])
    # The others were prepared and committed; 3 learns the commits but is not prepared.
    assert all(len(cluster.blocks(i)) == 1 for i in (0, 1, 2))
    assert cluster.blocks(3) == []


def test_2f_plus_1_commits_deliver_the_block_with_a_quorum_certificate(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.2: committed-local needs 2f + 1 matching commits (its own included)."""
    cluster = make_cluster()
    tx = cluster.kit.tx(b"delivered")
    cluster.submit(3, tx)
    cluster.run()
    quorum = cluster.kit.quorum
    for index in range(4):
        [committed] = cluster.delivered[index]
        assert committed.block.transactions == (tx,)
        certificate = committed.certificate
        assert certificate is not None
        assert len(certificate.commits) == quorum
        assert len({c.replica for c in certificate.commits}) == quorum
        assert {(c.view, c.seq) for c in certificate.commits} == {(0, 1)}
        assert {c.digest for c in certificate.commits} == {certificate.batch.digest}
        assert certificate.batch.tx_root == committed.block.header.tx_root
        for commit in certificate.commits:
            assert cluster.kit.verify(
                cluster.kit.key(commit.replica),
                commit.signature,
                _signing_bytes(cluster.kit, commit),
            )


def _signing_bytes(kit: Kit, commit: Commit) -> bytes:
    from consensus.messages import signing_bytes

    return signing_bytes(kit.chain_id, commit)


def test_a_replica_without_a_quorum_of_commits_delivers_nothing(make_cluster: MakeCluster) -> None:
    cluster = make_cluster()
    # Commits from replicas 2 and 3 never arrive: each replica sees at most 2 commits (2f).
    cluster.filter = lambda sender, receiver, m: not (isinstance(m, Commit) and sender in (2, 3))
    cluster.submit(1, cluster.kit.tx(b"stuck"))
    cluster.run()
    for index in (0, 1):
        assert cluster.sent(index, Commit) != []
        assert cluster.delivered[index] == []


def test_every_replica_delivers_the_same_chain_in_height_order(make_cluster: MakeCluster) -> None:
    """Safety (section 4.2): all non-faulty replicas execute the same requests in the same order."""
    cluster = make_cluster(batch_size_max=2, in_flight_max=2)
    kit = cluster.kit
    for round_ in range(4):
        cluster.now_ms += 10
        cluster.submit(round_ % 4, *kit.txs(3, prefix=f"round-{round_}", now_ms=cluster.now_ms))
        cluster.run()
    chains = [cluster.blocks(i) for i in range(4)]
    assert all(chain == chains[0] for chain in chains)
    blocks = chains[0]
    assert [b.header.height for b in blocks] == list(range(1, len(blocks) + 1))
    assert blocks[0].header.previous_hash == GENESIS_HASH
    for previous, block in itertools.pairwise(blocks):
        assert block.header.previous_hash == previous.hash
        assert block.header.time_ms > previous.header.time_ms, "block time strictly increases"
    ordered = [tx.id for b in blocks for tx in b.transactions]
    assert len(ordered) == 12
    assert len(set(ordered)) == 12, "each request is ordered exactly once"
    for index in range(4):
        cluster.assert_write_ahead(index)


def test_the_primary_keeps_several_batches_in_flight_within_the_limits(
    make_cluster: MakeCluster,
) -> None:
    """Section 4.2 (and 5.1, batching): the primary pipelines sequence numbers.

    With in_flight_max = 2 it proposes seq 1 and 2 at once and proposes seq 3 only
    when seq 1 is delivered; no batch holds more than batch_size_max requests.
    """
    cluster = make_cluster(batch_size_max=2, in_flight_max=2)
    txs = cluster.kit.txs(7)
    output = cluster.submit(0, *txs)
    proposals = [m for _, m in output.send if isinstance(m, Proposal)]
    assert [p.pre_prepare.seq for p in proposals] == [1, 2]
    assert [len(p.batch.transactions) for p in proposals] == [2, 2]
    assert [tx for p in proposals for tx in p.batch.transactions] == txs[:4], "oldest first"

    # Track, at every step of the primary, that it never runs more than 2 ahead of delivery.
    primary = cluster.replicas[0]
    proposed = 2
    while cluster.deliver_next():
        for _, message in cluster.history[0][-1].output.send:
            if isinstance(message, Proposal) and message.pre_prepare.seq > proposed:
                proposed = message.pre_prepare.seq
        assert proposed <= primary.last_delivered + 2
    blocks = cluster.blocks(0)
    assert [len(b.transactions) for b in blocks] == [2, 2, 2, 1]
    assert [tx for b in blocks for tx in b.transactions] == txs
    assert all(cluster.blocks(i) == blocks for i in range(4))


def test_a_batch_never_exceeds_batch_size_max(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(batch_size_max=3, in_flight_max=4)
    cluster.submit(2, *cluster.kit.txs(10))
    cluster.run()
    proposals = cluster.sent(0, Proposal)
    assert proposals
    assert all(isinstance(p, Proposal) and len(p.batch.transactions) <= 3 for p in proposals)
    assert [len(b.transactions) for b in cluster.blocks(1)] == [3, 3, 3, 1]


def test_a_repeated_request_is_ordered_once(make_cluster: MakeCluster) -> None:
    """The request pool drops a request it holds or has delivered (PBFT's exactly-once, 4.1)."""
    cluster = make_cluster()
    tx = cluster.kit.tx(b"twice")
    cluster.submit(1, tx)
    cluster.submit(2, tx)  # a second client copy, before the first is ordered
    cluster.run()
    assert cluster.delivered_tx_ids(0) == [tx.id]

    # After delivery, the same request again: nobody relays it, the primary proposes nothing.
    for index in range(4):
        output = cluster.submit(index, tx)
        assert output.send == []
        assert tx.id not in cluster.replicas[index].pool
    cluster.run()
    for index in range(4):
        assert cluster.delivered_tx_ids(index) == [tx.id]
    assert len(cluster.sent(0, Proposal)) == 1


def test_a_request_the_backups_relay_twice_is_still_batched_once(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(in_flight_max=4, batch_size_max=1)
    kit = cluster.kit
    a, b = kit.tx(b"a"), kit.tx(b"b")
    for index in (1, 2, 3):
        cluster.submit(index, a, b)
    cluster.run()
    proposals = cluster.sent(0, Proposal)
    assert [tx.id for p in proposals if isinstance(p, Proposal) for tx in p.batch.transactions] == [
        a.id,
        b.id,
    ]
    assert cluster.delivered_tx_ids(3) == [a.id, b.id]


def test_seven_replicas_order_with_quorums_of_2f_plus_1(make_cluster: MakeCluster) -> None:
    """n = 7, f = 2: prepared needs 2f = 4 prepares, committed 2f + 1 = 5 commits."""
    cluster = make_cluster(7)
    tx = cluster.kit.tx(b"seven")
    cluster.submit(4, tx)
    cluster.run()
    for index in range(7):
        [committed] = cluster.delivered[index]
        assert committed.block.transactions == (tx,)
        assert committed.certificate is not None
        assert len(committed.certificate.commits) == 5
        records = [r for r in cluster.persisted[index] if isinstance(r, CommitRecord)]
        assert [len(r.prepared.prepares) for r in records] == [4]
    assert cluster.sent(0, Prepare) == []


def test_a_proposal_is_sent_again_only_after_a_whole_interval_unanswered(
    make_cluster: MakeCluster,
) -> None:
    """A proposal carries its whole batch: the primary repeats it to the backups that have
    not answered, but not at the first resend tick after sending it (that tick may come a
    millisecond later), only once it has gone unanswered for a full interval."""
    cluster = make_cluster()
    interval_ms = cluster.params.resend_interval_ms
    output = cluster.submit(0, cluster.kit.tx(b"big batch"))
    assert [target for target, m in output.send if isinstance(m, Proposal)] == [None]

    def proposals_sent(outputs: list[Output]) -> list[int | None]:
        return [target for out in outputs for target, m in out.send if isinstance(m, Proposal)]

    assert proposals_sent(cluster.tick(interval_ms - 1, replicas=[0])) == []
    resent = proposals_sent(cluster.tick(interval_ms, replicas=[0]))
    assert sorted(t for t in resent if t is not None) == [1, 2, 3]
    # Backups that answered are not sent it again.
    cluster.run()
    assert proposals_sent(cluster.tick(2 * interval_ms, replicas=[0])) == []


def test_the_primary_proposes_no_further_than_unexecuted_max_beyond_its_execution(
    make_cluster: MakeCluster,
) -> None:
    """Commits are announced at execution: a primary whose executor lags stops proposing
    once `unexecuted_max` blocks wait to be executed, and goes on as they are."""
    cluster = make_cluster(auto_execute=False, batch_size_max=1, in_flight_max=4, unexecuted_max=3)
    cluster.submit(1, *cluster.kit.txs(6))
    cluster.run()
    primary = cluster.replicas[0]
    assert primary.last_delivered == 3, "three blocks delivered, none executed"
    assert [p.pre_prepare.seq for p in cluster.sent(0, Proposal)] == [1, 2, 3]
    assert len(primary.pool) == 3, "the rest wait in the pool"

    cluster.execute(0, 1)
    cluster.run()
    assert [p.pre_prepare.seq for p in cluster.sent(0, Proposal)] == [1, 2, 3, 4]
    for index in range(1, 4):
        cluster.execute(index)
    while primary.executed < primary.last_delivered:
        cluster.execute(0)
        cluster.run()
    assert primary.last_delivered == 6
    assert [len(b.transactions) for b in cluster.blocks(2)] == [1] * 6
