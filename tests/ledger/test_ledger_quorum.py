"""Quorum arithmetic and the validator set."""

import pytest

from ledger.keys import PrivateKey
from ledger.quorum import max_faulty, quorum_size, weak_quorum_size
from ledger.validators import ValidatorSet


def naive_max_faulty(n: int) -> int:
    """The largest f with n >= 3f + 1."""
    f = 0
    while 3 * (f + 1) + 1 <= n:
        f += 1
    return f


def naive_quorum_size(n: int) -> int:
    """The smallest q whose any two quorums share at least f + 1 validators."""
    f = naive_max_faulty(n)
    return next(q for q in range(1, n + 1) if 2 * q - n >= f + 1)


def keys(n: int) -> tuple[bytes, ...]:
    return tuple(PrivateKey.from_seed(bytes([i + 1]) * 32).public_key for i in range(n))


@pytest.mark.parametrize("n", range(1, 101))
def test_max_faulty_is_the_largest_f_with_n_at_least_3f_plus_1(n: int) -> None:
    assert max_faulty(n) == naive_max_faulty(n)
    assert 3 * max_faulty(n) + 1 <= n


@pytest.mark.parametrize("n", range(1, 101))
def test_quorum_size_matches_naive_search(n: int) -> None:
    q, f = quorum_size(n), max_faulty(n)
    assert q == naive_quorum_size(n)
    assert 2 * q - n >= f + 1  # two quorums share an honest validator
    assert q <= n - f  # the honest validators alone form a quorum
    assert 2 * (q - 1) - n < f + 1  # and no smaller quorum would do


@pytest.mark.parametrize(("n", "q"), [(1, 1), (4, 3), (7, 5), (10, 7), (13, 9), (100, 67)])
def test_quorum_size_known_values(n: int, q: int) -> None:
    assert quorum_size(n) == q


@pytest.mark.parametrize("f", range(34))
def test_quorum_is_2f_plus_1_when_n_is_3f_plus_1(f: int) -> None:
    assert quorum_size(3 * f + 1) == 2 * f + 1


@pytest.mark.parametrize("n", range(1, 101))
def test_weak_quorum_is_f_plus_1(n: int) -> None:
    assert weak_quorum_size(n) == naive_max_faulty(n) + 1
    assert weak_quorum_size(n) <= quorum_size(n)


@pytest.mark.parametrize("n", [0, -1, -4])
def test_quorum_arithmetic_rejects_an_empty_set(n: int) -> None:
    for function in (max_faulty, quorum_size, weak_quorum_size):
        with pytest.raises(ValueError, match="never empty"):
            function(n)


def test_validator_set_rejects_an_empty_set() -> None:
    with pytest.raises(ValueError, match="never empty"):
        ValidatorSet(from_height=0, validators=())


def test_validator_set_rejects_a_duplicate_key() -> None:
    a, b, c = keys(3)
    with pytest.raises(ValueError, match="each key once"):
        ValidatorSet(from_height=0, validators=(a, b, c, a))
    with pytest.raises(ValueError, match="each key once"):
        ValidatorSet(from_height=0, validators=(b, b))


@pytest.mark.parametrize(("n", "f", "q", "weak"), [(1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3)])
def test_validator_set_reports_its_quorums(n: int, f: int, q: int, weak: int) -> None:
    validators = ValidatorSet(from_height=5, validators=keys(n))
    assert (validators.n, validators.f, validators.quorum, validators.weak_quorum) == (
        n,
        f,
        q,
        weak,
    )


def test_primary_rotates_with_the_view() -> None:
    members = keys(4)
    validators = ValidatorSet(from_height=0, validators=members)
    assert [validators.primary(view) for view in range(9)] == [
        members[0],
        members[1],
        members[2],
        members[3],
        members[0],
        members[1],
        members[2],
        members[3],
        members[0],
    ]


@pytest.mark.parametrize("n", [1, 4, 7])
def test_every_validator_is_primary_once_in_n_consecutive_views(n: int) -> None:
    validators = ValidatorSet(from_height=0, validators=keys(n))
    for start in (0, 3, 1000):
        primaries = [validators.primary(view) for view in range(start, start + n)]
        assert sorted(primaries) == sorted(validators.validators)


def test_primary_follows_the_listed_order_not_the_key_order() -> None:
    members = tuple(sorted(keys(4), reverse=True))
    validators = ValidatorSet(from_height=0, validators=members)
    assert validators.primary(0) == members[0]
    assert validators.primary(1) == members[1]


def test_membership() -> None:
    members = keys(5)
    validators = ValidatorSet(from_height=0, validators=members[:4])
    assert all(member in validators for member in members[:4])
    assert members[4] not in validators
    assert b"" not in validators
