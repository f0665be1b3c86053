"""A campaign upload on the Redis claim engine changes Redis's stock as it says, exactly once,
or is refused (409) and changes nothing; and every worker on the same Redis and ledger runs it
within a few seconds.

Before, an upload onto a loaded Redis rewrote only the rounds: a raised count, a new type or a
removed type answered 200 while Redis kept the old stock (a new type answered 503 `not loaded`),
and the other workers kept their old campaign until they restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import Api, persisted, serving
from typer.testing import CliRunner

from servers.redis_fixtures import redis_server, redis_server_session  # noqa: F401
from servers.redis_servers import RedisServer
from spec_text import campaign, round_, voucher_type
from xfq.adapters.clock import SimulatedClock
from xfq.adapters.redis.engine import RedisClaimEngine
from xfq.adapters.redis.upload_lock import HOLD_S, lock_key
from xfq.cli import app
from xfq.config import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
OPENING = datetime(2022, 3, 5, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
RETAIL, HOME, NEW = "r1-retail-30-6", "r1-home-500-80", "r1-home-2000-300"


def spec(retail: int = 3, home: int | None = 2, new: int | None = None) -> str:
    text = campaign("upload-redis", "Upload on Redis") + round_()
    text += voucher_type(RETAIL, 30, 6, retail)
    if home is not None:
        text += voucher_type(HOME, 500, 80, home)
    if new is not None:
        text += voucher_type(NEW, 2000, 300, new)
    return text


OLD = spec()


def _settings(tmp_path: Path, redis: RedisServer, persister: bool = True) -> Settings:
    spec_path = tmp_path / "campaign.toml"
    spec_path.write_text(OLD, encoding="utf-8")
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        spec_path=spec_path,
        redis_url=redis.url,
        redis_persister=persister,
        claim_burst_per_address=100_000,
    )


async def _upload(api: Api, text: str, key: str) -> httpx.Response:
    return await api.client.put("/v1/ops/campaign", json={"toml": text}, headers=api.ops(key))


async def _codes(api: Api, type_id: str, people: list[str]) -> Counter[str]:
    codes: Counter[str] = Counter()
    for person in people:
        answer = await api.claim(person, type_id)
        codes[answer.json().get("code", str(answer.status_code))] += 1
    return codes


def _engine(api: Api) -> RedisClaimEngine:
    engine = api.container.running()[1]
    assert isinstance(engine, RedisClaimEngine)
    return engine


def _reconciled(settings: Settings) -> None:
    assert settings.redis_url is not None
    cli = ["reconcile", settings.database_url, "--redis", settings.redis_url]
    done = CliRunner().invoke(app, cli)
    assert done.exit_code == 0, done.output


async def test_counts_raised_lowered_and_a_new_type_are_claimable_exactly_once(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    settings = _settings(tmp_path, redis_server)
    async with serving(settings, SimulatedClock(OPENING + timedelta(seconds=1))) as api:
        assert await _codes(api, RETAIL, ["a", "b"]) == {"issued": 2}
        raised = spec(retail=5, home=1, new=2)  # home: one of its two unclaimed taken back
        for key in ("upload-1", "upload-2"):  # the same upload twice adds once
            uploaded = await _upload(api, raised, key)
            assert uploaded.status_code == 200, uploaded.text
        remaining = {t["id"]: t["remaining"] for t in uploaded.json()["rounds"][0]["types"]}
        assert remaining == {RETAIL: 3, HOME: 1, NEW: 2}

        people = [f"p{n}" for n in range(5)]
        assert await _codes(api, RETAIL, people) == {"issued": 3, "sold_out": 2}
        assert await _codes(api, NEW, people) == {"issued": 2, "sold_out": 3}
        assert await _codes(api, HOME, people) == {"issued": 1, "sold_out": 4}
        assert _engine(api).stock() == {RETAIL: 0, HOME: 0, NEW: 0}
        assert persisted(api, 8) == 8
        assert api.container.ledger.campaign_spec() == raised
    _reconciled(settings)
    async with serving(settings, SimulatedClock(OPENING + timedelta(seconds=2))) as api:
        assert _engine(api).stock() == {RETAIL: 0, HOME: 0, NEW: 0}  # a restart adds nothing
    _reconciled(settings)


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (spec(home=None), f"voucher type {HOME} cannot be removed"),
        (spec(retail=1), f"count of {RETAIL} cannot be lowered from 3 to 1"),
    ],
    ids=["type-removed", "count-lowered-below-claimed"],
)
async def test_a_change_redis_cannot_make_is_refused_and_changes_nothing(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
    changed: str,
    named: str,
) -> None:
    settings = _settings(tmp_path, redis_server)
    async with serving(settings, SimulatedClock(OPENING + timedelta(seconds=1))) as api:
        assert await _codes(api, RETAIL, ["a", "b"]) == {"issued": 2}
        refused = await _upload(api, changed, "upload-1")
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert named in refused.json()["detail"]
        assert api.container.ledger.campaign_spec() == OLD
        assert _engine(api).stock() == {RETAIL: 1, HOME: 2}
        assert await _codes(api, RETAIL, ["c", "d"]) == {"issued": 1, "sold_out": 1}
        assert await _codes(api, HOME, ["c"]) == {"issued": 1}
        assert persisted(api, 4) == 4
    _reconciled(settings)


async def test_an_upload_through_one_worker_is_in_force_in_another(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Two workers (containers) on one Redis and ledger: the one the upload did not reach had
    learnt that retail sold out, and knew no `NEW` type; within seconds it issues both."""
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    first = _settings(tmp_path, redis_server)
    other = first.model_copy(update={"redis_persister": False})
    async with serving(first, clock) as a, serving(other, clock) as b:
        assert await _codes(b, RETAIL, ["a", "b", "c", "d"]) == {"issued": 3, "sold_out": 1}
        assert _engine(b).wait_sold_out(RETAIL, 10)  # b answers retail from memory now
        assert (await b.claim("x", NEW)).status_code == 404
        uploaded = await _upload(a, spec(retail=5, new=2), "upload-1")
        assert uploaded.status_code == 200, uploaded.text

        deadline = time.monotonic() + 15
        codes: Counter[str] = Counter()
        while time.monotonic() < deadline and not codes["issued"]:
            answer = await b.claim(f"e{sum(codes.values())}", NEW)
            codes[answer.json().get("code", str(answer.status_code))] += 1
            await asyncio.sleep(0.1)
        assert codes["issued"] == 1, codes
        assert await _codes(b, RETAIL, ["d", "e", "f"]) == {"issued": 2, "sold_out": 1}
        assert await _codes(b, NEW, ["f", "g"]) == {"issued": 1, "sold_out": 1}
        assert b.container.running()[0].voucher_type(NEW)[1].count == 2
        assert persisted(a, 7) == 7
    _reconciled(first)


async def test_an_upload_while_another_worker_installs_one_is_refused_and_changes_nothing(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Two uploads at once through different workers could interleave their writes to Redis
    and the ledger: the second is told to send again, and is taken once the first is done."""
    settings = _settings(tmp_path, redis_server)
    async with serving(settings, SimulatedClock(OPENING + timedelta(seconds=1))) as api:
        redis = _engine(api).redis
        key = lock_key("upload-redis")
        assert redis.set(key, "another worker's upload", nx=True, ex=HOLD_S)
        raised = spec(retail=5)
        refused = await _upload(api, raised, "upload-1")
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "upload_under_way"
        assert api.container.ledger.campaign_spec() == OLD
        assert _engine(api).stock() == {RETAIL: 3, HOME: 2}
        assert 0 < redis.ttl(key) <= HOLD_S  # a worker killed mid-upload holds it no longer

        redis.delete(key)  # the other upload is done
        again = await _upload(api, raised, "upload-1")  # the same key: the refusal was not kept
        assert again.status_code == 200, again.text
        assert _engine(api).stock() == {RETAIL: 5, HOME: 2}
        assert redis.get(key) is None  # released by its holder
