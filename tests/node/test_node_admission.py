"""A node checks each client signature once, and never takes a body's good signature for
another: the id covers the body only, so the cache of checked signatures must not."""

from __future__ import annotations

from cluster import evidence_body

from ledger.keys import PrivateKey
from ledger.tx import Transaction, sign_transaction
from node.admission import VerifiedSignatures, make_request_validator

CHAIN = "admission-test"


def registration(key: PrivateKey) -> Transaction:
    return sign_transaction(evidence_body(CHAIN, key), key)


def forged(tx: Transaction) -> Transaction:
    """The same body (so the same id) under a signature that does not verify."""
    signature = bytearray(tx.signature)
    signature[0] ^= 0x01
    return Transaction(tx.body, bytes(signature))


def test_a_checked_body_under_another_signature_is_checked_again() -> None:
    verified = VerifiedSignatures()
    tx = registration(PrivateKey.generate())
    assert verified.check(tx)
    assert verified.check(tx)  # remembered
    copy = forged(tx)
    assert copy.id == tx.id
    assert not verified.check(copy)
    assert verified.check(tx)


def test_the_replica_refuses_a_forged_copy_of_a_transaction_it_admitted() -> None:
    verified = VerifiedSignatures()
    validate = make_request_validator(CHAIN, verified)
    tx = registration(PrivateKey.generate())
    assert validate(tx) is None
    assert validate(forged(tx)) == "bad client signature"


def test_the_oldest_checks_are_forgotten_beyond_the_capacity() -> None:
    verified = VerifiedSignatures(capacity=2)
    key = PrivateKey.generate()
    txs = [registration(key) for _ in range(3)]
    for tx in txs:
        assert verified.check(tx)
    assert len(verified._seen) == 2
