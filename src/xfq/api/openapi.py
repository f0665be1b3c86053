"""The published OpenAPI document: errors as problem+json, and how each audience authenticates."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "merchantKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Xfq-Key",
        "description": "With X-Xfq-Timestamp, X-Xfq-Nonce and X-Xfq-Signature: hex HMAC-SHA256 "
        "of METHOD, path, timestamp, nonce and SHA-256 of the body, one per line. Refused "
        "(401): an unknown or revoked key, a timestamp more than 5 min off, a nonce already "
        "used with the key (at any API worker). 503 nonce_check_unavailable with Retry-After: "
        "the replay check could not be made; sign again with a new nonce",
    },
}
_SECURITY_SCHEMES["claimPass"] = {
    "type": "apiKey",
    "in": "header",
    "name": "Claim-Pass",
    "description": "A claim pass from POST /v1/rounds/{round_id}/pass, for that round's claims",
}
# Operations that take either of several credentials.
_SECURITY_EITHER: dict[tuple[str, str], list[dict[str, list[str]]]] = {
    ("/v1/claims", "post"): [{"bearer": []}, {"claimPass": []}]
}
_SECURITY_BY_TAG = {"citizens": "bearer", "operators": "bearer", "merchants": "merchantKey"}
_PUBLIC = {("/v1/campaign", "get")}
_TILL_CODE = ("/v1/vouchers/{voucher_id}/till-code", "post")
_REDEMPTION = ("/v1/merchant/redemptions", "post")
_CODE = {"requestBody": {"code": "$response.body#/code"}}
_REDEMPTION_ID = {"parameters": {"path.redemption_id": "$response.body#/id"}}
# How a voucher moves through the API, as OpenAPI links (clients and schemathesis follow them):
# (from path, method, status) -> name, (to path, method), what the next request takes.
_LINKS: list[tuple[tuple[str, str, str], str, tuple[str, str], dict[str, Any]]] = [
    (("/v1/claims", "post", "201"), "TillCodeOfIssued", _TILL_CODE,
     {"parameters": {"path.voucher_id": "$response.body#/voucher/id"}}),
    (("/v1/wallet", "get", "200"), "TillCodeOfFirst", _TILL_CODE,
     {"parameters": {"path.voucher_id": "$response.body#/vouchers/0/id"}}),
    ((*_TILL_CODE, "200"), "Quote", ("/v1/merchant/quotes", "post"), _CODE),
    ((*_TILL_CODE, "200"), "Redeem", _REDEMPTION, _CODE),
    ((*_REDEMPTION, "201"), "Redemption",
     ("/v1/merchant/redemptions/{redemption_id}", "get"), _REDEMPTION_ID),
    ((*_REDEMPTION, "201"), "Refund",
     ("/v1/merchant/redemptions/{redemption_id}/refunds", "post"), _REDEMPTION_ID),
]  # fmt: skip


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    components["securitySchemes"] = _SECURITY_SCHEMES
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = _PROBLEM
            tags = operation.get("tags", [])
            scheme = next((_SECURITY_BY_TAG[t] for t in tags if t in _SECURITY_BY_TAG), None)
            if scheme is not None and (path, method) not in _PUBLIC:
                operation["security"] = _SECURITY_EITHER.get((path, method), [{scheme: []}])
    _link(doc["paths"])
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def _link(paths: dict[str, Any]) -> None:
    for (path, method, status), name, (to_path, to_method), how in _LINKS:
        response = paths[path][method]["responses"][status]
        target = paths[to_path][to_method]["operationId"]
        response.setdefault("links", {})[name] = {"operationId": target, **how}
