"""Tax lots from fills: lot relief, realized gains with holding period, wash sales.

A pure engine, no I/O: :func:`compute_lots` takes fills in time order and
returns the lots still open and one :class:`Realization` per closed piece of a
lot. Every fill opens or closes lots: a buy closes short lots first, then opens
a long lot; a sell closes long lots first, then opens a short lot.

Money is :class:`~decimal.Decimal` throughout. A lot's basis is the cash of
its opening fill (a buy's cost plus commission; a short sale's proceeds less
commission) times the multiplier. Splitting an amount pro rata (a fill closing
several lots, a partial close, a commission shared between closing and
opening) is exact when the quotient is; otherwise the piece is rounded to the
cent and the remainder stays with the rest, so the pieces always sum to the
whole.

Simplifications (documented in docs/taxes.md):

- the holding period counts calendar dates in America/New_York from the day
  after acquisition; a wash sale carries back the sold lot's holding period as
  a number of days;
- a short sale is closed with shares bought that day: acquired and sold on
  the cover date, short-term; never a wash sale. A long and a short lot of
  one symbol are never open together (a sell relieves long lots first, as the
  broker nets the position), so the short-sale rules for substantially
  identical property held long do not arise. HIFO relieves short lots first
  in, first out;
- "substantially identical" means the same symbol (the same option ticker),
  and with ``wash_sale_options`` a call bought on a stock sold at a loss (a
  contract standing for its multiplier in shares); only buys that open long
  lots are replacements, earliest first, and a replacement share absorbs at
  most one wash sale; the rest of the lot a sold share came from is never its
  replacement;
- an option's expiry closes it at no price; its exercise or assignment
  closes it with no gain or loss and charges its premium to the shares
  delivered (:mod:`tradepipe.plugins.tax.settlements`); corporate actions
  are not fills and are not seen.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, Inexact, localcontext
from enum import StrEnum

from tradepipe.clock import NEW_YORK
from tradepipe.errors import LotError
from tradepipe.lifecycle import underlying_of
from tradepipe.money import ZERO, cents
from tradepipe.orders import FillLike
from tradepipe.plugins.tax.settlements import (
    DELIVERING,
    SETTLING,
    Deliveries,
    Delivery,
    delivered_side,
)

#: Holding periods and wash-sale windows count dates where US stocks trade.
WASH_WINDOW = dt.timedelta(days=30)
#: A lot a sale names: its name or id, alone or with the most to take of it.
Named = str | tuple[str, Decimal]


class Method(StrEnum):
    """Which open lots a closing fill relieves first."""

    FIFO = "fifo"
    LIFO = "lifo"
    HIFO = "hifo"


class Term(StrEnum):
    SHORT = "short"
    LONG = "long"


@dataclass(frozen=True)
class Lot:
    """An open position from one fill, or a piece of one.

    :param lot_id: the opening fill's execution id; a piece split off by a wash
        sale gets ``<execution id>.<n>``.
    :param origin: the opening fill's execution id.
    :param name: what a person reads and names: see :func:`lot_name`; a piece
        split off by a wash sale gets ``<name>:w<n>``.
    :param purchased: the trade date (exchange time zone).
    :param acquired: the date the holding period counts from; earlier than
        ``purchased`` when a wash sale carried a sold lot's holding period over.
    :param basis: long: cost including commission; short: proceeds less
        commission. Includes ``wash_adjustment``.
    :param wash_adjustment: disallowed wash-sale loss added to the basis.
    """

    lot_id: str
    origin: str
    symbol: str
    short: bool
    quantity: Decimal
    multiplier: Decimal
    opened_at: dt.datetime
    purchased: dt.date
    acquired: dt.date
    basis: Decimal
    wash_adjustment: Decimal = ZERO
    washed: bool = False
    name: str = ""

    def named(self, wanted: str) -> bool:
        """Whether ``wanted`` names this lot: its id, its opening execution, its
        name, or the name of the lot it was split from."""
        return wanted in (self.lot_id, self.origin, self.name) or (
            bool(self.name) and self.name.startswith(f"{wanted}:w")
        )


@dataclass(frozen=True)
class Realization:
    """A closed lot, or the closed part of one: a Form 8949 row.

    ``gain`` is ``proceeds - basis + adjustment``; ``adjustment`` is the loss
    disallowed by a wash sale (code W), never negative. ``acquired`` is the
    date the holding period counts from; for a short sale, the date the shares
    delivered to close it were bought: the day it was covered (``opened_at``
    says when it was opened).
    """

    lot_id: str
    origin: str
    symbol: str
    short: bool
    quantity: Decimal
    multiplier: Decimal
    opened_at: dt.datetime
    closed_at: dt.datetime
    close_execution_id: str
    acquired: dt.date
    sold: dt.date
    proceeds: Decimal
    basis: Decimal
    term: Term
    adjustment: Decimal = ZERO
    name: str = ""

    @property
    def gain(self) -> Decimal:
        return self.proceeds - self.basis + self.adjustment


@dataclass(frozen=True)
class LotResult:
    """The lots still open, the closed pieces, and what could not be done as asked.

    :param notes: one sentence per specific lot a sale named that was not open
        then (the sale relieved its lots by the method instead).
    """

    open: tuple[Lot, ...]
    closed: tuple[Realization, ...]
    notes: tuple[str, ...] = ()


def lot_name(symbol: str, purchased: dt.date, quantity: Decimal, price: Decimal) -> str:
    """A lot's name, for a person to read and type: ``AAPL/2025-03-10/100@187.50``.

    Symbol (spaces dropped, so an OCC option symbol is one word), trade date,
    the quantity its opening fill opened and that fill's price (at least two
    decimal places). Lots alike in all four are told apart by ``#2``, ``#3``
    in the order they were opened.
    """
    shown = price.normalize()
    if shown.as_tuple().exponent > -2:  # type: ignore[operator]
        shown = shown.quantize(Decimal("0.01"))
    return (
        f"{symbol.replace(' ', '')}/{purchased.isoformat()}/"
        f"{format(quantity.normalize(), 'f')}@{format(shown, 'f')}"
    )


def trade_date(ts: dt.datetime) -> dt.date:
    """The date of ``ts`` on the exchange's calendar."""
    return ts.astimezone(NEW_YORK).date()


