"""Hostile requests: oversized, deeply nested, badly encoded, mistyped, huge or negative numbers,
days far in the past or future. Each gets a clear 4xx problem+json and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from conftest import OPENING, Api

from xfq.adapters.sql.tables import metadata
from xfq.api.auth.tokens import Role
from xfq.api.claiming import MAX_BODY_BYTES

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"
DEEP = b'{"type_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NOT_UTF8 = b'{"type_id": "\xff\xfe\xc3\x28"}'


def _rows(api: Api) -> dict[str, int]:
    """Rows per ledger table: a refused request must not change any."""
    with api.container.ledger.engine.connect() as connection:
        count = sa.select(sa.func.count())
        return {
            table.name: connection.execute(count.select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def _assert_problem(answer: httpx.Response, status: int, code: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and body["code"] and body["detail"]
    if code is not None:
        assert body["code"] == code, body


async def _claim_raw(
    api: Api, body: bytes, content_type: str = "application/json"
) -> httpx.Response:
    person = f"mallory-{len(body)}-{hash(body) % 10_000}"  # another person: no rate limit
    headers = {**api.token(person), "Idempotency-Key": "k1", "Content-Type": content_type}
    return await api.client.post("/v1/claims", content=body, headers=headers)


@pytest.fixture
async def opened(api: Api) -> AsyncIterator[Api]:
    api.clock.set(OPENING)
    yield api


async def test_hostile_claim_bodies_are_refused_and_change_nothing(opened: Api) -> None:
    api = opened
    before = _rows(api)
    _assert_problem(await _claim_raw(api, b"x" * (MAX_BODY_BYTES + 1)), 413, "body_too_large")
    _assert_problem(await _claim_raw(api, DEEP), 413, "body_too_large")
    _assert_problem(await _claim_raw(api, b'{"type_id": [[[[[[[[[["x"]]]]]]]]]]}'), 422)
    _assert_problem(await _claim_raw(api, NOT_UTF8), 422, "invalid_request")
    _assert_problem(await _claim_raw(api, b"\x00\x01\x02"), 422, "invalid_request")
    _assert_problem(await _claim_raw(api, b'{"type_id": 1e999}'), 422, "invalid_request")
    _assert_problem(await _claim_raw(api, b'{"type_id": ' + b"9" * 4000 + b"}"), 422)
    assert _rows(api) == before


async def test_oversized_and_nested_bodies_to_other_routes_get_413_or_4xx(opened: Api) -> None:
    api = opened
    before = _rows(api)
    ops = {**api.ops("hostile-1"), "Content-Type": "application/json"}
    huge = b'{"id": "m1", "name": "' + b"x" * (9 * 1024 * 1024) + b'", "category": "retail"}'
    _assert_problem(await api.client.post("/v1/ops/merchants", content=huge, headers=ops), 413)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off as it is read
        for _ in range(10):
            yield b"x" * (1024 * 1024)

    chunked = await api.client.post("/v1/ops/merchants", content=chunks(), headers=ops)
    _assert_problem(chunked, 413, "body_too_large")
    deep = b'{"id": "m1", "name": ' + b"[" * 100_000 + b"]" * 100_000 + b', "category": "retail"}'
    answer = await api.client.post("/v1/ops/merchants", content=deep, headers=ops)
    assert 400 <= answer.status_code < 500, answer.text
    _assert_problem(answer, answer.status_code)
    bad = await api.client.post("/v1/ops/merchants", content=NOT_UTF8, headers=ops)
    assert 400 <= bad.status_code < 500
    _assert_problem(bad, bad.status_code)
    text = {**ops, "Content-Type": "text/plain"}
    body = json.dumps({"id": "m1", "name": "shop", "category": "retail"}).encode()
    typed = await api.client.post("/v1/ops/merchants", content=body, headers=text)
    assert 400 <= typed.status_code < 500
    _assert_problem(typed, typed.status_code)
    assert _rows(api) == before


async def test_huge_negative_and_fractional_amounts_at_the_till_change_nothing(
    opened: Api,
) -> None:
    api = opened
    shop = await api.enroll("m-hostile", "retail")
    voucher = (await api.claim("alice", RETAIL)).json()["voucher"]
    code = await api.till_code("alice", voucher["id"])
    before = _rows(api)
    for price in (2**63, 2**64 + 1, 10**30, -1, -(2**63), 0, 1.5, "100", None, True):
        order = {"list_price_fen": price}
        asked = {"code": code, "order": order}
        quote = await api.signed(shop, "POST", "/v1/merchant/quotes", asked)
        _assert_problem(quote, 422)
        redeem = {"code": code, "order_ref": "o-1", "order": order}
        made = await api.signed(shop, "POST", "/v1/merchant/redemptions", redeem, key="r-1")
        _assert_problem(made, 422)
    promotion = {"list_price_fen": 20_000, "merchant_promotion_fen": -(10**20)}
    made = await api.signed(
        shop, "POST", "/v1/merchant/redemptions",
        {"code": code, "order_ref": "o-2", "order": promotion}, key="r-2",
    )  # fmt: skip
    _assert_problem(made, 422)
    for hostile_code in ("XFQ1.é.é", "XFQ1." + "\u202e" * 100 + ".x", "\x00", "XFQ1.a.b"):
        order = {"list_price_fen": 20_000}
        body = {"code": hostile_code, "order_ref": "o-3", "order": order}
        made = await api.signed(shop, "POST", "/v1/merchant/redemptions", body, key="r-3")
        assert 400 <= made.status_code < 500, made.text
    assert _rows(api) == before
    wallet = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert [v["state"] for v in wallet["vouchers"]] == ["issued"]


async def test_signature_timestamps_far_in_the_past_or_future_are_refused(opened: Api) -> None:
    api = opened
    shop = await api.enroll("m-times", "retail")
    before = _rows(api)
    for timestamp in ("0", "1", "-1", "99999999999999999999999999999", "1e10", "17.5", ""):
        headers = {
            "X-Xfq-Key": shop.key_id,
            "X-Xfq-Timestamp": timestamp,
            "X-Xfq-Nonce": f"n-{timestamp}",
            "X-Xfq-Signature": "0" * 64,
            "Content-Type": "application/json",
        }
        body = {"code": "XFQ1.a.b", "order": {"list_price_fen": 100}}
        answer = await api.client.post("/v1/merchant/quotes", json=body, headers=headers)
        _assert_problem(answer, 401)
    assert _rows(api) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ops/settlements/{day}",
        "/v1/ops/settlements/{day}/csv",
        "/v1/audit/digest/{day}",
    ],
)
async def test_days_far_in_the_past_or_future_are_answered_without_a_5xx(
    opened: Api, path: str
) -> None:
    api = opened
    headers = api.token("auditor-1", Role.OPERATOR)
    if path.startswith("/v1/audit"):
        headers = api.token("auditor-1", Role.AUDITOR)
    before = _rows(api)
    for day in ("0001-01-01", "9999-12-31", "1970-01-01", "2022-02-30", "99999-01-01", "-1"):
        answer = await api.client.get(path.format(day=day), headers=headers)
        assert answer.status_code < 500, (day, answer.text)
        if answer.status_code >= 400:
            _assert_problem(answer, answer.status_code)
    assert _rows(api) == before


async def test_closing_a_day_far_away_changes_nothing_it_should_not(opened: Api) -> None:
    api = opened
    for day in ("0001-01-01", "9999-12-31"):
        answer = await api.client.post(
            f"/v1/ops/settlements/{day}/close", headers=api.ops(f"close-{day}")
        )
        assert answer.status_code < 500, (day, answer.text)
        if answer.status_code >= 400:
            _assert_problem(answer, answer.status_code)
