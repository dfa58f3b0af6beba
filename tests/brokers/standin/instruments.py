"""The instruments the stand-in knows: a few stocks, spread conids, and generated options.

AAPL (265598, plus non-US listings), MSFT 272093, SPY 756733 and IBM 8314. Options have
deterministic conids; four option months, the nearest with a weekly expiry too; greeks are
Black-Scholes at 30% volatility from the underlying's default price.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


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
