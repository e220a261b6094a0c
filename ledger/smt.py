"""The state: a compact binary sparse Merkle tree over 256-bit paths.

Every checkpoint signs the root of this tree, so its hashing rule is part of
the protocol:

- A key's path is SHA-256(key), read most significant bit first; bit `d`
  chooses the child at depth `d` (0 = left, 1 = right).
- leaf = SHA-256(0x00 || path || SHA-256(value)); internal node =
  SHA-256(0x01 || left || right). The prefixes keep the two kinds apart, so no
  leaf can pass for an internal node or the reverse (as in RFC 9162).
- An empty subtree hashes to `EMPTY`, 32 zero bytes, at every level. No one
  can find a SHA-256 preimage of it, so it never stands for real content, and
  being one constant it needs no per-level table of defaults.
- Compaction: a subtree holding exactly one leaf is that leaf, wherever it
  sits; internal nodes exist only over two or more leaves. A path is therefore
  about log2(number of keys) long rather than 256, as in Diem's sparse Merkle
  tree and the "compact sparse Merkle tree" literature. Because a leaf's
  position no longer spells out its whole path, the leaf hash commits to the
  path itself.

The tree is a function of its key-value set alone (it is history
independent): every validator reaches the same root whatever the order and
batching of its updates. The root of the empty tree is `EMPTY` and the root of
a one-key tree is that key's leaf hash.

Values are not kept here, only their hashes; the node stores values
elsewhere. Nodes are never deleted, so every old root stays readable and
provable.

Storage in pages (as in Diem's Jellyfish Merkle tree, a 16-way layout of the
same binary tree): a page is the part of the tree between two depths that are
multiples of 4, kept as its 16 slots, the subtrees 4 levels below its top.
A slot is empty, a leaf (its path, value hash, and the version that set the
value), or a reference to the page below (its hash and version). The binary
hashes inside a page are computed from its slots, so the root and the proofs
are exactly those of the binary tree; storage just holds one record where the
binary layout held up to 15 internal nodes and 16 leaves. A page exists for
a subtree of two or more leaves (a lone leaf sits in its parent's slot), and
the root page always exists for a non-empty tree, stored under the root hash.
An update writes each page on the changed paths once per batch, all under
one version, a number the caller gives (the node gives the block height)
that never decreases. An `SmtNodeStore` keeps a page under (version, hash),
and a page's references hold their pages' versions beside their hashes: a
store ordered by version then appends each batch's pages at its end, where
keys by hash alone would scatter them over the whole table (a random page of
the database written per record once the table outgrows the page cache).
Versions are storage addresses, not content: the hashes, hence roots and
proofs, ignore them.

A proof lists the siblings along the key's path from the root down (at most
256) and the leaf the path ends in, or none if it ends in an empty subtree.
It is canonical: the deepest sibling of a compact tree is never `EMPTY`
(its parent would hold fewer than two leaves), and the verifiers reject one
that is.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Final, NamedTuple, Protocol, TypeAlias, cast

from ledger.encoding import MaxLength
from ledger.errors import DecodeError, ProofError
from ledger.hashing import HASH_BYTES, Hash

LEAF_PREFIX: Final = b"\x00"
INTERNAL_PREFIX: Final = b"\x01"
EMPTY: Final = bytes(HASH_BYTES)
PATH_BITS: Final = 8 * HASH_BYTES
"""Bits in a path, hence the most siblings a proof can hold."""


@dataclass(frozen=True, slots=True)
class SmtLeaf:
    """A leaf: the path of its key and the hash of its value."""

    path: Hash
    value_hash: Hash


@dataclass(frozen=True, slots=True)
class SmtProof:
    """The siblings along a key's path, root first, and the leaf the path ends in.

    `leaf` is None when the path ends in an empty subtree. The same proof
    shape shows inclusion (the leaf is the key's) or exclusion (no leaf, or
    the leaf of another key sharing the first `len(siblings)` path bits).
    """

    siblings: Annotated[tuple[Hash, ...], MaxLength(PATH_BITS)]
    leaf: SmtLeaf | None


def key_path(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + path + value_hash).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(INTERNAL_PREFIX + left + right).digest()


# --- pages ---------------------------------------------------------------------------

PAGE_BITS: Final = 4
"""Path bits a page spans, hence levels of the binary tree in a page."""
PAGE_SLOTS: Final = 1 << PAGE_BITS
_HEAP: Final = 2 * PAGE_SLOTS
"""A page's binary nodes as a heap: 1 is the page's top, i has children 2i and 2i + 1,
and the slots are PAGE_SLOTS .. _HEAP - 1."""
_EMPTY_KIND, _LEAF_KIND, _INTERNAL_KIND = 0, 1, 2
"""What a binary subtree holds: no leaf, one leaf (its hash is the leaf's), or more."""
_VERSION_BYTES: Final = 8
PAGE_TAG: Final = b"\x02"
"""The first byte of a stored page (0 and 1 began the binary nodes of an earlier layout)."""


class LeafSlot(NamedTuple):
    """A leaf in a page: its bytes in a page record (path, value hash, version), its hash,
    and the version that set its value.

    The version stays with the leaf when it moves to another slot or page, so a
    store that keeps values by the version that wrote them finds its value there.
    Path and value hash are read from the record: a cached page holds many leaves,
    and one copy of their bytes.
    """

    record: bytes
    hash: bytes
    version: int

    @property
    def path(self) -> bytes:
        return self.record[:HASH_BYTES]

    @property
    def value_hash(self) -> bytes:
        return self.record[HASH_BYTES : 2 * HASH_BYTES]


class PageSlot(NamedTuple):
    """A reference to the page below: its hash (its subtree's) and the version it is
    stored at."""

    hash: bytes
    version: int


def leaf_slot(path: bytes, value_hash: bytes, version: int) -> LeafSlot:
    record = path + value_hash + version.to_bytes(_VERSION_BYTES, "big")
    return LeafSlot(record, leaf_hash(path, value_hash), version)


Slot: TypeAlias = LeafSlot | PageSlot | None


def _place(hashes: list[bytes], kinds: bytearray, s: int, slot: Slot) -> None:
    """Slot s's entry in a page's heap: its hash and what it holds."""
    i = PAGE_SLOTS + s
    if slot is None:
        hashes[i], kinds[i] = EMPTY, _EMPTY_KIND
    else:
        hashes[i] = slot.hash
        kinds[i] = _LEAF_KIND if type(slot) is LeafSlot else _INTERNAL_KIND


def _combine(hashes: list[bytes], kinds: bytearray, i: int) -> None:
    """Heap node i from its two children, compacted: a lone leaf rises to take its place."""
    left, right = 2 * i, 2 * i + 1
    left_kind, right_kind = kinds[left], kinds[right]
    if left_kind == _EMPTY_KIND and right_kind != _INTERNAL_KIND:
        hashes[i], kinds[i] = hashes[right], right_kind
    elif right_kind == _EMPTY_KIND and left_kind == _LEAF_KIND:
        hashes[i], kinds[i] = hashes[left], _LEAF_KIND
    else:
        hashes[i] = internal_hash(hashes[left], hashes[right])
        kinds[i] = _INTERNAL_KIND


class SmtPage:
    """Sixteen slots and the binary tree's hashes between them and the page's top.

    `hashes[1]` is the hash of the page's subtree and `kinds[1]` whether it holds
    no leaf, one, or more; the other heap entries are the siblings proofs need.
    A page is never changed once built (cached pages are shared): `replaced`
    copies the heap.
    """

    __slots__ = ("hashes", "kinds", "slots")

    def __init__(
        self,
        slots: tuple[Slot, ...],
        hashes: list[bytes] | None = None,
        kinds: bytearray | None = None,
    ) -> None:
        self.slots = slots
        if hashes is None or kinds is None:
            hashes = [EMPTY] * _HEAP
            kinds = bytearray(_HEAP)
            for s, slot in enumerate(slots):
                _place(hashes, kinds, s, slot)
            for i in range(PAGE_SLOTS - 1, 0, -1):
                _combine(hashes, kinds, i)
        self.hashes = hashes
        self.kinds = kinds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SmtPage) and other.slots == self.slots

    def __hash__(self) -> int:
        return hash(self.slots)

    def __repr__(self) -> str:
        return f"SmtPage({self.slots!r})"

    @property
    def root(self) -> bytes:
        return self.hashes[1]

    def replaced(self, slots: tuple[Slot, ...], changed: list[int]) -> SmtPage:
        """This page with `slots`, which differ from its own at the indexes `changed`.

        Only the heap entries above a changed slot are hashed again.
        """
        hashes = self.hashes.copy()
        kinds = self.kinds.copy()
        for s in changed:
            _place(hashes, kinds, s, slots[s])
        if len(changed) == 1:  # the usual case below the top pages: one path up
            i = (PAGE_SLOTS + changed[0]) >> 1
            while i:
                _combine(hashes, kinds, i)
                i >>= 1
        else:
            level = {(PAGE_SLOTS + s) >> 1 for s in changed}
            while level:
                for i in level:
                    _combine(hashes, kinds, i)
                level = {i >> 1 for i in level if i > 1}
        return SmtPage(slots, hashes, kinds)

    def lone_leaf(self, i: int = 1) -> LeafSlot:
        """The leaf of heap entry i, whose kind is one leaf: the only slot below it in use."""
        width = PAGE_SLOTS >> (i.bit_length() - 1)
        first = i * width - PAGE_SLOTS
        for slot in self.slots[first : first + width]:
            if slot is not None:
                assert type(slot) is LeafSlot, "a subtree of one leaf holds no page"
                return slot
        raise AssertionError("a subtree of one leaf holds that leaf")


