"""A bound on request bodies for every route: larger ones get 413 before anything reads them.

A body declared too large (Content-Length) is refused at once; a chunked one is cut off when it
crosses the bound, as the route reads it. The claim front has its own, smaller bound.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from xfq.api.problems import problem

Scope = dict[str, Any]


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: bodies of at most `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        assert max_bytes > 0
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            detail = BodyTooLarge(self.max_bytes).detail
            response = problem(413, "body_too_large", "Request body too large", detail)
            await response(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Any) -> Any:
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        return limited


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # the server refuses a bad one
    return None
