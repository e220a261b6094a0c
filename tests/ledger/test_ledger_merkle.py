"""RFC 9162 Merkle log: the transparency-dev vectors, a naive reference, and properties."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleLog,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent.parent / "testdata" / "rfc9162"


# --- naive RFC 9162 section 2.1 reference ---------------------------------------------


def _k(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def naive_mth(entries: list[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:])).digest()


def naive_path(m: int, entries: list[bytes]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, entries[:k]), naive_mth(entries[k:])]
    return [*naive_path(m - k, entries[k:]), naive_mth(entries[:k])]


def naive_subproof(m: int, entries: list[bytes], complete: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if complete else [naive_mth(entries)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, entries[:k], complete), naive_mth(entries[k:])]
    return [*naive_subproof(m - k, entries[k:], False), naive_mth(entries[:k])]


def entries_of(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


def log_of(entries: list[bytes]) -> MerkleLog:
    log = MerkleLog()
    log.extend([leaf_hash(e) for e in entries])
    return log


ENTRIES = entries_of(70)
LOG = log_of(ENTRIES)


def flipped(data: bytes, position: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


# --- transparency-dev vectors ---------------------------------------------------------


def _load(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [
        pytest.param(json.loads(path.read_text()), id=str(path.relative_to(VECTORS)))
        for path in files
    ]


INCLUSION_VECTORS = _load("inclusion")
CONSISTENCY_VECTORS = _load("consistency")


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _proof(items: list[str] | None) -> list[bytes]:
    return [_b64(item) for item in items or []]


def test_vector_files_are_present() -> None:
    assert len(INCLUSION_VECTORS) > 50
    assert len(CONSISTENCY_VECTORS) > 50


@pytest.mark.parametrize("case", INCLUSION_VECTORS)
def test_inclusion_vector(case: dict[str, Any]) -> None:
    def check() -> None:
        verify_inclusion(
            case["leafIdx"],
            case["treeSize"],
            _b64(case["leafHash"]),
            _proof(case["proof"]),
            _b64(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


@pytest.mark.parametrize("case", CONSISTENCY_VECTORS)
def test_consistency_vector(case: dict[str, Any]) -> None:
    def check() -> None:
        verify_consistency(
            case["size1"],
            case["size2"],
            _proof(case["proof"]),
            _b64(case["root1"]),
            _b64(case["root2"]),
        )

    if case["wantErr"]:
        with pytest.raises(ProofError):
            check()
    else:
        check()


# --- hashing and roots against the reference ------------------------------------------


def test_leaf_and_node_hashes_use_rfc9162_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"\x0a" * 32, b"\x0b" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


def test_root_of_known_eight_leaf_tree() -> None:
    # RFC 6962 / transparency-dev reference tree of 8 leaves.
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    expected = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert root_of([leaf_hash(x) for x in leaves]).hex() == expected
    assert log_of(leaves).root().hex() == expected


@pytest.mark.parametrize("n", range(71))
def test_log_root_matches_naive_mth(n: int) -> None:
    expected = naive_mth(ENTRIES[:n])
    assert LOG.root(n) == expected
    assert log_of(ENTRIES[:n]).root() == expected


@pytest.mark.parametrize("n", range(71))
def test_root_of_matches_naive_mth(n: int) -> None:
    assert root_of([leaf_hash(e) for e in ENTRIES[:n]]) == naive_mth(ENTRIES[:n])


def test_empty_log_has_the_empty_root() -> None:
    log = MerkleLog()
    assert log.size == 0
    assert log.root() == EMPTY_ROOT
    assert root_of([]) == EMPTY_ROOT


def test_append_returns_consecutive_indexes_and_leaf_reads_back() -> None:
    log = MerkleLog()
    for i, entry in enumerate(ENTRIES[:20]):
        assert log.append(leaf_hash(entry)) == i
        assert log.size == i + 1
    for i, entry in enumerate(ENTRIES[:20]):
        assert log.leaf(i) == leaf_hash(entry)


def test_earlier_roots_do_not_change_as_the_log_grows() -> None:
    log = MerkleLog()
    roots = []
    for entry in ENTRIES[:40]:
        log.append(leaf_hash(entry))
        roots.append(log.root())
    assert [log.root(n) for n in range(1, 41)] == roots


# --- proofs against the reference -----------------------------------------------------


@pytest.mark.parametrize("n", range(1, 41))
def test_inclusion_proofs_match_naive_path_and_verify(n: int) -> None:
    root = LOG.root(n)
    for index in range(n):
        proof = LOG.inclusion_proof(index, n)
        assert proof == naive_path(index, ENTRIES[:n])
        leaf = leaf_hash(ENTRIES[index])
        verify_inclusion(index, n, leaf, proof, root)
        assert root_from_inclusion(index, n, leaf, proof) == root


@pytest.mark.parametrize("n", range(1, 41))
def test_consistency_proofs_match_naive_proof_and_verify(n: int) -> None:
    root2 = LOG.root(n)
    for m in range(1, n + 1):
        proof = LOG.consistency_proof(m, n)
        assert proof == naive_subproof(m, ENTRIES[:n], True)
        verify_consistency(m, n, proof, LOG.root(m), root2)


def test_inclusion_proof_defaults_to_the_whole_log() -> None:
    log = log_of(ENTRIES[:13])
    assert log.inclusion_proof(5) == log.inclusion_proof(5, 13)
    assert log.consistency_proof(4) == log.consistency_proof(4, 13)


def test_inclusion_proof_for_a_single_leaf_is_empty() -> None:
    log = log_of(ENTRIES[:1])
    assert log.inclusion_proof(0) == []
    verify_inclusion(0, 1, leaf_hash(ENTRIES[0]), [], log.root())


def test_inclusion_proof_fails_for_another_leaf() -> None:
    proof = LOG.inclusion_proof(3, 20)
    with pytest.raises(ProofError):
        verify_inclusion(3, 20, leaf_hash(ENTRIES[4]), proof, LOG.root(20))


def test_inclusion_proof_fails_under_another_root() -> None:
    proof = LOG.inclusion_proof(3, 20)
    with pytest.raises(ProofError, match="root"):
        verify_inclusion(3, 20, leaf_hash(ENTRIES[3]), proof, LOG.root(21))


def test_inclusion_proof_with_an_extra_or_missing_element_fails() -> None:
    proof = LOG.inclusion_proof(3, 20)
    root, leaf = LOG.root(20), leaf_hash(ENTRIES[3])
    for bad in (proof[:-1], [*proof, proof[0]], [proof[0], *proof], proof[1:]):
        with pytest.raises(ProofError):
            verify_inclusion(3, 20, leaf, bad, root)


def test_inclusion_proof_with_a_short_element_fails() -> None:
    proof = LOG.inclusion_proof(3, 20)
    proof[1] = proof[1][:31]
    with pytest.raises(ProofError, match="31 bytes"):
        verify_inclusion(3, 20, leaf_hash(ENTRIES[3]), proof, LOG.root(20))


def test_inclusion_verifier_rejects_a_short_leaf_hash() -> None:
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, b"\x00" * 31, [], b"\x00" * 31)


def test_consistency_proof_with_an_extra_or_missing_element_fails() -> None:
    proof = LOG.consistency_proof(5, 23)
    root1, root2 = LOG.root(5), LOG.root(23)
    for bad in (proof[:-1], [*proof, proof[0]], [proof[0], *proof], proof[1:], []):
        with pytest.raises(ProofError):
            verify_consistency(5, 23, bad, root1, root2)


def test_consistency_of_equal_sizes_needs_an_empty_proof_and_equal_roots() -> None:
    root = LOG.root(9)
    verify_consistency(9, 9, [], root, root)
    with pytest.raises(ProofError):
        verify_consistency(9, 9, [root], root, root)
    with pytest.raises(ProofError):
        verify_consistency(9, 9, [], root, LOG.root(8))


def test_consistency_proof_fails_for_a_forked_log() -> None:
    forked = log_of([*ENTRIES[:6], b"forged", *ENTRIES[7:20]])
    proof = forked.consistency_proof(8, 20)
    with pytest.raises(ProofError):
        verify_consistency(8, 20, proof, LOG.root(8), forked.root(20))


# --- out-of-range requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "size"), [(10, 10), (11, 10), (-1, 10), (0, 0), (0, 71), (0, -1), (70, 70)]
)
def test_inclusion_proof_request_out_of_range_raises_proof_error(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        LOG.inclusion_proof(index, size)


@pytest.mark.parametrize(("size1", "size2"), [(0, 5), (-1, 5), (6, 5), (1, 71), (71, 71), (5, -1)])
def test_consistency_proof_request_out_of_range_raises_proof_error(size1: int, size2: int) -> None:
    with pytest.raises(ProofError):
        LOG.consistency_proof(size1, size2)


def test_consistency_proof_request_on_an_empty_log_raises_proof_error() -> None:
    with pytest.raises(ProofError):
        MerkleLog().consistency_proof(0)
    with pytest.raises(ProofError):
        MerkleLog().inclusion_proof(0)


@pytest.mark.parametrize("size", [-1, 71, 1000])
def test_root_request_out_of_range_raises_proof_error(size: int) -> None:
    with pytest.raises(ProofError):
        LOG.root(size)


@pytest.mark.parametrize("index", [70, 71])
def test_leaf_request_past_the_end_raises_proof_error(index: int) -> None:
    with pytest.raises(ProofError):
        LOG.leaf(index)


@pytest.mark.parametrize("entries", [0, 5], ids=["empty-log", "five-leaves"])
def test_leaf_request_with_a_negative_index_raises_proof_error(entries: int) -> None:
    log = log_of(ENTRIES[:entries])
    with pytest.raises(ProofError):
        log.leaf(-1)


@pytest.mark.parametrize(("index", "size"), [(-1, 5), (5, 5), (0, 0), (6, 5)])
def test_inclusion_verifier_rejects_an_index_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(b"x"), [], leaf_hash(b"x"))


# --- properties over random trees ---------------------------------------------------


PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)
BIG_ENTRIES = entries_of(300)
BIG_LOG = log_of(BIG_ENTRIES)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(min_value=2, max_value=300))
    return draw(st.integers(min_value=1, max_value=size2 - 1)), size2


@PROPERTY_SETTINGS
@given(tree_and_index(), st.integers(min_value=1, max_value=255))
def test_inclusion_proofs_verify_and_any_flipped_byte_breaks_them(
    case: tuple[int, int], mask: int
) -> None:
    size, index = case
    root, leaf = BIG_LOG.root(size), leaf_hash(BIG_ENTRIES[index])
    proof = BIG_LOG.inclusion_proof(index, size)
    assert root == naive_mth(BIG_ENTRIES[:size])
    verify_inclusion(index, size, leaf, proof, root)

    for i, element in enumerate(proof):
        for position in range(len(element)):
            bad = [*proof]
            bad[i] = flipped(element, position, mask)
            with pytest.raises(ProofError):
                verify_inclusion(index, size, leaf, bad, root)
    for position in range(32):
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, proof, flipped(root, position, mask))
        with pytest.raises(ProofError):
            verify_inclusion(index, size, flipped(leaf, position, mask), proof, root)


@PROPERTY_SETTINGS
@given(tree_and_index(), st.integers(min_value=-3, max_value=3).filter(bool))
def test_inclusion_proof_fails_for_a_wrong_index(case: tuple[int, int], delta: int) -> None:
    size, index = case
    root, leaf = BIG_LOG.root(size), leaf_hash(BIG_ENTRIES[index])
    proof = BIG_LOG.inclusion_proof(index, size)
    with pytest.raises(ProofError):
        verify_inclusion(index + delta, size, leaf, proof, root)


@PROPERTY_SETTINGS
@given(tree_and_index(), st.integers(min_value=-3, max_value=3).filter(bool))
def test_inclusion_proof_fails_for_a_wrong_size(case: tuple[int, int], delta: int) -> None:
    # The proof for (index, size) checked as a proof for another size, against the root
    # of a tree of that size. (With the *same* root a shorter tree's proof can verify
    # under a larger claimed size, e.g. size 3 as size 4 for leaf 0; RFC 9162 verifiers
    # treat the size as the shape of the root they are given.)
    size, index = case
    other = size + delta
    if not 0 < other <= 300:
        other = size - delta
    leaf = leaf_hash(BIG_ENTRIES[index])
    proof = BIG_LOG.inclusion_proof(index, size)
    with pytest.raises(ProofError):
        verify_inclusion(index, other, leaf, proof, BIG_LOG.root(other))


def test_inclusion_proof_fails_for_a_size_of_another_depth() -> None:
    proof = LOG.inclusion_proof(5, 16)
    leaf = leaf_hash(ENTRIES[5])
    for claimed in (6, 8, 17, 32, 64):
        with pytest.raises(ProofError):
            verify_inclusion(5, claimed, leaf, proof, LOG.root(16))


@PROPERTY_SETTINGS
@given(two_sizes(), st.integers(min_value=1, max_value=255))
def test_consistency_proofs_verify_and_any_flipped_byte_breaks_them(
    sizes: tuple[int, int], mask: int
) -> None:
    size1, size2 = sizes
    root1, root2 = BIG_LOG.root(size1), BIG_LOG.root(size2)
    proof = BIG_LOG.consistency_proof(size1, size2)
    verify_consistency(size1, size2, proof, root1, root2)

    for i, element in enumerate(proof):
        for position in range(len(element)):
            bad = [*proof]
            bad[i] = flipped(element, position, mask)
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, bad, root1, root2)
    for position in range(32):
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, flipped(root1, position, mask), root2)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, root1, flipped(root2, position, mask))


@PROPERTY_SETTINGS
@given(two_sizes(), st.integers(min_value=-3, max_value=3).filter(bool), st.booleans())
def test_consistency_proof_fails_for_a_wrong_size(
    sizes: tuple[int, int], delta: int, first: bool
) -> None:
    # The proof for (size1, size2) checked as a proof for other sizes, with those sizes'
    # true roots.
    size1, size2 = sizes
    proof = BIG_LOG.consistency_proof(size1, size2)
    claimed1, claimed2 = (size1 + delta, size2) if first else (size1, size2 + delta)
    if claimed2 > 300:
        claimed2 = size2 - abs(delta)
    if 0 < claimed1 <= claimed2:
        root1, root2 = BIG_LOG.root(claimed1), BIG_LOG.root(claimed2)
    else:  # not a valid pair of sizes at all
        root1, root2 = BIG_LOG.root(size1), BIG_LOG.root(size2)
    with pytest.raises(ProofError):
        verify_consistency(claimed1, claimed2, proof, root1, root2)
