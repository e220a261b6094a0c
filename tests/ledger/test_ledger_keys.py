"""Ed25519 keys, signatures, PEM files and public key text."""

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import KeyFileError, SignatureError
from ledger.keyfile import KEY_FILE_MODE, load_private_key, save_private_key
from ledger.keys import (
    NEUTRAL_POINT,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    PrivateKey,
    neutral_point_forgery,
    parse_public_key_text,
    public_key_text,
    verifier_is_strict,
    verify,
)

MESSAGE = b"notarize this: \x00\x01\xfe\xff"


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.from_seed(bytes(range(32)))


@pytest.fixture(scope="module")
def signature(key: PrivateKey) -> bytes:
    return key.sign(MESSAGE)


# --- sign and verify ----------------------------------------------------------------


def test_generated_key_signs_and_verifies() -> None:
    key = PrivateKey.generate()
    signature = key.sign(MESSAGE)
    assert len(key.public_key) == PUBLIC_KEY_BYTES
    assert len(signature) == SIGNATURE_BYTES
    assert verify(key.public_key, signature, MESSAGE) is True


def test_generated_keys_differ() -> None:
    assert PrivateKey.generate().public_key != PrivateKey.generate().public_key


def test_signature_of_empty_message_verifies(key: PrivateKey) -> None:
    assert verify(key.public_key, key.sign(b""), b"") is True


def test_signing_is_deterministic(key: PrivateKey) -> None:
    assert key.sign(MESSAGE) == key.sign(MESSAGE)


def test_from_seed_is_deterministic_and_seed_round_trips() -> None:
    seed = bytes(range(100, 132))
    a, b = PrivateKey.from_seed(seed), PrivateKey.from_seed(seed)
    assert a.public_key == b.public_key
    assert a.seed() == seed


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_from_seed_rejects_wrong_length(size: int) -> None:
    with pytest.raises(SignatureError, match="32 bytes"):
        PrivateKey.from_seed(bytes(size))


def test_verify_rejects_another_keys_signature(key: PrivateKey, signature: bytes) -> None:
    other = PrivateKey.from_seed(b"\x07" * 32)
    assert verify(other.public_key, signature, MESSAGE) is False


def test_verify_fails_on_any_flipped_bit_of_the_message(key: PrivateKey, signature: bytes) -> None:
    for bit in range(8 * len(MESSAGE)):
        assert verify(key.public_key, signature, flip_bit(MESSAGE, bit)) is False, bit


def test_verify_fails_on_any_flipped_bit_of_the_signature(
    key: PrivateKey, signature: bytes
) -> None:
    for bit in range(8 * SIGNATURE_BYTES):
        assert verify(key.public_key, flip_bit(signature, bit), MESSAGE) is False, bit


def test_verify_fails_on_any_flipped_bit_of_the_key(key: PrivateKey, signature: bytes) -> None:
    for bit in range(8 * PUBLIC_KEY_BYTES):
        assert verify(flip_bit(key.public_key, bit), signature, MESSAGE) is False, bit


def test_verify_fails_on_an_extended_or_shortened_message(
    key: PrivateKey, signature: bytes
) -> None:
    assert verify(key.public_key, signature, MESSAGE + b"\x00") is False
    assert verify(key.public_key, signature, MESSAGE[:-1]) is False


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_verify_returns_false_for_a_wrong_length_key(size: int, signature: bytes) -> None:
    assert verify(b"\x01" * size, signature, MESSAGE) is False


@pytest.mark.parametrize("size", [0, 1, 32, 63, 65, 128])
def test_verify_returns_false_for_a_wrong_length_signature(key: PrivateKey, size: int) -> None:
    assert verify(key.public_key, b"\x01" * size, MESSAGE) is False


def test_verify_returns_false_for_a_truncated_or_padded_signature(
    key: PrivateKey, signature: bytes
) -> None:
    assert verify(key.public_key, signature[:-1], MESSAGE) is False
    assert verify(key.public_key, signature + b"\x00", MESSAGE) is False
    assert verify(key.public_key[:-1], signature, MESSAGE) is False
    assert verify(key.public_key + b"\x00", signature, MESSAGE) is False


def test_verify_returns_false_for_an_arbitrary_32_byte_key(signature: bytes) -> None:
    for candidate in (b"\xff" * 32, b"\x02" + b"\x00" * 31):
        assert verify(candidate, signature, MESSAGE) is False


# --- what the stricter check rejects -------------------------------------------------

GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
"""L, the order of the base point: a signature's scalar S must be below it."""


