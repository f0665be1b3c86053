"""A campaign upload that fails leaves the ledger's campaign as it was: claims go on, the
campaign read back is the old one, and a restart on the same ledger runs the old campaign.

Before, the ledger took the new spec before the new engine started: an upload refused or
answered 503 was in the ledger all the same, and a restart ran it (or did not start at all).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLE, OPENING, Api, serving

from servers.redis_fixtures import (  # noqa: F401
    own_redis_server,
    redis_server,
    redis_server_session,
)
from servers.redis_servers import RedisServer
from xfq.adapters.clock import SimulatedClock
from xfq.config import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
TYPE = "r6-retail-180-40"
OLD_SPEC = EXAMPLE.read_text(encoding="utf-8")
OLD_NAME = "晋情消费·悦享生活"
NEW_NAME = "renamed by the upload"
NEW_SPEC = OLD_SPEC.replace(f'name = "{OLD_NAME}"', f'name = "{NEW_NAME}"', 1)
R6_OPENS = "opens_at = 2022-03-05T10:00:00"
assert NEW_SPEC != OLD_SPEC and OLD_SPEC.count(R6_OPENS) == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(tmp_path: Path, redis_url: str | None) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}", spec_path=EXAMPLE, redis_url=redis_url
    )


def _redis_url(on_redis: bool, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("redis_server").url if on_redis else None


async def _upload(api: Api, spec: str, key: str) -> httpx.Response:
    return await api.client.put("/v1/ops/campaign", json={"toml": spec}, headers=api.ops(key))


async def _name(api: Api) -> str:
    listed = await api.client.get("/v1/campaign")
    assert listed.status_code == 200, listed.text
    name: str = listed.json()["name"]
    return name


async def _runs_the_old_campaign(api: Api, person: str) -> None:
    claimed = await api.claim(person, TYPE)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["code"] == "issued"
    assert await _name(api) == OLD_NAME
    assert api.container.ledger.campaign_spec() == OLD_SPEC  # what `xfq` commands read


def _type_renamed(spec: str) -> str:
    """The type whose voucher was issued, renamed: an engine on it cannot count that voucher."""
    return spec.replace(f'id = "{TYPE}"', f'id = "{TYPE}-b"', 1)


def _with_waiting_room(spec: str) -> str:
    """A waiting room in round r6, which the Redis engine does not enforce."""
    room = "\n[rounds.waiting_room]\nopens_before_minutes = 10\nadmit_per_second = 100\n"
    at = spec.index("\n[rounds.limits]", spec.index('id = "r6"'))
    return spec[:at] + room + spec[at:]


@pytest.mark.parametrize(
    ("on_redis", "change", "status", "detail"),
    [
        # Before, the old engine also stayed closed: every claim a 503 until a restart.
        (False, _type_renamed, 404, f"no voucher type '{TYPE}'"),
        (True, _with_waiting_room, 409, "does not enforce waiting room (round r6)"),
    ],
    ids=["embedded-type-renamed", "redis-refuses-waiting-room"],
)
async def test_an_upload_the_new_engine_cannot_start_on_is_not_installed(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    on_redis: bool,
    change: Callable[[str], str],
    status: int,
    detail: str,
) -> None:
    settings = _settings(tmp_path, _redis_url(on_redis, request))
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    async with serving(settings, clock) as api:
        assert (await api.claim("before", TYPE)).status_code == 201
        refused = await _upload(api, change(NEW_SPEC), "upload-1")
        assert refused.status_code == status, refused.text
        assert detail in refused.json()["detail"]
        await _runs_the_old_campaign(api, "after")
    async with serving(settings, clock) as api:  # before, this restart did not start
        await _runs_the_old_campaign(api, "after-restart")


async def test_an_upload_while_redis_is_stopped_is_not_installed(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
) -> None:
    settings = _settings(tmp_path, own_redis_server.url)
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    async with serving(settings, clock) as api:
        assert (await api.claim("before", TYPE)).status_code == 201
        own_redis_server.kill()
        unavailable = await _upload(api, NEW_SPEC, "upload-1")
        assert unavailable.status_code == 503, unavailable.text
        assert api.container.ledger.campaign_spec() == OLD_SPEC
    own_redis_server.start()
    async with serving(settings, clock) as api:  # before, this ran the failed upload's spec
        await _runs_the_old_campaign(api, "after-restart")
        uploaded = await _upload(api, NEW_SPEC, "upload-2")  # the same upload, Redis back
        assert uploaded.status_code == 200, uploaded.text
        assert await _name(api) == NEW_NAME
        assert api.container.ledger.campaign_spec() == NEW_SPEC


@contextmanager
def _writes_held(ledger_db: Path) -> Iterator[None]:
    """Another connection holds the SQLite ledger's write lock: reads go on, a write fails
    (database is locked), as on a ledger that stops taking writes."""
    holder = sqlite3.connect(ledger_db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


@pytest.mark.parametrize("on_redis", [False, True], ids=["embedded", "redis"])
async def test_an_upload_the_ledger_cannot_take_leaves_the_old_engine_serving(
    tmp_path: Path, request: pytest.FixtureRequest, on_redis: bool
) -> None:
    """The spec is installed after the new engine started; when the install fails the new
    engine closes and the old one serves on: started again (embedded), or with its claim
    windows written back to Redis (the new engine had written the upload's there)."""
    settings = _settings(tmp_path, _redis_url(on_redis, request))
    clock = SimulatedClock(OPENING + timedelta(seconds=1))
    opens_later = NEW_SPEC.replace(R6_OPENS, "opens_at = 2022-03-05T11:00:00")
    async with serving(settings, clock) as api:
        assert (await api.claim("before", TYPE)).status_code == 201
        with _writes_held(tmp_path / "ledger.db"):
            unavailable = await _upload(api, opens_later, "upload-1")
        assert unavailable.status_code == 503, unavailable.text
        assert "database is locked" in unavailable.json()["detail"]
        await _runs_the_old_campaign(api, "after")
