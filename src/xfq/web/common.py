"""What the three pages share: templates, language, sign-in cookies, small form bodies."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import jinja2
from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from xfq.api.auth.tokens import AuthError, Identity, Role, require_role
from xfq.bootstrap import Container
from xfq.domain.money import format_yuan
from xfq.web.i18n import LANG_COOKIE, Translator, pick_lang

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
CITIZEN_COOKIE = "xfq_citizen"
OPERATOR_COOKIE = "xfq_operator"
MAX_FORM_BYTES = 16_384
MAX_FORM_FIELDS = 32
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600
SUBJECT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Pages load only their own files: no inline script, no third party, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _local(moment: datetime, tz: tzinfo, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(tz).strftime(pattern)


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["yuan"] = format_yuan
_env.filters["local"] = _local
_env.filters["epoch_ms"] = _epoch_ms
templates = Jinja2Templates(env=_env)


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def translator(request: Request) -> Translator:
    return Translator(pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)))


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A template (page or fragment) in the visitor's language, with the pages' headers."""
    t = translator(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"t": t, **context},
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
    if request.query_params.get("lang") in ("zh", "en"):
        response.set_cookie(
            LANG_COOKIE, t.lang, max_age=LANG_COOKIE_MAX_AGE_S, httponly=True, samesite="lax"
        )
    return response


def new_key(prefix: str) -> str:
    """A fresh idempotency key (or order reference) for one rendered form."""
    return f"{prefix}-{secrets.token_hex(12)}"


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form body (what htmx and plain forms send), bounded in size."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "the form is too large")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form cannot be read") from None
    return {name: value.strip() for name, value in pairs}


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (sign-in cookies are also SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "a form from another site")


SameOrigin = Annotated[None, Depends(same_origin)]


def signed_in(request: Request, cookie: str, *roles: Role) -> tuple[Identity, str] | None:
    """The identity and bearer token in a sign-in cookie, if it is still good for `roles`."""
    token = request.cookies.get(cookie)
    if not token:
        return None
    container = container_of(request)
    try:
        identity = container.tokens.verify(f"Bearer {token}", container.clock.now())
        require_role(identity, *roles)
    except AuthError:
        return None
    return identity, token


def end_session(location: str, cookie: str) -> Response:
    """Sign out: forget the session cookie and go back to the page."""
    response = RedirectResponse(location, status_code=303)
    response.delete_cookie(cookie)
    return response


def start_session(request: Request, response: Response, cookie: str, token: str) -> None:
    response.set_cookie(
        cookie,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def dev_token(
    container: Container,
    subject: str,
    role: Role,
    residency: str | None = "permanent",
    in_city: bool = True,
) -> str | None:
    """A token from the development issuer, or None when it is not enabled."""
    issuer = container.dev_issuer
    if issuer is None or not SUBJECT.fullmatch(subject):
        return None
    return issuer.token(subject, role, container.clock.now(), residency=residency, in_city=in_city)
