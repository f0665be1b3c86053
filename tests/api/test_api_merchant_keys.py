"""Operators revoke a merchant's API key: its tills are refused, the merchant's other keys work."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import httpx
import pytest
from conftest import ON_BOTH_LEDGERS, Api, Till

from xfq.api.auth.tokens import Role
from xfq.bootstrap import KEY_REFRESH_S
from xfq.services import operations

pytestmark = [pytest.mark.anyio, ON_BOTH_LEDGERS]
NOWHERE = "/v1/merchant/redemptions/no-such-redemption"  # 404 once the signature is accepted


async def _second_key(api: Api, till: Till, key: str = "rotate") -> Till:
    approved = await api.client.post(
        f"/v1/ops/merchants/{till.merchant_id}/approve", headers=api.ops(key)
    )
    assert approved.status_code == 200, approved.text
    return Till(till.merchant_id, approved.json()["key_id"], approved.json()["secret"].encode())


async def _revoke(api: Api, merchant_id: str, key_id: str, key: str) -> httpx.Response:
    return await api.client.post(
        f"/v1/ops/merchants/{merchant_id}/keys/{key_id}/revoke", headers=api.ops(key)
    )


async def _accepted(api: Api, till: Till) -> bool:
    answer = await api.signed(till, "GET", NOWHERE)
    assert answer.status_code in (401, 404), answer.text
    if answer.status_code == 401:
        assert answer.json()["code"] == "unknown_key"
    return answer.status_code == 404


async def test_a_revoked_key_is_refused_and_the_merchant_s_new_key_keeps_working(
    api: Api,
) -> None:
    old = await api.enroll("shop", "retail")
    new = await _second_key(api, old)
    assert new.key_id != old.key_id and await _accepted(api, old) and await _accepted(api, new)
    revoked = await _revoke(api, "shop", old.key_id, "rv-1")
    assert revoked.status_code == 200, revoked.text
    answer = revoked.json()
    assert answer["merchant_id"] == "shop" and answer["key_id"] == old.key_id
    assert answer["refused_everywhere_within_s"] == KEY_REFRESH_S
    assert not await _accepted(api, old)
    assert await _accepted(api, new)
    entries = (await api.client.get("/v1/audit/entries", headers=api.ops("x"))).json()["entries"]
    last = entries[-1]
    assert (last["action"], last["subject"], last["actor"]) == (
        "merchant.key_revoked",
        "shop",
        "op1",
    )
    assert last["details"] == {"key_id": old.key_id}


async def test_operators_list_a_merchant_s_keys_with_their_revocations_and_no_secrets(
    api: Api,
) -> None:
    old = await api.enroll("shop", "retail")
    api.clock.advance(timedelta(minutes=1))
    new = await _second_key(api, old)
    revoked = (await _revoke(api, "shop", old.key_id, "rv-1")).json()
    auditor = api.token("aud", Role.AUDITOR)
    listed = await api.client.get("/v1/ops/merchants/shop/keys", headers=auditor)
    assert listed.status_code == 200, listed.text
    assert [(k["key_id"], k["revoked_at"]) for k in listed.json()] == [
        (old.key_id, revoked["revoked_at"]),
        (new.key_id, None),
    ]
    assert old.secret.decode() not in listed.text and new.secret.decode() not in listed.text
    nobody = await api.client.get("/v1/ops/merchants/nobody/keys", headers=auditor)
    assert nobody.status_code == 404 and nobody.json()["detail"] == "no merchant nobody"
    citizen = await api.client.get("/v1/ops/merchants/shop/keys", headers=api.token("alice"))
    assert citizen.status_code == 403


async def test_revoking_twice_is_harmless_and_audited_once(api: Api) -> None:
    till = await api.enroll("shop", "retail")
    first = await _revoke(api, "shop", till.key_id, "rv-1")
    api.clock.advance(timedelta(minutes=1))
    again = await _revoke(api, "shop", till.key_id, "rv-2")
    retried = await _revoke(api, "shop", till.key_id, "rv-1")
    assert first.status_code == again.status_code == retried.status_code == 200
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert retried.json() == first.json() and retried.headers["idempotent-replay"] == "true"
    entries = (await api.client.get("/v1/audit/entries", headers=api.ops("x"))).json()["entries"]
    assert [e["action"] for e in entries].count("merchant.key_revoked") == 1
    assert not await _accepted(api, till)


async def test_revoking_an_unknown_or_another_merchant_s_key_is_a_clear_404(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    other = await api.enroll("other", "retail")
    cases = {
        ("nobody", shop.key_id): "no merchant nobody",
        ("shop", "mk_nothing"): "merchant shop has no API key mk_nothing",
        ("shop", other.key_id): f"merchant shop has no API key {other.key_id}",
    }
    for n, ((merchant_id, key_id), detail) in enumerate(cases.items()):
        answer = await _revoke(api, merchant_id, key_id, f"bad-{n}")
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "unknown_object" and answer.json()["detail"] == detail
    assert await _accepted(api, shop) and await _accepted(api, other)
    citizen = await api.client.post(
        f"/v1/ops/merchants/shop/keys/{shop.key_id}/revoke",
        headers={**api.token("alice"), "Idempotency-Key": "c"},
    )
    assert citizen.status_code == 403
    no_key = await api.client.post(
        f"/v1/ops/merchants/shop/keys/{shop.key_id}/revoke",
        headers=api.token("op1", Role.OPERATOR),
    )
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]
    assert await _accepted(api, shop)


async def test_ids_no_merchant_or_key_can_have_are_refused_before_the_ledger(api: Api) -> None:
    shop = await api.enroll("shop", "retail")
    paths = [
        "/v1/ops/merchants/a%00b/keys/mk_x/revoke",  # PostgreSQL: a NUL in text is an error
        f"/v1/ops/merchants/Shop/keys/{shop.key_id}/revoke",
        "/v1/ops/merchants/shop/keys/mk%00x/revoke",
        "/v1/ops/merchants/shop/keys/mk%20x/revoke",
        "/v1/ops/merchants/a%00b/suspend",
    ]
    for n, path in enumerate(paths):
        answer = await api.client.post(path, headers=api.ops(f"odd-{n}"))
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["code"] == "invalid_request"
    listed = await api.client.get(
        "/v1/ops/merchants/a%00b/keys", headers=api.token("op1", Role.OPERATOR)
    )
    assert listed.status_code == 422
    assert await _accepted(api, shop)


async def test_a_key_revoked_by_another_process_is_refused_here_within_the_bound(
    api: Api,
) -> None:
    till = await api.enroll("shop", "retail")
    assert await _accepted(api, till)
    # What another worker's revocation leaves: the ledger changed, this process's cache not.
    operations.revoke_merchant_key(
        api.container.ledger, "op2", "shop", till.key_id, api.clock.now()
    ).result()
    assert till.key_id in api.container.merchant_keys
    time.sleep(KEY_REFRESH_S)
    assert not await _accepted(api, till)
    assert till.key_id not in api.container.merchant_keys


async def test_a_read_of_the_revoked_keys_vouches_only_for_requests_within_the_bound_of_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed request that arrives while a read of the revoked keys is under way waits for it
    rather than reading too (`Container.forget_revoked_keys`), but not if that read began more
    than KEY_REFRESH_S before: it may have missed a revocation the request must see."""
    till = await api.enroll("shop", "retail")
    ledger = api.container.ledger
    real_read, reads = ledger.revoked_merchant_keys, []
    held, release = threading.Event(), threading.Event()

    def read() -> set[str]:
        reads.append(time.monotonic())
        found = real_read()
        if len(reads) == 1:  # the first read's answer is held back, as on a slow link
            held.set()
            release.wait(10)
        return found

    monkeypatch.setattr(ledger, "revoked_merchant_keys", read)
    slow = threading.Thread(target=api.container.forget_revoked_keys)
    slow.start()
    try:
        assert await asyncio.to_thread(held.wait, 10)
        # Another worker revokes the key after that read began; this process is not told.
        operations.revoke_merchant_key(ledger, "op2", "shop", till.key_id, api.clock.now()).result()
        await asyncio.sleep(KEY_REFRESH_S)  # from now on, the key must be refused here
        signed = asyncio.ensure_future(api.signed(till, "GET", NOWHERE))
        await asyncio.sleep(0.2)  # it waits for the read under way
    finally:
        release.set()
        await asyncio.to_thread(slow.join, 10)
    answer = await signed
    assert answer.status_code == 401 and answer.json()["code"] == "unknown_key"
    assert len(reads) == 2  # it read again, after the one under way
