"""The common part of sources whose decisions are made elsewhere (files, stdin).

Such a source reads JSON decision documents (see
:mod:`tradepipe.decision_schema`) and holds each valid decision until a bar of
its own symbol, so sizing and the risk filters judge it at that symbol's latest
price and the paper simulator has market data for it. Anything read that is not
a valid decision is handed over at once as a
:class:`~tradepipe.RejectedDecision`: the executor records it, nothing is sent.

Handing over is a generator: the executor handles each item before asking for
the next, so :meth:`ExternalSource.handled` runs only after a decision was
recorded (and, if allowed, sent). A source that remembers what it processed
(``decision_files``) marks it there, never earlier, so a crash cannot lose a
decision; one read twice is refused by its client order id.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Iterator
from json import JSONDecodeError
from typing import Literal

from tradepipe import Bar, ComponentSettings, Decision, Strategy, StrategyContext
from tradepipe.decision_schema import loads, read_decision
from tradepipe.decisions import RejectedDecision
from tradepipe.instruments import Combo, Option

log = logging.getLogger(__name__)

Item = Decision | RejectedDecision


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
        self._waiting: dict[str, list[tuple[Decision, Hashable]]] = {}
        self._rejected: list[tuple[RejectedDecision, Hashable]] = []
        self._by_created_at = self.settings.release == "created_at"

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
        return read_decision(raw, self.name)

    # -- the strategy ------------------------------------------------------------

    def decide(self, bar: Bar, ctx: StrategyContext) -> Iterator[Item] | None:
        for token, item in self.collect(ctx):
            if isinstance(item, RejectedDecision):
                self._rejected.append((item, token))
                continue
            log.info(
                "%s: read decision %s (%s %s)", self.name, item.id, item.action.value, item.symbol
            )
            self._waiting.setdefault(_market(item), []).append((item, token))
        ready: list[tuple[Item, Hashable]] = list(self._rejected)
        self._rejected.clear()
        waiting = self._waiting.get(bar.symbol)
        if waiting:
            later: list[tuple[Decision, Hashable]] = []
            if self._by_created_at:
                now = ctx.now()
                for entry in waiting:
                    made = entry[0].created_at
                    if made is None or made <= now:
                        ready.append(entry)
                    else:
                        later.append(entry)
            else:
                ready.extend(waiting)
            self._waiting[bar.symbol] = later
        if not ready:
            return None
        return self._hand_over(ready)

    def _hand_over(self, ready: list[tuple[Item, Hashable]]) -> Iterator[Item]:
        try:
            for item, token in ready:
                yield item
                self.handled(token)
        finally:
            # Also when the run stops mid-way: what was handled is marked.
            self.commit()

    @property
    def waiting(self) -> int:
        """Decisions read but not handed over yet (their symbol has had no bar since)."""
        return sum(len(w) for w in self._waiting.values())


def _market(decision: Decision) -> str:
    """The symbol whose bars release ``decision``: an option's or combo's underlying."""
    instrument = decision.instrument
    if isinstance(instrument, Option):
        return instrument.underlying
    if isinstance(instrument, Combo):
        return instrument.symbol.split("+")[0]
    return decision.symbol
