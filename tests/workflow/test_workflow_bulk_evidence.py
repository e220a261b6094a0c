"""10,000 evidence hashes registered in batches, each with a proof that verifies.

Five register transactions of 2,000 items go through the SDK; then the proof
of every one of the 10,000 items is fetched from `/v1/proofs/evidence/{id}`
(spread over the four nodes, a bounded number in flight), decoded and
verified against the genesis with `ledger.proofs.verify_bundle` (each
signature check remembered, since the bundles share a few checkpoint
certificates). Wall times and proof sizes are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import aiohttp
import pytest

from client.sdk import MSGPACK
from ledger.encoding import decode
from ledger.families.evidence import Evidence, Item, Kind, evidence_key
from ledger.keys import VerifyFn, verify
from ledger.proofs import ProofBundle, verify_bundle

TOTAL = 10_000
PER_TX = 2_000
IN_FLIGHT = 16
REGISTER_TIMEOUT_S = 180.0
PROOFS_TIMEOUT_S = 600.0
RETRIES = 100


def items(count: int, start: int) -> list[Item]:
    return [
        Item(
            hashlib.sha256(os.urandom(32)).digest(),
            False,
            Kind.DOCUMENT,
            1_000 + i,
            f"scan-{start + i:05d}.pdf",
        )
        for i in range(count)
    ]


async def register_all(consortium, batches: list[list[Item]]) -> list[int]:
    """Register the batches concurrently; the heights at which they committed."""
    async with consortium.client(consortium.applicant) as client:
        results = await asyncio.wait_for(
            asyncio.gather(*(client.register_evidence(batch) for batch in batches)),
            REGISTER_TIMEOUT_S,
        )
        for batch, registered in zip(batches, results, strict=True):
            assert registered.ids == tuple(i.digest for i in batch)
            assert all(registered.new)
        heights = []
        for batch in batches:
            record = await client.record("evidence", batch[0].digest.hex())
            heights.append(int(record["height"]))
        return heights


def memoized(verify_fn: VerifyFn) -> VerifyFn:
    """The same Ed25519 check, remembered per exact (key, signature, message): the
    10,000 bundles rest on a handful of checkpoint certificates."""
    known: dict[tuple[bytes, bytes, bytes], bool] = {}

    def check(key: bytes, signature: bytes, message: bytes) -> bool:
        found = known.get((key, signature, message))
        if found is None:
            found = known[(key, signature, message)] = verify_fn(key, signature, message)
        return found

    return check


async def prove_all(consortium, every: list[Item], sizes: list[int]) -> dict[bytes, Evidence]:
    """Each item's proof bundle from `/v1/proofs/evidence/{id}` (the nodes in turn, a
    bounded number in flight), decoded and verified against the genesis."""
    genesis = consortium.genesis
    urls = consortium.urls()
    check = memoized(verify)
    semaphore = asyncio.Semaphore(IN_FLIGHT)
    proven: dict[bytes, Evidence] = {}

    async def fetch(session: aiohttp.ClientSession, url: str) -> bytes:
        for _ in range(RETRIES):
            async with session.get(url, headers={"Accept": MSGPACK}) as response:
                data = await response.read()
                if response.status == 200:
                    return data
                assert response.status == 404 and b"not_yet_provable" in data, (url, data[:200])
            await asyncio.sleep(0.2)
        raise AssertionError(f"{url}: not provable after {RETRIES} tries")

    async def prove(session: aiohttp.ClientSession, index: int, item: Item) -> None:
        url = f"{urls[index % len(urls)]}/v1/proofs/evidence/{item.digest.hex()}"
        async with semaphore:
            data = await fetch(session, url)
        sizes.append(len(data))
        verified = verify_bundle(decode(ProofBundle, data), genesis, check)
        value = verified.state[evidence_key(item.digest)]
        assert value is not None, f"the proof of {item.digest.hex()} shows it absent"
        record = decode(Evidence, value)
        assert [tx.id for tx, _ in verified.transactions] == [record.tx_id]
        proven[item.digest] = record

    timeout = aiohttp.ClientTimeout(total=PROOFS_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.wait_for(
            asyncio.gather(*(prove(session, i, item) for i, item in enumerate(every))),
            PROOFS_TIMEOUT_S,
        )
    return proven


@pytest.mark.cluster
def test_ten_thousand_evidence_hashes_in_batches_each_with_a_verifiable_proof(consortium) -> None:
    batches = [items(PER_TX, start) for start in range(0, TOTAL, PER_TX)]
    every = [item for batch in batches for item in batch]
    assert len({i.digest for i in every}) == TOTAL

    started = time.monotonic()
    heights = asyncio.run(register_all(consortium, batches))
    registered_s = time.monotonic() - started

    started = time.monotonic()
    sizes: list[int] = []
    proven = asyncio.run(prove_all(consortium, every, sizes))
    proofs_s = time.monotonic() - started

    assert len(proven) == TOTAL
    owner = consortium.applicant.public_key
    for batch, height in zip(batches, heights, strict=True):
        for item in batch:
            record = proven[item.digest]
            assert (record.id, record.owner, record.size, record.title) == (
                item.digest,
                owner,
                item.size,
                item.title,
            )
            assert record.height == height, "a batch commits in one transaction, one block"
    print(
        f"\nregistered {TOTAL} evidence hashes in {len(batches)} transactions in "
        f"{registered_s:.1f} s; fetched and verified {TOTAL} proofs in {proofs_s:.1f} s "
        f"({TOTAL / proofs_s:.0f}/s, {IN_FLIGHT} in flight over {len(consortium.names)} nodes); "
        f"a bundle is {min(sizes)}..{max(sizes)} bytes (it carries its 2,000-item transaction)"
    )
