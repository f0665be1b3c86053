"""The ceiling under granian's RSGI interface: the same answer as `hello_asgi`, one call."""

from __future__ import annotations

from typing import Any

BODY = b'{"code":"hello"}'
HEADERS = [("content-type", "application/json")]


async def app(scope: Any, proto: Any) -> None:
    await proto()  # read the body, as the claim endpoint does
    proto.response_bytes(200, HEADERS, BODY)
