"""The base class of decision sources (strategies)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from tradepipe.component import Component
from tradepipe.decisions import Decision, RejectedDecision, decision_id
from tradepipe.instruments import Combo, Option
from tradepipe.market import Bar
from tradepipe.options.chain import OptionQuote
from tradepipe.orders import Fill

#: Constructors of trusted decisions, by the fields given (a strategy gives the same
#: ones each time; the names are checked when a constructor is made).
_decision_makers: dict[tuple[str, ...], Callable[..., Decision]] = {}
#: More sets of fields than any strategies would use: past it, the cache starts over.
_MAKERS_KEPT = 256


class StrategyContext(Protocol):
    """What a strategy may look at while deciding."""

    def now(self) -> datetime: ...

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held of ``symbol`` (0 when flat)."""
        ...

    def exposure(self, symbol: str) -> Decimal:
        """The position once the working orders for ``symbol`` have filled."""
        ...

    def cash(self) -> Decimal: ...

    def equity(self) -> Decimal: ...

    def option_chain(self, underlying: str, expiry: date | None = None) -> Sequence[OptionQuote]:
        """The broker's option chain of ``underlying``: of ``expiry``, or of every listed expiry.

        Read from the configured broker once per underlying and expiry while
        the run's clock stands still (one bar), so its expiries and prices are
        those of now. A :data:`~tradepipe.options.chain.ChainSource`, for
        choosing an options strategy's legs.

        :raises BrokerError: the broker cannot give the chain.
        """
        ...

    def last_price(self, symbol: str) -> Decimal | None:
        """The latest price of ``symbol`` (a bar's close, a quote), ``None`` before any."""
        ...

    def market_open(self) -> bool:
        """Whether the run's market is open now: always in a replay; in a live run, as
        its calendar and the broker's maintenance window say."""
        ...

    def price_is_fresh(self, symbol: str) -> bool:
        """Whether ``symbol`` has a price an order may be sized and priced at now (in a
        live run: younger than ``[run] max_quote_age_seconds``)."""
        ...

    def mark_from_chain(self, instrument: Option | Combo) -> Decimal | None:
        """Price an option or combo chosen from :meth:`option_chain` at the chain's prices.

        The price per share (a combo: Σ leg price × ratio) becomes the latest
        price of the instrument's ticker, so sizing and the risk filters value
        a decision on it; ``None`` when the chain read now has no price for it.
        """
        ...


#: One decision, several (a list, or a generator: the executor handles each
#: item before asking for the next), or ``None``. A :class:`RejectedDecision`
#: among them is recorded as rejected.
DecideResult = Decision | RejectedDecision | Iterable[Decision | RejectedDecision] | None


class Strategy(Component):
    """A decision source: looks at market events and proposes decisions.

    Subclasses set ``name``, optionally a nested ``Settings`` model, and
    implement :meth:`decide`. Exceptions raised here are caught by the executor,
    reported with the strategy's name, and cost only this event's decisions.
    """

    def decide(self, bar: Bar, ctx: StrategyContext) -> DecideResult:
        """Return the decisions ``bar`` leads to: one, several, or ``None``.

        Something the strategy read but cannot use (an external signal that
        fails validation) is returned as a :class:`RejectedDecision`, so it is
        recorded as rejected instead of lost.
        """
        raise NotImplementedError

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        """Called after one of this strategy's orders traded. Optional.

        Also called, in the run that sent the order, when the option position
        it opened expires, is exercised or assigned: ``fill.kind`` says which,
        and the underlying's fill of an exercise or assignment comes too.
        """

    def on_tick(self, now: datetime, ctx: StrategyContext) -> DecideResult:
        """Called by a live run about once a second, between bars too. Optional.

        For sources that do not wait for bars: a folder or a pipe of decisions,
        a model asked on a schedule. Return decisions as :meth:`decide` does;
        they are handled at once (while the market is closed, as ``[run]
        when_closed`` says). Replays never call it.
        """
        return None

    def warm_up(self, bars: Sequence[Bar], ctx: StrategyContext) -> None:
        """History before a live run's first bar, oldest first. Optional.

        Feed it to indicators so they are ready at the first live bar. Nothing
        returned here is traded: these bars are the past. Replays never call it.
        """

    def decision(self, ctx: StrategyContext, **fields: Any) -> Decision:
        """Build a :class:`Decision` stamped with this strategy's name and the time."""
        fields.setdefault("source", self.name)
        fields.setdefault("created_at", ctx.now())
        return Decision(**fields)

    def trusted_decision(self, ctx: StrategyContext, **fields: Any) -> Decision:
        """Like :meth:`decision`, without validation, for a hot loop.

        Only for values the strategy computed itself from validated inputs
        (settings, bars): they must already have their final types (``Action``
        members, ``Decimal`` quantities and prices, an upper-case symbol). A
        wrong value here reaches sizing and the risk filters unchecked.
        """
        fields.setdefault("source", self.name)
        fields.setdefault("created_at", ctx.now())
        names = tuple(fields)
        make = _decision_makers.get(names)
        if make is None:
            if len(_decision_makers) >= _MAKERS_KEPT:
                _decision_makers.clear()
            make = _decision_makers[names] = Decision.maker(*names)
        made = make(*fields.values())
        if not made.id:
            made.__dict__["id"] = decision_id(made)
        return made
