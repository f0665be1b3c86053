"""A small keep-alive HTTP/1.1 client for driving a loopback server hard from one process.

httpx costs ~0.2 ms of CPU per request here; the demo sends close to a million, so the load
would be limited by the client. This speaks just enough HTTP/1.1 for xfq's own JSON API.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, head: bytes, body: bytes) -> Reply:
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        payload = await (self._chunks() if chunked else self.reader.readexactly(length))
        return Reply(status, payload)

    async def _chunks(self) -> bytes:
        parts = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()
            if sum(map(len, parts)) > MAX_BODY_BYTES:
                raise ValueError("response body too large")
        await self.reader.readline()
        return b"".join(parts)


class HttpPool:
    """`size` keep-alive connections to one loopback server; requests wait for a free one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._all: list[_Connection] = []

    async def open(self) -> None:
        for _ in range(self.size):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            connection = _Connection(reader, writer)
            self._all.append(connection)
            self._idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self._all:
            connection.writer.close()
        self._all.clear()

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> Reply:
        raw = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(raw)}",
            "Content-Type: application/json",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        connection = await self._idle.get()
        try:
            return await connection.request(head, raw)
        except BaseException:
            connection.writer.close()  # a half-read reply would poison the next request
            reader, writer = await asyncio.open_connection(self.host, self.port)
            connection = _Connection(reader, writer)
            raise
        finally:
            self._idle.put_nowait(connection)
