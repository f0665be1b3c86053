"""Claim metrics gathered in the process and flushed to prometheus_client: the same exposition
as observing each claim at once, at most `FLUSH_S` late."""

from __future__ import annotations

import asyncio
import re
import sys
import threading

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from xfq.api.observability import FLUSH_S, LATENCY_BUCKETS, Metrics

CLAIMS = 20_000
LATENCIES = [0.0001, 0.0005, 0.0007, 0.001, 0.004, 0.01, 0.3, 2.5, 7.0, 0.0]


def _samples(text: str, prefix: str) -> dict[str, float]:
    found = re.findall(rf"^({prefix}\S*) (\S+)$", text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def test_flushed_buckets_and_sum_equal_one_observe_per_claim() -> None:
    reference = CollectorRegistry()
    histogram = Histogram("xfq_claim_seconds", "", buckets=LATENCY_BUCKETS, registry=reference)
    metrics = Metrics()
    for seconds in LATENCIES:  # on no loop: each is flushed at once
        histogram.observe(seconds)
        metrics.claim_answered("issued", seconds)
    expected = _samples(
        generate_latest(reference).decode(), "xfq_claim_seconds_(?:bucket|count|sum)"
    )
    got = _samples(metrics.exposition().decode(), "xfq_claim_seconds_(?:bucket|count|sum)")
    assert got == expected
    assert got['xfq_claim_seconds_bucket{le="0.001"}'] == 5  # bounds are inclusive
    assert got["xfq_claim_seconds_count"] == len(LATENCIES)


def test_counts_wait_on_the_loop_then_reach_prometheus() -> None:
    metrics = Metrics()

    def issued() -> float:
        text = generate_latest(metrics.registry).decode()  # what another process would read
        return _samples(text, "xfq_claims_total").get('xfq_claims_total{code="issued"}', 0.0)

    async def answer_claims() -> tuple[float, float]:
        for _ in range(3):
            metrics.claim_answered("issued", 0.002)
        before = issued()
        await asyncio.sleep(FLUSH_S + 0.2)
        return before, issued()

    before, after = asyncio.run(answer_claims())
    assert before == 0  # gathered, not yet handed over
    assert after == 3


def test_a_scrape_flushing_from_another_thread_loses_and_doubles_nothing() -> None:
    metrics = Metrics()
    stop = threading.Event()

    def scrape_again_and_again() -> None:  # /metrics runs in a thread of the route's pool
        while not stop.is_set():
            metrics.flush()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    scraper = threading.Thread(target=scrape_again_and_again)
    scraper.start()
    try:
        for _ in range(CLAIMS):  # on no loop: each also flushes at once, from this thread
            metrics.claim_answered("issued", 0.002)
    finally:
        stop.set()
        scraper.join()
        sys.setswitchinterval(switch)
    text = metrics.exposition().decode()
    assert _samples(text, "xfq_claims_total")['xfq_claims_total{code="issued"}'] == CLAIMS
    assert _samples(text, "xfq_claim_seconds_count")["xfq_claim_seconds_count"] == CLAIMS
