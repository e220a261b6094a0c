"""A backup cut off from every peer, then healed, votes again in the others' view.

Each node sends its peer traffic through its own fault proxy (`node.faultproxy`,
as in the soak). While cut off, the backup holds a request no one else has; its
timer expires with no peer in touch. It used to ask alone for view 1 and, since
one replica never makes the others follow, stay outside consensus after the
link healed. A backup now suspects the primary only while it hears a quorum of
peers (`Parameters.suspect_in_touch_only`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ledger.genesis import ConsensusSettings
from node.faultproxy import FaultProxy, route_through

if TYPE_CHECKING:
    from cluster import Cluster

CUT_OFF = 2  # enterprise-2, a backup in view 0
QUIET_S = 2.5  # cut off this long before a request arrives (Status comes every 1 s)
HELD_S = 5.0  # then three request timeouts of the fast settings (1.5 s)


class Proxies:
    """One fault proxy per node, on an event loop of their own thread."""

    def __init__(self, n: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxies = [FaultProxy(f"node-{i}") for i in range(n)]
        self.ports = [self._run(p.start()) for p in self.proxies]

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def _call(self, fn: Callable[[], None]) -> None:
        async def call() -> None:
            fn()

        self._run(call())

    def cut_off(self, i: int, peer_ports: list[int]) -> None:
        """Node i reaches no peer, and no peer reaches it."""

        def cut() -> None:
            for j, proxy in enumerate(self.proxies):
                for port in peer_ports if j == i else [peer_ports[i]]:
                    if port != peer_ports[j]:
                        proxy.cut_link(port)

        self._call(cut)

    def heal(self) -> None:
        def heal_all() -> None:
            for proxy in self.proxies:
                proxy.heal()

        self._call(heal_all)

    def close(self) -> None:
        for proxy in self.proxies:
            self._run(proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def proxies() -> Iterator[Proxies]:
    made = Proxies(4)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.cluster
def test_a_backup_cut_off_and_healed_votes_again_in_the_others_view(
    cluster_factory: Callable[..., Cluster],
    fast_consensus: ConsensusSettings,
    proxies: Proxies,
) -> None:
    cluster = cluster_factory(consensus=fast_consensus)
    for i in range(cluster.n):
        route_through(cluster.config_path(i), proxies.ports[i])
    cluster.start()
    cluster.wait_ready()
    peer_ports = [cluster.peer_port(i) for i in range(cluster.n)]
    everyone = list(range(cluster.n))
    txs = cluster.make_txs(4)
    cluster.submit_acked(txs[0], 0)

    proxies.cut_off(CUT_OFF, peer_ports)
    try:
        cluster.submit_acked(txs[2], 0)  # the others go on without it
        time.sleep(QUIET_S)  # its peers' last Status grows old
        held = cluster.submit(txs[1].data, CUT_OFF)  # only the cut-off node has it
        assert held.status in (200, 202), held
        time.sleep(HELD_S)
        status = cluster.status(CUT_OFF)
        assert (status["view"], status["view_active"]) == (0, True), status
    finally:
        proxies.heal()

    for tx in txs[1:3]:
        for i in everyone:
            cluster.wait_committed(tx.id, i, timeout=60)
    cluster.submit_acked(txs[3], CUT_OFF)
    height = cluster.wait_settled(everyone, timeout=60)
    cluster.assert_identical_chains(everyone, height)
    statuses = [cluster.status(i) for i in everyone]
    assert [(s["view"], s["view_active"]) for s in statuses] == [(0, True)] * cluster.n
    assert "view 1 requested" not in cluster.log_text(CUT_OFF)