@pytest.mark.parametrize("message", [b"", MESSAGE, b"any other message"])
def test_verify_rejects_a_small_order_public_key(message: bytes) -> None:
    # One (R, S) "signs" every message by the neutral point. OpenSSL accepts it; the
    # chain must not.
    forged = neutral_point_forgery()
    Ed25519PublicKey.from_public_bytes(NEUTRAL_POINT).verify(forged, message)  # OpenSSL: valid
    assert verify(NEUTRAL_POINT, forged, message) is False


def test_verify_rejects_a_non_canonical_scalar(key: PrivateKey, signature: bytes) -> None:
    # S + L satisfies the same equation as S; RFC 8032 requires S < L so that a
    # signature has one encoding. OpenSSL refuses it too: this guards the check, whichever
    # library makes it.
    s = int.from_bytes(signature[32:], "little")
    assert s + GROUP_ORDER < 2**256
    malleated = signature[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    assert verify(key.public_key, malleated, MESSAGE) is False
    assert verify(key.public_key, signature, MESSAGE) is True


# --- RFC 8032 section 7.1 -----------------------------------------------------------

RFC8032_VECTORS = [
    pytest.param(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
        "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        id="TEST-1",
    ),
    pytest.param(
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
        "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        id="TEST-2",
    ),
    pytest.param(
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290"
        "ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        id="TEST-3",
    ),
]


@pytest.mark.parametrize(("seed", "public", "message", "expected"), RFC8032_VECTORS)
def test_rfc8032_vector(seed: str, public: str, message: str, expected: str) -> None:
    key = PrivateKey.from_seed(bytes.fromhex(seed))
    assert key.public_key == bytes.fromhex(public)
    assert key.sign(bytes.fromhex(message)) == bytes.fromhex(expected)
    assert verify(bytes.fromhex(public), bytes.fromhex(expected), bytes.fromhex(message))
    assert not verify(bytes.fromhex(public), bytes.fromhex(expected), bytes.fromhex(message) + b"x")


# --- PEM ----------------------------------------------------------------------------


def test_pem_round_trip_without_passphrase(key: PrivateKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = PrivateKey.from_pem(pem)
    assert loaded.public_key == key.public_key
    assert loaded.seed() == key.seed()
    assert verify(key.public_key, loaded.sign(MESSAGE), MESSAGE)


def test_pem_round_trip_with_passphrase(key: PrivateKey) -> None:
    pem = key.to_pem(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert key.seed() not in pem
    loaded = PrivateKey.from_pem(pem, b"correct horse")
    assert loaded.public_key == key.public_key
    assert loaded.seed() == key.seed()


def test_from_pem_rejects_a_wrong_passphrase(key: PrivateKey) -> None:
    with pytest.raises(KeyFileError, match="passphrase is wrong"):
        PrivateKey.from_pem(key.to_pem(b"right"), b"wrong")


def test_from_pem_rejects_a_missing_passphrase(key: PrivateKey) -> None:
    with pytest.raises(KeyFileError, match="encrypted: a passphrase is needed"):
        PrivateKey.from_pem(key.to_pem(b"right"))


def test_from_pem_rejects_a_passphrase_for_an_unencrypted_key(key: PrivateKey) -> None:
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase was given"):
        PrivateKey.from_pem(key.to_pem(), b"unneeded")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
    ids=["empty", "garbage", "bad-base64", "bad-der"],
)
def test_from_pem_rejects_garbage(data: bytes) -> None:
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        PrivateKey.from_pem(data)


def test_from_pem_rejects_a_truncated_pem(key: PrivateKey) -> None:
    pem = key.to_pem()
    with pytest.raises(KeyFileError):
        PrivateKey.from_pem(pem[: len(pem) // 2])


def test_from_pem_rejects_a_public_key_pem(key: PrivateKey) -> None:
    public_pem = Ed25519PublicKey.from_public_bytes(key.public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFileError):
        PrivateKey.from_pem(public_pem)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "EC"),
        (ed448.Ed448PrivateKey.generate, "Ed448"),
        (x25519.X25519PrivateKey.generate, "X25519"),
    ],
    ids=["rsa", "ec", "ed448", "x25519"],
)
def test_from_pem_rejects_a_key_of_another_algorithm(make: Callable[[], Any], kind: str) -> None:
    pem = make().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFileError, match="expected an Ed25519 key") as info:
        PrivateKey.from_pem(pem)
    assert kind in info.value.reason


# --- public key text ------------------------------------------------------------------


def test_public_key_text_round_trips(key: PrivateKey) -> None:
    text = public_key_text(key.public_key)
    assert text == key.public_key.hex()
    assert len(text) == 2 * PUBLIC_KEY_BYTES
    assert parse_public_key_text(text) == key.public_key


def test_parse_public_key_text_accepts_uppercase_and_surrounding_whitespace(
    key: PrivateKey,
) -> None:
    text = public_key_text(key.public_key)
    assert parse_public_key_text(f"  {text.upper()}\n") == key.public_key


