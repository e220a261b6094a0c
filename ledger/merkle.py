"""The transaction log: an append-only Merkle tree hashed as in RFC 9162 section 2.1.

leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), and the
tree over n leaves splits at the largest power of two below n. Inclusion and
consistency proofs are the RFC's PATH and PROOF lists; their verifiers follow
sections 2.1.3.2 and 2.1.4.2 step by step, so proofs interoperate with
transparency-log tooling.

The log keeps only the hashes of complete ("perfect") subtrees, level by
level, in a `NodeStore`. Any other subtree hash is derived from at most
O(log n) of them, so a proof costs O(log^2 n) hashes in the worst case and
appending costs O(1) amortised. The store is an interface so that the node
can keep the same nodes in its database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, Protocol

from ledger.errors import ProofError
from ledger.hashing import HASH_BYTES

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (used for a block's transaction root)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    # Pairing from the left and carrying an odd last node up unchanged gives
    # exactly the RFC's split-at-the-largest-power-of-two tree.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class NodeStore(Protocol):
    """Hashes of perfect subtrees: level 0 holds leaf hashes, level k subtrees of 2**k leaves."""

    def get(self, level: int, index: int) -> bytes: ...

    def append(self, level: int, digest: bytes) -> None: ...

    def count(self, level: int) -> int: ...


class MemoryNodeStore:
    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    def get(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def append(self, level: int, digest: bytes) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(digest)

    def count(self, level: int) -> int:
        return len(self._levels[level]) if level < len(self._levels) else 0


class MerkleLog:
    """An append-only RFC 9162 log of leaf hashes with inclusion and consistency proofs."""

    __slots__ = ("_store",)

    def __init__(self, store: NodeStore | None = None) -> None:
        self._store: NodeStore = store if store is not None else MemoryNodeStore()

    @property
    def size(self) -> int:
        return self._store.count(0)

    def append(self, leaf_digest: bytes) -> int:
        """Append a leaf hash; return its index."""
        store = self._store
        index = store.count(0)
        store.append(0, leaf_digest)
        level, position, digest = 0, index, leaf_digest
        # Each time a right child completes a pair, the parent subtree is perfect.
        while position & 1:
            digest = node_hash(store.get(level, position - 1), digest)
            level += 1
            position >>= 1
            store.append(level, digest)
        return index

    def extend(self, leaf_digests: Sequence[bytes]) -> None:
        for digest in leaf_digests:
            self.append(digest)

    def leaf(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise ProofError(f"the log has {self.size} leaves, no leaf {index}")
        return self._store.get(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (all of them by default)."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of size {size}")
        proof: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[0:size2]) of RFC 9162 section 2.1.4.1."""
        size2 = self.size if size2 is None else size2
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise ProofError(f"no consistency proof from size {size1} to size {size2}")
        proof: list[bytes] = []
        m, lo, hi, complete = size1, 0, size2, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._subtree(lo, lo + k))
                m -= k
                lo += k
                complete = False
        if not complete:
            proof.append(self._subtree(lo, hi))
        proof.reverse()
        return proof

    def _subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) where lo is aligned as in the RFC's recursion."""
        n = hi - lo
        if n & (n - 1) == 0:  # a perfect, aligned subtree is stored
            level = n.bit_length() - 1
            return self._store.get(level, lo >> level)
        k = _split(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"the log has {self.size} leaves, not {size}")


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, digest in enumerate(proof):
        if len(digest) != HASH_BYTES:
            raise ProofError(f"proof element {i} has {len(digest)} bytes, not {HASH_BYTES}")


def root_from_inclusion(index: int, size: int, leaf_digest: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 section 2.1.3.2, steps 1-5)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf_digest) != HASH_BYTES:
        raise ProofError(f"a leaf hash has {HASH_BYTES} bytes, not {len(leaf_digest)}")
    _check_hashes(proof)
    fn, sn, r = index, size - 1, leaf_digest
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf_digest: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise `ProofError` unless `proof` shows leaf `index` of a `size`-leaf tree under `root`."""
    if root_from_inclusion(index, size, leaf_digest, proof) != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise `ProofError` unless `proof` shows the size1-tree is a prefix of the size2-tree."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise ProofError("trees of equal size have different roots")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_hashes(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 1: size1 is a power of two
        path.insert(0, root1)
    fr, sr = _consistency_roots(size1, size2, path)
    if fr != root1:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != root2:
        raise ProofError("consistency proof does not lead to the second root")


def _consistency_roots(size1: int, size2: int, path: list[bytes]) -> tuple[bytes, bytes]:
    """Steps 2-6 of RFC 9162 section 2.1.4.2: the two roots a consistency path implies."""
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 3
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    return fr, sr
