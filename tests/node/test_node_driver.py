"""The driver loop in one process: queued events are taken even when a timer is overdue.

The replica may report a deadline that is already past (for instance a
request older than the request timeout while the replica is catching up,
which `Replica._on_tick` deliberately does not act on). The driver must still
hand it the events waiting in its queue (peer messages, fetched blocks);
otherwise the node only ever sees `Tick`s and never catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

from consensus.events import MessageReceived, Output, Tick
from node.driver import Driver

WAIT_S = 5.0


class OverdueReplica:
    """A stand-in replica whose next deadline is always in the past; it records its events."""

    keys: tuple[bytes, ...] = ()

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def next_deadline_ms(self) -> int:
        return int(time.time() * 1000) - 1_000

    def step(self, event: Any, now_ms: int) -> Output:
        self.seen.append(event)
        return Output()


async def test_driver_takes_queued_events_while_a_deadline_is_past() -> None:
    replica = OverdueReplica()
    driver = Driver(
        replica,  # type: ignore[arg-type]
        SimpleNamespace(),  # type: ignore[arg-type]
        SimpleNamespace(head=SimpleNamespace(height=0)),  # type: ignore[arg-type]
        SimpleNamespace(send=lambda target, message: None),  # type: ignore[arg-type]
        SimpleNamespace(),  # type: ignore[arg-type]
    )
    event = MessageReceived("a peer's message")  # type: ignore[arg-type]
    assert driver.post(event)
    task = asyncio.create_task(driver.run())
    try:
        deadline = time.monotonic() + WAIT_S
        while event not in replica.seen and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        driver.io.shutdown(wait=True)
    ticks = sum(isinstance(e, Tick) for e in replica.seen)
    assert event in replica.seen, (
        f"the queued event was never stepped in {WAIT_S:.0f} s; the replica got {ticks} Ticks "
        f"and nothing else; {driver.queue.qsize()} event(s) still queued"
    )
