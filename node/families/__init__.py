"""The transaction families this node executes, and the hashes that pin their code.

Rule: the genesis lists every family with the SHA-256 of its code (this
package's module for it plus `base.py`, which all share). A node whose code
differs refuses to start, because it could execute a block differently from
its peers; a mismatch found later would be a divergence.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from node.families.base import Family
from node.families.evidence import EvidenceFamily
from node.families.identity import IdentityFamily

_HERE = Path(__file__).parent

FAMILIES: dict[str, type[Family]] = {
    "identity": IdentityFamily,
    "evidence": EvidenceFamily,
}


def code_hash(name: str) -> str:
    digest = hashlib.sha256()
    for part in ("base.py", f"{name}.py"):
        digest.update((_HERE / part).read_bytes())
    return digest.hexdigest()


def code_hashes() -> dict[str, str]:
    return {name: code_hash(name) for name in FAMILIES}


def instantiate() -> dict[str, Family]:
    return {name: cls() for name, cls in FAMILIES.items()}
