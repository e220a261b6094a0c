"""Quorum arithmetic for n validators of which at most f are faulty.

Rule: two quorums intersect in at least f + 1 validators (so in at least one
honest one), and a quorum can be formed from honest validators alone. The
smallest such quorum is floor((n + f) / 2) + 1, which is 2f + 1 when
n = 3f + 1. `tests/test_quorum.py` checks these against a naive search.
"""


def max_faulty(n: int) -> int:
    """f: the most faulty validators that n validators tolerate."""
    if n < 1:
        raise ValueError("a validator set is never empty")
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """Signatures needed for a certificate (prepared, committed, checkpoint, view change)."""
    return (n + max_faulty(n)) // 2 + 1


def weak_quorum_size(n: int) -> int:
    """f + 1: enough matching answers that at least one is from an honest validator."""
    return max_faulty(n) + 1
