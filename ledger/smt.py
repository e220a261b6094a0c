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
provable. An update writes only the nodes on the changed paths, each once per
batch, and writes them all under one version, a number the caller gives
(the node gives the block height) that never decreases. An `SmtNodeStore`
keeps a node under (version, hash) and an internal node holds its children's
versions beside their hashes, as in Diem's Jellyfish Merkle tree: a store
ordered by version then appends each batch's nodes at its end, where keys by
hash alone would scatter them over the whole table (a random page written per
node once the table outgrows the page cache). Versions are storage
addresses, not content: the hashes, hence roots and proofs, ignore them.

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
from typing import Annotated, Final, Protocol, TypeAlias, cast

from ledger.encoding import MaxLength, decode, pack
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
class SmtInternal:
    """An internal node over two or more leaves: its children's hashes and store versions."""

    left: Hash
    right: Hash
    left_version: int
    right_version: int


SmtNode: TypeAlias = SmtLeaf | SmtInternal


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


def node_digest(node: SmtNode) -> bytes:
    """The hash under which `node` is stored."""
    if isinstance(node, SmtLeaf):
        return leaf_hash(node.path, node.value_hash)
    return internal_hash(node.left, node.right)


def encode_node(node: SmtNode) -> bytes:
    """A node's bytes for a store: its hash prefix (the kind) then its canonical encoding.

    Spelled out rather than through `encode` (the same bytes, which a test checks):
    an update encodes every node it writes, about six per changed key.
    """
    if isinstance(node, SmtLeaf):
        return LEAF_PREFIX + pack((node.path, node.value_hash))
    return INTERNAL_PREFIX + pack((node.left, node.right, node.left_version, node.right_version))


def decode_node(data: bytes) -> SmtNode:
    """The inverse of `encode_node`; `DecodeError` for anything else."""
    if type(data) is not bytes or not data:
        raise DecodeError("an SMT node record is empty or not bytes")
    kind, body = data[:1], data[1:]
    if kind == LEAF_PREFIX:
        return decode(SmtLeaf, body)
    if kind == INTERNAL_PREFIX:
        return decode(SmtInternal, body)
    raise DecodeError(f"an SMT node record starts with its kind 0 or 1, not {data[0]}")


class SmtNodeStore(Protocol):
    """Nodes by (version, hash): the version of the update that wrote the node, and its hash.

    Two nodes under one hash have the same children hashes, so either serves a
    reader; they may differ only in their children's versions.
    """

    def get(self, version: int, node_hash: bytes) -> SmtNode | None: ...

    def put(self, version: int, node_hash: bytes, node: SmtNode) -> None: ...


class MemorySmtNodeStore:
    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, bytes], SmtNode] = {}

    def get(self, version: int, node_hash: bytes) -> SmtNode | None:
        return self._nodes.get((version, node_hash))

    def put(self, version: int, node_hash: bytes, node: SmtNode) -> None:
        self._nodes[version, node_hash] = node

    def __len__(self) -> int:
        return len(self._nodes)


