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
from .wire import ApiError, fail, parse_int

PACING_INTERVAL = 5.0
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


class State:
    """In-memory gateway state. Every public entry point takes ``self.lock``."""

    def __init__(
        self, account: str, strict_pacing: bool = False, clock: Clock | None = None
    ) -> None:
        self.lock = threading.RLock()
        #: Where every timestamp, date and pacing interval comes from.
        self.clock: Clock = clock or RealClock()
        self.account = account
        self.is_paper = account.upper().startswith("D")
        self.strict_pacing = strict_pacing
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
        self.streaming: set[int] = set()
        self.stream_fields: dict[int, list[str]] = {}
        self.searched: set[int] = set()
        self.options: dict[int, OptionContract] = {}
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.last_call: dict[str, float] = {}

    @property
    def brokerage_ok(self) -> bool:
        return self.logged_in and self.authenticated and self.connected and not self.competing

    def _relogin(self) -> None:
        """Whatever a (re)authentication forgets."""
        self.accounts_queried = False
        self.suppressed.clear()

    # ----- shared checks --------------------------------------------------------------------

    def _require_accounts(self) -> None:
        if not self.accounts_queried:
            raise ApiError(400, QUERY_ACCOUNTS_FIRST)

    def _require_account(self, account: str) -> None:
        if account != self.account:
            fail(f"Account {account} is not accessible in this session", 500)

    def _pace(self, key: str) -> None:
        if not self.strict_pacing:
            return
        now = self.clock.monotonic()
        last = self.last_call.get(key)
        self.last_call[key] = now
        if last is not None and now - last < PACING_INTERVAL:
            fail("Too Many Requests", 429)

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
