"""The driver: the one task that owns the replica and carries out what it asks.

Rule (etcd raft's `Ready`, see `consensus.events`): events are taken from one
queue in batches; for each batch the replica's outputs are carried out in
order: persist (one fsynced SQLite transaction on the records thread), then
send, then hand delivered blocks to execution. Execution is a stage of its
own, on its own thread and database connection: it runs blocks in order while
consensus goes on with the next ones, and its results (`Executed`, then any
`EpochScheduled`) come back through the same queue. No other task touches the
replica; only the records thread writes consensus records and only the
execution thread runs the executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from consensus.events import (
    BlocksFetched,
    CatchUp,
    Diverged,
    EpochStarted,
    Event,
    Executed,
    FetchFailed,
    MessageReceived,
    Output,
    Rejoined,
    Resumed,
    StableCheckpoint,
    Tick,
    ViewChanged,
)
from consensus.messages import Message
from consensus.replica import Replica
from node.executor import Executor
from node.fetching import ANSWER_BYTES_MAX, decode_blocks_answer
from node.metrics import Metrics
from node.storage import Store
from node.transport import Transport

log = logging.getLogger("notarychain.consensus")

EVENTS_PER_BATCH_MAX: Final = 512
COMPACT_EVERY_BLOCKS: Final = 200
QUEUE_EVENTS_MAX: Final = 100_000
T = TypeVar("T")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Driver:
    def __init__(
        self,
        replica: Replica,
        records: Store,
        executor: Executor,
        transport: Transport,
        metrics: Metrics,
        *,
        clock_offset_ms: int = 0,
    ) -> None:
        self.clock_offset_ms = clock_offset_ms
        """Added to the clock the replica reads (fault-injection tests of clock skew only)."""
        self.replica = replica
        self.records = records
        """A connection of its own for consensus records (the executor has another)."""
        self.executor = executor
        self.transport = transport
        self.metrics = metrics
        # Unbounded, so that execution results are never lost; peers' and clients'
        # events are bounded by `post`.
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        self.execution_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="execution")
        self.to_execute: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.committed = asyncio.Condition()
        self.executed_height = executor.head.height
        self.listeners: list[Callable[[int, list[bytes]], None]] = []
        self.catch_up: tuple[int, int] | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self.rejoined = False
        self.compaction_due: int | None = None
        """The stable height below which records may be deleted, once it is due."""
        self.sends: list[tuple[bytes | None, Message]] = []
        self.started_epoch: EpochStarted | None = None

    async def in_records_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def in_execution_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.execution_io, fn, *args)

    def shutdown(self) -> None:
        self.io.shutdown(wait=True)
        self.execution_io.shutdown(wait=True)

    # ------------------------------------------------------------ inputs

    def now_ms(self) -> int:
        return wall_clock_ms() + self.clock_offset_ms

    def post(self, event: Event) -> bool:
        """Queue an event from outside; False when the queue is full (the caller sheds load)."""
        if self.queue.qsize() >= QUEUE_EVENTS_MAX:
            self.metrics.events_dropped.inc()
            return False
        self.queue.put_nowait(event)
        return True

    def on_message(self, message: Message) -> None:
        self.post(MessageReceived(message))

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Both loops until one fails: the other is then cancelled (it must not go on
        alone, say ordering blocks that nothing executes) and the failure raised."""
        loops = [
            asyncio.create_task(self._consensus_loop(), name="consensus"),
            asyncio.create_task(self._execution_loop(), name="execution"),
        ]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
        for task in done:
            failure = task.exception()
            if failure is not None:
                raise failure

    async def _consensus_loop(self) -> None:
        while True:
            events = await self._next_events()
            output = Output()
            for event in events:
                self._step(event, output)
            await self._carry_out(output)

    def _step(self, event: Event, into: Output) -> None:
        """Step the replica; its targets (indices in its validator set) become node keys now,
        since the set may change at the end of this very step."""
        keys = self.replica.keys
        out = self.replica.step(event, self.now_ms())
        for target, message in out.send:
            self.sends.append((None if target is None else keys[target], message))
        out.send = []
        _merge(into, out)

    async def _next_events(self) -> list[Event]:
        # At least a millisecond: a deadline already past must not starve the event loop.
        wait_s = max(0.001, (self.replica.next_deadline_ms() - self.now_ms()) / 1000)
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout=wait_s)
        except TimeoutError:
            return [Tick()]
        events = [first]
        while len(events) < EVENTS_PER_BATCH_MAX and not self.queue.empty():
            events.append(self.queue.get_nowait())
        if self.replica.next_deadline_ms() <= self.now_ms():
            events.append(Tick())
        return events

    async def _carry_out(self, output: Output) -> None:
        if output.persist:
            await self.in_records_thread(self.records.append_records, output.persist)
        if self.rejoined:
            self.rejoined = False
            await self.in_records_thread(self.records.clear_rejoining)
        if self.compaction_due is not None:
            # Records below the stable checkpoint are no longer needed by a restart.
            stable_height, self.compaction_due = self.compaction_due, None
            await self.in_records_thread(self.records.compact_records_below, stable_height)
        if self.started_epoch is not None:
            await self._start_epoch(self.started_epoch)
        sends, self.sends = self.sends, []
        for target, message in sends:
            self.transport.send(target, message)
        for fetch in output.fetch:
            task = asyncio.create_task(
                self._fetch(fetch.peer, fetch.from_height, fetch.until_height)
            )
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)
        self._observe(output)
        if output.deliver:
            self.metrics.execution_backlog.inc(len(output.deliver))
            self.to_execute.put_nowait(output.deliver)

    async def _execution_loop(self) -> None:
        """Execute delivered blocks in order; their results go back to the replica."""
        while True:
            delivered = await self.to_execute.get()
            while not self.to_execute.empty():
                delivered.extend(self.to_execute.get_nowait())
            results = await self.in_execution_thread(self._execute_all, delivered)
            self.metrics.execution_backlog.dec(len(delivered))
            await self._announce(delivered)
            for executed in results:
                self.queue.put_nowait(executed)
            schedules, self.executor.epoch_schedules = self.executor.epoch_schedules, []
            for scheduled in schedules:
                log.info(
                    "validator set changes after height %d: %d validators",
                    scheduled.end_height,
                    scheduled.validators.n,
                )
                self.queue.put_nowait(scheduled)

    def _execute_all(self, delivered: list[Any]) -> list[Executed]:
        return [self.executor.execute(committed) for committed in delivered]

    async def _announce(self, delivered: list[Any]) -> None:
        for committed in delivered:
            block = committed.block
            self.executed_height = block.header.height
            self.metrics.observe_block(block)
            tx_ids = [tx.id for tx in block.transactions]
            for listener in self.listeners:
                listener(block.header.height, tx_ids)
        async with self.committed:
            self.committed.notify_all()

    def _observe(self, output: Output) -> None:
        for notice in output.notices:
            match notice:
                case ViewChanged(view=view, active=active):
                    self.metrics.view.set(view)
                    if active:
                        self.metrics.view_changes.inc()
                    log.info("view %d %s", view, "installed" if active else "requested")
                case StableCheckpoint(certificate=certificate):
                    self.metrics.stable_height.set(certificate.checkpoint.height)
                    if certificate.checkpoint.height % COMPACT_EVERY_BLOCKS == 0:
                        self.compaction_due = certificate.checkpoint.height
                case Diverged(height=height, reason=reason):
                    log.critical(
                        "state diverged at height %d: %s; this node stopped signing", height, reason
                    )
                    self.metrics.diverged.set(1)
                case EpochStarted():
                    self.started_epoch = notice
                case Rejoined(stable_height=height):
                    log.info("rejoined at stable height %d: voting again", height)
                    self.rejoined = True
                case Resumed(stalled_ms=stalled_ms):
                    log.warning(
                        "this node did not run for %d ms (paused or starved); "
                        "its request timers start again",
                        stalled_ms,
                    )
                case CatchUp(peer=peer, from_height=start, to_height=end):
                    self.catch_up = (start, end)
                    log.info("caught up blocks %d..%d from %s", start, end, peer.hex()[:16])
        for rejected in output.rejected:
            self.metrics.rejected.labels(kind=rejected.kind).inc()
            log.debug("rejected %s from %s: %s", rejected.kind, rejected.sender, rejected.reason)

    async def _start_epoch(self, started: EpochStarted) -> None:
        """Remember the new validator set and talk to the consortium as it now is."""
        self.started_epoch = None
        await self.in_records_thread(self.records.start_epoch, started.epoch, started.validators)
        members = await self.in_execution_thread(self.executor.members)
        self.transport.set_peers(members.members)
        role = "a validator" if started.member else "following, not a validator"
        log.info(
            "epoch %d: %d validators from height %d; this node is %s",
            started.epoch,
            started.validators.n,
            started.validators.from_height,
            role,
        )

    async def _fetch(self, peer: bytes, from_height: int, until_height: int | None) -> None:
        path = f"/peer/v1/blocks?from={from_height}"
        if until_height is not None:
            path += f"&until={until_height}"
        data = await self.transport.fetch(peer, path, ANSWER_BYTES_MAX)
        event: Event = FetchFailed(peer)
        if data is not None:
            answer = decode_blocks_answer(data)
            if answer is not None:
                certificate, blocks = answer
                event = BlocksFetched(peer, certificate, blocks)
        self.post(event)

    async def wait_executed(self, height: int, timeout_s: float) -> bool:
        async def reached() -> None:
            async with self.committed:
                await self.committed.wait_for(lambda: self.executed_height >= height)

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            return False
        return True


def _merge(into: Output, more: Output) -> None:
    into.persist.extend(more.persist)
    into.send.extend(more.send)
    into.deliver.extend(more.deliver)
    into.fetch.extend(more.fetch)
    into.notices.extend(more.notices)
    into.rejected.extend(more.rejected)
