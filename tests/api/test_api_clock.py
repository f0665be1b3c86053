"""What lapses by the server's clock, at its boundaries: a second before, exactly at, a second
after, with the clock the server is given (Asia/Shanghai, the reference campaign's zone)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import OPENING, TZ, Api, Till

from xfq.api.auth.merchant_signature import DEFAULT_MAX_SKEW, signed_headers
from xfq.domain.till_code import DEFAULT_TTL

pytestmark = pytest.mark.anyio
RETAIL = "r6-retail-180-40"
SECOND = timedelta(seconds=1)
VALID_UNTIL = datetime(2022, 3, 12, 0, 0, tzinfo=TZ)  # midnight after 3-11, the last usable day


async def _quote(api: Api, shop: Till, code: str) -> str:
    body = {"code": code, "order": {"list_price_fen": 20_000}}
    answer = await api.signed(shop, "POST", "/v1/merchant/quotes", body)
    assert answer.status_code in (200, 401, 403, 404, 409), answer.text
    return str(answer.json()["code"])


async def test_a_claim_is_not_open_a_second_before_ten_and_issued_at_ten(api: Api) -> None:
    api.clock.set(OPENING - SECOND)
    assert (await api.claim("early", RETAIL)).json()["code"] == "not_open"
    api.clock.set(OPENING)
    assert (await api.claim("on-time", RETAIL)).json()["code"] == "issued"


async def test_a_voucher_is_usable_until_the_last_second_of_its_last_day(api: Api) -> None:
    shop = await api.enroll("m-clock", "retail")
    api.clock.set(OPENING)
    voucher = (await api.claim("alice", RETAIL)).json()["voucher"]
    assert voucher["valid_until"] == VALID_UNTIL.isoformat()
    api.clock.set(VALID_UNTIL - 30 * SECOND)
    code = await api.till_code("alice", voucher["id"])  # lives past the voucher's end
    api.clock.set(VALID_UNTIL - SECOND)
    assert await _quote(api, shop, code) == "ok"
    api.clock.set(VALID_UNTIL)
    assert await _quote(api, shop, code) == "expired"
    api.clock.set(VALID_UNTIL + SECOND)
    assert await _quote(api, shop, code) == "expired"


async def test_the_expiry_pass_expires_a_voucher_exactly_at_its_end(api: Api) -> None:
    api.clock.set(OPENING)
    assert (await api.claim("bob", RETAIL)).status_code == 201
    for moment, state in ((VALID_UNTIL - SECOND, "issued"), (VALID_UNTIL, "expired")):
        api.clock.set(moment)
        done = await api.client.post("/v1/ops/expire", headers=api.ops(f"expire-{moment}"))
        assert done.status_code == 200, done.text
        wallet = (await api.client.get("/v1/wallet", headers=api.token("bob"))).json()
        assert [v["state"] for v in wallet["vouchers"]] == [state], moment


async def test_a_till_code_lapses_exactly_at_its_expiry(api: Api) -> None:
    shop = await api.enroll("m-code", "retail")
    api.clock.set(OPENING)
    voucher = (await api.claim("carol", RETAIL)).json()["voucher"]
    issued_at = OPENING + timedelta(hours=1)
    api.clock.set(issued_at)
    code = await api.till_code("carol", voucher["id"])
    api.clock.set(issued_at + DEFAULT_TTL - SECOND)
    assert await _quote(api, shop, code) == "ok"
    for after in (DEFAULT_TTL, DEFAULT_TTL + SECOND):
        api.clock.set(issued_at + after)
        body = {"code": code, "order": {"list_price_fen": 20_000}}
        answer = await api.signed(shop, "POST", "/v1/merchant/quotes", body)
        assert answer.status_code == 404, answer.text  # as the API answers a lapsed code
        assert "lapsed" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("shift", "accepted"),
    [
        (-DEFAULT_MAX_SKEW, True),
        (-DEFAULT_MAX_SKEW - SECOND, False),
        (DEFAULT_MAX_SKEW, True),
        (DEFAULT_MAX_SKEW + SECOND, False),
    ],
)
async def test_a_till_signature_is_accepted_up_to_the_skew_and_refused_a_second_beyond(
    api: Api, shift: timedelta, accepted: bool
) -> None:
    shop = await api.enroll("m-skew", "retail")
    api.clock.set(OPENING)
    raw = b'{"code": "XFQ1.a.b", "order": {"list_price_fen": 100}}'
    path = "/v1/merchant/quotes"
    headers = signed_headers(shop.key_id, shop.secret, "POST", path, raw, OPENING + shift)
    headers["Content-Type"] = "application/json"
    answer = await api.client.post(path, content=raw, headers=headers)
    if accepted:  # past the signature: the made-up code is refused as malformed
        assert answer.json()["code"] not in ("stale_timestamp", "future_timestamp"), answer.text
    else:
        assert answer.status_code == 401
        expected = "stale_timestamp" if shift < timedelta(0) else "future_timestamp"
        assert answer.json()["code"] == expected