def _bit(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _load(store: SmtNodeStore, version: int, node_hash: bytes) -> SmtNode:
    node = store.get(version, node_hash)
    if node is None:
        raise ProofError(f"the node store has no SMT node {node_hash.hex()} at version {version}")
    return node


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
        """The version the root node is stored under (0 for the empty tree)."""
        return self._version

    @property
    def store(self) -> SmtNodeStore:
        return self._store

    def update(self, changes: Mapping[bytes, bytes | None], version: int | None = None) -> bytes:
        """Set each key to its value (None deletes it) in one batch; return the new root.

        New nodes are stored under `version` (by default the tree's version
        plus one), which must not be below the version of any node already in
        the tree. The nodes of the previous root are left as they are, so it
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
        self._root, self._version, _ = batch.update(self._root, self._version, 0, 0, len(items))
        return self._root

    def prove(self, key: bytes) -> SmtProof:
        """A proof of `key`'s leaf or of its absence, under this view's root."""
        return self.locate(key)[0]

    def locate(self, key: bytes) -> tuple[SmtProof, int]:
        """`prove`, and the version its leaf is stored under (0 when it ends in no leaf).

        A leaf is written by the update that set its value and keeps its
        version when it moves, so a store that keeps values by the version
        that wrote them finds the leaf's value there.
        """
        node_hash, version = self._root, self._version
        path = key_path(key)
        siblings: list[bytes] = []
        while node_hash != EMPTY:
            node = _load(self._store, version, node_hash)
            if isinstance(node, SmtLeaf):
                return SmtProof(tuple(siblings), node), version
            if len(siblings) == PATH_BITS:
                raise ProofError("the node store holds a path deeper than 256 bits")
            if _bit(path, len(siblings)):
                siblings.append(node.left)
                node_hash, version = node.right, node.right_version
            else:
                siblings.append(node.right)
                node_hash, version = node.left, node.left_version
        return SmtProof(tuple(siblings), None), 0


_Child: TypeAlias = tuple[bytes, int, bool | None]
"""A subtree after an update: its hash, its store version, and whether it is a leaf
(None when unknown: an untouched subtree)."""


class _Batch:
    """One `update`: the changes sorted by path, and the recursion that applies them.

    The recursion works on index ranges [lo, hi) of the sorted changes; all
    paths in a range share the bits above the current depth, so a range splits
    at one binary search. Each call returns the new subtree as a `_Child`, whose
    leaf flag is what joining two children needs to keep the tree compact.
    A subtree whose hash comes out unchanged keeps its old node and version,
    so setting a key to the value it has writes nothing.
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

    def update(self, node_hash: bytes, version: int, depth: int, lo: int, hi: int) -> _Child:
        """Apply changes [lo, hi) to the subtree `node_hash` (stored at `version`) at `depth`."""
        if lo == hi:
            return node_hash, version, None
        if node_hash == EMPTY:
            return self.build(depth, lo, hi)
        node = _load(self.store, version, node_hash)
        # Plain locals, not tuples of (hash, version): this runs once per node on a changed path.
        if isinstance(node, SmtInternal):
            internal = True
            left, left_version = node.left, node.left_version
            right, right_version = node.right, node.right_version
        else:
            internal = False
            path = node.path
            if hi - lo == 1 and self.paths[lo] == path:
                value_hash = self.value_hashes[lo]
                if value_hash is None:
                    return EMPTY, 0, False
                if value_hash == node.value_hash:
                    return node_hash, version, True
                return self.leaf(path, value_hash)
            if _bit(path, depth):  # other keys join the leaf: push it one level down
                left, left_version, right, right_version = EMPTY, 0, node_hash, version
            else:
                left, left_version, right, right_version = node_hash, version, EMPTY, 0
        mid = self.split(depth, lo, hi)
        new_left = self.update(left, left_version, depth + 1, lo, mid)
        new_right = self.update(right, right_version, depth + 1, mid, hi)
        if internal and new_left[0] == left and new_right[0] == right:
            return node_hash, version, False
        return self.join(new_left, new_right)

    def build(self, depth: int, lo: int, hi: int) -> _Child:
        """The subtree at `depth` holding changes [lo, hi) and nothing else."""
        if hi - lo == 1:
            value_hash = self.value_hashes[lo]
            if value_hash is None:  # deleting a key that is not there
                return EMPTY, 0, False
            return self.leaf(self.paths[lo], value_hash)
        if lo == hi:
            return EMPTY, 0, False
        mid = self.split(depth, lo, hi)
        return self.join(self.build(depth + 1, lo, mid), self.build(depth + 1, mid, hi))

    def split(self, depth: int, lo: int, hi: int) -> int:
        """The first index in [lo, hi) whose path has bit `depth` set."""
        shift = PATH_BITS - 1 - depth
        threshold = ((self.numbers[lo] >> shift) | 1) << shift
        return bisect_left(self.numbers, threshold, lo, hi)

    def join(self, left: _Child, right: _Child) -> _Child:
        """The parent of two canonical children, compacted."""
        left_hash, right_hash = left[0], right[0]
        if left_hash == EMPTY:
            if right_hash == EMPTY:
                return EMPTY, 0, False
            if self.is_leaf(right):  # a lone leaf rises to take its parent's place
                return right[0], right[1], True
        elif right_hash == EMPTY and self.is_leaf(left):
            return left[0], left[1], True
        node_hash = internal_hash(left_hash, right_hash)
        node = SmtInternal(left_hash, right_hash, left[1], right[1])
        self.store.put(self.version, node_hash, node)
        return node_hash, self.version, False

    def is_leaf(self, child: _Child) -> bool:
        node_hash, version, known = child
        if known is not None:
            return known
        return isinstance(_load(self.store, version, node_hash), SmtLeaf)

    def leaf(self, path: bytes, value_hash: bytes) -> _Child:
        node_hash = leaf_hash(path, value_hash)
        self.store.put(self.version, node_hash, SmtLeaf(path, value_hash))
        return node_hash, self.version, True


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
