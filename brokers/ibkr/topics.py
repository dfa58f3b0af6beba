"""IBKR's WebSocket messages made whole: the ``smd`` and ``sor`` topics as events.

IBKR streams a conid's market data as it changes (reference §11): the first message after a
subscription may carry only some fields, and every later one only the fields that changed,
with ``conid``, ``_updated`` (epoch ms) and ``topic``. :class:`QuoteBook` keeps each conid's
fields and answers every message with the whole quote as it now stands, its values parsed as
snapshots are (:func:`~tradepipe.brokers.ibkr.market.parse_value`: ``"1,300"``, ``"1.2M"``,
a ``C``/``H`` flag on the last price). Order updates (``sor``) likewise carry only the fields
that changed, plus ``orderId``: :class:`OrderBook` merges them per order and maps IBKR's
status onto the adapter's (:func:`~tradepipe.brokers.ibkr.orders.report`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradepipe.adapter import OrderReport
from tradepipe.brokers.ibkr.market import parse_value
from tradepipe.brokers.ibkr.orders import decimal, report
from tradepipe.market import Quote

#: Fields asked for on ``smd``: last, bid, ask, bid size, ask size, last size, day volume
#: (high precision) and market-data availability.
STREAM_FIELDS = ("31", "84", "86", "88", "85", "7059", "7762", "6509")
_LAST, _VOLUME = "31", "7762"


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """A conid's quote after one ``smd`` message.

    :param quote: every field known so far (IBKR's first message may be partial).
    :param changed: the field ids this message carried.
    :param first: the first message since (re)subscribing: the market's state, not a trade.
    :param flag: ``"C"`` when the last price is the previous close (market closed), ``"H"``
        when trading is halted, else ``""``.
    :param trade_size: day volume added since the previous message (``None``: unknown).
    :param traded: this message reports a trade: a last price or day volume that was
        already known moved, while trading (no ``C``/``H`` flag). A field arriving for the
        first time after a subscription completes the picture; it is not a trade.
    """

    quote: Quote
    changed: frozenset[str]
    first: bool
    flag: str = ""
    trade_size: Decimal | None = None
    traded: bool = False

    @property
    def symbol(self) -> str:
        return self.quote.symbol


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """An order after one ``sor`` update.

    :param fields: the order's fields as merged so far (IBKR's live-orders names).
    :param changed: the field names this update carried (``orderId`` aside).
    :param report: the order in the adapter's terms, status mapped as the adapter maps it;
        ``None`` while IBKR's status is unknown or not yet sent.
    """

    broker_order_id: str
    fields: Mapping[str, Any]
    changed: frozenset[str]
    report: OrderReport | None

    @property
    def client_order_id(self) -> str | None:
        ref = self.fields.get("order_ref")
        return str(ref) if ref else None

    @property
    def ibkr_status(self) -> str:
        return str(self.fields.get("status") or "")

    @property
    def filled(self) -> bool:
        """The filled quantity moved: executions are worth reading now."""
        return "filledQuantity" in self.changed or "sizeAndFills" in self.changed


class QuoteBook:
    """Each subscribed conid's fields, merged message by message."""

    def __init__(self, symbols: Mapping[int, str], now: Callable[[], dt.datetime]) -> None:
        self.symbols = dict(symbols)
        self._now = now
        self._fields: dict[int, dict[str, str]] = {}
        self._volume: dict[int, Decimal] = {}

    def restart(self, conid: int) -> None:
        """A (re)subscription: what was known is stale; the next message is a first one."""
        self._fields.pop(conid, None)
        self._volume.pop(conid, None)

    def apply(self, message: Mapping[str, Any]) -> QuoteUpdate | None:
        """The whole quote after ``message`` (an ``smd`` message), or ``None`` if it has no
        field of a conid this book follows."""
        conid = _conid(message)
        symbol = self.symbols.get(conid) if conid is not None else None
        if conid is None or symbol is None:
            return None
        changed = {k: str(v) for k, v in message.items() if k.isdigit() and v is not None}
        if not changed:
            return None
        first = conid not in self._fields
        fields = self._fields.setdefault(conid, {})
        moved = {f for f in changed if f in fields and fields[f] != changed[f]}
        fields.update(changed)
        values = {f: parse_value(fields.get(f))[0] for f in STREAM_FIELDS}
        flag = parse_value(fields.get(_LAST))[1]
        trade_size = None
        volume = values[_VOLUME]
        if volume is not None and _VOLUME in changed:
            before = self._volume.get(conid)
            self._volume[conid] = volume
            if before is not None and volume >= before:
                trade_size = volume - before
        updated = decimal(message.get("_updated"))
        ts = (
            dt.datetime.fromtimestamp(int(updated) / 1000, dt.UTC)
            if updated is not None
            else self._now()
        )
        quote = Quote(
            symbol=symbol,
            ts=ts,
            bid=values["84"],
            ask=values["86"],
            last=values[_LAST],
            bid_size=values["88"],
            ask_size=values["85"],
            volume=volume,
            conid=conid,
        )
        traded = bool(moved & {_LAST, _VOLUME}) and not flag and quote.last is not None
        return QuoteUpdate(quote, frozenset(changed), first, flag, trade_size, traded)


class OrderBook:
    """Each order's ``sor`` fields, merged update by update."""

    def __init__(self) -> None:
        self._orders: dict[str, dict[str, Any]] = {}

    def apply(self, item: Mapping[str, Any]) -> OrderChanged | None:
        order_id = item.get("orderId", item.get("order_id"))
        if order_id is None:
            return None
        key = str(order_id)
        fields = self._orders.setdefault(key, {})
        fields.update(item)
        fields["orderId"] = order_id
        changed = frozenset(k for k in item if k not in ("orderId", "order_id"))
        found = None
        if fields.get("status"):
            try:
                found = report(fields)
            except (KeyError, TypeError, ValueError):
                found = None
        return OrderChanged(key, dict(fields), changed, found)


def _conid(message: Mapping[str, Any]) -> int | None:
    raw = message.get("conid")
    if raw is None:
        topic = str(message.get("topic") or "")
        raw = topic.split("+", 1)[1].split("@", 1)[0] if "+" in topic else None
    number = decimal(raw)
    return int(number) if number is not None and number == number.to_integral_value() else None
