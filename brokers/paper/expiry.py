"""Options at expiry on the paper simulator: automatic exercise, assignment, settlement.

The model is that of US equity options, physically settled under OCC's rules:

* **When.** An option position settles at the first bar the simulator sees,
  of any symbol, whose exchange date (``timezone``) is after the option's
  expiry date: once the expiry day has closed.
* **On what price.** The underlying's last close on or before the expiry
  date: the newest bar of it the simulator saw up to then.
* **Exercise or not.** OCC's exercise by exception: an option in the money by
  at least $0.01 (a call: close − strike; a put: strike − close) is exercised
  when held long and assigned when held short; any other expires worthless.
  An option exactly at the strike expires.
* **Booking.** Each settlement is reported as fills of kind ``expired``,
  ``exercised`` or ``assigned``, without commission, under the client order
  id ``expiry-<OCC>-<expiry date>`` (the OCC symbol without its spaces) and
  ``decision_id`` of the latest order the simulator still remembers trading
  the contract (else ``""``); a run records them under the order that opened
  the position (:mod:`tradepipe.lifecycle`). Execution
  ``<id>.1`` closes the option at price 0, so the premium paid or received
  becomes its realized P&L; if the option is exercised or assigned,
  execution ``<id>.2`` trades multiplier × contracts shares of the underlying
  at the strike (a long call or a short put buys, a long put or a short call
  sells). The option's intrinsic value is therefore carried by the stock
  position, opened (or closed) at the strike and marked at market. Both fills
  are stamped 16:00 on the expiry date (or the underlying's last bar that
  day, if later).
* **No checks.** Settlement is not an order: an assignment may leave the
  account short stock with ``allow_short = false`` and cash may go negative,
  as at a broker, which would then issue a margin call.

Not modelled, where IBKR's practice differs: IBKR may close or exercise
positions before expiry when the account lacks the margin for the result;
cash-settled index options (SPX, XSP, NDX…) pay their intrinsic value in cash
instead of delivering shares; exercise instructions contrary to the
$0.01 rule, early exercise and after-hours moves in the underlying are not
simulated.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

from tradepipe import Bar, Fill, FillKind, OrderStatus
from tradepipe.brokers.paper.account import PaperAccount
from tradepipe.brokers.paper.options import parse_occ
from tradepipe.instruments import Combo, Option
from tradepipe.money import CENT, ZERO, to_decimal
from tradepipe.orders import Side

log = logging.getLogger("tradepipe.brokers.paper.broker")

_CLOSE = dt.time(16, 0)
_OCC_LENGTH = 21


def intrinsic(option: Option, close: Decimal) -> Decimal:
    """How far ``option`` is in the money at ``close`` per share (negative when out)."""
    return close - option.strike if option.right == "C" else option.strike - close


def exercised(option: Option, close: Decimal) -> bool:
    """OCC's automatic exercise: in the money by at least a cent at ``close``."""
    return intrinsic(option, close) >= CENT


def settlement_id(option: Option) -> str:
    """The client order id of ``option``'s settlement, the same on every run."""
    return f"expiry-{option.ticker.replace(' ', '')}-{option.expiry.isoformat()}"


