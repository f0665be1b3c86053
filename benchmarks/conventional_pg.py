"""The conventional design, as the benchmark's point of comparison: one PostgreSQL transaction
per claim, over HTTP.

Each `POST /v1/claims` (body `{"type_id": "..."}`, same as xfq) runs, in one transaction:
  1. `pg_advisory_xact_lock` on the person (two requests of one person cannot both pass step 2),
  2. the person's counts by type, category and round, and an earlier claim with the same key,
  3. `UPDATE stock SET remaining = remaining - 1 WHERE type_id = $1 AND remaining > 0`,
  4. `INSERT` of the voucher,
then COMMIT (synchronous_commit=on). It answers xfq's codes and statuses: 201 `issued`, 200
`sold_out` or `limit_reached`, 404 for an unknown type.

What it leaves out, in its favour: the person is the `X-Person-Id` header or the `sub` of the
bearer token read WITHOUT verifying its signature, and no claim window or eligibility is checked.
It measures the store path, not authentication.

    python benchmarks/conventional_pg.py setup URL [--spec FILE]   # tables + full stock
    python benchmarks/conventional_pg.py serve URL [--workers 2] [--port 8001] [--pool 8]
    python benchmarks/conventional_pg.py check URL [--spec FILE]   # oversold? limits breached?
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from xfq.domain.campaign import Campaign
from xfq.spec import load_campaign

EXAMPLE = Path(__file__).parents[1] / "examples" / "taiyuan-2022" / "campaign.toml"
URL_ENV, SPEC_ENV, POOL_ENV = "XFQ_CONV_DATABASE_URL", "XFQ_CONV_SPEC", "XFQ_CONV_POOL"
# Per worker. perf-limits.md: the hot stock row is limited by its lock, and more clients than
# ~16 in all make it worse; 2 workers x 8.
DEFAULT_POOL = 8
MAX_BODY_BYTES = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS conv_stock (
  type_id text PRIMARY KEY,
  remaining integer NOT NULL CHECK (remaining >= 0)
);
CREATE TABLE IF NOT EXISTS conv_vouchers (
  id bigserial PRIMARY KEY,
  type_id text NOT NULL REFERENCES conv_stock (type_id),
  category text NOT NULL,
  round_id text NOT NULL,
  person_id text NOT NULL,
  claim_key text NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (person_id, claim_key)
);
"""

LOCK_PERSON = "SELECT pg_advisory_xact_lock(hashtextextended(%(person)s, 0))"
COUNTS = """
SELECT count(*) FILTER (WHERE type_id = %(type_id)s),
       count(*) FILTER (WHERE category = %(category)s AND round_id = %(round_id)s),
       count(*) FILTER (WHERE round_id = %(round_id)s),
       max(id) FILTER (WHERE claim_key = %(key)s)
FROM conv_vouchers WHERE person_id = %(person)s
"""
TAKE = """UPDATE conv_stock SET remaining = remaining - 1
WHERE type_id = %(type_id)s AND remaining > 0 RETURNING remaining"""
INSERT = """INSERT INTO conv_vouchers (type_id, category, round_id, person_id, claim_key)
VALUES (%(type_id)s, %(category)s, %(round_id)s, %(person)s, %(key)s) RETURNING id"""


class Limits:
    """Per voucher type: its category, round and the per-person limits that apply."""

    def __init__(self, campaign: Campaign) -> None:
        self.types: dict[str, tuple[str, str, int, int | None, int | None]] = {
            t.id: (t.category, r.id, t.per_person, r.limits.per_category, r.limits.per_round)
            for r in campaign.rounds
            for t in r.types
        }


async def decide(
    pool: AsyncConnectionPool[Any], limits: Limits, person: str, type_id: str, key: str
) -> tuple[int, dict[str, Any]]:
    category, round_id, per_type, per_category, per_round = limits.types[type_id]
    params = {
        "person": person,
        "type_id": type_id,
        "category": category,
        "round_id": round_id,
        "key": key,
    }
    async with pool.connection() as connection:  # commits on leaving, unless rolled back
        await connection.execute(LOCK_PERSON, params)
        counts = await (await connection.execute(COUNTS, params)).fetchone()
        assert counts is not None
        of_type, of_category, of_round, earlier = counts
        if earlier is not None:  # a retry: the same answer, no second voucher
            return 201, {"code": "issued", "voucher": {"id": str(earlier)}}
        if (
            of_type >= per_type
            or (per_category is not None and of_category >= per_category)
            or (per_round is not None and of_round >= per_round)
        ):
            await connection.rollback()
            return 200, {"code": "limit_reached"}
        taken = await (await connection.execute(TAKE, params)).fetchone()
        if taken is None:
            await connection.rollback()
            return 200, {"code": "sold_out", "remaining": 0}
        made = await (await connection.execute(INSERT, params)).fetchone()
        assert made is not None
        return 201, {"code": "issued", "remaining": taken[0], "voucher": {"id": str(made[0])}}


