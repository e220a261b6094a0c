"""Transactions, blocks and checkpoint certificates."""

import dataclasses
import hashlib
from typing import Any

import pytest

from ledger.block import BLOCK_DOMAIN, Block, BlockHeader, transactions_root, tx_leaf
from ledger.checkpoint import (
    CHECKPOINT_DOMAIN,
    Checkpoint,
    CheckpointCertificate,
    Endorsement,
    sign_checkpoint,
    verify_certificate,
    verify_endorsements,
)
from ledger.encoding import decode, encode
from ledger.errors import CertificateError, SignatureError
from ledger.keys import PrivateKey
from ledger.merkle import EMPTY_ROOT, MerkleLog, leaf_hash, root_of
from ledger.tx import TX_DOMAIN, Transaction, TransactionBody, sign_transaction
from ledger.validators import ValidatorSet

CHAIN = "notary-test"


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


SENDER = key(1)
OTHER = key(2)


def body(**changes: Any) -> TransactionBody:
    base = TransactionBody(
        chain_id=CHAIN,
        sender=SENDER.public_key,
        family="evidence",
        operation="register",
        payload=b"\x92\xa3abc\x01",
        nonce=bytes(range(16)),
        expires_at_ms=1_700_000_000_000,
    )
    return dataclasses.replace(base, **changes)


def flip(data: bytes, position: int = 0) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


# --- transactions -------------------------------------------------------------------


def test_signed_transaction_verifies() -> None:
    tx = sign_transaction(body(), SENDER)
    assert tx.body == body()
    tx.verify_signature()


def test_transaction_signs_the_tagged_body_bytes() -> None:
    tx = sign_transaction(body(), SENDER)
    assert TX_DOMAIN == b"notarychain/tx/v1\x00"
    assert tx.body.signing_bytes() == TX_DOMAIN + encode(body())
    assert PrivateKey.from_seed(SENDER.seed()).sign(TX_DOMAIN + encode(body())) == tx.signature


def test_transaction_signature_does_not_verify_untagged_bytes() -> None:
    untagged = Transaction(body(), SENDER.sign(encode(body())))
    with pytest.raises(SignatureError):
        untagged.verify_signature()


def test_transaction_id_is_sha256_of_signing_bytes() -> None:
    tx = sign_transaction(body(), SENDER)
    expected = hashlib.sha256(TX_DOMAIN + encode(body())).digest()
    assert tx.id == expected
    assert tx.body.id == expected


def test_transaction_id_does_not_depend_on_the_signature() -> None:
    tx = sign_transaction(body(), SENDER)
    forged = Transaction(tx.body, bytes(64))
    assert forged.id == tx.id
    assert Transaction(tx.body, flip(tx.signature)).id == tx.id


def test_signing_with_a_key_that_is_not_the_sender_raises() -> None:
    with pytest.raises(SignatureError, match="sender"):
        sign_transaction(body(), OTHER)


BODY_CHANGES = {
    "chain_id": "notary-prod",
    "sender": OTHER.public_key,
    "family": "evidencf",
    "operation": "revoke",
    "payload": b"\x92\xa3abc\x02",
    "nonce": flip(bytes(range(16)), 15),
    "expires_at_ms": 1_700_000_000_001,
}


def test_body_changes_cover_every_field() -> None:
    assert set(BODY_CHANGES) == {f.name for f in dataclasses.fields(TransactionBody)}


@pytest.mark.parametrize(("field", "value"), BODY_CHANGES.items(), ids=list(BODY_CHANGES))
def test_tampering_any_body_field_breaks_the_signature(field: str, value: Any) -> None:
    tx = sign_transaction(body(), SENDER)
    tampered = Transaction(dataclasses.replace(tx.body, **{field: value}), tx.signature)
    with pytest.raises(SignatureError, match="does not verify"):
        tampered.verify_signature()


@pytest.mark.parametrize(("field", "value"), BODY_CHANGES.items(), ids=list(BODY_CHANGES))
def test_changing_any_body_field_changes_the_id(field: str, value: Any) -> None:
    assert body(**{field: value}).id != body().id


