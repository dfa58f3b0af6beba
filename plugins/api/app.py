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
every answer. The request and answer models are in
:mod:`~tradepipe.plugins.api.models`, the reports (equity, tax, snapshots) in
:mod:`~tradepipe.plugins.api.reports`, the offline docs page in
:mod:`~tradepipe.plugins.api.docs`, the headers every answer carries in
:mod:`~tradepipe.plugins.api.headers`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Security
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.clock import NEW_YORK, Clock, SystemClock
from tradepipe.decisions import Decision, RejectedDecision, bracket_problem
from tradepipe.direct import Direct, Outcome
from tradepipe.errors import ConfigError
from tradepipe.host import PluginHost
from tradepipe.instruments import Option
from tradepipe.options.orders import option_fields, place_strategy, strategy_document
from tradepipe.order_rules import OrderRules
from tradepipe.plugins.api.docs import ASSETS, install_docs
from tradepipe.plugins.api.headers import SecurityHeaders
from tradepipe.plugins.api.models import (
    Account,
    BrokerState,
    CancelRequested,
    Halted,
    HaltRequest,
    HaltState,
    Health,
    LedgerDecisions,
    LedgerFills,
    LedgerOrders,
    LiveStatus,
    OptionsOrder,
    OrderOutcome,
    Position,
    Released,
    Resumed,
    StockOrder,
    WorkingOrder,
)
from tradepipe.plugins.api.problems import (
    BROKER_ERRORS,
    LEDGER_ERRORS,
    ORDER_ERRORS,
    BodyLimit,
    install,
    problem,
    problems,
)
from tradepipe.plugins.api.reports import reports_router
from tradepipe.plugins.api.service import Service, masked
from tradepipe.plugins.dashboard import page as dashboard
from tradepipe.services import documents
from tradepipe.services.broker import await_final, broker_problem
from tradepipe.services.figures import model_figures, position_figures
from tradepipe.services.halt import halts_now, lift_halt, set_halt
from tradepipe.services.records import record_end
from tradepipe.services.status import read_status, status_path
from tradepipe.settings import AppSettings

#: Reachable without a token: liveness, the schema and docs, the dashboard page and its
#: files (none holds account data).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", *dashboard.OPEN})
#: Reachable without a token below these: the docs page's script, styles and icon.
OPEN_PREFIXES = (f"{ASSETS}/",)
SOURCE = "api"
#: Threads for calls (at least): each call but ``/health`` runs on one.
THREADS = 200
#: How an order is to be executed, beside what it trades (``tradepipe order``'s options).
ORDER_TERMS = frozenset(
    {"order_type", "limit_price", "stop_price", "tif", "outside_rth", "rationale"}
)
ClientOrderId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Symbol = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9. /-]{1,32}$")]
RunId = Annotated[str | None, Query(alias="run", max_length=64, description="default: latest")]
Limit = Annotated[int | None, Query(ge=1, le=10_000)]


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


def _status(adapter: Broker, state: BrokerStatus, *, held: bool) -> dict[str, Any]:
    """``/broker/status``'s answer: the broker's state, whether it is ready, whether it is kept."""
    trouble = broker_problem(adapter, state)
    return masked(
        {
            "broker": adapter.name,
            "connected": state.connected,
            "authenticated": state.authenticated,
            "account_id": state.account_id,
            "paper": state.is_paper,
            "message": state.message,
            "ready": trouble is None,
            "problem": None if trouble is None else str(trouble),
            "held": held,
        }
    )


