"""Claim passes over HTTP: had before the opening for a bearer token, then claimed with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from conftest import OPENING, Api

from xfq.api.auth.tokens import Role
from xfq.domain.claim_pass import PassKeys, issue_pass
from xfq.domain.eligibility import Citizen, Residency

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"
R5_RETAIL = "r5-retail-180-40"


async def _pass(api: Api, person: str, round_id: str = "r6", **claims: Any) -> httpx.Response:
    return await api.client.post(f"/v1/rounds/{round_id}/pass", headers=api.token(person, **claims))


async def _token(api: Api, person: str, **claims: Any) -> str:
    answer = await _pass(api, person, **claims)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


async def _claim(
    api: Api, claim_pass: str, type_id: str = RETAIL, key: str = "k1"
) -> httpx.Response:
    headers = {"Claim-Pass": claim_pass, "Idempotency-Key": key}
    return await api.client.post("/v1/claims", json={"type_id": type_id}, headers=headers)


def _problem(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code


async def test_a_pass_had_before_ten_claims_at_ten_and_the_voucher_is_in_the_wallet(
    api: Api,
) -> None:
    got = await _pass(api, "alice")
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["person_id"], body["round_id"], body["eligible"]) == ("alice", "r6", True)
    claim_pass = body["token"]
    assert (await _claim(api, claim_pass)).json()["code"] == "not_open"
    api.clock.set(OPENING)
    issued = await _claim(api, claim_pass, key="k2")
    assert issued.status_code == 201, issued.text
    wallet = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert [v["id"] for v in wallet["vouchers"]] == [issued.json()["voucher"]["id"]]


async def test_idempotency_is_the_same_whichever_credential_a_retry_carries(api: Api) -> None:
    claim_pass = await _token(api, "alice")
    api.clock.set(OPENING)
    first = await _claim(api, claim_pass, key="tap-1")
    by_token = await api.claim("alice", RETAIL, key="tap-1")
    by_pass = await _claim(api, claim_pass, key="tap-1")
    assert first.status_code == by_token.status_code == by_pass.status_code == 201
    ids = {a.json()["voucher"]["id"] for a in (first, by_token, by_pass)}
    assert len(ids) == 1
    other = await _claim(api, claim_pass, "r6-home-500-80", key="tap-1")
    _problem(other, 422, "idempotency_conflict")
    assert (await _claim(api, claim_pass, "r6-retail-30-6", key="tap-2")).json()["code"] == (
        "limit_reached"
    )


async def test_the_pass_carries_eligibility_as_the_token_asserted_it(api: Api) -> None:
    got = (await _pass(api, "tourist", in_city=False)).json()
    assert got["eligible"] is False and "inside the city" in got["reason"]
    api.clock.set(OPENING)
    assert (await _claim(api, got["token"])).json()["code"] == "not_eligible"


async def test_a_tampered_or_garbage_pass_is_refused_with_401(api: Api) -> None:
    claim_pass = await _token(api, "alice")
    api.clock.set(OPENING)
    head, payload, mac = claim_pass.rsplit(".", 2)
    tampered = f"{head}.{payload}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    _problem(await _claim(api, tampered), 401, "pass_forged")
    _problem(await _claim(api, "not a pass"), 401, "pass_malformed")
    other_server = issue_pass(
        PassKeys([b"z" * 32]), "r6", Citizen("alice", Residency.PERMANENT, True), OPENING
    )
    _problem(await _claim(api, other_server), 401, "pass_key_unknown")


async def test_a_pass_claims_only_in_its_own_round(api: Api) -> None:
    claim_pass = await _token(api, "alice")
    api.clock.set(OPENING)
    _problem(await _claim(api, claim_pass, R5_RETAIL), 401, "pass_other_round")
    unknown = await _claim(api, claim_pass, "no-such-type")
    assert unknown.status_code == 404  # as with a bearer token


async def test_a_pass_lapses_at_its_expiry_by_the_servers_clock(api: Api) -> None:
    got = (await _pass(api, "alice")).json()
    expires_at = OPENING - timedelta(minutes=5) + timedelta(seconds=7200)
    assert got["expires_at"] == expires_at.isoformat()
    api.clock.set(expires_at - timedelta(seconds=1))
    assert (await _claim(api, got["token"])).status_code == 201
    api.clock.set(expires_at)
    _problem(await _claim(api, got["token"], key="k2"), 401, "pass_expired")


async def test_passes_are_handed_out_from_an_hour_before_the_opening_until_the_window_closes(
    api: Api,
) -> None:
    api.clock.set(OPENING - timedelta(hours=1, seconds=1))
    _problem(await _pass(api, "alice"), 409, "pass_not_available")
    api.clock.set(OPENING - timedelta(hours=1))
    assert (await _pass(api, "alice")).status_code == 200
    _problem(await _pass(api, "alice", round_id="r5"), 409, "pass_not_available")  # closed
    _problem(await _pass(api, "alice", round_id="r99"), 404, "unknown_object")


async def test_only_a_citizens_token_gets_a_pass(api: Api) -> None:
    answer = await api.client.post("/v1/rounds/r6/pass")
    _problem(answer, 401, "missing_token")
    operator = await api.client.post("/v1/rounds/r6/pass", headers=api.token("op1", Role.OPERATOR))
    _problem(operator, 403, "forbidden_role")


async def test_the_documented_route_behind_the_lean_handler_takes_a_pass_too(api: Api) -> None:
    claim_pass = await _token(api, "alice")
    api.clock.set(OPENING)
    inner = api.client._transport.app.app  # type: ignore[attr-defined]  # ClaimFront's FastAPI
    transport = httpx.ASGITransport(app=inner)
    async with httpx.AsyncClient(transport=transport, base_url="http://xfq.test") as client:
        headers = {"Claim-Pass": claim_pass, "Idempotency-Key": "k1"}
        issued = await client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)
        assert issued.status_code == 201, issued.text
        headers["Claim-Pass"] = claim_pass + "x"
        forged = await client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)
        _problem(forged, 401, "pass_forged")
        schema = (await client.get("/openapi.json")).json()
    assert "/v1/rounds/{round_id}/pass" in schema["paths"]
    claims = schema["paths"]["/v1/claims"]["post"]
    assert "Claim-Pass" in {p["name"] for p in claims["parameters"]}
    assert claims["security"] == [{"bearer": []}, {"claimPass": []}]


async def test_asking_for_passes_does_not_fill_the_servers_token_cache(api: Api) -> None:
    """A wallet sends its bearer token for a pass about once: a million of them would push the
    tokens that are sent again out of the cache, and hold ~300 bytes each."""
    kept = len(api.container.tokens)
    passes = [await _token(api, f"p{i}") for i in range(50)]
    await _token(api, "p0")  # a repeat: verified again, still not kept

    assert len(api.container.tokens) == kept
    api.clock.set(OPENING)
    issued = await _claim(api, passes[1])
    assert issued.status_code == 201, issued.text
