"""Request-scoped pieces: the container, and who is calling (token or merchant signature)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from xfq.api.auth.merchant_signature import SignatureCode, SignatureError
from xfq.api.auth.tokens import Identity, Role, require_role
from xfq.bootstrap import Container

# Every dependency is `async def`: FastAPI runs a plain `def` one in a worker thread, which cost
# more than the dependency itself (measured ~0.1 ms a hop, and GIL contention with the writer).
# The one that waits on the ledger or Redis (`merchant`) hands that part to a thread itself.


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def _identity(request: Request, container: Container, remember: bool = True) -> Identity:
    header = request.headers.get("authorization")
    return container.tokens.verify(header, container.clock.now(), remember)


async def citizen(request: Request, container: ContainerDep) -> Identity:
    identity = _identity(request, container)
    require_role(identity, Role.CITIZEN)
    return identity


async def citizen_once(request: Request, container: ContainerDep) -> Identity:
    """A citizen on a route their token is sent to about once (the claim pass): verified, not
    kept in the token cache, where it would push out tokens that are sent again."""
    identity = _identity(request, container, remember=False)
    require_role(identity, Role.CITIZEN)
    return identity


async def operator(request: Request, container: ContainerDep) -> Identity:
    identity = _identity(request, container)
    require_role(identity, Role.OPERATOR)
    return identity


async def reader(request: Request, container: ContainerDep) -> Identity:
    """Operators and auditors may read the operator views."""
    identity = _identity(request, container)
    require_role(identity, Role.OPERATOR, Role.AUDITOR)
    return identity


async def desk(request: Request, container: ContainerDep) -> Identity:
    """Staff of the assisted channel (service desks, bank counters)."""
    identity = _identity(request, container)
    require_role(identity, Role.DESK)
    return identity


async def merchant(request: Request, container: ContainerDep) -> str:
    """The merchant whose till signed this request."""
    body = await request.body()
    # Exactly the bytes the till sent and signed, not a re-encoded URL.
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    path = (raw_path + (b"?" + query if query else b"")).decode("latin-1")

    def verify() -> str:
        return container.signatures.verify(
            request.headers, request.method, path, body, container.clock.now()
        )

    def checked() -> str:
        container.forget_revoked_keys()  # revoked through any worker: see KEY_REFRESH_S
        try:
            return verify()
        except SignatureError as error:
            # A key approved through another worker process is in the ledger, not yet here.
            if error.code != SignatureCode.UNKNOWN_KEY or not container.refresh_merchant_keys():
                raise
            return verify()

    # Off the event loop: the revoked keys are read from the ledger (once a second) and the
    # shared nonce store is a Redis round trip; a slow or cut link must hold up this till alone,
    # not every request of the process. It takes no `SqlLedger.reader`: anyio's pool will do.
    return await run_in_threadpool(checked)


CitizenDep = Annotated[Identity, Depends(citizen)]
CitizenOnceDep = Annotated[Identity, Depends(citizen_once)]
OperatorDep = Annotated[Identity, Depends(operator)]
ReaderDep = Annotated[Identity, Depends(reader)]
MerchantDep = Annotated[str, Depends(merchant)]
DeskDep = Annotated[Identity, Depends(desk)]
KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"  # an Idempotency-Key, also checked by the claim front
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=KEY_PATTERN,
        description="The same key gives the same answer and no second effect",
    ),
]