def test_tampering_any_byte_of_the_signature_breaks_it() -> None:
    tx = sign_transaction(body(), SENDER)
    for position in range(64):
        tampered = Transaction(tx.body, flip(tx.signature, position))
        with pytest.raises(SignatureError):
            tampered.verify_signature()


def test_truncated_signature_fails_with_signature_error() -> None:
    tx = sign_transaction(body(), SENDER)
    with pytest.raises(SignatureError):
        Transaction(tx.body, tx.signature[:63]).verify_signature()


def test_signature_by_another_key_fails_even_when_the_sender_is_swapped() -> None:
    signed_by_other = sign_transaction(body(sender=OTHER.public_key), OTHER)
    claimed = Transaction(body(), signed_by_other.signature)
    with pytest.raises(SignatureError):
        claimed.verify_signature()


def test_transaction_ids_differ_across_chain_ids() -> None:
    ids = {body(chain_id=chain).id for chain in ("notary-test", "notary-prod", "", "x")}
    assert len(ids) == 4


def test_signature_for_one_chain_does_not_verify_on_another() -> None:
    tx = sign_transaction(body(chain_id="notary-test"), SENDER)
    replayed = Transaction(body(chain_id="notary-prod"), tx.signature)
    with pytest.raises(SignatureError):
        replayed.verify_signature()


def test_transaction_survives_a_wire_round_trip_and_still_verifies() -> None:
    tx = sign_transaction(body(), SENDER)
    decoded = Transaction.decode(tx.encode())
    assert decoded == tx
    assert decoded.id == tx.id
    decoded.verify_signature()


# --- blocks -------------------------------------------------------------------------


def transactions(count: int) -> tuple[Transaction, ...]:
    return tuple(
        sign_transaction(body(expires_at_ms=1_700_000_000_000 + i), SENDER) for i in range(count)
    )


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 13])
def test_transactions_root_is_the_merkle_root_of_tx_leaves(count: int) -> None:
    txs = transactions(count)
    leaves = [tx_leaf(tx) for tx in txs]
    assert leaves == [leaf_hash(encode(tx)) for tx in txs]
    assert transactions_root(txs) == root_of(leaves)
    log = MerkleLog()
    log.extend(leaves)
    assert transactions_root(txs) == log.root()


def test_transactions_root_of_no_transactions_is_the_empty_root() -> None:
    assert transactions_root(()) == EMPTY_ROOT


def test_transactions_root_depends_on_order_and_signature() -> None:
    txs = transactions(3)
    assert transactions_root(txs) != transactions_root((txs[1], txs[0], txs[2]))
    resigned = Transaction(txs[0].body, flip(txs[0].signature))
    assert transactions_root(txs) != transactions_root((resigned, *txs[1:]))


def header(**changes: Any) -> BlockHeader:
    base = BlockHeader(
        chain_id=CHAIN,
        height=7,
        view=2,
        time_ms=1_700_000_000_500,
        previous_hash=b"\x01" * 32,
        tx_root=transactions_root(transactions(3)),
        proposer=key(3).public_key,
    )
    return dataclasses.replace(base, **changes)


HEADER_CHANGES = {
    "chain_id": "notary-prod",
    "height": 8,
    "view": 3,
    "time_ms": 1_700_000_000_501,
    "previous_hash": flip(b"\x01" * 32, 31),
    "tx_root": transactions_root(transactions(2)),
    "proposer": key(4).public_key,
}


def test_header_changes_cover_every_field() -> None:
    assert set(HEADER_CHANGES) == {f.name for f in dataclasses.fields(BlockHeader)}


def test_block_hash_is_sha256_of_the_tagged_header() -> None:
    assert BLOCK_DOMAIN == b"notarychain/block/v1\x00"
    assert header().hash == hashlib.sha256(BLOCK_DOMAIN + encode(header())).digest()


def test_block_hash_is_its_header_hash() -> None:
    txs = transactions(3)
    block = Block(header(), txs)
    assert block.hash == header().hash
    assert Block(header(), ()).hash == block.hash


@pytest.mark.parametrize(("field", "value"), HEADER_CHANGES.items(), ids=list(HEADER_CHANGES))
def test_block_hash_changes_with_any_header_field(field: str, value: Any) -> None:
    assert header(**{field: value}).hash != header().hash


