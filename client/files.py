"""Files on the client's side: streaming hashes, media kinds, and receipts.

A file is hashed in 1 MiB chunks, so a large video never sits in memory. A
receipt (`NAME.receipt.json`) records what was registered for one file and
the proof bundle that proves it, so the file can be verified later with the
client and the genesis alone. A file named directly has its receipt at the
top of the receipts folder; a file found under a folder named has it at the
same relative path (`cases/case-1/notes.txt` registered as `cases` gets
`RECEIPTS/case-1/notes.txt.receipt.json`), so files of the same name in
different folders never share a receipt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from client.errors import VerificationFailed
from ledger.families.evidence import Kind, commitment
from ledger.proofs import ProofBundle, bundle_to_json

CHUNK_BYTES: Final = 1024 * 1024
RECEIPT_FORMAT: Final = "notarychain-receipt/1"

_KINDS: Final[dict[str, Kind]] = {
    **dict.fromkeys(
        (
            ".pdf",
            ".doc",
            ".docx",
            ".odt",
            ".txt",
            ".rtf",
            ".md",
            ".xls",
            ".xlsx",
            ".csv",
            ".xml",
            ".json",
            ".html",
        ),
        Kind.DOCUMENT,
    ),
    **dict.fromkeys(
        (".jpg", ".jpeg", ".png", ".gif", ".heic", ".webp", ".tif", ".tiff", ".bmp", ".raw"),
        Kind.PHOTO,
    ),
    **dict.fromkeys((".mp3", ".wav", ".flac", ".m4a", ".ogg", ".aac", ".opus"), Kind.AUDIO),
    **dict.fromkeys((".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg"), Kind.VIDEO),
}


def kind_of(path: Path) -> Kind:
    return _KINDS.get(path.suffix.lower(), Kind.OTHER)


def sha256_file(path: Path) -> tuple[bytes, int]:
    """SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.digest(), size


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    relative: Path
    """Where its receipt goes: the path under the folder named, or the file's own name."""


def expand(paths: list[Path]) -> list[Found]:
    """Files named, and files under folders named (sorted, hidden files skipped)."""
    found: list[Found] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in _walk(path) if p.is_file())
            found.extend(Found(p, p.relative_to(path)) for p in files)
        elif path.is_file():
            found.append(Found(path, Path(path.name)))
        else:
            raise VerificationFailed(f"{path}: no such file or folder")
    return found


def shared_receipt(found: list[Found]) -> tuple[Path, Path, Path] | None:
    """Two files whose receipts would have the same name, and that name (None: no clash)."""
    seen: dict[Path, Path] = {}
    for item in found:
        name = receipt_name(item.relative)
        if name in seen:
            return seen[name], item.path, name
        seen[name] = item.path
    return None


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(directory) / name


@dataclass(frozen=True, slots=True)
class HashedFile:
    path: Path
    sha256: bytes
    size: int
    kind: Kind
    salt: bytes | None
    relative: Path | None = None
    """Where its receipt goes under the receipts folder (None: the file's name)."""

    @property
    def evidence_id(self) -> bytes:
        return self.sha256 if self.salt is None else commitment(self.salt, self.sha256)


def receipt_document(
    item: HashedFile, tx_id: str, height: int, time_ms: int, bundle: ProofBundle
) -> dict[str, Any]:
    return {
        "format": RECEIPT_FORMAT,
        "file": item.path.name,
        "sha256": item.sha256.hex(),
        "size": item.size,
        "kind": item.kind.name.lower(),
        "private": item.salt is not None,
        "salt": None if item.salt is None else item.salt.hex(),
        "evidence_id": item.evidence_id.hex(),
        "tx_id": tx_id,
        "height": height,
        "trusted_time_ms": time_ms,
        "proof": bundle_to_json(bundle),
    }


def receipt_name(relative: Path) -> Path:
    return relative.parent / f"{relative.name}.receipt.json"


def receipt_path(directory: Path, item: HashedFile) -> Path:
    return directory / receipt_name(item.relative or Path(item.path.name))


def load_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise VerificationFailed(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationFailed(f"{path}: cannot read the {what}: {exc}") from None
    except ValueError:
        raise VerificationFailed(f"{path}: the {what} is not valid JSON (corrupt?)") from None
    if not isinstance(document, dict):
        raise VerificationFailed(f"{path}: the {what} is not a JSON object")
    return document
