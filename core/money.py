"""Exact money and quantity helpers, and where exactness ends.

Prices arrive from market data as binary floats; everything that reaches the
ledger is a :class:`~decimal.Decimal`. Conversions go through the float's
shortest ``repr`` so ``101.1`` becomes ``Decimal("101.1")``, not the 50-digit
binary expansion.

Where values are rounded (half to even), and only there:

* **Booked** (:class:`~tradepipe.portfolio.Book`, the paper simulator's
  account and the executor's view of the broker's): each fill moves cash by
  its amount, commission included, in cents (:func:`cents`); the P&L a fill
  realizes is booked in cents; an average cost is held to
  :data:`COST_PLACES` decimal places.
* **Shown** (summaries, tables, snapshot files, the API, the dashboard, the
  status file): money — cash, equity, buying power, market value, P&L,
  commissions — in cents (:func:`money_text`); average costs and marks to at
  most :data:`COST_PLACES` places (:func:`price_text`). A position's market
  value and unrealized P&L are rounded per position, and totals are the sums
  of those, so the figures shown add up.
* **Never**: prices and quantities as a decision, an order or a broker gave
  them, and fills' prices.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
_FRACTION = Decimal("0.0001")
#: Decimal places an average cost is held and shown to.
COST_PLACES = 8
_COST = Decimal(1).scaleb(-COST_PLACES)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Return ``value`` as an exact decimal (floats via their shortest repr)."""
    if type(value) is Decimal:
        return value
    if type(value) is float:
        return Decimal(repr(value))
    return Decimal(value)


def floor_quantity(quantity: Decimal, whole: bool) -> Decimal:
    """Round a quantity down: to whole units, or to 0.0001 when fractions are allowed."""
    step = ONE if whole else _FRACTION
    return max(quantity.quantize(step, rounding=ROUND_DOWN), ZERO)


def cents(value: Decimal) -> Decimal:
    """Round a money amount to the cent, half to even (banker's rounding)."""
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def cost(value: Decimal) -> Decimal:
    """An average cost (or any computed price) to :data:`COST_PLACES` places, half to
    even, without trailing zeros (``100.5``, not ``100.50000000``)."""
    return plain(value.quantize(_COST, rounding=ROUND_HALF_EVEN))


def money_text(value: Decimal | None) -> str | None:
    """A money amount as shown: in cents, always two places (``"100000.00"``)."""
    return None if value is None else fmt(cents(value))


def price_text(value: Decimal | None) -> str | None:
    """A price as shown: to at most :data:`COST_PLACES` places, at least two
    (``"239.62"``, ``"0.0525"``, ``"100.00"``, ``"101.33333333"``)."""
    if value is None:
        return None
    rounded = cost(value).normalize()
    if rounded.as_tuple().exponent > -2:  # type: ignore[operator]
        rounded = rounded.quantize(CENT)
    return fmt(rounded)


def plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and without an exponent: 600.0 is 600, 602.50 is 602.5.

    ``Decimal.normalize`` alone turns 600 into ``6E+2``, which is how it would
    then print and serialise.
    """
    return value.quantize(ONE) if value == value.to_integral_value() else value.normalize()


def fmt(value: Decimal | None) -> str | None:
    """Serialise a decimal without exponent notation, for JSON and the ledger."""
    if value is None:
        return None
    if value.is_zero():
        value = value.copy_abs()  # never "-0.00"
    return format(value, "f")