def test_block_round_trips_through_the_wire() -> None:
    txs = transactions(3)
    block = Block(header(tx_root=transactions_root(txs)), txs)
    decoded = decode(Block, encode(block))
    assert decoded == block
    assert decoded.hash == block.hash
    assert transactions_root(decoded.transactions) == decoded.header.tx_root


# --- checkpoint certificates --------------------------------------------------------


def validator_keys(n: int) -> list[PrivateKey]:
    return [key(10 + i) for i in range(n)]


def validator_set(members: list[PrivateKey]) -> ValidatorSet:
    return ValidatorSet(from_height=0, validators=tuple(k.public_key for k in members))


def checkpoint(**changes: Any) -> Checkpoint:
    base = Checkpoint(
        chain_id=CHAIN,
        height=100,
        block_hash=b"\x0b" * 32,
        state_root=b"\x5e" * 32,
        log_size=250,
        log_root=b"\x10" * 32,
        time_ms=1_700_000_001_000,
    )
    return dataclasses.replace(base, **changes)


def certificate(signers: list[PrivateKey], cp: Checkpoint | None = None) -> CheckpointCertificate:
    cp = cp if cp is not None else checkpoint()
    return CheckpointCertificate(cp, tuple(sign_checkpoint(cp, k) for k in signers))


def test_checkpoint_signs_the_tagged_checkpoint_bytes() -> None:
    assert CHECKPOINT_DOMAIN == b"notarychain/checkpoint/v1\x00"
    assert checkpoint().signing_bytes() == CHECKPOINT_DOMAIN + encode(checkpoint())
    signer = key(10)
    endorsement = sign_checkpoint(checkpoint(), signer)
    assert endorsement.signer == signer.public_key
    assert endorsement.signature == signer.sign(CHECKPOINT_DOMAIN + encode(checkpoint()))


def test_three_of_four_signatures_verify() -> None:
    members = validator_keys(4)
    verify_certificate(certificate(members[:3]), validator_set(members), CHAIN)
    verify_certificate(certificate(members[1:]), validator_set(members), CHAIN)
    verify_certificate(
        certificate([members[3], members[0], members[2]]), validator_set(members), CHAIN
    )


def test_all_four_signatures_verify() -> None:
    members = validator_keys(4)
    verify_certificate(certificate(members), validator_set(members), CHAIN)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_fewer_than_three_of_four_signatures_fail_for_lack_of_quorum(count: int) -> None:
    members = validator_keys(4)
    with pytest.raises(CertificateError, match="quorum") as info:
        verify_certificate(certificate(members[:count]), validator_set(members), CHAIN)
    assert f"{count} signatures" in info.value.reason
    assert "3" in info.value.reason


def test_a_duplicate_signer_fails() -> None:
    members = validator_keys(4)
    cert = certificate([members[0], members[1], members[2], members[0]])
    with pytest.raises(CertificateError, match="signed twice"):
        verify_certificate(cert, validator_set(members), CHAIN)


def test_a_duplicate_signer_does_not_count_toward_quorum() -> None:
    members = validator_keys(4)
    cert = certificate([members[0], members[1], members[1]])
    with pytest.raises(CertificateError, match="signed twice"):
        verify_certificate(cert, validator_set(members), CHAIN)


def test_an_outsider_signature_fails_even_with_a_quorum() -> None:
    members = validator_keys(4)
    outsider = key(99)
    cert = certificate([*members[:3], outsider])
    with pytest.raises(CertificateError, match="not in the validator set"):
        verify_certificate(cert, validator_set(members), CHAIN)


def test_a_bad_signature_fails_even_with_a_quorum() -> None:
    members = validator_keys(4)
    cp = checkpoint()
    bad = Endorsement(members[3].public_key, members[3].sign(b"something else"))
    cert = CheckpointCertificate(cp, (*certificate(members[:3], cp).endorsements, bad))
    with pytest.raises(CertificateError, match="bad signature"):
        verify_certificate(cert, validator_set(members), CHAIN)


