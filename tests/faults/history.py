"""Every request of a fault run: what was asked, each attempt's outcome, and what it came to.

An attempt's outcome is known (an answer with a code the client can act on) or unknown: the
client timed out, the connection failed, or the server answered 5xx, `idempotency_in_flight`,
or 429 (`overloaded`, `rate_limited`: "come back later", which says nothing of an earlier
attempt of the same key), after which the effect may or may not have happened. An operation
with an unknown last attempt is resolved after the run by retrying with the same idempotency
key and the same body.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

UNKNOWN = "unknown"
RETRYABLE_CODES = ("idempotency_in_flight", "overloaded", "rate_limited")


@dataclass(frozen=True)
class Attempt:
    status: int | None  # None: no answer (timeout, connection error)
    code: str  # the answer's `code`, or UNKNOWN
    body: dict[str, Any]
    error: str = ""

    @property
    def known(self) -> bool:
        if self.status is None or self.status >= 500:
            return False
        return self.code not in RETRYABLE_CODES


def attempt_of(status: int, raw: bytes) -> Attempt:
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code", status))
    return Attempt(status, code if status < 500 else f"{status}:{code}", body)


@dataclass
class Operation:
    """One logical request (one idempotency key): a claim, a redemption or a refund."""

    kind: str
    actor: str  # the person or merchant
    key: str
    path: str
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]

    def answers(self) -> list[Attempt]:
        return [a for a in self.attempts if a.known]


@dataclass
class History:
    operations: list[Operation] = field(default_factory=list)

    def add(self, operation: Operation) -> Operation:
        self.operations.append(operation)
        return operation

    def of_kind(self, kind: str) -> list[Operation]:
        return [op for op in self.operations if op.kind == kind]

    def unresolved(self) -> list[Operation]:
        return [op for op in self.operations if not op.last.known]

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, Any] = {}
        for kind in sorted({op.kind for op in self.operations}):
            ops = self.of_kind(kind)
            codes: Counter[str] = Counter(a.code for op in ops for a in op.attempts)
            hit = [op for op in ops if any(not a.known for a in op.attempts)]
            resolved_to = Counter(op.last.code for op in hit if op.last.known)
            why: Counter[str] = Counter(
                a.error or a.code for op in ops for a in op.attempts if not a.known
            )
            by_kind[kind] = {
                "operations": len(ops),
                "requests": sum(len(op.attempts) for op in ops),
                "outcomes_by_code": dict(sorted(codes.items())),
                "with_an_unknown_outcome": len(hit),
                "unknown_attempts_by_cause": dict(sorted(why.items())),
                "unknown_resolved_by_retry_to": dict(sorted(resolved_to.items())),
                "still_unknown": sum(1 for op in ops if not op.last.known),
            }
        return by_kind
