"""The executor: moves events along a built pipeline.

For each bar: the broker sees it first (a simulator fills working orders at
this bar), then every strategy decides on it. Each decision is recorded,
sized, judged by the risk filters in order, and sent to the broker if none
denied it. Every record goes to every sink and to the event hooks.

Business rules live in the components; this module only sequences them, and
fails closed where a component misbehaves: a filter that raises or answers
something it should not denies; a send whose outcome is unknown is never
repeated but settled by asking the broker. It is also the hot path of a
replay, which is why it keeps bound methods in locals and skips event hooks
nobody implements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tradepipe.adapter import OrderReport, OrderUpdate
from tradepipe.context import RunContext
from tradepipe.decisions import Action, Decision, RejectedDecision
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerError,
    BrokerRejectedError,
    InvalidOrderTransition,
    SizingError,
    StrategyError,
    TradepipeError,
)
from tradepipe.instruments import Combo
from tradepipe.lifecycle import (
    SETTLEMENTS,
    Opening,
    Openings,
    describe,
    opening_side,
    underlying_of,
)
from tradepipe.logs import redact_accounts
from tradepipe.market import Bar, Quote
from tradepipe.money import ZERO
from tradepipe.order_rules import OrderRules
from tradepipe.orders import (
    Fill,
    FillKind,
    Order,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    client_order_id,
)
from tradepipe.portfolio import Book
from tradepipe.reconcile import Settlement, settle
from tradepipe.recorder import Recorder
from tradepipe.risk import Outcome, RiskChain, rule_verdict
from tradepipe.strategy import Strategy
from tradepipe.upkeep import close_day, first_cut, next_midnight, tuned_gc

if TYPE_CHECKING:
    from tradepipe.pipeline import Pipeline
    from tradepipe.sink import Unsettled

log = logging.getLogger("tradepipe.events")
_S = OrderStatus
#: Statuses whose outcome the broker has yet to tell.
_UNSETTLED = frozenset({_S.SUBMITTED, _S.UNKNOWN, _S.PENDING_CANCEL})


@dataclass
class RunResult:
    bars: int
    status: str
    decisions: int
    orders: int
    fills: int
    strategy_errors: int


class Executor:
    """Runs one pipeline over its feed."""

    #: How the executor waits on the broker (the end-of-run poll); tests swap in a clock.
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

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
        self.ctx = RunContext(
            pipeline.clock, self.book, self.working, chains=pipeline.broker.option_chain
        )
        self._seen_executions: set[str] = set()
        self._client_ids: set[str] = set()
        #: Orders whose send had no clear outcome, and since when.
        self._unknown: dict[str, datetime] = {}
        self._owner: dict[str, str] = {}  # client order id -> strategy that asked for it
        self._deferred: list[tuple[Strategy, Fill]] = []
        #: Which of this run's orders opened which positions (for expiries, assignments).
        self._openings = Openings(pipeline.run.run_id)
        self.risk = RiskChain(
            pipeline.guards,
            pipeline.filters,
            OrderRules.of(pipeline.settings),
            pipeline.run.namespace,
        )
        self._fill_listeners = {
            s.name: s for s in pipeline.strategies if type(s).on_fill is not Strategy.on_fill
        }
        #: Judge decisions but send nothing (``--dry-run``).
        self.dry_run = False
        #: Why the run is waiting instead of trading ("" when it is not).
        self.waiting_for = ""
        #: How long to wait for a lost broker session (``None``: ``[run]
        #: session_wait_seconds``; a one-off command does not wait).
        self.session_wait: float | None = None
        #: Called while waiting for it; ``False`` ends the wait (a live run stopping).
        self.on_wait: Callable[[], bool] | None = None
        #: A live run's check between recording a decision and sizing it: the
        #: decision to judge, or ``None`` when the gate denied or kept it (and
        #: recorded why). See :mod:`tradepipe.live_gate`.
        self.gate: Callable[[str, Decision, datetime], Decision | None] | None = None
        self.bars = 0
        self.decisions = 0
        self.orders = 0
        self.fills = 0
        self.strategy_errors = 0
        #: How the run ends when it ends normally (a live run stopped on request: ``stopped``).
        self.end_status = "completed"
        self.record = Recorder(pipeline.sinks, pipeline.host)

    # -- the run ---------------------------------------------------------------

    def start(self) -> None:
        """Seed the executor's view of the account from the broker and the ledger.

        Positions and cash are the broker's. Orders working at the broker are
        adopted, so they count in exposure and their fills are applied; a
        broker that cannot list them stops the start (never read as "none").
        One the ledger already holds (any run, any session) is recorded once:
        it is settled like an earlier run's order, and what becomes of it is
        written to the run that holds it. Client order ids earlier runs of
        this session already used are refused, so a restarted run never sends
        a decision twice.
        """
        broker = self.p.broker
        account = broker.account()
        self.book.cash = account.cash
        for position in broker.positions():
            self.book.seed(position)
        self.ctx.set_account(broker.name, account.account_id, broker.status().is_paper)
        namespace = self.p.run.namespace
        reports = broker.open_orders()
        working = {r.client_order_id: r for r in reports if r.client_order_id}
        held: dict[str, Settlement] = {}
        for sink in self.p.sinks:
            self._client_ids.update(sink.sent_client_ids(namespace))
            earlier = sink.unsettled_orders(namespace)
            known = {u.intent.client_order_id for u in earlier}
            earlier += [
                u for u in sink.held_orders(working) if u.intent.client_order_id not in known
            ]
            now = self.p.clock.now()
            for result in settle(broker, earlier, working, now):
                u = result.unsettled
                if u.intent.client_order_id in working:
                    held.setdefault(u.intent.client_order_id, result)
                sink.record_reconciled(u.run_id, result.events, result.fills)
                if result.events or result.fills or result.note:
                    final = result.events[-1].status.value if result.events else u.status.value
                    sink.record_audit(
                        "order_end" if result.events or result.fills else "order_unknown_to_broker",
                        u.intent.client_order_id,
                        u.status.value,
                        final if not result.note else None,
                        "adopted" if not result.note else "noted",
                        result.note
                        or f"settled at start-up in run {u.run_id}: "
                        f"{len(result.fills)} fill(s) recovered",
                        now,
                    )
        self._adopt(reports, held)

    def _adopt(self, reports: Sequence[OrderReport], held: dict[str, Settlement]) -> None:
        now = self.p.clock.now()
        for report in reports:
            if not report.status.is_working:
                continue
            cid = report.client_order_id or f"broker-{report.broker_order_id}"
            if cid in self.working:
                continue
            found = held.get(cid)
            if found is not None and found.order is not None and not found.order.status.is_terminal:
                self._follow(found.unsettled, found.order, found.fills)
                continue
            try:
                intent = OrderIntent(
                    client_order_id=cid,
                    decision_id="",
                    source="broker",
                    symbol=report.symbol,
                    side=report.side,
                    quantity=report.quantity,
                    order_type=report.order_type,
                    limit_price=report.limit_price,
                    stop_price=report.stop_price,
                    created_at=now,
                )
            except ValidationError as exc:
                log.warning("open order %s at the broker not adopted: %s", cid, _problems(exc))
                continue
            order = Order.from_intent(intent)
            self._client_ids.add(cid)
            self.record.order(order)
            reason = "adopted at start-up: working at the broker"
            self._order_event(order, order.transition(_S.SUBMITTED, now, reason))
            self.working[cid] = order
            self._order_event(
                order, order.transition(_S.ACCEPTED, now, reason, report.broker_order_id)
            )
            if report.filled_quantity > 0:
                # What already filled is in the broker's positions; only the rest counts.
                order.__dict__["filled_quantity"] = report.filled_quantity
                self._order_event(order, order.transition(_S.PARTIALLY_FILLED, now, reason))
            log.info(
                "adopted order %s (%s %s %s) working at the broker",
                cid,
                intent.side.value,
                intent.quantity,
                intent.symbol,
            )

    def _follow(self, held: Unsettled, order: Order, fills: Sequence[Fill]) -> None:
        """Follow an order an earlier run holds, without recording it again."""
        cid = order.client_order_id
        self._client_ids.add(cid)
        self._seen_executions.update(held.executions, (f.execution_id for f in fills))
        self.record.belongs_to(cid, held.run_id)
        self.working[cid] = order
        log.info("following order %s of run %s, working at the broker", cid, held.run_id)

    def run(
        self,
        bars: Iterable[Bar] | None = None,
        *,
        tune_gc: bool = True,
        final_poll_seconds: float | None = None,
    ) -> RunResult:
        """Process every bar of the feed (or of ``bars``); return the counts.

        A live run hands its own ``bars``: a generator that waits for the feed
        and does the loop's other duties between bars. It also keeps the
        garbage collector as it is (``tune_gc=False``): tuning it for speed
        suits a replay that ends, not a run that lasts a week.
        """
        p = self.p
        clock = p.clock
        set_time = getattr(clock, "set", None)
        marks = self.ctx.marks
        on_bar = p.broker.on_bar
        poll = p.broker.poll if p.broker.needs_polling else None
        apply = self._apply
        ctx = self.ctx
        handle = self.handle_result
        strategies = [(s, s.decide) for s in p.strategies]
        progress = self.progress
        every = self.progress_every
        count = 0
        next_report = every
        cut = first_cut(p.settings.run.daily_snapshots)
        with tuned_gc(tune_gc):
            try:
                for bar in p.feed.bars() if bars is None else bars:
                    if bar.ts >= cut:
                        # A new New York day: the account as the bar before left it closes the last.
                        if count:
                            close_day(p.broker, p.sinks)
                        cut = next_midnight(bar.ts)
                    if set_time is not None:
                        set_time(bar.ts)
                    marks[bar.symbol] = bar.close
                    events = on_bar(bar)
                    if events:
                        apply(events)
                    if poll is not None:
                        try:
                            events = poll()
                        except BrokerAuthError as exc:
                            self.await_session(exc)
                            events = ()
                        if events:
                            apply(events)
                    if self._unknown:
                        self._settle_unknown()
                    for strategy, decide in strategies:
                        try:
                            result = decide(bar, ctx)
                        except ValidationError as exc:
                            self.record.rejected(strategy.name, None, _problems(exc))
                            continue
                        except Exception as exc:
                            self.strategy_failed(strategy, exc)
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
        self.final_poll(
            p.settings.run.final_poll_seconds if final_poll_seconds is None else final_poll_seconds
        )
        if progress is not None:
            progress(count)
        return RunResult(
            count, self.end_status, self.decisions, self.orders, self.fills, self.strategy_errors
        )

    # -- decisions -------------------------------------------------------------

    def ask(self, strategy: Strategy, question: Callable[[], Any]) -> None:
        """Handle what ``question()`` returns for ``strategy`` (a live run's tick) as a
        bar's decisions are handled, its exceptions included."""
        try:
            result = question()
        except ValidationError as exc:
            self.record.rejected(strategy.name, None, _problems(exc))
            return
        except Exception as exc:
            self.strategy_failed(strategy, exc)
            return
        if result is not None:
            self.handle_result(strategy, result)

    def handle_result(self, strategy: Strategy, result: Any) -> None:
        """Handle what ``strategy`` returned: a decision, several, a rejection or ``None``."""
        if isinstance(result, Decision):
            self.handle(strategy.name, result)
            return
        if isinstance(result, dict | RejectedDecision) or not isinstance(result, Iterable):
            items: Iterable[Any] = [result]
        else:
            # Consumed lazily: each item is handled before the next is asked
            # for, so a generator learns that what it yielded was dealt with.
            items = result
        for item in items:
            if isinstance(item, Decision):
                self.handle(strategy.name, item)
                continue
            if isinstance(item, RejectedDecision):
                self.record.rejected(strategy.name, item.raw, item.error)
                continue
            if not isinstance(item, dict):
                self.record.rejected(
                    strategy.name,
                    repr(item),
                    f"decide returned {type(item).__name__}; expected a Decision, several, or None",
                )
                continue
            try:
                decision = Decision.model_validate(item)
            except ValidationError as exc:
                self.record.rejected(strategy.name, item, _problems(exc))
                continue
            self.handle(strategy.name, decision)

    def handle(self, strategy: str, decision: Decision) -> Order | None:
        """Record, size, judge and (if allowed) send one decision of ``strategy``."""
        now = self.p.clock.now()
        if not decision.source or decision.created_at is None:
            decision = decision.with_origin(strategy, now)
        self.decisions += 1
        self.record.decision(decision)
        if decision.action is Action.HOLD:
            return None
        if self.gate is not None:
            gated = self.gate(strategy, decision, now)
            if gated is None:
                return None
            decision = gated
        return self.judge(strategy, decision, now)

    def judge(self, strategy: str, decision: Decision, now: datetime) -> Order | None:
        """Size, judge and (if allowed) send a recorded decision of ``strategy``."""
        cid = client_order_id(self.p.run.namespace, decision.id)
        risk = self.risk
        record = self.record
        ctx = self.ctx
        refusal = risk.refusal(decision, cid, now, self._client_ids)
        if refusal is not None:
            record.verdict(refusal)
            return None
        if isinstance(decision.instrument, Combo):
            ctx.know(decision.instrument)  # held as its legs: sizing and filters see them
        try:
            intent = self.p.sizer.intent(decision, cid, ctx, now)
        except SizingError as exc:
            record.verdict(rule_verdict(decision.id, cid, "sizing", Outcome.DENY, str(exc), now))
            return None
        refusal = risk.breach(intent, now)
        if refusal is not None:
            record.verdict(refusal)
            return None
        self._owner[cid] = strategy
        intent, denial = risk.judge(intent, decision, ctx, now, record.verdict)
        order = Order.from_intent(intent)
        self._client_ids.add(cid)
        self.orders += 1
        record.order(order)
        if denial is not None:
            self._order_event(order, order.transition(_S.DENIED, now, denial))
            return order
        if self.dry_run:
            return order  # judged and recorded as it would be sent; never sent
        self._send(order, now)
        return order

    def _send(self, order: Order, now: datetime) -> None:
        broker = self.p.broker
        cid = order.client_order_id
        self._order_event(order, order.transition(_S.SUBMITTED, now))
        if broker.requires_durable_intents:
            self.flush()
        self.working[cid] = order
        try:
            update = broker.place(order.intent)
        except (BrokerRejectedError, BrokerCapabilityError) as exc:
            update = _update(cid, _S.REJECTED, now, _reason(exc))
        except BrokerAuthError as exc:
            # Not sent: the session is gone. Record it, then wait for the session
            # to come back (a person logging in again) or stop the run.
            self._on_update(_update(cid, _S.REJECTED, now, f"not sent: {_reason(exc)}"))
            self.await_session(exc)
            return
        except BrokerError as exc:
            # Ambiguous: the order may or may not have reached the broker. It is
            # never resent; its status is settled by asking the broker.
            update = _update(cid, _S.UNKNOWN, now, _reason(exc))
        except BaseException as exc:
            self._on_update(_update(cid, _S.UNKNOWN, now, f"interrupted while sending: {exc!r}"))
            raise
        self._on_update(update)

    def await_session(self, exc: BrokerAuthError) -> None:
        """The broker's session is lost: wait ``[run] session_wait_seconds`` for it, or stop.

        While waiting, :attr:`waiting_for` says why (the status shows it).

        :raises BrokerAuthError: ``exc``, when the session did not come back.
        """
        wait = self.session_wait
        if wait is None:
            wait = self.p.settings.run.session_wait_seconds
        self.waiting_for = _reason(exc)
        on_wait = self.on_wait
        try:
            if wait <= 0 or not self.p.broker.await_session(wait, on_wait):
                if on_wait is not None and not on_wait():
                    return  # the run is stopping: it ends as it was asked to
                raise exc
        finally:
            self.waiting_for = ""
        log.info("broker session back; the run goes on")

    def final_poll(self, seconds: float) -> None:
        """Ask the broker about every order that is not final yet, before the summary.

        One :meth:`~tradepipe.Broker.refresh` at least; while an order's fate
        is still open (sent but unanswered, unknown, cancel pending) and the
        broker is one that reports through polling, asked again once a second
        for up to ``seconds``.
        """
        broker = self.p.broker
        sleep, monotonic = self.sleep, self.monotonic
        deadline = monotonic() + seconds
        while True:
            try:
                events = broker.refresh()
            except BrokerError as exc:
                log.warning("final poll of the broker failed: %s", exc)
                return
            if events:
                self._apply(events)
            if self._unknown:
                self._settle_unknown()
            pending = [o for o in self.working.values() if o.status in _UNSETTLED]
            if not pending or monotonic() >= deadline:
                return
            if not broker.needs_polling and not self._unknown:
                return  # a broker that reports at once has nothing more to say
            sleep(min(1.0 if broker.needs_polling else 0.25, max(0.0, deadline - monotonic())))

    def _settle_unknown(self) -> None:
        """Ask the broker about orders whose sending had no clear outcome."""
        broker = self.p.broker
        now = self.p.clock.now()
        for cid in list(self._unknown):
            try:
                report = broker.order(cid)
            except BrokerAuthError as exc:
                self.await_session(exc)
                continue
            except BrokerError as exc:
                log.warning("order %s still unknown: %s", cid, exc)
                continue
            if report is None:
                # The broker answered and has no such order: once it has had the
                # time it may take to show one, the order never arrived.
                window = broker.order_visibility_seconds
                if (now - self._unknown[cid]).total_seconds() >= window:
                    self._on_update(
                        _update(
                            cid,
                            _S.REJECTED,
                            now,
                            "never reached the broker: the broker has no such order"
                            + (f" {window:g} s after the send" if window else ""),
                        )
                    )
            elif report.status is not _S.UNKNOWN:
                self._on_update(
                    _update(
                        cid,
                        report.status,
                        now,
                        "settled by asking the broker",
                        report.broker_order_id,
                    )
                )

    # -- broker events ---------------------------------------------------------

    def _apply(self, events: Sequence[OrderUpdate | Fill]) -> None:
        for event in events:
            if type(event) is Fill:
                self._on_fill(event)
            else:
                self._on_update(event)  # type: ignore[arg-type]
        if self._deferred:
            # Strategies hear of fills only once every event is recorded, so a
            # strategy that raises cannot leave a fill unrecorded.
            deferred, self._deferred = self._deferred, []
            for strategy, fill in deferred:
                try:
                    strategy.on_fill(fill, self.ctx)
                except Exception as exc:
                    self.strategy_failed(strategy, exc)

    def _on_update(self, update: OrderUpdate) -> None:
        cid = update.client_order_id
        order = self.working.get(cid)
        if order is None:
            log.warning(
                "broker reported %s for order %s, which this run did not send", update.status, cid
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
        if update.status is _S.UNKNOWN:
            self._unknown.setdefault(cid, update.ts)
        else:
            self._unknown.pop(cid, None)
        self._order_event(order, event)
        if update.exits:
            self._record_exits(order, update)

    def _record_exits(self, parent: Order, update: OrderUpdate) -> None:
        """A bracket's exits, accepted with their parent: orders of their own in the ledger.

        Their fills then belong to an order (and through it to the decision),
        and a later run or ``reconcile`` can look them up by the broker's id.
        """
        ids = update.exits or {}
        for intent in parent.intent.exits():
            broker_id = ids.get(intent.client_order_id)
            if broker_id is None or intent.client_order_id in self.working:
                continue
            order = Order.from_intent(intent)
            self._client_ids.add(intent.client_order_id)
            self.record.order(order)
            reason = f"exit of bracket {parent.client_order_id}, placed with it"
            self._order_event(order, order.transition(_S.SUBMITTED, update.ts, reason))
            self.working[intent.client_order_id] = order
            self._order_event(order, order.transition(_S.ACCEPTED, update.ts, reason, broker_id))

    def _on_fill(self, fill: Fill) -> None:
        if fill.execution_id in self._seen_executions:
            return
        self._seen_executions.add(fill.execution_id)
        self.fills += 1
        if fill.kind in SETTLEMENTS:
            self._on_settlement(fill)
            return
        # A combo books its legs, each a position of its own.
        before = {leg.execution_id: self.book.quantity(leg.symbol) for leg in fill.booked}
        # The broker says it traded: the account reflects that first, whatever
        # the order's own state makes of it.
        self.book.apply(fill)
        self.record.fill(fill)
        order = self.working.get(fill.client_order_id)
        if order is None:
            log.warning("fill %s for an order this run did not send", fill.execution_id)
            return
        for leg in fill.booked:
            self._openings.note(leg, before[leg.execution_id])
        self._unknown.pop(fill.client_order_id, None)
        try:
            event = order.apply_fill(fill)
        except InvalidOrderTransition as exc:
            log.error("fill %s not applied to its order: %s", fill.execution_id, exc)
            return
        self._order_event(order, event)
        listener = self._fill_listeners.get(self._owner.get(fill.client_order_id, ""))
        if listener is not None:
            self._deferred.append((listener, fill))

    def _on_settlement(self, fill: Fill) -> None:
        """An option expired, was exercised or assigned: book it under the order that opened.

        The option's fill is linked to the order that opened the position it
        closes (this run's, else an earlier run's of the session, from the
        ledger); the underlying's fill of an exercise or assignment to the same
        order as the option's fill before it. See :mod:`tradepipe.lifecycle`.
        """
        openings = self._openings
        option = ""
        underlying = underlying_of(fill.symbol)
        if underlying is not None:
            opening = openings.of(fill) or self._earlier_opening(fill)
            if fill.kind is not FillKind.EXPIRED:
                openings.delivering(underlying, fill.symbol, opening)
        else:
            option, opening = openings.delivered(fill)
            option = option or f"an option on {fill.symbol}"
        if opening is not None:
            fill = fill.model_copy(
                update={
                    "client_order_id": opening.client_order_id,
                    "decision_id": opening.decision_id,
                }
            )
        self.book.apply(fill)
        self.record.fill(fill)
        log.info("%s", describe(fill, opening, option))
        listener = self._fill_listeners.get(self._owner.get(fill.client_order_id, ""))
        if listener is not None and opening is not None:
            self._deferred.append((listener, fill))

    def _earlier_opening(self, fill: Fill) -> Opening | None:
        """The order of an earlier run of this session that opened what ``fill`` closes."""
        namespace = self.p.run.namespace
        side = opening_side(fill)
        for sink in self.p.sinks:
            try:
                found = sink.opening_order(namespace, fill.symbol, side)
            except TradepipeError as exc:
                log.warning("could not look up the order that opened %s: %s", fill.symbol, exc)
                continue
            if found is not None:
                return found
        return None

    # -- records ---------------------------------------------------------------

    def _order_event(self, order: Order, event: OrderEvent) -> None:
        self.record.order_event(order, event)
        if event.status.is_terminal:
            self.working.pop(order.client_order_id, None)

    def strategy_failed(self, strategy: Strategy, exc: Exception) -> None:
        """``strategy`` raised: stop the run, or log it and go on (``[run] on_strategy_error``)."""
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
        self.record.flush()

    @property
    def unknown(self) -> frozenset[str]:
        """Client order ids whose sending had no clear outcome yet."""
        return frozenset(self._unknown)

    def on_quote(self, quote: Quote) -> None:
        """A live quote: the broker sees it (a simulator may fill at it); its events apply."""
        events = self.p.broker.on_quote(quote)
        if events:
            self._apply(events)

    def refresh(self) -> None:
        """The broker has news of an order (its stream said so): ask it now, not at the pace."""
        try:
            events = self.p.broker.refresh()
        except BrokerError as exc:
            log.warning("could not ask the broker about its orders: %s", exc)
            return
        if events:
            self._apply(events)
        if self._unknown:
            self._settle_unknown()

    def settle(self) -> None:
        """Apply what the broker reports now and ask about orders still unknown.

        A broker that cannot be asked right now (down, pacing) leaves things as
        they are: what was recorded stands, and the question is asked again later.
        """
        try:
            events = self.p.broker.poll()
        except BrokerAuthError as exc:
            self.await_session(exc)
            return
        except BrokerError as exc:
            log.warning("could not ask the broker about its orders: %s", exc)
            return
        if events:
            self._apply(events)
        if self._unknown:
            self._settle_unknown()


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )


def _reason(exc: BaseException) -> str:
    # Broker messages go into the ledger; keep account numbers out of it.
    return redact_accounts(str(exc))


def _update(
    cid: str, status: OrderStatus, ts: datetime, reason: str, broker_order_id: str | None = None
) -> OrderUpdate:
    return OrderUpdate.trusted(
        client_order_id=cid, status=status, ts=ts, reason=reason, broker_order_id=broker_order_id
    )
