"""A userspace TCP proxy between the API and a store that delays, stalls and resets on command.

The kernel here has no netem, so network faults are made in the proxy: it runs an asyncio loop
on a thread of its own and forwards each accepted connection to the target port. Modes:
- `pass`: bytes go through as they come;
- `delay`: every chunk waits `delay_s` before it is forwarded (a slow link);
- `blackhole`: nothing is forwarded either way and new connections hang (a partition: TCP holds
  the bytes until the link heals or a side gives up, as it would retransmit them); `held` says
  whose bytes and connections it held, so a test knows which process waits on the cut;
- `reset()`: every open connection is closed with an RST (SO_LINGER 0), once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Mode = Literal["pass", "delay", "blackhole"]
CHUNK_BYTES = 65536
STALL_POLL_S = 0.02
T = TypeVar("T")


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: the peer sees 'connection reset'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _client_port(writer: asyncio.StreamWriter) -> int:
    """The port the proxy's client connected from (its local port)."""
    return int(writer.get_extra_info("peername")[1])


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Listens on a free loopback port and forwards to `target_port` on 127.0.0.1."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.resets = 0  # connections reset so far
        # The client's port of every chunk and connection a blackhole held, in arrival order
        # (appended on the proxy's thread; a test reads a slice of it)
        self.held: list[int] = []
        self._pairs: set[_Pair] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen()).result(10)

    def close(self) -> None:
        self._call(self._shut()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set(self, mode: Mode, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.mode = mode

    def reset(self) -> int:
        """RST every open connection now; how many were reset."""
        return self._call(self._reset_all()).result(10)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> int:
        pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for task in pair.tasks:
                task.cancel()
            _rst(pair.client)
            _rst(pair.upstream)
        self.resets += len(pairs)
        return len(pairs)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "blackhole":
            self.held.append(_client_port(writer))
        while self.mode == "blackhole":  # a partitioned link: the connect never completes
            await asyncio.sleep(STALL_POLL_S)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _rst(writer)  # the store is down: refused, as a direct connect would be
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pipe(reader, up_writer, pair)),
            asyncio.create_task(self._pipe(up_reader, writer, pair)),
        ]

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair
    ) -> None:
        try:
            while data := await reader.read(CHUNK_BYTES):
                if self.mode == "blackhole" and writer is pair.upstream:
                    self.held.append(_client_port(pair.client))
                while self.mode == "blackhole":
                    await asyncio.sleep(STALL_POLL_S)
                if self.mode == "delay" and self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if pair in self._pairs:  # one side ended: end the other, as a FIN would
                self._pairs.discard(pair)
                pair.client.close()
                pair.upstream.close()


@contextlib.contextmanager
def running(target_port: int) -> Iterator[FaultProxy]:
    """A proxy to `target_port` on 127.0.0.1, listening until the block ends."""
    proxy = FaultProxy(target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


def through(proxy: FaultProxy, url: str) -> str:
    """`url` of a server on the proxy's target port, pointed at the proxy instead."""
    return url.replace(f":{proxy.target_port}/", f":{proxy.port}/", 1)
