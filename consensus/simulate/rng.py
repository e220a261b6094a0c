"""A seeded pseudo-random source for the simulator (SplitMix64).

Hand-written rather than `random.Random` so that the sequence is defined here,
identical on every Python version, and no module-level random state exists:
one seed determines every choice of a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
MASK64 = (1 << 64) - 1


class Rng:
    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & MASK64

    def next_u64(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """Uniform in [0, bound)."""
        return self.next_u64() % bound

    def between(self, low: int, high: int) -> int:
        """Uniform in [low, high]."""
        return low + self.below(high - low + 1)

    def chance(self, probability: float) -> bool:
        return self.next_u64() < probability * 2.0**64

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        result = list(items)
        for i in range(len(result) - 1, 0, -1):
            j = self.below(i + 1)
            result[i], result[j] = result[j], result[i]
        return result

    def bytes(self, count: int) -> bytes:
        out = bytearray()
        while len(out) < count:
            out += self.next_u64().to_bytes(8, "little")
        return bytes(out[:count])

    def fork(self, label: str) -> Rng:
        """An independent stream, so adding a choice in one place does not shift another."""
        digest = hashlib.sha256(self.next_u64().to_bytes(8, "little") + label.encode()).digest()
        return Rng(int.from_bytes(digest[:8], "little"))
