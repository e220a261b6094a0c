"""A load generator process for `notarychain-node bench` (`python -m node.loadgen`).

It pre-signs evidence registrations with its own key, submits them to the
nodes round-robin, open loop at a rate or closed loop at a concurrency, and
learns of commits from the nodes' `/v1/commits` long poll, so each latency is
measured from submission to the moment a node reports the commit. It writes
its samples as JSON to `--out`. Every loop is bounded by `--duration`.

With `--submit-batch N` (N > 1) transactions go by `POST /v1/transactions/batch`,
at most N per request, with as many requests in flight as there are nodes (sent
to the nodes in turn): a transaction is sent at once when a request is free, and
otherwise with those that gathered while all were busy. Batching thus adds no
wait at light load, and its latency is still measured from the moment the
transaction was due.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from ledger.encoding import decode, encode, pack, unpack_document
from ledger.errors import LedgerError
from ledger.families.evidence import FAMILY, REGISTER, Item, Kind, Register
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey
from ledger.tx import Transaction, TransactionBody, sign_transaction
from node import eventloop
from node.memory import tune_collector

MSGPACK = "application/msgpack"
CLOSED_LOOP_TX_PER_S_MAX = 3000
"""A closed-loop client signs enough for this rate over the whole run."""
PRESIGNED_RUN_S_MAX = 60.0
"""Runs up to this long sign every transaction before the clock starts, so that signing
does not compete with the nodes; transactions expire `EXPIRY_MS` after signing, so
longer runs sign blocks of `SIGNED_BLOCK` as they go (a few percent of a core)."""
SIGNED_BLOCK = 1000
BATCH_WAIT_S = 10.0
EXPIRY_MS = 110_000
EXPIRY_MARGIN_MS = 30_000
"""Signed transactions this close to their expiry are dropped unsent and signed afresh."""
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, RuntimeError)
"""RuntimeError: aiohttp's for a session closed under a request at the end of a run."""
EVIDENCE_SAMPLE_MAX = 50
"""Committed evidence ids reported, for the bench to fetch and check their proofs."""


def make_transactions(
    key: PrivateKey, chain_id: str, count: int, payload_bytes: int
) -> list[Transaction]:
    expires = int(time.time() * 1000) + EXPIRY_MS
    title_chars = max(0, min(200, payload_bytes - 60))
    transactions = []
    for _ in range(count):
        item = Item(os.urandom(32), False, Kind.DOCUMENT, 1024, "x" * title_chars or None)
        body = TransactionBody(
            chain_id,
            key.public_key,
            FAMILY,
            REGISTER,
            encode(Register((item,))),
            os.urandom(16),
            expires,
        )
        transactions.append(sign_transaction(body, key))
    return transactions


