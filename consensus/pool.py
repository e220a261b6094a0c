"""Requests waiting to be ordered, and the ids recently ordered.

Rule: a request stays here from arrival until its block is delivered, so
every replica can time it (a primary that does not order it in time is
suspected), or until it has expired: then no block can hold it any more, and
a replica that kept it would time it, share it and suspect primaries for it
forever (a backup or a replica changing view never builds the batch that
drops expired requests). A request is offered for a new batch only when no
batch of the current view holds it. Ids already delivered are remembered
until their expiry time has passed on the chain, which is the longest a copy
could still be valid; hence memory is bounded by throughput times the
transaction lifetime, however long the chain runs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from ledger.tx import Transaction


class RequestPool:
    __slots__ = (
        "_arrival_ms",
        "_capacity",
        "_delivered",
        "_expiry_heap",
        "_in_batch",
        "_pending",
        "_unassigned",
        "_waiting_expiry_heap",
    )

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._pending: dict[bytes, Transaction] = {}  # insertion order is arrival order
        self._arrival_ms: dict[bytes, int] = {}
        self._in_batch: dict[bytes, int] = {}  # id -> seq of the current view's batch holding it
        self._unassigned: dict[bytes, Transaction] = {}  # pending and in no batch, by arrival
        self._delivered: set[bytes] = set()
        self._expiry_heap: list[tuple[int, bytes]] = []
        self._waiting_expiry_heap: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._pending

    def get(self, tx_id: bytes) -> Transaction | None:
        return self._pending.get(tx_id)

    def is_delivered(self, tx_id: bytes) -> bool:
        return tx_id in self._delivered

    def is_full(self) -> bool:
        return len(self._pending) >= self._capacity

    def room(self) -> int:
        """Requests that may still be added."""
        return max(0, self._capacity - len(self._pending))

    def add(self, tx_id: bytes, tx: Transaction, now_ms: int) -> bool:
        """Add a new request; False if it is known, already delivered, or the pool is full."""
        if tx_id in self._pending or tx_id in self._delivered or self.is_full():
            return False
        self._pending[tx_id] = tx
        self._unassigned[tx_id] = tx
        self._arrival_ms[tx_id] = now_ms
        heapq.heappush(self._waiting_expiry_heap, (tx.body.expires_at_ms, tx_id))
        return True

    def oldest_arrival_ms(self) -> int | None:
        for arrival in self._arrival_ms.values():
            return arrival
        return None

    def restart_timers(self, now_ms: int) -> None:
        """A new view starts: give its primary a full timeout for every request."""
        for tx_id in self._arrival_ms:
            self._arrival_ms[tx_id] = now_ms

    def batch_of(self, tx_id: bytes) -> int | None:
        return self._in_batch.get(tx_id)

    def assign(self, tx_ids: Iterable[bytes], seq: int) -> None:
        for tx_id in tx_ids:
            self._in_batch[tx_id] = seq
            self._unassigned.pop(tx_id, None)

    def clear_batches(self) -> None:
        """A view change discards the old view's batches; their requests are free again."""
        self._in_batch.clear()
        self._unassigned = dict(self._pending)

    def unassigned(self, limit: int) -> list[tuple[bytes, Transaction]]:
        """The oldest `limit` requests held by no batch."""
        return list(itertools.islice(self._unassigned.items(), limit))

    def drop(self, tx_id: bytes) -> None:
        """Forget a request that can no longer be ordered (expired)."""
        self._pending.pop(tx_id, None)
        self._unassigned.pop(tx_id, None)
        self._arrival_ms.pop(tx_id, None)
        self._in_batch.pop(tx_id, None)

    def mark_delivered(self, tx_id: bytes, expires_at_ms: int) -> None:
        self.drop(tx_id)
        if tx_id not in self._delivered:
            self._delivered.add(tx_id)
            heapq.heappush(self._expiry_heap, (expires_at_ms, tx_id))

    def forget_expired(self, chain_time_ms: int) -> None:
        """Ids whose expiry is before the chain's time can never be valid again."""
        heap = self._expiry_heap
        while heap and heap[0][0] < chain_time_ms:
            _, tx_id = heapq.heappop(heap)
            self._delivered.discard(tx_id)
        self.drop_expired(chain_time_ms)

    def drop_expired(self, before_ms: int) -> None:
        """Drop the waiting requests that expire before `before_ms`."""
        heap = self._waiting_expiry_heap
        while heap and heap[0][0] < before_ms:
            _, tx_id = heapq.heappop(heap)
            self.drop(tx_id)  # a no-op for one delivered or dropped meanwhile