class Expiries:
    """Settles a paper account's option positions once their expiry day has closed."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._stale = True
        #: When the next settlement falls due (None: no option position).
        self._due: dt.datetime | None = None
        #: Positions with no price of their underlying at all: they cannot settle.
        self._unpriced: set[str] = set()

    def changed(self) -> None:
        """Option positions may have changed (a fill, a reload): look again at the next bar."""
        self._stale = True

    def due(self, account: PaperAccount, ts: dt.datetime) -> bool:
        """Whether a bar at ``ts`` comes after the expiry day of an option held."""
        if self._stale:
            self._stale = False
            self._due = min(
                (self._after(o.expiry) for _, o, _ in self._held(account)), default=None
            )
        return self._due is not None and ts >= self._due

    def settle(self, account: PaperAccount, ts: dt.datetime) -> list[Fill]:
        """Settle every option position whose expiry day ended before ``ts``; return the fills.

        The fills are applied to the account's book and appended to its fills.
        """
        out: list[Fill] = []
        for symbol, option, quantity in self._held(account):
            end = self._after(option.expiry)
            if ts < end:
                continue
            under = _close_before(account, option.underlying, end)
            if under is None:
                log.warning("%s cannot settle: no price of %s known", symbol, option.underlying)
                self._unpriced.add(symbol)
                continue
            if under.ts >= end:
                # Only from an account file written before expiries were settled.
                log.warning(
                    "%s settles on %s's close of %s, the first known after its expiry",
                    symbol,
                    option.underlying,
                    under.ts.isoformat(),
                )
            fills = _settlement(option, quantity, under, _decision_of(account, symbol), self._tz)
            for fill in fills:
                account.book.apply(fill)
                account.fills.append(fill)
            out.extend(fills)
            # The run says what it means for the position (tradepipe.lifecycle).
            log.debug(
                "%s %s at %s's close of %s",
                symbol,
                "expired" if len(fills) == 1 else "exercised" if quantity > 0 else "assigned",
                option.underlying,
                under.close,
            )
        self._stale = True
        return out

    def _held(self, account: PaperAccount) -> list[tuple[str, Option, Decimal]]:
        """The option positions held: OCC symbol, option (its multiplier the position's), size."""
        book = account.book
        out = []
        for symbol, multiplier in sorted(book.held().items()):
            if len(symbol) != _OCC_LENGTH or symbol in self._unpriced:
                continue
            option = parse_occ(symbol)
            if option is not None:
                option = option.model_copy(update={"multiplier": multiplier})
                out.append((symbol, option, book.quantity(symbol)))
        return out

    def _after(self, expiry: dt.date) -> dt.datetime:
        """The start of the exchange date after ``expiry``."""
        return dt.datetime.combine(expiry + dt.timedelta(days=1), dt.time(), tzinfo=self._tz)


def _close_before(account: PaperAccount, symbol: str, end: dt.datetime) -> Bar | None:
    """``symbol``'s newest bar before ``end``; else its last one (None if it has none)."""
    seen = account.history.get(symbol, ())
    for bar in reversed(seen):
        if bar.ts < end:
            return bar
    return account.last.get(symbol)


def _decision_of(account: PaperAccount, ticker: str) -> str:
    """The decision of the latest filled order the account remembers trading ``ticker``."""
    for sim in reversed(account.orders.values()):
        if not sim.option or sim.status is not OrderStatus.FILLED:
            continue
        instrument = sim.intent.instrument
        if isinstance(instrument, Option):
            traded = instrument.ticker == ticker
        else:
            assert isinstance(instrument, Combo)
            traded = any(
                isinstance(leg.instrument, Option) and leg.instrument.ticker == ticker
                for leg in instrument.legs
            )
        if traded:
            return sim.intent.decision_id
    return ""


def _settlement(
    option: Option, quantity: Decimal, under: Bar, decision_id: str, tz: ZoneInfo
) -> list[Fill]:
    """The fills settling ``quantity`` contracts of ``option`` (negative: short) on ``under``."""
    cid = settlement_id(option)
    ts = max(dt.datetime.combine(option.expiry, _CLOSE, tzinfo=tz).astimezone(dt.UTC), under.ts)
    long = quantity > 0
    contracts = abs(quantity)
    exercise = exercised(option, to_decimal(under.close))
    kind = FillKind.EXPIRED if not exercise else FillKind.EXERCISED if long else FillKind.ASSIGNED
    fills = [
        Fill.trusted(
            execution_id=f"{cid}.1",
            client_order_id=cid,
            decision_id=decision_id,
            symbol=option.ticker,
            side=Side.SELL if long else Side.BUY,
            quantity=contracts,
            price=ZERO,
            multiplier=option.multiplier,
            ts=ts,
            kind=kind,
        )
    ]
    if exercise:
        # A long call or a short put ends up buying the shares; the other two sell them.
        buys = long == (option.right == "C")
        fills.append(
            Fill.trusted(
                execution_id=f"{cid}.2",
                client_order_id=cid,
                decision_id=decision_id,
                symbol=option.underlying,
                side=Side.BUY if buys else Side.SELL,
                quantity=contracts * option.multiplier,
                price=option.strike,
                ts=ts,
                kind=kind,
            )
        )
    return fills
