"""A bounded in-memory cache that keeps what is used and forgets the rest in bulk.

Two generations of plain dicts: entries go into the young one; a hit in the
old one moves the entry to the young one; when the young one is full, it
becomes the old one and the previous old one is dropped whole. So at most
`capacity` entries are held, an entry used at least once per generation stays
(the top of the state tree, the identities and fee schedule every transaction
reads), and a lookup costs one or two dict probes, with no per-entry
bookkeeping as an ordered LRU would need. Forgetting everything at once when
full, as a single dict would, makes every hot entry miss together right after.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class GenerationalCache(Generic[K, V]):
    __slots__ = ("_old", "_young", "generation_size")

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("a cache holds at least two entries")
        self.generation_size = capacity // 2
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when cached (the value may be None), else (False, None)."""
        value = self._young.get(key, _MISSING)
        if value is not _MISSING:
            return True, value  # type: ignore[return-value]
        value = self._old.pop(key, _MISSING)
        if value is _MISSING:
            return False, None
        self.put(key, value)  # type: ignore[arg-type]
        return True, value  # type: ignore[return-value]

    def put(self, key: K, value: V) -> None:
        young = self._young
        if key not in young and len(young) >= self.generation_size:
            self._old = young
            self._young = young = {}
        young[key] = value

    def update(self, items: Mapping[K, V]) -> None:
        for key, value in items.items():
            self.put(key, value)
