"""Client-side vault encryption: round trips, and every tampering the chunk layout must catch."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from client.vault_crypto import (
    Decryptor,
    IntegrityError,
    Layout,
    build_manifest,
    ciphertext_hash,
    decrypt_chunk,
    encrypt_chunk,
    encrypt_file,
    encryption_key_path,
    load_or_create_encryption_key,
    new_content_key,
    public_bytes,
    unwrap_key,
    wrap_key,
)
from ledger.families.vault import TAG_BYTES, WrappedKey

CHUNK = 1024


def sample(tmp_path: Path, size: int, name: str = "sample.bin") -> tuple[Path, Layout]:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    digest = hashlib.sha256(path.read_bytes()).digest()
    return path, Layout(digest, size, CHUNK)


def decrypt_all(layout: Layout, key: bytes, manifest: bytes, chunks: list[bytes]) -> bytes:
    out = io.BytesIO()
    decryptor = Decryptor(out, key, layout, manifest)
    for index, chunk in enumerate(chunks):
        decryptor.add(index, chunk)
    decryptor.finish()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 77])
def test_round_trip_restores_the_plaintext_and_its_hash(tmp_path: Path, size: int) -> None:
    path, layout = sample(tmp_path, size)
    key = new_content_key()
    manifest, chunks = encrypt_file(path, key, layout)
    assert len(chunks) == layout.chunk_count == max(1, -(-size // CHUNK))
    assert sum(len(c) for c in chunks) == size + TAG_BYTES * layout.chunk_count
    assert manifest == build_manifest(path, key, layout)  # deterministic for one key
    assert ciphertext_hash(manifest) == hashlib.sha256(manifest).digest()
    assert decrypt_all(layout, key, manifest, chunks) == path.read_bytes()


def test_ciphertext_differs_under_a_new_content_key(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 3 * CHUNK)
    first, _ = encrypt_file(path, new_content_key(), layout)
    second, _ = encrypt_file(path, new_content_key(), layout)
    assert first != second


def test_a_flipped_bit_in_a_chunk_is_detected(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 4 * CHUNK)
    key = new_content_key()
    manifest, chunks = encrypt_file(path, key, layout)
    tampered = bytearray(chunks[2])
    tampered[10] ^= 0x01
    chunks[2] = bytes(tampered)
    with pytest.raises(IntegrityError, match="chunk 2 does not match its hash"):
        decrypt_all(layout, key, manifest, chunks)
    # Even with a manifest rewritten to match, the tag refuses it.
    forged = manifest[:64] + hashlib.sha256(chunks[2]).digest() + manifest[96:]
    with pytest.raises(IntegrityError, match="chunk 2 of 4 does not decrypt"):
        decrypt_all(layout, key, forged, chunks)


def test_the_wrong_content_key_is_refused(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 2 * CHUNK)
    manifest, chunks = encrypt_file(path, new_content_key(), layout)
    with pytest.raises(IntegrityError, match="does not decrypt"):
        decrypt_all(layout, new_content_key(), manifest, chunks)


def test_reordered_chunks_are_detected_even_with_a_matching_manifest(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 4 * CHUNK)
    key = new_content_key()
    _, chunks = encrypt_file(path, key, layout)
    chunks[1], chunks[2] = chunks[2], chunks[1]
    manifest = b"".join(hashlib.sha256(c).digest() for c in chunks)
    with pytest.raises(IntegrityError, match="chunk 1 of 4 does not decrypt"):
        decrypt_all(layout, key, manifest, chunks)


def test_truncation_is_detected(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 4 * CHUNK)
    key = new_content_key()
    manifest, chunks = encrypt_file(path, key, layout)
    # Fewer chunks than the layout: the download is incomplete.
    out = io.BytesIO()
    decryptor = Decryptor(out, key, layout, manifest)
    for index in range(3):
        decryptor.add(index, chunks[index])
    with pytest.raises(IntegrityError, match="only 3 of 4 chunks"):
        decryptor.finish()
    # A shorter layout claimed for the same chunks: the count is in each chunk's tag.
    short = Layout(layout.evidence_id, 3 * CHUNK, CHUNK)
    with pytest.raises(IntegrityError, match="chunk 0 of 3 does not decrypt"):
        decrypt_all(short, key, manifest[: 3 * 32], chunks[:3])


def test_a_chunk_from_another_file_under_the_same_key_is_refused(tmp_path: Path) -> None:
    key = new_content_key()
    one, layout_one = sample(tmp_path, 2 * CHUNK, "one.bin")
    two, layout_two = sample(tmp_path, 2 * CHUNK, "two.bin")
    _, chunks_one = encrypt_file(one, key, layout_one)
    _, chunks_two = encrypt_file(two, key, layout_two)
    mixed = [chunks_one[0], chunks_two[1]]
    manifest = b"".join(hashlib.sha256(c).digest() for c in mixed)
    with pytest.raises(IntegrityError, match="chunk 1 of 2 does not decrypt"):
        decrypt_all(layout_one, key, manifest, mixed)


def test_a_plaintext_that_is_not_the_evidence_is_refused(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 2 * CHUNK)
    key = new_content_key()
    wrong = Layout(hashlib.sha256(b"something else").digest(), layout.plaintext_size, CHUNK)
    _, chunks = encrypt_file(path, key, wrong)  # encrypted "for" another evidence id
    manifest = b"".join(hashlib.sha256(c).digest() for c in chunks)
    with pytest.raises(IntegrityError, match="SHA-256 is not the evidence id"):
        decrypt_all(wrong, key, manifest, chunks)


def test_a_partial_download_resumes_from_its_whole_chunks(tmp_path: Path) -> None:
    path, layout = sample(tmp_path, 5 * CHUNK + 10)
    key = new_content_key()
    manifest, chunks = encrypt_file(path, key, layout)
    plaintext = path.read_bytes()
    part = io.BytesIO(plaintext[: 2 * CHUNK + 100])  # two whole chunks and a torn third
    decryptor = Decryptor(part, key, layout, manifest)
    start = decryptor.resume()
    assert start == 2
    for index in range(start, layout.chunk_count):
        decryptor.add(index, chunks[index])
    decryptor.finish()
    assert part.getvalue() == plaintext


def test_single_chunk_functions_bind_index_and_count() -> None:
    key, evidence_id = new_content_key(), hashlib.sha256(b"x").digest()
    sealed = encrypt_chunk(key, evidence_id, 3, 9, b"payload")
    assert decrypt_chunk(key, evidence_id, 3, 9, sealed) == b"payload"
    for index, count in ((4, 9), (3, 8)):
        with pytest.raises(IntegrityError):
            decrypt_chunk(key, evidence_id, index, count, sealed)


def test_a_wrapped_key_opens_only_for_its_reader_and_evidence() -> None:
    reader, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    content_key, evidence_id = new_content_key(), hashlib.sha256(b"file").digest()
    wrapped = wrap_key(content_key, public_bytes(reader), evidence_id)
    assert unwrap_key(wrapped, reader, evidence_id) == content_key
    with pytest.raises(IntegrityError, match="not wrapped for this identity"):
        unwrap_key(wrapped, other, evidence_id)
    with pytest.raises(IntegrityError):
        unwrap_key(wrapped, reader, hashlib.sha256(b"another file").digest())
    swapped = WrappedKey(public_bytes(other), wrapped.ciphertext)
    with pytest.raises(IntegrityError):
        unwrap_key(swapped, reader, evidence_id)


def test_the_encryption_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = encryption_key_path(tmp_path / "applicant.key")
    assert path.name == "applicant.key.x25519"
    first = load_or_create_encryption_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_encryption_key(path)
    assert public_bytes(again) == public_bytes(first)
