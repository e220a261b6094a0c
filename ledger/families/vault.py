"""Vault family: encrypted evidence content kept by the consortium, shared by grants on chain.

The owner of registered evidence encrypts the file on its own machine (AES-256-GCM
per chunk under a random content key), stores the ciphertext on at least f + 1
institutions' nodes and records here what binds it: the evidence id (the
plaintext's SHA-256), the ciphertext hash (SHA-256 over the concatenated chunk
hashes: the manifest), the chunk layout, and the content key wrapped for the
owner's X25519 encryption key. Who may read it, and since when, is on chain:

    set_encryption_key (anyone)     publish the X25519 key others wrap content keys for
    store (owner)                   -> an Entry paid for `months`; the storage fee is paid to
                                    the storing institutions
    renew (owner)                   pay for more months; the term runs on from its end, or from
                                    now if it has lapsed
    grant / revoke_grant (owner)    a reader's wrapped key, optionally until a height or a time
    request_access (third party)    the download fee is held; answer_request (owner) grants
                                    (the hold pays the first download) or refuses (refunded)
    authorize_download (grantee)    the download fee is paid; nodes serve the ciphertext to
                                    short-lived signed requests naming this authorization
                                    (refused while the storage has lapsed)
    delete (owner)                  erasure: nodes drop the ciphertext; the evidence record,
                                    its trusted time and every proof stay valid

Storage is paid by size and time: `STORE_FEE` per MiB of plaintext (rounded
up) per 30-day month (`MONTH_MS`), to each storing institution, for a term of
1 to `MONTHS_MAX` months at a time. The entry's `paid_until_ms` is the end of
the paid term; once a block's time is past it, the storage has lapsed:
downloads are refused (`storage_lapsed`, by execution and by every node's
download route) until the owner renews, while grants, revocations, access
requests and erasure stay possible.

Decision: the chain never destroys evidence on its own. Lapsed content is kept
by the storing nodes but not served until it is renewed; only the owner's
`delete` erases content. (A lapse is a matter of who pays, which the owner can
put right at any time; an erasure cannot be undone, so it is never a side
effect of a missed payment.)

Every step is appended to the entry's history (records at `history_key`), which
is itself evidence of who could read what, and when. Nodes only ever hold
ciphertext; the plaintext and the content key never leave the clients.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

from ledger.encoding import Length, MaxLength
from ledger.hashing import Hash, tag
from ledger.keys import PublicKeyBytes, SignatureBytes

FAMILY: Final = "vault"
SET_ENCRYPTION_KEY: Final = "set_encryption_key"
STORE: Final = "store"
GRANT: Final = "grant"
REVOKE_GRANT: Final = "revoke_grant"
REQUEST_ACCESS: Final = "request_access"
ANSWER_REQUEST: Final = "answer_request"
AUTHORIZE_DOWNLOAD: Final = "authorize_download"
DELETE: Final = "delete"
RENEW: Final = "renew"

STORE_FEE: Final = "vault.store_per_mib_month"
"""Schedule entry: paid to each storing institution per MiB (rounded up) of plaintext per
30-day month of storage, on `store` and on `renew`."""
DOWNLOAD_FEE: Final = "vault.download"
"""Schedule entry: paid per download authorization, split among the storing institutions."""

MIB: Final = 1024 * 1024
MONTH_MS: Final = 30 * 24 * 3_600_000
"""A month of storage: 30 days."""
MONTHS_MIN: Final = 1
MONTHS_MAX: Final = 120
"""A store or a renewal pays for 1 to this many months at a time."""
CHUNK_BYTES_DEFAULT: Final = MIB
CHUNK_BYTES_MIN: Final = 1024
CHUNK_BYTES_MAX: Final = MIB
TAG_BYTES: Final = 16
"""AES-GCM's tag: each ciphertext chunk is its plaintext chunk plus these bytes."""
CHUNKS_MAX: Final = 2**20
INSTITUTIONS_MAX: Final = 32
GRANTEES_MAX: Final = 256
OPEN_REQUESTS_MAX: Final = 64
TEXT_CHARS_MAX: Final = 500
DOWNLOAD_WINDOW_MS: Final = 3_600_000
"""An authorization lets its holder fetch the ciphertext for this long after its block."""
REQUEST_SKEW_MS: Final = 60_000
"""A signed upload or download request is honoured within this much of the node's clock."""
X25519_KEY_BYTES: Final = 32
CONTENT_KEY_BYTES: Final = 32
WRAPPED_KEY_BYTES: Final = CONTENT_KEY_BYTES + TAG_BYTES

