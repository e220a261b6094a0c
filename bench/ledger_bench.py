"""Benchmark of the ledger primitives; writes its figures to bench/results/ledger.json.

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

from ledger import smt
from ledger.encoding import encode
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


SMT_BATCH = 1000
SMT_PROOFS = 10_000


def bench_smt(keys: int) -> dict[str, object]:
    """The state tree: `keys` inserted in batches of SMT_BATCH, then changed, proved, verified."""
    tree = smt.SparseMerkleTree(smt.MemorySmtNodeStore())
    items = [(i.to_bytes(8, "big"), os.urandom(32)) for i in range(keys)]
    batches = [dict(items[i : i + SMT_BATCH]) for i in range(0, keys, SMT_BATCH)]
    insert_s = timed(lambda: [tree.update(batch) for batch in batches])
    rng = random.Random(7)
    changed = [
        {items[i][0]: os.urandom(32) for i in rng.sample(range(keys), min(keys, SMT_BATCH))}
        for _ in range(10)
    ]
    change_s = timed(lambda: [tree.update(batch) for batch in changed])
    for batch in changed:
        items.extend(batch.items())  # later pairs win below: the values now in the tree
    current = dict(items)
    root = tree.root
    picks = rng.sample(sorted(current), min(keys, SMT_PROOFS))
    built: list[smt.SmtProof] = []
    build_s = timed(lambda: built.extend(tree.prove(key) for key in picks))

    def verify_all() -> None:
        for key, proof in zip(picks, built, strict=True):
            smt.verify_inclusion(root, key, current[key], proof)

    verify_s = timed(verify_all)
    sizes = [len(encode(proof)) for proof in built] or [0]
    depths = [len(proof.siblings) for proof in built] or [0]
    return {
        "keys": keys,
        "batch_keys": SMT_BATCH,
        "insert": rate(keys, insert_s),
        "update_existing": rate(sum(map(len, changed)), change_s),
        "inclusion_proof_build": rate(len(picks), build_s),
        "inclusion_proof_verify": rate(len(picks), verify_s),
        "proof_siblings_mean": round(sum(depths) / len(depths), 2),
        "proof_siblings_max": max(depths),
        "proof_bytes_mean": round(sum(sizes) / len(sizes), 1),
        "proof_bytes_max": max(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=10_000)
    parser.add_argument("--smt-keys", type=int, default=100_000)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "ledger.json"
    )
    args = parser.parse_args()
    figures = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cores": os.cpu_count(),
        },
        "transactions": bench_transactions(args.transactions),
        "merkle": bench_merkle(args.leaves, args.proofs),
        "smt": bench_smt(args.smt_keys),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
