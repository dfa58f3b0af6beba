"""Option expiry, exercise and assignment: linking their fills to the order that opened.

A broker books these on its own (IBKR, the paper simulator): the fills name no
order of ours. They still belong to the decision and order that opened the
position they close, and are recorded under that order's client order id and
decision id, with their :class:`~tradepipe.orders.FillKind`.

Which order opened a position:

* **in this run**, the latest fill of one of the run's orders that opened or
  added to the position, on the side opposite to the closing fill (a long
  opened by a buy, a short by a sell): :class:`Openings` keeps those;
* **in an earlier run of the same session** (``[run] session``), the latest such
  fill in the ledger: :meth:`tradepipe.Sink.opening_order`.

The underlying's fill of an exercise or assignment has no option symbol to go
by: it is linked with the option's fill of the same settlement, which the
broker reports first.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradepipe.orders import Fill, FillKind, Side

#: The kinds of fill that end an option position without an order.
SETTLEMENTS = frozenset({FillKind.EXPIRED, FillKind.EXERCISED, FillKind.ASSIGNED})
_OCC_LENGTH = 21


@dataclass(frozen=True)
class Opening:
    """The order (and decision) whose fill opened a position, and the run that sent it."""

    run_id: str
    client_order_id: str
    decision_id: str


def underlying_of(symbol: str) -> str | None:
    """The underlying of an OCC option symbol (``AAPL  261218C00200000``), else ``None``."""
    if len(symbol) != _OCC_LENGTH or symbol[12] not in "CP" or not symbol[13:].isdigit():
        return None
    return symbol[:6].strip() or None


def opening_side(fill: Fill) -> Side:
    """The side of the fill that opened the position ``fill`` closes."""
    return Side.BUY if fill.side is Side.SELL else Side.SELL


class Openings:
    """The orders of one run that opened positions, and the settlements under way."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        #: (symbol, opening side) -> the latest order that opened or added to it.
        self._opened: dict[tuple[str, Side], Opening] = {}
        #: underlying -> the option whose settlement delivers it, and its opening.
        self._delivering: dict[str, tuple[str, Opening | None]] = {}

    def note(self, fill: Fill, before: Decimal) -> None:
        """A fill of one of the run's orders; ``before``: the position's quantity before it."""
        if before == 0 or (before > 0) == (fill.side is Side.BUY):
            self._opened[(fill.symbol, fill.side)] = Opening(
                self._run_id, fill.client_order_id, fill.decision_id
            )

    def of(self, fill: Fill) -> Opening | None:
        """The opening in this run of the option position that settlement ``fill`` closes."""
        return self._opened.get((fill.symbol, opening_side(fill)))

    def delivering(self, underlying: str, option: str, opening: Opening | None) -> None:
        """The settlement of ``option`` (opened by ``opening``) delivers ``underlying`` next."""
        self._delivering[underlying] = (option, opening)

    def delivered(self, fill: Fill) -> tuple[str, Opening | None]:
        """The option whose settlement delivered ``fill`` (the underlying), and its opening.

        ``("", None)`` when no settlement of an option on it was seen.
        """
        return self._delivering.pop(fill.symbol, ("", None))


def describe(fill: Fill, opening: Opening | None, option: str = "") -> str:
    """One line saying what settlement ``fill`` is and which order it belongs to.

    ``option``: for the underlying's fill, the option whose settlement delivered it.
    """
    kind = fill.kind
    if opening is None:
        owner = "no order of this session opened the position"
    else:
        owner = f"order {opening.client_order_id}" + (
            f" (decision {opening.decision_id})" if opening.decision_id else ""
        )
    if option:
        verb = "bought" if fill.side is Side.BUY else "sold"
        event = "exercise" if kind is FillKind.EXERCISED else "assignment"
        what = f"{fill.quantity} {fill.symbol} {verb} at {fill.price} on the {event} of {option}"
        return f"{what}: {owner}" if opening is None else f"{what}: booked under {owner}"
    if kind is FillKind.EXPIRED:
        what = f"{fill.symbol} expired worthless"
    else:
        what = f"{fill.symbol} {kind.value}"
    if opening is None:
        return f"{what}: {owner}"
    held = "long" if fill.side is Side.SELL else "short"
    return f"{what}: closes the {held} position opened by {owner}"
