"""Benchmark of the ledger primitives; writes its figures to bench/out/ledger.json.

    python bench/ledger_bench.py [--transactions 10000] [--leaves 1000000] [--proofs 10000]

Measures: signing and verifying transactions (Ed25519 over the canonical body),
encoding and decoding them, appending leaves to the RFC 9162 log, and building
and verifying inclusion proofs in the full log. Figures only; nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

from ledger.keys import PrivateKey
from ledger.merkle import MerkleLog, leaf_hash, verify_inclusion
from ledger.tx import Transaction, TransactionBody, sign_transaction


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rate(count: int, seconds: float) -> dict[str, float]:
    return {"count": count, "seconds": round(seconds, 4), "per_s": round(count / seconds, 1)}


def bench_transactions(count: int) -> dict[str, dict[str, float]]:
    key = PrivateKey.generate()
    bodies = [
        TransactionBody(
            chain_id="bench",
            sender=key.public_key,
            family="evidence",
            operation="register",
            payload=os.urandom(96),
            nonce=os.urandom(16),
            expires_at_ms=2_000_000_000_000,
        )
        for _ in range(count)
    ]
    signed: list[Transaction] = []
    sign_s = timed(lambda: signed.extend(sign_transaction(b, key) for b in bodies))
    verify_s = timed(lambda: [tx.verify_signature() for tx in signed])
    encoded: list[bytes] = []
    encode_s = timed(lambda: encoded.extend(tx.encode() for tx in signed))
    decode_s = timed(lambda: [Transaction.decode(data) for data in encoded])
    return {
        "sign": rate(count, sign_s),
        "verify": rate(count, verify_s),
        "encode": rate(count, encode_s),
        "decode": rate(count, decode_s),
    }


def bench_merkle(leaves: int, proofs: int) -> dict[str, object]:
    log = MerkleLog()
    digests = [leaf_hash(i.to_bytes(8, "big")) for i in range(leaves)]
    append_s = timed(lambda: log.extend(digests))
    root = log.root()
    picks = random.Random(7).sample(range(leaves), proofs)
    built: list[list[bytes]] = []
    build_s = timed(lambda: built.extend(log.inclusion_proof(i) for i in picks))
    verify_s = timed(
        lambda: [
            verify_inclusion(i, leaves, digests[i], p, root)
            for i, p in zip(picks, built, strict=True)
        ]
    )
    return {
        "leaves": leaves,
        "append": rate(leaves, append_s),
        "inclusion_proof_build": rate(proofs, build_s),
        "inclusion_proof_verify": rate(proofs, verify_s),
        "proof_hashes": len(built[0]),
        "proof_bytes": 32 * len(built[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "out" / "ledger.json")
    args = parser.parse_args()
    figures = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cores": os.cpu_count(),
        },
        "transactions": bench_transactions(args.transactions),
        "merkle": bench_merkle(args.leaves, args.proofs),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
