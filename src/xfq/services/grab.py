"""Claiming a voucher at the grab."""

from __future__ import annotations

from concurrent.futures import Future

from xfq.ports import ClaimAnswer, ClaimEngine, ClaimRequest, Clock, Reply


def submit_claim(engine: ClaimEngine, clock: Clock, request: ClaimRequest) -> Future[ClaimAnswer]:
    """Decide now; the future resolves when the answer is durable (for many claims in flight)."""
    future: Future[ClaimAnswer] = Future()

    def reply(answer: ClaimAnswer | BaseException) -> None:
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    engine.submit(request, clock.now(), reply)
    return future


def send_claim(engine: ClaimEngine, clock: Clock, request: ClaimRequest, reply: Reply) -> None:
    """Decide now and call `reply` with the durable answer (no per-claim future)."""
    engine.submit(request, clock.now(), reply)


def claim(engine: ClaimEngine, clock: Clock, request: ClaimRequest) -> ClaimAnswer:
    return submit_claim(engine, clock, request).result()