def anniversary(acquired: dt.date) -> dt.date:
    """The last date on which a lot acquired on ``acquired`` is held one year, not more.

    The holding period starts the day after acquisition (IRS Pub. 550), so the
    first year ends the day before that start date's date a year on: bought
    2025-03-10, counted from 03-11, a year ends on 2026-03-10. A start on
    29 February with no 29 February a year on starts the second year on 1 March.
    Hence bought 2023-02-28 (counted from 03-01) the year ends on 2024-02-29,
    and bought 2024-02-29 or 2024-02-28 it ends on 2025-02-28.
    """
    start = acquired + dt.timedelta(days=1)
    try:
        next_start = start.replace(year=start.year + 1)
    except ValueError:
        next_start = dt.date(start.year + 1, 3, 1)
    return next_start - dt.timedelta(days=1)


def holding_term(acquired: dt.date, sold: dt.date) -> Term:
    """Long-term when held more than a year: sold after the :func:`anniversary` of ``acquired``."""
    return Term.LONG if sold > anniversary(acquired) else Term.SHORT


def portion(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``total * part / whole``: exact when it can be, else rounded to the cent."""
    if part == whole:
        return total
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.clear_flags()
        share = total * part / whole
        inexact = ctx.flags[Inexact]
    return cents(share) if inexact else share


def compute_lots(
    fills: Iterable[FillLike],
    method: Method = Method.FIFO,
    specific: Mapping[str, Sequence[Named]] | None = None,
    *,
    wash_sale_options: bool = False,
) -> LotResult:
    """Match ``fills`` (in time order) into lots.

    :param method: which lots a closing fill relieves first.
    :param specific: execution id of a closing fill → the lots it relieves, in
        that order: each a lot's id or :func:`lot_name`, or its opening
        execution or the name it was opened with, which cover every piece of
        it; or such a name with the most to take of that lot. Any quantity
        left is relieved by ``method``; a named lot that is not open then is
        passed over, with a note in the result.
    :param wash_sale_options: a call bought on a stock is a replacement for
        shares of it sold at a loss (``[tax] wash_sale_options``).
    :raises LotError: fills out of time order, a repeated execution id, a
        side that is neither buy nor sell, an
        option's expiry, exercise or assignment with no lot of it open, or one
        of the two fills of an exercise or assignment without the other.
    """
    book = _Book(method, specific or {}, wash_sale_options)
    for fill in fills:
        book.apply(fill)
    book.deliveries.check_done()
    return LotResult(
        open=tuple(lot for lots in book.open.values() for lot in lots),
        closed=tuple(book.closed),
        notes=tuple(book.notes),
    )


@dataclass
class _Pending:
    """A loss sale still waiting, until ``until``, for replacement shares.

    ``units`` counts shares: a lot's quantity times its multiplier.
    """

    index: int
    units: Decimal
    loss: Decimal
    held: dt.timedelta
    until: dt.date


class _Book:
    def __init__(
        self, method: Method, specific: Mapping[str, Sequence[Named]], options: bool = False
    ) -> None:
        self.method = method
        self.options = options
        self.specific = specific
        self.open: dict[str, list[Lot]] = {}
        self.closed: list[Realization] = []
        self.pending: dict[str, list[_Pending]] = {}
        self.seen: set[str] = set()
        self.pieces: dict[str, int] = {}
        self.last: dt.datetime | None = None
        self.deliveries = Deliveries()
        self.notes: list[str] = []
        #: How many lots have been opened under each name (``#2`` for the second).
        self.names: dict[str, int] = {}

    def apply(self, fill: FillLike) -> None:
        side = str(fill.side)
        if side not in ("buy", "sell"):
            raise LotError(f"fill {fill.execution_id}: side {side!r} is neither buy nor sell")
        if fill.execution_id in self.seen:
            raise LotError(f"fill {fill.execution_id} appears twice")
        if self.last is not None and fill.ts < self.last:
            raise LotError(f"fill {fill.execution_id} is earlier than the fill before it")
        if fill.quantity <= 0:
            raise LotError(f"fill {fill.execution_id}: quantity must be positive")
        self.seen.add(fill.execution_id)
        self.last = fill.ts
        buy = side == "buy"
        kind = str(fill.kind)
        closable = sum((lot.quantity for lot in self._lots(fill.symbol) if lot.short == buy), ZERO)
        # A settlement's fill is the option's (an OCC symbol) or the shares delivered.
        underlying = underlying_of(fill.symbol) if kind in SETTLING else None
        if underlying is not None and fill.quantity > closable:
            raise LotError(
                f"fill {fill.execution_id}: {fill.quantity} {fill.symbol} {kind}, "
                f"but {closable} {'short' if buy else 'long'} are open"
            )
        if underlying is not None and kind in DELIVERING:
            self._deliver(fill, buy, kind, underlying)
            return
        charge = fill.commission
        if kind in DELIVERING:
            charge += self.deliveries.charge(
                fill.execution_id, fill.symbol, kind, fill.ts, side, fill.quantity
            )
        closing = min(fill.quantity, closable)
        share = portion(charge, closing, fill.quantity)
        if closing:
            self._close(fill, buy, closing, share)
        if fill.quantity > closing:
            self._open(fill, buy, fill.quantity - closing, charge - share)

    def _lots(self, symbol: str) -> list[Lot]:
        return self.open.setdefault(symbol, [])

    def _open(self, fill: FillLike, buy: bool, quantity: Decimal, charge: Decimal) -> None:
        gross = fill.price * quantity * fill.multiplier
        day = trade_date(fill.ts)
        name = lot_name(fill.symbol, day, quantity, fill.price)
        self.names[name] = count = self.names.get(name, 0) + 1
        lot = Lot(
            name=name if count == 1 else f"{name}#{count}",
            lot_id=fill.execution_id,
            origin=fill.execution_id,
            symbol=fill.symbol,
            short=not buy,
            quantity=quantity,
            multiplier=fill.multiplier,
            opened_at=fill.ts,
            purchased=day,
            acquired=day,
            basis=gross + charge if buy else gross - charge,
        )
        lots = self._lots(fill.symbol)
        lots.append(lot)
        if not buy:
            return
        keys = [fill.symbol]
        underlying = underlying_of(fill.symbol)
        if self.options and underlying is not None and _is_call(fill.symbol):
            keys.append(underlying)
        for key in keys:
            waiting = [p for p in self.pending.get(key, []) if p.until >= day and p.units]
            self.pending[key] = waiting
            for pending in waiting:
                if pending.units and not lots[-1].washed:
                    self._wash(lots, len(lots) - 1, pending)

    def _deliver(self, fill: FillLike, buy: bool, kind: str, underlying: str) -> None:
        """Close an exercised or assigned option: its premium waits for the shares' fill."""
        gross = fill.price * fill.quantity * fill.multiplier
        charge = fill.commission + (gross if buy else -gross)
        for lot, _, basis in self._relieve(fill, buy, fill.quantity):
            charge += -basis if lot.short else basis
        self.deliveries.expect(
            Delivery(
                execution_id=fill.execution_id,
                option=fill.symbol,
                underlying=underlying,
                kind=kind,
                ts=fill.ts,
                side=delivered_side(fill.symbol, "buy" if buy else "sell"),
                shares=fill.quantity * fill.multiplier,
                charge=charge,
            )
        )

    def _relieve(
        self, fill: FillLike, buy: bool, quantity: Decimal
    ) -> list[tuple[Lot, Decimal, Decimal]]:
        """Take ``quantity`` off the lots ``fill`` closes: (lot, quantity, basis) per piece.

        The lots the fill names come first, each up to the quantity named with
        it (if any); the rest goes by the method.
        """
        lots = self._lots(fill.symbol)
        pieces: list[tuple[Lot, Decimal, Decimal]] = []
        left = quantity
        for wanted, cap in self._named(fill, buy):
            room = cap
            for lot in [lot for lot in lots if lot.short == buy and lot.named(wanted)]:
                if not left or room == 0:
                    break
                take = min(lot.quantity, left, left if room is None else room)
                left -= take
                if room is not None:
                    room -= take
                pieces.append(self._take(lots, lot, take))
        for lot in self._relief_order([lot for lot in lots if lot.short == buy]):
            if not left:
                break
            take = min(lot.quantity, left)
            left -= take
            pieces.append(self._take(lots, lot, take))
        return pieces

    @staticmethod
    def _take(lots: list[Lot], lot: Lot, take: Decimal) -> tuple[Lot, Decimal, Decimal]:
        """Remove ``take`` of ``lot`` from ``lots``: (lot, quantity, basis) of the piece."""
        basis = portion(lot.basis, take, lot.quantity)
        at = lots.index(lot)
        if take == lot.quantity:
            del lots[at]
        else:
            adjustment = portion(lot.wash_adjustment, take, lot.quantity)
            lots[at] = replace(
                lot,
                quantity=lot.quantity - take,
                basis=lot.basis - basis,
                wash_adjustment=lot.wash_adjustment - adjustment,
            )
        return lot, take, basis

    def _named(self, fill: FillLike, buy: bool) -> list[tuple[str, Decimal | None]]:
        """The lots ``fill`` names that are open, each with the most to take of it
        (``None``: as much as needed); a note for each that is not."""
        found = []
        lots = [lot for lot in self._lots(fill.symbol) if lot.short == buy]
        for entry in self.specific.get(fill.execution_id, ()):
            wanted, cap = (entry, None) if isinstance(entry, str) else entry
            if any(lot.named(wanted) for lot in lots):
                found.append((wanted, cap))
                continue
            self.notes.append(
                f"sale {fill.execution_id} named {fill.symbol} lot {wanted!r}, which was "
                f"not an open {'short' if buy else 'long'} lot then; "
                f"its lots were relieved by {self.method} instead"
            )
        return found

    def _close(self, fill: FillLike, buy: bool, quantity: Decimal, charge: Decimal) -> None:
        gross = fill.price * quantity * fill.multiplier
        value = gross + charge if buy else gross - charge
        sold = trade_date(fill.ts)
        first = len(self.closed)
        left = quantity
        for lot, take, basis in self._relieve(fill, buy, quantity):
            cash = portion(value, take, left)
            value -= cash
            left -= take
            self.closed.append(
                Realization(
                    lot_id=lot.lot_id,
                    origin=lot.origin,
                    symbol=lot.symbol,
                    short=lot.short,
                    quantity=take,
                    multiplier=lot.multiplier,
                    opened_at=lot.opened_at,
                    closed_at=fill.ts,
                    close_execution_id=fill.execution_id,
                    # A short sale is closed with the shares this fill buys.
                    acquired=sold if lot.short else lot.acquired,
                    sold=sold,
                    proceeds=basis if lot.short else cash,
                    basis=cash if lot.short else basis,
                    term=Term.SHORT if lot.short else holding_term(lot.acquired, sold),
                    name=lot.name,
                )
            )
        if not buy:
            for index in range(first, len(self.closed)):
                if self.closed[index].gain < 0:
                    self._wash_sale(index)

    def _relief_order(self, candidates: list[Lot]) -> list[Lot]:
        if self.method is Method.LIFO:
            return candidates[::-1]
        if self.method is Method.HIFO and candidates and not candidates[0].short:
            # Cross-multiplied so the comparison of per-unit costs is exact.
            def dearer(a: Lot, b: Lot) -> int:
                x, y = a.basis * b.quantity, b.basis * a.quantity
                return -1 if x > y else (1 if x < y else 0)

            return sorted(candidates, key=functools.cmp_to_key(dearer))
        return candidates

    def _wash_sale(self, index: int) -> None:
        sale = self.closed[index]
        pending = _Pending(
            index=index,
            units=sale.quantity * sale.multiplier,
            loss=-sale.gain,
            held=sale.sold - sale.acquired,
            until=sale.sold + WASH_WINDOW,
        )
        for lot in self._replacements(sale):
            if not pending.units:
                break
            lots = self._lots(lot.symbol)
            self._wash(lots, lots.index(lot), pending)
        if pending.units:
            self.pending.setdefault(sale.symbol, []).append(pending)

    def _replacements(self, sale: Realization) -> list[Lot]:
        """The open long lots bought up to 30 days before ``sale`` that may replace it,
        earliest first."""
        found = [lot for lot in self._lots(sale.symbol) if lot.origin != sale.origin]
        if self.options and underlying_of(sale.symbol) is None:
            for symbol, lots in self.open.items():
                if underlying_of(symbol) == sale.symbol and _is_call(symbol):
                    found += lots
        start = sale.sold - WASH_WINDOW
        recent = [lot for lot in found if not (lot.short or lot.washed) and lot.purchased >= start]
        return sorted(recent, key=lambda lot: lot.opened_at)

    def _wash(self, lots: list[Lot], at: int, pending: _Pending) -> int:
        """Move a loss onto (part of) ``lots[at]``; return the index of the unwashed rest."""
        lot = lots[at]
        units = min(lot.quantity * lot.multiplier, pending.units)
        take = lot.quantity if units == lot.quantity * lot.multiplier else units / lot.multiplier
        disallowed = portion(pending.loss, units, pending.units)
        pending.loss -= disallowed
        pending.units -= units
        sale = self.closed[pending.index]
        self.closed[pending.index] = replace(sale, adjustment=sale.adjustment + disallowed)
        basis = portion(lot.basis, take, lot.quantity)
        adjustment = portion(lot.wash_adjustment, take, lot.quantity)
        piece = replace(
            lot,
            quantity=take,
            basis=basis + disallowed,
            wash_adjustment=adjustment + disallowed,
            acquired=lot.purchased - pending.held,
            washed=True,
        )
        if take == lot.quantity:
            lots[at] = piece
            return at
        self.pieces[lot.origin] = number = self.pieces.get(lot.origin, 0) + 1
        lots[at] = replace(
            lot,
            quantity=lot.quantity - take,
            basis=lot.basis - basis,
            wash_adjustment=lot.wash_adjustment - adjustment,
        )
        lots.insert(
            at, replace(piece, lot_id=f"{lot.origin}.{number}", name=f"{lot.name}:w{number}")
        )
        return at + 1


def _is_call(symbol: str) -> bool:
    """An OCC option symbol of a call."""
    return symbol[12] == "C"
