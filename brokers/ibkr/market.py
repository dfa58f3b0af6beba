"""Market data on the IBKR Web API: snapshots, history bars, the scanner.

**Snapshots.** The first ``/iserver/marketdata/snapshot`` request for a conid
only starts IBKR's stream and answers without values (the "pre-flight"), and
slow fields can arrive later still. :meth:`MarketData.quotes` asks again a
bounded number of times, with a short pause, until every conid has a price,
then returns what it has. Values arrive as strings: ``"1,300"``, ``"1.2M"``,
and a last price prefixed ``C`` (yesterday's close; market closed) or ``H``
(trading halted).

**History.** ``/iserver/marketdata/history`` bars become :class:`~tradepipe.Bar`
tuples, so broker history can feed a replay.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.contracts import Contracts
from tradepipe.errors import BrokerError
from tradepipe.market import Bar, Quote

log = logging.getLogger(__name__)

#: Snapshot field ids by name (reference §7.1).
FIELDS = {
    "last": "31",
    "bid": "84",
    "ask": "86",
    "bid_size": "88",
    "ask_size": "85",
    "last_size": "7059",
    "volume": "7762",
    "volume_formatted": "87",
    "symbol": "55",
    "availability": "6509",
    "high": "70",
    "low": "71",
    "prior_close": "7741",
}
_PRICE_FIELDS = (FIELDS["last"], FIELDS["bid"], FIELDS["ask"])
_SUFFIX = {"K": Decimal(1_000), "M": Decimal(1_000_000), "B": Decimal(1_000_000_000)}

#: IBKR's bar sizes, in minutes (``m`` is a month; minutes are ``min``).
BAR_MINUTES = {
    "1min": 1,
    "2min": 2,
    "3min": 3,
    "5min": 5,
    "10min": 10,
    "15min": 15,
    "30min": 30,
    "1h": 60,
    "2h": 120,
    "3h": 180,
    "4h": 240,
    "8h": 480,
    "1d": 1440,
    "1w": 7 * 1440,
    "1m": 30 * 1440,
}
_RTH_MINUTES = 390


def parse_value(raw: Any) -> tuple[Decimal | None, str]:
    """A snapshot value and its flag: ``"C189.5"`` → ``(189.5, "C")``.

    The flag is ``"C"`` (the value is the previous close), ``"H"`` (halted) or
    ``""``. Thousands separators and ``K``/``M``/``B`` suffixes are undone.
    """
    if raw is None:
        return None, ""
    text = str(raw).strip().replace(",", "")
    flag = ""
    if text[:1] in ("C", "H"):
        flag, text = text[0], text[1:]
    scale = Decimal(1)
    if text[-1:] in _SUFFIX:
        scale, text = _SUFFIX[text[-1]], text[:-1]
    try:
        value = Decimal(text) * scale
    except InvalidOperation:
        return None, flag
    return (value if value.is_finite() else None), flag


def history_period(bars: int, bar_size: str) -> str:
    """An IBKR ``period`` long enough for ``bars`` bars of ``bar_size``.

    Intraday sizes count regular trading hours (390 minutes a day), so a
    period is given in trading days; daily and longer bars in days, weeks
    or months.
    """
    minutes = BAR_MINUTES[bar_size]
    if minutes < 1440:
        days = math.ceil(bars * minutes / _RTH_MINUTES)
        return f"{min(max(days, 1), 1000)}d"
    if bar_size == "1d":
        # Calendar days, with room for weekends and holidays.
        days = math.ceil(bars * 7 / 5) + 5
        return f"{days}d" if days <= 1000 else f"{min(math.ceil(days / 365), 15)}y"
    if bar_size == "1w":
        return f"{min(bars, 792)}w"
    return f"{min(bars, 182)}m"


class MarketData:
    """Quotes, history and scans through one client."""

    def __init__(
        self,
        client: WebApiClient,
        contracts: Contracts,
        *,
        attempts: int = 5,
        pause: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.contracts = contracts
        self.attempts = attempts
        self.pause = pause
        self._sleep = sleep
        self._monotonic = monotonic
        self._scanner_params: tuple[float, Any] | None = None

    def snapshot(
        self, conids: Sequence[int], fields: Sequence[str], *, wanted: Sequence[str] = ()
    ) -> dict[int, dict[str, Any]]:
        """Raw snapshot rows by conid, after the pre-flight and bounded retries.

        IBKR is asked again (up to ``attempts`` times) until every conid has a
        price and every field of ``wanted`` (slow ones, such as greeks); what
        has arrived by then is returned, however incomplete.
        """
        rows: dict[int, dict[str, Any]] = {}
        params = {"conids": ",".join(str(c) for c in conids), "fields": ",".join(fields)}

        def complete(row: dict[str, Any]) -> bool:
            return any(f in row for f in _PRICE_FIELDS) and all(f in row for f in wanted)

        for attempt in range(self.attempts):
            body = self.client.get("/iserver/marketdata/snapshot", params)
            for row in body or []:
                if isinstance(row, dict) and row.get("conid") is not None:
                    rows.setdefault(int(row["conid"]), {}).update(row)
            if all(complete(rows.get(c, {})) for c in conids):
                break
            if attempt + 1 < self.attempts:
                self._sleep(self.pause)
        return rows

    def release(self, conids: Sequence[int]) -> None:
        """Close the streams snapshots of ``conids`` opened.

        Every conid asked for keeps a stream, and each stream holds one of the
        account's market-data lines (reference §7.1): a chain read that priced
        dozens of contracts gives them back. A stream already gone answers an
        error, which is ignored (so is any other: the read has its data).
        """
        for conid in conids:
            try:
                self.client.post("/iserver/marketdata/unsubscribe", {"conid": conid})
            except BrokerError as exc:
                log.debug("market data stream of conid %s not closed: %s", conid, exc)

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        conids = {s.upper(): self.contracts.stock(s) for s in symbols}
        rows = self.snapshot(list(conids.values()), list(FIELDS.values()))
        out = []
        for symbol, conid in conids.items():
            row = rows.get(conid, {})
            values = {name: parse_value(row.get(fid))[0] for name, fid in FIELDS.items()}
            updated = row.get("_updated")
            ts = (
                dt.datetime.fromtimestamp(int(updated) / 1000, dt.UTC)
                if updated is not None
                else None
            )
            if ts is None:
                # No data at all came back for this conid (still warming up).
                continue
            volume = (
                values["volume"] if values["volume"] is not None else values["volume_formatted"]
            )
            out.append(
                Quote(
                    symbol=symbol,
                    ts=ts,
                    bid=values["bid"],
                    ask=values["ask"],
                    last=values["last"],
                    bid_size=values["bid_size"],
                    ask_size=values["ask_size"],
                    volume=volume,
                    conid=conid,
                )
            )
        return out

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        if bar_size not in BAR_MINUTES:
            raise BrokerError(
                f"unknown bar size {bar_size!r}; IBKR offers: {', '.join(BAR_MINUTES)}"
            )
        conid = self.contracts.stock(symbol)
        body = self.client.get(
            "/iserver/marketdata/history",
            {"conid": conid, "bar": bar_size, "period": history_period(bars, bar_size)},
        )
        return self._bars(symbol, body)[-bars:]

    def history_since(
        self, symbol: str, since: dt.datetime, *, bar_size: str, now: dt.datetime
    ) -> list[Bar]:
        """Bars of ``bar_size`` starting at or after ``since`` (what a dropped stream missed).

        The period counts back from now, in whole hours up to 8 and in days beyond (IBKR
        allows minute bars for both; what ``startTime`` means is unclear, reference §7.2),
        outside regular trading hours included.
        """
        if bar_size not in BAR_MINUTES:
            raise BrokerError(
                f"unknown bar size {bar_size!r}; IBKR offers: {', '.join(BAR_MINUTES)}"
            )
        span = max((now - since).total_seconds(), 0.0) + BAR_MINUTES[bar_size] * 60
        hours = math.ceil(span / 3600)
        period = f"{hours}h" if hours <= 8 else f"{min(math.ceil(span / 86400), 1000)}d"
        body = self.client.get(
            "/iserver/marketdata/history",
            {
                "conid": self.contracts.stock(symbol),
                "bar": bar_size,
                "period": period,
                "outsideRth": "true",
            },
        )
        return [b for b in self._bars(symbol, body) if b.ts >= since]

    def _bars(self, symbol: str, body: Any) -> list[Bar]:
        data = body.get("data") if isinstance(body, dict) else None
        out = []
        for point in data or []:
            try:
                out.append(
                    Bar(
                        symbol.upper(),
                        dt.datetime.fromtimestamp(int(point["t"]) / 1000, dt.UTC),
                        float(point["o"]),
                        float(point["h"]),
                        float(point["l"]),
                        float(point["c"]),
                        float(point.get("v") or 0.0),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise BrokerError(f"IBKR sent an unreadable history bar: {point!r}") from exc
        out.sort(key=lambda b: b.ts)
        return out

    def scanner_params(self) -> Any:
        """Scanner parameters, cached: IBKR allows one request per 15 minutes."""
        now = self._monotonic()
        if self._scanner_params is not None and now - self._scanner_params[0] < 900:
            return self._scanner_params[1]
        body = self.client.get("/iserver/scanner/params")
        self._scanner_params = (now, body)
        return body

    def scan(
        self,
        *,
        type: str = "TOP_PERC_GAIN",
        instrument: str = "STK",
        location: str = "STK.US.MAJOR",
        filters: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        body = self.client.post(
            "/iserver/scanner/run",
            {
                "instrument": instrument,
                "location": location,
                "type": type,
                "filter": [{"code": k, "value": v} for k, v in (filters or {}).items()],
            },
        )
        contracts = body.get("contracts") if isinstance(body, dict) else None
        out = []
        for rank, item in enumerate(contracts or [], start=1):
            conid = item.get("con_id") or item.get("conid")
            symbol = str(item.get("symbol") or "")
            if conid is not None and symbol:
                self.contracts.remember(symbol.upper(), int(conid))
            out.append(
                {
                    "rank": rank,
                    "symbol": symbol,
                    "conid": int(conid) if conid is not None else None,
                    "name": item.get("company_name"),
                    "value": item.get("scan_data"),
                    "column": body.get("scan_data_column_name") if isinstance(body, dict) else None,
                    "exchange": item.get("listing_exchange"),
                    "sec_type": item.get("sec_type"),
                }
            )
        return out
