"""The REST API behind ``tradepipe serve``: the CLI's library calls over HTTP.

:func:`create_app` builds a FastAPI app over the invocation's settings and
plugins. It holds no trading logic: each endpoint makes the same calls as the
command it mirrors — the broker through :func:`~tradepipe.pipeline.connect_broker`
(a live account is refused unless ``[run] allow_live``), orders and decisions
through :func:`~tradepipe.direct.direct_run` (sizing, every configured risk
filter — the ``halt`` kill switch among them — the ledger, the broker), the
ledger through :class:`~tradepipe.plugins.ledger.Ledger`.

Every route but ``/health`` (and the schema and docs) needs ``Authorization:
Bearer <token>``, checked in constant time before the request is read. Calls
are serialised: one broker connection, ledger or state-file change at a time.
Account numbers are masked in every answer.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Security
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.cli.broker import _dump, _position, _problem
from tradepipe.cli.context import AppContext
from tradepipe.cli.order import _check_bracket
from tradepipe.clock import SystemClock
from tradepipe.decisions import Decision, RejectedDecision
from tradepipe.direct import Outcome, direct_run
from tradepipe.host import PluginHost
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.plugins import execute_cli
from tradepipe.plugins.api_problems import BodyLimit, install, problem
from tradepipe.plugins.ledger import Ledger
from tradepipe.plugins.risk_halt import NEW_YORK, _state, state_path, write_state
from tradepipe.settings import AppSettings

#: Reachable without a token: liveness, and the schema and docs (no account data).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
SOURCE = "api"
ACCOUNT_KEYS = frozenset({"account_id", "account", "acct_id", "accounts"})
ClientOrderId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Symbol = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9. /-]{1,32}$")]
RunId = Annotated[str | None, Query(alias="run", max_length=64, description="default: latest")]
Limit = Annotated[int | None, Query(ge=1, le=10_000)]


T = TypeVar("T")


def masked(value: T, key: str = "") -> T:
    """``value`` with every account number masked, wherever it is."""
    out: Any = value
    if isinstance(value, dict):
        out = {k: masked(v, str(k)) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        out = [masked(v, key) for v in value]
    elif isinstance(value, str):
        out = mask_account(value) if key in ACCOUNT_KEYS else redact_accounts(value)
    return cast(T, out)


class StockOrder(BaseModel):
    """The fields of ``tradepipe order stock``."""

    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=r"^[A-Za-z0-9.]{1,12}$", examples=["AAPL"])
    side: Literal["buy", "sell"]
    quantity: Decimal = Field(gt=0, le=1_000_000, description="Shares.")
    order_type: Literal["market", "limit", "stop", "stop_limit"] = "market"
    limit_price: Decimal | None = Field(default=None, gt=0)
    stop_price: Decimal | None = Field(default=None, gt=0)
    tif: Literal["day", "gtc"] = "day"
    outside_rth: bool = False
    take_profit: Decimal | None = Field(default=None, gt=0)
    stop_loss: Decimal | None = Field(default=None, gt=0)
    rationale: str = Field(default="manual order from the REST API", max_length=2000)
    dry_run: bool = Field(default=False, description="Judge with the risk filters; send nothing.")
    what_if: bool = Field(default=False, description="Ask the broker for a preview; send nothing.")
    wait: float = Field(default=0.0, ge=0, le=60, description="Seconds to wait for a fill.")


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


BEARER = HTTPBearer(auto_error=False, description="The token `tradepipe serve` printed.")


def _documented(_: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> None:
    """Declares the bearer scheme in the schema; :class:`_Auth` enforces it."""


class _Auth:
    """ASGI middleware: a bearer token on every path but :data:`OPEN_PATHS`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, given = header.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(given.strip(), self.token):
                answer = problem(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Service:
    """The settings and plugins every call uses, and the lock that serialises them."""

    def __init__(self, settings: AppSettings, host: PluginHost) -> None:
        self.settings = settings
        self.host = host
        self.lock = threading.Lock()

    @contextmanager
    def broker(self, *, ready: bool = True) -> Iterator[tuple[Broker, BrokerStatus]]:
        """The configured broker, connected (live refused), disconnected on the way out."""
        with self.lock:
            adapter: Broker = make_component(
                self.host, self.settings, "broker", self.settings.run.broker
            )
            status = connect_broker(adapter, self.settings)
            try:
                trouble = _problem(adapter, status)
                if ready and trouble is not None:
                    raise trouble
                yield adapter, status
            finally:
                adapter.disconnect()

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        with self.lock:
            sink = make_component(self.host, self.settings, "sink", "sql")
            if sink.settings.url is None and not Path(sink.settings.path).exists():
                raise HTTPException(404, "there is no ledger yet")
            engine = sink.engine()
            try:
                yield Ledger(engine, sink.where)
            finally:
                engine.dispose()

    def run_id(self, ledger: Ledger, run_id: str | None) -> str:
        run = ledger.run(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}" if run_id else "the ledger has no runs")
        return run.run_id

    def outcome(self, outcome: Outcome, run_id: str | None) -> dict[str, Any]:
        order = outcome.order
        data = outcome.as_dict()
        data["run_id"] = run_id
        data["ok"] = order is not None and order.status.value not in ("denied", "rejected")
        return data

    def halt_file(self) -> Path:
        return state_path(AppContext(_settings=self.settings, _host=self.host))


def create_app(settings: AppSettings, host: PluginHost, token: str) -> FastAPI:
    """The API over ``settings`` and ``host``, answering requests that carry ``token``."""
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    service = Service(settings, host)
    app = FastAPI(
        title="tradepipe",
        summary="The tradepipe CLI's broker, order, ledger and halt operations over HTTP.",
        version="0.1.0",
        redoc_url=None,
    )
    install(app, [token, *settings.secret_values()])
    app.add_middleware(BodyLimit)
    app.add_middleware(_Auth, token=token)
    api = APIRouter(dependencies=[Security(_documented)])

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness; needs no token and says nothing about the account."""
        return {"status": "ok"}

    @api.get("/broker/status", tags=["broker"])
    def broker_status() -> dict[str, Any]:
        """Whether the broker can be used, and with which account (``tradepipe broker status``)."""
        with service.broker(ready=False) as (adapter, state):
            trouble = _problem(adapter, state)
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
            }
        )

    @api.get("/account", tags=["broker"])
    def account() -> dict[str, Any]:
        """Cash, equity and buying power (``tradepipe broker accounts``)."""
        with service.broker() as (adapter, state):
            summary = adapter.account()
        return masked({"broker": adapter.name, "paper": state.is_paper, "summary": _dump(summary)})

    @api.get("/positions", tags=["broker"])
    def positions() -> list[dict[str, Any]]:
        """Every position the broker reports (``tradepipe broker positions``)."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        return masked([_position(p) for p in held])

    @api.get("/positions/{symbol}", tags=["broker"])
    def position(symbol: Symbol) -> dict[str, Any]:
        """One symbol's position; 404 when none is held."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        found = [p for p in held if p.symbol == symbol.upper()]
        if not found:
            raise HTTPException(404, f"no position in {symbol.upper()}")
        return masked(_position(found[0]))

    @api.get("/orders", tags=["orders"])
    def open_orders() -> list[dict[str, Any]]:
        """Open orders as the broker sees them (``tradepipe broker orders``)."""
        with service.broker() as (adapter, _state):
            working = adapter.open_orders()
        return masked([_dump(o) for o in working])

    @api.post("/orders/stock", tags=["orders"])
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
        _check_bracket(decision)
        dry = order.dry_run or order.what_if
        with (
            service.lock,
            direct_run(settings, host, source=SOURCE, dry_run=dry, clock=clock) as run,
        ):
            outcome = (
                run.preview(decision) if order.what_if else run.execute(decision, wait=order.wait)
            )
            ledger = None if dry else run.pipeline.run.run_id
        return masked(service.outcome(outcome, ledger))

    @api.post("/decisions/execute", tags=["orders"])
    def execute_decision(
        document: Annotated[dict[str, Any], Body(description="A decision document.")],
        dry_run: bool = False,
        what_if: bool = False,
        wait: Annotated[float, Query(ge=0, le=60)] = 0.0,
    ) -> dict[str, Any]:
        """A decision document (``tradepipe execute``) → the verdicts and the order.

        A document that is not a valid decision is answered 422 (and, unless
        dry, recorded as rejected in the ledger); nothing is sent.
        """
        text = json.dumps(document)
        run_settings = settings.model_copy(
            update={
                "run": settings.run.model_copy(
                    update={"session": settings.run.session or execute_cli.DEFAULT_SESSION}
                )
            }
        )
        dry = dry_run or what_if
        item = None if execute_cli._has_options(text) else execute_cli._read(text)
        outcome: Outcome | None = None
        clock = SystemClock()
        ledger: str | None = None
        if not (isinstance(item, RejectedDecision) and dry):
            with (
                service.lock,
                direct_run(
                    run_settings, host, source=execute_cli.SOURCE, dry_run=dry, clock=clock
                ) as run,
            ):
                ledger = None if dry else run.pipeline.run.run_id
                if item is None:
                    item = execute_cli._read(text, run, clock.now().date())
                if isinstance(item, RejectedDecision):
                    if not dry:
                        run.executor.record.rejected(execute_cli.SOURCE, item.raw, item.error)
                else:
                    outcome = run.preview(item) if what_if else run.execute(item, wait=wait)
        if outcome is None:
            assert isinstance(item, RejectedDecision)
            raise HTTPException(422, f"decision rejected: {item.error}")
        return masked(service.outcome(outcome, ledger))

    @api.delete("/orders/{client_order_id}", status_code=202, tags=["orders"])
    def cancel(client_order_id: ClientOrderId) -> dict[str, Any]:
        """Ask the broker to cancel; it is final only once the broker confirms."""
        with service.broker() as (adapter, _state):
            update = adapter.cancel(client_order_id)
        return masked(
            {
                "client_order_id": client_order_id,
                "broker": adapter.name,
                "status": update.status.value,
                "final": update.status.is_terminal,
                "reason": update.reason,
            }
        )

    @api.get("/ledger/orders", tags=["ledger"])
    def ledger_orders(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Orders of a run with their latest status (``tradepipe ledger orders``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [
                {**o.model_dump(mode="json", exclude={"id"}), "status": status, "reason": reason}
                for o, status, reason in led.orders(rid, limit)
            ]
        return masked({"run_id": rid, "orders": rows})

    @api.get("/ledger/fills", tags=["ledger"])
    def ledger_fills(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Fills of a run (``tradepipe ledger fills``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [f.model_dump(mode="json", exclude={"id"}) for f in led.fills(rid, limit)]
        return masked({"run_id": rid, "fills": rows})

    @api.get("/ledger/decisions", tags=["ledger"])
    def ledger_decisions(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Decisions of a run (``tradepipe ledger decisions``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [r.model_dump(mode="json", exclude={"id"}) for r in led.decisions(rid, limit)]
        return masked({"run_id": rid, "decisions": rows})

    @api.get("/explain/{key}", tags=["ledger"])
    def explain(key: Annotated[str, PathParam(max_length=128)]) -> list[dict[str, Any]]:
        """Verdicts, order, status changes and fills of an id (``tradepipe explain``)."""
        with service.ledger() as led:
            chains = led.chains(key)
        if not chains:
            raise HTTPException(404, f"the ledger knows no decision or order {key!r}")
        return masked(json.loads(json.dumps(chains, default=str)))

    @api.post("/halt", tags=["risk"])
    def halt(request: HaltRequest | None = None) -> dict[str, Any]:
        """Halt trading until ``/resume`` (``tradepipe halt``)."""
        reason = (request.reason if request else "") or "halted by hand"
        with service.lock:
            path = service.halt_file()
            state = _state(path)
            state["manual"] = {
                "reason": reason,
                "at": datetime.now(NEW_YORK).isoformat(timespec="seconds"),
            }
            write_state(path, state)
        honoured = "halt" in settings.run.risk_filters
        return masked(
            {
                "halted": True,
                **state["manual"],
                "warning": None
                if honoured
                else "`halt` is not in [run] risk_filters; pipelines will not honour this halt",
            }
        )

    @api.post("/resume", tags=["risk"])
    def resume() -> dict[str, Any]:
        """Lift the manual halt (``tradepipe resume``)."""
        with service.lock:
            path = service.halt_file()
            state = _state(path)
            was = bool(state.pop("manual", None))
            write_state(path, state)
        return {"halted": False, "was_halted": was}

    app.include_router(api)
    return app
