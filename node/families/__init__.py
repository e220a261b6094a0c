"""The transaction families this node executes, and the hashes that pin their code.

Rule: the genesis lists every family with the SHA-256 of its code (this
package's module for it plus `base.py`, which all share). A node whose code
differs refuses to start, because it could execute a block differently from
its peers; a mismatch found later would be a divergence.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ledger.genesis import Genesis
from node.families.base import Family
from node.families.evidence import EvidenceFamily
from node.families.fees import FeesFamily
from node.families.governance import GovernanceFamily
from node.families.identity import IdentityFamily
from node.families.notarization import NotarizationFamily
from node.families.vault import VaultFamily

_HERE = Path(__file__).parent

FAMILY_MODULES = ("identity", "evidence", "notarization", "fees", "governance", "vault")


def code_hash(name: str) -> str:
    digest = hashlib.sha256()
    for part in ("base.py", f"{name}.py"):
        digest.update((_HERE / part).read_bytes())
    return digest.hexdigest()


def code_hashes() -> dict[str, str]:
    return {name: code_hash(name) for name in FAMILY_MODULES}


def instantiate(genesis: Genesis) -> dict[str, Family]:
    # A validator-set change must wait until every batch of the old set has drained.
    window = genesis.consensus.window_size
    membership_delay = 2 * window + 1
    return {
        "identity": IdentityFamily(),
        "evidence": EvidenceFamily(),
        "notarization": NotarizationFamily(),
        "fees": FeesFamily(),
        "governance": GovernanceFamily(membership_delay, approval_margin=window + 1),
        "vault": VaultFamily(),
    }
