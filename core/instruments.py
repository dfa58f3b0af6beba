"""Instruments: what an order trades.

A stock is identified by its symbol; an option by underlying, expiry, strike and
right; a combo by its legs. ``conid`` is the broker's contract id where one is
known (IBKR), ``None`` for the paper simulator.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Symbol = Annotated[
    str,
    # The pattern is checked before ``to_upper`` applies, so it accepts lower case.
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-/ ]{0,20}$"
    ),
]


class _Instrument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    conid: int | None = None
    currency: str = "USD"
    exchange: str = "SMART"


class Stock(_Instrument):
    """A share of a listed company or fund."""

    kind: Literal["stock"] = "stock"
    symbol: Symbol
    multiplier: Decimal = Decimal(1)


class Option(_Instrument):
    """A listed equity option."""

    kind: Literal["option"] = "option"
    underlying: Symbol
    expiry: dt.date
    strike: Decimal = Field(gt=0)
    right: Literal["C", "P"]
    multiplier: Decimal = Decimal(100)

    @property
    def symbol(self) -> str:
        """A readable name, e.g. ``AAPL 2026-12-18 200 C``."""
        strike = f"{self.strike.normalize():f}"
        return f"{self.underlying} {self.expiry.isoformat()} {strike} {self.right}"

    @property
    def ticker(self) -> str:
        """The OCC option symbol, e.g. ``AAPL  261218C00200000``.

        Root padded to six characters, expiry as YYMMDD, the right, and the
        strike in thousandths over eight digits: 21 characters, one per contract,
        which is how positions and orders in options are keyed.
        """
        thousandths = int(self.strike * 1000)
        if self.strike * 1000 != thousandths or not 0 < thousandths < 10**8:
            raise ValueError(f"strike {self.strike} cannot be written as an OCC symbol")
        return f"{self.underlying[:6]:<6}{self.expiry:%y%m%d}{self.right}{thousandths:08d}"


class Leg(BaseModel):
    """One leg of a combo: an option (or stock) and a signed ratio (+ buy, - sell)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instrument: Stock | Option = Field(discriminator="kind")
    ratio: int

    @field_validator("ratio")
    @classmethod
    def _nonzero(cls, ratio: int) -> int:
        # pydantic has no ``ne`` constraint; ``Field(ne=0)`` was silently ignored.
        if ratio == 0:
            raise ValueError("ratio must not be 0")
        return ratio


class Combo(_Instrument):
    """Several legs traded as one order."""

    kind: Literal["combo"] = "combo"
    legs: tuple[Leg, ...] = Field(min_length=2)

    @property
    def multiplier(self) -> Decimal:
        """Money per point of the combo's price: the largest leg multiplier (100 with options)."""
        return max(leg.instrument.multiplier for leg in self.legs)

    @property
    def ticker(self) -> str:
        """A short key for the combo: its first underlying and a hash of its legs."""
        key = ";".join(
            f"{leg.ratio}:{leg.instrument.kind}:{_leg_key(leg.instrument)}" for leg in self.legs
        )
        digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
        return f"{self.symbol.split('+')[0][:10]} X{digest}"

    @property
    def symbol(self) -> str:
        """The underlyings the legs trade, joined (combos rarely span more than one)."""
        names = []
        for leg in self.legs:
            inst = leg.instrument
            name = inst.underlying if isinstance(inst, Option) else inst.symbol
            if name not in names:
                names.append(name)
        return "+".join(names)


def _leg_key(instrument: Stock | Option) -> str:
    return instrument.ticker if isinstance(instrument, Option) else instrument.symbol


Instrument = Annotated[Stock | Option | Combo, Field(discriminator="kind")]


def underlying(instrument: Stock | Option | Combo) -> str:
    """The symbol whose market prices ``instrument``: a stock's own, an option's
    underlying, a combo's first underlying."""
    if isinstance(instrument, Option):
        return instrument.underlying
    if isinstance(instrument, Combo):
        return instrument.symbol.split("+")[0]
    return instrument.symbol


def ticker_of(instrument: Stock | Option | Combo) -> str:
    """The symbol orders and positions in ``instrument`` are keyed by."""
    if isinstance(instrument, Stock):
        return instrument.symbol
    return instrument.ticker
