"""`GET /v1/commits?after=H&wait=S`: which transactions committed after height H, as they commit.

A long poll: the answer comes as soon as a block above H is executed (or
after S seconds, empty). Load generators and followers use it to see commits
without polling every transaction; the node keeps only a bounded window of
recent blocks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Final

from aiohttp import web

if TYPE_CHECKING:
    from node.app import Node

RECENT_BLOCKS_MAX: Final = 4096
RECENT_IDS_MAX: Final = 200_000
ANSWER_BLOCKS_MAX: Final = 1000


class CommitFeed:
    def __init__(self) -> None:
        self.recent: deque[tuple[int, list[bytes]]] = deque(maxlen=RECENT_BLOCKS_MAX)
        self.ids_kept = 0
        self.changed = asyncio.Event()

    def on_committed(self, height: int, tx_ids: list[bytes]) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.ids_kept -= len(self.recent[0][1])
        self.recent.append((height, tx_ids))
        self.ids_kept += len(tx_ids)
        while self.ids_kept > RECENT_IDS_MAX and len(self.recent) > 1:
            self.ids_kept -= len(self.recent.popleft()[1])
        self.changed.set()
        self.changed = asyncio.Event()

    def after(self, height: int) -> list[tuple[int, list[bytes]]]:
        """The oldest `ANSWER_BLOCKS_MAX` kept blocks above `height`.

        Walked from the newest end, so a follower that is up to date (the
        common poll) costs one step, not a pass over every kept block.
        """
        newer: list[tuple[int, list[bytes]]] = []
        for entry in reversed(self.recent):
            if entry[0] <= height:
                break
            newer.append(entry)
        newer.reverse()
        return newer[:ANSWER_BLOCKS_MAX]


async def get_commits(request: web.Request) -> web.Response:
    from node.api import NODE_KEY, int_param, respond, seconds_param  # noqa: PLC0415  (api imports this module)

    node: Node = request.app[NODE_KEY]
    after = int_param(request.query.get("after", "0"), "after")
    wait_s = seconds_param(request.query.get("wait", "0"), "wait")
    feed = node.commit_feed
    blocks = feed.after(after)
    if not blocks and wait_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.changed.wait(), wait_s)
        blocks = feed.after(after)
    oldest = feed.recent[0][0] if feed.recent else node.driver.executed_height + 1
    return respond(
        request,
        {
            "height": node.driver.executed_height,
            "oldest_kept": oldest,
            "blocks": [[height, tx_ids] for height, tx_ids in blocks],
        },
    )
