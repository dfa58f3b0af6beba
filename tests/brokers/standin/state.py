"""The stand-in's state, and the look-ups and checks every capability shares.

:class:`State` holds everything in memory (session flags, orders, trades, positions, market
overrides, armed faults, the request log) behind one lock; ``_reset`` is the start state. The
capability mixins (session, portfolio, contracts, orders, executions, market, control) all
derive from it.
"""

from __future__ import annotations

import itertools
import threading
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from .clock import Clock, RealClock
from .instruments import SPREAD_CONIDS, STOCK_BY_CONID, OptionContract
from .model import Order, PendingQuestion
from .pacing import GATEWAY_RATE, PENALTY_SECONDS, GatewayPacing
from .wire import ApiError, fail, parse_int

START_CASH = 1_000_000.0
QUERY_ACCOUNTS_FIRST = {"error": "Please query /accounts first"}
#: How late a ``timeout`` fault answers (or hangs up).
FAULT_DELAY = 3.0


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    times: int
    after: bool
    #: The error text of a status fault (the pacing refusals say why).
    reason: str = ""


@dataclass
class Behaviour:
    """How closely the stand-in follows IBKR; every default is IBKR's documented behaviour.

    A test that needs less (a stand-in test sending raw requests back to back, say) turns a
    quirk off explicitly and says why.
    """

    #: IBKR's rate limits measured on arrival, with the 429 penalty box (``pacing.py``).
    pacing: bool = True
    #: Requests per second allowed (10 through the gateway, 50 over OAuth).
    rate: int = GATEWAY_RATE
    penalty_seconds: float = PENALTY_SECONDS
    #: Order-list reads answered ``{"orders": [], "snapshot": false}`` at the start of every
    #: brokerage session (after a login or ``ssodh/init``) while IBKR subscribes.
    cold_order_lists: int = 1
    #: Without a request for this long the brokerage session drops (the SSO session stays);
    #: ``/iserver`` calls then answer 401 until ``ssodh/init``. 0 = never.
    idle_seconds: float = 300.0
    #: After ``ssodh/init`` the brokerage session takes this long to come up; until then the
    #: status says not authenticated and ``/iserver`` answers "no bridge". 0 = at once.
    init_seconds: float = 3.0
    #: The WebSocket (``/v1/api/ws``, ``stream.py``): IBKR's heartbeat every this many seconds.
    stream_heartbeat_seconds: float = 10.0
    #: A socket with no message from the client (``tic``, a subscription...) for this long is
    #: closed by the server. IBKR publishes no figure, only "send tic about once a minute";
    #: the REST session's idle limit (about 5 minutes) stands in for it. 0 = never.
    stream_idle_seconds: float = 300.0
    #: The account's market-data lines: streams open at once (WebSocket ``smd`` and snapshot
    #: streams together). IBKR's default allowance is 100 lines.
    market_data_lines: int = 100

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                fail(f"unknown behaviour {key!r}; known: {sorted(self.__dataclass_fields__)}")
            current = getattr(self, key)
            if isinstance(current, bool) != isinstance(value, bool) or not isinstance(
                value, int | float
            ):
                fail(f"behaviour {key} must be a {type(current).__name__}")
            setattr(self, key, type(current)(value))


