"""A fault-injecting HTTP CONNECT proxy for one node's connections to its peers.

Each node of a soak sends its peer traffic through its own proxy (node.toml
`[transport] proxy`), so the proxy knows both ends of every link and can cut
or slow the link from this node to any peer: symmetric and asymmetric
partitions, and delays, without touching the nodes. TLS stays end to end (the
proxy only relays bytes). Only destinations on 127.0.0.1 are allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

READ_BYTES: Final = 64 * 1024
HEADER_BYTES_MAX: Final = 8 * 1024


def route_through(config: Path, proxy_port: int, clock_offset_ms: int = 0) -> None:
    """Point a node's `node.toml` at its proxy (replacing any `[transport]` section),
    with its clock offset (a soak skews a node's clock this way)."""
    text = config.read_text().split("\n[transport]")[0].rstrip("\n")
    config.write_text(
        f'{text}\n\n[transport]\nproxy = "http://127.0.0.1:{proxy_port}"\n'
        f"clock_offset_ms = {clock_offset_ms}\n"
    )


class FaultProxy:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cut: set[int] = set()
        """Destination ports this node cannot reach now."""
        self.delay_ms: dict[int, int] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: dict[int, set[asyncio.StreamWriter]] = {}

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writers in self._connections.values():
            for writer in list(writers):
                writer.close()

    def cut_link(self, port: int) -> None:
        """Cut the link to this destination, breaking the connections already open."""
        self.cut.add(port)
        for writer in list(self._connections.get(port, ())):
            writer.close()

    def heal(self) -> None:
        self.cut.clear()
        self.delay_ms.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        port = _destination_port(request)
        if port is None or port in self.cut or len(head) > HEADER_BYTES_MAX:
            status = "400 Bad Request" if port is None else "503 Link Cut"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        live = self._connections.setdefault(port, set())
        live.update((writer, upstream_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, port),
                self._pipe(upstream_reader, writer, port),
            )
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            live.discard(writer)
            live.discard(upstream_writer)
            writer.close()
            upstream_writer.close()

    async def _pipe(
        self, source: asyncio.StreamReader, target: asyncio.StreamWriter, port: int
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError, OSError):
            while data := await source.read(READ_BYTES):
                if port in self.cut:
                    break
                delay = self.delay_ms.get(port, 0)
                if delay:
                    await asyncio.sleep(delay / 1000)
                target.write(data)
                await target.drain()
        target.close()


def _destination_port(request: list[str]) -> int | None:
    """The port of `CONNECT 127.0.0.1:PORT HTTP/1.1` (loopback only), else None."""
    if len(request) != 3 or request[0] != "CONNECT":
        return None
    host, _, port = request[1].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    return int(port)
