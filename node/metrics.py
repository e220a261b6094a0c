"""Prometheus metrics of one node (served at `/metrics`), in a registry of its own.

Names follow Prometheus conventions: `notarychain_` prefix, units last
(`_seconds`, `_bytes`), counters end in `_total`.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ledger.block import Block

ADMITTED_TRACKED_MAX = 100_000
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("notarychain_height", "Height of the last executed block", registry=r)
        self.view = Gauge("notarychain_view", "Current consensus view", registry=r)
        self.stable_height = Gauge(
            "notarychain_stable_checkpoint_height",
            "Height of the latest stable checkpoint",
            registry=r,
        )
        self.view_changes = Counter(
            "notarychain_view_changes", "Views installed after a view change", registry=r
        )
        self.commit_latency = Histogram(
            "notarychain_commit_latency_seconds",
            "From admission by this node to execution of the transaction",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.admitted = Counter(
            "notarychain_transactions_admitted", "Transactions admitted to the mempool", registry=r
        )
        self.refused = Counter(
            "notarychain_transactions_refused",
            "Transactions refused at admission, by reason code",
            ["code"],
            registry=r,
        )
        self.committed = Counter(
            "notarychain_transactions_committed", "Transactions executed in a block", registry=r
        )
        self.mempool = Gauge(
            "notarychain_mempool_size", "Requests waiting to be ordered", registry=r
        )
        self.execution_backlog = Gauge(
            "notarychain_execution_backlog_blocks",
            "Blocks committed by consensus and not yet executed",
            registry=r,
        )
        self.peer_reachable = Gauge(
            "notarychain_peer_reachable",
            "1 if the last send to the peer succeeded",
            ["peer"],
            registry=r,
        )
        self.peer_lag = Gauge(
            "notarychain_peer_lag_blocks",
            "Our height minus the peer's announced height",
            ["peer"],
            registry=r,
        )
        self.catch_up_height = Gauge(
            "notarychain_catch_up_target_height", "Height the last catch-up reached", registry=r
        )
        self.storage_bytes = Gauge(
            "notarychain_storage_bytes", "Size of the node's database files", registry=r
        )
        self.rejected = Counter(
            "notarychain_messages_rejected",
            "Peer messages refused by the replica, by kind",
            ["kind"],
            registry=r,
        )
        self.events_dropped = Counter(
            "notarychain_events_dropped",
            "Events dropped because the driver's queue was full",
            registry=r,
        )
        self.diverged = Gauge(
            "notarychain_diverged", "1 if this node's state differs from the quorum's", registry=r
        )
        self.admitted_at: dict[bytes, float] = {}

    def observe_admission(self, tx_id: bytes) -> None:
        self.admitted.inc()
        if len(self.admitted_at) >= ADMITTED_TRACKED_MAX:
            # Transactions that never committed here (refused later, or lost) would pile
            # up: forget the oldest half; their latency goes unmeasured.
            for old in list(self.admitted_at)[: ADMITTED_TRACKED_MAX // 2]:
                del self.admitted_at[old]
        self.admitted_at[tx_id] = time.monotonic()

    def observe_block(self, block: Block) -> None:
        self.height.set(block.header.height)
        self.committed.inc(len(block.transactions))
        now = time.monotonic()
        for tx in block.transactions:
            started = self.admitted_at.pop(tx.id, None)
            if started is not None:
                self.commit_latency.observe(now - started)
