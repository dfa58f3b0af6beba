"""The common part of sources whose decisions are made elsewhere (files, stdin).

Such a source reads JSON decision documents (see
:mod:`tradepipe.decision_schema`) and holds each valid decision until a bar of
its own symbol, so sizing and the risk filters judge it at that symbol's latest
price and the paper simulator has market data for it. Anything read that is not
a valid decision is handed over at once as a
:class:`~tradepipe.RejectedDecision`: the executor records it, nothing is sent.

In a live run the source is also asked between bars (:meth:`ExternalSource.on_tick`,
about once a second): what it read is handed over at once, at the latest bar
of its symbol, so a decision dropped in a folder or written to standard input
is judged within a second or so, not at its symbol's next bar.

A document with an options strategy is checked when read but converted only
when a bar of its underlying releases it: its legs are chosen from the
broker's chain as it is then (:meth:`StrategyContext.option_chain`), with
``dte`` counted from that bar's date and the bar's close as the stock's price,
and the chain's price of the chosen option or combo becomes its price for
sizing and the risk filters. A chain that cannot be read or a strategy it
cannot give becomes a rejected decision, like any other.

Handing over is a generator: the executor handles each item before asking for
the next, so :meth:`ExternalSource.handled` runs only after a decision was
recorded (and, if allowed, sent). A source that remembers what it processed
(``decision_files``) marks it there, never earlier, so a crash cannot lose a
decision; one read twice is refused by its client order id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from json import JSONDecodeError
from typing import Any, Literal

from tradepipe import Bar, ComponentSettings, Decision, Strategy, StrategyContext
from tradepipe.decision_schema import DecisionDocument, loads, read_decision, read_document
from tradepipe.decisions import RejectedDecision
from tradepipe.instruments import Combo, Option, underlying
from tradepipe.money import to_decimal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OptionsDocument:
    """A valid document with an options strategy, waiting for a bar of its underlying."""

    raw: dict[str, Any]
    document: DecisionDocument

    @property
    def symbol(self) -> str:
        return self.document.symbol

    @property
    def created_at(self) -> dt.datetime | None:
        return self.document.created_at


#: What a source reads: a decision, a rejection, or an options document to convert later.
Item = Decision | RejectedDecision | OptionsDocument
#: What a source hands to the executor.
Handed = Decision | RejectedDecision


class ExternalSettings(ComponentSettings):
    #: When a decision is handed over: at the ``next_bar`` of its symbol, or
    #: (``created_at``) at the first bar of its symbol at or after its
    #: ``created_at`` — for replays of timed decisions without look-ahead.
    release: Literal["next_bar", "created_at"] = "next_bar"


class ExternalSource(Strategy):
    """Base of sources that read decision documents; subclasses implement :meth:`collect`."""

    settings: ExternalSettings

    def __init__(self, settings: ExternalSettings | None = None) -> None:
        super().__init__(settings)
        self._waiting: dict[str, list[tuple[Decision | OptionsDocument, Hashable]]] = {}
        self._rejected: list[tuple[RejectedDecision, Hashable]] = []
        self._by_created_at = self.settings.release == "created_at"
        #: The latest bar of each symbol: a live run's tick releases decisions at it.
        self._last_bar: dict[str, Bar] = {}

    # -- for subclasses ----------------------------------------------------------

    def collect(self, ctx: StrategyContext) -> Iterable[tuple[Hashable, Item]]:
        """New items read since the last call, each with a token for :meth:`handled`."""
        raise NotImplementedError

    def handled(self, token: Hashable) -> None:
        """The item read with ``token`` was recorded (and sent, if it was allowed)."""

    def commit(self) -> None:
        """Everything handed over in this bar was handled (or the run stopped)."""

    def parse(self, text: str) -> Item:
        """One JSON text as a decision, or the reason it is not one."""
        try:
            raw = loads(text)
        except (JSONDecodeError, RecursionError) as exc:
            return RejectedDecision(text, f"not valid JSON: {exc}")
        return self.read(raw)

    def read(self, raw: Any) -> Item:
        """One parsed JSON value as a decision; an options document is converted when released."""
        if not isinstance(raw, dict) or raw.get("options") is None:
            return read_decision(raw, self.name)
        document = read_document(raw)
        if isinstance(document, RejectedDecision):
            return document
        return OptionsDocument(raw, document)

    # -- the strategy ------------------------------------------------------------

    def decide(self, bar: Bar, ctx: StrategyContext) -> Iterator[Handed] | None:
        self._last_bar[bar.symbol] = bar
        self._take_in(ctx)
        ready = self._take_rejected()
        ready.extend(self._release(bar.symbol, bar, ctx.now()))
        return self._hand_over(ready, ctx) if ready else None

    def on_tick(self, now: dt.datetime, ctx: StrategyContext) -> Iterator[Handed] | None:
        """In a live run, between bars: what was read is handed over at once, at the
        latest bar of its symbol (a symbol never seen, or priced only by history too
        old to trade at, waits for its next bar)."""
        self._take_in(ctx)
        ready = self._take_rejected()
        for symbol in list(self._waiting):
            bar = self._last_bar.get(symbol)
            # Priced only by history older than a live run may use: it waits for the feed.
            if bar is not None and ctx.price_is_fresh(symbol):
                ready.extend(self._release(symbol, bar, now))
        return self._hand_over(ready, ctx) if ready else None

    def warm_up(self, bars: Sequence[Bar], ctx: StrategyContext) -> None:
        for bar in bars:
            self._last_bar[bar.symbol] = bar

    def _take_in(self, ctx: StrategyContext) -> None:
        for token, item in self.collect(ctx):
            if isinstance(item, RejectedDecision):
                self._rejected.append((item, token))
                continue
            read = item.document if isinstance(item, OptionsDocument) else item
            log.info(
                "%s: read decision %s (%s %s)", self.name, read.id, read.action.value, read.symbol
            )
            self._waiting.setdefault(_market(item), []).append((item, token))

    def _take_rejected(self) -> list[tuple[Item, Hashable, Bar | None]]:
        ready: list[tuple[Item, Hashable, Bar | None]] = [
            (item, token, None) for item, token in self._rejected
        ]
        self._rejected.clear()
        return ready

    def _release(
        self, symbol: str, bar: Bar, now: dt.datetime
    ) -> list[tuple[Item, Hashable, Bar | None]]:
        """What waits for ``symbol`` and may go now, at ``bar``."""
        waiting = self._waiting.get(symbol)
        if not waiting:
            return []
        ready: list[tuple[Item, Hashable, Bar | None]] = []
        later: list[tuple[Decision | OptionsDocument, Hashable]] = []
        for item, token in waiting:
            made = item.created_at
            if self._by_created_at and made is not None and made > now:
                later.append((item, token))
            else:
                ready.append((item, token, bar))
        self._waiting[symbol] = later
        return ready

    def _hand_over(
        self, ready: list[tuple[Item, Hashable, Bar | None]], ctx: StrategyContext
    ) -> Iterator[Handed]:
        try:
            for item, token, bar in ready:
                if isinstance(item, OptionsDocument):
                    assert bar is not None
                    # Converted now, at the bar of its underlying: the chain as it is now.
                    yield read_options(item.raw, self.name, bar, ctx)
                else:
                    yield item
                self.handled(token)
        finally:
            # Also when the run stops mid-way: what was handled is marked.
            self.commit()

    @property
    def waiting(self) -> int:
        """Decisions read but not handed over yet (their symbol has had no bar since)."""
        return sum(len(w) for w in self._waiting.values())


def read_options(
    raw: Any, source: str, bar: Bar, ctx: StrategyContext, *, keep_raw: str | None = None
) -> Decision | RejectedDecision:
    """Convert a document with an options strategy at ``bar``, a bar of its underlying.

    The legs are chosen from the broker's chain read through ``ctx``; a
    ``dte`` counts from the bar's date (unless the document has a
    ``created_at``), and the bar's close is the stock's price. The chain's
    price of the chosen option or combo becomes its latest price in ``ctx``.
    """
    item = read_decision(
        raw,
        source,
        keep_raw=keep_raw,
        chain=ctx.option_chain,
        today=bar.ts.date(),
        underlying_price=to_decimal(bar.close),
    )
    if isinstance(item, Decision) and isinstance(item.instrument, Option | Combo):
        ctx.mark_from_chain(item.instrument)
    return item


def _market(decision: Decision | OptionsDocument) -> str:
    """The symbol whose bars release ``decision``: an option's or combo's underlying."""
    if isinstance(decision, OptionsDocument):
        return decision.symbol
    instrument = decision.instrument
    return decision.symbol if instrument is None else underlying(instrument)
