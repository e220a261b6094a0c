"""The state tree: fixed shapes, a naive reference, proofs and their tampering, properties."""

import hashlib
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.encoding import decode, encode
from ledger.errors import DecodeError, ProofError
from ledger.smt import (
    EMPTY,
    PAGE_TAG,
    LeafSlot,
    MemorySmtNodeStore,
    PageSlot,
    SmtLeaf,
    SmtPage,
    SmtProof,
    SparseMerkleTree,
    decode_page,
    encode_page,
    internal_hash,
    key_path,
    leaf_hash,
    leaf_slot,
    page_of_leaf,
    verify_exclusion,
    verify_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def first_difference(a: bytes, b: bytes) -> int:
    return next(d for d in range(256) if bit(a, d) != bit(b, d))


# --- naive reference: recursive over sorted paths, the hashing rule spelt out ---------


def naive_subtree(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not leaves:
        return bytes(32)
    if len(leaves) == 1:
        path, value_hash = leaves[0]
        return sha(b"\x00" + path + value_hash)
    left = [leaf for leaf in leaves if not bit(leaf[0], depth)]
    right = [leaf for leaf in leaves if bit(leaf[0], depth)]
    return sha(b"\x01" + naive_subtree(left, depth + 1) + naive_subtree(right, depth + 1))


def naive_root(state: Mapping[bytes, bytes]) -> bytes:
    return naive_subtree(sorted((sha(k), sha(v)) for k, v in state.items()), 0)


def tree_of(state: Mapping[bytes, bytes]) -> SparseMerkleTree:
    tree = SparseMerkleTree(MemorySmtNodeStore())
    tree.update(state)
    return tree


def flipped(data: bytes, position: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


def colliding_keys(prefix_bytes: int) -> tuple[bytes, bytes]:
    """Two keys whose paths share their first `prefix_bytes` bytes (a birthday search)."""
    seen: dict[bytes, bytes] = {}
    for i in range(10_000_000):
        key = i.to_bytes(8, "big")
        prefix = sha(key)[:prefix_bytes]
        if prefix in seen:
            return seen[prefix], key
        seen[prefix] = key
    raise AssertionError("no collision found")


KEY_A, KEY_B = colliding_keys(3)

STATE = {f"key {i}".encode(): f"value {i}".encode() for i in range(40)}
TREE = tree_of(STATE)
ABSENT = [f"absent {i}".encode() for i in range(40)]

states = st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=200)


# --- fixed shapes -------------------------------------------------------------------


def test_empty_tree() -> None:
    tree = SparseMerkleTree(MemorySmtNodeStore())
    assert tree.root == EMPTY == bytes(32)
    assert tree.update({}) == EMPTY
    proof = tree.prove(b"anything")
    assert proof == SmtProof((), None)
    verify_exclusion(EMPTY, b"anything", proof)
    with pytest.raises(ProofError, match="empty subtree"):
        verify_inclusion(EMPTY, b"anything", b"", proof)


def test_store_defaults_to_memory() -> None:
    tree = SparseMerkleTree()
    assert isinstance(tree.store, MemorySmtNodeStore)
    assert tree.update({b"k": b"v"}) == naive_root({b"k": b"v"})


def test_one_key_root_is_its_leaf() -> None:
    tree = SparseMerkleTree(MemorySmtNodeStore())
    root = tree.update({b"key": b"value"})
    assert root == sha(b"\x00" + sha(b"key") + sha(b"value"))
    assert root == leaf_hash(key_path(b"key"), sha(b"value"))
    proof = tree.prove(b"key")
    assert proof == SmtProof((), SmtLeaf(sha(b"key"), sha(b"value")))
    verify_inclusion(root, b"key", b"value", proof)
    other = tree.prove(b"other")
    assert other == proof  # the path of any other key ends in the same lone leaf
    verify_exclusion(root, b"other", other)


def test_two_keys_with_a_long_common_prefix() -> None:
    path_a, path_b = sha(KEY_A), sha(KEY_B)
    assert path_a[:3] == path_b[:3]
    split = first_difference(path_a, path_b)
    assert split >= 24
    leaf_a = sha(b"\x00" + path_a + sha(b"a"))
    leaf_b = sha(b"\x00" + path_b + sha(b"b"))
    node = sha(b"\x01" + leaf_a + leaf_b) if bit(path_b, split) else sha(b"\x01" + leaf_b + leaf_a)
    for depth in range(split - 1, -1, -1):  # single-child internal nodes above the split
        node = sha(b"\x01" + EMPTY + node) if bit(path_a, depth) else sha(b"\x01" + node + EMPTY)
    tree = tree_of({KEY_A: b"a", KEY_B: b"b"})
    assert tree.root == node
    proof = tree.prove(KEY_A)
    assert len(proof.siblings) == split + 1
    assert proof.siblings[:split] == (EMPTY,) * split
    assert proof.siblings[split] == leaf_b
    verify_inclusion(tree.root, KEY_A, b"a", proof)
    verify_inclusion(tree.root, KEY_B, b"b", tree.prove(KEY_B))
    # deleting one collapses the chain back into the other's lone leaf
    assert tree.update({KEY_B: None}) == leaf_a


def test_one_key_under_a_shared_prefix_ends_in_an_empty_subtree() -> None:
    # A third key whose path leaves the common prefix of A and B somewhere above their split.
    path_a = sha(KEY_A)
    tree = tree_of({KEY_A: b"a", KEY_B: b"b"})
    absent = next(
        key
        for key in (i.to_bytes(4, "big") for i in range(1_000_000))
        if 0 < first_difference(sha(key), path_a) < 24
    )
    proof = tree.prove(absent)
    assert proof.leaf is None
    assert len(proof.siblings) == first_difference(sha(absent), path_a) + 1
    verify_exclusion(tree.root, absent, proof)


def test_update_then_delete_everything_gives_empty() -> None:
    tree = tree_of(STATE)
    assert tree.root != EMPTY
    assert tree.update(dict.fromkeys(STATE)) == EMPTY
    assert tree.prove(b"key 1") == SmtProof((), None)


def test_delete_some_keys_equals_a_tree_built_without_them() -> None:
    tree = tree_of(STATE)
    kept = {k: v for i, (k, v) in enumerate(STATE.items()) if i % 3 == 0}
    tree.update({k: None for k in STATE if k not in kept})
    assert tree.root == tree_of(kept).root == naive_root(kept)


def test_deleting_an_absent_key_changes_nothing() -> None:
    tree = tree_of(STATE)
    root = tree.root
    assert tree.update(dict.fromkeys(ABSENT)) == root
    assert SparseMerkleTree(MemorySmtNodeStore()).update({b"x": None}) == EMPTY
    one = tree_of({KEY_A: b"a"})
    assert one.update({KEY_B: None}) == leaf_hash(sha(KEY_A), sha(b"a"))


def test_setting_the_same_value_changes_nothing() -> None:
    tree = tree_of(STATE)
    root = tree.root
    assert tree.update(dict(list(STATE.items())[:5])) == root


def test_a_changed_value_changes_the_root() -> None:
    tree = tree_of(STATE)
    root = tree.update({b"key 7": b"new"})
    assert root == naive_root({**STATE, b"key 7": b"new"})
    verify_inclusion(root, b"key 7", b"new", tree.prove(b"key 7"))


def test_hashing_helpers() -> None:
    left, right = sha(b"l"), sha(b"r")
    assert internal_hash(left, right) == sha(b"\x01" + left + right)
    assert leaf_hash(left, right) == sha(b"\x00" + left + right)
    assert key_path(b"k") == sha(b"k")


# --- properties against the reference -------------------------------------------------


@settings(deadline=None, max_examples=100)
@given(state=states)
def test_root_matches_the_naive_reference(state: dict[bytes, bytes]) -> None:
    assert tree_of(state).root == naive_root(state)


@settings(deadline=None, max_examples=100)
@given(state=states, data=st.data())
def test_root_is_independent_of_order_and_batching(
    state: dict[bytes, bytes], data: st.DataObject
) -> None:
    expected = naive_root(state)
    keys = list(state)

    one_by_one = SparseMerkleTree(MemorySmtNodeStore())
    for key in data.draw(st.permutations(keys), label="order"):
        one_by_one.update({key: state[key]})
    assert one_by_one.root == expected

    batched = SparseMerkleTree(MemorySmtNodeStore())
    order = data.draw(st.permutations(keys), label="batch order")
    sizes = data.draw(st.lists(st.integers(1, 50), max_size=20), label="batch sizes")
    start = 0
    for size in [*sizes, len(order)]:
        batched.update({key: state[key] for key in order[start : start + size]})
        start += size
    assert batched.root == expected

    # extra keys inserted and then deleted leave no trace
    extra = data.draw(st.dictionaries(st.binary(min_size=9, max_size=12), st.binary()))
    detour = tree_of({**state, **extra})
    detour.update(dict.fromkeys(extra))
    assert detour.root == expected


@settings(deadline=None, max_examples=100)
@given(before=states, changes=st.dictionaries(st.binary(max_size=8), st.none() | st.binary()))
def test_mixed_batch_of_sets_and_deletes(
    before: dict[bytes, bytes], changes: dict[bytes, bytes | None]
) -> None:
    tree = tree_of(before)
    old_root = tree.root
    after = dict(before)
    for key, value in changes.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    old = SparseMerkleTree(tree.store, old_root, tree.version)
    assert tree.update(changes) == naive_root(after)
    assert old.root == naive_root(before)
    for key in list(changes)[:10]:
        proof = tree.prove(key)
        if key in after:
            verify_inclusion(tree.root, key, after[key], proof)
        else:
            verify_exclusion(tree.root, key, proof)
        old_proof = old.prove(key)
        if key in before:
            verify_inclusion(old_root, key, before[key], old_proof)
        else:
            verify_exclusion(old_root, key, old_proof)


@settings(deadline=None, max_examples=60)
@given(state=states.filter(bool), absent=st.lists(st.binary(min_size=9, max_size=9), max_size=5))
def test_proofs_for_random_trees(state: dict[bytes, bytes], absent: list[bytes]) -> None:
    tree = tree_of(state)
    for key, value in state.items():
        proof = tree.prove(key)
        verify_inclusion(tree.root, key, value, proof)
        with pytest.raises(ProofError):
            verify_exclusion(tree.root, key, proof)
    for key in absent:
        proof = tree.prove(key)
        verify_exclusion(tree.root, key, proof)
        with pytest.raises(ProofError):
            verify_inclusion(tree.root, key, b"", proof)


# --- inclusion proofs and their tampering -------------------------------------------


def all_tamperings(proof: SmtProof) -> Iterator[SmtProof]:
    """Every single-byte change of every hash in the proof, and structural edits."""
    siblings = proof.siblings
    for i, sibling in enumerate(siblings):
        for position in range(32):
            yield SmtProof(
                (*siblings[:i], flipped(sibling, position), *siblings[i + 1 :]), proof.leaf
            )
    if proof.leaf is not None:
        for position in range(32):
            leaf = proof.leaf
            yield SmtProof(siblings, SmtLeaf(flipped(leaf.path, position), leaf.value_hash))
            yield SmtProof(siblings, SmtLeaf(leaf.path, flipped(leaf.value_hash, position)))
        yield SmtProof(siblings, None)
    if siblings:
        yield SmtProof(siblings[:-1], proof.leaf)
        yield SmtProof(siblings[1:], proof.leaf)
    yield SmtProof((*siblings, sha(b"extra")), proof.leaf)
    yield SmtProof((sha(b"extra"), *siblings), proof.leaf)


@pytest.mark.parametrize("key", list(STATE))
def test_inclusion_proof_verifies_and_every_change_breaks_it(key: bytes) -> None:
    root, value = TREE.root, STATE[key]
    proof = TREE.prove(key)
    verify_inclusion(root, key, value, proof)
    assert decode(SmtProof, encode(proof)) == proof

    with pytest.raises(ProofError, match="different value"):
        verify_inclusion(root, key, value + b"!", proof)
    with pytest.raises(ProofError, match="another key"):
        verify_inclusion(root, b"key 999", value, proof)
    other = next(k for k in STATE if k != key)
    with pytest.raises(ProofError):
        verify_inclusion(root, other, STATE[other], proof)
    for position in range(32):
        with pytest.raises(ProofError, match="expected root"):
            verify_inclusion(flipped(root, position), key, value, proof)
    for tampered in all_tamperings(proof):
        with pytest.raises(ProofError):
            verify_inclusion(root, key, value, tampered)


@pytest.mark.parametrize("key", list(STATE)[:10])
def test_every_byte_of_the_encoded_proof_matters(key: bytes) -> None:
    root, value = TREE.root, STATE[key]
    data = encode(TREE.prove(key))
    for position in range(len(data)):
        for mask in (0x01, 0x80):
            try:
                tampered = decode(SmtProof, flipped(data, position, mask))
            except DecodeError:
                continue
            with pytest.raises(ProofError):
                verify_inclusion(root, key, value, tampered)


# --- exclusion proofs -----------------------------------------------------------------


@pytest.mark.parametrize("key", ABSENT)
def test_exclusion_proof_verifies_and_every_change_breaks_it(key: bytes) -> None:
    root = TREE.root
    proof = TREE.prove(key)
    verify_exclusion(root, key, proof)
    with pytest.raises(ProofError):
        verify_inclusion(root, key, b"", proof)
    for position in range(32):
        with pytest.raises(ProofError):
            verify_exclusion(flipped(root, position), key, proof)
    for tampered in all_tamperings(proof):
        if tampered.leaf is not None and tampered.leaf.path == key_path(key):
            continue  # cannot happen from a flip, but would be an inclusion claim
        with pytest.raises(ProofError):
            verify_exclusion(root, key, tampered)


def test_both_kinds_of_exclusion_occur() -> None:
    ends = {TREE.prove(key).leaf is None for key in ABSENT}
    assert ends == {True, False}


@pytest.mark.parametrize("key", list(STATE)[:10])
def test_exclusion_fails_for_present_keys(key: bytes) -> None:
    proof = TREE.prove(key)
    with pytest.raises(ProofError, match="key is present"):
        verify_exclusion(TREE.root, key, proof)
    # nor can another key's absence proof be passed off for it
    for absent in ABSENT[:10]:
        with pytest.raises(ProofError):
            verify_exclusion(TREE.root, key, TREE.prove(absent))


def test_exclusion_leaf_must_lie_on_the_key_path() -> None:
    tree = tree_of({KEY_A: b"a", KEY_B: b"b", b"x": b"y"})
    path_a = sha(KEY_A)
    far = next(
        key
        for key in (i.to_bytes(4, "big") for i in range(1000))
        if first_difference(sha(key), path_a) == 0
    )
    proof = tree.prove(KEY_A)  # ends in A's leaf, deep below the root
    with pytest.raises(ProofError, match="does not share the key's first"):
        verify_exclusion(tree.root, far, proof)


# --- old roots stay provable ----------------------------------------------------------


def test_proofs_against_an_older_root_still_verify() -> None:
    tree = tree_of(STATE)
    old_root = tree.root
    old = SparseMerkleTree(tree.store, old_root, tree.version)
    old_proofs = {key: tree.prove(key) for key in [*STATE, *ABSENT]}
    tree.update({b"key 1": b"changed", b"key 2": None, **dict.fromkeys(ABSENT[:20], b"new")})
    tree.update({f"more {i}".encode(): b"m" for i in range(100)})
    assert tree.root != old_root
    for key, proof in old_proofs.items():
        assert old.prove(key) == proof
        if key in STATE:
            verify_inclusion(old_root, key, STATE[key], old.prove(key))
        else:
            verify_exclusion(old_root, key, old.prove(key))
    verify_inclusion(tree.root, b"key 1", b"changed", tree.prove(b"key 1"))
    verify_exclusion(tree.root, b"key 2", tree.prove(b"key 2"))
    verify_inclusion(tree.root, ABSENT[0], b"new", tree.prove(ABSENT[0]))
    assert tree.version == old.version + 2


def test_a_version_below_the_tree_is_refused() -> None:
    tree = tree_of(STATE)
    with pytest.raises(ValueError, match="below the tree's version"):
        tree.update({b"k": b"v"}, version=tree.version - 1)
    root = tree.root
    assert tree.update({b"k": b"v"}, version=tree.version) != root  # equal is allowed


def test_unknown_or_malformed_roots_are_refused() -> None:
    with pytest.raises(ProofError, match="no SMT page"):
        SparseMerkleTree(TREE.store, sha(b"not a root"), TREE.version).prove(b"key 1")
    with pytest.raises(ProofError, match="no SMT page"):  # the right root at a wrong version
        SparseMerkleTree(TREE.store, TREE.root, TREE.version + 1).prove(b"key 1")
    with pytest.raises(ProofError, match="31 bytes"):
        SparseMerkleTree(TREE.store, bytes(31))
    with pytest.raises(ProofError, match="no SMT page"):
        SparseMerkleTree(MemorySmtNodeStore(), sha(b"unknown")).update({b"k": b"v"})
    with pytest.raises(ProofError, match="33 bytes"):
        SparseMerkleTree(MemorySmtNodeStore(), bytes(33))


# --- the store --------------------------------------------------------------------------


class CountingStore(MemorySmtNodeStore):
    __slots__ = ("puts",)

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[bytes] = []

    def put(self, version: int, page_hash: bytes, page: SmtPage) -> None:
        self.puts.append(page_hash)
        super().put(version, page_hash, page)


def path_pages(tree: SparseMerkleTree, key: bytes) -> list[bytes]:
    """The hashes of the pages on `key`'s path, the root page first."""
    if tree.root == EMPTY:
        return []
    hashes = [tree.root]
    page = tree.store.get(tree.version, tree.root)
    depth = 0
    while page is not None:
        nibble = int.from_bytes(key_path(key), "big") >> (256 - 4 - depth) & 15
        slot = page.slots[nibble]
        if not isinstance(slot, PageSlot):
            break
        hashes.append(slot.hash)
        page, depth = tree.store.get(slot.version, slot.hash), depth + 4
    return hashes


def test_pages_are_stored_under_their_hash_and_never_deleted() -> None:
    store = MemorySmtNodeStore()
    tree = SparseMerkleTree(store)
    tree.update(STATE)
    before = dict(store._pages)
    tree.update(dict.fromkeys(STATE))
    assert tree.root == EMPTY
    for (version, page_hash), page in before.items():
        assert store.get(version, page_hash) == page
    for (_, page_hash), page in store._pages.items():
        assert page.root == page_hash


def test_only_the_root_page_may_hold_a_lone_leaf() -> None:
    # A lone leaf sits in its parent's slot; a page exists for two leaves or more.
    tree = tree_of({b"only": b"v"})
    assert tree.root == leaf_hash(key_path(b"only"), sha(b"v"))
    assert len(tree.store) == 1  # type: ignore[arg-type]
    tree = tree_of(STATE)
    store = tree.store
    assert isinstance(store, MemorySmtNodeStore)
    referenced = [
        slot for page in store._pages.values() for slot in page.slots if isinstance(slot, PageSlot)
    ]
    assert referenced
    for slot in referenced:
        page = store.get(slot.version, slot.hash)
        assert page is not None
        assert page.kinds[1] == 2  # more than one leaf below


def test_a_thousand_keys_take_far_fewer_pages_than_binary_nodes() -> None:
    store = CountingStore()
    tree = SparseMerkleTree(store)
    tree.update({f"k{i}".encode(): b"v" for i in range(1000)})
    # A compact binary tree of 1,000 leaves has 999 internal nodes beside them.
    assert len(store.puts) < 1999 / 5


def test_each_batch_stores_its_pages_under_its_own_version() -> None:
    store = MemorySmtNodeStore()
    tree = SparseMerkleTree(store)
    tree.update(dict(list(STATE.items())[:10]), version=5)
    first = set(store._pages)
    tree.update(dict(list(STATE.items())[10:]), version=9)
    assert {version for version, _ in first} == {5}
    assert {version for version, _ in set(store._pages) - first} == {9}
    assert tree.version == 9
    for i, (key, value) in enumerate(STATE.items()):  # references' versions lead to pages
        proof, leaf_version = tree.locate(key)
        assert proof == tree.prove(key)
        assert leaf_version == (5 if i < 10 else 9)  # where a store keeping values by
        verify_inclusion(tree.root, key, value, proof)  # version finds the leaf's value
    assert SparseMerkleTree().locate(b"k") == (SmtProof((), None), 0)  # no leaf, version 0


def test_versions_move_on_when_the_tree_empties() -> None:
    store = MemorySmtNodeStore()
    tree = SparseMerkleTree(store)
    tree.update(STATE)  # version 1
    old_root, old_version = tree.root, tree.version
    assert tree.update(dict.fromkeys(STATE)) == EMPTY  # version 2
    assert tree.version == 2
    tree.update({b"key 1": b"again", b"key 2": STATE[b"key 2"]})  # version 3, not 1 again
    assert tree.version == 3
    assert {version for version, _ in store._pages} == {1, 3}
    old = SparseMerkleTree(store, old_root, old_version)
    for key, value in STATE.items():  # the first root's pages and leaf versions are intact
        proof, leaf_version = old.locate(key)
        verify_inclusion(old_root, key, value, proof)
        assert leaf_version == 1
    assert tree.locate(b"key 2")[1] == 3


def test_setting_keys_to_the_values_they_have_writes_nothing() -> None:
    store = CountingStore()
    tree = SparseMerkleTree(store)
    root = tree.update(STATE)
    version = tree.version
    store.puts.clear()
    assert tree.update(dict(list(STATE.items())[:7])) == root
    assert tree.update(dict.fromkeys(ABSENT)) == root
    assert store.puts == []
    assert tree.version == version


def test_a_batch_writes_each_new_page_once() -> None:
    store = CountingStore()
    tree = SparseMerkleTree(store)
    tree.update(STATE)
    reachable = {h for key in STATE for h in path_pages(tree, key)}
    assert sorted(store.puts) == sorted(reachable)  # the whole tree, each page once
    store.puts.clear()
    changes = dict.fromkeys(ABSENT, b"new")
    tree.update(changes)
    new_pages = {h for key in changes for h in path_pages(tree, key)}
    assert sorted(store.puts) == sorted(new_pages)


def test_one_change_costs_the_pages_on_its_path() -> None:
    store = CountingStore()
    tree = SparseMerkleTree(store)
    tree.update({f"k{i}".encode(): b"v" for i in range(1000)})
    store.puts.clear()
    tree.update({b"new key": b"v"})
    assert store.puts == path_pages(tree, b"new key")[::-1]  # written from the bottom up
    depth = len(tree.prove(b"new key").siblings)
    assert len(store.puts) == -(-depth // 4)  # one page per four levels of the binary tree
    assert depth < 30


def test_a_page_keeps_the_binary_hashes_between_its_slots() -> None:
    leaf = leaf_slot(sha(b"p"), sha(b"v"), 3)
    other = PageSlot(sha(b"below"), 7)
    slots: list[LeafSlot | PageSlot | None] = [None] * 16
    slots[0], slots[3] = leaf, other
    page = SmtPage(tuple(slots))
    # Heap entries 8 and 9 are the depth-3 nodes 000 (slots 0, 1) and 001 (slots 2, 3);
    # the two slots meet at entry 4, node 00.
    assert page.hashes[8] == leaf.hash  # node 000 holds the lone leaf: it rises there
    assert page.hashes[9] == internal_hash(EMPTY, other.hash)
    assert page.hashes[4] == internal_hash(leaf.hash, page.hashes[9])
    assert page.root == internal_hash(internal_hash(page.hashes[4], EMPTY), EMPTY)
    alone = page_of_leaf(leaf, 0)
    assert alone == SmtPage(alone.slots)
    assert (alone.hashes, alone.kinds) == (SmtPage(alone.slots).hashes, SmtPage(alone.slots).kinds)
    moved = page.replaced((None, *page.slots[1:]), [0])
    assert moved == SmtPage((None, *page.slots[1:]))
    assert moved.hashes == SmtPage((None, *page.slots[1:])).hashes


page_slots = st.lists(
    st.none()
    | st.builds(
        leaf_slot,
        st.binary(min_size=32, max_size=32),
        st.binary(min_size=32, max_size=32),
        st.integers(min_value=0, max_value=2**63 - 1),
    )
    | st.builds(PageSlot, st.binary(min_size=32, max_size=32), st.integers(0, 2**63 - 1)),
    min_size=16,
    max_size=16,
).map(tuple)


@given(page_slots)
def test_page_records_round_trip(slots: tuple[LeafSlot | PageSlot | None, ...]) -> None:
    page = SmtPage(slots)
    data = encode_page(page)
    assert data[:1] == PAGE_TAG
    decoded = decode_page(data)
    assert decoded == page
    assert decoded.hashes == page.hashes and decoded.kinds == page.kinds


GOOD_PAGE = encode_page(TREE.store.get(TREE.version, TREE.root))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02",
        b"\x01" + GOOD_PAGE[1:],  # an internal node of the earlier binary layout
        GOOD_PAGE[:-1],
        GOOD_PAGE + b"\x00",
        b"\x02\x00\x01\x00\x02",  # a leaf marked in a slot not in use
        b"\x02\x00\x01\x00\x01" + bytes(71),
    ],
)
def test_bad_page_records_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_page(data)


def test_decode_refuses_proofs_with_too_many_siblings() -> None:
    proof = SmtProof((sha(b"s"),) * 257, None)
    with pytest.raises(DecodeError, match="exceeds the maximum 256"):
        decode(SmtProof, encode(proof))
    assert decode(SmtProof, encode(SmtProof((sha(b"s"),) * 256, None))).siblings[0] == sha(b"s")


# --- malformed proofs raise ProofError, nothing else ----------------------------------

H = sha(b"h")
BAD_PROOFS = [
    pytest.param(SmtProof((bytes(31),), None), "sibling 0 has 31 bytes", id="short-sibling"),
    pytest.param(SmtProof((H, H + b"x"), None), "sibling 1 has 33 bytes", id="long-sibling"),
    pytest.param(SmtProof((H,) * 257, None), "257 siblings", id="too-many"),
    pytest.param(SmtProof([H], None), "not a tuple", id="list"),
    pytest.param(SmtProof(("ab" * 16,), None), "is str", id="str-sibling"),
    pytest.param(SmtProof((H, EMPTY), None), "deepest sibling is EMPTY", id="empty-last"),
    pytest.param(SmtProof((), leaf_slot(H, H, 0)), "not an SmtLeaf", id="slot-leaf"),
    pytest.param(SmtProof((), SmtLeaf(H[:5], H)), "path has 5 bytes", id="short-path"),
    pytest.param(SmtProof((), SmtLeaf(H, None)), "value hash is NoneType", id="none-vh"),
    pytest.param(None, "expected an SmtProof", id="none"),
    pytest.param(((), None), "expected an SmtProof", id="tuple"),
]


@pytest.mark.parametrize(("proof", "reason"), BAD_PROOFS)
def test_malformed_proofs(proof: SmtProof, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_inclusion(TREE.root, b"key 1", STATE[b"key 1"], proof)
    with pytest.raises(ProofError, match=reason):
        verify_exclusion(TREE.root, b"absent", proof)


def test_malformed_root() -> None:
    proof = TREE.prove(b"key 1")
    with pytest.raises(ProofError, match="root has 31 bytes"):
        verify_inclusion(TREE.root[:31], b"key 1", STATE[b"key 1"], proof)
    with pytest.raises(ProofError, match="root is str"):
        verify_exclusion("00" * 32, b"absent", proof)


junk_hash = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40), st.none())


@settings(deadline=None, max_examples=200)
@given(
    siblings=st.lists(junk_hash, max_size=300).map(tuple),
    leaf=st.none() | st.builds(SmtLeaf, junk_hash, junk_hash),
    key=st.binary(max_size=4),
)
def test_arbitrary_proofs_raise_only_proof_error(
    siblings: tuple[bytes, ...], leaf: SmtLeaf | None, key: bytes
) -> None:
    proof = SmtProof(siblings, leaf)
    with pytest.raises(ProofError):
        verify_inclusion(TREE.root, key, b"v", proof)
    with pytest.raises(ProofError):
        verify_exclusion(TREE.root, key, proof)