def create_app(settings: AppSettings, host: PluginHost, token: str) -> FastAPI:
    """The API over ``settings`` and ``host``, answering requests that carry ``token``."""
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    service = Service(settings, host)
    rules = OrderRules.of(settings)

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

    @api.get("/broker/status", tags=["broker"], response_model=BrokerState, responses=BROKER_ERRORS)
    def broker_status() -> dict[str, Any]:
        """Whether the broker can be used, and with which account (``tradepipe broker status``)."""
        with service.broker(ready=False) as (adapter, state):
            return _status(adapter, state, held=service.held is adapter)

    @api.post(
        "/broker/connect", tags=["broker"], response_model=BrokerState, responses=BROKER_ERRORS
    )
    def broker_connect() -> dict[str, Any]:
        """Connect the broker and keep the connection for later calls (idempotent).

        Reads then use it instead of connecting each time; an IBKR adapter
        keeps its session alive meanwhile. A live account is refused unless
        ``[run] allow_live``; a broker that is not ready is not kept (503).
        """
        adapter, state = service.hold()
        return _status(adapter, state, held=True)

    @api.post("/broker/disconnect", tags=["broker"], response_model=Released)
    def broker_disconnect() -> dict[str, Any]:
        """Release the kept connection (idempotent); ``released`` says whether there was one."""
        return {"held": False, "released": service.release()}

    @api.get("/account", tags=["broker"], response_model=Account, responses=BROKER_ERRORS)
    def account() -> dict[str, Any]:
        """Cash, equity and buying power (``tradepipe broker accounts``)."""
        with service.broker() as (adapter, state):
            summary = adapter.account()
        return masked(
            {"broker": adapter.name, "paper": state.is_paper, "summary": model_figures(summary)}
        )

    @api.get("/positions", tags=["broker"], response_model=list[Position], responses=BROKER_ERRORS)
    def positions() -> list[dict[str, Any]]:
        """Every position the broker reports (``tradepipe broker positions``)."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        return masked([position_figures(p) for p in held])

    @api.get(
        "/positions/{symbol}",
        tags=["broker"],
        response_model=Position,
        responses=problems(400, 404, 502, 503),
    )
    def position(symbol: Symbol) -> dict[str, Any]:
        """One symbol's position; 404 when none is held."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        found = [p for p in held if p.symbol == symbol.upper()]
        if not found:
            raise HTTPException(404, f"no position in {symbol.upper()}")
        return masked(position_figures(found[0]))

    @api.get("/orders", tags=["orders"], response_model=list[WorkingOrder], responses=BROKER_ERRORS)
    def open_orders() -> list[dict[str, Any]]:
        """Open orders as the broker sees them (``tradepipe broker orders``)."""
        with service.broker() as (adapter, _state):
            working = adapter.open_orders()
        return masked([model_figures(o) for o in working])

    @api.post("/orders/stock", tags=["orders"], response_model=OrderOutcome, responses=ORDER_ERRORS)
    def order_stock(order: StockOrder) -> dict[str, Any]:
        """One stock order through sizing, every risk filter, the ledger and the broker.

        As ``tradepipe order stock``: ``dry_run`` judges without sending or
        writing; ``what_if`` also asks the broker for its preview. A denial is
        an answer (``ok`` false, the verdicts say why), not an error.
        """
        clock = SystemClock()
        decision = Decision(
            source=SOURCE,
            created_at=clock.now(),
            confidence=100,
            action=order.side,
            **order.model_dump(exclude={"side", "dry_run", "what_if", "wait"}),
        )
        problem = bracket_problem(
            decision.action, decision.take_profit, decision.stop_loss, ("take_profit", "stop_loss")
        )
        if problem:
            raise ConfigError(problem)
        rules.require_decision(decision, clock.now())
        dry = order.dry_run or order.what_if
        with service.run(settings, source=SOURCE, dry_run=dry, clock=clock) as run:
            outcome = (
                run.preview(decision) if order.what_if else run.execute(decision, wait=order.wait)
            )
            ledger = None if dry else run.pipeline.run.run_id
        return masked(service.outcome(outcome, ledger))

    @api.post(
        "/orders/options", tags=["orders"], response_model=OrderOutcome, responses=ORDER_ERRORS
    )
    def order_options(order: OptionsOrder) -> dict[str, Any]:
        """An option, a combo, or a named strategy through the whole pipeline.

        As ``tradepipe order options``: ``legs`` with exact strikes and
        expiries make one option (on its leg's side) or a combo (bought or
        sold as ``side``). ``strategy`` instead names one as a decision
        document does: the broker's option chain chooses its legs and prices
        it, so the broker is asked even with ``dry_run``. A strategy the chain
        cannot build is answered 422 and leaves the ledger as it was; so is,
        before anything is asked, one it cannot be sent as (a stop order).
        """
        clock = SystemClock()
        dry = order.dry_run or order.what_if
        pending: Decision | dict[str, Any]
        if order.strategy is None:
            legs = [
                (
                    leg.action,
                    leg.ratio,
                    Option(
                        underlying=order.underlying,
                        right=leg.right,
                        strike=leg.strike,
                        expiry=leg.expiry,
                    ),
                )
                for leg in order.legs
            ]
            pending = Decision(
                source=SOURCE,
                created_at=clock.now(),
                confidence=100,
                quantity=order.quantity,
                **option_fields(legs, order.side),
                **order.model_dump(include=set(ORDER_TERMS)),
            )
            rules.require_decision(pending, clock.now())
        else:
            try:
                pending = strategy_document(
                    order.underlying,
                    order.strategy,
                    side=order.side,
                    quantity=order.quantity,
                    terms=order.model_dump(mode="json", include=set(ORDER_TERMS)),
                    source=SOURCE,
                    created_at=clock.now(),
                )
            except ValueError as exc:
                raise HTTPException(422, f"options order rejected: {exc}") from None
        outcome: Outcome | RejectedDecision
        if not isinstance(pending, Decision):

            def open_run(dry: bool, at: Clock) -> AbstractContextManager[Direct]:
                return service.run(settings, source=SOURCE, dry_run=dry, clock=at)

            outcome, ledger = place_strategy(
                open_run,
                pending,
                source=SOURCE,
                dry_run=order.dry_run,
                what_if=order.what_if,
                wait=order.wait,
            )
        else:
            with service.run(settings, source=SOURCE, dry_run=dry, clock=clock) as run:
                ledger = None if dry else run.pipeline.run.run_id
                if order.what_if:
                    outcome = run.preview(pending)
                else:
                    outcome = run.execute(pending, wait=order.wait)
        if isinstance(outcome, RejectedDecision):
            raise HTTPException(422, f"options order rejected: {outcome.error}")
        return masked(service.outcome(outcome, ledger))

    @api.post(
        "/decisions/execute",
        tags=["orders"],
        response_model=OrderOutcome,
        responses=ORDER_ERRORS,
    )
    def execute_decision(
        document: Annotated[dict[str, Any], Body(description="A decision document.")],
        dry_run: bool = False,
        what_if: bool = False,
        wait: Annotated[float, Query(ge=0, le=60)] = 0.0,
    ) -> dict[str, Any]:
        """A decision document (``tradepipe execute``) → the verdicts and the order.

        A document that is not a valid decision is answered 422; nothing is
        sent and nothing is written to the ledger.
        """
        text = json.dumps(document)
        run_settings = settings.model_copy(
            update={
                "run": settings.run.model_copy(
                    update={"session": settings.run.session or documents.DEFAULT_SESSION}
                )
            }
        )

        def open_run(dry: bool, clock: Clock) -> AbstractContextManager[Direct]:
            return service.run(run_settings, source=documents.SOURCE, dry_run=dry, clock=clock)

        result, ledger = documents.execute_document(
            text, open_run, dry_run=dry_run, what_if=what_if, wait=wait
        )
        if isinstance(result, RejectedDecision):
            raise HTTPException(422, f"decision rejected: {result.error}")
        return masked(service.outcome(result, ledger))

    @api.delete(
        "/orders/{client_order_id}",
        status_code=202,
        tags=["orders"],
        response_model=CancelRequested,
        responses=ORDER_ERRORS,
    )
    def cancel(
        client_order_id: ClientOrderId,
        wait: Annotated[
            float,
            Query(
                ge=0, le=30, description="Seconds to wait for the broker to confirm (as the CLI)."
            ),
        ] = 5.0,
    ) -> dict[str, Any]:
        """Ask the broker to cancel (``tradepipe broker cancel``).

        It is final only once the broker confirms: with ``wait`` the broker is
        asked again until then. A confirmed end is written into the order's
        history in the ledger (``ledger_run`` names the reconciliation run).
        """
        with service.order_lock, service.broker() as (adapter, _state):
            update = adapter.cancel(client_order_id)
            final, known = update.status, True
            if not final.is_terminal and wait > 0:
                final, known = await_final(adapter, client_order_id, final, wait)
            recorded = record_end(settings, host, adapter, client_order_id, final, known, update)
        return masked(
            {
                "client_order_id": client_order_id,
                "broker": adapter.name,
                "status": final.value,
                "final": final.is_terminal,
                "reason": update.reason,
                "ledger_run": recorded,
            }
        )

    @api.get(
        "/ledger/orders", tags=["ledger"], response_model=LedgerOrders, responses=LEDGER_ERRORS
    )
    def ledger_orders(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Orders of a run with their latest status (``tradepipe ledger orders``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [
                {**o.model_dump(mode="json", exclude={"id"}), "status": status, "reason": reason}
                for o, status, reason in led.orders(rid, limit)
            ]
        return masked({"run_id": rid, "orders": rows})

    @api.get("/ledger/fills", tags=["ledger"], response_model=LedgerFills, responses=LEDGER_ERRORS)
    def ledger_fills(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Fills of a run (``tradepipe ledger fills``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [f.model_dump(mode="json", exclude={"id"}) for f in led.fills(rid, limit)]
        return masked({"run_id": rid, "fills": rows})

    @api.get(
        "/ledger/decisions",
        tags=["ledger"],
        response_model=LedgerDecisions,
        responses=LEDGER_ERRORS,
    )
    def ledger_decisions(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Decisions of a run (``tradepipe ledger decisions``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [r.model_dump(mode="json", exclude={"id"}) for r in led.decisions(rid, limit)]
        return masked({"run_id": rid, "decisions": rows})

    @api.get("/explain/{key}", tags=["ledger"], responses=LEDGER_ERRORS)
    def explain(key: Annotated[str, PathParam(max_length=128)]) -> list[dict[str, Any]]:
        """Verdicts, order, status changes and fills of an id (``tradepipe explain``)."""
        with service.ledger() as led:
            chains = led.chains(key)
        if not chains:
            raise HTTPException(404, f"the ledger knows no decision or order {key!r}")
        return masked(json.loads(json.dumps(chains, default=str)))

    @api.get("/halt", tags=["risk"], response_model=HaltState, responses=problems(400))
    def halt_state() -> dict[str, Any]:
        """The kill switch: the manual halt and today's loss-limit halt.

        Every pipeline honours the manual halt: its ``halt`` filter always runs.
        """
        return masked(halts_now(settings, datetime.now(NEW_YORK)))

    @api.get("/status", tags=["service"], response_model=LiveStatus, responses=problems(400))
    def live_status() -> dict[str, Any]:
        """Whether a live run is up, and its market, feed, orders and P&L (``tradepipe status``).

        Read from the status file the run rewrites (``[run] status_file``); an
        answer, not an error, when no run is up.
        """
        return masked(read_status(status_path(settings)))

    @api.post("/halt", tags=["risk"], response_model=Halted, responses=problems(400))
    def halt(request: HaltRequest | None = None) -> dict[str, Any]:
        """Halt trading until ``/resume`` (``tradepipe halt``)."""
        with service.files:
            reason = request.reason if request else ""
            manual = set_halt(service.halt_file(), reason, SystemClock().now())
        return masked({"halted": True, **manual})

    @api.post("/resume", tags=["risk"], response_model=Resumed, responses=problems(400))
    def resume() -> dict[str, Any]:
        """Lift the manual halt (``tradepipe resume``)."""
        with service.files:
            was, _ = lift_halt(service.halt_file())
        return {"halted": False, "was_halted": was}

    api.include_router(reports_router(service))
    dashboard.mount(app, api, service.ledger_if_any, masked, service.fresh)
    app.include_router(api)
    return app
