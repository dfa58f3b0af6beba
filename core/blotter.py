"""The run's orders: sent once each, and kept up to date from what the broker says.

The :class:`Blotter` sends an order once: written ahead when the broker needs
it, and never again, whatever the send's outcome (an unknown one is settled by
asking the broker, :func:`tradepipe.reconcile.ask_unknown`). It applies the
broker's events to the orders a run sent or took on: status updates, fills
(booked in the account first, whatever the order makes of them), a bracket's
exits, and the expiry, exercise or assignment of an option, booked under the
order that opened the position (:mod:`tradepipe.lifecycle`). Every event is
recorded; a strategy hears of its fills only once all of a batch is on record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tradepipe.adapter import OrderUpdate, order_update
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerError,
    BrokerQuestionError,
    BrokerRejectedError,
    InvalidOrderTransition,
    TradepipeError,
)
from tradepipe.lifecycle import (
    SETTLEMENTS,
    Opening,
    Openings,
    describe,
    opening_side,
    underlying_of,
)
from tradepipe.logs import redact_accounts
from tradepipe.orders import TERMINAL, Fill, FillKind, Order, OrderEvent, OrderStatus
from tradepipe.strategy import Strategy

if TYPE_CHECKING:
    from tradepipe.context import RunContext
    from tradepipe.pipeline import Pipeline
    from tradepipe.portfolio import Book
    from tradepipe.recorder import Recorder

log = logging.getLogger("tradepipe.events")
_S = OrderStatus
#: Statuses whose outcome the broker has yet to tell.
_UNSETTLED = frozenset({_S.SUBMITTED, _S.UNKNOWN, _S.PENDING_CANCEL})


class Blotter:
    """The orders of one run, kept up to date from the broker's events."""

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: RunContext,
        book: Book,
        working: dict[str, Order],
        record: Recorder,
        strategy_failed: Callable[[Strategy, Exception], None],
    ) -> None:
        self.book = book
        self.record = record
        #: Orders working at the broker, by client order id.
        self.working = working
        #: Client order ids this run (or an earlier run of its session) used.
        self.sent: set[str] = set()
        #: Executions already applied.
        self.seen: set[str] = set()
        #: Orders whose send had no clear outcome, and since when.
        self.unknown: dict[str, datetime] = {}
        #: Client order id -> the strategy that asked for it.
        self.owner: dict[str, str] = {}
        #: Orders followed for another run still going, which records them: client
        #: order id -> that run (see tradepipe.reconcile.start_up).
        self.left: dict[str, str] = {}
        #: Executions another run recorded: applied here, not recorded again.
        self.recorded: set[str] = set()
        self.fills = 0
        self._broker = pipeline.broker
        self._ctx = ctx
        self._sinks = pipeline.sinks
        self._namespace = pipeline.run.namespace
        #: Which of this run's orders opened which positions (for expiries, assignments).
        self._openings = Openings(pipeline.run.run_id)
        self._listeners = {
            s.name: s for s in pipeline.strategies if type(s).on_fill is not Strategy.on_fill
        }
        self._deferred: list[tuple[Strategy, Fill]] = []
        self._strategy_failed = strategy_failed

    def send(self, order: Order, now: datetime) -> BrokerAuthError | BrokerQuestionError | None:
        """Send a new, judged ``order`` once; the session error if the session was lost,
        the broker's question if it waits for a person.

        It is recorded as submitted first (and made durable when the broker
        needs that). With the session lost it was not sent: it is recorded as
        rejected, and the caller decides whether to wait for the session. A
        question left to a person (reply policy ``ask``) is recorded as the
        broker's rejection too; the caller puts it in the approval queue.
        """
        broker = self._broker
        cid = order.client_order_id
        self.order_event(order, order.transition(_S.SUBMITTED, now))
        if broker.requires_durable_intents:
            self.record.flush()
        self.working[cid] = order
        try:
            update = broker.place(order.intent)
        except BrokerQuestionError as exc:
            self.update(_update(cid, _S.REJECTED, now, _reason(exc)))
            return exc
        except (BrokerRejectedError, BrokerCapabilityError) as exc:
            update = _update(cid, _S.REJECTED, now, _reason(exc))
        except BrokerAuthError as exc:
            # Not sent: the session is gone.
            self.update(_update(cid, _S.REJECTED, now, f"not sent: {_reason(exc)}"))
            return exc
        except BrokerError as exc:
            # Ambiguous: the order may or may not have reached the broker. It is
            # never resent; its status is settled by asking the broker.
            update = _update(cid, _S.UNKNOWN, now, _reason(exc))
        except BaseException as exc:
            self.update(_update(cid, _S.UNKNOWN, now, f"interrupted while sending: {exc!r}"))
            raise
        self.update(update)
        return None

    def apply(self, events: Sequence[OrderUpdate | Fill]) -> None:
        """Apply the broker's ``events`` in order; then tell strategies of their fills."""
        for event in events:
            if type(event) is Fill:
                self.fill(event)
            else:
                self.update(event)  # type: ignore[arg-type]
        if self._deferred:
            # Strategies hear of fills only once every event is recorded, so a
            # strategy that raises cannot leave a fill unrecorded.
            deferred, self._deferred = self._deferred, []
            for strategy, fill in deferred:
                try:
                    strategy.on_fill(fill, self._ctx)
                except Exception as exc:
                    self._strategy_failed(strategy, exc)

    def update(self, update: OrderUpdate) -> None:
        """The broker says where an order stands."""
        cid = update.client_order_id
        if self.left and cid in self.left:
            self._take_back(cid)
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
            self.unknown.setdefault(cid, update.ts)
        else:
            self.unknown.pop(cid, None)
        self.order_event(order, event)
        if update.exits:
            self._record_exits(order, update)

    def leave(self, cid: str, run_id: str) -> None:
        """Follow ``cid`` for ``run_id``, still going, which records it: nothing of it
        is recorded here unless that run ends first (:meth:`_take_back`)."""
        self.left[cid] = run_id
        self.record.left_to_its_run(cid)

    def _take_back(self, cid: str) -> None:
        """Before news of an order left to another run: if that run has ended (it may
        end before the order does), this run records the order from now on, in
        that run's history, from where the ledger has it."""
        run_id = self.left[cid]
        if any(run_id in sink.running_elsewhere() for sink in self._sinks):
            return  # still going: its own run records it
        del self.left[cid]
        held = [u for sink in self._sinks for u in sink.held_orders([cid])]
        if not held:
            # Ended in the ledger already (its run recorded the end): nothing to follow.
            self.working.pop(cid, None)
            log.info("order %s: run %s ended and recorded its end", cid, run_id)
            return
        u = held[0]
        current = self.working.get(cid)
        self.recorded.update(u.executions)
        self.record.belongs_to(cid, u.run_id)
        self.working[cid] = Order.trusted(
            intent=u.intent,
            status=u.status,
            seq=u.seq,
            filled_quantity=u.filled,
            broker_order_id=u.broker_order_id
            or (current.broker_order_id if current is not None else None),
            updated_at=u.updated_at or u.intent.created_at,
        )
        log.info("order %s: run %s ended before it; recorded in that run from here", cid, run_id)

    def take_on(self, order: Order, ts: datetime, reason: str, broker_order_id: str) -> None:
        """Record ``order``, which the broker accepted without a send of this run's."""
        cid = order.client_order_id
        self.sent.add(cid)
        self.record.order(order)
        self.order_event(order, order.transition(_S.SUBMITTED, ts, reason))
        self.working[cid] = order
        self.order_event(order, order.transition(_S.ACCEPTED, ts, reason, broker_order_id))

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
            reason = f"exit of bracket {parent.client_order_id}, placed with it"
            self.take_on(Order.from_intent(intent), update.ts, reason, broker_id)

    def fill(self, fill: Fill) -> None:
        """The broker reports an execution (once each, by execution id)."""
        if self.left and fill.client_order_id in self.left:
            self._take_back(fill.client_order_id)
        if fill.execution_id in self.seen:
            return
        self.seen.add(fill.execution_id)
        self.fills += 1
        if fill.kind in SETTLEMENTS:
            self._settlement(fill)
            return
        # A combo books its legs, each a position of its own.
        legs = fill.legs
        if legs:
            before = {leg.execution_id: self.book.quantity(leg.symbol) for leg in legs}
        else:
            held = self.book.quantity(fill.symbol)
        # The broker says it traded: the account reflects that first, whatever
        # the order's own state makes of it.
        self.book.apply(fill)
        if self.recorded and fill.execution_id in self.recorded:
            return  # another run recorded it, and it is in the order as the ledger has it
        self.record.fill(fill)
        order = self.working.get(fill.client_order_id)
        if order is None:
            log.warning("fill %s for an order this run did not send", fill.execution_id)
            return
        if legs:
            for leg in legs:
                self._openings.note(leg, before[leg.execution_id])
        else:
            self._openings.note(fill, held)
        self.unknown.pop(fill.client_order_id, None)
        try:
            event = order.apply_fill(fill)
        except InvalidOrderTransition as exc:
            log.error("fill %s not applied to its order: %s", fill.execution_id, exc)
            return
        self.order_event(order, event)
        listener = self._listeners.get(self.owner.get(fill.client_order_id, ""))
        if listener is not None:
            self._deferred.append((listener, fill))

    def _settlement(self, fill: Fill) -> None:
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
        listener = self._listeners.get(self.owner.get(fill.client_order_id, ""))
        if listener is not None and opening is not None:
            self._deferred.append((listener, fill))

    def _earlier_opening(self, fill: Fill) -> Opening | None:
        """The order of an earlier run of this session that opened what ``fill`` closes."""
        side = opening_side(fill)
        for sink in self._sinks:
            try:
                found = sink.opening_order(self._namespace, fill.symbol, side)
            except TradepipeError as exc:
                log.warning("could not look up the order that opened %s: %s", fill.symbol, exc)
                continue
            if found is not None:
                return found
        return None

    def unsettled(self) -> bool:
        """Whether an order's fate is still open: sent but unanswered, unknown, cancel pending."""
        return any(o.status in _UNSETTLED for o in self.working.values())

    def order_event(self, order: Order, event: OrderEvent) -> None:
        """Record ``event`` of ``order``; an order that ended is no longer working."""
        self.record.order_event(order, event)
        if event.status in TERMINAL:
            self.working.pop(order.client_order_id, None)


def _reason(exc: BaseException) -> str:
    # Broker messages go into the ledger; keep account numbers out of it.
    return redact_accounts(str(exc))


def _update(cid: str, status: OrderStatus, ts: datetime, reason: str) -> OrderUpdate:
    return order_update(cid, status, ts, None, reason)
