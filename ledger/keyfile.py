"""Private keys on disk: PKCS#8 PEM, created with mode 0600, optionally encrypted.

This is the one module of `ledger` that touches the filesystem. It lives here
(and not in `node` or `client`) because both need exactly this code, and the
client may depend on `ledger` only; the purity test names it as the exception.
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.errors import KeyFileError
from ledger.keys import PrivateKey

KEY_FILE_MODE = 0o600


def save_private_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Write `key` to a new file readable by its owner only; never overwrite a key."""
    data = key.to_pem(passphrase)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: a key file is already there; refusing to overwrite it"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create the key file: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    try:
        return PrivateKey.from_pem(data, passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc.reason}") from None
