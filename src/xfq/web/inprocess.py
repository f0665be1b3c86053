"""Call this process's own API from a page handler, without a socket.

The pages act as a client of the public API (the same authentication, idempotency and
problem+json answers a wallet app or a till gets), so they cannot drift from it. The call
goes through the ASGI app in memory: no network, no second server, no HTTP client library.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_ANSWER_BYTES = 1_048_576


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def problem_code(self) -> str:
        """The stable code of a problem+json answer (or of a result body)."""
        return str(self.body.get("code", f"http_{self.status}"))

    @property
    def refusal(self) -> dict[str, str]:
        """The code and detail of a refused request, as the pages show them."""
        return {"code": self.problem_code, "detail": str(self.body.get("detail", ""))}


def write_headers(token: str, json_body: bool = False) -> dict[str, str]:
    """An operator's write from a page: the session's token and a fresh Idempotency-Key (each
    submitted form is a new request)."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": f"web-{secrets.token_urlsafe(12)}",
    }
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


async def call_api(
    app: Any,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes = b"",
    client: tuple[str, int] | None = None,
) -> Answer:
    """Send one request to the ASGI `app` in memory and read its JSON answer."""
    done = asyncio.Event()
    body_sent = False
    status = 500
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if sum(len(c) for c in chunks) > MAX_ANSWER_BYTES:
                raise ValueError(f"the API answered {method} {path} with more than 1 MiB")
            if not message.get("more_body", False):
                done.set()

    try:
        await app(_scope(method, path, headers, body, client), receive, send)
    finally:
        done.set()
    raw = b"".join(chunks)
    parsed = json.loads(raw) if raw else {}
    return Answer(status, parsed if isinstance(parsed, dict) else {"items": parsed})


def _scope(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    client: tuple[str, int] | None,
) -> dict[str, Any]:
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw_headers.append((b"host", b"xfq.internal"))
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": client or ("127.0.0.1", 0),
        "server": ("xfq.internal", 80),
        "extensions": {},
    }
