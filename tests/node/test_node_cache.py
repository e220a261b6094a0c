"""The executor's bounded cache (`node.cache.GenerationalCache`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cache import GenerationalCache

operations = st.lists(
    st.tuples(st.booleans(), st.integers(0, 40), st.one_of(st.none(), st.integers())),
    max_size=300,
)


@given(st.integers(2, 12), operations)
def test_a_hit_is_the_last_value_put_and_the_size_stays_bounded(
    capacity: int, steps: list[tuple[bool, int, int | None]]
) -> None:
    cache: GenerationalCache[int, int | None] = GenerationalCache(capacity)
    latest: dict[int, int | None] = {}
    for is_put, key, value in steps:
        if is_put:
            cache.put(key, value)
            latest[key] = value
        else:
            cached, got = cache.lookup(key)
            if cached:
                assert got == latest[key]
            else:
                assert got is None
        assert len(cache) <= capacity


def test_an_entry_used_in_every_generation_stays_while_others_pass_through() -> None:
    cache: GenerationalCache[str, int] = GenerationalCache(100)
    cache.put("identity", 1)
    for i in range(10_000):
        cache.put(f"evidence-{i}", i)
        if i % 40 == 0:
            assert cache.lookup("identity") == (True, 1)
    assert cache.lookup("identity") == (True, 1)
    assert cache.lookup("evidence-0") == (False, None)
    assert len(cache) <= 100


def test_a_cached_none_is_a_hit() -> None:
    cache: GenerationalCache[str, int | None] = GenerationalCache(4)
    cache.put("absent key", None)
    assert cache.lookup("absent key") == (True, None)
    assert cache.lookup("never seen") == (False, None)


def test_a_cache_of_fewer_than_two_entries_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two"):
        GenerationalCache(1)
