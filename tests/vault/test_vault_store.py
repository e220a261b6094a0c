"""A node's vault files: checked on arrival, bounded per identity, dropped on erasure."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.encoding import encode
from ledger.families import vault as v
from node.vault import VaultError, VaultStore


def entry(chunks: list[bytes], owner: bytes = b"o" * 32) -> v.Entry:
    manifest = b"".join(hashlib.sha256(c).digest() for c in chunks)
    return v.Entry(
        evidence_id=os.urandom(32),
        owner=owner,
        ciphertext_hash=hashlib.sha256(manifest).digest(),
        chunk_size=v.CHUNK_BYTES_MIN,
        chunk_count=len(chunks),
        plaintext_size=sum(len(c) - v.TAG_BYTES for c in chunks),
        owner_key=v.WrappedKey(bytes(32), bytes(v.WRAPPED_KEY_BYTES)),
        owner_encryption_key=bytes(32),
        institutions=("a", "b"),
        stored_height=1,
        stored_time_ms=1,
        store_tx_id=bytes(32),
        storage_fee=0,
        paid_until_ms=1 + v.MONTH_MS,
        grantees=(),
        open_requests=(),
        downloads=0,
        deleted_height=None,
        deleted_time_ms=None,
        deleted_reason=None,
        events=0,
    )


def manifest_of(chunks: list[bytes]) -> bytes:
    return b"".join(hashlib.sha256(c).digest() for c in chunks)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VaultStore]:
    vault = VaultStore(tmp_path / "vault", quota_bytes=10_000)
    try:
        yield vault
    finally:
        vault.close()


def chunks(count: int, size: int = 1000) -> list[bytes]:
    return [os.urandom(size) for _ in range(count)]


def test_chunks_are_kept_by_hash_after_their_manifest(store: VaultStore) -> None:
    data = chunks(3)
    stored = entry(data)
    assert store.put_manifest(stored, manifest_of(data))
    assert not store.put_manifest(stored, manifest_of(data))  # again: already there
    for index, chunk in enumerate(data):
        expected = store.chunk_hash(stored.evidence_id, index)
        assert expected == hashlib.sha256(chunk).digest()
        assert store.put_chunk(expected, chunk)
        name = expected.hex()
        assert (store.root / name[:2] / name).read_bytes() == chunk
    assert store.chunk_hash(stored.evidence_id, 3) is None
    assert list(store.tmp.iterdir()) == []


def test_a_chunk_or_manifest_that_does_not_hash_right_is_refused(store: VaultStore) -> None:
    data = chunks(2)
    stored = entry(data)
    with pytest.raises(VaultError) as wrong_manifest:
        store.put_manifest(stored, manifest_of(list(reversed(data))))
    assert wrong_manifest.value.code == "hash_mismatch"
    with pytest.raises(VaultError) as short_manifest:
        store.put_manifest(stored, manifest_of(data[:1]))
    assert short_manifest.value.code == "bad_manifest"
    store.put_manifest(stored, manifest_of(data))
    tampered = bytearray(data[0])
    tampered[0] ^= 1
    with pytest.raises(VaultError) as wrong_chunk:
        store.put_chunk(hashlib.sha256(data[0]).digest(), bytes(tampered))
    assert wrong_chunk.value.code == "hash_mismatch"
    assert not store.has_chunk(hashlib.sha256(data[0]).digest())


def test_each_identity_has_a_quota_on_each_node(store: VaultStore, tmp_path: Path) -> None:
    first, second = chunks(6), chunks(6)  # 6000 bytes each, quota 10000
    store.put_manifest(entry(first), manifest_of(first))
    with pytest.raises(VaultError) as over:
        store.put_manifest(entry(second), manifest_of(second))
    assert (over.value.status, over.value.code) == (507, "quota_exceeded")
    other = entry(second, owner=b"p" * 32)
    assert store.put_manifest(other, manifest_of(second))
    reopened = VaultStore(tmp_path / "vault", quota_bytes=10_000)  # usage survives a restart
    try:
        assert reopened.usage == store.usage
    finally:
        reopened.close()


def test_an_erasure_in_a_block_removes_the_entrys_files(store: VaultStore) -> None:
    data = chunks(3)
    stored = entry(data)
    store.put_manifest(stored, manifest_of(data))
    for chunk in data:
        store.put_chunk(hashlib.sha256(chunk).digest(), chunk)
    kept = chunks(1)
    other = entry(kept)
    store.put_manifest(other, manifest_of(kept))
    store.put_chunk(hashlib.sha256(kept[0]).digest(), kept[0])
    erased = dataclasses.replace(stored, deleted_height=7, deleted_reason="erasure")
    writes = {v.entry_key(stored.evidence_id): encode(erased)}
    store.after_block(6, {v.entry_key(other.evidence_id): encode(other)})
    store.after_block(7, writes)
    store.pool.shutdown(wait=True)  # the erasure runs on the vault's pool
    assert not any(store.has_chunk(hashlib.sha256(c).digest()) for c in data)
    assert store.has_chunk(hashlib.sha256(kept[0]).digest())
    assert store.usage[stored.owner] == other.ciphertext_size


@contextlib.contextmanager
def file_size_limit(limit_bytes: int) -> Iterator[None]:
    """A full disk, for real: this process cannot write a file past `limit_bytes`
    (Python ignores SIGXFSZ, so the write fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_full_disk_is_a_507_that_keeps_nothing_and_counts_nothing(
    store: VaultStore,
) -> None:
    data = chunks(3)
    stored = entry(data)
    with file_size_limit(50), pytest.raises(VaultError) as manifest_refused:
        store.put_manifest(stored, manifest_of(data))
    assert (manifest_refused.value.status, manifest_refused.value.code) == (507, "storage_full")
    assert store.usage.get(stored.owner, 0) == 0
    assert store.read_manifest(stored.evidence_id) is None

    store.put_manifest(stored, manifest_of(data))
    digest = hashlib.sha256(data[0]).digest()
    with file_size_limit(500), pytest.raises(VaultError) as chunk_refused:
        store.put_chunk(digest, data[0])
    assert (chunk_refused.value.status, chunk_refused.value.code) == (507, "storage_full")
    assert not store.has_chunk(digest)
    assert list(store.tmp.iterdir()) == []
    assert store.put_chunk(digest, data[0])  # with room again
