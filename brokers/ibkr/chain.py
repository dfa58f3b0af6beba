"""Prices and greeks for one expiry's options, from IBKR market-data snapshots.

``secdef/strikes`` lists a month's strikes and nothing else. For a chain of
one expiry, :func:`with_market_data` reads the underlying's price, keeps the
``each_side`` listed strikes below and above it (every contract costs a
``secdef/info`` request at IBKR's pace, so a whole chain is not read), looks
their conids up (cached by :class:`~tradepipe.brokers.ibkr.contracts.Contracts`)
and reads one snapshot of them through
:meth:`~tradepipe.brokers.ibkr.market.MarketData.snapshot`, pre-flight and
retries included. Strikes outside the window, contracts IBKR has no data for
and fields it leaves out stay in the chain without a price or greeks: nothing
is estimated here, so choosing by delta is refused rather than guessed.

What is assumed of IBKR's fields (reference §7.1 and IBKR's field list, which
give the meaning but not every format):

* ``7308`` delta: the option's own delta, a put's negative as TWS shows it.
  The sign is not documented for the Web API, so it is set from the right
  (calls ``|d|``, puts ``-|d|``); a value outside -1..1 is dropped.
* ``7633`` implied volatility: documented as a percentage ("Implied Vol. %"),
  with or without a ``%`` sign; it is divided by 100 to a fraction.
* price: the mid of bid ``84`` and ask ``86`` when both are positive and the
  ask is not below the bid, else the last ``31`` (a ``C`` prefix, yesterday's
  close, is still a price IBKR gives).
* ``6509`` availability: delayed (``D``) and frozen (``Z``, ``Y``) values are
  used, and said so in the log; ``N`` (not subscribed) and ``O`` (market-data
  terms not signed) rows are read as no data at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tradepipe.brokers.ibkr.contracts import Contracts
from tradepipe.brokers.ibkr.market import MarketData, parse_value
from tradepipe.errors import BrokerAuthError, BrokerError, BrokerRejectedError
from tradepipe.instruments import Option
from tradepipe.options.chain import OptionQuote

log = logging.getLogger("tradepipe.brokers.ibkr")

LAST, BID, ASK, DELTA, IV, AVAILABILITY = "31", "84", "86", "7308", "7633", "6509"
#: Asked for in the pre-flight too: IBKR starts a stream with the fields it is first asked for.
OPTION_FIELDS = (LAST, BID, ASK, DELTA, IV, AVAILABILITY)
_UNDERLYING_FIELDS = (LAST, BID, ASK, AVAILABILITY)
_NO_DATA = frozenset("NO")
_STALE = {"D": "delayed", "Z": "frozen", "Y": "frozen and delayed"}


def window(strikes: Sequence[Decimal], price: Decimal, each_side: int) -> list[Decimal]:
    """The ``each_side`` listed strikes at or below ``price`` and the ``each_side`` above."""
    if each_side <= 0:
        return []
    ordered = sorted(set(strikes))
    below = [k for k in ordered if k <= price][-each_side:]
    above = [k for k in ordered if k > price][:each_side]
    return below + above


def price_of(row: Mapping[str, Any]) -> Decimal | None:
    """A snapshot row's price: mid of a sane bid and ask, else the last; ``None`` without."""
    bid, ask = parse_value(row.get(BID))[0], parse_value(row.get(ASK))[0]
    if bid is not None and ask is not None and bid > 0 and ask >= bid:
        return (bid + ask) / 2
    last = parse_value(row.get(LAST))[0]
    return last if last is not None and last > 0 else None


def delta_of(row: Mapping[str, Any], right: str) -> float | None:
    """Field 7308 signed by the option's right (calls 0..1, puts -1..0)."""
    value = parse_value(row.get(DELTA))[0]
    if value is None or abs(value) > 1:
        return None
    size = float(abs(value))
    return -size if right == "P" else size


def iv_of(row: Mapping[str, Any]) -> float | None:
    """Field 7633, a percentage, as a fraction (``"24.5%"`` → 0.245)."""
    raw = row.get(IV)
    if raw is None:
        return None
    value = parse_value(str(raw).strip().rstrip("%"))[0]
    if value is None or value <= 0:
        return None
    return float(value) / 100


def availability(row: Mapping[str, Any]) -> str:
    """Field 6509's first letter (``R`` real time, ``D`` delayed, ``N`` none …), or ``""``."""
    return str(row.get(AVAILABILITY) or "")[:1]


def quote(option: Option, row: Mapping[str, Any]) -> OptionQuote:
    """What a snapshot row says of ``option``; nothing of a row IBKR marks as no data."""
    if availability(row) in _NO_DATA:
        return OptionQuote(option=option)
    return OptionQuote(
        option=option, price=price_of(row), delta=delta_of(row, option.right), iv=iv_of(row)
    )


def with_market_data(
    chain: Sequence[OptionQuote],
    *,
    underlying: str,
    expiry: dt.date,
    contracts: Contracts,
    market: MarketData,
    each_side: int,
) -> list[OptionQuote]:
    """``chain`` (one expiry's listing) with prices and greeks near the money where IBKR has them.

    A failure to read market data (no subscription, a refused or failed
    request, pacing) leaves the listing as it was; only a lost session is
    raised, so the caller can repair it and ask again.
    """
    if each_side <= 0 or not chain:
        return list(chain)
    try:
        return _priced(chain, underlying, expiry, contracts, market, each_side)
    except BrokerAuthError:
        raise
    except BrokerError as exc:
        log.warning(
            "%s options expiring %s: market data not read (%s); the chain has no prices or greeks",
            underlying,
            expiry,
            exc,
        )
        return list(chain)


def _priced(
    chain: Sequence[OptionQuote],
    underlying: str,
    expiry: dt.date,
    contracts: Contracts,
    market: MarketData,
    each_side: int,
) -> list[OptionQuote]:
    conid = int(contracts.search(underlying)["conid"])
    spot_row = market.snapshot([conid], _UNDERLYING_FIELDS).get(conid, {})
    spot = None if availability(spot_row) in _NO_DATA else price_of(spot_row)
    if spot is None:
        log.info(
            "%s: IBKR gave no price for the underlying; its options expiring %s are listed "
            "without prices or greeks",
            underlying,
            expiry,
        )
        return list(chain)
    wanted: dict[int, int] = {}  # option conid -> its place in the chain
    for right in ("C", "P"):
        near = set(
            window([q.option.strike for q in chain if q.option.right == right], spot, each_side)
        )
        for i, item in enumerate(chain):
            option = item.option
            if option.right != right or option.strike not in near:
                continue
            try:
                found = contracts.option(underlying, expiry, option.strike, right)
            except BrokerRejectedError:
                continue  # a weekly may list fewer strikes than its month
            wanted[found.conid] = i
    if not wanted:
        return list(chain)
    try:
        rows = market.snapshot(list(wanted), OPTION_FIELDS, wanted=(DELTA,))
    finally:
        # Up to 4 x the window of option streams: give their market-data lines back.
        market.release(list(wanted))
    out = list(chain)
    stale: set[str] = set()
    for option_conid, i in wanted.items():
        row = rows.get(option_conid)
        if row:
            out[i] = quote(chain[i].option, row)
            stale.update(_STALE[a] for a in (availability(row),) if a in _STALE)
    if stale:
        log.info(
            "%s options expiring %s: IBKR's market data is %s, not real time",
            underlying,
            expiry,
            " / ".join(sorted(stale)),
        )
    return out
