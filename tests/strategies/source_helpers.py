"""Helpers for the decision-source tests: a feed that can act between bars, a context."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

from tradepipe import Bar, Feed, hookimpl
from tradepipe.errors import BrokerCapabilityError
from tradepipe.options.chain import OptionQuote
from tradepipe.testing import T0


class SteppedFeed(Feed):
    """Bars from a list; ``SteppedFeed.before[i]`` runs just before bar ``i`` is yielded."""

    name = "stepped"
    source: ClassVar[list[Bar]] = []
    before: ClassVar[dict[int, Callable[[], None]]] = {}

    def bars(self) -> Iterator[Bar]:
        for i, bar in enumerate(type(self).source):
            step = type(self).before.get(i)
            if step is not None:
                step()
            yield bar

    def symbols(self) -> list[str]:
        return sorted({b.symbol for b in type(self).source})

    def total(self) -> int:
        return len(type(self).source)


class SteppedPlugin:
    __name__ = "stepped_feed"

    @hookimpl
    def tradepipe_register_feeds(self, register: Any) -> None:
        register(SteppedFeed)


class Ctx:
    """A strategy context at a fixed time, flat, with 100,000 in cash, and no option chains."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.at = now

    def now(self) -> dt.datetime:
        return self.at

    def position(self, symbol: str) -> Decimal:
        return Decimal(0)

    def exposure(self, symbol: str) -> Decimal:
        return Decimal(0)

    def cash(self) -> Decimal:
        return Decimal(100_000)

    def equity(self) -> Decimal:
        return Decimal(100_000)

    def option_chain(self, underlying: str, expiry: dt.date | None = None) -> list[OptionQuote]:
        raise BrokerCapabilityError("no option chains here", broker="test")

    def mark_from_chain(self, instrument: Any) -> Decimal | None:
        return None
