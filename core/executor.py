"""The executor: moves events along a built pipeline.

For each bar: the broker sees it first (a simulator fills working orders at
this bar), then every strategy decides on it. Each decision is recorded,
sized, judged by the risk filters in order, and sent to the broker if none
denied it. Every record goes to every sink and to the event hooks.

Business rules live in the components; this module only sequences them. It
is also the hot path of a replay, which is why it keeps bound methods in
locals and skips event hooks nobody implements.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tradepipe.adapter import OrderUpdate
from tradepipe.decisions import Action, Decision
from tradepipe.errors import (
    BrokerError,
    BrokerRejectedError,
    InvalidOrderTransition,
    SizingError,
    StrategyError,
)
from tradepipe.money import ZERO, to_decimal
from tradepipe.orders import Fill, Order, OrderIntent, OrderStatus, client_order_id
from tradepipe.portfolio import Book
from tradepipe.risk import Outcome, RiskVerdict
from tradepipe.strategy import Strategy

if TYPE_CHECKING:
    from datetime import datetime

    from tradepipe.pipeline import Pipeline

log = logging.getLogger("tradepipe.events")
_S = OrderStatus


@dataclass
class RunResult:
    bars: int
    status: str
    decisions: int
    orders: int
    fills: int
    strategy_errors: int


class RunContext:
    """What strategies and risk filters see: time, holdings, prices, money."""

    def __init__(self, pipeline: Pipeline, book: Book, working: dict[str, Order]) -> None:
        self._clock = pipeline.clock
        self._book = book
        self._working = working
        self._marks: dict[str, float] = {}
        self._paper = True

    def now(self) -> datetime:
        return self._clock.now()

    def position(self, symbol: str) -> Decimal:
        return self._book.quantity(symbol)

    def last_price(self, symbol: str) -> Decimal | None:
        price = self._marks.get(symbol)
        return None if price is None else to_decimal(price)

    def cash(self) -> Decimal:
        return self._book.cash

    def equity(self) -> Decimal:
        return self._book.equity(self._marks)

    def reserved_cash(self) -> Decimal:
        reserved = ZERO
        for order in self._working.values():
            intent = order.intent
            if intent.side == "buy":
                price = intent.limit_price or intent.stop_price or intent.reference_price or ZERO
                reserved += order.remaining * price
        return reserved

    def is_paper(self) -> bool:
        return self._paper


class Executor:
    """Runs one pipeline over its feed."""

    def __init__(
        self,
        pipeline: Pipeline,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 1000,
    ) -> None:
        self.p = pipeline
        self.progress = progress
        self.progress_every = progress_every
        self.working: dict[str, Order] = {}
        self.book = Book(ZERO)
        self.ctx = RunContext(pipeline, self.book, self.working)
        self._seen_executions: set[str] = set()
        self._client_ids: set[str] = set()
        self._by_source: dict[str, Strategy] = {s.name: s for s in pipeline.strategies}
        self._fill_listeners = {
            s.name: s for s in pipeline.strategies if type(s).on_fill is not Strategy.on_fill
        }
        self.bars = 0
        self.decisions = 0
        self.orders = 0
        self.fills = 0
        self.strategy_errors = 0
        host = pipeline.host
        self._obs_decision = host.observers("tradepipe_decision_made")
        self._obs_rejected = host.observers("tradepipe_decision_rejected")
        self._obs_verdict = host.observers("tradepipe_risk_verdict")
        self._obs_order = host.observers("tradepipe_order_event")
        self._obs_fill = host.observers("tradepipe_order_filled")
        self._log = log.isEnabledFor(logging.INFO)
        sinks = pipeline.sinks
        self._sink_decision = [s.record_decision for s in sinks]
        self._sink_verdict = [s.record_verdict for s in sinks]
        self._sink_order = [s.record_order for s in sinks]
        self._sink_event = [s.record_order_event for s in sinks]
        self._sink_fill = [s.record_fill for s in sinks]

    # -- the run ---------------------------------------------------------------

    def start(self) -> None:
        """Seed the executor's view of the account from the broker."""
        broker = self.p.broker
        account = broker.account()
        self.book.cash = account.cash
        for position in broker.positions():
            self.book.seed(position)
        self.ctx._paper = broker.status().is_paper

    def run(self) -> RunResult:
        """Process every bar of the feed; return the counts."""
        p = self.p
        clock = p.clock
        set_time = getattr(clock, "set", None)
        marks = self.ctx._marks
        on_bar = p.broker.on_bar
        poll = p.broker.poll if p.broker.needs_polling else None
        apply = self._apply
        ctx = self.ctx
        handle = self._handle_result
        strategies = [(s, s.decide) for s in p.strategies]
        progress = self.progress
        every = self.progress_every
        count = 0
        next_report = every
        # A replay allocates millions of short-lived records, freed by reference
        # counting; the cyclic collector only slows it down by re-scanning the
        # loaded bars and everything the run keeps. Freeze what exists, collect
        # the young generation rarely and the old one not at all until the run
        # ends, when the usual thresholds come back.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 1_000_000)
        try:
            for bar in p.feed.bars():
                if set_time is not None:
                    set_time(bar.ts)
                marks[bar.symbol] = bar.close
                events = on_bar(bar)
                if events:
                    apply(events)
                if poll is not None:
                    events = poll()
                    if events:
                        apply(events)
                for strategy, decide in strategies:
                    try:
                        result = decide(bar, ctx)
                    except ValidationError as exc:
                        self._reject(strategy.name, None, exc)
                        continue
                    except Exception as exc:
                        self._strategy_failed(strategy, exc)
                        continue
                    if result is not None:
                        handle(strategy, result)
                count += 1
                if count == next_report:
                    next_report += every
                    if progress is not None:
                        progress(count)
        finally:
            self.bars = count
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        events = p.broker.poll()
        if events:
            apply(events)
        if progress is not None:
            progress(count)
        return RunResult(
            count, "completed", self.decisions, self.orders, self.fills, self.strategy_errors
        )

    # -- decisions -------------------------------------------------------------

    def _handle_result(self, strategy: Strategy, result: Any) -> None:
        if isinstance(result, Decision):
            self.handle(strategy.name, result)
            return
        items: Iterable[Any] = [result] if isinstance(result, dict) else result
        for item in items:
            if isinstance(item, Decision):
                self.handle(strategy.name, item)
                continue
            try:
                decision = Decision.model_validate(item)
            except ValidationError as exc:
                self._reject(strategy.name, item, exc)
                continue
            self.handle(strategy.name, decision)

    def handle(self, source: str, decision: Decision) -> Order | None:
        """Record, size, judge and (if allowed) send one decision."""
        now = self.p.clock.now()
        if not decision.id:
            decision = decision.with_origin(source, now)
        self.decisions += 1
        for record in self._sink_decision:
            record(decision)
        if self._obs_decision is not None:
            self._obs_decision(decision=decision)
        if self._log:
            log.info(
                "DecisionMade decision=%s source=%s %s %s confidence=%s",
                decision.id,
                decision.source,
                decision.action,
                decision.symbol,
                decision.confidence,
            )
        if decision.action is Action.HOLD:
            return None
        intent = self._size(decision, now)
        if intent is None:
            return None
        return self._judge_and_send(decision, intent, now)

    def _size(self, decision: Decision, now: datetime) -> OrderIntent | None:
        ctx = self.ctx
        symbol = decision.symbol
        price = decision.limit_price or decision.stop_price or ctx.last_price(symbol)
        cid = client_order_id(self.p.run.namespace, decision.id)
        if cid in self._client_ids:
            self._verdict(
                decision.id,
                cid,
                "duplicate",
                0,
                Outcome.DENY,
                f"decision {decision.id} already produced order {cid} in this run",
                ZERO,
                ZERO,
                {},
                now,
            )
            return None
        try:
            side, quantity = self.p.sizer.size(decision, price, ctx.position(symbol), ctx.equity)
        except SizingError as exc:
            self._verdict(
                decision.id, cid, "sizing", 0, Outcome.DENY, str(exc), ZERO, ZERO, {}, now
            )
            return None
        return OrderIntent.trusted(
            client_order_id=cid,
            decision_id=decision.id,
            source=decision.source,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=decision.order_type,
            limit_price=decision.limit_price,
            stop_price=decision.stop_price,
            tif=decision.tif,
            outside_rth=decision.outside_rth,
            stop_loss=decision.stop_loss,
            take_profit=decision.take_profit,
            reference_price=price,
            created_at=now,
        )

    def _judge_and_send(self, decision: Decision, intent: OrderIntent, now: datetime) -> Order:
        denial: str | None = None
        ctx = self.ctx
        for seq, flt in enumerate(self.p.filters, start=1):
            before = intent.quantity
            try:
                outcome, reason, quantity, figures = flt.check(intent, decision, ctx)
            except Exception as exc:  # a broken filter must not let an order through
                outcome, reason, quantity, figures = (
                    Outcome.DENY,
                    f"filter raised {type(exc).__name__}: {exc}",
                    None,
                    {},
                )
            after = before
            if outcome is Outcome.REDUCE:
                if quantity is None or quantity <= 0:
                    outcome, reason = Outcome.DENY, reason or "reduced to nothing"
                elif quantity < before:
                    after = quantity
                    intent = intent.with_quantity(quantity)
                else:
                    outcome = Outcome.PASS  # a "reduction" that reduces nothing
            if outcome is Outcome.DENY:
                after = ZERO
            self._verdict(
                decision.id,
                intent.client_order_id,
                flt.name,
                seq,
                outcome,
                reason,
                before,
                after,
                figures,
                now,
            )
            if outcome is Outcome.DENY:
                denial = f"{flt.name}: {reason}"
                break
        order = Order.from_intent(intent)
        self._client_ids.add(intent.client_order_id)
        self.orders += 1
        for record in self._sink_order:
            record(order)
        if denial is not None:
            self._order_event(order, order.transition(_S.DENIED, now, denial))
            return order
        self._send(order, now)
        return order

    def _send(self, order: Order, now: datetime) -> None:
        broker = self.p.broker
        self._order_event(order, order.transition(_S.SUBMITTED, now))
        if broker.requires_durable_intents:
            self.flush()
        self.working[order.client_order_id] = order
        try:
            update = broker.place(order.intent)
        except BrokerRejectedError as exc:
            update = OrderUpdate.trusted(
                client_order_id=order.client_order_id, status=_S.REJECTED, ts=now, reason=str(exc)
            )
        except BrokerError as exc:
            # Ambiguous: the order may or may not have reached the broker. It is
            # never resent blindly; its status is settled by asking the broker.
            update = OrderUpdate.trusted(
                client_order_id=order.client_order_id, status=_S.UNKNOWN, ts=now, reason=str(exc)
            )
        self._on_update(update)

    # -- broker events -----------------------------------------------------------

    def _apply(self, events: Sequence[OrderUpdate | Fill]) -> None:
        for event in events:
            if type(event) is Fill:
                self._on_fill(event)
            else:
                self._on_update(event)  # type: ignore[arg-type]

    def _on_update(self, update: OrderUpdate) -> None:
        order = self.working.get(update.client_order_id)
        if order is None:
            log.warning(
                "broker reported %s for order %s, which this run did not send",
                update.status,
                update.client_order_id,
            )
            return
        if order.status is update.status and update.status is not _S.PARTIALLY_FILLED:
            return
        try:
            event = order.transition(
                update.status, update.ts, update.reason, update.broker_order_id
            )
        except InvalidOrderTransition as exc:
            log.error("ignored broker report: %s", exc)
            return
        self._order_event(order, event)

    def _on_fill(self, fill: Fill) -> None:
        if fill.execution_id in self._seen_executions:
            return
        self._seen_executions.add(fill.execution_id)
        self.fills += 1
        self.book.apply(fill)
        for record in self._sink_fill:
            record(fill)
        if self._obs_fill is not None:
            self._obs_fill(fill=fill)
        if self._log:
            log.info(
                "Fill execution=%s order=%s decision=%s %s %s %s @ %s",
                fill.execution_id,
                fill.client_order_id,
                fill.decision_id,
                fill.side,
                fill.quantity,
                fill.symbol,
                fill.price,
            )
        order = self.working.get(fill.client_order_id)
        if order is None:
            log.warning("fill %s for an order this run did not send", fill.execution_id)
            return
        try:
            event = order.apply_fill(fill)
        except InvalidOrderTransition as exc:
            log.error("fill %s not applied to its order: %s", fill.execution_id, exc)
            return
        self._order_event(order, event)
        listener = self._fill_listeners.get(order.intent.source)
        if listener is not None:
            try:
                listener.on_fill(fill, self.ctx)
            except Exception as exc:
                self._strategy_failed(listener, exc)

    # -- records -----------------------------------------------------------------

    def _order_event(self, order: Order, event: Any) -> None:
        for record in self._sink_event:
            record(event)
        if self._obs_order is not None:
            self._obs_order(order=order, event=event)
        if self._log:
            log.info(
                "%s order=%s decision=%s %s %s %s%s",
                event.name,
                event.client_order_id,
                event.decision_id,
                order.intent.side,
                order.intent.quantity,
                order.intent.symbol,
                f" reason={event.reason}" if event.reason else "",
            )
        if event.status.is_terminal:
            self.working.pop(order.client_order_id, None)

    def _verdict(
        self,
        decision_id: str,
        cid: str,
        name: str,
        seq: int,
        outcome: Outcome,
        reason: str,
        before: Decimal,
        after: Decimal,
        figures: dict[str, Any],
        now: datetime,
    ) -> None:
        verdict = RiskVerdict.trusted(
            decision_id=decision_id,
            client_order_id=cid,
            filter=name,
            seq=seq,
            outcome=outcome,
            reason=reason,
            quantity_before=before,
            quantity_after=after,
            figures=figures,
            ts=now,
        )
        for record in self._sink_verdict:
            record(verdict)
        if self._obs_verdict is not None:
            self._obs_verdict(verdict=verdict)
        if self._log and outcome is not Outcome.PASS:
            log.info(
                "RiskVerdict decision=%s order=%s filter=%s %s: %s",
                decision_id,
                cid,
                name,
                outcome,
                reason,
            )

    def _reject(self, source: str, raw: Any, exc: ValidationError) -> None:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        log.warning("decision from %s rejected: %s", source, problems)
        for sink in self.p.sinks:
            sink.record_decision_rejected(raw, source, problems)
        if self._obs_rejected is not None:
            self._obs_rejected(raw=raw, source=source, error=problems)

    def _strategy_failed(self, strategy: Strategy, exc: Exception) -> None:
        self.strategy_errors += 1
        if self.p.settings.run.on_strategy_error == "stop":
            raise StrategyError(
                f"strategy {strategy.name!r} failed: {type(exc).__name__}: {exc}",
                strategy=strategy.name,
            ) from exc
        log.error(
            "strategy %s failed at %s: %s: %s (skipped this event)",
            strategy.name,
            self.p.clock.now().isoformat(),
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )

    def flush(self) -> None:
        for sink in self.p.sinks:
            sink.flush()
