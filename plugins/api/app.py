"""The REST API behind ``tradepipe serve``: the CLI's library calls over HTTP.

:func:`create_app` builds a FastAPI app over the invocation's settings and
plugins. It holds no trading logic: each endpoint makes the same calls as the
command it mirrors — the broker through :func:`~tradepipe.pipeline.connect_broker`
(a live account is refused unless ``[run] allow_live``), orders and decisions
through :func:`~tradepipe.direct.direct_run` (sizing, every configured risk
filter — the ``halt`` kill switch among them — the ledger, the broker), the
ledger through :class:`~tradepipe.plugins.ledger.queries.Ledger`.

Every route but ``/health`` (and the schema and docs) needs ``Authorization:
Bearer <token>``, checked in constant time before the request is read. Calls
run concurrently; :class:`~tradepipe.plugins.api.service.Service` serialises
only the use of the broker (and of the one connection it may keep), orders of
the account, and state-file changes. ``/health`` runs on the event loop: it
needs no thread and waits on no lock. Account numbers are masked in
every answer. The routes are grouped by area (``broker_routes``,
``order_routes``, ``ledger_routes``, ``risk_routes``), the request and answer
models are in :mod:`~tradepipe.plugins.api.models`, the reports (equity, tax, snapshots) in
:mod:`~tradepipe.plugins.api.reports`, the offline docs page in
:mod:`~tradepipe.plugins.api.docs`, the headers every answer carries in
:mod:`~tradepipe.plugins.api.headers`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send
from tradepipe.host import PluginHost
from tradepipe.plugins.api.approval_routes import approval_router
from tradepipe.plugins.api.broker_routes import broker_router
from tradepipe.plugins.api.docs import ASSETS, install_docs
from tradepipe.plugins.api.headers import SecurityHeaders
from tradepipe.plugins.api.ledger_routes import ledger_router
from tradepipe.plugins.api.models import (
    Health,
)
from tradepipe.plugins.api.order_routes import order_router
from tradepipe.plugins.api.problems import (
    BodyLimit,
    install,
    problem,
)
from tradepipe.plugins.api.reports import reports_router
from tradepipe.plugins.api.research_routes import research_router
from tradepipe.plugins.api.risk_routes import risk_router
from tradepipe.plugins.api.service import Service, masked
from tradepipe.plugins.dashboard import page as dashboard
from tradepipe.settings import AppSettings

#: Reachable without a token: liveness, the schema and docs, the dashboard page and its
#: files (none holds account data).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", *dashboard.OPEN})
#: Reachable without a token below these: the docs page's script, styles and icon.
OPEN_PREFIXES = (f"{ASSETS}/",)
#: Threads for calls (at least): each call but ``/health`` runs on one.
THREADS = 200


BEARER = HTTPBearer(auto_error=False, description="The token `tradepipe serve` printed.")


def _documented(_: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> None:
    """Declares the bearer scheme in the schema; :class:`_Auth` enforces it."""


class _Auth:
    """ASGI middleware: a bearer token on every path but the open ones.

    Open: :data:`OPEN_PATHS` exactly, and what lies below :data:`OPEN_PREFIXES`.
    A websocket without the token is closed before it opens (there is no
    websocket route; one added later is guarded all the same).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        kind = scope["type"]
        if kind in ("http", "websocket") and not (
            path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        ):
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, given = header.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.token):
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                answer = problem(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: AppSettings, host: PluginHost, token: str) -> FastAPI:
    """The API over ``settings`` and ``host``, answering requests that carry ``token``."""
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    service = Service(settings, host)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Calls waiting for the broker or an order each hold a thread: enough
        # threads that those never leave a ledger read waiting for one.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, THREADS)
        yield
        # A kept broker connection (and an IBKR keep-alive thread) ends with the server.
        await run_in_threadpool(service.close)

    app = FastAPI(
        title="tradepipe",
        summary="The tradepipe CLI's broker, order, ledger and halt operations over HTTP.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service  # for tests and for code mounted beside the API
    install(app, [token, *settings.secret_values()])
    app.add_middleware(BodyLimit)
    app.add_middleware(_Auth, token=token)
    # Outermost, so the refusals of the two above carry the headers too.
    app.add_middleware(SecurityHeaders, cacheable=OPEN_PREFIXES)
    install_docs(app)
    api = APIRouter(dependencies=[Security(_documented)])

    @app.get("/health", tags=["service"], response_model=Health)
    async def health() -> dict[str, str]:
        """Liveness; needs no token, says nothing about the account, and waits on nothing."""
        return {"status": "ok"}

    api.include_router(broker_router(service))
    api.include_router(order_router(service))
    api.include_router(ledger_router(service))
    api.include_router(risk_router(service))
    api.include_router(reports_router(service))
    api.include_router(research_router(service))
    api.include_router(approval_router(service))
    dashboard.mount(app, api, service.ledger_if_any, masked, service.fresh)
    app.include_router(api)
    return app
