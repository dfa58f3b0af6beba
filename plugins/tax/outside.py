"""Trades made outside tradepipe, read from a broker's report for the tax lots.

Three formats (see docs/taxes.md, "Importing trades made elsewhere"):

- IBKR's Flex Query trade report as XML (``FlexQueryResponse``);
- the same report as CSV, in any of its layouts: one header row per section,
  header and trailer records (``BOF`` … ``EOF``), or every line tagged
  ``HEADER``/``DATA`` with its section code (``TRNT`` for trades);
- a plain CSV with one trade per row (:data:`CSV_COLUMNS`).

Reading changes nothing: :func:`read_trades` returns the trades and, for each
row it did not take, the line and why. Only executions are trades: order and
summary rows of a Flex report are passed over, closed-lot rows are read as the
lots a sale relieved (:class:`ClosedLot`), cancellations are matched with the
trade they cancel (both dropped) or kept to cancel an earlier import. Stocks
and equity options in US dollars are taken; any other asset class or currency
is left out and listed, never guessed at.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tradepipe.clock import NEW_YORK
from tradepipe.errors import ConfigError
from tradepipe.instruments import Option
from tradepipe.lifecycle import underlying_of

#: The formats :func:`read_trades` knows, by the name ``--format`` takes.
FORMATS = ("ibkr-xml", "ibkr-csv", "csv")

#: A plain CSV's columns: (name, required, what it holds).
CSV_COLUMNS = (
    ("execution_id", True, "the broker's id of the execution; one id is one trade"),
    ("time", True, "ISO 8601 date and time (with a UTC offset, else --timezone), or a date"),
    ("symbol", True, "the stock, or an option's OCC symbol (`AAPL  260619C00200000`)"),
    ("side", True, "`buy` or `sell`"),
    ("quantity", True, "shares or contracts, more than 0"),
    ("price", True, "per share or per contract's share, in US dollars"),
    ("commission", False, "fees paid, in US dollars (default 0)"),
    ("multiplier", False, "shares per contract (default 1; 100 for an equity option)"),
    ("kind", False, "`trade` (default), `expired`, `exercised` or `assigned`"),
    ("account", False, "the broker account id (else --account)"),
    ("currency", False, "must be `USD` when given"),
)

#: Flex CSV column names → the XML attribute names the rows are read by.
_FLEX_CSV = {
    "ClientAccountID": "accountId",
    "CurrencyPrimary": "currency",
    "AssetClass": "assetCategory",
    "Buy/Sell": "buySell",
    "Notes/Codes": "notes",
    "Open/CloseIndicator": "openCloseIndicator",
    "Put/Call": "putCall",
    "IBCommission": "ibCommission",
    "IBCommissionCurrency": "ibCommissionCurrency",
    "IBExecID": "ibExecID",
    "TransactionID": "transactionID",
    "TradeID": "tradeID",
    "OrigTradeID": "origTradeID",
    "OrigTransactionID": "origTransactionID",
    "LevelOfDetail": "levelOfDetail",
    "TransactionType": "transactionType",
    "DateTime": "dateTime",
    "TradeDate": "tradeDate",
    "TradeTime": "tradeTime",
    "Symbol": "symbol",
    "UnderlyingSymbol": "underlyingSymbol",
    "Quantity": "quantity",
    "TradePrice": "tradePrice",
    "Multiplier": "multiplier",
    "Strike": "strike",
    "Expiry": "expiry",
    "OpenDateTime": "openDateTime",
    "HoldingPeriodDateTime": "holdingPeriodDateTime",
}
#: The columns that mark a Flex CSV section as the trades section.
_TRADE_COLUMNS = {"Buy/Sell", "TradePrice", "Quantity"}
_CANCELS = frozenset({"TradeCancel", "FracShareCancel"})
_SETTLEMENT_CODES = {"Ep": "expired", "Ex": "exercised", "A": "assigned"}
_KINDS = frozenset({"trade", "expired", "exercised", "assigned"})
_NO_VALUE = frozenset({"", "-", "--", "N/A", "MULTI"})
_ZONES = {"EST": NEW_YORK, "EDT": NEW_YORK, "ET": NEW_YORK}


@dataclass(frozen=True)
class OutsideTrade:
    """One execution from a report, in tradepipe's terms.

    :param account: the broker account id the report gives ("" if none).
    :param execution_id: the broker's execution id (IBKR's ``ibExecID``, the
        id tradepipe's own IBKR fills carry), else ``tx<transactionID>``.
    :param commission: paid, positive (IBKR reports it negative).
    :param line: where in the file it was read (a line, or an XML element's number).
    """

    account: str
    execution_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    multiplier: Decimal
    ts: dt.datetime
    kind: str
    line: int
    transaction_id: str = ""
    trade_id: str = ""


@dataclass(frozen=True)
class Cancel:
    """A cancellation whose trade is not in the same file: it may cancel an earlier import."""

    account: str
    transaction_id: str
    trade_id: str
    line: int


@dataclass(frozen=True)
class ClosedLot:
    """A lot a sale relieved, as the broker matched it (a Flex ``CLOSED_LOT`` row).

    :param execution_id: the sale's (the execution the row follows).
    :param opened_at: when the lot was opened (``openDateTime``).
    """

    execution_id: str
    symbol: str
    quantity: Decimal
    opened_at: dt.datetime


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass
class Parsed:
    """What a file holds: trades, cancellations of earlier trades, closed lots, and
    the rows left out with why."""

    format: str
    trades: list[OutsideTrade] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    closed_lots: list[ClosedLot] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Rows that are not executions (order and summary rows): counted, not listed.
    summaries: int = 0


def detect_format(path: Path, head: bytes) -> str:
    """Which of :data:`FORMATS` ``path`` is, from its first bytes."""
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("<"):
        return "ibkr-xml"
    first = text.splitlines()[0] if text else ""
    cells = {c.strip().strip('"') for c in first.split(",")}
    if cells & {"BOF", "HEADER", "MSG", "ClientAccountID", "IBExecID", "TransactionID"}:
        return "ibkr-csv"
    if "execution_id" in {c.lower() for c in cells}:
        return "csv"
    raise ConfigError(
        f"{path.name} is neither an IBKR Flex Query report (XML or CSV) nor a CSV with an "
        "execution_id column; give --format to say which it is",
        key="format",
    )


def read_trades(path: Path, fmt: str = "auto", zone: ZoneInfo = NEW_YORK) -> Parsed:
    """Read ``path`` (``fmt``: one of :data:`FORMATS`, or ``auto``).

    :param zone: the time zone of times that carry no offset (IBKR's reports
        print New York time by default).
    :raises ConfigError: the file cannot be read as that format at all (a row
        that cannot be read is skipped and listed instead).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", key="file") from exc
    if fmt == "auto":
        fmt = detect_format(path, data[:4096])
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}", key="format")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name} is not UTF-8 text ({exc.reason})", key="file") from exc
    parsed = Parsed(fmt)
    if fmt == "csv":
        _read_plain(text, parsed, zone)
    else:
        rows = _flex_xml(text, path) if fmt == "ibkr-xml" else _flex_csv(text, path)
        _read_flex(rows, parsed, zone)
    return parsed


