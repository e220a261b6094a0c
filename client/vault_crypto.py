"""Vault encryption on the client: chunked AES-256-GCM, and content keys wrapped per reader.

Rules kept here:
- A file is encrypted in chunks (1 MiB by default) under a random 256-bit
  content key, so a multi-gigabyte file never sits in memory. Chunk i of n is
  AES-256-GCM with nonce `0x00000000 || i` (8 bytes, big-endian) and
  associated data `evidence id || i || n`, so a chunk cannot be moved to
  another position or file, and a file cannot be cut short: any of these fails
  the tag. One content key encrypts one file only, so nonces never repeat.
- Chunk i's address is SHA-256 of its ciphertext; the manifest is the chunk
  hashes concatenated in order, and the ciphertext hash recorded on chain is
  SHA-256 of the manifest. The evidence id is SHA-256 of the plaintext, so the
  chain binds plaintext, ciphertext and layout together, and a reader checks
  all three.
- The content key is wrapped for each reader's X25519 key: an ephemeral X25519
  key agreement, HKDF-SHA256 (info binding the evidence id, the reader's key
  and the ephemeral key) and AES-256-GCM. The owner wraps it for itself too.
- An identity's X25519 private key lives next to its signing key
  (`KEY.x25519`, PKCS#8 PEM, mode 0600, encrypted when
  NOTARYCHAIN_KEY_PASSPHRASE is set), created on first use.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from client.errors import ConfigError, VerificationFailed
from ledger.families.vault import CONTENT_KEY_BYTES, WrappedKey, chunk_count_for

NONCE_PREFIX: Final = bytes(4)
WRAP_INFO: Final = b"notarychain/vault-key/v1\x00"
WRAP_NONCE: Final = bytes(12)
"""Each wrapping key comes from a fresh ephemeral key and is used once, so a fixed nonce is safe."""
KEY_SUFFIX: Final = ".x25519"
KEY_FILE_MODE: Final = 0o600


class IntegrityError(VerificationFailed):
    """Ciphertext, a wrapped key or a decrypted file is not what the chain says it is."""


# ---------------------------------------------------------------- chunks


def chunk_nonce(index: int) -> bytes:
    return NONCE_PREFIX + index.to_bytes(8, "big")


def chunk_associated_data(evidence_id: bytes, index: int, count: int) -> bytes:
    return evidence_id + index.to_bytes(8, "big") + count.to_bytes(8, "big")


def encrypt_chunk(key: bytes, evidence_id: bytes, index: int, count: int, data: bytes) -> bytes:
    ad = chunk_associated_data(evidence_id, index, count)
    return AESGCM(key).encrypt(chunk_nonce(index), data, ad)


def decrypt_chunk(key: bytes, evidence_id: bytes, index: int, count: int, data: bytes) -> bytes:
    ad = chunk_associated_data(evidence_id, index, count)
    try:
        return AESGCM(key).decrypt(chunk_nonce(index), data, ad)
    except InvalidTag:
        raise IntegrityError(
            f"chunk {index} of {count} does not decrypt: wrong key, or it was altered, "
            "moved or taken from another file"
        ) from None


def ciphertext_hash(manifest: bytes) -> bytes:
    """The hash the chain records: SHA-256 of the chunk hashes, concatenated in order."""
    return hashlib.sha256(manifest).digest()


def manifest_hashes(manifest: bytes) -> list[bytes]:
    return [manifest[i : i + 32] for i in range(0, len(manifest), 32)]


@dataclass(frozen=True, slots=True)
class Layout:
    evidence_id: bytes
    plaintext_size: int
    chunk_size: int

    @property
    def chunk_count(self) -> int:
        return chunk_count_for(self.plaintext_size, self.chunk_size)


def read_chunks(handle: BinaryIO, layout: Layout, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """(index, plaintext) of each chunk from `start`, read one chunk at a time."""
    handle.seek(start * layout.chunk_size)
    for index in range(start, layout.chunk_count):
        data = handle.read(layout.chunk_size)
        expected = min(layout.chunk_size, layout.plaintext_size - index * layout.chunk_size)
        if len(data) != expected:
            raise IntegrityError("the file changed while it was being encrypted")
        yield index, data


def encrypted_chunks(
    path: Path, key: bytes, layout: Layout, start: int = 0
) -> Generator[tuple[int, bytes], None, None]:
    """(index, ciphertext) of each chunk of the file, streamed."""
    count = layout.chunk_count
    with path.open("rb") as handle:
        for index, data in read_chunks(handle, layout, start):
            yield index, encrypt_chunk(key, layout.evidence_id, index, count, data)


def build_manifest(path: Path, key: bytes, layout: Layout) -> bytes:
    """The manifest of the file's encryption under `key` (one streaming pass)."""
    return b"".join(
        hashlib.sha256(chunk).digest() for _, chunk in encrypted_chunks(path, key, layout)
    )


