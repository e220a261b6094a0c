"""Database reads for the API and for peers, on worker threads with their own connections.

WAL mode lets these readers run beside the storage thread's writer, so a slow
query never delays consensus and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from node.storage import Reader

T = TypeVar("T")


class ReadPool:
    def __init__(self, path: Path, threads: int = 2) -> None:
        self.path = path
        self._local = threading.local()
        self._readers: list[Reader] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reader")

    def _reader(self) -> Reader:
        reader: Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = Reader(self.path)
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    async def run(self, fn: Callable[[Reader], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._reader()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for reader in self._readers:
                reader.close()
