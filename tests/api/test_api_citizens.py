"""The citizen's side of the API: campaign, grab, wallet, till code, and who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import ON_BOTH_LEDGERS, OPENING, Api

from xfq.api.auth.dev_issuer import DevIssuer
from xfq.api.auth.tokens import Role

pytestmark = [pytest.mark.anyio, ON_BOTH_LEDGERS]
RETAIL = "r6-retail-180-40"


async def test_the_campaign_shows_each_type_with_its_stock(api: Api) -> None:
    answer = await api.client.get("/v1/campaign")
    assert answer.status_code == 200
    r6 = next(r for r in answer.json()["rounds"] if r["id"] == "r6")
    types = {t["id"]: t for t in r6["types"]}
    assert types[RETAIL]["remaining"] == 23_250 and types[RETAIL]["label"] == "满180减40"
    assert sum(t["count"] for t in r6["types"]) == 126_700


async def test_a_claim_before_ten_is_not_open_and_at_ten_is_issued(api: Api) -> None:
    early = await api.claim("alice", RETAIL)
    assert early.status_code == 200 and early.json()["code"] == "not_open"
    api.clock.set(OPENING)
    issued = await api.claim("alice", RETAIL)
    assert issued.status_code == 201, issued.text
    voucher = issued.json()["voucher"]
    assert voucher["label"] == "满180减40" and voucher["state"] == "issued"
    assert voucher["valid_until"] == "2022-03-12T00:00:00+08:00"  # usable through 3-11
    campaign = (await api.client.get("/v1/campaign")).json()
    r6 = next(r for r in campaign["rounds"] if r["id"] == "r6")
    assert next(t for t in r6["types"] if t["id"] == RETAIL)["remaining"] == 23_249


async def test_a_retried_claim_gets_the_same_voucher_and_another_type_with_its_key_is_refused(
    api: Api,
) -> None:
    api.clock.set(OPENING)
    first = (await api.claim("alice", RETAIL, key="tap-1")).json()
    again = await api.claim("alice", RETAIL, key="tap-1")
    assert again.status_code == 201 and again.json()["voucher"]["id"] == first["voucher"]["id"]
    other = await api.claim("alice", "r6-home-500-80", key="tap-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_conflict"
    second = await api.claim("alice", "r6-retail-30-6", key="tap-2")
    assert second.json()["code"] == "limit_reached"  # one retail voucher per person


async def test_people_outside_the_city_or_without_residency_are_not_eligible(api: Api) -> None:
    api.clock.set(OPENING)
    headers = {**api.token("tourist", in_city=False), "Idempotency-Key": "k"}
    answer = await api.client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)
    assert answer.json()["code"] == "not_eligible"
    assert "inside the city" in answer.json()["reason"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_token"),
        ({"Authorization": "Bearer not.a.jwt"}, 401, "malformed_token"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, 401, "missing_token"),
    ],
)
async def test_a_claim_without_a_valid_token_is_refused_as_problem_json(
    api: Api, headers: dict[str, str], status: int, code: str
) -> None:
    api.clock.set(OPENING)
    answer = await api.client.post(
        "/v1/claims", json={"type_id": RETAIL}, headers={**headers, "Idempotency-Key": "k"}
    )
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] in (code, "malformed_token", "missing_token")


async def test_forged_and_expired_tokens_are_refused(api: Api) -> None:
    api.clock.set(OPENING)
    forger = DevIssuer(environment="development")  # same issuer name, another key
    forged = forger.token("alice", Role.CITIZEN, api.clock.now())
    answer = await api.client.post(
        "/v1/claims",
        json={"type_id": RETAIL},
        headers={"Authorization": f"Bearer {forged}", "Idempotency-Key": "k"},
    )
    assert answer.status_code == 401 and answer.json()["code"] == "bad_signature"
    stale = api.token("alice")
    api.clock.set(OPENING + timedelta(hours=2))
    answer = await api.client.post(
        "/v1/claims", json={"type_id": RETAIL}, headers={**stale, "Idempotency-Key": "k"}
    )
    assert answer.status_code == 401 and answer.json()["code"] == "token_expired"


async def test_an_operator_token_cannot_claim(api: Api) -> None:
    api.clock.set(OPENING)
    headers = {**api.token("op1", Role.OPERATOR), "Idempotency-Key": "k"}
    answer = await api.client.post("/v1/claims", json={"type_id": RETAIL}, headers=headers)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"type_id": RETAIL, "person_id": "bob"},  # mass assignment: not a writable field
        {"type_id": ""},
        {"type": RETAIL},
        [RETAIL],
    ],
)
async def test_claim_bodies_other_than_a_type_id_are_refused(api: Api, body: object) -> None:
    api.clock.set(OPENING)
    headers = {**api.token("alice"), "Idempotency-Key": "k"}
    answer = await api.client.post("/v1/claims", json=body, headers=headers)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
    assert (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()["vouchers"] == []


async def test_a_person_hammering_the_grab_is_slowed_with_retry_after(api: Api) -> None:
    api.clock.set(OPENING)
    codes = [(await api.claim("bot", RETAIL, key=f"k{i}")).status_code for i in range(20)]
    assert 429 in codes
    limited = await api.claim("bot", RETAIL, key="k-last")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    api.clock.set(OPENING + timedelta(seconds=30))
    assert (await api.claim("bot", RETAIL, key="k-later")).status_code in (200, 201)


async def test_the_wallet_and_till_codes_belong_to_their_holder_only(api: Api) -> None:
    api.clock.set(OPENING)
    voucher = (await api.claim("alice", RETAIL)).json()["voucher"]
    mine = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert [v["id"] for v in mine["vouchers"]] == [voucher["id"]]
    theirs = (await api.client.get("/v1/wallet", headers=api.token("bob"))).json()
    assert theirs["vouchers"] == []
    code = await api.client.post(
        f"/v1/vouchers/{voucher['id']}/till-code", headers=api.token("alice")
    )
    assert code.status_code == 200 and code.json()["qr_svg"].startswith("<svg")
    stolen = await api.client.post(
        f"/v1/vouchers/{voucher['id']}/till-code", headers=api.token("bob")
    )
    assert stolen.status_code == 404
