"""Exact money and quantity helpers.

Prices arrive from market data as binary floats; everything that reaches the
ledger is a :class:`~decimal.Decimal`. Conversions go through the float's
shortest ``repr`` so ``101.1`` becomes ``Decimal("101.1")``, not the 50-digit
binary expansion.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
_FRACTION = Decimal("0.0001")


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
    text = format(value, "f")
    return "0" if text in ("-0", "-0.0") else text