def encrypt_file(path: Path, key: bytes, layout: Layout) -> tuple[bytes, list[bytes]]:
    """Manifest and ciphertext chunks of a (small) file, in memory: for tests and tools."""
    chunks = [chunk for _, chunk in encrypted_chunks(path, key, layout)]
    return b"".join(hashlib.sha256(c).digest() for c in chunks), chunks


class Decryptor:
    """Checks and decrypts ciphertext chunks in order into a file, and the plaintext's hash."""

    def __init__(self, handle: BinaryIO, key: bytes, layout: Layout, manifest: bytes) -> None:
        if len(manifest) != 32 * layout.chunk_count:
            raise IntegrityError("the manifest does not list one hash per chunk")
        self.handle = handle
        self.key = key
        self.layout = layout
        self.hashes = manifest_hashes(manifest)
        self.digest = hashlib.sha256()
        self.next_index = 0
        self.size = 0

    def resume(self) -> int:
        """Keep the whole chunks a partial download already wrote; the next chunk's index.

        They are not trusted: they are hashed again here, and `finish` checks the
        whole file against the evidence id, so a damaged prefix fails the download.
        """
        handle = self.handle
        whole = min(handle.seek(0, os.SEEK_END) // self.layout.chunk_size, self.layout.chunk_count)
        if whole == self.layout.chunk_count:
            whole -= 1  # fetch the last chunk again: it may be short, and it ends the file
        handle.seek(0)
        for _ in range(whole):
            data = handle.read(self.layout.chunk_size)
            self.digest.update(data)
            self.size += len(data)
        handle.truncate(self.size)
        handle.seek(self.size)
        self.next_index = whole
        return whole

    def check(self, index: int, ciphertext: bytes) -> None:
        """Raise `IntegrityError` if the chunk is not the manifest's chunk `index`."""
        if hashlib.sha256(ciphertext).digest() != self.hashes[index]:
            raise IntegrityError(f"chunk {index} does not match its hash in the manifest")

    def add(self, index: int, ciphertext: bytes) -> None:
        assert index == self.next_index, "chunks are decrypted in order"
        self.check(index, ciphertext)
        count = self.layout.chunk_count
        plaintext = decrypt_chunk(self.key, self.layout.evidence_id, index, count, ciphertext)
        self.handle.write(plaintext)
        self.digest.update(plaintext)
        self.size += len(plaintext)
        self.next_index += 1

    def finish(self) -> None:
        """The whole plaintext is there and hashes to the evidence id."""
        if self.next_index != self.layout.chunk_count:
            raise IntegrityError(
                f"only {self.next_index} of {self.layout.chunk_count} chunks were decrypted"
            )
        if self.size != self.layout.plaintext_size:
            raise IntegrityError(
                f"decrypted {self.size} bytes, the evidence has {self.layout.plaintext_size}"
            )
        if self.digest.digest() != self.layout.evidence_id:
            raise IntegrityError("the decrypted file's SHA-256 is not the evidence id")


# ---------------------------------------------------------------- content keys


def new_content_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * CONTENT_KEY_BYTES)


def _wrapping_key(shared: bytes, evidence_id: bytes, reader: bytes, ephemeral: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=WRAP_INFO + evidence_id + reader + ephemeral,
    )
    return hkdf.derive(shared)


def wrap_key(content_key: bytes, reader_public: bytes, evidence_id: bytes) -> WrappedKey:
    """The content key, readable only with the private key of `reader_public` (X25519)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(reader_public))
    key = _wrapping_key(shared, evidence_id, reader_public, ephemeral_public)
    return WrappedKey(ephemeral_public, AESGCM(key).encrypt(WRAP_NONCE, content_key, evidence_id))


def unwrap_key(wrapped: WrappedKey, private: X25519PrivateKey, evidence_id: bytes) -> bytes:
    reader_public = private.public_key().public_bytes_raw()
    shared = private.exchange(X25519PublicKey.from_public_bytes(wrapped.ephemeral))
    key = _wrapping_key(shared, evidence_id, reader_public, wrapped.ephemeral)
    try:
        return AESGCM(key).decrypt(WRAP_NONCE, wrapped.ciphertext, evidence_id)
    except InvalidTag:
        raise IntegrityError(
            "the content key was not wrapped for this identity's encryption key"
        ) from None


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


# ---------------------------------------------------------------- the key file


def encryption_key_path(identity_key_path: Path) -> Path:
    return identity_key_path.with_name(identity_key_path.name + KEY_SUFFIX)


def _passphrase() -> bytes | None:
    value = os.environ.get("NOTARYCHAIN_KEY_PASSPHRASE")
    return value.encode() if value else None


def load_or_create_encryption_key(path: Path) -> X25519PrivateKey:
    """The X25519 key at `path`, created (0600, never overwritten) if there is none."""
    passphrase = _passphrase()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _create(path, passphrase)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the encryption key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}: not a PEM private key, or its passphrase is missing or wrong"
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path}: expected an X25519 key, got {type(key).__name__}")
    return key


def _create(path: Path, passphrase: bytes | None) -> X25519PrivateKey:
    key = X25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        return load_or_create_encryption_key(path)  # another process made it first
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the encryption key: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return key
