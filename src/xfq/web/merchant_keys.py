"""A merchant's till keys on the operators' dashboard: when each was issued and revoked, and a
form to revoke one (a till's key lost or leaked).

Both go through the operators' API, as the dashboard's other actions do: the list is
`GET /v1/ops/merchants/{id}/keys` (operators and auditors), the revocation
`POST …/keys/{key_id}/revoke` (operators), audited under the operator who signed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from xfq.api.auth.tokens import Role
from xfq.bootstrap import KEY_REFRESH_S
from xfq.web.common import OPERATOR_COOKIE, SameOrigin, container_of, render, signed_in
from xfq.web.inprocess import call_api, write_headers

router = APIRouter()


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    issued: str
    revoked: str | None  # when, or None for a key that works
    revoke_action: str


def _page_path(merchant_id: str) -> str:
    return f"/ops/merchants/{quote(merchant_id, safe='')}/keys"


def _api_path(merchant_id: str) -> str:
    return f"/v1/ops/merchants/{quote(merchant_id, safe='')}/keys"


def key_rows(merchant_id: str, listed: list[dict[str, Any]], tz: tzinfo) -> list[KeyRow]:
    """The API's list of keys, its times in the campaign's zone."""

    def local(moment: str) -> str:
        return datetime.fromisoformat(moment).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    page = _page_path(merchant_id)
    return [
        KeyRow(
            k["key_id"],
            local(k["created_at"]),
            None if k["revoked_at"] is None else local(k["revoked_at"]),
            f"{page}/{quote(k['key_id'], safe='')}/revoke",
        )
        for k in listed
    ]


@router.get("/ops/merchants/{merchant_id}/keys")
async def keys_page(request: Request, merchant_id: str) -> Response:
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR, Role.AUDITOR)
    if session is None:
        return RedirectResponse("/ops", status_code=303)
    auth = {"Authorization": f"Bearer {session[1]}"}
    listed = await call_api(request.app, "GET", _api_path(merchant_id), auth)
    campaign = container_of(request).campaign
    tz = UTC if campaign is None else campaign.tz
    keys = key_rows(merchant_id, listed.body["items"], tz) if listed.status == 200 else []
    code = request.query_params.get("error")
    detail = request.query_params.get("detail", "")
    error = None if code is None else {"code": code, "detail": detail}
    revoked = request.query_params.get("revoked")
    context = {
        "merchant_id": merchant_id,
        "role": session[0].role.value,
        "keys": keys,
        "error": error if listed.status == 200 else listed.refusal,
        # Only a key the list shows revoked: the query alone is anyone's to write.
        "revoked": next((k for k in keys if k.key_id == revoked and k.revoked), None),
        "within_s": f"{KEY_REFRESH_S:g}",
    }
    return render(request, "ops_keys.html", context, status=listed.status)


@router.post("/ops/merchants/{merchant_id}/keys/{key_id}/revoke")
async def revoke(request: Request, merchant_id: str, key_id: str, _: SameOrigin) -> Response:
    """Revoke the key through the operators' API, then show the list again."""
    session = signed_in(request, OPERATOR_COOKIE, Role.OPERATOR)
    if session is None:
        return RedirectResponse("/ops", status_code=303)
    path = f"{_api_path(merchant_id)}/{quote(key_id, safe='')}/revoke"
    answer = await call_api(request.app, "POST", path, write_headers(session[1]))
    if answer.status != 200:
        query = urlencode({"error": answer.problem_code, "detail": answer.refusal["detail"]})
    else:
        query = urlencode({"revoked": key_id})
    return RedirectResponse(f"{_page_path(merchant_id)}?{query}", status_code=303)
