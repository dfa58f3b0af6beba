"""What a live run checks before it sizes a decision: the market, and the price.

Replays never need it: their bars come only in a session, at their own time.
A live run's decisions can arrive at any hour (a file dropped at night, a
model asked at the weekend), and a price can age (a feed that stalled). The
:class:`Gate` runs after a decision is recorded and before it is sized; every
refusal is a verdict in the ledger with its reason, so ``tradepipe explain``
shows why nothing was sent.

* **No new orders while stopping**: after a stop was asked for, every decision
  is denied (``stopping``).
* **The market is closed** (``[run] when_closed``): ``deny`` it (the default);
  ``queue`` it for the next session, judged as if it had just arrived once the
  market is open and has priced its symbol again (it expires at its
  ``expires_at``, at the close of that session if it was never priced, or
  after ``[run] queue_max_age_seconds`` when that is set); or send it now
  marked ``outside_rth``, for the broker's extended hours. In the broker's
  maintenance window nothing is sent: ``outside_rth`` denies there.
* **A stale price is never used** (``[run] max_quote_age_seconds``): a
  decision whose symbol (an option's underlying) has no price yet, or only one
  older than the limit, is denied (``stale_price``) before anything sizes or
  prices it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradepipe.decisions import Decision
from tradepipe.executor import Executor
from tradepipe.instruments import underlying
from tradepipe.orders import client_order_id
from tradepipe.risk import Outcome, rule_verdict
from tradepipe.schedule import MarketSchedule, MarketState
from tradepipe.settings import RunSettings

log = logging.getLogger("tradepipe.events")


@dataclass
class Queued:
    """A decision that waits for the market to open."""

    strategy: str
    decision: Decision
    queued_at: datetime
    #: The close of the session it waits for: if it was never priced by then, it expired.
    deadline: datetime


class Gate:
    """The live run's checks before sizing (see the module docstring)."""

    def __init__(
        self,
        executor: Executor,
        schedule: MarketSchedule,
        settings: RunSettings,
        price_at: dict[str, datetime],
        *,
        stopping: Callable[[], str],
        max_quote_age: timedelta = timedelta(minutes=1),
    ) -> None:
        self.executor = executor
        self.schedule = schedule
        self.when_closed = settings.when_closed
        seconds = settings.queue_max_age_seconds
        self.queue_max_age = timedelta(seconds=seconds) if seconds else None
        self.price_at = price_at
        self.max_age = max_quote_age
        self.queued: list[Queued] = []
        self._stopping = stopping
        self._namespace = executor.p.run.namespace

    # -- the check ---------------------------------------------------------------

    def __call__(self, strategy: str, decision: Decision, now: datetime) -> Decision | None:
        """The decision to size and judge now, or ``None`` (denied or queued, and recorded)."""
        reason = self._stopping()
        if reason:
            self._verdict(
                decision, "stopping", Outcome.DENY, f"the run is stopping ({reason}): no new orders"
            )
            return None
        state = self.schedule.state(now)
        if not state.open:
            return self._closed(strategy, decision, state, now)
        return decision if self._fresh(decision, now) else None

    def _closed(
        self, strategy: str, decision: Decision, state: MarketState, now: datetime
    ) -> Decision | None:
        figures = _market(state)
        policy = self.when_closed
        if policy == "outside_rth" and state.reason == "maintenance":
            policy = "deny"  # the broker is down: nothing can be sent, in any session
        if policy == "outside_rth":
            if not self._fresh(decision, now):
                return None
            self._verdict(
                decision,
                "market_closed",
                Outcome.PASS,
                f"market closed ({state.reason}): sent with outside_rth "
                '([run] when_closed = "outside_rth")',
                figures,
            )
            return decision.model_copy(update={"outside_rth": True})
        if policy == "queue":
            expires = decision.expires_at
            if expires is not None and state.next_open is not None and expires <= state.next_open:
                self._verdict(
                    decision,
                    "market_closed",
                    Outcome.DENY,
                    f"market closed ({state.reason}); the decision expires at "
                    f"{expires.isoformat()}, before the next open",
                    figures,
                )
                return None
            deadline = self.schedule.close_after(state.next_open or now)
            self.queued.append(Queued(strategy, decision, now, deadline))
            self._verdict(
                decision,
                "market_closed",
                Outcome.PASS,
                f"market closed ({state.reason}): queued until it opens "
                '([run] when_closed = "queue")',
                figures,
            )
            return None
        self._verdict(
            decision,
            "market_closed",
            Outcome.DENY,
            f'market closed ({state.reason}); [run] when_closed = "deny"',
            figures,
        )
        return None

    def price_is_fresh(self, symbol: str, now: datetime) -> bool:
        """Whether ``symbol``'s last price is young enough to size and price an order at."""
        seen = self.price_at.get(symbol)
        return seen is not None and (now - seen) <= self.max_age

    def _fresh(self, decision: Decision, now: datetime) -> bool:
        """True when the decision's market has a price young enough; else denied here."""
        symbol = market_symbol(decision)
        seen = self.price_at.get(symbol)
        limit = self.max_age.total_seconds()
        if seen is None:
            self._verdict(
                decision,
                "stale_price",
                Outcome.DENY,
                f"no price for {symbol} yet: nothing is sized or priced without one",
                {"max_age_seconds": limit},
            )
            return False
        age = (now - seen).total_seconds()
        if age > limit:
            self._verdict(
                decision,
                "stale_price",
                Outcome.DENY,
                f"stale price: the last {symbol} price is from {seen.isoformat()}, {age:.0f} s "
                f"old (at most {limit:g} s, [run] max_quote_age_seconds)",
                {"price_at": seen, "age_seconds": round(age, 3), "max_age_seconds": limit},
            )
            return False
        return True

    # -- the queue ---------------------------------------------------------------

    def release(self, now: datetime) -> list[tuple[str, Decision]]:
        """Queued decisions to judge now: the market is open and has priced them again.

        Those that expired meanwhile are denied (``expired``) and dropped.
        """
        if not self.queued or not self.schedule.state(now).open:
            return []
        ready: list[tuple[str, Decision]] = []
        waiting: list[Queued] = []
        for item in self.queued:
            decision = item.decision
            made = decision.created_at or item.queued_at
            if decision.expires_at is not None and now >= decision.expires_at:
                ready.append((item.strategy, decision))  # the executor denies it as expired
                continue
            if now >= item.deadline:
                self._verdict(
                    decision,
                    "expired",
                    Outcome.DENY,
                    f"queued since {item.queued_at.isoformat()} for the next session, which "
                    f"closed at {item.deadline.isoformat()} without a price for "
                    f"{market_symbol(decision)}",
                )
                continue
            limit = self.queue_max_age
            if limit is not None and decision.expires_at is None and now - made > limit:
                self._verdict(
                    decision,
                    "expired",
                    Outcome.DENY,
                    f"queued since {item.queued_at.isoformat()}: older than "
                    f"{limit.total_seconds():g} s ([run] queue_max_age_seconds)",
                )
                continue
            seen = self.price_at.get(market_symbol(decision))
            if seen is None or seen <= item.queued_at or now - seen > self.max_age:
                waiting.append(item)  # no fresh price since the market opened yet
                continue
            ready.append((item.strategy, decision))
        self.queued = waiting
        return ready

    def drop_queue(self, reason: str) -> None:
        """The run stops: every queued decision is denied with ``reason``."""
        for item in self.queued:
            self._verdict(item.decision, "stopping", Outcome.DENY, reason)
        self.queued = []

    # -- records -----------------------------------------------------------------

    def _verdict(
        self,
        decision: Decision,
        name: str,
        outcome: Outcome,
        reason: str,
        figures: dict[str, object] | None = None,
    ) -> None:
        ex = self.executor
        cid = client_order_id(self._namespace, decision.id)
        now = ex.p.clock.now()
        ex.record.verdict(
            rule_verdict(decision.id, cid, name, outcome, reason, now, figures=dict(figures or {}))
        )
        if outcome is Outcome.DENY:
            log.info("decision %s denied before sizing: %s", decision.id, reason)


def _market(state: MarketState) -> dict[str, object]:
    figures: dict[str, object] = {"calendar": state.calendar, "reason": state.reason}
    if state.next_open is not None:
        figures["next_open"] = state.next_open
    return figures


def market_symbol(decision: Decision) -> str:
    """The symbol whose price values ``decision``: an option's or combo's underlying."""
    instrument = decision.instrument
    return decision.symbol if instrument is None else underlying(instrument)