def test_a_signature_attributed_to_another_member_fails() -> None:
    members = validator_keys(4)
    cp = checkpoint()
    good = certificate(members[:3], cp).endorsements
    stolen = Endorsement(members[3].public_key, good[0].signature)
    cert = CheckpointCertificate(cp, (*good[1:], stolen))
    with pytest.raises(CertificateError, match="bad signature"):
        verify_certificate(cert, validator_set(members), CHAIN)


CHECKPOINT_CHANGES = {
    "chain_id": "notary-tesu",
    "height": 101,
    "block_hash": flip(b"\x0b" * 32, 31),
    "state_root": flip(b"\x5e" * 32, 0),
    "log_size": 251,
    "log_root": flip(b"\x10" * 32, 16),
    "time_ms": 1_700_000_001_001,
}


def test_checkpoint_changes_cover_every_field() -> None:
    assert set(CHECKPOINT_CHANGES) == {f.name for f in dataclasses.fields(Checkpoint)}


@pytest.mark.parametrize(
    ("field", "value"), CHECKPOINT_CHANGES.items(), ids=list(CHECKPOINT_CHANGES)
)
def test_changing_any_checkpoint_field_after_signing_fails(field: str, value: Any) -> None:
    members = validator_keys(4)
    signed = certificate(members)
    tampered_cp = dataclasses.replace(signed.checkpoint, **{field: value})
    tampered = CheckpointCertificate(tampered_cp, signed.endorsements)
    # Verify on the tampered checkpoint's own chain, so the signatures must catch it.
    with pytest.raises(CertificateError, match="bad signature"):
        verify_certificate(tampered, validator_set(members), tampered_cp.chain_id)


def test_a_certificate_for_another_chain_fails() -> None:
    members = validator_keys(4)
    cert = certificate(members)
    with pytest.raises(CertificateError, match="chain") as info:
        verify_certificate(cert, validator_set(members), "notary-prod")
    assert "notary-prod" in info.value.reason


def test_a_certificate_signed_for_another_chain_fails_on_this_one() -> None:
    members = validator_keys(4)
    other = certificate(members, checkpoint(chain_id="notary-prod"))
    relabelled = CheckpointCertificate(checkpoint(), other.endorsements)
    with pytest.raises(CertificateError, match="bad signature"):
        verify_certificate(relabelled, validator_set(members), CHAIN)


def test_a_certificate_of_another_validator_set_fails() -> None:
    members = validator_keys(4)
    strangers = [key(50 + i) for i in range(4)]
    with pytest.raises(CertificateError, match="not in the validator set"):
        verify_certificate(certificate(strangers), validator_set(members), CHAIN)


@pytest.mark.parametrize(("n", "quorum"), [(4, 3), (7, 5), (10, 7)])
def test_certificate_needs_exactly_a_quorum(n: int, quorum: int) -> None:
    members = validator_keys(n)
    validators = validator_set(members)
    assert validators.quorum == quorum
    verify_certificate(certificate(members[:quorum]), validators, CHAIN)
    verify_certificate(certificate(members[n - quorum :]), validators, CHAIN)
    verify_certificate(certificate(members), validators, CHAIN)
    with pytest.raises(CertificateError, match="quorum"):
        verify_certificate(certificate(members[: quorum - 1]), validators, CHAIN)
    with pytest.raises(CertificateError, match="quorum"):
        verify_certificate(certificate(members[n - quorum + 1 :]), validators, CHAIN)


def test_verify_endorsements_checks_the_given_message() -> None:
    members = validator_keys(4)
    message = b"notarychain/view-change/v1\x00payload"
    endorsements = tuple(Endorsement(k.public_key, k.sign(message)) for k in members[:3])
    verify_endorsements(message, endorsements, validator_set(members))
    with pytest.raises(CertificateError, match="bad signature"):
        verify_endorsements(message + b"x", endorsements, validator_set(members))


def test_certificate_round_trips_through_the_wire_and_still_verifies() -> None:
    members = validator_keys(7)
    cert = certificate(members[:5])
    decoded = decode(CheckpointCertificate, encode(cert))
    assert decoded == cert
    verify_certificate(decoded, validator_set(members), CHAIN)