class Load:
    def __init__(
        self, args: argparse.Namespace, key: PrivateKey, transactions: list[Transaction], total: int
    ) -> None:
        self.args = args
        self.key = key
        self.nodes: list[str] = args.node
        self.transactions = transactions
        self.total = total
        """How many transactions this run may submit in all."""
        self.submitted: dict[bytes, float] = {}
        self.committed: dict[bytes, float] = {}
        self.refused = 0
        self.refusals: dict[str, int] = {}
        """Refusal code -> how many (the node's stable error codes)."""
        self.errors = 0
        self.next = 0
        self.waiting: dict[bytes, asyncio.Future[None]] = {}
        """Closed loop: the commit each worker waits for (set by the followers)."""
        self.follow_until = 0.0
        """When the followers stop: the end of the duration plus the drain, or sooner once
        the load has run out of transactions (then they also stop once all are committed)."""
        self.load_done = False
        self.outbox: list[tuple[int, asyncio.Future[None]]] = []
        """Batched submission: transactions due and not yet sent, with who waits for them."""
        self.batches_in_flight = 0
        self.batches_sent = 0
        self._batch_tasks: set[asyncio.Task[None]] = set()

    def has_next(self) -> bool:
        """Whether a transaction is left to submit (signing another block if needed)."""
        if self.next < len(self.transactions):
            expires_ms = self.transactions[self.next].body.expires_at_ms
            if expires_ms - time.time() * 1000 > EXPIRY_MARGIN_MS:
                return True
            del self.transactions[self.next :]  # too old to send: sign afresh
        missing = self.total - len(self.transactions)
        if missing <= 0:
            return False
        self.transactions += make_transactions(
            self.key, self.args.chain_id, min(SIGNED_BLOCK, missing), self.args.payload_bytes
        )
        return True

    async def submit(self, session: aiohttp.ClientSession, index: int) -> None:
        self.submitted[self.transactions[index].id] = time.monotonic()
        if self.args.submit_batch > 1:
            done = asyncio.get_running_loop().create_future()
            self.outbox.append((index, done))
            self._send_batches(session)
            await done
            return
        tx = self.transactions[index]
        url = self.nodes[index % len(self.nodes)] + "/v1/transactions"
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        try:
            async with session.post(url, data=encode(tx), headers=headers) as r:
                answer = await r.read()
                if r.status not in (200, 202):
                    self._refused(tx.id, _error_code(answer))
        except NETWORK_ERRORS:
            self.errors += 1
            self.submitted.pop(tx.id, None)

    def _refused(self, tx_id: bytes, code: str) -> None:
        self.refused += 1
        self.submitted.pop(tx_id, None)
        self.refusals[code] = self.refusals.get(code, 0) + 1

    async def finish_batches(self) -> None:
        """Let the requests in flight end; what was never sent was never submitted."""
        unsent, self.outbox = self.outbox, []
        for index, done in unsent:
            self.submitted.pop(self.transactions[index].id, None)
            done.set_result(None)
        if self._batch_tasks:
            await asyncio.wait(self._batch_tasks, timeout=BATCH_WAIT_S)

    def _send_batches(self, session: aiohttp.ClientSession) -> None:
        """Start a request for what waits, while fewer than one per node are in flight."""
        size = self.args.submit_batch
        while self.outbox and self.batches_in_flight < len(self.nodes):
            chunk, self.outbox = self.outbox[:size], self.outbox[size:]
            self.batches_in_flight += 1
            task = asyncio.create_task(self._post_batch(session, chunk))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)

    async def _post_batch(
        self, session: aiohttp.ClientSession, chunk: list[tuple[int, asyncio.Future[None]]]
    ) -> None:
        txs = [self.transactions[index] for index, _ in chunk]
        url = self.nodes[self.batches_sent % len(self.nodes)] + "/v1/transactions/batch"
        self.batches_sent += 1
        body = pack([tx.encode() for tx in txs])
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        try:
            async with session.post(url, data=body, headers=headers) as r:
                status, data = r.status, await r.read()
            codes: list[str | None]
            if status != 200:
                codes = [_error_code(data)] * len(txs)
            else:
                results = unpack_document(data)["results"]
                if len(results) != len(txs):
                    raise LookupError("one result per transaction")
                codes = [
                    None if r["status"] in (200, 202) else str(r["error"]["code"]) for r in results
                ]
            for tx, code in zip(txs, codes, strict=True):
                if code is not None:
                    self._refused(tx.id, code)
        except (*NETWORK_ERRORS, LedgerError, LookupError, TypeError):
            self.errors += len(txs)
            for tx in txs:
                self.submitted.pop(tx.id, None)
        finally:
            self.batches_in_flight -= 1
            for _, done in chunk:
                if not done.done():
                    done.set_result(None)
            self._send_batches(session)

    def following(self) -> bool:
        if time.monotonic() >= self.follow_until:
            return False
        return not (self.load_done and len(self.committed) == len(self.submitted))

    async def follow(self, session: aiohttp.ClientSession, node: str) -> None:
        after = 0
        while self.following():
            try:
                async with session.get(
                    f"{node}/v1/commits?after={after}&wait=2", headers={"Accept": MSGPACK}
                ) as r:
                    data: Any = unpack_document(await r.read())
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            if after == 0 and data["blocks"]:
                after = max(0, data["oldest_kept"] - 1)
            for height, tx_ids in data["blocks"]:
                for tx_id in tx_ids:
                    if tx_id in self.submitted and tx_id not in self.committed:
                        self.committed[tx_id] = now
                        waiter = self.waiting.pop(tx_id, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(None)
                after = max(after, height)
            if not data["blocks"]:
                after = max(after, data["height"])

    async def open_loop(self, session: aiohttp.ClientSession, until: float) -> None:
        interval = 1.0 / self.args.rate
        start = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        while time.monotonic() < until and self.has_next():
            due = start + self.next * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.submit(session, self.next))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.next += 1
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def closed_loop(self, session: aiohttp.ClientSession, until: float) -> None:
        loop = asyncio.get_running_loop()

        async def worker() -> None:
            while time.monotonic() < until and self.has_next():
                index = self.next
                self.next += 1
                tx_id = self.transactions[index].id
                committed = loop.create_future()
                self.waiting[tx_id] = committed
                await self.submit(session, index)
                if tx_id not in self.submitted:  # refused or failed: take the next one
                    self.waiting.pop(tx_id, None)
                    continue
                remaining_s = until + self.args.drain - time.monotonic()
                try:
                    await asyncio.wait_for(committed, max(0.0, remaining_s))
                except TimeoutError:
                    return

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    key = load_private_key(Path(args.key))
    if args.rate:
        count = int(args.rate * args.duration * 1.1)
    else:
        count = int(CLOSED_LOOP_TX_PER_S_MAX * args.duration)
    count = min(count, args.tx_max)
    presigned = count if args.duration <= PRESIGNED_RUN_S_MAX else min(count, SIGNED_BLOCK)
    transactions = make_transactions(key, args.chain_id, presigned, args.payload_bytes)
    # The pre-signed load lives to the end: spare it the collector's passes, as a node does
    # its start-up objects, so a client takes less of the CPU its nodes are measured on.
    tune_collector()
    load = Load(args, key, transactions, count)
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        until = start + args.duration
        load.follow_until = until + args.drain
        followers = [asyncio.create_task(load.follow(session, node)) for node in args.node[:2]]
        if args.rate:
            await load.open_loop(session, until)
        else:
            await load.closed_loop(session, until)
        await load.finish_batches()
        submitted_until = time.monotonic()
        load.follow_until = min(load.follow_until, submitted_until + args.drain)
        load.load_done = True
        await asyncio.gather(*followers)
    latencies_ms = [
        (load.committed[tx_id] - sent) * 1000
        for tx_id, sent in load.submitted.items()
        if tx_id in load.committed
    ]
    commit_times = sorted(load.committed.values())
    by_id = {tx.id: tx for tx in transactions}
    sample = [
        decode(Register, by_id[tx_id].body.payload).items[0].digest.hex()
        for tx_id in list(load.committed)[:EVIDENCE_SAMPLE_MAX]
    ]
    return {
        "submitted": len(load.submitted),
        "committed": len(load.committed),
        "refused": load.refused,
        "refusals": load.refusals,
        "errors": load.errors,
        "start": start,
        "submitted_until": submitted_until,
        "latencies_ms": latencies_ms,
        "commit_times": [t - start for t in commit_times],
        "evidence_sample": sample,
    }


def _error_code(answer: bytes) -> str:
    """The stable code of a refusal's answer (msgpack, as every request here asks)."""
    try:
        return str(unpack_document(answer)["error"]["code"])
    except (LedgerError, KeyError, TypeError):
        return "unreadable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", action="append", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--tx-max", type=int, default=500_000)
    parser.add_argument("--submit-batch", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not args.rate and not args.concurrency:
        parser.error("give --rate or --concurrency")
    result = eventloop.run(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
