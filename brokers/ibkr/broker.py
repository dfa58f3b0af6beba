"""The :class:`~tradepipe.Broker` both IBKR adapters are: everything but authentication.

Exactly-once (reference §6, DESIGN "Brokers"): the executor has made the
intent durable before :meth:`WebApiBroker.place` is called; every order
carries its deterministic ``cOID``. A send whose outcome is unclear (timeout,
dropped connection, 5xx after the request left) is reported UNKNOWN and is
settled by :meth:`WebApiBroker.order`, which looks the ``cOID`` up in IBKR's
live orders and executions; it is never sent again. IBKR answering "already
registered" for a ``cOID`` means the order exists: it is reported as accepted.
A failure before anything left (no session, pacing refusal, unknown symbol)
is a rejection with the reason, so it cannot be mistaken for a placed order.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import httpx
from pydantic import Field, ValidationError, field_validator
from tradepipe.adapter import Broker, BrokerEvent, BrokerStatus, OrderReport, OrderUpdate
from tradepipe.brokers.ibkr.brackets import Exits
from tradepipe.brokers.ibkr.chain import with_market_data
from tradepipe.brokers.ibkr.client import WebApiClient, error_text
from tradepipe.brokers.ibkr.contracts import Contracts, month_code
from tradepipe.brokers.ibkr.market import MarketData
from tradepipe.brokers.ibkr.orders import (
    Placed,
    ReplyPolicy,
    bracket,
    check_message_ids,
    combo_conidex,
    combo_fills,
    decimal,
    execution,
    modified_ticket,
    order_status,
    report,
    status_report,
    submit,
    ticket,
)
from tradepipe.brokers.ibkr.pacing import (
    GATEWAY_RATE,
    MARGIN,
    MARGIN_SECONDS,
    OAUTH_RATE,
    PENALTY_SECONDS,
    FileState,
    MemoryState,
    Pacer,
    default_state_file,
)
from tradepipe.brokers.ibkr.session import Authenticator, Session
from tradepipe.clock import Clock, SystemClock
from tradepipe.component import ComponentSettings
from tradepipe.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerRejectedError,
    BrokerUnavailableError,
)
from tradepipe.instruments import Combo, Option, Stock
from tradepipe.logs import add_secrets
from tradepipe.market import Bar, Quote
from tradepipe.options.chain import OptionQuote
from tradepipe.order_rules import Change
from tradepipe.orders import BRACKET_SOURCE, Fill, OrderIntent, OrderStatus
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.reconcile import adopted_intent

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.stream import Handshake

log = logging.getLogger("tradepipe.brokers.ibkr")
_RIGHTS: tuple[tuple[Literal["C", "P"], str], ...] = (("C", "call"), ("P", "put"))

_MAX_POSITION_PAGES = 200
#: One IBKR status name for each of ours, to describe a looked-up order as IBKR would.
_IBKR_NAMES = {
    OrderStatus.ACCEPTED: "Submitted",
    OrderStatus.PARTIALLY_FILLED: "Submitted",
    OrderStatus.PENDING_CANCEL: "PendingCancel",
    OrderStatus.CANCELED: "Cancelled",
    OrderStatus.FILLED: "Filled",
    OrderStatus.REJECTED: "Inactive",
}
#: Statuses that come from executions rather than from the order list, so a
#: fill is never counted before its execution is seen.
_FROM_FILLS = frozenset({OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED})


class WebApiSettings(ComponentSettings):
    """Settings every IBKR Web API adapter has (see the README for each key)."""

    account_id: str = ""
    timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    #: /tickle every this many seconds (IBKR drops idle sessions after ~5 min); 0 = off.
    keepalive_seconds: float = Field(default=60.0, ge=0, le=240)
    #: /sso/validate every this many seconds (IBKR allows one a minute).
    validate_seconds: float = Field(default=300.0, ge=60)
    #: After ssodh/init, how long to wait for IBKR to report the brokerage session up.
    init_wait_seconds: float = Field(default=30.0, ge=1, le=300)
    #: Take the brokerage session from another login of the same username.
    compete: bool = False
    #: IBKR question ids confirmed automatically, e.g. ["o163", "o354"].
    confirm: list[str] = Field(default_factory=list)
    #: On a paper account, confirm every question.
    confirm_all_on_paper: bool = False
    #: IBKR question ids that wait for a person in the approval queue instead of
    #: being refused; ["*"] = every question not confirmed.
    ask: list[str] = Field(default_factory=list)
    #: Question ids suppressed at IBKR for the session (re-sent after every login).
    suppress: list[str] = Field(default_factory=list, max_length=51)
    #: How long after a send IBKR may take to list an order. An order whose send
    #: had no clear answer, and which IBKR's lookups do not find after this, is
    #: recorded as never having reached IBKR (rejected).
    order_visibility_seconds: float = Field(default=60.0, ge=10, le=3600)
    #: Reads of IBKR's order list, at its pace, before a list that is still being
    #: prepared (snapshot: false) is an error.
    order_list_reads: int = Field(default=4, ge=1, le=20)
    #: How often order status and executions are read (IBKR: once per 5 s).
    poll_seconds: float = Field(default=5.0, ge=5.0)
    snapshot_attempts: int = Field(default=5, ge=1, le=20)
    #: Option chains of one expiry: prices and greeks for this many listed strikes
    #: each side of the underlying's price (0 = listing only). At most 25, so the
    #: window's calls and puts fit in one snapshot request (IBKR: 100 conids).
    chain_strike_window: int = Field(default=10, ge=0, le=25)
    penalty_seconds: float = Field(default=PENALTY_SECONDS, ge=600)
    #: Global request rate (each adapter narrows the allowed range).
    requests_per_second: float = Field(default=GATEWAY_RATE, gt=0, le=OAUTH_RATE)
    #: Headroom on IBKR's limits: this fraction of each interval, and at least
    #: ``pacing_margin_seconds`` on limits of a second or more.
    pacing_margin: float = Field(default=MARGIN, ge=0, le=1)
    pacing_margin_seconds: float = Field(default=MARGIN_SECONDS, ge=0, le=5)
    #: The file every process on this machine shares the pacing budget through;
    #: "" = one per gateway under $XDG_STATE_HOME/tradepipe, "none" = this process only.
    pacing_file: str = ""

    @field_validator("confirm", "suppress")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return check_message_ids(value)

    @field_validator("ask")
    @classmethod
    def _ask(cls, value: list[str]) -> list[str]:
        return check_message_ids(value, wildcard=True)


class WebApiBroker(Broker):
    """An IBKR Web API account; subclasses supply the authentication."""

    class Settings(WebApiSettings):
        pass

    settings: WebApiSettings

    requires_durable_intents = True
    needs_polling = True
    live_feed = "ibkr_stream"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.clock: Clock = SystemClock()
        self._client: WebApiClient | None = None
        self._session: Session | None = None
        self._owns_http = True
        self._http: httpx.Client | None = None
        self._tracked: dict[str, OrderIntent] = {}
        self._broker_ids: dict[str, str] = {}
        self._last_status: dict[str, OrderStatus] = {}
        self._seen_executions: set[str] = set()
        self._filled: dict[str, Decimal] = {}
        self.exits = Exits(self._order_status, lambda: self.clock)
        self._last_poll: float | None = None
        self.monotonic: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], None] = time.sleep
        self.order_visibility_seconds = self.settings.order_visibility_seconds

    # -- what subclasses provide ----------------------------------------------

    def make_http(self) -> httpx.Client:
        raise NotImplementedError

    def make_authenticator(self) -> Authenticator:
        raise NotImplementedError

    def make_pacer(self) -> Pacer:
        s = self.settings
        where = s.pacing_file.strip()
        state = (
            MemoryState()
            if where.lower() == "none"
            else FileState(where or default_state_file(self.base_url))
        )
        return Pacer(
            s.requests_per_second,
            penalty_seconds=s.penalty_seconds,
            margin=s.pacing_margin,
            margin_seconds=s.pacing_margin_seconds,
            state=state,
            monotonic=self.monotonic,
            sleep=self.sleep,
        )

    def make_auth(self) -> httpx.Auth | None:
        """Per-request authentication (OAuth signs every request); ``None`` for none."""
        return None

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    @property
    def tls_verify(self) -> bool | str:
        """The ``verify`` setting as checked: true, false, or a certificate file."""
        return True

    def stream_handshake(self) -> Handshake:
        """How to open IBKR's WebSocket now, with a fresh ``/tickle`` session (reference §11).

        Through a gateway the ``api`` cookie carries the session as IBKR's example sends it,
        ``{"session": "..."}``; the OAuth adapter adds its token (:meth:`stream_credentials`).

        :raises BrokerError: the session is not usable, or ``/tickle`` named no session.
        """
        # The WebSocket library is loaded by the first stream, not by every adapter.
        from tradepipe.brokers.ibkr.stream import Handshake, socket_url, tls_context

        session = self.session
        with session.lock:  # a request between a question and its reply would void it
            # A refused session (a revoked token, a dropped brokerage session) is repaired
            # once, as any read is.
            body = session.read(lambda: self.client.post("/tickle"))
        value = body.get("session") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise BrokerUnavailableError(
                f"{self.name}: /tickle answered no session for the WebSocket",
                broker=self.name,
                maybe_sent=False,
            )
        add_secrets([value])
        url = socket_url(self.base_url)
        query, headers = self.stream_credentials(value)
        return Handshake(
            url=f"{url}?{urlencode(query)}" if query else url,
            headers=headers,
            ssl=tls_context(self.tls_verify) if url.startswith("wss:") else None,
            safe_url=url,
        )

    def stream_credentials(self, session: str) -> tuple[dict[str, str], dict[str, str]]:
        """The WebSocket's query parameters and headers for ``session`` (the gateway's)."""
        cookie = json.dumps({"session": session}, separators=(",", ":"))
        return {}, {"Cookie": f"api={cookie}"}

    def reply_policy(self, is_paper: bool) -> ReplyPolicy:
        s = self.settings
        return ReplyPolicy(
            frozenset(s.confirm),
            confirm_all=is_paper and s.confirm_all_on_paper,
            ask=frozenset(s.ask),
        )

    # -- wiring ---------------------------------------------------------------

    def attach(self, runtime: Any) -> None:
        self.clock = runtime.clock

    def use_http(self, http: httpx.Client) -> None:
        """Use ``http`` instead of building a client (tests, custom transports)."""
        self._client = None
        self._session = None
        self._owns_http = False
        self._http = http

    @property
    def session(self) -> Session:
        if self._session is None:
            s = self.settings
            http = self._http or self.make_http()
            self._http = http
            authenticator = self.make_authenticator()
            self._client = WebApiClient(
                self.base_url,
                http=http,
                pacer=self.make_pacer(),
                broker=self.name,
                auth=self.make_auth(),
                login_hint=authenticator.login_hint,
            )
            self.contracts = Contracts(self._client)
            self.market = MarketData(
                self._client,
                self.contracts,
                attempts=s.snapshot_attempts,
                sleep=self.sleep,
                monotonic=self.monotonic,
            )
            self._session = Session(
                self._client,
                authenticator,
                account_id=s.account_id,
                compete=s.compete,
                suppress=tuple(s.suppress),
                keepalive_seconds=s.keepalive_seconds,
                validate_seconds=s.validate_seconds,
                init_wait_seconds=s.init_wait_seconds,
                monotonic=self.monotonic,
                sleep=self.sleep,
            )
        return self._session

    @property
    def client(self) -> WebApiClient:
        self.session  # noqa: B018 - builds the client on first use
        assert self._client is not None
        return self._client

    # -- connection ------------------------------------------------------------

    def connect(self) -> BrokerStatus:
        self.session.establish()
        if self.settings.keepalive_seconds > 0:
            self.session.start()
        return self.status()

    def disconnect(self) -> None:
        # Never POST /logout here: a gateway login needs a person to redo it.
        session, self._session = self._session, None
        if session is not None:
            session.stop()
        http = self._http
        if http is not None and self._owns_http:
            http.close()
            self._http = None

    def logout(self) -> str:
        """``POST /logout``: IBKR ends the session; a gateway then needs a browser login."""
        body = self.client.post("/logout")
        self.disconnect()
        ended = isinstance(body, dict) and body.get("status") is True
        hint = self.make_authenticator().login_hint
        if not ended:
            return f"{self.name}: IBKR answered the logout without confirming it ({body!r})"
        return f"{self.name}: logged out; to use it again, {hint}"

    def session_problem(self) -> BrokerAuthError | None:
        session = self._session
        return None if session is None else session.lost

    def await_session(self, timeout: float, on_wait: Callable[[], bool] | None = None) -> bool:
        try:
            self.session.wait_for_login(timeout, on_wait=on_wait)
        except BrokerError as exc:
            log.error("%s: session still lost after %.0f s: %s", self.name, timeout, exc)
            return False
        return True

    def status(self) -> BrokerStatus:
        session = self.session
        try:
            state = session.check()
        except BrokerError as exc:
            return BrokerStatus(
                broker=self.name, connected=False, authenticated=False, message=str(exc)
            )
        account = session.account
        # /sso/validate's LOGIN_TYPE 1 means a live login whatever the id says.
        paper = account.is_paper if account else True
        if session.login_type == 1:
            paper = False
        return BrokerStatus(
            broker=self.name,
            connected=state.connected,
            authenticated=state.healthy and session.ready,
            account_id=account.account_id if account else None,
            is_paper=paper,
            message=session.explain(state),
        )

    @property
    def account_id(self) -> str:
        return self.session.ensure().account_id

    # -- reads -----------------------------------------------------------------

    def account(self) -> AccountSummary:
        session = self.session

        def read() -> AccountSummary:
            session.portfolio_ready()
            acct = self.account_id
            summary = self.client.get(f"/portfolio/{acct}/summary") or {}
            ledger = self.client.get(f"/portfolio/{acct}/ledger") or {}
            base = ledger.get("BASE") or {}

            def amount(key: str) -> Decimal:
                item = summary.get(key) or {}
                return decimal(item.get("amount"), Decimal(0)) or Decimal(0)

            return AccountSummary(
                account_id=acct,
                currency=str((summary.get("netliquidation") or {}).get("currency") or "USD"),
                cash=amount("totalcashvalue"),
                equity=amount("netliquidation"),
                buying_power=amount("buyingpower"),
                gross_position_value=amount("grosspositionvalue"),
                realized_pnl=decimal(base.get("realizedpnl"), Decimal(0)) or Decimal(0),
                unrealized_pnl=decimal(base.get("unrealizedpnl"), Decimal(0)) or Decimal(0),
                ts=self.clock.now(),
            )

        return session.read(read)

    def positions(self) -> list[Position]:
        session = self.session

        def read() -> list[Position]:
            session.portfolio_ready()
            acct = self.account_id
            # IBKR caches positions server-side; invalidate so fills show.
            self.client.post(f"/portfolio/{acct}/positions/invalidate")
            out: list[Position] = []
            for page in range(_MAX_POSITION_PAGES):
                rows = self.client.get(f"/portfolio/{acct}/positions/{page}") or []
                if not rows:
                    break
                out.extend(p for p in (self._position(r) for r in rows) if p is not None)
            return out

        return session.read(read)

    def _position(self, row: dict[str, Any]) -> Position | None:
        quantity = decimal(row.get("position"))
        if not quantity:
            return None
        symbol = str(row.get("ticker") or row.get("contractDesc") or row.get("conid"))
        asset = row.get("assetClass", "STK")
        if row.get("conid") is not None and asset == "STK":
            self.contracts.remember(symbol.upper(), int(row["conid"]))
        elif asset == "OPT":
            symbol = _option_ticker(row) or symbol
        return Position(
            symbol=symbol,
            quantity=quantity,
            avg_cost=decimal(row.get("avgPrice"), Decimal(0)) or Decimal(0),
            multiplier=decimal(row.get("multiplier")) or Decimal(1),
            mark_price=decimal(row.get("mktPrice")),
            realized_pnl=decimal(row.get("realizedPnl"), Decimal(0)) or Decimal(0),
        )

    def _live_orders(self) -> list[dict[str, Any]]:
        """IBKR's order list of this brokerage session, once IBKR has it ready.

        In a new brokerage session (after every login and ``ssodh/init``) IBKR
        answers the first reads with ``{"orders": [], "snapshot": false}`` while
        it subscribes to the account's orders. That is not "no orders": the
        list is read again, at the endpoint's pace, until an answer says
        ``snapshot: true``; only ``order_list_reads`` non-answers in a row are
        an error. (An answer without the ``snapshot`` key, as older gateways
        give, is taken as it is.)
        """
        acct = self.account_id
        reads = self.settings.order_list_reads
        for _ in range(reads):
            body = self.client.get("/iserver/account/orders", {"accountId": acct})
            orders = body.get("orders") if isinstance(body, dict) else None
            if isinstance(orders, list) and body.get("snapshot") is not False:
                return [o for o in orders if isinstance(o, dict)]
            log.info("%s: IBKR's order list is not ready yet; asking again", self.name)
        interval = self.client.pacer.interval("GET", "/iserver/account/orders") or 0.0
        raise BrokerUnavailableError(
            f"{self.name}: IBKR's order list was still not ready after {reads} reads "
            f"{interval:.1f} s apart (it answers snapshot: false while it subscribes); not "
            "read as empty. Try again in a minute; if it persists, log out of the gateway "
            "and in again",
            broker=self.name,
            maybe_sent=False,
        )

    def open_orders(self) -> list[OrderReport]:
        items = self.session.read(self._live_orders)
        reports = []
        for found in (report(i) for i in items):
            if found is None or not found.status.is_working:
                continue
            exit_id = self.exits.named(found.broker_order_id)
            if exit_id is not None:
                # A bracket's exit carries no cOID at IBKR: it goes by the name it was given.
                found = found.model_copy(update={"client_order_id": exit_id})
            else:
                self._watch(found)
            reports.append(found)
        return reports

    def _watch(self, found: OrderReport) -> None:
        """Poll an order this process did not place (adopted at start-up) like its own."""
        cid = found.client_order_id
        if not cid or cid in self._tracked:
            return
        try:
            intent = adopted_intent(found, cid, self.clock.now())
        except ValidationError as exc:
            log.warning("order %s at IBKR cannot be watched: %s", cid, exc.errors()[0]["msg"])
            return
        self._tracked[cid] = intent
        self._broker_ids[cid] = found.broker_order_id
        self._last_status[cid] = found.status
        self._filled[cid] = found.filled_quantity

    def _trades(self, days: int = 1) -> list[dict[str, Any]]:
        body = self.client.get(
            "/iserver/account/trades", {"days": days, "accountId": self.account_id}
        )
        return [t for t in body or [] if isinstance(t, dict)]

    def fills(self, since: dt.datetime | None = None) -> list[Fill]:
        days = 1
        if since is not None:
            age = self.clock.now() - since
            days = max(1, min(7, age.days + 1))
        trades = self.session.read(lambda: self._trades(days))
        out = []
        combos: dict[str, list[dict[str, Any]]] = {}
        for item in trades:
            ref = str(item.get("order_ref") or "")
            tracked = self._tracked.get(ref)
            if tracked is not None and isinstance(tracked.instrument, Combo):
                combos.setdefault(ref, []).append(item)  # its legs and itself, together
                continue
            fill = self._fill(item)
            if fill is not None and (since is None or fill.ts >= since):
                out.append(fill)
        for ref, items in combos.items():
            intent = self._tracked[ref]
            made, alone = combo_fills(items, intent, self._combo_legs(intent))
            for when in alone:
                log.warning(
                    "order %s: IBKR reported the combo's execution at %s without its legs; "
                    "it is booked under the combo's ticker",
                    ref,
                    when,
                )
            out.extend(f for f in made if since is None or f.ts >= since)
        # Executions of bracket exits carry no client order id: they are matched
        # to the exits this adapter follows (see brackets.py).
        exits = [e for e in self.exits.events(trades, statuses=False) if isinstance(e, Fill)]
        mine = {f.execution_id: f for f in exits}
        return [mine.get(f.execution_id, f) for f in out]

    def _combo_legs(self, intent: OrderIntent) -> dict[int, tuple[str, Decimal, Decimal]]:
        """A combo's legs by conid: (the leg's ticker, its signed ratio, its multiplier)."""
        combo = intent.instrument
        assert isinstance(combo, Combo)
        out: dict[int, tuple[str, Decimal, Decimal]] = {}
        for leg in combo.legs:
            inner = leg.instrument
            if isinstance(inner, Option):
                conid = self._option_conid(inner)
                out[conid] = (inner.ticker, Decimal(leg.ratio), inner.multiplier)
            else:
                out[self.contracts.stock(inner.symbol)] = (
                    inner.symbol,
                    Decimal(leg.ratio),
                    Decimal(1),
                )
        return out

    def _fill(self, item: dict[str, Any]) -> Fill | None:
        return execution(item, self._tracked.get(str(item.get("order_ref") or "")))

    def order(self, client_order_id: str) -> OrderReport | None:
        """Look ``client_order_id`` up in live orders, then in executions.

        IBKR's order list can come back incomplete right after a request, so
        it is read twice (IBKR's pacing spaces the reads 5 s apart) before the
        executions are consulted and ``None`` ("no such order") is answered.
        """
        session = self.session
        broker_id = self._broker_ids.get(client_order_id)
        if broker_id is not None:
            # The single-order endpoint, when we know IBKR's id; it answers 503
            # for orders it no longer holds, and then the lists below decide.
            try:
                body = session.read(
                    lambda: self.client.get(f"/iserver/account/order/status/{broker_id}")
                )
            except BrokerUnavailableError as exc:
                log.info("order %s: status endpoint unavailable (%s)", client_order_id, exc)
            else:
                found = status_report(body, client_order_id) if isinstance(body, dict) else None
                if found is not None:
                    return found
        for _ in range(2):
            for item in session.read(self._live_orders):
                if item.get("order_ref") == client_order_id:
                    found = report(item)
                    if found is not None:
                        self._broker_ids[client_order_id] = found.broker_order_id
                    return found
        executions = [
            t
            for t in session.read(lambda: self._trades(7))
            if t.get("order_ref") == client_order_id
        ]
        if not executions:
            return None
        intent = self._tracked.get(client_order_id)
        if intent is not None and isinstance(intent.instrument, Combo):
            # A combo's legs are executions too: count the combo's own.
            made, _alone = combo_fills(executions, intent, self._combo_legs(intent))
            filled = sum((f.quantity for f in made), Decimal(0))
        else:
            filled = sum(
                (decimal(t.get("size"), Decimal(0)) or Decimal(0) for t in executions),
                Decimal(0),
            )
        first = executions[0]
        quantity = intent.quantity if intent else filled
        return OrderReport(
            client_order_id=client_order_id,
            broker_order_id=str(first.get("order_id") or self._broker_ids.get(client_order_id, "")),
            symbol=str(first.get("symbol") or ""),
            side="buy" if str(first.get("side", "")).upper().startswith("B") else "sell",
            quantity=quantity,
            filled_quantity=filled,
            status=OrderStatus.FILLED if filled >= quantity else OrderStatus.PARTIALLY_FILLED,
            order_type=intent.order_type.value if intent else "market",
        )

    # -- orders ----------------------------------------------------------------

    def place(self, intent: OrderIntent) -> OrderUpdate:
        session = self.session
        cid = intent.client_order_id
        now = self.clock.now()
        with session.lock:
            try:
                account = session.require_trading()
                contract = session.read(lambda: self._contract(intent))
            except (BrokerAuthError, BrokerRejectedError):
                raise
            except BrokerError as exc:
                # Nothing was posted yet: whatever failed, the order was not sent.
                raise BrokerRejectedError(f"not sent: {exc}", broker=self.name) from exc
            if intent.stop_loss is not None or intent.take_profit is not None:
                if isinstance(contract, str):
                    raise BrokerRejectedError(
                        "stop-loss and take-profit orders cannot be attached to a combo",
                        broker=self.name,
                    )
                tickets = bracket(intent, contract, account.account_id)
            else:
                tickets = [ticket(intent, contract, account.account_id)]
            self._tracked[cid] = intent
            policy = self.reply_policy(account.is_paper).for_order(intent.answered)
            try:
                placed = submit(
                    self.client,
                    f"/iserver/account/{account.account_id}/orders",
                    {"orders": tickets},
                    policy,
                    on_question=lambda text, ids, ok: log.info(
                        "order %s: IBKR asked %r (%s): %s",
                        cid,
                        text,
                        ",".join(ids),
                        "confirmed" if ok else "declined",
                    ),
                )
            except BrokerRejectedError as exc:
                if "already registered" in str(exc.context.get("ibkr_error", "")).lower():
                    return self._already_placed(cid, now)
                raise
            except BrokerAuthError as exc:
                # The session dropped under the order (401, "no bridge"). IBKR most
                # likely refused it unprocessed, but that is not known: it is
                # settled by looking it up once the session is back, never re-sent.
                self.session.mark_lost()
                log.warning("order %s: session lost while sending; will ask IBKR: %s", cid, exc)
                return OrderUpdate(
                    client_order_id=cid,
                    status=OrderStatus.UNKNOWN,
                    ts=now,
                    reason=f"session lost while sending ({exc}); settled by asking IBKR",
                )
            except BrokerUnavailableError as exc:
                if not exc.context.get("maybe_sent", True):
                    raise BrokerRejectedError(f"not sent: {exc}", broker=self.name) from exc
                log.warning("order %s: outcome unknown, will ask IBKR: %s", cid, exc)
                return OrderUpdate(
                    client_order_id=cid, status=OrderStatus.UNKNOWN, ts=now, reason=str(exc)
                )
        return self._accepted(cid, placed, now)

    def _contract(self, intent: OrderIntent) -> int | str:
        """The conid of what ``intent`` trades, or a combo's ``conidex``."""
        instrument = intent.instrument
        if instrument is None or isinstance(instrument, Stock):
            return self.contracts.stock(intent.symbol if instrument is None else instrument.symbol)
        if isinstance(instrument, Option):
            return self._option_conid(instrument)
        legs = []
        for leg in instrument.legs:
            inner = leg.instrument
            conid = (
                self._option_conid(inner)
                if isinstance(inner, Option)
                else self.contracts.stock(inner.symbol)
            )
            legs.append((conid, leg.ratio))
        return combo_conidex(legs)

    def _option_conid(self, option: Option) -> int:
        return self.contracts.option(
            option.underlying, option.expiry, option.strike, option.right
        ).conid

    def _accepted(self, cid: str, placed: Placed, now: dt.datetime) -> OrderUpdate:
        broker_id = placed.order_ids[0]
        self._broker_ids[cid] = broker_id
        status = order_status(placed.status, Decimal(0)) or OrderStatus.ACCEPTED
        if status in _FROM_FILLS:
            status = OrderStatus.ACCEPTED
        self._last_status[cid] = status
        reason = f"IBKR status {placed.status}" if placed.status else ""
        exits = None
        if len(placed.order_ids) > 1:
            exits = self.exits.placed(self._tracked[cid], placed.order_ids[1:])
            shown = ", ".join(f"{c} ({b})" for c, b in exits.items())
            reason = "; ".join(x for x in (reason, f"bracket exits {shown}") if x)
        return OrderUpdate(
            client_order_id=cid,
            status=status,
            ts=now,
            broker_order_id=broker_id,
            reason=reason,
            exits=exits,
        )

    def _already_placed(self, cid: str, now: dt.datetime) -> OrderUpdate:
        log.warning("order %s: IBKR already has this client order id; not sent again", cid)
        found = self.order(cid)
        if found is None:
            return OrderUpdate(
                client_order_id=cid,
                status=OrderStatus.UNKNOWN,
                ts=now,
                reason="IBKR says this client order id is registered but does not list it",
            )
        return OrderUpdate(
            client_order_id=cid,
            status=OrderStatus.ACCEPTED,
            ts=now,
            broker_order_id=found.broker_order_id,
            reason="already placed (IBKR knows this client order id)",
        )

    def _broker_id(self, cid: str) -> str:
        known = self._broker_ids.get(cid)
        if known:
            return known
        found = self.order(cid)
        if found is None:
            raise BrokerRejectedError(f"{self.name}: IBKR has no order {cid}", broker=self.name)
        if not found.broker_order_id or found.status.is_terminal:
            raise BrokerRejectedError(
                f"{self.name}: order {cid} is already {found.status.value}; nothing to change",
                broker=self.name,
            )
        return found.broker_order_id

    def cancel(self, client_order_id: str) -> OrderUpdate:
        session = self.session
        with session.lock:
            account = session.require_trading()
            broker_id = self._broker_id(client_order_id)
            try:
                body = self.client.delete(
                    f"/iserver/account/{account.account_id}/order/{broker_id}", error_ok=True
                )
            except BrokerUnavailableError as exc:
                if not exc.context.get("maybe_sent", True):
                    raise
                return self._cancel_outcome(client_order_id, exc)
        text = error_text(body)
        if text is not None:
            raise BrokerRejectedError(
                f"{self.name}: IBKR refused to cancel {client_order_id}: {text}", broker=self.name
            )
        self._last_status[client_order_id] = OrderStatus.PENDING_CANCEL
        return OrderUpdate(
            client_order_id=client_order_id,
            status=OrderStatus.PENDING_CANCEL,
            ts=self.clock.now(),
            broker_order_id=broker_id,
            reason="cancel requested; final once IBKR reports it",
        )

    def _after_lost_answer(self, what: str, cid: str, lost: BrokerError) -> OrderReport | None:
        """IBKR's view of ``cid`` after the answer to ``what`` (a cancel, a change) was lost.

        :raises BrokerUnavailableError: IBKR could not be asked either.
        """
        log.warning("%s of %s: answer lost (%s); asking IBKR", what, cid, lost)
        try:
            return self.order(cid)
        except BrokerError as exc:
            raise BrokerUnavailableError(
                f"{self.name}: the {what} of {cid} may or may not have arrived ({lost}), and "
                f"IBKR could not be asked ({exc}); check with `tradepipe broker orders`",
                broker=self.name,
                maybe_sent=True,
            ) from exc

    def _cancel_outcome(self, cid: str, lost: BrokerError) -> OrderUpdate:
        """The cancel's answer was lost: what IBKR's lookups say happened to the order."""
        found = self._after_lost_answer("cancel", cid, lost)
        if found is None:
            raise BrokerUnavailableError(
                f"{self.name}: the cancel of {cid} may or may not have arrived ({lost}), and "
                "IBKR does not list the order",
                broker=self.name,
                maybe_sent=True,
            )
        self._last_status[cid] = found.status
        arrived = found.status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED)
        return OrderUpdate(
            client_order_id=cid,
            status=found.status,
            ts=self.clock.now(),
            broker_order_id=found.broker_order_id,
            reason=(
                "cancel requested; its answer was lost, IBKR's order lookup shows it arrived"
                if arrived
                else f"cancel requested; its answer was lost and IBKR still reports the order "
                f"{found.status.value}"
            ),
        )

    def modify(
        self,
        client_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderUpdate:
        """Change a working order's quantity or prices (IBKR's question chain applies).

        The change is judged by :attr:`order_rules` before IBKR hears of it: for
        an order this process tracks, before any request at all; for another,
        once IBKR's order list has told what the order is.
        """
        change = Change(quantity, limit_price, stop_price)
        changes = change.fields()
        rules = self.order_rules
        intent = self._tracked.get(client_order_id)
        changed: OrderIntent | None = None
        if intent is not None:
            changed = rules.modified(
                intent,
                change,
                status=self._last_status.get(client_order_id, OrderStatus.ACCEPTED),
                filled=self._filled.get(client_order_id, Decimal(0)),
            )
        else:
            rules.require_request(client_order_id, change)
        session = self.session
        with session.lock:
            account = session.require_trading()
            if intent is not None and changed is not None:
                broker_id = self._broker_id(client_order_id)
                body = ticket(changed, self._contract(intent), account.account_id)
            else:
                item = self._live_item(client_order_id)
                found = report(item)
                if found is None:
                    raise BrokerRejectedError(
                        f"{self.name}: IBKR reports order {client_order_id} as "
                        f"{item.get('status')!r}; not modified",
                        broker=self.name,
                    )
                body = modified_ticket(
                    item,
                    account.account_id,
                    quantity=quantity,
                    limit_price=limit_price,
                    stop_price=stop_price,
                )
                rules.require_change(
                    client_order_id,
                    change,
                    order_type=found.order_type,
                    status=found.status,
                    filled=found.filled_quantity,
                    kind=_SEC_KINDS.get(str(item.get("secType") or "").upper()),
                )
                broker_id = str(item.get("orderId"))
            # Modify takes one unwrapped order object repeating every field.
            try:
                placed = submit(
                    self.client,
                    f"/iserver/account/{account.account_id}/order/{broker_id}",
                    body,
                    self.reply_policy(account.is_paper).without_ask(),
                )
            except BrokerUnavailableError as exc:
                if not exc.context.get("maybe_sent", True):
                    raise
                placed = self._modify_outcome(client_order_id, changes, exc)
        if changed is not None:
            self._tracked[client_order_id] = changed
        self._broker_ids[client_order_id] = broker_id
        update = self._accepted(client_order_id, placed, self.clock.now())
        return update.model_copy(update={"reason": f"modified: {', '.join(changes)}"})

    def _modify_outcome(self, cid: str, changes: dict[str, Decimal], lost: BrokerError) -> Placed:
        """The modification's answer was lost: did IBKR apply it? Its order lookup says."""
        found = self._after_lost_answer("change", cid, lost)
        shown = {
            "quantity": found.quantity if found else None,
            "limit_price": found.limit_price if found else None,
            "stop_price": found.stop_price if found else None,
        }
        if found is None or any(shown[k] != v for k, v in changes.items()):
            now_shows = ", ".join(f"{k} {shown[k]}" for k in changes) if found else "no order"
            raise BrokerUnavailableError(
                f"{self.name}: the change to {cid} may not have arrived ({lost}); IBKR shows "
                f"{now_shows}. Check with `tradepipe broker orders` before changing it again",
                broker=self.name,
                maybe_sent=True,
            )
        return Placed([found.broker_order_id], _IBKR_NAMES.get(found.status, ""))

    def _live_item(self, client_order_id: str) -> dict[str, Any]:
        for item in self.session.read(self._live_orders):
            if item.get("order_ref") == client_order_id:
                return item
        raise BrokerRejectedError(
            f"{self.name}: IBKR lists no working order {client_order_id}", broker=self.name
        )

    def preview(self, intent: OrderIntent) -> dict[str, Any]:
        """IBKR's what-if for ``intent``: commission, margin and equity effects."""
        session = self.session
        with session.lock:
            account = session.require_trading()
            contract = self._contract(intent)
            if isinstance(contract, int):
                # IBKR asks for a market-data snapshot of the instrument first.
                self.market.snapshot([contract], ["31"])
            body = self.client.post(
                f"/iserver/account/{account.account_id}/orders/whatif",
                {"orders": [ticket(intent, contract, account.account_id)]},
            )
        return body if isinstance(body, dict) else {"answer": body}

    # -- market data -------------------------------------------------------------

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        return self.session.read(lambda: self.market.quotes(symbols))

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        return self.session.read(lambda: self.market.history(symbol, bars=bars, bar_size=bar_size))

    def scan(self, **params: Any) -> list[dict[str, Any]]:
        return self.session.read(lambda: self.market.scan(**params))

    def option_chain(self, underlying: str, expiry: dt.date | None = None) -> list[OptionQuote]:
        """The listed options: ``expiry``'s, or (listing only) the next three months'.

        Without ``expiry`` the chain is a listing (no prices or greeks): one
        ``secdef/strikes`` per month and one ``secdef/info`` per month to learn
        its expiry dates. With one, the ``chain_strike_window`` strikes each
        side of the underlying's price also carry IBKR's price, delta and
        implied volatility where its market-data snapshot has them
        (:mod:`tradepipe.brokers.ibkr.chain`); the rest stay listed only.
        """
        return self.session.read(lambda: self._chain(underlying.upper(), expiry))

    def _chain(self, underlying: str, expiry: dt.date | None) -> list[OptionQuote]:
        listing = self._listing(underlying, expiry)
        if expiry is None:
            return listing
        return with_market_data(
            listing,
            underlying=underlying,
            expiry=expiry,
            contracts=self.contracts,
            market=self.market,
            each_side=self.settings.chain_strike_window,
        )

    def _listing(self, underlying: str, expiry: dt.date | None) -> list[OptionQuote]:
        contracts = self.contracts
        months = [month_code(expiry)] if expiry else contracts.option_months(underlying)[:3]
        out: list[OptionQuote] = []
        for month in months:
            strikes = contracts.strikes(underlying, month)
            listed = sorted(set(strikes["call"]) | set(strikes["put"]))
            if not listed:
                continue
            dates = (
                [expiry]
                if expiry
                else contracts.expiries(underlying, month, listed[len(listed) // 2])
            )
            for day in dates:
                for right, side in _RIGHTS:
                    out.extend(
                        OptionQuote(
                            option=Option(underlying=underlying, expiry=day, strike=k, right=right)
                        )
                        for k in strikes[side]
                    )
        return out

    # -- updates -----------------------------------------------------------------

    def refresh(self) -> Sequence[BrokerEvent]:
        self._last_poll = None
        return self.poll()

    def poll(self) -> Sequence[BrokerEvent]:
        """Fills and status changes of this session's orders, at IBKR's pace."""
        working = [
            cid
            for cid in self._tracked
            if not self._last_status.get(cid, OrderStatus.ACCEPTED).is_terminal
        ]
        if not working and not self.exits.open:
            return ()
        now = self.monotonic()
        if self._last_poll is not None and now - self._last_poll < self.settings.poll_seconds:
            return ()
        events: list[BrokerEvent] = []
        try:
            events = self._poll_once()
        finally:
            # The pace counts from the end of the reads: they wait on IBKR's own
            # limits, and counting from their start would make every call due.
            self._last_poll = self.monotonic()
        return events

    def _poll_once(self) -> list[BrokerEvent]:
        events: list[BrokerEvent] = []
        trades = self.session.read(self._trades)
        for item in trades:
            exec_id = str(item.get("execution_id") or "")
            if exec_id in self._seen_executions or item.get("order_ref") not in self._tracked:
                continue
            fill = self._fill(item)
            if fill is not None:
                self._seen_executions.add(exec_id)
                events.append(fill)
                cid = fill.client_order_id
                done = self._filled.get(cid, Decimal(0)) + fill.quantity
                self._filled[cid] = done
                if done >= self._tracked[cid].quantity:
                    self._last_status[cid] = OrderStatus.FILLED
        ts = self.clock.now()
        for item in self.session.read(self._live_orders):
            ref = item.get("order_ref")
            if not isinstance(ref, str) or ref not in self._tracked:
                continue
            cid = ref
            found = report(item)
            if found is None or found.status in _FROM_FILLS:
                continue
            if self._last_status.get(cid) is not found.status:
                self._last_status[cid] = found.status
                events.append(
                    OrderUpdate(
                        client_order_id=cid,
                        status=found.status,
                        ts=ts,
                        broker_order_id=found.broker_order_id,
                        reason=f"IBKR status {item.get('status')}",
                    )
                )
        events.extend(self.exits.events(trades, statuses=True))
        return events

    def _order_status(self, broker_id: str) -> Any:
        return self.session.read(
            lambda: self.client.get(f"/iserver/account/order/status/{broker_id}")
        )

    def track(self, intent: OrderIntent, broker_order_id: str | None) -> None:
        cid = intent.client_order_id
        if broker_order_id:
            self._broker_ids.setdefault(cid, broker_order_id)
        if intent.source == BRACKET_SOURCE and broker_order_id:
            self.exits.add(intent, broker_order_id)
        elif cid not in self._tracked:
            self._tracked[cid] = intent


#: IBKR's security types as the order rules' kinds (a stock's quantity may be fractional).
_SEC_KINDS = {"STK": "stock", "OPT": "option", "BAG": "combo"}


def _option_ticker(row: dict[str, Any]) -> str | None:
    """An option position's OCC ticker, so it matches the orders that made it."""
    try:
        expiry = dt.datetime.strptime(str(row["expiry"]), "%Y%m%d").date()
        option = Option(
            underlying=str(row.get("undSym") or row["ticker"]).split()[0],
            expiry=expiry,
            strike=Decimal(str(row["strike"])),
            right=str(row["putOrCall"])[0].upper(),
        )
        return option.ticker
    except (KeyError, ValueError, ArithmeticError) as exc:
        log.warning("option position %s kept under IBKR's name: %s", row.get("conid"), exc)
        return None
