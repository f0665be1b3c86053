"""The claim: the one route a million people hit at the same second.

`ClaimFront` answers `POST /v1/claims` before FastAPI sees it: FastAPI costs ~125 µs of CPU per
request here, a bare ASGI handler ~28 µs (perf-limits.md). The FastAPI route of the same path
stays in the app, so the OpenAPI document describes it and tests can compare both.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from xfq.api.admission import Admission, Shed
from xfq.api.auth.claim_pass import check_pass_round, pass_citizen
from xfq.api.auth.tokens import AuthError, Identity, Role, require_role
from xfq.api.deps import KEY_PATTERN
from xfq.api.observability import Metrics
from xfq.api.ratelimit import RateLimiter
from xfq.api.schemas import claim_body, voucher_body
from xfq.bootstrap import Container
from xfq.domain.claim import ClaimCode
from xfq.domain.eligibility import Citizen
from xfq.domain.errors import IdempotencyConflict, StorageUnavailable, UnknownObject, XfqError
from xfq.ports import ClaimAnswer, ClaimRequest
from xfq.services.waiting_room import AdmissionRefused

if TYPE_CHECKING:
    from xfq.bootstrap import Engine

MAX_BODY_BYTES = 4096
_TOO_LARGE = f"the body is larger than {MAX_BODY_BYTES} bytes"
_SECOND = timedelta(seconds=1)
_KEY = re.compile(KEY_PATTERN)
_JSON_ONLY = [("content-type", "application/json")]  # shared: read, never appended to
Header = Callable[[str], str | None]
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]  # status, JSON body, headers
Scope = dict[str, Any]


@dataclass
class ClaimStats:
    """Answers by code and claims per second, for the operators' dashboard."""

    by_code: Counter[str] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)
    # The Unix second last counted and when it ends: `datetime.timestamp` costs as much as
    # the rest of the count, and claims come many to a second
    _second: int = -1
    _span: tuple[datetime, datetime] | None = None  # [start, end) of `_second`

    def count(self, code: str, now: datetime) -> None:
        self.by_code[code] += 1
        span = self._span
        if span is None or not span[0] <= now < span[1]:
            start = now.replace(microsecond=0)  # a second's start (UTC offsets are whole seconds)
            self._second = int(start.timestamp())
            self._span = (start, start + _SECOND)
        self.per_second[self._second] += 1
        if len(self.per_second) > 600:  # keep ten minutes
            del self.per_second[min(self.per_second)]


def citizen_of(identity: Identity) -> Citizen:
    """The claimant as the domain sees them; the token's `region` is their district."""
    return Citizen(identity.subject, identity.residency, identity.in_city, identity.region)


