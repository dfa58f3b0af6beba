"""The executor: moves events along a built pipeline.

For each bar: the broker sees it first (a simulator fills working orders at
this bar), then every strategy decides on it. Each decision is recorded,
sized (:mod:`tradepipe.sizing`), judged (:class:`~tradepipe.risk.RiskChain`),
and sent to the broker if none denied it; what the broker reports goes to the
run's :class:`~tradepipe.blotter.Blotter`. Every record goes to every sink and
to the event hooks.

Business rules live in the components; this module only sequences them. It
is also the hot path of a replay, which is why it keeps bound methods in
locals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tradepipe.blotter import Blotter
from tradepipe.context import RunContext
from tradepipe.decisions import Action, Decision, RejectedDecision, validation_problems
from tradepipe.errors import (
    BrokerAuthError,
    BrokerError,
    BrokerQuestionError,
    SizingError,
    StrategyError,
)
from tradepipe.instruments import Combo
from tradepipe.logs import redact_accounts
from tradepipe.market import Bar, Quote
from tradepipe.money import ZERO
from tradepipe.order_rules import OrderRules
from tradepipe.orders import Order, OrderIntent, OrderStatus, client_order_id
from tradepipe.portfolio import Book
from tradepipe.reconcile import ask_unknown, start_up
from tradepipe.recorder import Recorder
from tradepipe.risk import Outcome, RiskChain, RiskVerdict, rule_verdict
from tradepipe.strategy import Strategy
from tradepipe.upkeep import Interrupts, close_day, first_cut, next_midnight, tuned_gc

if TYPE_CHECKING:
    from tradepipe.approval import Approved
    from tradepipe.pipeline import Pipeline

log = logging.getLogger("tradepipe.events")
#: A decision's first send: no broker question answered yet.
_FIRST_SEND: tuple[int, tuple[str, ...]] = (0, ())


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
        *,
        log_events: bool = True,
    ) -> None:
        self.p = pipeline
        self.progress = progress
        self.progress_every = progress_every
        self.working: dict[str, Order] = {}
        self.book = Book(ZERO)
        self.ctx = RunContext(
            pipeline.clock, self.book, self.working, chains=pipeline.broker.option_chain
        )
        self.record = Recorder(pipeline.sinks, pipeline.host, log_events=log_events)
        self.blotter = Blotter(
            pipeline, self.ctx, self.book, self.working, self.record, self.strategy_failed
        )
        self.risk = RiskChain(
            pipeline.guards,
            pipeline.filters,
            OrderRules.of(pipeline.settings),
            pipeline.run.namespace,
        )
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
        #: recorded why). See :mod:`tradepipe.live.gate`.
        self.gate: Callable[[str, Decision, datetime], Decision | None] | None = None
        self.bars = 0
        self.decisions = 0
        self.orders = 0
        self.strategy_errors = 0
        #: How the run ends when it ends normally (a live run stopped on request: ``stopped``).
        self.end_status = "completed"
        #: ``[approval]``, when any of its rules is set: which orders wait for a person.
        rules = pipeline.settings.approval
        self.approval_rules = rules if _any_rule(rules) else None
        #: Decisions a person approved: sent without waiting again (``tradepipe approve``).
        self.approved: set[str] = set()
        #: Decisions whose broker question a person answered: the send it is, and the
        #: question ids its order is sent with confirmed.
        self.answers: dict[str, tuple[int, tuple[str, ...]]] = {}
        #: Whether a broker's question left to a person (``ask``) waits in the approval
        #: queue; a replay has no one to ask, and its order stays refused.
        self.asks = True
        #: Why the last decision judged was denied before it became an order.
        self.last_denial = ""
        #: Ctrl-C asked for between bars (a replay's, see :class:`~tradepipe.upkeep.Interrupts`).
        self.interrupts = Interrupts()

    # -- the run ---------------------------------------------------------------

    def start(self) -> None:
        """Seed the executor's view of the account from the broker and the ledger.

        Positions and cash are the broker's, and so are the prices of held symbols
        until their first bar or quote: filters that value what is held (the
        exposure over every symbol) would otherwise find no price and deny. Earlier
        runs' orders are settled and orders working at the broker taken on
        (:func:`~tradepipe.reconcile.start_up`).
        """
        broker = self.p.broker
        account = broker.account()
        self.book.cash = account.cash
        marks = self.ctx.marks
        for position in broker.positions():
            self.book.seed(position)
            if position.mark_price is not None and position.mark_price > 0:
                marks.setdefault(position.symbol, float(position.mark_price))
        self.ctx.set_account(broker.name, account.account_id, broker.status().is_paper)
        start_up(self.blotter, broker, self.p.sinks, self.p.run.namespace, self.p.clock)

    # One frame for the per-bar loop: each call it leaves out shows on the replay benchmark.
    def run(  # noqa: C901
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
        apply = self.blotter.apply
        unknown = self.blotter.unknown
        ctx = self.ctx
        handle = self.handle_result
        strategies = [(s, s.decide) for s in p.strategies]
        progress = self.progress
        every = self.progress_every
        count = 0
        next_report = every
        cut = first_cut(p.settings.run.daily_snapshots)
        interrupts = self.interrupts
        interrupts.running = True
        with tuned_gc(tune_gc):
            try:
                for bar in p.feed.bars() if bars is None else bars:
                    if interrupts.asked:
                        raise KeyboardInterrupt  # between two bars (Interrupts.deferred)
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
                    if unknown:
                        self._settle_unknown()
                    for strategy, decide in strategies:
                        try:
                            result = decide(bar, ctx)
                        except ValidationError as exc:
                            self.record.rejected(strategy.name, None, validation_problems(exc))
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
            self.record.rejected(strategy.name, None, validation_problems(exc))
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
                self.record.rejected(strategy.name, item, validation_problems(exc))
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
        attempt, answered = self.answers.get(decision.id, _FIRST_SEND)
        cid = client_order_id(self.p.run.namespace, decision.id, attempt=attempt)
        risk = self.risk
        record = self.record
        blotter = self.blotter
        ctx = self.ctx
        refusal = risk.refusal(decision, cid, now, blotter.sent)
        if refusal is not None:
            self._denied(refusal)
            return None
        if isinstance(decision.instrument, Combo):
            ctx.know(decision.instrument)  # held as its legs: sizing and filters see them
        try:
            intent = self.p.sizer.intent(decision, cid, ctx, now)
        except SizingError as exc:
            self._denied(rule_verdict(decision.id, cid, "sizing", Outcome.DENY, str(exc), now))
            return None
        if answered:
            intent = intent.model_copy(update={"answered": answered})
        refusal = risk.breach(intent, now)
        if refusal is not None:
            self._denied(refusal)
            return None
        blotter.owner[cid] = strategy
        intent, denial = risk.judge(intent, decision, ctx, now, record.verdict_values)
        if (
            denial is None
            and self.approval_rules is not None
            and self._waits(decision, intent, now)
        ):
            return None  # no order yet: a person sends it (tradepipe approve)
        order = Order.from_intent(intent)
        blotter.sent.add(cid)
        self.orders += 1
        trouble = self._record_and_send(order, denial, now)
        if isinstance(trouble, BrokerQuestionError):
            self._ask_person(decision, intent, trouble, attempt, now)
        elif trouble is not None:
            # Wait for the session to come back (a person logging in again) or stop.
            self.await_session(trouble)
        return order

    def _record_and_send(
        self, order: Order, denial: str | None, now: datetime
    ) -> BrokerAuthError | BrokerQuestionError | None:
        """Record a judged ``order``, then deny it (``denial``) or send it (not in a dry
        run); what :meth:`Blotter.send <tradepipe.blotter.Blotter.send>` returns."""
        blotter = self.blotter
        try:
            self.record.order(order)
            if denial is not None:
                blotter.order_event(order, order.transition(OrderStatus.DENIED, now, denial))
                return None
            if self.dry_run:
                return None  # judged and recorded as it would be sent; never sent
            return blotter.send(order, now)
        except KeyboardInterrupt:
            # Ctrl-C between recording the order and its first status: it never went
            # to the broker, and its history says so (every recorded order has one).
            if order.status is OrderStatus.INITIALIZED:
                blotter.order_event(
                    order,
                    order.transition(OrderStatus.DENIED, now, "not sent: the run was interrupted"),
                )
            raise

    def _denied(self, verdict: RiskVerdict) -> None:
        self.record.verdict(verdict)
        self.last_denial = verdict.reason

    def _waits(self, decision: Decision, intent: Any, now: datetime) -> bool:
        """Whether ``intent`` waits for a person (a rule of ``[approval]`` caught it, and
        no one approved it yet); if so, that is recorded. A dry run never waits."""
        rules = self.approval_rules
        if rules is None or self.dry_run or decision.id in self.approved:
            return False
        from tradepipe.approval import (
            ApprovalRequest,
            approval_id,
            approval_reason,
            expiry,
            notional_of,
        )

        price = self.ctx.last_price(intent.symbol)
        reason = approval_reason(rules, decision, intent, price, paper=self.ctx.is_paper())
        if not reason:
            return False
        request = ApprovalRequest(
            approval_id=approval_id(self.p.run.namespace, decision.id),
            namespace=self.p.run.namespace,
            run_id=self.p.run.run_id,
            decision=decision,
            intent=intent,
            notional=notional_of(intent, price),
            reason=reason,
            created_at=now,
            expires_at=expiry(rules, decision, now),
        )
        self.record.approval(request)
        return True

    def _ask_person(
        self,
        decision: Decision,
        intent: OrderIntent,
        question: BrokerQuestionError,
        attempt: int,
        now: datetime,
    ) -> None:
        """The broker asked about ``intent`` a question left to a person: it waits in
        the approval queue; approved, the order is sent again with its ids confirmed."""
        from tradepipe.approval import (
            MAX_ATTEMPTS,
            ApprovalRequest,
            approval_id,
            expiry,
            notional_of,
        )

        if not self.asks or attempt + 1 > MAX_ATTEMPTS:
            return  # the order stays refused, with the question in its reason
        context = question.context
        ids = tuple(str(i) for i in context.get("message_ids") or ())
        text = str(context.get("question") or "")
        namespace = self.p.run.namespace
        rules = self.p.settings.approval
        shown = ", ".join(ids) or "no id"
        self.record.approval(
            ApprovalRequest(
                approval_id=approval_id(namespace, decision.id, attempt + 1),
                namespace=namespace,
                run_id=self.p.run.run_id,
                decision=decision,
                intent=intent,
                notional=notional_of(intent, self.ctx.last_price(intent.symbol)),
                reason=f'{self.p.broker.name} asked "{text}" ({shown})',
                created_at=now,
                expires_at=expiry(rules, decision, now),
                kind="question",
                attempt=attempt + 1,
                question=text,
                message_ids=ids,
                answered=tuple(dict.fromkeys((*intent.answered, *ids))),
                client_order_id=intent.client_order_id,
            )
        )

    def allow(self, request: Approved) -> None:
        """A person approved ``request``: its decision is sent without waiting again,
        and for a broker's question, as that send with the question's ids confirmed."""
        decision_id = request.decision.id
        self.approved.add(decision_id)
        if request.attempt:
            self.answers[decision_id] = (request.attempt, request.answered)

    def send_approved(self, now: datetime) -> int:
        """Send what a person approved for this run's session (a live run, between
        bars): each judged again by every filter, now; how many were taken."""
        from tradepipe.approval import ending

        namespace = self.p.run.namespace
        taken = self.record.take_approved(namespace, self.p.run.run_id, now)
        for request in taken:
            decision = request.decision
            self.allow(request)
            cid = client_order_id(namespace, decision.id, attempt=request.attempt)
            if cid in self.blotter.sent:
                # Taken by a run that stopped after sending it: it went once.
                self.record.approval_done(request.approval_id, "sent", f"order {cid}", cid)
                continue
            self.last_denial = ""
            try:
                order = self.judge(decision.source, decision, now)
            except Exception as exc:
                self.record.approval_done(
                    request.approval_id, "failed", f"{type(exc).__name__}: {exc}", None
                )
                raise
            self.record.approval_done(request.approval_id, *ending(order, self.last_denial))
        return len(taken)

    def await_session(self, exc: BrokerAuthError) -> None:
        """The broker's session is lost: wait ``[run] session_wait_seconds`` for it, or stop.

        While waiting, :attr:`waiting_for` says why (the status shows it).

        :raises BrokerAuthError: ``exc``, when the session did not come back.
        """
        wait = self.session_wait
        if wait is None:
            wait = self.p.settings.run.session_wait_seconds
        self.waiting_for = redact_accounts(str(exc))  # shown: no account numbers
        self.record.alert(
            "connection",
            f"broker {self.p.broker.name}: session lost ({self.waiting_for}); "
            f"waiting up to {wait:g} s for it",
        )
        on_wait = self.on_wait
        try:
            if wait <= 0 or not self.p.broker.await_session(wait, on_wait):
                if on_wait is not None and not on_wait():
                    return  # the run is stopping: it ends as it was asked to
                self.record.alert(
                    "connection", f"broker {self.p.broker.name}: session not back; the run stops"
                )
                raise exc
        finally:
            self.waiting_for = ""
        self.record.alert("connection", f"broker {self.p.broker.name}: session back")
        log.info("broker session back; the run goes on")

    def final_poll(self, seconds: float) -> None:
        """Ask the broker about every order that is not final yet, before the summary.

        One :meth:`~tradepipe.Broker.refresh` at least; while an order's fate
        is still open (sent but unanswered, unknown, cancel pending) and the
        broker is one that reports through polling, asked again once a second
        for up to ``seconds``.
        """
        broker = self.p.broker
        unknown = self.blotter.unknown
        sleep, monotonic = self.sleep, self.monotonic
        deadline = monotonic() + seconds
        while True:
            try:
                events = broker.refresh()
            except BrokerError as exc:
                log.warning("final poll of the broker failed: %s", exc)
                return
            if events:
                self.blotter.apply(events)
            if unknown:
                self._settle_unknown()
            if not self.blotter.unsettled() or monotonic() >= deadline:
                return
            if not broker.needs_polling and not unknown:
                return  # a broker that reports at once has nothing more to say
            sleep(min(1.0 if broker.needs_polling else 0.25, max(0.0, deadline - monotonic())))

    def _settle_unknown(self) -> None:
        """Ask the broker about orders whose sending had no clear outcome."""
        blotter = self.blotter
        now = self.p.clock.now()
        for update in ask_unknown(self.p.broker, blotter.unknown, now, self.await_session):
            blotter.update(update)

    # -- records and the broker -------------------------------------------------

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
        return frozenset(self.blotter.unknown)

    @property
    def fills(self) -> int:
        """Executions applied so far."""
        return self.blotter.fills

    def on_quote(self, quote: Quote) -> None:
        """A live quote: the broker sees it (a simulator may fill at it); its events apply."""
        events = self.p.broker.on_quote(quote)
        if events:
            self.blotter.apply(events)

    def refresh(self) -> None:
        """The broker has news of an order (its stream said so): ask it now, not at the pace."""
        try:
            events = self.p.broker.refresh()
        except BrokerError as exc:
            log.warning("could not ask the broker about its orders: %s", exc)
            return
        if events:
            self.blotter.apply(events)
        if self.blotter.unknown:
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
            self.blotter.apply(events)
        if self.blotter.unknown:
            self._settle_unknown()


def _any_rule(rules: Any) -> bool:
    """Whether ``[approval]`` makes anything wait."""
    return bool(
        rules.all
        or rules.sources
        or rules.options
        or rules.above_notional is not None
        or rules.above_quantity is not None
        or rules.below_confidence is not None
    )
