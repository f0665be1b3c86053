"""Where one process spends its CPU on the claim path: cProfile of the ASGI app, no HTTP server.

    .venv/bin/python benchmarks/profile_claims.py [--claims 20000] [--credential pass|bearer]
        [--engine redis|embedded] [--type plenty|one] [--interface asgi|rsgi] [--top 25]
        [--no-profile]

Builds the app as `xfq serve` does (the bench campaign, a simulated clock at its opening, the
Redis engine on a throwaway redis-server with appendfsync always and the persister thread, or
the embedded engine on SQLite), then sends `--claims` new people's claims straight to the ASGI
callable, 64 at a time (of `plenty`: issued; of `one`, a type of one voucher: sold out), each
with a claim pass made for them beforehand or a bearer token of their own. Half of them are
timed without the profiler (CPU µs per claim of this process, all threads), the other half
profiled: the functions costing most, by own time, then cumulative. No HTTP server and no load
generator share the process: what is left is the app's own cost. `--interface rsgi` calls the
app as `xfq serve --workers N` serves it (`xfq.api.rsgi.RsgiApp`, granian's RSGI interface),
with plain Python objects in place of granian's scope and protocol.

CPU times vary by a third on a busy machine; instruction counts do not. To count them:

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python \
        benchmarks/profile_claims.py --type one --claims 3000 --no-profile --callgrind
    callgrind_annotate callgrind.out.<pid> | grep TOTALS    # ÷ the claims timed
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hello_asgi
import hello_rsgi
from harness import issuers_env, redis_server, tokens_file

from xfq.api.app import create_app
from xfq.api.rsgi import RsgiApp
from xfq.bootstrap import Container, build
from xfq.config import IssuerSetting, Settings
from xfq.domain.claim_pass import issue_pass
from xfq.domain.eligibility import Citizen, Residency

HERE = Path(__file__).resolve().parent
SPEC = HERE / "bench-campaign.toml"
OPENS_AT = "2022-03-05T10:00:00+08:00"
CONCURRENT = 64


def _container(workdir: Path, redis_url: str | None, persister: bool) -> Container:
    issuers = [IssuerSetting(**i) for i in json.loads(issuers_env())]
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'ledger.db'}",
        spec_path=SPEC,
        issuers=issuers,
        simulated_start=OPENS_AT,
        redis_url=redis_url,
        redis_persister=persister,
        claim_rate_per_address_per_s=1e9,
        claim_burst_per_address=1_000_000_000,
    )
    return build(settings)


def _credentials(container: Container, credential: str, count: int) -> list[tuple[bytes, bytes]]:
    if credential == "bearer":
        with tokens_file(count).open(encoding="ascii") as lines:
            return [
                (b"authorization", f"Bearer {next(lines).strip()}".encode()) for _ in range(count)
            ]
    expires_at = container.clock.now().replace(year=2030)
    return [
        (b"claim-pass", issue_pass(container.passes, "b1", _citizen(i), expires_at).encode())
        for i in range(count)
    ]


def _citizen(i: int) -> Citizen:
    return Citizen(f"b{i:08d}", Residency.PERMANENT, True)


async def _one(
    app: Any, credential: tuple[bytes, bytes], key: str, claim: bytes, codes: dict[int, int]
) -> None:
    body = [{"type": "http.request", "body": claim}]
    scope = {
        "type": "http", "method": "POST", "path": "/v1/claims", "client": ("127.0.0.1", 1),
        "headers": [credential, (b"idempotency-key", key.encode()),
                    (b"content-type", b"application/json")],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return body.pop()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            codes[message["status"]] = codes.get(message["status"], 0) + 1

    await app(scope, receive, send)


@dataclass
class _RsgiScope:
    """What `RsgiApp` reads of granian's scope."""

    headers: dict[str, str]
    proto: str = "http"
    method: str = "POST"
    path: str = "/v1/claims"
    client: str = "127.0.0.1:1"


