"""Orders as the stand-in keeps them: tickets, orders and their three views, pending questions.

Also the order vocabulary (order types, time in force, statuses, question texts) and the way
IBKR formats prices, sizes, volumes and order times in strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
CONIDEX_SINGLE = re.compile(r"(\d+)(?:@([A-Za-z0-9.]+))?")
CONIDEX_COMBO = re.compile(r"(\d+)(?:@[A-Za-z0-9.]+)?;;;(\d+/-?\d+(?:,\d+/-?\d+)+)")


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


def order_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%y%m%d%H%M%S")


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
