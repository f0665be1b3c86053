"""The API while its PostgreSQL ledger restarts: clear 503 answers with Retry-After, never a 500,
nothing half-done; once the server is back the same requests succeed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import OPENING, Api

from servers.postgres_fixtures import fresh_postgres_url
from servers.postgres_server import PostgresServer
from xfq.adapters.sql.schema import create_engine, migrate

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A cluster only this module uses: its tests stop and restart it."""
    with PostgresServer() as server:
        server.execute("CREATE DATABASE xfq_template")
        engine = create_engine(server.url("xfq_template"))
        migrate(engine)
        engine.dispose()
        yield server


@pytest.fixture
def ledger_url(own_server: PostgresServer) -> str:  # the API's ledger (see conftest)
    if own_server.process is None:
        own_server.start()
    return fresh_postgres_url(own_server)


async def test_a_postgresql_restart_gives_503s_then_the_api_carries_on(
    api: Api, own_server: PostgresServer
) -> None:
    api.clock.set(OPENING)
    alice = await api.claim("alice", RETAIL)
    assert alice.status_code == 201, alice.text

    own_server.stop()
    down = [
        await api.claim("bob", RETAIL),
        await api.client.get("/v1/wallet", headers=api.token("alice")),
        await api.client.post(
            "/v1/ops/merchants",
            json={"id": "shop", "name": "Shop", "category": "retail"},
            headers=api.ops("enroll-shop"),
        ),
        # stores that let the driver's errors through: answered as the ledger's are
        await api.client.get("/v1/ops/settlements/2022-03-05", headers=api.ops("s")),
        await api.client.get("/v1/ops/fraud/flags", headers=api.ops("f")),
    ]
    for answer in down:
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "storage_unavailable"
        assert answer.headers["Retry-After"] == "1"

    own_server.start()
    bob = await api.claim("bob", RETAIL)  # the same request again
    assert bob.status_code == 201, bob.text
    wallet = await api.client.get("/v1/wallet", headers=api.token("alice"))
    assert wallet.status_code == 200
    assert [v["id"] for v in wallet.json()["vouchers"]] == [alice.json()["voucher"]["id"]]
    enrolled = await api.client.post(
        "/v1/ops/merchants",
        json={"id": "shop", "name": "Shop", "category": "retail"},
        headers=api.ops("enroll-shop"),
    )
    assert enrolled.status_code == 201, enrolled.text