async def claim(
    container: Container,
    citizen: Citizen,
    type_id: str,
    key: str,
    stats: ClaimStats,
    admission: str | None = None,
    pass_round: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Decide one claim: 201 when issued, 200 with the code otherwise; the body of `ClaimOut`.

    A round behind a waiting room needs its admission token (`AdmissionRefused` otherwise).
    An identity read from a claim pass claims only in the pass's round (`PassRefused`).
    """
    campaign, engine = container.running()
    if pass_round is not None:
        check_pass_round(campaign, type_id, pass_round)
    now = container.clock.now()
    if container.waiting is not None:  # only campaigns with a waiting room pay for it
        container.waiting.admit(type_id, citizen.person_id, admission, now)
    request = ClaimRequest(citizen, type_id, key)
    answer = engine.answer_from_memory(request, now)
    if answer is None:
        answer = await _submitted(engine, request, now)
    if answer.code is ClaimCode.IDEMPOTENCY_CONFLICT:
        raise IdempotencyConflict(answer.reason)
    if answer.code is ClaimCode.UNKNOWN_TYPE:
        raise UnknownObject(answer.reason)
    stats.count(answer.code.value, now)
    voucher = None
    if answer.voucher is not None:
        vtype = campaign.voucher_type(answer.voucher.type_id)[1]
        voucher = voucher_body(answer.voucher, vtype, campaign.tz)
    body = claim_body(answer.code.value, answer.reason, answer.remaining, voucher)
    return (201 if answer.code is ClaimCode.ISSUED else 200), body


async def _submitted(engine: Engine, request: ClaimRequest, now: datetime) -> ClaimAnswer:
    """The engine's answer, once durable (an `issued` one comes after its write)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[ClaimAnswer | BaseException] = loop.create_future()
    loop_thread = threading.get_ident()

    def reply(answer: ClaimAnswer | BaseException) -> None:
        if threading.get_ident() == loop_thread:
            answered.set_result(answer)
        else:  # from the ledger's writer, after its commit
            loop.call_soon_threadsafe(answered.set_result, answer)

    engine.submit(request, now, reply)
    answer = await answered
    if isinstance(answer, BaseException):
        raise answer
    return answer


def claimant(
    container: Container, claim_pass: str | None, authorization: str | None, now: datetime
) -> tuple[Citizen, str | None]:
    """Who claims, and the round their claim pass binds them to (None: a bearer token).

    A claim pass, when sent, is the identity (an HMAC check); otherwise the bearer token is
    verified (an Ed25519 check the first time a token is seen)."""
    if claim_pass is not None:
        return pass_citizen(container.passes, claim_pass, now)
    identity = container.tokens.verify(authorization, now)
    return citizen_of(require_role(identity, Role.CITIZEN)), None


class ClaimFront:
    """ASGI middleware that serves `POST /v1/claims` itself and passes everything else on."""

    def __init__(
        self,
        app: Any,
        container: Container,
        limiter: RateLimiter,
        stats: ClaimStats,
        metrics: Metrics,
        admission: Admission,
    ) -> None:
        self.app = app
        self.container = container
        self.limiter = limiter
        self.stats = stats
        self.metrics = metrics
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/claims" and scope["method"] == "POST":
            body = await _read_body(receive)
            raw = {name.lower(): value for name, value in scope["headers"]}
            address = (scope.get("client") or ("unknown", 0))[0]
            status, payload, headers = await self.answer(partial(_header, raw), address, body)
            await _respond(send, status, payload, headers)
        else:
            await self.app(scope, receive, send)

    async def answer(
        self, header: Header, address: str, body: bytes | None
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """A claim's answer: status, JSON body, headers; whichever interface carried it.

        `header` reads a request header by its lowercase name; `body` is None when it was
        larger than `MAX_BODY_BYTES`."""
        started = time.perf_counter()
        status, out, headers = await self._claim(header, address, body, started)
        self.metrics.claim_answered(out.get("code", str(status)), time.perf_counter() - started)
        return status, orjson.dumps(out), headers or _JSON_ONLY

    async def _claim(
        self, header: Header, address: str, body: bytes | None, started: float
    ) -> Answer:
        now = self.container.clock.now()
        type_id, problem = _type_id(body)
        if problem is None and self._from_memory_here(type_id, now):
            # Answered from this process's memory without waiting on anything: it takes no
            # admission ticket, is never shed, and needs no rate limit (they protect the store
            # and the grab's fairness; this answer costs less than a 429 would).
            return await self._admitted(header, address, type_id, problem, now, limited=False)
        ticket = self.admission.enter(started)
        if isinstance(ticket, Shed):
            self.metrics.claim_shed(ticket.value)
            return _problem(
                429,
                "overloaded",
                "too many claims at once on this server; try again shortly",
                retry_after=self.admission.retry_after_s(),
            )
        try:
            return await self._admitted(header, address, type_id, problem, now, limited=True)
        finally:
            self.admission.leave(ticket)

    def _from_memory_here(self, type_id: str, now: datetime) -> bool:
        engine = self.container.engine
        return engine is not None and engine.answers_from_memory(type_id, now)

    async def _admitted(
        self,
        header: Header,
        address: str,
        type_id: str,
        problem: str | None,
        now: datetime,
        limited: bool,
    ) -> Answer:
        try:
            credentials = header("claim-pass"), header("authorization")
            citizen, pass_round = claimant(self.container, *credentials, now)
        except AuthError as error:
            return _problem(error.status, error.code, error.detail)
        key = header("idempotency-key") or ""
        if _KEY.fullmatch(key) is None:
            return _problem(
                422,
                "invalid_request",
                "header Idempotency-Key: 1 to 128 of A-Z a-z 0-9 _ . : -",
            )
        if problem is not None:
            code = "body_too_large" if problem is _TOO_LARGE else "invalid_request"
            return _problem(413 if problem is _TOO_LARGE else 422, code, problem)
        if limited:
            wait_s = self.limiter.check(citizen.person_id, address, now)
            if wait_s is not None:
                return _problem(
                    429, "rate_limited", "too many claims; try again shortly", retry_after=wait_s
                )
        try:
            admission = header("admission")
            status, out = await claim(
                self.container, citizen, type_id, key, self.stats, admission, pass_round
            )
        except AuthError as error:  # a pass for another round
            return _problem(error.status, error.code, error.detail)
        except XfqError as error:
            if isinstance(error, StorageUnavailable):
                self.metrics.unavailable.inc()
            return _refusal(error)
        return status, out, []


def _refusal(error: XfqError) -> Answer:
    """A claim the engine or the waiting room refused, as problem+json."""
    if isinstance(error, AdmissionRefused):
        return _problem(403, error.code, str(error))
    if isinstance(error, IdempotencyConflict):
        return _problem(422, error.code, str(error))
    if isinstance(error, UnknownObject):
        return _problem(404, error.code, str(error))
    if isinstance(error, StorageUnavailable):
        return _problem(503, error.code, str(error), retry_after=1)
    return _problem(409, error.code, str(error))  # e.g. no campaign loaded yet


def _header(headers: dict[bytes, bytes], name: str) -> str | None:
    value = headers.get(name.encode("latin-1"))
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Any) -> bytes | None:
    """The request's body, or None once it is larger than `MAX_BODY_BYTES`."""
    message = await receive()
    body: bytes = message.get("body", b"")
    more = message["type"] != "http.disconnect" and message.get("more_body", False)
    if len(body) > MAX_BODY_BYTES:
        return None
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > MAX_BODY_BYTES:
            return None
    return body


def _type_id(body: bytes | None) -> tuple[str, str | None]:
    if body is None:
        return "", _TOO_LARGE
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", "the body is not JSON"
    if not isinstance(data, dict) or set(data) != {"type_id"}:
        return "", 'the body must be {"type_id": "..."} and nothing else'
    type_id = data["type_id"]
    if not isinstance(type_id, str) or not 0 < len(type_id) <= 64:
        return "", "type_id: a string of 1 to 64 characters"
    return type_id, None


def _problem(status: int, code: str, detail: str, retry_after: float | None = None) -> Answer:
    body = {
        "type": f"https://xfq.invalid/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    headers = [("content-type", "application/problem+json")]
    if retry_after is not None:
        headers.append(("retry-after", str(max(1, round(retry_after)))))
    if status == 401:
        headers.append(("www-authenticate", "Bearer"))
    return status, body, headers


async def _respond(send: Any, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