class _RsgiProtocol:
    """What `RsgiApp` calls of granian's protocol: the body in one await, the answer whole."""

    def __init__(self, body: bytes, codes: dict[int, int]) -> None:
        self._body, self._codes = body, codes

    async def __call__(self) -> bytes:
        return self._body

    def response_bytes(self, status: int, _headers: list[tuple[str, str]], _body: bytes) -> None:
        self._codes[status] = self._codes.get(status, 0) + 1


class _Hello:
    __rsgi__ = staticmethod(hello_rsgi.app)


async def _one_rsgi(
    app: RsgiApp | _Hello,
    credential: tuple[bytes, bytes],
    key: str,
    claim: bytes,
    codes: dict[int, int],
) -> None:
    headers = {credential[0].decode(): credential[1].decode(), "idempotency-key": key,
               "content-type": "application/json", "content-length": str(len(claim))}  # fmt: skip
    await app.__rsgi__(_RsgiScope(headers), _RsgiProtocol(claim, codes))  # type: ignore[arg-type]


async def _drive(
    app: Any, credentials: list[tuple[bytes, bytes]], type_id: str, interface: str
) -> dict[int, int]:
    codes: dict[int, int] = {}
    claim = json.dumps({"type_id": type_id}).encode()
    one = _one_rsgi if interface == "rsgi" else _one
    for start in range(0, len(credentials), CONCURRENT):
        batch = credentials[start : start + CONCURRENT]
        await asyncio.gather(
            *(one(app, c, f"k{start + n}", claim, codes) for n, c in enumerate(batch))
        )
    return codes


def _callgrind(on: bool, state: str) -> None:
    """Instruction counts are the same on a busy machine, where CPU times vary by a third."""
    if on:
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--credential", choices=("pass", "bearer"), default="pass")
    parser.add_argument("--engine", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--type", choices=("plenty", "one"), default="plenty")
    parser.add_argument("--interface", choices=("asgi", "rsgi"), default="asgi")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--floor", action="store_true", help="the hello-world as the app: the driver's own cost"
    )
    parser.add_argument(
        "--no-persister", action="store_true", help="without the thread moving claims to the ledger"
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="only the timed half (e.g. under `perf stat`)"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under `valgrind --tool=callgrind --instr-atstart=no`: count the timed half only",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xfq-profile-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        url = None
        if args.engine == "redis":
            url = stack.enter_context(redis_server(workdir))[1]
        container = _container(workdir, url, not args.no_persister)
        stack.callback(container.close)
        app: Any = create_app(container)
        if args.interface == "rsgi":
            app = RsgiApp(app, container.close)
        if args.floor:
            app = _Hello() if args.interface == "rsgi" else hello_asgi.app
        credentials = _credentials(container, args.credential, args.claims)
        warm, half = CONCURRENT * 4, (len(credentials) + CONCURRENT * 4) // 2
        # connect, load the scripts
        asyncio.run(_drive(app, credentials[:warm], args.type, args.interface))
        _callgrind(args.callgrind, "on")
        cpu = time.process_time()
        codes = asyncio.run(_drive(app, credentials[warm:half], args.type, args.interface))
        cpu = time.process_time() - cpu
        _callgrind(args.callgrind, "off")
        profile = cProfile.Profile()
        if not args.no_profile:
            profile.enable()
            asyncio.run(_drive(app, credentials[half:], args.type, args.interface))
            profile.disable()
    done = sum(codes.values())
    persister = "" if args.no_persister or args.engine != "redis" else " + persister thread"
    print(f"{args.interface}, {args.credential}, {args.engine}{persister}, {args.type}: "
          f"{done:,} claims {codes}, {cpu:.2f} s CPU of this "
          f"process: {cpu / done * 1e6:.0f} µs per claim (no profiler)")  # fmt: skip
    if args.no_profile:
        return
    stats = pstats.Stats(profile).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