@pytest.mark.parametrize("length", [0, 2, 62, 63, 65, 66, 128])
def test_parse_public_key_text_rejects_wrong_length(length: int) -> None:
    with pytest.raises(SignatureError, match="64 hex digits") as info:
        parse_public_key_text("a" * length)
    assert f"got {length}" in info.value.reason


@pytest.mark.parametrize(
    "text",
    ["zz" * 32, "0x" + "00" * 31, "g" + "0" * 63, "00" * 31 + " 0", "\u0661" * 64],
    ids=["zz", "0x-prefix", "g", "inner-space", "arabic-digits"],
)
def test_parse_public_key_text_rejects_non_hex(text: str) -> None:
    assert len(text) == 64
    with pytest.raises(SignatureError, match="hex digits 0-9a-f"):
        parse_public_key_text(text)


@pytest.mark.parametrize(
    "key",
    [NEUTRAL_POINT, b"\xff" * 32, (2**255 - 19 + 1).to_bytes(32, "little")],
    ids=["neutral-point", "off-curve", "non-canonical-neutral-point"],
)
def test_parse_public_key_text_rejects_keys_that_can_sign_nothing(key: bytes) -> None:
    with pytest.raises(SignatureError, match="not a valid Ed25519 public key"):
        parse_public_key_text(key.hex())


def test_the_verifier_is_strict() -> None:
    # What a node checks at start: its library refuses what every peer's refuses.
    assert verifier_is_strict()


# --- secrecy ------------------------------------------------------------------------


def test_repr_of_private_key_does_not_contain_the_seed(key: PrivateKey) -> None:
    seed = key.seed()
    for text in (repr(key), str(key), f"{key!r}", f"{[key]}"):
        assert seed.hex() not in text
        assert seed.hex().upper() not in text
        assert repr(seed) not in text
    assert public_key_text(key.public_key) in repr(key)


def test_repr_of_generated_private_key_does_not_contain_the_seed() -> None:
    key = PrivateKey.generate()
    assert key.seed().hex() not in repr(key)


# --- key files ----------------------------------------------------------------------


def test_save_private_key_creates_an_owner_only_file(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key)
    assert KEY_FILE_MODE == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes() == key.to_pem()


def test_save_private_key_with_passphrase_creates_an_owner_only_encrypted_file(
    tmp_path: Path, key: PrivateKey
) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key, b"secret")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"ENCRYPTED" in path.read_bytes()


def test_save_private_key_refuses_to_overwrite(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key)
    before = path.read_bytes()
    other = PrivateKey.from_seed(b"\x05" * 32)
    with pytest.raises(KeyFileError, match="refusing to overwrite") as info:
        save_private_key(path, other)
    assert str(path) in info.value.reason
    assert path.read_bytes() == before
    assert load_private_key(path).public_key == key.public_key


def test_save_private_key_refuses_to_overwrite_any_existing_file(
    tmp_path: Path, key: PrivateKey
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"keep me")
    with pytest.raises(KeyFileError):
        save_private_key(path, key)
    assert path.read_bytes() == b"keep me"


def test_save_private_key_into_a_missing_directory_fails_with_key_file_error(
    tmp_path: Path, key: PrivateKey
) -> None:
    path = tmp_path / "missing" / "node.key"
    with pytest.raises(KeyFileError) as info:
        save_private_key(path, key)
    assert str(path) in info.value.reason


def test_load_private_key_round_trips_without_passphrase(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key)
    assert load_private_key(path).seed() == key.seed()


def test_load_private_key_round_trips_with_passphrase(tmp_path: Path, key: PrivateKey) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key, b"secret")
    loaded = load_private_key(path, b"secret")
    assert loaded.public_key == key.public_key
    assert loaded.seed() == key.seed()


def test_load_private_key_with_wrong_passphrase_names_the_path(
    tmp_path: Path, key: PrivateKey
) -> None:
    path = tmp_path / "node.key"
    save_private_key(path, key, b"secret")
    with pytest.raises(KeyFileError) as info:
        load_private_key(path, b"wrong")
    assert str(path) in info.value.reason
    assert "passphrase" in info.value.reason
    with pytest.raises(KeyFileError, match="passphrase is needed"):
        load_private_key(path)


def test_load_private_key_reports_a_missing_file_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match="not found") as info:
        load_private_key(path)
    assert str(path) in info.value.reason


def test_load_private_key_of_a_directory_fails_with_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        load_private_key(tmp_path)
    assert str(tmp_path) in info.value.reason


def test_load_private_key_of_a_non_key_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "junk.key"
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="not a PEM private key") as info:
        load_private_key(path)
    assert str(path) in info.value.reason
