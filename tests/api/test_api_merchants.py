"""The merchant's till: signed requests, quote, redeem, refund, and no one else's redemptions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import ON_BOTH_LEDGERS, OPENING, Api, Till

from xfq.api.auth.merchant_signature import signed_headers

pytestmark = [pytest.mark.anyio, ON_BOTH_LEDGERS]
RETAIL = "r6-retail-180-40"


async def _holder_code(api: Api, person: str = "alice") -> tuple[str, str]:
    api.clock.set(OPENING)
    voucher = (await api.claim(person, RETAIL)).json()["voucher"]
    return voucher["id"], await api.till_code(person, voucher["id"])


def _redeem(
    code: str, yuan: int, promotion_yuan: int = 0, order_ref: str = "o-1"
) -> dict[str, object]:
    order = {"list_price_fen": yuan * 100, "merchant_promotion_fen": promotion_yuan * 100}
    return {"code": code, "order_ref": order_ref, "order": order}


async def test_a_till_quotes_redeems_and_refunds_a_voucher(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    voucher_id, code = await _holder_code(api)
    short = await api.signed(
        shop, "POST", "/v1/merchant/quotes", {"code": code, "order": {"list_price_fen": 17800}}
    )
    assert (
        short.json()["code"] == "below_threshold" and "spend 2.00 more" in short.json()["message"]
    )
    quote = await api.signed(
        shop, "POST", "/v1/merchant/quotes", {"code": code, "order": {"list_price_fen": 20000}}
    )
    assert quote.json()["discount_fen"] == 4000 and quote.json()["customer_pays_fen"] == 16000
    redeemed = await api.signed(
        shop, "POST", "/v1/merchant/redemptions", _redeem(code, 200), key="r-1"
    )
    assert redeemed.status_code == 201, redeemed.text
    redemption = redeemed.json()["redemption"]
    assert redemption["voucher_id"] == voucher_id and redemption["discount_fen"] == 4000
    again = await api.signed(
        shop, "POST", "/v1/merchant/redemptions", _redeem(code, 200), key="r-1"
    )
    assert again.json()["redemption"]["id"] == redemption["id"]  # a retry, not a second use
    refund = await api.signed(
        shop,
        "POST",
        f"/v1/merchant/redemptions/{redemption['id']}/refunds",
        {"refund_fen": 20000},
        key="f-1",
    )
    assert refund.status_code == 201 and refund.json()["outcome"] == "restored"
    wallet = (await api.client.get("/v1/wallet", headers=api.token("alice"))).json()
    assert wallet["vouchers"][0]["state"] == "issued"


async def test_another_merchant_cannot_see_or_refund_a_redemption(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    rival = await api.enroll("rival", "retail")
    _, code = await _holder_code(api)
    redemption = (
        await api.signed(shop, "POST", "/v1/merchant/redemptions", _redeem(code, 200), key="r-1")
    ).json()
    rid = redemption["redemption"]["id"]
    assert (await api.signed(shop, "GET", f"/v1/merchant/redemptions/{rid}")).status_code == 200
    assert (await api.signed(rival, "GET", f"/v1/merchant/redemptions/{rid}")).status_code == 404
    refund = await api.signed(
        rival, "POST", f"/v1/merchant/redemptions/{rid}/refunds", {"refund_fen": 100}, key="f"
    )
    assert refund.status_code == 404


async def test_a_voucher_of_another_category_is_refused_with_the_reason(api: Api) -> None:
    hotpot = await api.enroll("hotpot", "catering")
    _, code = await _holder_code(api)
    answer = await api.signed(
        hotpot, "POST", "/v1/merchant/redemptions", _redeem(code, 300), key="r-1"
    )
    assert answer.json()["code"] == "wrong_category"


async def test_a_lapsed_or_forged_code_is_refused(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    _, code = await _holder_code(api)
    api.clock.set(OPENING + timedelta(minutes=5))
    lapsed = await api.signed(
        shop, "POST", "/v1/merchant/redemptions", _redeem(code, 200), key="r-1"
    )
    assert lapsed.status_code == 404 and "refresh" in lapsed.json()["detail"]
    head, payload, signature = code.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    answer = await api.signed(
        shop, "POST", "/v1/merchant/redemptions", _redeem(forged, 200), key="r-2"
    )
    assert answer.status_code == 404 and "not a code xfq issued" in answer.json()["detail"]


async def test_unsigned_replayed_and_tampered_till_requests_are_refused(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    _, code = await _holder_code(api)
    body = {"code": code, "order": {"list_price_fen": 20000}}
    unsigned = await api.client.post("/v1/merchant/quotes", json=body)
    assert unsigned.status_code == 401 and unsigned.headers["content-type"].startswith(
        "application/problem+json"
    )
    first = await api.signed(shop, "POST", "/v1/merchant/quotes", body, nonce="n" * 20)
    assert first.status_code == 200
    replay = await api.signed(shop, "POST", "/v1/merchant/quotes", body, nonce="n" * 20)
    assert replay.status_code == 401 and replay.json()["code"] == "replayed_nonce"
    wrong_secret = Till(shop.merchant_id, shop.key_id, b"guess")
    forged = await api.signed(wrong_secret, "POST", "/v1/merchant/quotes", body)
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    raw = json.dumps(body).encode()
    old = signed_headers(
        shop.key_id,
        shop.secret,
        "POST",
        "/v1/merchant/quotes",
        raw,
        api.clock.now() - timedelta(minutes=10),
    )
    stale = await api.client.post("/v1/merchant/quotes", content=raw, headers=old)
    assert stale.status_code == 401 and stale.json()["code"] == "stale_timestamp"


async def test_merchant_bodies_accept_only_their_fields(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    _, code = await _holder_code(api)
    body = {**_redeem(code, 200), "discount_fen": 99_999}  # not writable
    answer = await api.signed(shop, "POST", "/v1/merchant/redemptions", body, key="r-1")
    assert answer.status_code == 422 and "discount_fen" in answer.json()["detail"]
    negative = _redeem(code, 200)
    negative["order"] = {"list_price_fen": -5}
    answer = await api.signed(shop, "POST", "/v1/merchant/redemptions", negative, key="r-2")
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_request"
