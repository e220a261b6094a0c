"""The validator set: the ordered node keys that order blocks from a given height.

The order matters: the primary of view v is `validators[v % n]`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.keys import PublicKeyBytes
from ledger.quorum import max_faulty, quorum_size, weak_quorum_size


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    from_height: int
    validators: tuple[PublicKeyBytes, ...]

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValueError("a validator set is never empty")
        if len(set(self.validators)) != len(self.validators):
            raise ValueError("a validator set lists each key once")

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return quorum_size(self.n)

    @property
    def weak_quorum(self) -> int:
        return weak_quorum_size(self.n)

    def primary(self, view: int) -> bytes:
        return self.validators[view % self.n]

    def __contains__(self, key: object) -> bool:
        return key in self.validators
