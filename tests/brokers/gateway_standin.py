"""A local HTTPS stand-in for the IBKR Client Portal Gateway (Web API 1.0), for integration tests.

Run it as a separate process::

    python gateway_standin.py --cert CERT.pem --key KEY.pem [--host 127.0.0.1] [--port 0]
                              [--account DU1234567] [--strict-pacing] [--verbose]

Once it listens it prints one line, ``PORT <n>``, to stdout. It uses the standard library only.

What it imitates
================

The REST side of the gateway under ``/v1/api``, with the shapes and quirks written down in
``/work/shared/reference/ibkr-web-api.md`` (sections 2, 4-9, 12). All state is in memory, behind
one lock. In short:

* **Session.** Three tiers of state: the SSO login (``logged_in``), the brokerage session
  (``authenticated``/``connected``) and ``competing``. Logged out: every endpoint except
  ``POST /iserver/auth/status`` answers 401 with the text body ``access denied``. Brokerage
  session down (or competing): ``/iserver/*`` answers 400
  ``{"error":"Bad Request: no bridge","statusCode":400}`` (auth endpoints excepted).
  ``POST /iserver/auth/ssodh/init`` needs ``"publish": true`` (else 500) and re-opens the
  brokerage session; ``compete: true`` takes it back from a competing login.
* **"Please query /accounts first".** Live orders, snapshots, modify and cancel answer 400 with
  that error until ``GET /iserver/accounts`` has been called since the last (re)authentication.
* **POST without a body** answers 411 (send ``{}``).
* **Orders.** ``{"orders":[...]}`` or a bare array; strict types; duplicate ``cOID`` answers 200
  ``{"error":"Order couldn't be submitted: Local order ID=... is already registered."}``;
  configurable question chains answered through ``POST /iserver/reply/{id}``; any other API
  request between a question and its reply makes the reply id unknown (400
  ``reply id not found``); ``/iserver/questions/suppress`` lasts until the next re-login.
  Place/modify/reply answer ``order_id`` as a numeric *string*; live orders use ``orderId`` (int)
  and string prices; order status is snake_case; cancel answers ``order_id`` as an int.
  A cancel only sets ``PendingCancel``: the next read of live orders or order status that
  includes the order still shows ``PendingCancel``, the read after that shows ``Cancelled``.
  ``GET /iserver/account/orders?force=true`` answers ``{"orders":[],"snapshot":false}``.
  Executions (``/iserver/account/trades``) carry ``order_ref`` (the cOID) but no order id.
* **Portfolio.** Positions are cached the way the gateway caches them: the first read after a
  seed/reset sees the current positions, later fills stay invisible until
  ``POST /portfolio/{acct}/positions/invalidate``. Pages hold 100 positions; past the end an
  empty list.
* **Contracts.** A small built-in table (AAPL 265598 plus non-US listings, MSFT 272093,
  SPY 756733, IBM 8314). ``secdef/strikes`` answers empty arrays unless ``secdef/search`` was
  called for that underlying first (without ``name=true``). Option conids are generated
  deterministically; the nearest month also has a weekly expiry (filter on ``maturityDate``).
* **Market data.** The first snapshot request for a conid is the pre-flight and answers only
  ``{"conid":N,"conidEx":"N"}``; later ones answer strings (``"1,300"``, ``"1.2M"``, and a
  ``C`` prefix on field 31 while the market is "closed"). Options (conids handed out by
  ``secdef/info``) also answer greeks: Black–Scholes at 30% volatility, no rates, from the
  underlying's default price: 7308 delta (a put's negative), 7309 gamma, 7310 theta (per
  day), 7311 vega (per volatility point) and 7633 implied volatility as a percentage
  (``"30.0%"``); ``/_standin/market`` overrides them like any field. History bars are
  deterministic.
* **Also there:** ``/iserver/reauthenticate``, ``/iserver/questions/suppress/reset``,
  ``/iserver/marketdata/unsubscribe`` and ``unsubscribeall`` (the next snapshot of an
  unsubscribed conid is a pre-flight again), ``/iserver/scanner/params`` and ``run``.
* **Pacing** (``--strict-pacing`` only): the live-orders list and trades answer 429 when called
  again within 5 s.

Control API (tests only, JSON, not under ``/v1/api``; never recorded or faulted)
=============================================================================

``POST /_standin/auth`` ``{"authenticated","connected","competing","logged_in"}`` (any subset)
    Set session flags. A change of ``logged_in`` to true is a fresh browser login: unless given,
    the brokerage session comes up too (authenticated, connected, not competing).
``POST /_standin/questions`` ``{"message_ids":["o163","o354"], "modify": false}``
    Question chain asked for every following order placement (and modification when
    ``modify`` is true); ``[]`` turns questions off.
``POST /_standin/fault`` ``{"method","path","kind","times":1,"after":false}``
    The next ``times`` requests with that method (omitted: any) and exact path (after
    ``/v1/api``, no query string) fail with ``kind``: ``drop`` (close the socket, no
    response), ``500``/``503``/``429``/``401`` (that status), ``timeout`` (answer after 3 s).
    ``after: true`` processes the request first (e.g. the order *is* registered) and then
    fails; ``after: false`` fails without processing (a ``timeout`` then drops the connection
    after the delay).
``POST /_standin/fill`` ``{"order_id":N,"quantity":x,"price":p}``
    Execute (part of) an order: a trade with a new ``execution_id``, fills, status ``Filled``
    when complete (``Submitted`` while partial), positions and cash updated.
``POST /_standin/order_status`` ``{"order_id":N,"status":"Inactive"}``
    Force an order's status (e.g. a rejection shown as ``Cancelled`` without fills).
``POST /_standin/positions`` ``{"positions":[{"conid":...,"position":...}, ...]}``
    Replace all positions; missing fields are filled in.
``POST /_standin/market`` ``{"<conid>":{"31":"101.5",...}, "closed":false}``
    Override snapshot field values, answered verbatim (``null`` removes an override; bid/ask
    follow an overridden last price), and the closed flag.
``POST /_standin/reset``
    Back to the start state (orders, trades, positions, faults, questions, request log...).
``GET /_standin/requests``
    Every API request received, in order: ``{"method","path","query","body"}``; ``path`` is
    relative to ``/v1/api``, ``query`` a dict, ``body`` the parsed JSON or null.
``GET /_standin/orders``
    The internal order book (one object per order, plain field names).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/v1/api"
CONTROL_PREFIX = "/_standin"
FAULT_DELAY = 3.0
HANDSHAKE_TIMEOUT = 10.0
PAGE_SIZE = 100
PACING_INTERVAL = 5.0
START_CASH = 1_000_000.0

SERVER_INFO = {"serverName": "StandIn01", "serverVersion": "Build 10.25.0p, stand-in"}
MAC = "02:00:00:00:00:01"

NO_BRIDGE = {"error": "Bad Request: no bridge", "statusCode": 400}
QUERY_ACCOUNTS_FIRST = {"error": "Please query /accounts first"}
MARKET_DATA_WARNING = (
    "21/You are trying to submit an order without having market data for this instrument. "
    "IB strongly recommends against this kind of blind trading which may result in erroneous "
    "or unexpected trades."
)

QUESTION_TEXTS = {
    "o163": "The following order exceeds the price percentage limit of 3%. "
    "Are you sure you want to submit this order?",
    "o354": "You are submitting an order without market data. We strongly recommend against "
    "this as it may result in erroneous and unexpected trades. "
    "Are you sure you want to submit this order?",
    "o382": "The following value exceeds the tick size limit. "
    "Are you sure you want to submit this order?",
    "o383": "The following order size exceeds the Size Limit of 500. "
    "Are you sure you want to submit this order?",
    "o403": "This order will most likely trigger and fill immediately. "
    "Are you sure you want to submit this order?",
    "o451": "The following order value exceeds the Total Value Limit. "
    "Are you sure you want to submit this order?",
    "o10151": "Market orders carry risks. Are you sure you want to submit this order?",
    "o10331": "Stop orders carry risks once active. Are you sure you want to submit this order?",
}

ORDER_TYPES = {
    # wire name: (live-order display name, origOrderType / order_type name)
    "LMT": ("Limit", "LIMIT"),
    "MKT": ("Market", "MARKET"),
    "STP": ("Stop", "STOP"),
    "STOP_LIMIT": ("Stop Limit", "STOP_LIMIT"),
    "MIDPRICE": ("Midprice", "MIDPRICE"),
    "TRAIL": ("Trail", "TRAILING STOP"),
    "TRAILLMT": ("Trail Limit", "TRAILING STOP LIMIT"),
}
NEEDS_PRICE = {"LMT", "STP", "STOP_LIMIT", "TRAIL"}
NEEDS_AUX_PRICE = {"STOP_LIMIT", "TRAILLMT"}
TIFS = {"DAY", "GTC", "IOC", "OPG", "PAX", "OVT", "OND"}
STATUSES = (
    "Inactive",
    "PendingSubmit",
    "PendingCancel",
    "PreSubmitted",
    "Submitted",
    "Filled",
    "Cancelled",
    "WarnState",
)
DONE = {"Filled", "Cancelled"}

BAR_SECONDS = {
    "1min": 60,
    "2min": 120,
    "3min": 180,
    "5min": 300,
    "10min": 600,
    "15min": 900,
    "30min": 1800,
    "1h": 3600,
    "2h": 7200,
    "3h": 10800,
    "4h": 14400,
    "8h": 28800,
    "1d": 86400,
    "1w": 604800,
    "1m": 2592000,
}
PERIOD_UNITS = {"min": 60, "h": 3600, "d": 86400, "w": 604800, "m": 2592000, "y": 31536000}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
CONIDEX_SINGLE = re.compile(r"(\d+)(?:@([A-Za-z0-9.]+))?")
CONIDEX_COMBO = re.compile(r"(\d+)(?:@[A-Za-z0-9.]+)?;;;(\d+/-?\d+(?:,\d+/-?\d+)+)")


# --------------------------------------------------------------------------------------------
# Static data: the instruments the stand-in knows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stock:
    symbol: str
    conid: int
    name: str
    exchange: str  # as /trsrv/stocks and secdef/search name it
    listing: str  # as live orders name it
    price: float  # default last price
    is_us: bool = True
    currency: str = "USD"
    searchable: bool = True  # listed by /iserver/secdef/search


STOCKS = (
    Stock("AAPL", 265598, "APPLE INC", "NASDAQ", "NASDAQ.NMS", 190.25),
    Stock("AAPL", 38708077, "APPLE INC", "MEXI", "MEXI", 3350.0, is_us=False, currency="MXN"),
    Stock("AAPL", 493546075, "LS 1X AAPL", "LSEETF", "LSEETF", 21.4, is_us=False, searchable=False),
    Stock("MSFT", 272093, "MICROSOFT CORP", "NASDAQ", "NASDAQ.NMS", 415.5),
    Stock("SPY", 756733, "SPDR S&P 500 ETF TRUST", "ARCA", "ARCA", 502.1),
    Stock("IBM", 8314, "INTL BUSINESS MACHINES CORP", "NYSE", "NYSE", 171.3),
)
STOCK_BY_CONID = {s.conid: s for s in STOCKS}
SPREAD_CONIDS = {
    28812380,
    61227077,
    61227082,
    61227087,
    136000441,
    58666491,
    61227072,
    136000444,
    61227069,
    136000424,
    136000449,
    136000429,
    426116555,
}


@dataclass(frozen=True)
class OptionContract:
    conid: int
    underlying: Stock
    maturity: date
    strike: float
    right: str  # "C" or "P"

    def as_info(self) -> dict[str, Any]:
        label = "Call" if self.right == "C" else "Put"
        return {
            "conid": self.conid,
            "symbol": self.underlying.symbol,
            "secType": "OPT",
            "exchange": "SMART",
            "listingExchange": None,
            "right": self.right,
            "strike": self.strike,
            "currency": "USD",
            "cusip": None,
            "coupon": "No Coupon",
            "desc1": self.underlying.symbol,
            "desc2": f"{MONTHS[self.maturity.month - 1]} {self.maturity.day:02d} "
            f"'{self.maturity.year % 100:02d} {self.strike:g} {label}",
            "maturityDate": self.maturity.strftime("%Y%m%d"),
            "multiplier": "100",
            "tradingClass": self.underlying.symbol,
            "validExchanges": "SMART,AMEX,BATS,BOX,CBOE,CBOE2,EDGX,ISE,MIAX,NASDAQOM,PHLX",
        }


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    first_friday = first + timedelta(days=(4 - first.weekday()) % 7)
    return first_friday + timedelta(days=14)


def option_months(today: date) -> list[tuple[str, list[date]]]:
    """Four option months with their expiries; the nearest month also has a weekly."""
    months: list[tuple[str, list[date]]] = []
    year, month = today.year, today.month
    while len(months) < 4:
        monthly = third_friday(year, month)
        if monthly > today:
            code = f"{MONTHS[month - 1]}{year % 100:02d}"
            expiries = [monthly]
            weekly = monthly - timedelta(days=7)
            if not months and weekly > today:
                expiries.insert(0, weekly)
            months.append((code, expiries))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return months


def strikes_for(stock: Stock) -> list[float]:
    step = 5.0 if stock.price >= 100 else 1.0
    centre = round(stock.price / step) * step
    return [centre + k * step for k in range(-6, 7)]


STANDIN_VOLATILITY = 0.30


def option_greeks(option: OptionContract, today: date) -> dict[str, str]:
    """Snapshot fields 7308-7311 and 7633 for ``option``: Black-Scholes, no rates or dividends."""
    s, k, vol = option.underlying.price, option.strike, STANDIN_VOLATILITY
    t = max((option.maturity - today).days, 1) / 365.0
    root = vol * math.sqrt(t)
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / root
    cdf = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    delta = cdf if option.right == "C" else cdf - 1
    return {
        "7308": f"{delta:.3f}",
        "7309": f"{pdf / (s * root):.4f}",
        "7310": f"{-s * pdf * vol / (2 * math.sqrt(t)) / 365:.3f}",
        "7311": f"{s * pdf * math.sqrt(t) / 100:.3f}",
        "7633": f"{vol * 100:.1f}%",
    }


def option_conid(stock: Stock, maturity: date, strike: float, right: str) -> int:
    key = f"{stock.conid}|{maturity:%Y%m%d}|{strike:.3f}|{right}".encode()
    return 500_000_000 + zlib.crc32(key) % 400_000_000


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """Raised inside a handler: answer with this status and payload."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(payload)
        self.status = status
        self.payload = payload


