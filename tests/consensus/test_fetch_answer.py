"""What a replica serves to a peer catching up (`consensus.fetching.select_fetch_answer`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from consensus.fetching import select_fetch_answer


def block(height: int, size: int, certified: bool = False) -> Any:
    header = SimpleNamespace(height=height)
    return SimpleNamespace(
        block=SimpleNamespace(header=header),
        certificate=object() if certified else None,
        size=size,
    )


def checkpoint(height: int) -> Any:
    return SimpleNamespace(checkpoint=SimpleNamespace(height=height))


class Store:
    """Blocks 1..n; checkpoint certificates at the given heights."""

    def __init__(self, blocks: list[Any], certified: list[int]) -> None:
        self.blocks = {b.block.header.height: b for b in blocks}
        self.certificates = {h: checkpoint(h) for h in certified}

    def block(self, height: int) -> Any:
        return self.blocks.get(height)

    def latest_certificate_between(self, low: int, high: int) -> Any:
        heights = [h for h in self.certificates if low <= h <= high]
        return self.certificates[max(heights)] if heights else None

    def first_certificate_from(self, height: int) -> Any:
        heights = [h for h in self.certificates if h >= height]
        return self.certificates[min(heights)] if heights else None


def heights(answer: Any) -> list[int]:
    assert answer is not None
    return [b.block.header.height for b in answer[1]]


def test_an_answer_stops_once_it_holds_the_byte_budget() -> None:
    store = Store([block(h, 1_000) for h in range(1, 101)], certified=list(range(1, 101)))
    answer = select_fetch_answer(store, 1, 256, size_of=lambda b: b.size, bytes_max=10_000)
    assert heights(answer) == list(range(1, 11))
    assert answer is not None and answer[0].checkpoint.height == 10
    unbounded = select_fetch_answer(store, 1, 256)
    assert heights(unbounded) == list(range(1, 101))


def test_one_block_larger_than_the_budget_is_still_served() -> None:
    store = Store([block(1, 50_000), block(2, 10)], certified=[1, 2])
    answer = select_fetch_answer(store, 1, 256, size_of=lambda b: b.size, bytes_max=1_000)
    assert heights(answer) == [1]


def test_the_blocks_up_to_a_later_certificate_are_added_whatever_their_size() -> None:
    """With no certificate in the budgeted run, the answer reaches the next one: blocks
    without a certificate of their own are only provable through it."""
    store = Store([block(h, 1_000) for h in range(1, 9)], certified=[8])
    answer = select_fetch_answer(store, 1, 256, size_of=lambda b: b.size, bytes_max=2_000)
    assert heights(answer) == list(range(1, 9))
    assert answer is not None and answer[0].checkpoint.height == 8
