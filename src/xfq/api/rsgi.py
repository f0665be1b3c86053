"""The app under granian's RSGI interface: the claim answered in one call, the rest through ASGI.

granian serves ASGI through awaitables that cross into its Rust runtime for the request body and
for each of the two messages of an answer; RSGI reads the body in one await and answers with one
plain call. The claim route is served that way (`ClaimFront.answer`); every other route is the
same FastAPI app behind a small RSGI-to-ASGI bridge below. Websockets are not served (`xfq
serve` runs granian without them), nor the ASGI lifespan (the app has no startup work; its
container is closed by `__rsgi_del__`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

# granian.rsgi re-exports these from its Rust module without declaring them public
from granian.rsgi import HTTPProtocol, ProtocolClosed, Scope  # type: ignore[attr-defined]

from xfq.api.claiming import MAX_BODY_BYTES, ClaimFront

_log = logging.getLogger(__name__)
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class RsgiApp:
    """What granian's RSGI workers call: `__rsgi__` per request, `__rsgi_del__` at the end."""

    def __init__(self, front: ClaimFront, shutdown: Callable[[], None]) -> None:
        self.front = front
        self._shutdown = shutdown

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        if scope.proto != "http":  # websockets are off
            return
        if scope.path == "/v1/claims" and scope.method == "POST":
            await self._claim(scope, proto)
        else:
            await serve_asgi(self.front.app, scope, proto)

    def __rsgi_del__(self, _loop: Any) -> None:
        self._shutdown()

    async def _claim(self, scope: Scope, proto: HTTPProtocol) -> None:
        headers = scope.headers
        body = await _bounded_body(proto, headers.get("content-length"))
        address = scope.client.rpartition(":")[0]
        status, payload, answer_headers = await self.front.answer(headers.get, address, body)
        proto.response_bytes(status, answer_headers, payload)


async def _bounded_body(proto: HTTPProtocol, length: str | None) -> bytes | None:
    """The body, or None once it is larger than `MAX_BODY_BYTES` (read no further than that)."""
    if length is not None and length.isdigit() and int(length) <= MAX_BODY_BYTES:
        body = await proto()  # one await for the whole body
        return body if len(body) <= MAX_BODY_BYTES else None
    body = b""
    async for chunk in proto:
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return body


async def serve_asgi(app: Any, scope: Scope, proto: HTTPProtocol) -> None:
    """One HTTP request of an RSGI server answered by an ASGI app."""
    answer = _Answer(proto)
    try:
        await app(_asgi_scope(scope), _Receive(proto), answer.send)
    except Exception:
        _log.exception("%s %s failed", scope.method, scope.path)
        if not answer.started:
            proto.response_empty(500, [])
        return
    answer.finish()


def _asgi_scope(scope: Scope) -> dict[str, Any]:
    # granian's RSGI path is percent-decoded already, as ASGI's is; the raw form (ASGI's
    # optional `raw_path`) is not given.
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": scope.http_version,
        "method": scope.method,
        "scheme": scope.scheme,
        "path": scope.path,
        "query_string": scope.query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()],
        "client": _host_port(scope.client),
        "server": _host_port(scope.server),
        "state": {},
    }


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


class _Receive:
    """ASGI's `receive`: the body as it arrives, then (once the client is gone) a disconnect."""

    def __init__(self, proto: HTTPProtocol) -> None:
        self._proto = proto
        self._chunks: AsyncIterator[bytes] = aiter(proto)
        self._done = False

    async def __call__(self) -> dict[str, Any]:
        if not self._done:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self._proto.client_disconnect()
        return {"type": "http.disconnect"}


class _Answer:
    """ASGI's `send`: one `response_bytes` for a whole body, else a stream."""

    def __init__(self, proto: HTTPProtocol) -> None:
        self._proto = proto
        self._status = 500
        self._headers: list[tuple[str, str]] = []
        self._stream: Any = None
        self.started = False  # a response has begun on the wire
        self._done = False

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
        elif kind == "http.response.body" and not self._done:
            await self._body(message.get("body", b""), message.get("more_body", False))

    async def _body(self, body: bytes, more: bool) -> None:
        if self._stream is None and not more:
            self._proto.response_bytes(self._status, self._headers, body)
            self.started = self._done = True
            return
        if self._stream is None:
            self._stream = self._proto.response_stream(self._status, self._headers)
            self.started = True
        try:
            if body:
                await self._stream.send_bytes(body)
        except ProtocolClosed:  # the client left; the app learns it from `receive`
            self._done = True
            return
        self._done = not more

    def finish(self) -> None:
        """The app returned: a response it started but never gave a body ends empty."""
        if not self.started:
            self._proto.response_bytes(self._status, self._headers, b"")