UPLOAD_DOMAIN: Final = tag("vault-upload/v1")
DOWNLOAD_DOMAIN: Final = tag("vault-download/v1")

Text = Annotated[str, MaxLength(TEXT_CHARS_MAX)]
X25519Key = Annotated[bytes, Length(X25519_KEY_BYTES)]


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """The content key encrypted for one reader: ephemeral X25519 agreement, HKDF, AES-GCM."""

    ephemeral: X25519Key
    ciphertext: Annotated[bytes, Length(WRAPPED_KEY_BYTES)]


# ---------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class SetEncryptionKey:
    key: X25519Key


@dataclass(frozen=True, slots=True)
class Store:
    evidence_id: Hash
    ciphertext_hash: Hash
    chunk_size: int
    chunk_count: int
    plaintext_size: int
    owner_key: WrappedKey
    institutions: Annotated[tuple[str, ...], MaxLength(INSTITUTIONS_MAX)]
    months: int
    """The storage term paid for now (`MONTHS_MIN` .. `MONTHS_MAX`)."""


@dataclass(frozen=True, slots=True)
class Grant:
    evidence_id: Hash
    reader: PublicKeyBytes
    wrapped_key: WrappedKey
    expires_height: int | None
    """The grant is active below this height (None: no limit)."""
    expires_ms: int | None
    """The grant is active before this block time (None: no limit)."""


@dataclass(frozen=True, slots=True)
class RevokeGrant:
    evidence_id: Hash
    reader: PublicKeyBytes
    reason: Text


@dataclass(frozen=True, slots=True)
class RequestAccess:
    evidence_id: Hash
    reason: Text


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    request_id: Hash
    wrapped_key: WrappedKey | None
    """Set: grant (for the requester's encryption key). None: refuse, with `reason`."""
    reason: Text
    expires_height: int | None
    expires_ms: int | None


@dataclass(frozen=True, slots=True)
class AuthorizeDownload:
    evidence_id: Hash


@dataclass(frozen=True, slots=True)
class Delete:
    evidence_id: Hash
    reason: Text


@dataclass(frozen=True, slots=True)
class Renew:
    evidence_id: Hash
    months: int
    """More months to pay for (`MONTHS_MIN` .. `MONTHS_MAX`)."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """The result of a renew transaction."""

    fee: int
    """What the renewal cost, to all storing institutions together."""
    paid_until_ms: int
    """The new end of the paid storage term."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """State record at `encryption_key_key(identity)`."""

    identity: PublicKeyBytes
    key: X25519Key
    height: int


@dataclass(frozen=True, slots=True)
class Entry:
    """State record at `entry_key(evidence_id)`."""

    evidence_id: Hash
    owner: PublicKeyBytes
    ciphertext_hash: Hash
    chunk_size: int
    chunk_count: int
    plaintext_size: int
    owner_key: WrappedKey
    owner_encryption_key: X25519Key
    institutions: tuple[str, ...]
    stored_height: int
    stored_time_ms: int
    store_tx_id: Hash
    storage_fee: int
    """Storage fees paid in all (the store and every renewal, to all storing institutions)."""
    paid_until_ms: int
    """The end of the paid storage term; downloads are refused at block times after it."""
    grantees: tuple[PublicKeyBytes, ...]
    """Readers holding an unrevoked grant (possibly expired)."""
    open_requests: tuple[Hash, ...]
    downloads: int
    deleted_height: int | None
    deleted_time_ms: int | None
    deleted_reason: str | None
    events: int
    """Number of history records (`history_key(evidence_id, 0 .. events - 1)`)."""

    @property
    def deleted(self) -> bool:
        return self.deleted_height is not None

    @property
    def ciphertext_size(self) -> int:
        return self.plaintext_size + TAG_BYTES * self.chunk_count

    def lapsed(self, time_ms: int) -> bool:
        """Whether the paid storage term has ended by `time_ms`."""
        return time_ms > self.paid_until_ms

    def lapse_problem(self, time_ms: int) -> tuple[str, str] | None:
        """Why the content is not served at `time_ms` for want of payment, or None."""
        if self.lapsed(time_ms):
            return (
                "storage_lapsed",
                f"the storage was paid until {self.paid_until_ms} ms and has lapsed; "
                "the owner can renew it",
            )
        return None


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """State record at `grant_key(evidence_id, reader)`."""

    evidence_id: Hash
    reader: PublicKeyBytes
    reader_encryption_key: X25519Key
    """The reader's X25519 key the content key was wrapped for."""
    wrapped_key: WrappedKey
    granted_height: int
    granted_time_ms: int
    expires_height: int | None
    expires_ms: int | None
    revoked_height: int | None
    revoked_reason: str | None
    request_id: Hash | None
    fee_held: int
    """A download fee held from the reader's access request, spent on its first download."""
    downloads: int

    def problem(self, height: int, time_ms: int) -> tuple[str, str] | None:
        """Why this grant does not let its reader download at (height, time), or None."""
        if self.revoked_height is not None:
            return "grant_revoked", f"the grant was revoked at height {self.revoked_height}"
        if self.expires_height is not None and height >= self.expires_height:
            return "grant_expired", f"the grant expired at height {self.expires_height}"
        if self.expires_ms is not None and time_ms >= self.expires_ms:
            return "grant_expired", f"the grant expired at time {self.expires_ms} ms"
        return None


