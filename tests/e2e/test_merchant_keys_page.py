"""A merchant's till keys on the dashboard in real headless Chromium: an operator lists them,
revokes one and sees it marked revoked; a request signed with it is then refused, the other key
keeps working, and the revocation is audited under the operator who signed in."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect
from test_pages import Server, Till, browser, desktop, server, shot  # noqa: F401  (fixtures)

from xfq.api.auth.merchant_signature import signed_headers

pytestmark = pytest.mark.timeout(120)
NOWHERE = "/v1/merchant/redemptions/no-such-redemption"  # 404 once the signature is accepted


def _signed(server: Server, till: Till) -> httpx.Response:  # noqa: F811
    now = server.clock.now()
    headers = signed_headers(till.key_id, till.secret.encode(), "GET", NOWHERE, b"", now)
    return server.http.get(NOWHERE, headers=headers)


def _second_key(server: Server, merchant_id: str) -> Till:  # noqa: F811
    ops = {**server.token("op-setup", "operator"), "Idempotency-Key": f"again-{merchant_id}"}
    approved = server.http.post(f"/v1/ops/merchants/{merchant_id}/approve", headers=ops)
    assert approved.status_code == 200, approved.text
    return Till(approved.json()["key_id"], approved.json()["secret"])


@pytest.mark.browser
def test_an_operator_revokes_a_lost_till_key_from_the_dashboard(
    server: Server,  # noqa: F811
    desktop: Page,  # noqa: F811
) -> None:
    lost = server.enroll("shop-k", "retail")
    kept = _second_key(server, "shop-k")
    assert _signed(server, lost).status_code == 404  # accepted
    page = desktop
    page.goto(server.url + "/ops")
    page.get_by_label("用户标识").fill("op-keys")
    page.get_by_role("button", name="登录").click()
    page.get_by_role("link", name="商户 shop-k 的收银终端密钥").click()

    expect(page.get_by_role("heading", name="商户 shop-k 的收银终端密钥")).to_be_visible()
    lost_state = page.locator(f'td[data-key-state="{lost.key_id}"]')
    kept_state = page.locator(f'td[data-key-state="{kept.key_id}"]')
    expect(lost_state).to_contain_text("有效")
    expect(kept_state).to_contain_text("有效")
    page.get_by_role("button", name=f"吊销密钥 {lost.key_id}").click()

    expect(page.locator("#revoked-note")).to_have_text(
        f"密钥 {lost.key_id} 已吊销：所有服务进程最迟 1 秒后拒绝用它签名的请求。"
    )
    expect(lost_state).to_have_text("已吊销（2022-03-05 09:55:00）")
    expect(page.get_by_role("button", name=f"吊销密钥 {lost.key_id}")).to_have_count(0)
    expect(kept_state).to_contain_text("有效")
    shot(page, "ops-merchant-keys")

    refused = _signed(server, lost)
    assert refused.status_code == 401 and refused.json()["code"] == "unknown_key"
    assert _signed(server, kept).status_code == 404
    audit = server.http.get("/v1/audit/entries", headers=server.token("aud", "auditor"))
    [entry] = [e for e in audit.json()["entries"] if e["action"] == "merchant.key_revoked"]
    assert entry["actor"] == "op-keys" and entry["details"] == {"key_id": lost.key_id}


def test_auditors_see_the_keys_and_revoke_none_nor_does_a_form_from_another_site(
    server: Server,  # noqa: F811
) -> None:
    till = server.enroll("shop-a", "retail")
    keys_page = "/ops/merchants/shop-a/keys"
    revoke = f"{keys_page}/{till.key_id}/revoke"
    client = server.http
    ours = {"Origin": server.url}
    signed = client.post("/ops/login", data={"subject": "aud", "role": "auditor"}, headers=ours)
    assert signed.status_code == 303 and "xfq_operator" in signed.cookies
    listed = client.get(keys_page)
    assert listed.status_code == 200 and till.key_id in listed.text
    assert "/revoke" not in listed.text  # no form to revoke
    assert client.post(revoke, headers=ours, follow_redirects=False).headers["location"] == "/ops"

    client.post("/ops/login", data={"subject": "op"}, headers=ours)
    forged = client.post(revoke, headers={"Origin": "https://elsewhere.example"})
    assert forged.status_code == 403
    assert _signed(server, till).status_code == 404  # still accepted
    unknown = client.get("/ops/merchants/no-such-shop/keys")
    assert unknown.status_code == 404 and "请求被拒绝（unknown_object）" in unknown.text
