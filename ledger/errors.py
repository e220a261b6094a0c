"""The ledger's error types.

Every failure that bad input can cause in `ledger` is one of these, with a
reason a person can read. A caller that catches `LedgerError` catches every
way that untrusted bytes, proofs, signatures or key files can be wrong; any
other exception escaping `ledger` is a bug in it.
"""


class LedgerError(Exception):
    """Base class: something given to the ledger was not acceptable."""

    @property
    def reason(self) -> str:
        return str(self)


class DecodeError(LedgerError):
    """Bytes are not the canonical encoding of the expected model."""


class SignatureError(LedgerError):
    """A signature does not verify, or a key is malformed."""


class ProofError(LedgerError):
    """A Merkle proof does not prove what it claims."""


class CertificateError(LedgerError):
    """A checkpoint certificate lacks a valid quorum of member signatures."""


class KeyFileError(LedgerError):
    """A key file is missing, unreadable, of the wrong kind or wrongly protected."""
