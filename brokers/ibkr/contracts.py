"""Symbols to IBKR contract ids (conids), and option chains.

Conids are permanent for an instrument's life, so every lookup is cached for
the life of the adapter. Stocks resolve through ``/trsrv/stocks`` (no brokerage
session needed) to the US listing; options follow IBKR's chain recipe:
``secdef/search`` for the underlying (which also unlocks ``secdef/strikes``),
then ``secdef/strikes`` per month, then ``secdef/info`` per strike and right.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.errors import BrokerError, BrokerRejectedError

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def month_code(expiry: dt.date) -> str:
    """IBKR's option month code, e.g. 2026-12-18 → ``DEC26``."""
    return f"{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


@dataclass(frozen=True)
class OptionContract:
    conid: int
    underlying: str
    expiry: dt.date
    strike: Decimal
    right: str
    multiplier: Decimal


class Contracts:
    """Cached conid lookups for one adapter."""

    def __init__(self, client: WebApiClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._stocks: dict[str, int] = {}
        self._symbols: dict[int, str] = {}
        self._searched: dict[str, dict[str, Any]] = {}
        self._options: dict[tuple[str, dt.date, Decimal, str], OptionContract] = {}

    def remember(self, symbol: str, conid: int) -> None:
        """Learn a pairing seen elsewhere (positions, orders)."""
        with self._lock:
            self._stocks.setdefault(symbol, conid)
            self._symbols.setdefault(conid, symbol)

    def symbol(self, conid: int) -> str | None:
        return self._symbols.get(conid)

    def stock(self, symbol: str) -> int:
        """The conid of ``symbol``'s US stock listing.

        :raises BrokerRejectedError: IBKR knows no US stock by that symbol.
        """
        symbol = symbol.upper()
        cached = self._stocks.get(symbol)
        if cached is not None:
            return cached
        body = self.client.get("/trsrv/stocks", {"symbols": symbol})
        entries = body.get(symbol) if isinstance(body, dict) else None
        for entry in entries or []:
            if entry.get("assetClass", "STK") != "STK":
                continue
            for contract in entry.get("contracts") or []:
                if contract.get("isUS"):
                    conid = int(contract["conid"])
                    self.remember(symbol, conid)
                    return conid
        raise BrokerRejectedError(
            f"{self.client.broker}: IBKR has no US stock listing for {symbol!r}",
            broker=self.client.broker,
            symbol=symbol,
        )

    def search(self, symbol: str) -> dict[str, Any]:
        """``secdef/search`` for an underlying (cached; needed before strikes)."""
        symbol = symbol.upper()
        found = self._searched.get(symbol)
        if found is not None:
            return found
        body = self.client.get("/iserver/secdef/search", {"symbol": symbol})
        results = [r for r in body or [] if isinstance(r, dict)]
        match = next((r for r in results if str(r.get("symbol", "")).upper() == symbol), None)
        if match is None:
            raise BrokerRejectedError(
                f"{self.client.broker}: IBKR found no contract for {symbol!r}",
                broker=self.client.broker,
                symbol=symbol,
            )
        self._searched[symbol] = match
        self.remember(symbol, int(match["conid"]))
        return match

    def option_months(self, symbol: str) -> list[str]:
        """Months with listed options, as IBKR codes (``DEC26``)."""
        for section in self.search(symbol).get("sections") or []:
            if section.get("secType") == "OPT":
                return [m for m in str(section.get("months", "")).split(";") if m]
        return []

    def strikes(self, symbol: str, month: str) -> dict[str, list[Decimal]]:
        """Strikes listed for ``month``: ``{"call": [...], "put": [...]}``."""
        conid = int(self.search(symbol)["conid"])
        body = self.client.get(
            "/iserver/secdef/strikes",
            {"conid": conid, "sectype": "OPT", "month": month, "exchange": "SMART"},
        )
        body = body if isinstance(body, dict) else {}
        return {side: [_decimal(s) for s in body.get(side) or []] for side in ("call", "put")}

    def expiries(self, symbol: str, month: str, strike: Decimal) -> list[dt.date]:
        """The expiry dates listed in ``month`` (weeklies too), read at one strike's calls."""
        conid = int(self.search(symbol)["conid"])
        body = self.client.get(
            "/iserver/secdef/info",
            {
                "conid": conid,
                "sectype": "OPT",
                "month": month,
                "exchange": "SMART",
                "strike": f"{strike.normalize():f}",
                "right": "C",
            },
        )
        dates = {_maturity(item.get("maturityDate")) for item in body or []}
        return sorted(d for d in dates if d is not None)

    def option(
        self, underlying: str, expiry: dt.date, strike: Decimal, right: str
    ) -> OptionContract:
        """The listed option with exactly this expiry, strike and right.

        :raises BrokerRejectedError: no such option is listed.
        """
        key = (underlying.upper(), expiry, strike, right)
        cached = self._options.get(key)
        if cached is not None:
            return cached
        conid = int(self.search(underlying)["conid"])
        body = self.client.get(
            "/iserver/secdef/info",
            {
                "conid": conid,
                "sectype": "OPT",
                "month": month_code(expiry),
                "exchange": "SMART",
                "strike": f"{strike.normalize():f}",
                "right": right,
            },
        )
        # One month holds several expiries (weeklies): every one answered is
        # kept, so the other expiries of this strike cost no further request,
        # and the exact date is looked up among them.
        for item in body or []:
            found = _maturity(item.get("maturityDate"))
            item_right = str(item.get("right") or right)[:1]
            if found is None or item_right not in ("C", "P") or item.get("conid") is None:
                continue
            self._options.setdefault(
                (key[0], found, strike, item_right),
                OptionContract(
                    conid=int(item["conid"]),
                    underlying=key[0],
                    expiry=found,
                    strike=strike,
                    right=item_right,
                    multiplier=_decimal(item.get("multiplier") or 100),
                ),
            )
        contract = self._options.get(key)
        if contract is not None:
            return contract
        raise BrokerRejectedError(
            f"{self.client.broker}: no {key[0]} {right} option at {strike} expiring {expiry}",
            broker=self.client.broker,
        )


def _maturity(value: Any) -> dt.date | None:
    """``secdef/info``'s ``maturityDate`` (``"20261218"``) as a date, or ``None``."""
    text = str(value or "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise BrokerError(f"IBKR sent {value!r} where a number belongs") from exc