class RequestState(enum.IntEnum):
    PENDING = 1
    GRANTED = 2
    REFUSED = 3
    CANCELLED = 4
    """The content was erased while the request was pending (the fee was refunded)."""


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """State record at `request_key(id)`; `id` is the request transaction's id."""

    id: Hash
    evidence_id: Hash
    requester: PublicKeyBytes
    reason: str
    state: RequestState
    fee_held: int
    requested_height: int
    requested_time_ms: int
    answered_height: int | None
    answer: str | None


@dataclass(frozen=True, slots=True)
class DownloadAuthorization:
    """State record at `download_key(tx_id)`: one paid download of an entry by a reader."""

    tx_id: Hash
    evidence_id: Hash
    reader: PublicKeyBytes
    height: int
    time_ms: int
    valid_until_ms: int
    fee_paid: int


class Step(enum.IntEnum):
    STORED = 1
    GRANTED = 2
    GRANT_REVOKED = 3
    ACCESS_REQUESTED = 4
    REQUEST_GRANTED = 5
    REQUEST_REFUSED = 6
    DOWNLOAD_AUTHORIZED = 7
    DELETED = 8
    FEE_PAID = 9
    FEE_HELD = 10
    FEE_REFUNDED = 11
    REQUEST_CANCELLED = 12
    RENEWED = 13


@dataclass(frozen=True, slots=True)
class Event:
    """State record at `history_key(evidence_id, index)`."""

    step: Step
    height: int
    time_ms: int
    actor: PublicKeyBytes
    tx_id: Hash
    detail: str


# ---------------------------------------------------------------- signed requests to nodes


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """The owner's permission for one upload to one node (the manifest, or chunk `index`)."""

    chain_id: str
    evidence_id: Hash
    institution: str
    index: int
    """The chunk's index, or -1 for the manifest."""
    digest: Hash
    """The chunk's SHA-256, or the ciphertext hash for the manifest."""
    time_ms: int


@dataclass(frozen=True, slots=True)
class DownloadRequest:
    """A reader's short-lived request for the manifest (index -1) or one chunk."""

    chain_id: str
    authorization: Hash
    """The committed authorize_download transaction's id."""
    evidence_id: Hash
    index: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class SignedUpload:
    request: UploadRequest
    signer: PublicKeyBytes
    signature: SignatureBytes


@dataclass(frozen=True, slots=True)
class SignedDownload:
    request: DownloadRequest
    signer: PublicKeyBytes
    signature: SignatureBytes


# ---------------------------------------------------------------- keys and layout


def encryption_key_key(identity: bytes) -> bytes:
    return b"vault/encryption-key/" + identity


ENTRY_PREFIX: Final = b"vault/entry/"


def entry_key(evidence_id: bytes) -> bytes:
    return ENTRY_PREFIX + evidence_id


def grant_key(evidence_id: bytes, reader: bytes) -> bytes:
    return b"vault/grant/" + evidence_id + reader


def request_key(request_id: bytes) -> bytes:
    return b"vault/request/" + request_id


def download_key(tx_id: bytes) -> bytes:
    return b"vault/download/" + tx_id


def history_key(evidence_id: bytes, index: int) -> bytes:
    return b"vault/history/" + evidence_id + index.to_bytes(8, "big")


def chunk_count_for(plaintext_size: int, chunk_size: int) -> int:
    """Chunks of a file: at least one (an empty file is one empty chunk, still authenticated)."""
    return max(1, -(-plaintext_size // chunk_size))


def mebibytes(size: int) -> int:
    """MiB charged for `size` bytes: rounded up, at least one."""
    return max(1, -(-size // MIB))


def storage_fee_per_institution(fee_per_mib_month: int, plaintext_size: int, months: int) -> int:
    """What each storing institution is paid for `months` of storing `plaintext_size` bytes."""
    return fee_per_mib_month * mebibytes(plaintext_size) * months