class State:
    """In-memory gateway state. Every public entry point takes ``self.lock``."""

    def __init__(
        self, account: str, behaviour: Behaviour | None = None, clock: Clock | None = None
    ) -> None:
        self.lock = threading.RLock()
        #: Where every timestamp, date and pacing interval comes from.
        self.clock: Clock = clock or RealClock()
        self.account = account
        self.is_paper = account.upper().startswith("D")
        self.behaviour = behaviour or Behaviour()
        self._reset()

    def _reset(self) -> None:
        self.logged_in = True
        self.authenticated = True
        self.connected = True
        self.competing = False
        self.session = uuid.uuid4().hex
        self.login_ms = self.clock.now_ms()
        self.accounts_queried = False
        self.suppressed: set[str] = set()
        self.question_ids: list[str] = []
        self.question_on_modify = False
        self.pending: PendingQuestion | None = None
        self.orders: dict[int, Order] = {}
        self.coids: set[str] = set()
        self.order_ids = itertools.count(1_837_201_001)
        self.trades: list[dict[str, Any]] = []
        self.exec_ids = itertools.count(1)
        self.positions: dict[int, dict[str, Any]] = {}
        self.position_cache: list[dict[str, Any]] | None = None
        self.cash = START_CASH
        self.realized = 0.0
        self.overrides: dict[int, dict[str, str]] = {}
        self.closed = False
        #: Market orders fill at this price as they are placed (``None``: only on request).
        self.fill_market_at: float | None = None
        self.streaming: set[int] = set()
        self.stream_fields: dict[int, list[str]] = {}
        self.searched: set[int] = set()
        self.options: dict[int, OptionContract] = {}
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.pacing = GatewayPacing(self.behaviour.rate, self.behaviour.penalty_seconds)
        #: When the last API request arrived (the idle clock of the brokerage session).
        self.last_activity = self.clock.monotonic()
        #: The brokerage session dropped for idleness: /iserver answers 401.
        self.idle_dropped = False
        #: An ssodh/init in progress: the brokerage session comes up at this time.
        self.init_at: float | None = None
        self.cold_order_reads = self.behaviour.cold_order_lists

    @property
    def brokerage_ok(self) -> bool:
        return self.logged_in and self.authenticated and self.connected and not self.competing

    def _relogin(self) -> None:
        """Whatever a (re)authentication forgets: a new brokerage session starts cold."""
        self.accounts_queried = False
        self.suppressed.clear()
        self.idle_dropped = False
        self.cold_order_reads = self.behaviour.cold_order_lists

    def _wake(self, now: float) -> None:
        """What time did to the session since the last request arrived."""
        if self.init_at is not None and now >= self.init_at:
            self.init_at = None
            if self.logged_in and not self.competing:
                self.authenticated = True
                self._relogin()
        idle = self.behaviour.idle_seconds
        if idle and self.brokerage_ok and now - self.last_activity > idle:
            # IBKR closes an idle brokerage session; the SSO session lives on.
            self.authenticated = False
            self.idle_dropped = True
        self.last_activity = now

    # ----- shared checks --------------------------------------------------------------------

    def _require_accounts(self) -> None:
        if not self.accounts_queried:
            raise ApiError(400, QUERY_ACCOUNTS_FIRST)

    def _require_account(self, account: str) -> None:
        if account != self.account:
            fail(f"Account {account} is not accessible in this session", 500)

    # ----- look-ups ------------------------------------------------------------------------

    def _contract(self, conid: int) -> tuple[str, str, str, str, str, float]:
        """(ticker, secType, listing exchange, company name, currency, multiplier)."""
        stock = STOCK_BY_CONID.get(conid)
        if stock is not None:
            return stock.symbol, "STK", stock.listing, stock.name, stock.currency, 1.0
        option = self.options.get(conid)
        if option is not None:
            und = option.underlying
            return und.symbol, "OPT", "SMART", und.name, "USD", 100.0
        if conid in SPREAD_CONIDS:
            return "SPREAD", "BAG", "SMART", "COMBO", "USD", 1.0
        return str(conid), "STK", "SMART", "", "USD", 1.0

    def _find_order(self, text: str) -> Order | None:
        return self.orders.get(parse_int(text, "orderId"))

    def _known_conid(self, conid: int) -> bool:
        return (
            conid in STOCK_BY_CONID
            or conid in self.options
            or conid in self.overrides
            or conid in self.positions
        )

    def _last_price(self, conid: int, fallback: float | None = None) -> float:
        text = self.overrides.get(conid, {}).get("31")
        if text:
            try:
                return float(text.lstrip("CH").replace(",", ""))
            except ValueError:
                pass
        stock = STOCK_BY_CONID.get(conid)
        if stock is not None:
            return stock.price
        option = self.options.get(conid)
        if option is not None:
            intrinsic = option.underlying.price - option.strike
            if option.right == "P":
                intrinsic = -intrinsic
            return round(max(intrinsic, 0.0) + 2.5, 2)
        if fallback is not None:
            return fallback
        return float(50 + zlib.crc32(str(conid).encode()) % 100)

    def _market_value(self) -> tuple[float, float, float]:
        """(signed market value, gross position value, unrealized pnl) of the true positions."""
        signed = gross = unrealized = 0.0
        for pos in self.positions.values():
            signed += float(pos.get("mktValue") or 0.0)
            gross += abs(float(pos.get("mktValue") or 0.0))
            unrealized += float(pos.get("unrealizedPnl") or 0.0)
        return signed, gross, unrealized
