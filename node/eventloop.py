"""Run a coroutine on the fastest event loop installed: uvloop where present, else asyncio.

uvloop (libuv) roughly halves the per-request cost of aiohttp's server and
client, which a node pays for every client request and peer message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop  # noqa: PLC0415  (optional: absent on some platforms)
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
