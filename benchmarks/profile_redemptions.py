"""Where one process spends its time on the redemption path: the ASGI app called in process.

    .venv/bin/python benchmarks/profile_redemptions.py [--redemptions 12000] [--merchants 16]
        [--ledger sqlite|postgres] [--top 25] [--no-profile]

Builds the app as `xfq serve` does (the bench campaign, a clock standing at its opening, the
embedded engine on SQLite, or on a throwaway PostgreSQL as the ledger), sets it up through its
own API as redemptions.py does (merchants enrolled and approved, one voucher claimed per
citizen, a signed redemption per voucher), then sends the redemptions straight to the ASGI
callable, 64 at a time. Half are timed without the profiler: the rate, the CPU of this process
(all threads) per redemption, and how busy the ledger's writer thread was (its batches, their
sizes, its wall and CPU time per redemption). The other half is profiled with cProfile (the
event loop's thread only: the writer and the signature checks run on threads of their own).
No HTTP server and no load generator share the process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from claims import OPENS_AT, SPEC
from harness import ROOT, issuers_env, tokens_file
from redemptions import PATH, TILL_KEY, TOKENS, claim_all, enroll, signed

from xfq.adapters.sql.group_commit import GroupCommitWriter
from xfq.api.app import create_app
from xfq.bootstrap import Container, build
from xfq.config import IssuerSetting, Settings
from xfq.simulation.http_client import Reply

CONCURRENT = 64


class AppClient:
    """The set-up's requests, sent to the app in process (the `Client` of redemptions.py)."""

    def __init__(self, app: Any) -> None:
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> Reply:
        answer = await self._client.request(method, path, headers=headers, json=body)
        return Reply(answer.status_code, answer.content)


def _container(workdir: Path, ledger_url: str) -> Container:
    settings = Settings(
        database_url=ledger_url,
        spec_path=SPEC,
        issuers=[IssuerSetting(**i) for i in json.loads(issuers_env())],
        simulated_start=OPENS_AT,
        till_code_key=TILL_KEY,
        claim_rate_per_address_per_s=1e9,
        claim_burst_per_address=1_000_000_000,
        claim_max_in_flight=100_000,  # the set-up's claims, all at once in process
        claim_max_wait_ms=60_000.0,
    )
    return build(settings)


async def _set_up(app: Any, people: int, merchants: int) -> list[list[str]]:
    with tokens_file(TOKENS).open(encoding="ascii") as lines:
        bearer = [next(lines).strip() for _ in range(people)]
    operator = tokens_file(1, "operator").read_text(encoding="ascii").strip()
    client = AppClient(app)
    tills = await enroll(client, operator, merchants)
    return signed(tills, await claim_all(client, bearer))


async def _one(app: Any, fields: list[str], codes: dict[int, int]) -> None:
    key_id, timestamp, nonce, signature, idempotency_key, body = fields
    raw = body.encode()
    scope = {
        "type": "http", "method": "POST", "path": PATH, "raw_path": PATH.encode(),
        "query_string": b"", "client": ("127.0.0.1", 1),
        "headers": [(b"x-xfq-key", key_id.encode()), (b"x-xfq-timestamp", timestamp.encode()),
                    (b"x-xfq-nonce", nonce.encode()), (b"x-xfq-signature", signature.encode()),
                    (b"idempotency-key", idempotency_key.encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": raw}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            codes[message["status"]] = codes.get(message["status"], 0) + 1

    await app(scope, receive, send)


async def _drive(app: Any, requests: list[list[str]]) -> dict[int, int]:
    codes: dict[int, int] = {}
    for start in range(0, len(requests), CONCURRENT):
        await asyncio.gather(*(_one(app, r, codes) for r in requests[start : start + CONCURRENT]))
    return codes


@dataclass
class WriterTime:
    """The ledger writer's batches while it is watched: count, units, wall and CPU seconds."""

    batches: int = 0
    units: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    sizes: list[int] = field(default_factory=list)


@contextmanager
def watched_writer() -> Iterator[WriterTime]:
    seen = WriterTime()
    original: Callable[..., Any] = GroupCommitWriter._commit

    def commit(self: GroupCommitWriter, connection: Any, batch: list[Any]) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, connection, batch)
        finally:
            seen.wall_s += time.perf_counter() - wall
            seen.cpu_s += time.thread_time() - cpu
            seen.batches += 1
            seen.units += len(batch)
            seen.sizes.append(len(batch))

    GroupCommitWriter._commit = commit  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        GroupCommitWriter._commit = original  # type: ignore[method-assign]


def _report(codes: dict[int, int], wall_s: float, cpu_s: float, writer: WriterTime) -> None:
    done = sum(codes.values())
    sizes = sorted(writer.sizes) or [0]
    print(
        f"{done:,} redemptions {codes} in {wall_s:.2f} s: {done / wall_s:,.0f}/s in process; "
        f"{cpu_s / done * 1e6:.0f} µs CPU each (this process, all threads, no profiler)\n"
        f"ledger writer: {writer.batches:,} batches (median {sizes[len(sizes) // 2]}, max "
        f"{sizes[-1]} units), busy {writer.wall_s / wall_s:.0%} of the time; per redemption "
        f"{writer.wall_s / max(1, writer.units) * 1e6:.0f} µs wall, "
        f"{writer.cpu_s / max(1, writer.units) * 1e6:.0f} µs CPU of its thread"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redemptions", type=int, default=12_000)
    parser.add_argument("--merchants", type=int, default=16)
    parser.add_argument("--ledger", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="only the timed half")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xfq-profile-") as tmp, ExitStack() as stack:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        if args.ledger == "postgres":
            sys.path.insert(0, str(ROOT / "tests"))
            from servers.postgres_server import PostgresServer

            url = stack.enter_context(PostgresServer()).url()
        container = _container(Path(tmp), url)
        stack.callback(container.close)
        app = create_app(container)
        requests = asyncio.run(_set_up(app, args.redemptions, args.merchants))
        warm, half = CONCURRENT * 4, (len(requests) + CONCURRENT * 4) // 2
        asyncio.run(_drive(app, requests[:warm]))
        with watched_writer() as writer:
            wall, cpu = time.perf_counter(), time.process_time()
            codes = asyncio.run(_drive(app, requests[warm:half]))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{args.ledger} ledger, {threading.active_count()} threads")
        _report(codes, wall, cpu, writer)
        if args.no_profile:
            return
        profile = cProfile.Profile()
        profile.enable()
        asyncio.run(_drive(app, requests[half:]))
        profile.disable()
    stats = pstats.Stats(profile).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
