"""The commit feed behind `GET /v1/commits`: which blocks it answers with and what it keeps."""

from __future__ import annotations

import pytest

from node import commits
from node.commits import CommitFeed


def ids(height: int, count: int = 1) -> list[bytes]:
    return [height.to_bytes(4, "big") + i.to_bytes(2, "big") for i in range(count)]


def feed_of(top: int, per_block: int = 1) -> CommitFeed:
    """A feed that has seen blocks 1 to `top`, each of `per_block` transactions."""
    feed = CommitFeed()
    for height in range(1, top + 1):
        feed.on_committed(height, ids(height, per_block))
    return feed


def test_after_answers_the_blocks_above_the_height_in_order() -> None:
    feed = feed_of(10)
    assert [h for h, _ in feed.after(7)] == [8, 9, 10]
    assert feed.after(10) == []
    assert feed.after(99) == []
    assert [h for h, _ in feed.after(0)] == list(range(1, 11))
    assert feed.after(8) == [(9, ids(9)), (10, ids(10))]


def test_after_answers_the_oldest_blocks_first_up_to_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commits, "ANSWER_BLOCKS_MAX", 3)
    feed = feed_of(10)
    # A follower far behind gets the next blocks it misses, so it can continue from them.
    assert [h for h, _ in feed.after(2)] == [3, 4, 5]


def test_the_feed_forgets_the_oldest_blocks_beyond_its_id_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commits, "RECENT_IDS_MAX", 10)
    feed = feed_of(5, per_block=4)
    kept = [h for h, _ in feed.recent]
    assert kept == [4, 5]
    assert feed.ids_kept == 8
    assert [h for h, _ in feed.after(0)] == [4, 5]


def test_a_commit_wakes_the_waiters_of_the_previous_one() -> None:
    feed = CommitFeed()
    waiting = feed.changed
    assert not waiting.is_set()
    feed.on_committed(1, ids(1))
    assert waiting.is_set()
    assert not feed.changed.is_set()