def fail(message: str, status: int = 400) -> NoReturn:
    raise ApiError(status, {"error": message})


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_answer(payload: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode())


def text_answer(text: str, status: int) -> Answer:
    return Answer(status, text.encode(), "text/plain; charset=utf-8")


def now_ms() -> int:
    return int(time.time() * 1000)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt_price(value: float) -> str:
    """A price as IBKR writes it in strings: two decimals unless more are needed."""
    if abs(value * 100 - round(value * 100)) < 1e-9:
        return f"{value:.2f}"
    return f"{value:.8g}"


def fmt_size(value: float) -> str:
    return f"{value:g}"


def fmt_volume(value: float) -> str:
    """Field 87 style: 950, 12.3K, 1.2M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}K"
    return f"{value:.0f}"


def parse_bool(text: str | None) -> bool:
    return (text or "").strip().lower() in {"true", "1", "yes"}


def parse_int(text: Any, what: str) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        fail(f"{what} must be an integer")


def order_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%y%m%d%H%M%S")


# --------------------------------------------------------------------------------------------
# Orders, trades, faults, pending questions
# --------------------------------------------------------------------------------------------


@dataclass
class Ticket:
    """One validated order ticket, as submitted."""

    raw: dict[str, Any]
    account: str
    conid: int
    conidex: str
    sec_type: str | None
    side: str
    order_type: str
    quantity: float
    tif: str
    price: float | None
    aux_price: float | None
    outside_rth: bool
    coid: str | None
    parent_coid: str | None
    single_group: bool


@dataclass
class Order:
    order_id: int
    ticket: Ticket
    ticker: str
    sec_type: str
    listing_exchange: str
    company_name: str
    currency: str
    multiplier: float
    created_ms: int
    parent_id: int | None = None
    status: str = "PreSubmitted"
    filled: float = 0.0
    avg_price: float = 0.0
    last_fill_ms: int | None = None
    cancel_seen: bool = False  # PendingCancel already shown once

    @property
    def remaining(self) -> float:
        return max(self.ticket.quantity - self.filled, 0.0)

    def description(self, with_contract: bool = False) -> str:
        t = self.ticket
        verb = "Buy" if t.side == "BUY" else "Sell"
        what = f"{fmt_size(t.quantity)} {self.ticker}" if with_contract else fmt_size(t.quantity)
        text = f"{verb} {what} {ORDER_TYPES[t.order_type][0]}"
        if t.price is not None:
            text += f" {fmt_price(t.price)}"
        tif = "Day" if t.tif == "DAY" else t.tif
        return f"{text}, {tif}"

    def size_and_fills(self) -> str:
        if self.filled and self.remaining == 0:
            return fmt_size(self.filled)
        return f"{fmt_size(self.filled)}/{fmt_size(self.ticket.quantity)}"

    def live(self) -> dict[str, Any]:
        """The /iserver/account/orders shape."""
        t = self.ticket
        out: dict[str, Any] = {
            "acct": t.account,
            "conidex": t.conidex,
            "conid": t.conid,
            "account": t.account,
            "orderId": self.order_id,
            "cashCcy": self.currency,
            "sizeAndFills": self.size_and_fills(),
            "orderDesc": self.description(),
            "description1": self.ticker,
            "ticker": self.ticker,
            "secType": self.sec_type,
            "listingExchange": self.listing_exchange,
            "remainingQuantity": float(self.remaining),
            "filledQuantity": float(self.filled),
            "totalSize": float(t.quantity),
            "companyName": self.company_name,
            "status": self.status,
            "order_ccp_status": self.status,
            "origOrderType": ORDER_TYPES[t.order_type][1],
            "supportsTaxOpt": "1",
            "lastExecutionTime": order_time(self.last_fill_ms or self.created_ms),
            "orderType": ORDER_TYPES[t.order_type][0],
            "bgColor": "#FFFFFF",
            "fgColor": "#000000",
            "timeInForce": t.tif,
            "lastExecutionTime_r": self.last_fill_ms or self.created_ms,
            "side": t.side,
            "outsideRTH": t.outside_rth,
        }
        if t.price is not None:
            out["price"] = fmt_price(t.price)
        if t.aux_price is not None:
            out["auxPrice"] = fmt_price(t.aux_price)
        if self.filled:
            out["avgPrice"] = fmt_price(self.avg_price)
        if t.coid is not None:
            out["order_ref"] = t.coid
        if self.parent_id is not None:
            out["parentId"] = self.parent_id
        return out

    def status_view(self) -> dict[str, Any]:
        """The /iserver/account/order/status/{id} shape (snake_case, numbers mostly strings)."""
        t = self.ticket
        out: dict[str, Any] = {
            "sub_type": None,
            "request_id": str(self.order_id % 100000),
            "server_id": "0",
            "order_id": self.order_id,
            "conidex": t.conidex,
            "conid": t.conid,
            "symbol": self.ticker,
            "side": "B" if t.side == "BUY" else "S",
            "contract_description_1": self.ticker,
            "listing_exchange": self.listing_exchange,
            "option_acct": "c",
            "company_name": self.company_name,
            "size": f"{self.remaining:.1f}",
            "total_size": f"{t.quantity:.1f}",
            "currency": self.currency,
            "account": t.account,
            "order_type": ORDER_TYPES[t.order_type][1],
            "cum_fill": f"{self.filled:.1f}",
            "order_status": self.status,
            "order_ccp_status": self.status,
            "order_status_description": f"Order {self.status}",
            "tif": t.tif,
            "fg_color": "#000000",
            "bg_color": "#FFFFFF",
            "order_not_editable": self.status in DONE,
            "editable_fields": "",
            "cannot_cancel_order": self.status in DONE,
            "deactivate_order": False,
            "sec_type": self.sec_type,
            "available_chart_periods": "#R|1",
            "order_description": self.description(),
            "order_description_with_contract": self.description(with_contract=True),
            "alert_active": 0,
            "child_order_type": "A" if self.parent_id is not None else "0",
            "order_clearing_account": t.account,
            "size_and_fills": self.size_and_fills(),
            "exit_strategy_display_price": fmt_price(t.price) if t.price is not None else "",
            "exit_strategy_chart_description": self.description(),
            "exit_strategy_tool_availability": "1",
            "allowed_duplicate_opposite": True,
            "order_time": order_time(self.created_ms),
            "is_event_trading": "0",
        }
        if t.price is not None:
            out["limit_price" if t.order_type != "STP" else "stop_price"] = fmt_price(t.price)
        if t.aux_price is not None:
            out["stop_price"] = fmt_price(t.aux_price)
        if self.filled:
            out["average_price"] = fmt_price(self.avg_price)
        if t.coid is not None:
            out["order_ref"] = t.coid
        return out

    def internal(self) -> dict[str, Any]:
        """The /_standin/orders shape: plain names for tests."""
        t = self.ticket
        return {
            "order_id": self.order_id,
            "account": t.account,
            "conid": t.conid,
            "conidex": t.conidex,
            "cOID": t.coid,
            "parentId": t.parent_coid,
            "parent_order_id": self.parent_id,
            "side": t.side,
            "orderType": t.order_type,
            "quantity": t.quantity,
            "price": t.price,
            "auxPrice": t.aux_price,
            "tif": t.tif,
            "outsideRTH": t.outside_rth,
            "status": self.status,
            "filled": self.filled,
            "remaining": self.remaining,
            "avg_price": self.avg_price,
            "ticker": self.ticker,
            "ticket": t.raw,
        }


@dataclass
class PendingQuestion:
    reply_id: str
    remaining: list[str]  # message ids still to ask, the first being asked now
    kind: str  # "place" or "modify"
    tickets: list[Ticket]
    order_id: int | None = None  # for "modify"

    def question(self) -> list[dict[str, Any]]:
        message_id = self.remaining[0]
        text = QUESTION_TEXTS.get(
            message_id, f"Are you sure you want to submit this order? ({message_id})"
        )
        return [
            {
                "id": self.reply_id,
                "message": [text],
                "isSuppressed": False,
                "messageIds": [message_id],
            }
        ]


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    times: int
    after: bool


FAULT_KINDS = {"drop", "500", "503", "429", "401", "timeout"}


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]
    gate: str  # "none" (always), "sso" (logged in), "brokerage" (logged in + brokerage)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any


# --------------------------------------------------------------------------------------------
# The gateway state and its endpoints
# --------------------------------------------------------------------------------------------


class Standin:
    """In-memory gateway. Every public entry point takes ``self.lock``."""

    def __init__(self, account: str, strict_pacing: bool = False) -> None:
        self.lock = threading.RLock()
        self.account = account
        self.is_paper = account.upper().startswith("D")
        self.strict_pacing = strict_pacing
        self.routes = self._routes()
        self._reset()

    # ----- state ---------------------------------------------------------------------------

    def _reset(self) -> None:
        self.logged_in = True
        self.authenticated = True
        self.connected = True
        self.competing = False
        self.session = uuid.uuid4().hex
        self.login_ms = now_ms()
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

    # ----- entry points used by the HTTP handler -------------------------------------------

    def receive(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Fault | None:
        """Record an API request; return the fault to apply to it, if one is armed."""
        with self.lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            self.log.append({"method": method, "path": path, "query": query, "body": body})
            for fault in self.faults:
                if fault.path == path and fault.method in (method, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
            return None

    def api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Answer:
        with self.lock:
            try:
                return self._api(method, path, query, raw)
            except ApiError as exc:
                return json_answer(exc.payload, exc.status)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                return json_answer({"error": f"stand-in internal error: {exc!r}"}, 500)

    def _api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Answer:
        pending = self.pending
        if pending is not None and (method, path) != ("POST", f"/iserver/reply/{pending.reply_id}"):
            self.pending = None  # any other request makes the pending reply id unknown
        if method == "POST" and not raw:
            return json_answer({"error": "Length Required"}, 411)
        if not self.logged_in and (method, path) != ("POST", "/iserver/auth/status"):
            return text_answer("access denied", 401)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            fail("Bad Request: body is not valid JSON")
        route, groups = self._match(method, path)
        if route.gate == "brokerage" and not self.brokerage_ok:
            return json_answer(NO_BRIDGE, 400)
        result = route.handler(Request(method, path, query, body), *groups)
        return result if isinstance(result, Answer) else json_answer(result)

    def _match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        path_known = False
        for route in self.routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groups()
            path_known = True
        if path_known:
            fail(f"Method {method} not allowed", 405)
        fail(f"Not found: {path}", 404)

    def _routes(self) -> list[Route]:
        acct = r"/([^/]+)"
        table: list[tuple[str, str, Callable[..., Any], str]] = [
            ("POST", "/iserver/auth/status", self.auth_status, "none"),
            ("POST", "/iserver/auth/ssodh/init", self.ssodh_init, "sso"),
            ("POST", "/iserver/reauthenticate", self.reauthenticate, "sso"),
            ("POST", "/tickle", self.tickle, "sso"),
            ("GET", "/tickle", self.tickle, "sso"),
            ("GET", "/sso/validate", self.sso_validate, "sso"),
            ("POST", "/logout", self.logout, "sso"),
            ("GET", "/iserver/accounts", self.iserver_accounts, "brokerage"),
            ("GET", "/portfolio/accounts", self.portfolio_accounts, "sso"),
            ("GET", f"/portfolio{acct}/summary", self.portfolio_summary, "sso"),
            ("GET", f"/portfolio{acct}/ledger", self.portfolio_ledger, "sso"),
            ("GET", f"/portfolio{acct}/positions/([^/]+)", self.positions_page, "sso"),
            ("GET", f"/portfolio{acct}/position/([^/]+)", self.position_by_conid, "sso"),
            ("POST", f"/portfolio{acct}/positions/invalidate", self.positions_invalidate, "sso"),
            ("GET", "/trsrv/stocks", self.trsrv_stocks, "sso"),
            ("GET", "/iserver/secdef/search", self.secdef_search, "brokerage"),
            ("POST", "/iserver/secdef/search", self.secdef_search, "brokerage"),
            ("GET", "/iserver/secdef/strikes", self.secdef_strikes, "brokerage"),
            ("GET", "/iserver/secdef/info", self.secdef_info, "brokerage"),
            ("POST", f"/iserver/account{acct}/orders", self.place_orders, "brokerage"),
            ("POST", f"/iserver/account{acct}/orders/whatif", self.whatif, "brokerage"),
            ("POST", r"/iserver/reply/([^/]+)", self.reply, "brokerage"),
            ("POST", "/iserver/questions/suppress", self.suppress, "brokerage"),
            ("POST", "/iserver/questions/suppress/reset", self.suppress_reset, "brokerage"),
            ("GET", "/iserver/account/orders", self.live_orders, "brokerage"),
            ("GET", r"/iserver/account/order/status/([^/]+)", self.order_status, "brokerage"),
            ("POST", f"/iserver/account{acct}/order/([^/]+)", self.modify_order, "brokerage"),
            ("DELETE", f"/iserver/account{acct}/order/([^/]+)", self.cancel_order, "brokerage"),
            ("GET", "/iserver/account/trades", self.trades_list, "brokerage"),
            ("GET", "/iserver/marketdata/snapshot", self.snapshot, "brokerage"),
            ("POST", "/iserver/marketdata/unsubscribe", self.unsubscribe, "brokerage"),
            ("GET", "/iserver/marketdata/unsubscribeall", self.unsubscribe_all, "brokerage"),
            ("GET", "/iserver/marketdata/history", self.history, "brokerage"),
            ("GET", "/iserver/scanner/params", self.scanner_params, "brokerage"),
            ("POST", "/iserver/scanner/run", self.scanner_run, "brokerage"),
        ]
        return [Route(m, re.compile(p), h, g) for m, p, h, g in table]

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
        now = time.monotonic()
        last = self.last_call.get(key)
        self.last_call[key] = now
        if last is not None and now - last < PACING_INTERVAL:
            fail("Too Many Requests", 429)

    # ----- session --------------------------------------------------------------------------

    def _auth_payload(self) -> dict[str, Any]:
        return {
            "authenticated": self.logged_in and self.authenticated,
            "competing": self.logged_in and self.competing,
            "connected": self.logged_in and self.connected,
            "message": "",
            "MAC": MAC,
            "serverInfo": dict(SERVER_INFO),
            "hardware_info": "00000000|" + MAC,
            "fail": "",
        }

    def auth_status(self, req: Request) -> Any:
        return self._auth_payload()

    def ssodh_init(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("publish") is not True:
            fail("publish must be true", 500)
        compete = body.get("compete") is True
        self.connected = True
        if self.competing and not compete:
            return self._auth_payload()  # the other login keeps the brokerage session
        self.competing = False
        self.authenticated = True
        self._relogin()
        return self._auth_payload()

    def reauthenticate(self, req: Request) -> Any:
        if not self.competing:
            self.authenticated = self.connected = True
            self._relogin()
        return {"message": "triggered"}

    def tickle(self, req: Request) -> Any:
        return {
            "session": self.session,
            "ssoExpires": max(0, self.login_ms + 24 * 3600 * 1000 - now_ms()),
            "collission": False,
            "userId": 12345678,
            "hmds": {"error": "no bridge"},
            "iserver": {"authStatus": self._auth_payload()},
        }

    def sso_validate(self, req: Request) -> Any:
        user = "standinpaper" if self.is_paper else "standinlive"
        return {
            "USER_ID": 12345678,
            "USER_NAME": user,
            "RESULT": True,
            "AUTH_TIME": self.login_ms,
            "SF_ENABLED": False,
            "IS_FREE_TRIAL": False,
            "CREDENTIAL": user,
            "IP": "127.0.0.1",
            "EXPIRES": max(0, self.login_ms + 24 * 3600 * 1000 - now_ms()),
            "QUALIFIED_FOR_MOBILE_AUTH": None,
            "LANDING_APP": "UNIVERSAL",
            "IS_MASTER": False,
            "lastAccessed": now_ms(),
            "LOGIN_TYPE": 2 if self.is_paper else 1,
            "PAPER_USER_NAME": user,
            "features": {
                "env": "PROD",
                "wlms": True,
                "realtime": True,
                "bond": True,
                "optionChains": True,
                "calendar": True,
                "newMf": True,
            },
            "region": "NJ",
        }

    def logout(self, req: Request) -> Any:
        self.logged_in = self.authenticated = self.connected = self.competing = False
        self._relogin()
        return {"status": True}

    def set_auth(self, changes: dict[str, Any]) -> dict[str, Any]:
        allowed = {"logged_in", "authenticated", "connected", "competing"}
        unknown = set(changes) - allowed
        if unknown or not all(isinstance(v, bool) for v in changes.values()):
            fail(f"auth takes booleans among {sorted(allowed)}")
        was_brokerage = self.logged_in and self.authenticated
        if "logged_in" in changes and changes["logged_in"] != self.logged_in:
            if changes["logged_in"]:  # a fresh browser login opens the brokerage session too
                self.logged_in = self.authenticated = self.connected = True
                self.competing = False
                self.session = uuid.uuid4().hex
                self.login_ms = now_ms()
            else:
                self.logged_in = self.authenticated = self.connected = self.competing = False
            self._relogin()
        for key in ("authenticated", "connected", "competing"):
            if key in changes:
                setattr(self, key, changes[key])
        if not was_brokerage and self.logged_in and self.authenticated:
            self._relogin()
        return {**self._auth_payload(), "logged_in": self.logged_in}

    # ----- accounts and portfolio -----------------------------------------------------------

    def iserver_accounts(self, req: Request) -> Any:
        self.accounts_queried = True
        a = self.account
        return {
            "accounts": [a],
            "acctProps": {
                a: {
                    "hasChildAccounts": False,
                    "supportsCashQty": True,
                    "noFXConv": False,
                    "isProp": False,
                    "supportsFractions": False,
                    "allowCustomerTime": False,
                }
            },
            "aliases": {a: a},
            "allowFeatures": {
                "showGFIS": True,
                "showEUCostReport": False,
                "allowEventContract": False,
                "allowFXConv": True,
                "allowFinancialLens": False,
                "allowMTA": True,
                "allowTypeAhead": True,
                "allowEventTrading": False,
                "snapshotRefreshTimeout": 30,
                "liteUser": False,
                "showWebNews": True,
                "research": True,
                "debugPnl": True,
                "showTaxOpt": True,
                "showImpactDashboard": True,
                "allowDynAccount": False,
                "allowCrypto": False,
                "allowedAssetTypes": "STK,CFD,OPT,FOP,WAR,FUT,BAG,PDC,CASH,IND,BOND,BILL,FUND,SLB,"
                "News,CMDTY,IOPT,ICU,ICS,PHYSS,CRYPTO",
            },
            "chartPeriods": {"STK": ["*"], "OPT": ["2h", "1d", "2d", "1w", "1m"]},
            "groups": [],
            "profiles": [],
            "selectedAccount": a,
            "serverInfo": dict(SERVER_INFO),
            "sessionId": self.session[:16],
            "isFT": False,
            "isPaper": self.is_paper,
        }

    def portfolio_accounts(self, req: Request) -> Any:
        a = self.account
        return [
            {
                "id": a,
                "PrepaidCrypto-Z": False,
                "PrepaidCrypto-P": False,
                "brokerageAccess": True,
                "accountId": a,
                "accountVan": a,
                "accountTitle": "Stand-in Account",
                "displayName": a,
                "accountAlias": None,
                "accountStatus": self.login_ms - 86_400_000 * 365,
                "currency": "USD",
                # IBKR's own examples show "DEMO" for live accounts too: not a paper indicator.
                "type": "DEMO",
                "tradingType": "STKNOPT",
                "businessType": "IB_PROSERVE",
                "ibEntity": "IBLLC-US",
                "faclient": False,
                "clearingStatus": "O",
                "covestor": False,
                "noClientTrading": False,
                "trackVirtualFXPortfolio": True,
                "parent": {
                    "mmc": [],
                    "accountId": "",
                    "isMParent": False,
                    "isMChild": False,
                    "isMultiplex": False,
                },
                "desc": a,
            }
        ]

    def _market_value(self) -> tuple[float, float, float]:
        """(signed market value, gross position value, unrealized pnl) of the true positions."""
        signed = gross = unrealized = 0.0
        for pos in self.positions.values():
            signed += float(pos.get("mktValue") or 0.0)
            gross += abs(float(pos.get("mktValue") or 0.0))
            unrealized += float(pos.get("unrealizedPnl") or 0.0)
        return signed, gross, unrealized

    def portfolio_summary(self, req: Request, account: str) -> Any:
        self._require_account(account)
        signed, gross, _ = self._market_value()
        net = self.cash + signed
        available = net - 0.25 * gross
        ts = now_ms()

        def item(amount: float) -> dict[str, Any]:
            return {
                "amount": float(round(amount, 2)),
                "currency": "USD",
                "isNull": False,
                "severity": 0,
                "timestamp": ts,
                "value": None,
            }

        return {
            "netliquidation": item(net),
            "totalcashvalue": item(self.cash),
            "availablefunds": item(available),
            "buyingpower": item(available * 4),
            "grosspositionvalue": item(gross),
            "equitywithloanvalue": item(net),
            "excessliquidity": item(available),
            "initmarginreq": item(0.25 * gross),
            "maintmarginreq": item(0.25 * gross),
            "accountcode": {**item(0.0), "amount": 0.0, "isNull": True, "value": account},
        }

    def portfolio_ledger(self, req: Request, account: str) -> Any:
        self._require_account(account)
        signed, _, unrealized = self._market_value()
        ts = int(time.time())

        def entry(currency: str) -> dict[str, Any]:
            return {
                "commoditymarketvalue": 0.0,
                "futuremarketvalue": 0.0,
                "settledcash": round(self.cash, 2),
                "exchangerate": 1,
                "sessionid": 1,
                "cashbalance": round(self.cash, 2),
                "corporatebondsmarketvalue": 0.0,
                "warrantsmarketvalue": 0.0,
                "netliquidationvalue": round(self.cash + signed, 2),
                "interest": 0.0,
                "unrealizedpnl": round(unrealized, 2),
                "stockmarketvalue": round(signed, 2),
                "moneyfunds": 0.0,
                "currency": currency,
                "realizedpnl": round(self.realized, 2),
                "funds": 0.0,
                "acctcode": account,
                "issueroptionsmarketvalue": 0.0,
                "key": "LedgerList",
                "timestamp": ts,
                "severity": 0,
                "stockoptionmarketvalue": 0.0,
                "futuresonlypnl": 0.0,
                "tbondsmarketvalue": 0.0,
                "futureoptionmarketvalue": 0.0,
                "cashbalancefxsegment": 0.0,
                "secondkey": currency,
                "tbillsmarketvalue": 0.0,
                "dividends": 0.0,
            }

        return {"USD": entry("USD"), "BASE": entry("BASE")}

    def _cached_positions(self) -> list[dict[str, Any]]:
        if self.position_cache is None:
            self.position_cache = [dict(p) for p in self.positions.values()]
        return self.position_cache

    def positions_page(self, req: Request, account: str, page: str) -> Any:
        self._require_account(account)
        number = parse_int(page, "pageId")
        if number < 0:
            fail("pageId must not be negative")
        return self._cached_positions()[number * PAGE_SIZE : (number + 1) * PAGE_SIZE]

    def position_by_conid(self, req: Request, account: str, conid: str) -> Any:
        self._require_account(account)
        wanted = parse_int(conid, "conid")
        return [p for p in self._cached_positions() if p["conid"] == wanted]

    def positions_invalidate(self, req: Request, account: str) -> Any:
        self._require_account(account)
        self.position_cache = None
        return {"message": "success"}

    def _position_defaults(self, conid: int) -> dict[str, Any]:
        ticker, sec_type, listing, name, currency, multiplier = self._contract(conid)
        option = self.options.get(conid)
        return {
            "acctId": self.account,
            "conid": conid,
            "contractDesc": ticker,
            "position": 0.0,
            "mktPrice": self._last_price(conid),
            "mktValue": 0.0,
            "currency": currency,
            "avgCost": 0.0,
            "avgPrice": 0.0,
            "realizedPnl": 0.0,
            "unrealizedPnl": 0.0,
            "exchs": None,
            "expiry": option.maturity.strftime("%Y%m%d") if option else None,
            "putOrCall": option.right if option else None,
            "multiplier": multiplier if option else None,
            "strike": f"{option.strike:g}" if option else "0",
            "exerciseStyle": None,
            "conExchMap": [],
            "assetClass": sec_type,
            "undConid": option.underlying.conid if option else 0,
            "model": "",
            "ticker": ticker,
            "name": name,
            "fullName": ticker,
            "listingExchange": listing,
            "isUS": STOCK_BY_CONID[conid].is_us if conid in STOCK_BY_CONID else True,
            "pageSize": PAGE_SIZE,
        }

    @staticmethod
    def _revalue(pos: dict[str, Any]) -> None:
        mult = float(pos.get("multiplier") or 1.0)
        qty = float(pos["position"])
        pos["mktValue"] = round(qty * float(pos["mktPrice"]) * mult, 2)
        pos["avgCost"] = float(pos["avgPrice"]) * mult
        pos["unrealizedPnl"] = round(
            (float(pos["mktPrice"]) - float(pos["avgPrice"])) * qty * mult, 2
        )

    def seed_positions(self, items: Any) -> dict[str, Any]:
        if not isinstance(items, list):
            fail("positions must be a list")
        seeded: dict[int, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("conid"), int):
                fail("each position needs an integer conid")
            pos = {**self._position_defaults(item["conid"]), **item}
            pos["position"] = float(pos["position"])
            if "avgPrice" not in item:
                pos["avgPrice"] = float(pos["mktPrice"])
            explicit = {k for k in ("mktValue", "avgCost", "unrealizedPnl") if k in item}
            computed = dict(pos)
            self._revalue(computed)
            for key in ("mktValue", "avgCost", "unrealizedPnl"):
                if key not in explicit:
                    pos[key] = computed[key]
            seeded[pos["conid"]] = pos
        self.positions = seeded
        self.position_cache = None
        return {"count": len(seeded)}

    def _apply_fill_to_position(self, order: Order, qty: float, price: float) -> None:
        conid = order.ticket.conid
        signed = qty if order.ticket.side == "BUY" else -qty
        pos = self.positions.get(conid)
        if pos is None:
            pos = self._position_defaults(conid)
            pos["avgPrice"] = price
            if order.sec_type == "OPT":
                pos["multiplier"] = order.multiplier
        old = float(pos["position"])
        new = old + signed
        avg = float(pos["avgPrice"])
        mult = float(pos.get("multiplier") or 1.0)
        if old == 0 or (old > 0) == (signed > 0):
            avg = (abs(old) * avg + qty * price) / (abs(old) + qty)
        else:
            closed = min(abs(old), qty)
            pnl = (price - avg) * closed * mult * (1 if old > 0 else -1)
            pos["realizedPnl"] = float(pos.get("realizedPnl") or 0.0) + pnl
            self.realized += pnl
            if abs(new) > 1e-12 and (new > 0) != (old > 0):
                avg = price  # flipped through zero
        if abs(new) < 1e-12:
            self.positions.pop(conid, None)
            return
        pos.update(position=new, avgPrice=avg, mktPrice=self._last_price(conid, price))
        self._revalue(pos)
        self.positions[conid] = pos

    # ----- contracts ------------------------------------------------------------------------

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

    def _known_conid(self, conid: int) -> bool:
        return (
            conid in STOCK_BY_CONID
            or conid in self.options
            or conid in self.overrides
            or conid in self.positions
        )

    def trsrv_stocks(self, req: Request) -> Any:
        symbols = [s.strip() for s in req.query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            fail("symbols is required")
        out: dict[str, list[dict[str, Any]]] = {}
        for symbol in symbols:
            groups: dict[str, dict[str, Any]] = {}
            for stock in STOCKS:
                if stock.symbol != symbol:  # upper case only, as documented
                    continue
                group = groups.setdefault(
                    stock.name,
                    {"name": stock.name, "chineseName": None, "assetClass": "STK", "contracts": []},
                )
                group["contracts"].append(
                    {"conid": stock.conid, "exchange": stock.exchange, "isUS": stock.is_us}
                )
            out[symbol] = list(groups.values())
        return out

    def secdef_search(self, req: Request) -> Any:
        params: dict[str, Any] = dict(req.query)
        if req.method == "POST":
            if not isinstance(req.body, dict):
                fail("body must be an object")
            params = req.body
        symbol = params.get("symbol")
        if not isinstance(symbol, str) or not symbol.strip():
            fail("symbol is required")
        by_name = params.get("name") in (True, "true", "True", "1")
        sec_type = str(params.get("secType") or "STK").upper()
        if sec_type != "STK":
            return []
        wanted = symbol.strip().upper()
        results = []
        months = option_months(date.today())
        for stock in STOCKS:
            if not stock.searchable:
                continue
            hit = wanted in stock.name.upper() if by_name else stock.symbol == wanted
            if not hit:
                continue
            if not by_name:  # the documented quirk: name=true does not prepare strikes
                self.searched.add(stock.conid)
            sections: list[dict[str, Any]] = [{"secType": "STK"}]
            if stock.is_us:
                sections.append(
                    {
                        "secType": "OPT",
                        "months": ";".join(code for code, _ in months),
                        "exchange": "SMART;AMEX;BATS;BOX;CBOE;CBOE2;EDGX;ISE;MIAX;PHLX",
                    }
                )
                sections.append({"secType": "BAG"})
            opt = ";".join(d.strftime("%Y%m%d") for _, ds in months for d in ds)
            results.append(
                {
                    "conid": str(stock.conid),
                    "companyHeader": f"{stock.name} - {stock.exchange}",
                    "companyName": stock.name,
                    "symbol": stock.symbol,
                    "description": stock.exchange,
                    "restricted": None,
                    "fop": None,
                    "opt": opt if stock.is_us else None,
                    "war": None,
                    "sections": sections,
                }
            )
        return results

    def _month_expiries(self, month: str) -> list[date] | None:
        for code, expiries in option_months(date.today()):
            if code == month.upper():
                return expiries
        return None

    def secdef_strikes(self, req: Request) -> Any:
        conid = parse_int(req.query.get("conid"), "conid")
        month = req.query.get("month", "")
        stock = STOCK_BY_CONID.get(conid)
        empty: dict[str, list[float]] = {"call": [], "put": []}
        if stock is None or not stock.is_us or conid not in self.searched:
            return empty
        if self._month_expiries(month) is None:
            return empty
        strikes = strikes_for(stock)
        return {"call": list(strikes), "put": list(strikes)}

    def secdef_info(self, req: Request) -> Any:
        q = req.query
        conid = parse_int(q.get("conid"), "conid")
        sec_type = (q.get("sectype") or q.get("secType") or "").upper()
        stock = STOCK_BY_CONID.get(conid)
        if sec_type != "OPT" or stock is None or not stock.is_us:
            return []
        expiries = self._month_expiries(q.get("month", ""))
        if expiries is None:
            return []
        try:
            strike = float(q.get("strike", ""))
        except ValueError:
            fail("strike must be a number")
        if strike not in strikes_for(stock):
            return []
        right = (q.get("right") or "").upper()[:1]
        rights = [right] if right in ("C", "P") else ["C", "P"]
        out = []
        for maturity in expiries:
            for r in rights:
                contract = OptionContract(
                    option_conid(stock, maturity, strike, r), stock, maturity, strike, r
                )
                self.options[contract.conid] = contract
                out.append(contract.as_info())
        return out

    # ----- orders ---------------------------------------------------------------------------

    def _parse_ticket(self, raw: Any, account: str, label: str) -> Ticket:
        if not isinstance(raw, dict):
            fail(f"{label}: an order must be a JSON object")

        def need(key: str) -> Any:
            if key not in raw or raw[key] is None:
                fail(f"{label}: missing required field '{key}'")
            return raw[key]

        def typed(key: str, check: Callable[[Any], bool], kind: str) -> Any:
            value = raw.get(key)
            if value is not None and not check(value):
                fail(f"{label}: field '{key}' must be {kind}")
            return value

        acct = need("acctId")
        if not isinstance(acct, str):
            fail(f"{label}: field 'acctId' must be a string")
        if acct != account:
            fail(f"{label}: acctId {acct} does not match the account in the path ({account})")
        has_conid, has_conidex = raw.get("conid") is not None, raw.get("conidex") is not None
        if has_conid and has_conidex:
            fail(f"{label}: send either 'conid' or 'conidex', not both")
        if not has_conid and not has_conidex:
            fail(f"{label}: missing required field 'conid' (or 'conidex')")
        if has_conid:
            conid = raw["conid"]
            if not isinstance(conid, int) or isinstance(conid, bool) or conid <= 0:
                fail(f"{label}: field 'conid' must be a positive integer")
            conidex = str(conid)
        else:
            conidex = raw["conidex"]
            if not isinstance(conidex, str):
                fail(f"{label}: field 'conidex' must be a string")
            match = CONIDEX_SINGLE.fullmatch(conidex) or CONIDEX_COMBO.fullmatch(conidex)
            if match is None:
                fail(f"{label}: malformed conidex '{conidex}'")
            conid = int(match.group(1))
        order_type = need("orderType")
        if order_type not in ORDER_TYPES:
            fail(f"{label}: unsupported orderType {order_type!r}")
        side = need("side")
        if not isinstance(side, str) or side.upper() not in ("BUY", "SELL"):
            fail(f"{label}: field 'side' must be BUY or SELL")
        quantity = need("quantity")
        if not is_number(quantity) or quantity <= 0:
            fail(f"{label}: field 'quantity' must be a positive number")
        tif = need("tif")
        if tif not in TIFS:
            fail(f"{label}: unsupported tif {tif!r}")
        price = typed("price", is_number, "a number")
        aux = typed("auxPrice", is_number, "a number")
        if order_type in NEEDS_PRICE and price is None:
            fail(f"{label}: orderType {order_type} needs 'price'")
        if order_type in NEEDS_AUX_PRICE and (aux is None or price is None):
            fail(f"{label}: orderType {order_type} needs 'price' and 'auxPrice'")
        outside = typed("outsideRTH", lambda v: isinstance(v, bool), "a boolean")
        coid = typed("cOID", lambda v: isinstance(v, str) and v != "", "a non-empty string")
        parent = typed("parentId", lambda v: isinstance(v, str) and v != "", "a non-empty string")
        group = typed("isSingleGroup", lambda v: isinstance(v, bool), "a boolean")
        sec_type = typed("secType", lambda v: isinstance(v, str), "a string")
        return Ticket(
            raw=dict(raw),
            account=acct,
            conid=conid,
            conidex=conidex,
            sec_type=sec_type,
            side=side.upper(),
            order_type=order_type,
            quantity=float(quantity),
            tif=tif,
            price=None if price is None else float(price),
            aux_price=None if aux is None else float(aux),
            outside_rth=bool(outside),
            coid=coid,
            parent_coid=parent,
            single_group=bool(group),
        )

    def _parse_order_body(self, body: Any, account: str) -> list[Ticket]:
        if isinstance(body, dict) and "orders" in body:
            raw_orders = body["orders"]
        elif isinstance(body, list):
            raw_orders = body
        else:
            fail('body must be {"orders": [...]} (or a bare array of orders)')
        if not isinstance(raw_orders, list) or not raw_orders:
            fail("'orders' must be a non-empty array")
        tickets = [self._parse_ticket(o, account, f"order {i}") for i, o in enumerate(raw_orders)]
        coids = [t.coid for t in tickets if t.coid is not None]
        for i, t in enumerate(tickets):
            if t.parent_coid is not None and t.parent_coid not in coids:
                fail(f"order {i}: parentId {t.parent_coid!r} is not the cOID of an order here")
        if len(tickets) > 1:
            bracket = all(t.parent_coid is not None for t in tickets[1:])
            oca = all(t.single_group for t in tickets)
            if not (bracket or oca):
                fail("only one unrelated order may be placed per request")
        return tickets

    def _duplicate_coid(self, tickets: list[Ticket]) -> str | None:
        seen: set[str] = set()
        for t in tickets:
            if t.coid is None:
                continue
            if t.coid in self.coids or t.coid in seen:
                return t.coid
            seen.add(t.coid)
        return None

    def _questions_to_ask(self) -> list[str]:
        return [m for m in self.question_ids if m not in self.suppressed]

    def place_orders(self, req: Request, account: str) -> Any:
        self._require_account(account)
        tickets = self._parse_order_body(req.body, account)
        duplicate = self._duplicate_coid(tickets)
        if duplicate is not None:
            return {
                "error": f"Order couldn't be submitted: Local order ID={duplicate} "
                "is already registered."
            }
        questions = self._questions_to_ask()
        if questions:
            self.pending = PendingQuestion(uuid.uuid4().hex, questions, "place", tickets)
            return self.pending.question()
        return self._register(tickets)

    def _register(self, tickets: list[Ticket]) -> Any:
        duplicate = self._duplicate_coid(tickets)
        if duplicate is not None:
            return {
                "error": f"Order couldn't be submitted: Local order ID={duplicate} "
                "is already registered."
            }
        by_coid: dict[str, int] = {}
        answer = []
        for t in tickets:
            ticker, sec_type, listing, name, currency, multiplier = self._contract(t.conid)
            if CONIDEX_COMBO.fullmatch(t.conidex):
                sec_type = "BAG"
            order = Order(
                order_id=next(self.order_ids),
                ticket=t,
                ticker=ticker,
                sec_type=sec_type,
                listing_exchange=listing,
                company_name=name,
                currency=currency,
                multiplier=multiplier,
                created_ms=now_ms(),
                parent_id=by_coid.get(t.parent_coid) if t.parent_coid else None,
            )
            self.orders[order.order_id] = order
            if t.coid is not None:
                self.coids.add(t.coid)
                by_coid[t.coid] = order.order_id
            answer.append(
                {
                    "order_id": str(order.order_id),
                    "order_status": order.status,
                    "encrypt_message": "1",
                }
            )
        return answer

    def reply(self, req: Request, reply_id: str) -> Any:
        pending = self.pending
        if pending is None or pending.reply_id != reply_id:
            fail(f"reply id not found: '{reply_id}'")
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("confirmed"), bool):
            fail('body must be {"confirmed": true|false}')
        if not body["confirmed"]:
            self.pending = None
            return {"error": "Order was not confirmed and has been discarded."}
        pending.remaining.pop(0)
        if pending.remaining:
            pending.reply_id = uuid.uuid4().hex
            return pending.question()
        self.pending = None
        if pending.kind == "modify" and pending.order_id is not None:
            return self._apply_modify(pending.order_id, pending.tickets[0])
        return self._register(pending.tickets)

    def suppress(self, req: Request) -> Any:
        body = req.body
        ids = body.get("messageIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            fail('body must be {"messageIds": ["o163", ...]}')
        if len(ids) > 51:
            fail("at most 51 message ids per request")
        self.suppressed.update(ids)
        return {"status": "submitted"}

    def suppress_reset(self, req: Request) -> Any:
        self.suppressed.clear()
        return {"status": "submitted"}

    def whatif(self, req: Request, account: str) -> Any:
        self._require_account(account)
        ticket = self._parse_order_body(req.body, account)[0]
        _, _, _, _, _, multiplier = self._contract(ticket.conid)
        price = ticket.price if ticket.price is not None else self._last_price(ticket.conid)
        value = ticket.quantity * price * multiplier
        commission = max(1.0, round(0.005 * ticket.quantity, 2))
        signed = ticket.quantity if ticket.side == "BUY" else -ticket.quantity
        current = float(self.positions.get(ticket.conid, {}).get("position", 0.0))
        after = current + signed
        signed_mv, gross, _ = self._market_value()
        equity = self.cash + signed_mv
        margin_change = 0.25 * (abs(after) - abs(current)) * price * multiplier
        initial_now = 0.25 * gross
        maintenance_now = 0.2 * gross
        available = equity - initial_now
        error = None
        if margin_change > available:
            error = "Insufficient buying power for this order (stand-in)."

        def triple(now: float, change: float) -> dict[str, str]:
            return {
                "current": f"{round(now):,}",
                "change": f"{round(change):,}",
                "after": f"{round(now + change):,}",
            }

        return {
            "amount": {
                "amount": f"{value:,.2f} {self._contract(ticket.conid)[4]} "
                f"({fmt_size(ticket.quantity)} Shares)",
                "commission": f"{commission:g} USD",
                "total": f"{value + commission:,.2f} USD",
            },
            "equity": triple(equity, -commission),
            "initial": triple(initial_now, margin_change),
            "maintenance": triple(maintenance_now, 0.8 * margin_change),
            "position": {
                "current": fmt_size(current),
                "change": fmt_size(signed),
                "after": fmt_size(after),
            },
            "warn": None if ticket.conid in self.streaming else MARKET_DATA_WARNING,
            "error": error,
        }

    def _find_order(self, text: str) -> Order | None:
        return self.orders.get(parse_int(text, "orderId"))

    def modify_order(self, req: Request, account: str, order_id: str) -> Any:
        self._require_accounts()
        self._require_account(account)
        number = parse_int(order_id, "orderId")
        order = self.orders.get(number)
        if order is None:
            return {"error": f"OrderID {number} doesn't exist"}
        body = req.body
        if not isinstance(body, dict) or "orders" in body:
            fail("modify takes one order object (not wrapped in 'orders', not an array)")
        ticket = self._parse_ticket(body, account, "order")
        if order.status in DONE or order.status == "PendingCancel":
            return {"error": f"OrderID {number} cannot be modified: it is {order.status}"}
        if ticket.conid != order.ticket.conid or ticket.side != order.ticket.side:
            return {"error": f"OrderID {number}: conid and side cannot be modified"}
        if ticket.quantity < order.filled:
            return {"error": f"OrderID {number}: quantity is below the filled quantity"}
        questions = self._questions_to_ask() if self.question_on_modify else []
        if questions:
            self.pending = PendingQuestion(
                uuid.uuid4().hex, questions, "modify", [ticket], order_id=number
            )
            return self.pending.question()
        return self._apply_modify(number, ticket)

    def _apply_modify(self, number: int, ticket: Ticket) -> Any:
        order = self.orders.get(number)
        if order is None or order.status in DONE or order.status == "PendingCancel":
            return {"error": f"OrderID {number} cannot be modified"}
        old = order.ticket
        # the order keeps its identity (cOID, parent) whatever the ticket repeats
        ticket.coid, ticket.parent_coid = old.coid, old.parent_coid
        order.ticket = ticket
        if order.filled and order.remaining == 0:
            order.status = "Filled"
        return [{"order_id": str(number), "order_status": order.status, "encrypt_message": "1"}]

    def cancel_order(self, req: Request, account: str, order_id: str) -> Any:
        self._require_accounts()
        self._require_account(account)
        number = parse_int(order_id, "orderId")
        if number == -1:
            for order in self.orders.values():
                if order.status not in DONE and order.status != "PendingCancel":
                    order.status, order.cancel_seen = "PendingCancel", False
            return {"msg": "Request was submitted", "order_id": -1, "conid": -1, "account": None}
        order = self.orders.get(number)
        if order is None:
            return {"error": f"OrderID {number} doesn't exist"}
        if order.status in DONE:
            return {"error": f"OrderID {number} cannot be cancelled: it is {order.status}"}
        targets = [order] + [o for o in self.orders.values() if o.parent_id == number]
        for target in targets:
            if target.status not in DONE and target.status != "PendingCancel":
                target.status, target.cancel_seen = "PendingCancel", False
        return {
            "msg": "Request was submitted",
            "order_id": number,
            "conid": order.ticket.conid,
            "account": account,
        }

    @staticmethod
    def _settle_cancel(order: Order) -> None:
        """Called before a read shows ``order``: a PendingCancel already shown is now final."""
        if order.status == "PendingCancel" and order.cancel_seen:
            order.status = "Cancelled"

    @staticmethod
    def _mark_shown(order: Order) -> None:
        if order.status == "PendingCancel":
            order.cancel_seen = True

    def live_orders(self, req: Request) -> Any:
        self._require_accounts()
        self._pace("orders")
        if parse_bool(req.query.get("force")):
            return {"orders": [], "snapshot": False}  # force only clears the cache
        for order in self.orders.values():
            self._settle_cancel(order)
        account = req.query.get("accountId")
        wanted: set[str] = set()
        for raw in (req.query.get("filters") or "").split(","):
            name = raw.strip().replace("_", "").lower()
            if name and name != "sortbytime":
                wanted.add(name)
        shown = []
        for order in self.orders.values():
            if account and order.ticket.account != account:
                continue
            if wanted and order.status.lower() not in wanted:
                continue
            shown.append(order.live())
        for order in self.orders.values():
            self._mark_shown(order)
        return {"orders": shown, "snapshot": True}

    def order_status(self, req: Request, order_id: str) -> Any:
        order = self._find_order(order_id)
        if order is None:
            fail("Service Unavailable", 503)
        self._settle_cancel(order)
        view = order.status_view()
        self._mark_shown(order)
        return view

    def trades_list(self, req: Request) -> Any:
        self._pace("trades")
        days = req.query.get("days")
        span = min(max(parse_int(days, "days"), 1), 7) if days else 1
        cutoff = now_ms() - span * 86_400_000
        account = req.query.get("accountId")
        return [
            dict(t)
            for t in self.trades
            if t["trade_time_r"] >= cutoff and (not account or t["account"] == account)
        ]

    def _control_order(self, body: dict[str, Any]) -> Order:
        order = self.orders.get(parse_int(body.get("order_id"), "order_id"))
        if order is None:
            fail(f"unknown order_id {body.get('order_id')!r}", 404)
        return order

    def fill(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self._control_order(body)
        qty, price = body.get("quantity"), body.get("price")
        if not is_number(qty) or qty <= 0 or not is_number(price):
            fail("quantity must be a positive number and price a number")
        if order.status in DONE:
            fail(f"order {order.order_id} is {order.status}")
        if qty > order.remaining + 1e-9:
            fail(f"quantity {qty} exceeds the remaining {order.remaining}")
        qty, price = float(qty), float(price)
        total = order.filled + qty
        order.avg_price = (order.avg_price * order.filled + price * qty) / total
        order.filled = total
        order.last_fill_ms = ts = now_ms()
        if order.remaining <= 1e-9:
            order.status = "Filled"
        elif order.status != "PendingCancel":
            order.status = "Submitted"
        commission = max(1.0, round(0.005 * qty, 2))
        gross = qty * price * order.multiplier
        self.cash += -gross - commission if order.ticket.side == "BUY" else gross - commission
        self._apply_fill_to_position(order, qty, price)
        exec_id = f"0000e0d5.{0x65000000 + next(self.exec_ids):08x}.01.01"
        side = "B" if order.ticket.side == "BUY" else "S"
        verb = "Bought" if side == "B" else "Sold"
        trade: dict[str, Any] = {
            "execution_id": exec_id,
            "symbol": order.ticker,
            "supports_tax_opt": "1",
            "side": side,
            "order_description": f"{verb} {fmt_size(qty)} @ {fmt_price(price)} on ISLAND",
            "trade_time": datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y%m%d-%H:%M:%S"),
            "trade_time_r": ts,
            "size": qty,
            "price": fmt_price(price),
            "submitter": "standin",
            "exchange": "ISLAND",
            "commission": f"{commission:.2f}",
            "net_amount": round(gross, 2),
            "account": order.ticket.account,
            "accountCode": order.ticket.account,
            "company_name": order.company_name,
            "contract_description_1": order.ticker,
            "sec_type": order.sec_type,
            "listing_exchange": order.listing_exchange,
            "conid": order.ticket.conid,
            "conidEx": order.ticket.conidex,
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
        }
        if order.ticket.coid is not None:
            trade["order_ref"] = order.ticket.coid
        self.trades.append(trade)
        return {"execution_id": exec_id, "order": order.internal()}

    def force_status(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("status") not in STATUSES:
            fail(f"status must be one of {list(STATUSES)}")
        order = self._control_order(body)
        order.status, order.cancel_seen = body["status"], False
        return order.internal()

    # ----- market data ----------------------------------------------------------------------

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

    def _quote(self, conid: int) -> dict[str, str]:
        last = self._last_price(conid)
        ticker, sec_type, listing, _, _, _ = self._contract(conid)
        volume = 1_000_000 + zlib.crc32(f"v{conid}".encode()) % 20_000_000
        prior = round(last * 0.995, 2)
        quote = {
            "31": fmt_price(last),
            "84": fmt_price(round(last - 0.01, 2)),
            "86": fmt_price(round(last + 0.01, 2)),
            "88": f"{1300:,}",
            "85": f"{600:,}",
            "87": fmt_volume(volume),
            "7762": str(volume),
            "7059": "100",
            "55": ticker,
            "6008": str(conid),
            "6070": sec_type,
            "6509": "RpB",
            "7221": listing,
            "7295": fmt_price(prior),
            "70": fmt_price(round(last * 1.01, 2)),
            "71": fmt_price(round(last * 0.985, 2)),
            "7741": fmt_price(prior),
            "82": fmt_price(round(last - prior, 2)),
            "83": f"{(last - prior) / prior * 100:.2f}%",
        }
        option = self.options.get(conid)
        if option is not None:
            quote.update(option_greeks(option, date.today()))
        quote.update(self.overrides.get(conid, {}))
        if self.closed and quote.get("31") and quote["31"][0] not in "CH":
            quote["31"] = "C" + quote["31"]
        return quote

    def snapshot(self, req: Request) -> Any:
        self._require_accounts()
        raw = req.query.get("conids", "")
        conids = [parse_int(c, "conids") for c in raw.split(",") if c.strip()]
        if not conids:
            fail("conids is required")
        fields = [f.strip() for f in (req.query.get("fields") or "").split(",") if f.strip()]
        out = []
        stamp = now_ms()
        for conid in conids:
            known = self.stream_fields.setdefault(conid, [])
            known.extend(f for f in fields if f not in known)
            if conid not in self.streaming:  # pre-flight: starts the stream, no values yet
                self.streaming.add(conid)
                out.append({"conid": conid, "conidEx": str(conid)})
                continue
            quote = self._quote(conid)
            item: dict[str, Any] = {
                "conid": conid,
                "conidEx": str(conid),
                "_updated": stamp,
                "server_id": "q0",
                "6119": "q0",
            }
            for f in fields or known:
                if f in quote:
                    item[f] = quote[f]
            out.append(item)
        return out

    def unsubscribe(self, req: Request) -> Any:
        body = req.body
        conid = body.get("conid") if isinstance(body, dict) else None
        if not isinstance(conid, int) or conid not in self.streaming:
            fail("unknown", 500)
        self.streaming.discard(conid)
        return {"success": True}

    def unsubscribe_all(self, req: Request) -> Any:
        self.streaming.clear()
        return {"unsubscribed": True}

    def history(self, req: Request) -> Any:
        q = req.query
        conid = parse_int(q.get("conid"), "conid")
        bar = q.get("bar")
        if bar not in BAR_SECONDS:
            fail(f"unsupported bar {bar!r}")
        period = q.get("period") or "1w"
        m = re.fullmatch(r"(\d+)(min|h|d|w|m|y)", period)
        if m is None:
            fail(f"unsupported period {period!r}")
        if not self._known_conid(conid):
            fail("No data.", 500)
        bar_s = BAR_SECONDS[bar]
        period_s = int(m.group(1)) * PERIOD_UNITS[m.group(2)]
        count = max(1, min(1000, period_s // bar_s))
        if q.get("startTime"):
            try:
                end = datetime.strptime(q["startTime"], "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                fail("startTime must be YYYYMMDD-HH:mm:ss")
            end_s = int(end.timestamp())
        else:
            end_s = int(time.time())
        last_bar = end_s // bar_s
        base = self._last_price(conid)
        seed = zlib.crc32(str(conid).encode()) % 1000 / 100.0

        def price(k: float) -> float:
            return base * (1 + 0.03 * math.sin(k * 0.37 + seed) + 0.01 * math.sin(k * 0.11))

        data = []
        for k in range(last_bar - count + 1, last_bar + 1):
            o, c = price(k - 0.5), price(k)
            h, lo = max(o, c) * 1.002, min(o, c) * 0.998
            v = 1000 + zlib.crc32(f"{conid}:{k}".encode()) % 9000
            data.append(
                {
                    "o": round(o, 2),
                    "c": round(c, 2),
                    "h": round(h, 2),
                    "l": round(lo, 2),
                    "v": float(v),
                    "t": k * bar_s * 1000,
                }
            )
        high = max(data, key=lambda d: d["h"])
        low = min(data, key=lambda d: d["l"])
        ticker, _, _, name, _, _ = self._contract(conid)
        return {
            "serverId": "20477",
            "symbol": ticker,
            "text": name,
            "priceFactor": 100,
            "startTime": datetime.fromtimestamp(data[0]["t"] / 1000, UTC).strftime(
                "%Y%m%d-%H:%M:%S"
            ),
            "high": f"{round(high['h'] * 100)}/{high['v']:g}/0",
            "low": f"{round(low['l'] * 100)}/{low['v']:g}/0",
            "timePeriod": period,
            "barLength": bar_s,
            "mdAvailability": "S",
            "outsideRth": parse_bool(q.get("outsideRth")),
            "volumeFactor": 1,
            "direction": -1,
            "points": len(data) - 1,
            "travelTime": 48,
            "data": data,
        }

    # ----- scanner --------------------------------------------------------------------------

    def scanner_params(self, req: Request) -> Any:
        return {
            "scan_type_list": [
                {"display_name": "Top % Gainers", "code": "TOP_PERC_GAIN", "instruments": ["STK"]},
                {"display_name": "Most Active", "code": "MOST_ACTIVE", "instruments": ["STK"]},
                {
                    "display_name": "Top Trade Count",
                    "code": "TOP_TRADE_COUNT",
                    "instruments": ["STK"],
                },
            ],
            "instrument_list": [
                {
                    "display_name": "US Stocks",
                    "type": "STK",
                    "filters": ["priceAbove", "priceBelow"],
                }
            ],
            "filter_list": [
                {
                    "group": "Price",
                    "display_name": "Price Above",
                    "code": "priceAbove",
                    "type": "non-range",
                },
                {
                    "group": "Price",
                    "display_name": "Price Below",
                    "code": "priceBelow",
                    "type": "non-range",
                },
            ],
            "location_tree": [
                {
                    "display_name": "US Stocks",
                    "type": "STK",
                    "locations": [
                        {"display_name": "Listed/NASDAQ", "type": "STK.US.MAJOR", "locations": []}
                    ],
                }
            ],
        }

    def scanner_run(self, req: Request) -> Any:
        body = req.body
        if not isinstance(body, dict):
            fail("body must be an object")
        for key in ("instrument", "location", "type"):
            if not isinstance(body.get(key), str):
                fail(f"missing required field '{key}'")
        filters = body.get("filter", [])
        if not isinstance(filters, list):
            fail("'filter' must be an array")
        above = below = None
        for f in filters:
            if isinstance(f, dict) and is_number(f.get("value")):
                if f.get("code") == "priceAbove":
                    above = float(f["value"])
                elif f.get("code") == "priceBelow":
                    below = float(f["value"])
        contracts = []
        if body["instrument"] == "STK":
            for stock in STOCKS:
                last = self._last_price(stock.conid)
                if not stock.is_us or (above is not None and last <= above):
                    continue
                if below is not None and last >= below:
                    continue
                volume = int(self._quote(stock.conid)["7762"])
                contracts.append(
                    {
                        "server_id": str(len(contracts)),
                        "column_name": "Trades",
                        "symbol": stock.symbol,
                        "conidex": str(stock.conid),
                        "con_id": stock.conid,
                        "available_chart_periods": "#R|1",
                        "company_name": stock.name,
                        "scan_data": fmt_volume(volume / 40),
                        "contract_description_1": stock.symbol,
                        "listing_exchange": stock.listing,
                        "sec_type": "STK",
                    }
                )
        return {"contracts": contracts[:50], "scan_data_column_name": "Trades"}

    # ----- control API ----------------------------------------------------------------------

    def control(self, method: str, path: str, raw: bytes) -> Answer:
        with self.lock:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return json_answer({"error": "body is not valid JSON"}, 400)
            try:
                return json_answer(self._control(method, path, body))
            except ApiError as exc:
                return json_answer(exc.payload, exc.status)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                return json_answer({"error": f"stand-in internal error: {exc!r}"}, 500)

    def _control(self, method: str, path: str, body: Any) -> Any:
        if method == "GET" and path == "/requests":
            return list(self.log)
        if method == "GET" and path == "/orders":
            return [o.internal() for o in self.orders.values()]
        if method != "POST":
            fail(f"unknown control call {method} {path}", 404)
        if path == "/reset":
            self._reset()
            return {"ok": True}
        if not isinstance(body, dict):
            fail("body must be a JSON object")
        if path == "/auth":
            return self.set_auth(body)
        if path == "/questions":
            ids = body.get("message_ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                fail('body must be {"message_ids": [...]}')
            self.question_ids = list(ids)
            self.question_on_modify = bool(body.get("modify", False))
            return {"ok": True}
        if path == "/fault":
            return self._arm_fault(body)
        if path == "/fill":
            return self.fill(body)
        if path == "/order_status":
            return self.force_status(body)
        if path == "/positions":
            return self.seed_positions(body.get("positions"))
        if path == "/market":
            return self._set_market(body)
        fail(f"unknown control call {method} {path}", 404)

    def _arm_fault(self, body: dict[str, Any]) -> Any:
        kind = str(body.get("kind"))
        path = body.get("path")
        method = str(body.get("method", "*")).upper()
        times = body.get("times", 1)
        if kind not in FAULT_KINDS:
            fail(f"kind must be one of {sorted(FAULT_KINDS)}")
        if not isinstance(path, str) or not path.startswith("/"):
            fail("path must be the path after /v1/api, starting with '/'")
        if not isinstance(times, int) or times < 1:
            fail("times must be a positive integer")
        self.faults.append(Fault(method, path, kind, times, bool(body.get("after", False))))
        return {"ok": True}

    def _set_market(self, body: dict[str, Any]) -> Any:
        for key, value in body.items():
            if key == "closed":
                if not isinstance(value, bool):
                    fail("closed must be a boolean")
                self.closed = value
                continue
            conid = parse_int(key, "conid key")
            if not isinstance(value, dict):
                fail(f"market[{key}] must be an object of field id -> value")
            fields = self.overrides.setdefault(conid, {})
            for f, v in value.items():
                if v is None:
                    fields.pop(str(f), None)
                else:
                    fields[str(f)] = v if isinstance(v, str) else str(v)
        return {"ok": True}


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StandinGateway/1"
    timeout = 60  # idle keep-alive connections are closed after this
    server: StandinServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        standin = self.server.standin
        if split.path.startswith(CONTROL_PREFIX + "/"):
            self._send(standin.control(self.command, split.path[len(CONTROL_PREFIX) :], raw))
            return
        if split.path != API_PREFIX and not split.path.startswith(API_PREFIX + "/"):
            self._send(json_answer({"error": "not found"}, 404))
            return
        path = split.path[len(API_PREFIX) :] or "/"
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        fault = standin.receive(self.command, path, query, raw)
        if fault is not None and not fault.after:
            self._fail(fault, None)
            return
        answer = standin.api(self.command, path, query, raw)
        if fault is not None:
            self._fail(fault, answer)
        else:
            self._send(answer)

    def _fail(self, fault: Fault, answer: Answer | None) -> None:
        if fault.kind == "drop":
            self._drop()
        elif fault.kind == "timeout":
            time.sleep(FAULT_DELAY)
            if answer is None:
                self._drop()
            else:
                self._send(answer)
        elif fault.kind == "401":
            self._send(text_answer("access denied", 401))
        else:
            status = int(fault.kind)
            self._send(json_answer({"error": f"stand-in fault {status}"}, status))

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True  # the client went away (e.g. it timed out)


class StandinServer(ThreadingHTTPServer):
    """A threading HTTP server doing the TLS handshake in each connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        standin: Standin,
        context: ssl.SSLContext,
        verbose: bool = False,
    ) -> None:
        self.standin = standin
        self.tls = context
        self.verbose = verbose
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except OSError:  # includes ssl.SSLError: an untrusting client hangs up mid-handshake
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.verbose:
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IBKR Client Portal Gateway stand-in")
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account", default="DU1234567", help="U... simulates a live account")
    parser.add_argument(
        "--strict-pacing", action="store_true", help="429 on orders/trades within 5 s"
    )
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    standin = Standin(args.account, strict_pacing=args.strict_pacing)
    server = StandinServer((args.host, args.port), standin, context, verbose=args.verbose)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