# -- IBKR Flex --------------------------------------------------------------------------


class _FlexRows:
    """An XML parser's target: each row element with the line it starts on."""

    ROWS = frozenset({"Trade", "Lot", "Order", "SymbolSummary", "AssetSummary"})

    def __init__(self) -> None:
        self.parser: Any = None
        self.root = ""
        self.account = ""
        self.rows: list[tuple[int, str, dict[str, str]]] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.root = self.root or tag
        if tag == "FlexStatement":
            self.account = attrs.get("accountId", "")
        elif tag in self.ROWS:
            row = dict(attrs)
            if row.get("accountId", "") in _NO_VALUE:
                row["accountId"] = self.account  # the statement's
            self.rows.append((self.parser.parser.CurrentLineNumber, tag, row))

    def end(self, tag: str) -> None:
        pass

    def data(self, data: str) -> None:
        pass

    def close(self) -> list[tuple[int, str, dict[str, str]]]:
        return self.rows


def _flex_xml(text: str, path: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(line, element name, attributes) of each row element of the report, with the
    statement's account where the row has none."""
    from xml.etree.ElementTree import ParseError

    from defusedxml.common import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    target = _FlexRows()
    parser = DefusedXMLParser(target=target)
    target.parser = parser
    try:
        parser.feed(text)
        parser.close()
    except ParseError as exc:
        raise ConfigError(f"{path.name} is not well-formed XML: {exc}", key="file") from exc
    except DefusedXmlException as exc:
        raise ConfigError(
            f"{path.name} declares XML entities or a DTD, which a Flex report never does: refused",
            key="file",
        ) from exc
    if target.root not in ("FlexQueryResponse", "FlexStatements", "FlexStatement"):
        raise ConfigError(
            f"{path.name} is XML, but not an IBKR Flex Query report (its root is <{target.root}>)",
            key="file",
        )
    yield from target.rows


def _flex_csv(text: str, path: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(line, ``Trade``, row by XML attribute name) of each row of the trades section."""
    header: list[str] | None = None
    reader = csv.reader(io.StringIO(text))
    seen_trades = False
    for line, cells in enumerate(reader, start=1):
        if not cells or not any(c.strip() for c in cells):
            continue
        tag = cells[0].strip()
        if tag in ("BOF", "BOA", "BOS", "EOS", "EOA", "EOF", "MSG"):
            continue
        if tag in ("HEADER", "DATA"):
            if len(cells) < 2 or cells[1].strip() != "TRNT":
                continue  # another section (cash, positions …)
            cells = cells[2:]
            if tag == "HEADER":
                header = [c.strip() for c in cells]
                seen_trades = True
                continue
        elif {c.strip() for c in cells} >= _TRADE_COLUMNS or "ClientAccountID" in cells:
            names = [c.strip() for c in cells]
            header = names if set(names) >= _TRADE_COLUMNS else None
            seen_trades = seen_trades or header is not None
            continue
        if header is None:
            continue
        if len(cells) != len(header):
            yield line, "Malformed", {"cells": str(len(cells)), "header": str(len(header))}
            continue
        row = {
            _FLEX_CSV.get(name, name): value.strip()
            for name, value in zip(header, cells, strict=True)
        }
        yield line, "Trade", row
    if not seen_trades:
        raise ConfigError(
            f"{path.name} has no trades section (a header row with Buy/Sell, Quantity "
            "and TradePrice)",
            key="file",
        )


def _read_flex(
    rows: Iterator[tuple[int, str, dict[str, str]]], parsed: Parsed, zone: ZoneInfo
) -> None:
    pending_cancels: list[tuple[int, dict[str, str]]] = []
    last_sale: OutsideTrade | None = None
    for line, tag, row in rows:
        if tag == "Malformed":
            reason = f"{row['cells']} cells, but its header has {row['header']}"
            parsed.skipped.append(Skipped(line, reason))
            continue
        detail = row.get("levelOfDetail", "").upper()
        if tag == "Lot" or detail == "CLOSED_LOT":
            _closed_lot(line, row, last_sale, parsed, zone)
            continue
        if tag != "Trade" or detail not in ("", "EXECUTION"):
            parsed.summaries += 1
            continue
        if row.get("transactionType", "") in _CANCELS or "(Ca.)" in row.get("buySell", ""):
            pending_cancels.append((line, row))
            continue
        trade = _flex_trade(line, row, parsed, zone)
        if trade is not None:
            parsed.trades.append(trade)
        last_sale = trade  # a closed lot of a trade left out goes with it
    for line, row in pending_cancels:
        _cancel(line, row, parsed)


def _flex_trade(
    line: int, row: Mapping[str, str], parsed: Parsed, zone: ZoneInfo
) -> OutsideTrade | None:
    def skip(reason: str) -> None:
        parsed.skipped.append(Skipped(line, reason))

    asset = _value(row, "assetCategory").upper()
    currency = _value(row, "currency").upper()
    commission_currency = _value(row, "ibCommissionCurrency").upper()
    if asset not in ("STK", "OPT"):
        skip(f"asset class {asset or 'none'}: only stocks (STK) and options (OPT) are lots")
        return None
    if currency != "USD" or commission_currency not in ("", "USD"):
        shown = currency if currency != "USD" else f"commission in {commission_currency}"
        skip(f"{shown or 'no currency'}: tradepipe's lots are in US dollars")
        return None
    try:
        quantity = _number(row, "quantity")
        symbol = _flex_symbol(row, asset)
        ts = _flex_time(row, zone)
        execution = _value(row, "ibExecID") or (
            f"tx{_value(row, 'transactionID')}" if _value(row, "transactionID") else ""
        )
        if not execution:
            raise ValueError("no IBExecID and no TransactionID to know it by")
        if not quantity:
            raise ValueError("quantity 0")
        side = "buy" if quantity > 0 else "sell"
        said = _value(row, "buySell").upper()
        if said and said != side.upper():
            raise ValueError(f"Buy/Sell {said} but quantity {quantity}")
        codes = set(_value(row, "notes").split(";"))
        kinds = {_SETTLEMENT_CODES[c] for c in codes if c in _SETTLEMENT_CODES}
        kind = kinds.pop() if len(kinds) == 1 else "trade"
        return OutsideTrade(
            account=_value(row, "accountId"),
            execution_id=execution,
            symbol=symbol,
            side=side,
            quantity=abs(quantity),
            price=abs(_number(row, "tradePrice")),
            commission=-_number(row, "ibCommission", default=Decimal(0)),
            multiplier=_number(row, "multiplier", default=Decimal(1)),
            ts=ts,
            kind=kind,
            line=line,
            transaction_id=_value(row, "transactionID"),
            trade_id=_value(row, "tradeID"),
        )
    except ValueError as exc:
        skip(str(exc))
        return None


def _closed_lot(
    line: int,
    row: Mapping[str, str],
    sale: OutsideTrade | None,
    parsed: Parsed,
    zone: ZoneInfo,
) -> None:
    """A closed lot follows the sale it belongs to; it names when its lot was opened."""
    opened = _value(row, "openDateTime")
    if sale is None:
        parsed.summaries += 1  # its sale was left out (and listed), or there was none
        return
    if not opened:
        parsed.skipped.append(Skipped(line, "a closed lot with no OpenDateTime"))
        return
    try:
        parsed.closed_lots.append(
            ClosedLot(
                execution_id=sale.execution_id,
                symbol=sale.symbol,
                quantity=abs(_number(row, "quantity")),
                opened_at=_parse_time(opened, zone),
            )
        )
    except ValueError as exc:
        parsed.skipped.append(Skipped(line, f"closed lot: {exc}"))


def _cancel(line: int, row: Mapping[str, str], parsed: Parsed) -> None:
    """Drop the trade a cancellation cancels, if it is in the file; else keep it for the store."""
    orig_tx = _value(row, "origTransactionID")
    orig_trade = _value(row, "origTradeID")
    quantity = _value(row, "quantity").replace(",", "")
    for i, trade in enumerate(parsed.trades):
        same = (orig_tx and trade.transaction_id == orig_tx) or (
            not orig_tx
            and orig_trade
            and trade.trade_id == orig_trade
            and quantity
            and Decimal(quantity) == (-trade.quantity if trade.side == "buy" else trade.quantity)
        )
        if same:
            del parsed.trades[i]
            parsed.skipped.append(
                Skipped(line, f"cancels the trade of line {trade.line}: both left out")
            )
            return
    if not (orig_tx or orig_trade):
        parsed.skipped.append(Skipped(line, "a cancellation that names no trade"))
        return
    parsed.cancels.append(Cancel(_value(row, "accountId"), orig_tx, orig_trade, line))


def _flex_symbol(row: Mapping[str, str], asset: str) -> str:
    symbol = _value(row, "symbol")
    if asset == "STK":
        if not symbol:
            raise ValueError("no symbol")
        return symbol
    if underlying_of(symbol) is not None:
        return symbol
    # Not an OCC symbol as it stands: built from the option's terms.
    try:
        option = Option(
            underlying=_value(row, "underlyingSymbol"),
            right=_value(row, "putCall").upper()[:1],
            strike=_number(row, "strike"),
            expiry=_parse_date(_value(row, "expiry")),
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"option {symbol!r}: cannot tell its terms ({exc})") from None
    return option.ticker


def _flex_time(row: Mapping[str, str], zone: ZoneInfo) -> dt.datetime:
    stamp = _value(row, "dateTime")
    if stamp:
        return _parse_time(stamp, zone)
    day = _value(row, "tradeDate")
    if not day:
        raise ValueError("no DateTime and no TradeDate")
    clock = _value(row, "tradeTime")
    return _parse_time(f"{day};{clock}" if clock else day, zone)


# -- plain CSV ----------------------------------------------------------------------------


def _read_plain(text: str, parsed: Parsed, zone: ZoneInfo) -> None:
    reader = csv.DictReader(io.StringIO(text))
    names = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
    missing = [name for name, required, _ in CSV_COLUMNS if required and name not in names]
    if missing:
        raise ConfigError(
            f"the CSV has no column {', '.join(missing)} (it needs "
            f"{', '.join(n for n, required, _ in CSV_COLUMNS if required)})",
            key="file",
        )
    for line, raw in enumerate(reader, start=2):
        row = {key: (raw.get(original) or "").strip() for key, original in names.items()}
        try:
            parsed.trades.append(_plain_trade(line, row, zone))
        except (ValueError, InvalidOperation) as exc:
            parsed.skipped.append(Skipped(line, str(exc)))


def _plain_trade(line: int, row: Mapping[str, str], zone: ZoneInfo) -> OutsideTrade:
    side = row["side"].lower()
    if side not in ("buy", "sell"):
        raise ValueError(f"side {row['side']!r}: buy or sell")
    quantity = _number(row, "quantity")
    if quantity <= 0:
        raise ValueError(f"quantity {quantity}: more than 0")
    kind = (row.get("kind") or "trade").lower()
    if kind not in _KINDS:
        raise ValueError(f"kind {kind!r}: one of {', '.join(sorted(_KINDS))}")
    currency = (row.get("currency") or "USD").upper()
    if currency != "USD":
        raise ValueError(f"{currency}: tradepipe's lots are in US dollars")
    if not row["execution_id"]:
        raise ValueError("no execution_id")
    return OutsideTrade(
        account=row.get("account", ""),
        execution_id=row["execution_id"],
        symbol=row["symbol"].upper() if underlying_of(row["symbol"]) is None else row["symbol"],
        side=side,
        quantity=quantity,
        price=_number(row, "price"),
        commission=_number(row, "commission", default=Decimal(0)),
        multiplier=_number(row, "multiplier", default=Decimal(1)),
        ts=_parse_time(row["time"], zone),
        kind=kind,
        line=line,
    )


# -- values ---------------------------------------------------------------------------------


def _value(row: Mapping[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    return "" if value in _NO_VALUE else value


def _number(row: Mapping[str, str], name: str, default: Decimal | None = None) -> Decimal:
    text = _value(row, name).replace(",", "")
    if not text:
        if default is None:
            raise ValueError(f"no {name}")
        return default
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name} {text!r} is not a number")
    return number


_SLASHED = re.compile(r"^\d{1,2}/\d{1,2}/\d{2,4}$")


def _parse_date(text: str) -> dt.date:
    """``yyyyMMdd``, ``yyyy-MM-dd`` or ``dd-MMM-yy``; dates with slashes are refused
    (``03/04/2025`` is 4 March or 3 April depending on the query's setting)."""
    if _SLASHED.match(text):
        raise ValueError(
            f"date {text!r} is ambiguous (MM/dd or dd/MM): write dates as yyyyMMdd or "
            "yyyy-MM-dd (a Flex query's date format setting)"
        )
    for pattern in ("%Y%m%d", "%Y-%m-%d", "%d-%b-%y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"date {text!r} is not yyyyMMdd, yyyy-MM-dd or dd-MMM-yy")


def _parse_time(text: str, zone: ZoneInfo) -> dt.datetime:
    """A date and time as IBKR and ISO 8601 write them; a date alone is taken as noon.

    IBKR: a date, a separator (``;``, ``,``, a space or none) and ``HHmmss`` or
    ``HH:mm:ss``, then perhaps a zone (``EST``/``EDT``). Without an offset the
    time is in ``zone``.
    """
    text = text.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is not None and (parsed.tzinfo is not None or "T" in text or ":" in text):
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
    match = re.match(
        r"^(?P<date>[^;,\s]+?)(?:[;,\s]?(?P<time>\d{2}:?\d{2}:?\d{2}))?(?:\s*(?P<zone>[A-Z]{2,5}))?$",
        text,
    )
    if match is None:
        raise ValueError(f"time {text!r} is not a date and time")
    day = _parse_date(match["date"])
    where = zone
    if match["zone"]:
        if match["zone"] not in _ZONES:
            raise ValueError(f"time {text!r}: unknown time zone {match['zone']}")
        where = _ZONES[match["zone"]]
    if not match["time"]:
        return dt.datetime.combine(day, dt.time(12), tzinfo=where)
    digits = match["time"].replace(":", "")
    clock = dt.time(int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    return dt.datetime.combine(day, clock, tzinfo=where)