def person_of(headers: dict[bytes, bytes]) -> str | None:
    if b"x-person-id" in headers:
        return headers[b"x-person-id"].decode("latin-1")
    auth = headers.get(b"authorization", b"")
    if not auth.startswith(b"Bearer "):
        return None
    try:  # not verified: the baseline measures the store, not authentication
        payload = auth[7:].split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        subject = claims.get("sub")
    except (IndexError, ValueError):
        return None
    return subject if isinstance(subject, str) else None


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class ConventionalApp:
    """A bare ASGI app (no framework) so that the comparison is about the store."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[Any] | None = None
        self.limits: Limits | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] != "/v1/claims" or scope["method"] != "POST":
            await respond(send, 404, {"code": "not_found"})
            return
        await respond(send, *await self._claim(scope, receive))

    async def _claim(self, scope: dict[str, Any], receive: Receive) -> tuple[int, dict[str, Any]]:
        assert self.pool is not None and self.limits is not None
        headers = dict(scope["headers"])
        person = person_of(headers)
        if person is None:
            return 401, {"code": "unauthorized"}
        key = headers.get(b"idempotency-key", b"").decode("latin-1")
        body = await read_body(receive)
        try:
            type_id = json.loads(body)["type_id"]
        except (ValueError, KeyError, TypeError):
            return 422, {"code": "invalid_request"}
        if not isinstance(type_id, str) or type_id not in self.limits.types:
            return 404, {"code": "unknown_object"}
        if not 0 < len(key) <= 128:
            return 422, {"code": "invalid_request", "detail": "Idempotency-Key"}
        try:
            return await decide(self.pool, self.limits, person, type_id, key)
        except psycopg.Error as error:
            return 503, {"code": "storage_unavailable", "detail": str(error)}

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                size = int(os.environ.get(POOL_ENV, DEFAULT_POOL))
                self.limits = Limits(load_campaign(Path(os.environ.get(SPEC_ENV, EXAMPLE))))
                self.pool = AsyncConnectionPool(
                    os.environ[URL_ENV],
                    min_size=size,
                    max_size=size,
                    kwargs={"options": "-c synchronous_commit=on"},
                    open=False,
                )
                await self.pool.open(wait=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def read_body(receive: Receive) -> bytes:
    body, more = b"", True
    while more and len(body) <= MAX_BODY_BYTES:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


app = ConventionalApp()


def setup(url: str, campaign: Campaign) -> None:
    """Create the tables and put the whole stock back (earlier vouchers are deleted)."""
    with psycopg.connect(url) as connection:
        connection.execute(SCHEMA.encode())
        connection.execute(b"TRUNCATE conv_vouchers, conv_stock")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO conv_stock (type_id, remaining) VALUES (%s, %s)",
                [(t.id, t.count) for r in campaign.rounds for t in r.types],
            )


def check(url: str, campaign: Campaign) -> list[str]:
    """What is wrong in the ledger: types oversold, people over a limit (empty: nothing)."""
    limits = Limits(campaign)
    problems = []
    with psycopg.connect(url) as connection:
        for type_id, issued, remaining in connection.execute(
            "SELECT s.type_id, count(v.id), s.remaining FROM conv_stock s"
            " LEFT JOIN conv_vouchers v ON v.type_id = s.type_id GROUP BY s.type_id"
        ):
            count = campaign.voucher_type(type_id)[1].count
            if issued > count or issued + remaining != count:
                problems.append(f"{type_id}: {issued} issued + {remaining} left, count {count}")
        for person, type_id, n in connection.execute(
            "SELECT person_id, type_id, count(*) FROM conv_vouchers"
            " GROUP BY person_id, type_id HAVING count(*) > 1"
        ):
            if n > limits.types[type_id][2]:
                problems.append(f"{person} holds {n} of {type_id}")
        for person, round_id, n in connection.execute(
            "SELECT person_id, round_id, count(*) FROM conv_vouchers GROUP BY person_id, round_id"
        ):
            per_round = campaign.round(round_id).limits.per_round
            if per_round is not None and n > per_round:
                problems.append(f"{person} holds {n} in {round_id}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup", "serve", "check"])
    parser.add_argument("url", help="postgresql:// URL")
    parser.add_argument("--spec", type=Path, default=EXAMPLE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--pool", type=int, default=DEFAULT_POOL, help="connections per worker")
    args = parser.parse_args()
    campaign = load_campaign(args.spec)
    if args.command == "setup":
        setup(args.url, campaign)
    elif args.command == "check":
        problems = check(args.url, campaign)
        print("\n".join(problems) or "nothing oversold, no limit breached")
        sys.exit(1 if problems else 0)
    else:
        import uvicorn

        os.environ.update({URL_ENV: args.url, SPEC_ENV: str(args.spec), POOL_ENV: str(args.pool)})
        uvicorn.run(
            "conventional_pg:app",
            app_dir=str(Path(__file__).parent),
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            log_level="warning",
        )


if __name__ == "__main__":
    main()