EMPTY_PAGE: Final = SmtPage((None,) * PAGE_SLOTS)


def page_of_leaf(leaf: LeafSlot, depth: int) -> SmtPage:
    """The page at `depth` holding only `leaf` (before other leaves join it there).

    Its heap needs no hashing: every node on the leaf's way up is that lone leaf.
    """
    s = _nibble(leaf.path, depth)
    slots: list[Slot] = [None] * PAGE_SLOTS
    slots[s] = leaf
    hashes = [EMPTY] * _HEAP
    kinds = bytearray(_HEAP)
    i = PAGE_SLOTS + s
    while i:
        hashes[i] = leaf.hash
        kinds[i] = _LEAF_KIND
        i >>= 1
    return SmtPage(tuple(slots), hashes, kinds)


def _bit(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _nibble(path: bytes, depth: int) -> int:
    """The page slot `path` goes through in a page at `depth` (a multiple of PAGE_BITS)."""
    byte = path[depth >> 3]
    return byte >> 4 if depth & 7 == 0 else byte & 0x0F


def encode_page(page: SmtPage) -> bytes:
    """A page's bytes for a store: a tag, which slots are in use and which of those are
    leaves (two 16-bit masks), then each slot in use: a leaf's path, value hash and
    version, or a page's hash and version (versions as 8 bytes, big-endian)."""
    used = leaves = 0
    records = []
    bit = 1
    for slot in page.slots:
        if slot is not None:
            used |= bit
            if type(slot) is LeafSlot:
                leaves |= bit
                records.append(slot.record)
            else:
                records.append(slot.hash + slot.version.to_bytes(_VERSION_BYTES, "big"))
        bit <<= 1
    return PAGE_TAG + used.to_bytes(2, "big") + leaves.to_bytes(2, "big") + b"".join(records)


def decode_page(data: bytes) -> SmtPage:
    """The inverse of `encode_page`; `DecodeError` for anything else."""
    if type(data) is not bytes or len(data) < 5 or data[:1] != PAGE_TAG:
        raise DecodeError("a state-tree page record is not bytes starting with its tag 2")
    used = int.from_bytes(data[1:3], "big")
    leaves = int.from_bytes(data[3:5], "big")
    if leaves & ~used:
        raise DecodeError("a state-tree page marks a leaf in a slot it does not use")
    slots: list[Slot] = [None] * PAGE_SLOTS
    at = 5
    for s in range(PAGE_SLOTS):
        if not used >> s & 1:
            continue
        if leaves >> s & 1:
            end = at + 2 * HASH_BYTES + _VERSION_BYTES
            record = data[at:end]
            path, value_hash = record[:HASH_BYTES], record[HASH_BYTES : 2 * HASH_BYTES]
            version = int.from_bytes(record[2 * HASH_BYTES :], "big")
            slots[s] = LeafSlot(record, leaf_hash(path, value_hash), version)
        else:
            end = at + HASH_BYTES + _VERSION_BYTES
            version = int.from_bytes(data[at + HASH_BYTES : end], "big")
            slots[s] = PageSlot(data[at : at + HASH_BYTES], version)
        at = end
    if at != len(data):
        raise DecodeError(
            f"a state-tree page record has {len(data)} bytes where its slots take {at}"
        )
    return SmtPage(tuple(slots))


class SmtNodeStore(Protocol):
    """Pages by (version, hash): the version of the update that wrote the page, and its hash.

    Two pages under one hash hold the same subtree, so either serves a reader;
    they may differ only in the versions they hold.
    """

    def get(self, version: int, page_hash: bytes) -> SmtPage | None: ...

    def put(self, version: int, page_hash: bytes, page: SmtPage) -> None: ...


class MemorySmtNodeStore:
    __slots__ = ("_pages",)

    def __init__(self) -> None:
        self._pages: dict[tuple[int, bytes], SmtPage] = {}

    def get(self, version: int, page_hash: bytes) -> SmtPage | None:
        return self._pages.get((version, page_hash))

    def put(self, version: int, page_hash: bytes, page: SmtPage) -> None:
        self._pages[version, page_hash] = page

    def __len__(self) -> int:
        return len(self._pages)


def _load(store: SmtNodeStore, version: int, page_hash: bytes) -> SmtPage:
    page = store.get(version, page_hash)
    if page is None:
        raise ProofError(f"the node store has no SMT page {page_hash.hex()} at version {version}")
    return page


def _hash_problem(value: object) -> str | None:
    """Why `value` is not a hash, or None if it is one."""
    if type(value) is not bytes:
        return f"is {type(value).__name__}, not bytes"
    if len(value) != HASH_BYTES:
        return f"has {len(value)} bytes, not {HASH_BYTES}"
    return None


def _checked_root(root: object) -> bytes:
    problem = _hash_problem(root)
    if problem is not None:
        raise ProofError(f"the root {problem}")
    return cast(bytes, root)


class SparseMerkleTree:
    """A view of the tree at `root`, stored at `version`, in `store`.

    `update` moves the view to a new root. Use another view on the same store
    for an older root (every root stays readable).
    """

    __slots__ = ("_root", "_store", "_version")

    def __init__(
        self, store: SmtNodeStore | None = None, root: bytes = EMPTY, version: int = 0
    ) -> None:
        self._store: SmtNodeStore = store if store is not None else MemorySmtNodeStore()
        self._root = _checked_root(root)
        self._version = version

    @property
    def root(self) -> bytes:
        return self._root

    @property
    def version(self) -> int:
        """The version of the update that made this root, where its root page is stored
        (0 for a tree never updated)."""
        return self._version

    @property
    def store(self) -> SmtNodeStore:
        return self._store

    def update(self, changes: Mapping[bytes, bytes | None], version: int | None = None) -> bytes:
        """Set each key to its value (None deletes it) in one batch; return the new root.

        New pages are stored under `version` (by default the tree's version
        plus one), which must not be below the version of any page already in
        the tree. The pages of the previous root are left as they are, so it
        stays provable.
        """
        if version is None:
            version = self._version + 1
        elif version < self._version:
            raise ValueError(f"version {version} is below the tree's version {self._version}")
        if not changes:
            return self._root
        items = sorted(
            (
                (key_path(key), None if value is None else hashlib.sha256(value).digest())
                for key, value in changes.items()
            ),
            key=lambda item: item[0],
        )
        batch = _Batch(self._store, version, [path for path, _ in items], [vh for _, vh in items])
        old = EMPTY_PAGE if self._root == EMPTY else _load(self._store, self._version, self._root)
        new = batch.page(old, 0, 0, len(items))
        if new is old:
            return self._root
        # The version moves on even when the tree empties: the next update's pages must
        # not land on a version that already holds others (with other leaf versions).
        self._root, self._version = new.root, version
        if new.kinds[1] != _EMPTY_KIND:  # the root page is stored even over one leaf:
            self._store.put(version, new.root, new)  # it is where a reader starts
        return self._root

    def prove(self, key: bytes) -> SmtProof:
        """A proof of `key`'s leaf or of its absence, under this view's root."""
        return self.locate(key)[0]

    def locate(self, key: bytes) -> tuple[SmtProof, int]:
        """`prove`, and the version the leaf it ends in was set at (0 when it ends in
        no leaf).

        A store that keeps values by the version that wrote them finds the
        leaf's value there. The leaf may be another key's (an exclusion proof):
        compare its path with the key's before reading a value.
        """
        path = key_path(key)
        siblings: list[bytes] = []
        if self._root == EMPTY:
            return SmtProof((), None), 0
        page = _load(self._store, self._version, self._root)
        depth = 0
        while True:
            nibble = _nibble(path, depth)
            i = 1
            for level in range(PAGE_BITS):
                kind = page.kinds[i]
                if kind == _EMPTY_KIND:
                    return SmtProof(tuple(siblings), None), 0
                if kind == _LEAF_KIND:
                    return _ending(siblings, page.lone_leaf(i))
                bit = (nibble >> (PAGE_BITS - 1 - level)) & 1
                siblings.append(page.hashes[2 * i + 1 - bit])
                i = 2 * i + bit
            slot = page.slots[i - PAGE_SLOTS]
            if slot is None:
                return SmtProof(tuple(siblings), None), 0
            if type(slot) is LeafSlot:
                return _ending(siblings, slot)
            depth += PAGE_BITS
            if depth >= PATH_BITS:
                raise ProofError("the node store holds a path deeper than 256 bits")
            page = _load(self._store, slot.version, slot.hash)


def _ending(siblings: list[bytes], leaf: LeafSlot) -> tuple[SmtProof, int]:
    return SmtProof(tuple(siblings), SmtLeaf(leaf.path, leaf.value_hash)), leaf.version


class _Batch:
    """One `update`: the changes sorted by path, and the recursion that applies them.

    The recursion works page by page on index ranges [lo, hi) of the sorted
    changes; all paths in a range share the bits above the current page, so a
    range splits into its slots' ranges at one binary search each. A page or
    slot whose changes leave it as it was is returned as the same object, so
    setting a key to the value it has writes nothing.
    """

    __slots__ = ("numbers", "paths", "store", "value_hashes", "version")

    def __init__(
        self,
        store: SmtNodeStore,
        version: int,
        paths: list[bytes],
        value_hashes: list[bytes | None],
    ) -> None:
        self.store = store
        self.version = version
        self.paths = paths
        self.numbers = [int.from_bytes(path, "big") for path in paths]
        self.value_hashes = value_hashes

    def page(self, page: SmtPage, depth: int, lo: int, hi: int) -> SmtPage:
        """`page` (at `depth`) with changes [lo, hi) applied; `page` itself if none changed it."""
        slots = page.slots
        new_slots: list[Slot] | None = None
        changed: list[int] = []
        numbers = self.numbers
        shift = PATH_BITS - PAGE_BITS - depth
        i = lo
        while i < hi:
            prefix = numbers[i] >> shift
            j = hi if hi - i == 1 else bisect_left(numbers, (prefix + 1) << shift, i + 1, hi)
            s = prefix & (PAGE_SLOTS - 1)
            old = slots[s]
            new = self.slot(old, depth + PAGE_BITS, i, j)
            if new is not old:
                if new_slots is None:
                    new_slots = list(slots)
                new_slots[s] = new
                changed.append(s)
            i = j
        if new_slots is None:
            return page
        return page.replaced(tuple(new_slots), changed)

    def slot(self, slot: Slot, depth: int, lo: int, hi: int) -> Slot:
        """The subtree at `depth` in `slot` with changes [lo, hi) applied; `slot` if unchanged."""
        if slot is None:
            if hi - lo == 1:
                return self.leaf(lo)
            page = EMPTY_PAGE
        elif type(slot) is LeafSlot:
            if hi - lo == 1 and self.paths[lo] == slot.path:
                value_hash = self.value_hashes[lo]
                if value_hash == slot.value_hash:
                    return slot
                return self.leaf(lo)
            page = page_of_leaf(slot, depth)  # other keys join the leaf: push it a page down
        else:
            page = _load(self.store, slot.version, slot.hash)
        new = self.page(page, depth, lo, hi)
        if new is page:
            return slot
        kind = new.kinds[1]
        if kind == _EMPTY_KIND:
            return None
        if kind == _LEAF_KIND:  # a lone leaf rises to take its page's place
            return new.lone_leaf()
        self.store.put(self.version, new.root, new)
        return PageSlot(new.root, self.version)

    def leaf(self, i: int) -> LeafSlot | None:
        """Change i as a leaf written now (None for a deletion)."""
        value_hash = self.value_hashes[i]
        if value_hash is None:
            return None
        return leaf_slot(self.paths[i], value_hash, self.version)


# --- verification ---------------------------------------------------------------------


def _checked_proof(proof: object) -> tuple[tuple[bytes, ...], SmtLeaf | None]:
    """The proof's parts, after checking every field's type and size.

    Proofs arrive from other parties, so nothing about them is assumed: a
    malformed one raises `ProofError`, never another exception.
    """
    if not isinstance(proof, SmtProof):
        raise ProofError(f"expected an SmtProof, got {type(proof).__name__}")
    siblings = cast(object, proof.siblings)
    if not isinstance(siblings, tuple):
        raise ProofError(f"the proof's siblings are {type(siblings).__name__}, not a tuple")
    if len(siblings) > PATH_BITS:
        raise ProofError(f"the proof has {len(siblings)} siblings; paths have {PATH_BITS} bits")
    for i, sibling in enumerate(siblings):
        problem = _hash_problem(sibling)
        if problem is not None:
            raise ProofError(f"sibling {i} {problem}")
    if siblings and siblings[-1] == EMPTY:
        raise ProofError("the deepest sibling is EMPTY, which a compact tree never has")
    leaf = cast(object, proof.leaf)
    if leaf is None:
        return siblings, None
    if not isinstance(leaf, SmtLeaf):
        raise ProofError(f"the proof's leaf is {type(leaf).__name__}, not an SmtLeaf")
    for name, value in (("path", leaf.path), ("value hash", leaf.value_hash)):
        problem = _hash_problem(value)
        if problem is not None:
            raise ProofError(f"the leaf's {name} {problem}")
    return siblings, leaf


def _check_root(root: bytes, path: bytes, siblings: tuple[bytes, ...], end: bytes) -> None:
    """Hash from the end of the path (`end`, at depth len(siblings)) up to the root."""
    node = end
    for depth in range(len(siblings) - 1, -1, -1):
        sibling = siblings[depth]
        node = internal_hash(sibling, node) if _bit(path, depth) else internal_hash(node, sibling)
    if node != root:
        raise ProofError("the proof does not lead to the expected root")


def verify_inclusion(root: bytes, key: bytes, value: bytes, proof: SmtProof) -> None:
    """Raise `ProofError` unless `proof` shows `key` set to `value` in the tree at `root`."""
    root = _checked_root(root)
    path = key_path(key)
    siblings, leaf = _checked_proof(proof)
    if leaf is None:
        raise ProofError("the proof ends in an empty subtree, not in the key's leaf")
    if leaf.path != path:
        raise ProofError("the proof ends in the leaf of another key")
    if leaf.value_hash != hashlib.sha256(value).digest():
        raise ProofError("the key's leaf holds the hash of a different value")
    _check_root(root, path, siblings, leaf_hash(leaf.path, leaf.value_hash))


def verify_exclusion(root: bytes, key: bytes, proof: SmtProof) -> None:
    """Raise `ProofError` unless `proof` shows `key` absent from the tree at `root`."""
    root = _checked_root(root)
    path = key_path(key)
    siblings, leaf = _checked_proof(proof)
    if leaf is None:
        end = EMPTY
    else:
        if leaf.path == path:
            raise ProofError("the proof ends in the key's own leaf: the key is present")
        depth = len(siblings)
        if any(_bit(leaf.path, d) != _bit(path, d) for d in range(depth)):
            raise ProofError(
                f"the proof's leaf does not share the key's first {depth} path bits,"
                " so it cannot end the key's path"
            )
        end = leaf_hash(leaf.path, leaf.value_hash)
    _check_root(root, path, siblings, end)
