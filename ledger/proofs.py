"""Proof bundles: an answer with everything needed to check it against the genesis alone.

A bundle holds:
  - a checkpoint certificate: 2f + 1 signatures of the validator set in force
    over (chain, height, block hash, state root, log size, log root, time);
  - the validator-set changes since genesis, each proven by a certificate of
    the set before it and the members record in that certificate's state, so
    a verifier walks from the genesis to the set that signed the checkpoint;
  - state proofs (a key's value, or its absence, under the state root) and
    log proofs (a transaction's inclusion under the log root, RFC 9162).
`verify_bundle` checks all of it and returns the facts proven; it raises a
`LedgerError` with the reason on the first thing that does not hold. Years
later, with only the genesis file and this package, the same bytes verify.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Annotated, Any, Final

from ledger.block import tx_leaf
from ledger.checkpoint import Checkpoint, CheckpointCertificate, verify_certificate
from ledger.encoding import MaxLength, decode, encode
from ledger.errors import CertificateError, DecodeError, LedgerError, ProofError
from ledger.families.governance import INSTITUTIONS_KEY, Members
from ledger.genesis import Genesis
from ledger.hashing import Hash
from ledger.keys import VerifyFn, verify
from ledger.merkle import verify_inclusion as verify_log_inclusion
from ledger.smt import SmtProof
from ledger.smt import verify_exclusion as verify_state_exclusion
from ledger.smt import verify_inclusion as verify_state_inclusion
from ledger.tx import Transaction
from ledger.validators import ValidatorSet

BUNDLE_FORMAT: Final = "notarychain-proof/1"
BUNDLE_BYTES_MAX: Final = 64 * 1024 * 1024
KEY_BYTES_MAX: Final = 1024


@dataclass(frozen=True, slots=True)
class StateProof:
    key: Annotated[bytes, MaxLength(KEY_BYTES_MAX)]
    value: bytes | None
    """None: the proof shows the key is absent."""
    proof: SmtProof


@dataclass(frozen=True, slots=True)
class LogProof:
    transaction: Transaction
    log_index: int
    proof: tuple[Hash, ...]


@dataclass(frozen=True, slots=True)
class ValidatorSetChange:
    certificate: CheckpointCertificate
    members: StateProof


@dataclass(frozen=True, slots=True)
class ProofBundle:
    chain_id: str
    genesis_hash: Hash
    certificate: CheckpointCertificate
    validator_set_changes: tuple[ValidatorSetChange, ...]
    state: tuple[StateProof, ...]
    log: tuple[LogProof, ...]


@dataclass(frozen=True, slots=True)
class Verified:
    """What a valid bundle proves."""

    checkpoint: Checkpoint
    signers: tuple[bytes, ...]
    validators: ValidatorSet
    state: dict[bytes, bytes | None]
    transactions: tuple[tuple[Transaction, int], ...]
    """(transaction, log index) pairs included in the log."""


def _check_state(root: bytes, item: StateProof) -> None:
    if item.value is None:
        verify_state_exclusion(root, item.key, item.proof)
    else:
        verify_state_inclusion(root, item.key, item.value, item.proof)


def _walk_validator_sets(
    bundle: ProofBundle, genesis: Genesis, verify_fn: VerifyFn
) -> ValidatorSet:
    validators = genesis.validator_set()
    for change in bundle.validator_set_changes:
        verify_certificate(change.certificate, validators, genesis.chain_id, verify_fn)
        if change.members.key != INSTITUTIONS_KEY or change.members.value is None:
            raise ProofError("a validator-set change must prove the members record")
        _check_state(change.certificate.checkpoint.state_root, change.members)
        members = decode(Members, change.members.value)
        if members.since_height != change.certificate.checkpoint.height:
            raise ProofError("the members record did not change at the certified height")
        keys = tuple(m.node_key for m in members.members)
        validators = ValidatorSet(change.certificate.checkpoint.height + 1, keys)
    return validators


def verify_bundle(bundle: ProofBundle, genesis: Genesis, verify_fn: VerifyFn = verify) -> Verified:
    if bundle.chain_id != genesis.chain_id:
        raise ProofError(f"the bundle is for chain {bundle.chain_id!r}, not {genesis.chain_id!r}")
    if bundle.genesis_hash.hex() != genesis.genesis_hash:
        raise ProofError("the bundle was made under another genesis")
    validators = _walk_validator_sets(bundle, genesis, verify_fn)
    checkpoint = bundle.certificate.checkpoint
    if checkpoint.height < validators.from_height:
        raise ProofError("the checkpoint is older than the validator set it claims")
    try:
        verify_certificate(bundle.certificate, validators, genesis.chain_id, verify_fn)
    except CertificateError as exc:
        raise CertificateError(f"checkpoint at height {checkpoint.height}: {exc.reason}") from None
    state: dict[bytes, bytes | None] = {}
    for item in bundle.state:
        _check_state(checkpoint.state_root, item)
        state[item.key] = item.value
    transactions = []
    for entry in bundle.log:
        if not 0 <= entry.log_index < checkpoint.log_size:
            raise ProofError(f"log index {entry.log_index} is outside the certified log")
        verify_log_inclusion(
            entry.log_index,
            checkpoint.log_size,
            tx_leaf(entry.transaction),
            entry.proof,
            checkpoint.log_root,
        )
        transactions.append((entry.transaction, entry.log_index))
    signers = tuple(e.signer for e in bundle.certificate.endorsements)
    return Verified(checkpoint, signers, validators, state, tuple(transactions))


def bundle_to_json(bundle: ProofBundle) -> dict[str, Any]:
    """The file form: a format tag and the canonical bytes, base64 (plus a readable summary)."""
    checkpoint = bundle.certificate.checkpoint
    return {
        "format": BUNDLE_FORMAT,
        "chain_id": bundle.chain_id,
        "height": checkpoint.height,
        "state_root": checkpoint.state_root.hex(),
        "bundle": base64.b64encode(encode(bundle)).decode(),
    }


def bundle_from_json(document: Any) -> ProofBundle:
    """Parse the file form; a `LedgerError` names what is wrong."""
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise DecodeError(f"not a {BUNDLE_FORMAT} document")
    try:
        data = base64.b64decode(document["bundle"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise DecodeError("the bundle field is not base64") from None
    return decode(ProofBundle, data, input_bytes_max=BUNDLE_BYTES_MAX)


def load_bundle_text(text: str) -> ProofBundle:
    try:
        document = json.loads(text)
    except ValueError:
        raise DecodeError("not a JSON document") from None
    return bundle_from_json(document)


__all__ = [
    "BUNDLE_FORMAT",
    "LedgerError",
    "LogProof",
    "ProofBundle",
    "StateProof",
    "ValidatorSetChange",
    "Verified",
    "bundle_from_json",
    "bundle_to_json",
    "load_bundle_text",
    "verify_bundle",
]
