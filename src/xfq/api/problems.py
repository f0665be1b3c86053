"""Every error as RFC 9457 problem+json with a stable code; mapped in this one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from xfq.adapters.sql.errors import DATABASE_ERRORS, translate
from xfq.api.auth.merchant_signature import NonceStoreFull, SignatureError
from xfq.api.auth.tokens import AuthError
from xfq.domain.errors import (
    IdempotencyConflict,
    SpecError,
    StorageUnavailable,
    UnknownObject,
    XfqError,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://xfq.invalid/problems/"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return JSONResponse(body, status, headers=headers, media_type=PROBLEM_JSON)


def _validation(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in error.errors()
    ]
    detail = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return problem(422, "invalid_request", "The request is not valid", detail, errors=fields)


def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    codes = {
        400: "malformed_body",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
    }
    code = codes.get(error.status_code, "http_error")
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem(error.status_code, code, str(error.detail), str(error.detail), headers)


def _allowed_methods(request: Request) -> str:
    """Every method routed at this path (Starlette names only the first route that matched)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _auth(_request: Request, error: Exception) -> Response:
    assert isinstance(error, AuthError)
    headers: dict[str, str] = {}
    if isinstance(error, NonceStoreFull):
        headers["Retry-After"] = str(error.retry_after_s)
    elif error.status == 401 and not isinstance(error, SignatureError):
        headers["WWW-Authenticate"] = "Bearer"
    return problem(error.status, error.code, "Not allowed", error.detail, headers)


def _domain(request: Request, error: Exception) -> Response:
    assert isinstance(error, XfqError)
    if isinstance(error, SpecError):
        return problem(
            422, error.code, "The campaign file is not valid", str(error), problems=error.problems
        )
    if isinstance(error, IdempotencyConflict):
        return problem(422, error.code, "Idempotency key reused", str(error))
    if isinstance(error, UnknownObject):
        return problem(404, error.code, "Not found", str(error))
    if isinstance(error, StorageUnavailable):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.unavailable.inc()
        return problem(503, error.code, "Try again", str(error), {"Retry-After": "1"})
    return problem(409, error.code, "Not possible now", str(error))


def _database(request: Request, error: Exception) -> Response:
    """A driver's error that a store let through (not every store maps its own): the same
    answer as the ledger's, 503 with Retry-After for a server out of reach, 409 a conflict."""
    mapped = translate(error)
    if mapped is None:
        return _unexpected(request, error)
    log.warning("database error answered as %s: %s", mapped.code, error)
    return _domain(request, mapped)


def _unexpected(_request: Request, error: Exception) -> Response:
    log.exception("unexpected error", exc_info=error)
    return problem(500, "internal_error", "Something went wrong", "the error was logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(XfqError, _domain)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database)
    app.add_exception_handler(Exception, _unexpected)
