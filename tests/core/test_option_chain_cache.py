"""Option chains as strategies see them: read once per moment, priced from what was read."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from tradepipe.clock import ManualClock
from tradepipe.context import RunContext
from tradepipe.errors import BrokerCapabilityError, BrokerUnavailableError
from tradepipe.instruments import Combo, Leg, Option, Stock
from tradepipe.options.chain import ChainCache, OptionQuote
from tradepipe.portfolio import Book
from tradepipe.testing import T0

D = Decimal
EXPIRY = dt.date(2026, 4, 17)


def option(strike: int, right: str = "C", expiry: dt.date = EXPIRY) -> Option:
    return Option(underlying="SPY", expiry=expiry, strike=D(strike), right=right)


class Broker:
    """Counts chain reads; each read's prices go up by one, so a re-read shows."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, dt.date | None]] = []
        self.fail = False

    def option_chain(self, underlying: str, expiry: dt.date | None = None) -> list[OptionQuote]:
        self.reads.append((underlying, expiry))
        if self.fail:
            raise BrokerUnavailableError("the gateway did not answer")
        bump = D(len(self.reads))
        return [
            OptionQuote(option=option(600), price=D("5.00") + bump, delta=0.5),
            OptionQuote(option=option(610), price=D("2.00") + bump, delta=0.3),
            OptionQuote(option=option(620), price=None, delta=0.2),
        ]


def test_a_chain_is_read_once_per_underlying_and_expiry() -> None:
    broker = Broker()
    cache = ChainCache(broker.option_chain)
    first = cache("SPY", None)
    assert cache("SPY", None) is first
    cache("SPY", EXPIRY)
    assert broker.reads == [("SPY", None), ("SPY", EXPIRY)]
    cache.clear()
    cache("SPY", None)
    assert len(broker.reads) == 3


def test_a_failed_read_is_not_kept() -> None:
    broker = Broker()
    cache = ChainCache(broker.option_chain)
    broker.fail = True
    with pytest.raises(BrokerUnavailableError):
        cache("SPY", None)
    broker.fail = False
    assert len(cache("SPY", None)) == 3
    assert len(broker.reads) == 2


def test_prices_come_from_the_chains_read() -> None:
    cache = ChainCache(Broker().option_chain)
    vertical = Combo(
        legs=(Leg(instrument=option(600), ratio=1), Leg(instrument=option(610), ratio=-1))
    )
    assert cache.price_of(option(600)) is None  # nothing read yet
    cache("SPY", None)
    assert cache.price_of(option(600)) == D("6.00")
    assert cache.price_of(vertical) == D("3.00")
    assert cache.price_of(option(620)) is None  # listed without a price
    assert cache.price_of(option(630)) is None  # not listed
    unpriced = Combo(
        legs=(Leg(instrument=option(600), ratio=1), Leg(instrument=option(620), ratio=-1))
    )
    assert cache.price_of(unpriced) is None
    with_stock = Combo(
        legs=(Leg(instrument=Stock(symbol="SPY"), ratio=100), Leg(instrument=option(610), ratio=-1))
    )
    assert cache.price_of(with_stock) is None
    assert cache.price_of(Stock(symbol="SPY")) is None
    assert cache.price_of(None) is None


def context(broker: Broker | None) -> tuple[RunContext, ManualClock]:
    clock = ManualClock(T0)
    chains = None if broker is None else broker.option_chain
    return RunContext(clock, Book(D(100_000)), {}, chains=chains), clock


def test_the_run_reads_a_chain_again_once_its_clock_has_moved() -> None:
    broker = Broker()
    ctx, clock = context(broker)
    first = ctx.option_chain("spy")
    assert ctx.option_chain("SPY") is first  # the same bar: read once
    assert broker.reads == [("SPY", None)]
    clock.set(T0 + dt.timedelta(days=1))
    again = ctx.option_chain("SPY")
    assert len(broker.reads) == 2
    assert again[0].price == D("7.00")  # the new read's prices


def test_an_instrument_is_marked_at_this_moments_chain_price() -> None:
    broker = Broker()
    ctx, clock = context(broker)
    vertical = Combo(
        legs=(Leg(instrument=option(600), ratio=1), Leg(instrument=option(610), ratio=-1))
    )
    ctx.option_chain("SPY")
    assert ctx.mark_from_chain(vertical) == D("3.00")
    # Keyed as a decision's symbol is: upper case.
    assert ctx.last_price(vertical.ticker.upper()) == D("3.00")
    # Held, a combo is its legs: each leg is marked at the chain's price too.
    legs = (ctx.last_price(option(600).ticker), ctx.last_price(option(610).ticker))
    assert legs[0] is not None and legs[1] is not None and legs[0] - legs[1] == D("3.00")
    assert ctx.mark_from_chain(option(620)) is None  # no price in the chain: nothing set
    assert ctx.last_price(option(620).ticker) is None
    clock.set(T0 + dt.timedelta(days=1))
    # An earlier bar's chain is not this bar's price: nothing new is set.
    assert ctx.mark_from_chain(option(600)) is None
    assert ctx.last_price(option(600).ticker) == legs[0]
    assert len(broker.reads) == 1


def test_a_run_without_chains_says_so() -> None:
    ctx, _clock = context(None)
    with pytest.raises(BrokerCapabilityError, match="no broker to read option chains"):
        ctx.option_chain("SPY")
