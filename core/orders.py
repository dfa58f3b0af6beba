"""Order intents, orders and their state machine, order events and fills.

An :class:`OrderIntent` is a sized decision, carrying a client order id derived
deterministically from the decision (so a restart can recognise an order it
already sent). An :class:`Order` is the intent plus its life at the broker; its
status only moves along the edges in :data:`TRANSITIONS`, and every move yields
an :class:`OrderEvent` that the ledger keeps as history::

    INITIALIZED ─┬─> DENIED                      (risk said no; never sent)
                 └─> SUBMITTED ─┬─> REJECTED     (the broker said no)
                                ├─> UNKNOWN ──> (any broker outcome, once known)
                                └─> ACCEPTED ─┬─> PARTIALLY_FILLED ─> FILLED
                                              ├─> FILLED
                                              ├─> PENDING_CANCEL ─> CANCELED
                                              ├─> CANCELED
                                              └─> EXPIRED
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import AwareDatetime, Field, model_validator
from tradepipe.decisions import OrderType, TimeInForce
from tradepipe.errors import InvalidOrderTransition
from tradepipe.instruments import Instrument, Symbol
from tradepipe.money import ZERO
from tradepipe.options.risk import OptionRisk
from tradepipe.order_rules import price_problem
from tradepipe.record import Record

_ONE = Decimal(1)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


def client_order_id(namespace: str, decision_id: str, leg: int = 0, attempt: int = 0) -> str:
    """Deterministic client order id for leg ``leg`` of a decision.

    The same namespace and decision always give the same id, which is how a
    restarted run recognises orders it already sent. 24 characters: short
    enough for every broker we speak to (IBKR's ``cOID``). ``attempt`` numbers
    the sends of a decision after the broker asked a question a person then
    answered (the first send is 0, and keeps the id it always had).
    """
    # Length prefixes keep the parts apart whatever characters they contain.
    key = f"{len(namespace)}:{namespace}|{len(decision_id)}:{decision_id}|{leg}"
    if attempt:
        key += f"|a{attempt}"
    return "tp-" + hashlib.blake2b(key.encode(), digest_size=11).hexdigest()[:21]


class OrderIntent(Record):
    """A sized order, ready for the risk filters and then the broker."""

    client_order_id: str = Field(min_length=1, max_length=64)
    decision_id: str
    source: str
    symbol: Symbol
    side: Side
    quantity: Decimal = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = Field(default=None, gt=0)
    stop_price: Decimal | None = Field(default=None, gt=0)
    tif: TimeInForce = TimeInForce.DAY
    outside_rth: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    reference_price: Decimal | None = Field(
        default=None, description="the price sizing and the risk filters used"
    )
    created_at: AwareDatetime
    #: What is traded when it is not simply the stock ``symbol``: an option or
    #: a combo of legs. ``symbol`` is then the instrument's ticker.
    instrument: Instrument | None = None
    #: An options strategy's risk at expiry for ``quantity`` (from the decision).
    option_risk: OptionRisk | None = None
    #: Broker question ids (IBKR's ``o163``…) a person accepted for this order by
    #: approving the question (reply policy ``ask``): confirmed when asked again.
    answered: tuple[str, ...] = ()

    @property
    def multiplier(self) -> Decimal:
        """Money per unit of price per unit of quantity (100 for US equity options)."""
        instrument = self.instrument
        return _ONE if instrument is None else instrument.multiplier

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderIntent:
        problem = price_problem(self.order_type, self.limit_price, self.stop_price)
        if problem:
            raise ValueError(problem)
        return self

    def with_quantity(self, quantity: Decimal) -> OrderIntent:
        """The same intent with another quantity (a risk filter reduced it)."""
        update: dict[str, object] = {"quantity": quantity}
        if self.option_risk is not None:
            update["option_risk"] = self.option_risk.scaled(quantity)
        return self.model_copy(update=update)

    def exits(self) -> list[OrderIntent]:
        """The take-profit and stop-loss orders a bracket attaches to this one.

        Each closes the whole position the parent opens: the other side, the
        parent's quantity, a limit at ``take_profit`` (client order id
        ``<parent>-tp``) or a stop at ``stop_loss`` (``<parent>-sl``); they carry
        the parent's decision id, so every exit fill leads back to the decision.
        """
        other = Side.SELL if self.side is Side.BUY else Side.BUY
        out = []
        for label, kind, price in (
            (EXIT_TAKE_PROFIT, OrderType.LIMIT, self.take_profit),
            (EXIT_STOP_LOSS, OrderType.STOP, self.stop_loss),
        ):
            if price is None:
                continue
            out.append(
                OrderIntent(
                    client_order_id=f"{self.client_order_id}-{label}",
                    decision_id=self.decision_id,
                    source=BRACKET_SOURCE,
                    symbol=self.symbol,
                    side=other,
                    quantity=self.quantity,
                    order_type=kind,
                    limit_price=price if kind is OrderType.LIMIT else None,
                    stop_price=price if kind is OrderType.STOP else None,
                    tif=self.tif,
                    outside_rth=self.outside_rth,
                    created_at=self.created_at,
                    instrument=self.instrument,
                )
            )
        return out


#: The source of a bracket's exit orders, and the suffixes of their client order ids.
BRACKET_SOURCE = "bracket"
EXIT_TAKE_PROFIT = "tp"
EXIT_STOP_LOSS = "sl"


def bracket_parent(client_order_id: str) -> str | None:
    """The parent's client order id of a bracket exit's (``<parent>-tp``/``-sl``), else None."""
    head, _, label = client_order_id.rpartition("-")
    return head if head and label in (EXIT_TAKE_PROFIT, EXIT_STOP_LOSS) else None


class OrderStatus(StrEnum):
    INITIALIZED = "initialized"
    DENIED = "denied"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_working(self) -> bool:
        """Live at the broker: may still fill."""
        return self in WORKING

    @property
    def event_name(self) -> str:
        """Past-tense event name for reaching this status, e.g. ``OrderFilled``."""
        return _EVENT_NAMES[self]


S = OrderStatus
TERMINAL = frozenset({S.DENIED, S.REJECTED, S.FILLED, S.CANCELED, S.EXPIRED})
WORKING = frozenset({S.SUBMITTED, S.UNKNOWN, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL})
_BROKER_OUTCOMES = frozenset(
    {S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
)
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.DENIED, S.SUBMITTED}),
    # A broker may answer a submission with any outcome directly (an immediate fill).
    S.SUBMITTED: _BROKER_OUTCOMES | {S.UNKNOWN},
    S.UNKNOWN: _BROKER_OUTCOMES,
    S.ACCEPTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}
    ),
    # A cancel request can lose the race against a fill, or be refused.
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED, S.EXPIRED}),
    **{status: frozenset() for status in TERMINAL},
}
_EVENT_NAMES = {
    S.INITIALIZED: "OrderInitialized",
    S.DENIED: "OrderDenied",
    S.SUBMITTED: "OrderSubmitted",
    S.UNKNOWN: "OrderStatusUnknown",
    S.ACCEPTED: "OrderAccepted",
    S.REJECTED: "OrderRejected",
    S.PARTIALLY_FILLED: "OrderPartiallyFilled",
    S.FILLED: "OrderFilled",
    S.PENDING_CANCEL: "OrderPendingCancel",
    S.CANCELED: "OrderCanceled",
    S.EXPIRED: "OrderExpired",
}


class OrderEvent(Record):
    """One status change of one order; the ledger keeps every one."""

    client_order_id: str
    decision_id: str
    seq: int = Field(ge=1, description="position in this order's history; the first change is 1")
    status: OrderStatus
    previous: OrderStatus | None
    ts: AwareDatetime
    reason: str = ""
    broker_order_id: str | None = None

    @property
    def name(self) -> str:
        return self.status.event_name


class FillKind(StrEnum):
    """What made a fill: a trade, or an option position ending at expiry.

    An expiry, exercise or assignment is no order's execution: the broker
    books it on its own. The executor records it under the order that opened
    the position it closes (see :mod:`tradepipe.lifecycle`).
    """

    TRADE = "trade"
    #: The option expired worthless: closed at no price.
    EXPIRED = "expired"
    #: A long option was exercised: the option closes, the underlying is delivered.
    EXERCISED = "exercised"
    #: A short option was assigned: the option closes, the underlying is delivered.
    ASSIGNED = "assigned"


class FillLike(Protocol):
    """What reports of fills read of one: a :class:`Fill`, or a fill as the ledger
    or an import keeps it (the tax lots, a run's trade statistics)."""

    @property
    def execution_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def commission(self) -> Decimal: ...
    @property
    def multiplier(self) -> Decimal: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def kind(self) -> str: ...


class Fill(Record):
    """An execution: part or all of an order traded at one price.

    A fill of an expiry, exercise or assignment has a :attr:`kind` other than
    ``trade``; both its fills, the option's and the underlying's, carry it.
    """

    execution_id: str
    client_order_id: str
    decision_id: str
    broker_order_id: str | None = None
    symbol: str
    side: Side
    quantity: Decimal = Field(gt=0)
    #: Zero only where a position ends without a trade: an option that expires,
    #: or is exercised or assigned, is closed at no price (as brokers report it).
    price: Decimal = Field(ge=0)
    commission: Decimal = ZERO
    multiplier: Decimal = Decimal(1)
    ts: AwareDatetime
    kind: FillKind = FillKind.TRADE
    #: A combo's fill: one fill per leg (its OCC symbol, quantity and price), as
    #: IBKR and the paper simulator report them. The combo's own ``quantity`` and
    #: ``price`` (the net) are what its order filled at; positions, cash, the
    #: ledger's fills and tax lots are the legs'. Empty for anything else.
    legs: tuple[Fill, ...] = ()

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price * self.multiplier

    @property
    def booked(self) -> tuple[Fill, ...]:
        """What this fill books: its legs, or itself."""
        return self.legs or (self,)


class Order(Record):
    """An intent's life at the broker.

    Frozen to the outside: the status moves only through :meth:`transition` and
    :meth:`apply_fill`, which check the move against :data:`TRANSITIONS` and
    return the :class:`OrderEvent` to record.
    """

    intent: OrderIntent
    status: OrderStatus = OrderStatus.INITIALIZED
    broker_order_id: str | None = None
    filled_quantity: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    reason: str = ""
    updated_at: AwareDatetime
    seq: int = 0

    @classmethod
    def from_intent(cls, intent: OrderIntent) -> Order:
        if cls is Order:
            return _order(intent, intent.created_at)
        return cls.trusted(intent=intent, updated_at=intent.created_at)

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id

    @property
    def remaining(self) -> Decimal:
        return self.intent.quantity - self.filled_quantity

    def can_transition(self, status: OrderStatus) -> bool:
        return status in TRANSITIONS[self.status]

    def transition(
        self,
        status: OrderStatus,
        ts: datetime,
        reason: str = "",
        broker_order_id: str | None = None,
    ) -> OrderEvent:
        """Move to ``status`` and return the event recording the move.

        :raises InvalidOrderTransition: when ``status`` is not reachable from
            the current status.
        """
        state = self.__dict__
        previous = state["status"]
        if status not in TRANSITIONS[previous]:
            raise InvalidOrderTransition(
                f"order {self.intent.client_order_id}: cannot go from {previous} to {status}",
                client_order_id=self.intent.client_order_id,
            )
        seq = state["seq"] + 1
        state["status"] = status
        state["updated_at"] = ts
        state["seq"] = seq
        if reason:
            state["reason"] = reason
        if broker_order_id:
            state["broker_order_id"] = broker_order_id
        intent = state["intent"]
        return _event(
            intent.client_order_id,
            intent.decision_id,
            seq,
            status,
            previous,
            ts,
            reason,
            state["broker_order_id"],
        )

    def apply_fill(self, fill: Fill) -> OrderEvent:
        """Account for ``fill`` and move to FILLED or PARTIALLY_FILLED.

        :raises InvalidOrderTransition: when the fill is more than what remains.
        """
        state = self.__dict__
        filled = state["filled_quantity"] + fill.quantity
        if filled > self.intent.quantity:
            raise InvalidOrderTransition(
                f"order {self.intent.client_order_id}: fill of {fill.quantity} exceeds the "
                f"remaining {self.remaining}",
                client_order_id=self.intent.client_order_id,
            )
        status = S.FILLED if filled == self.intent.quantity else S.PARTIALLY_FILLED
        # Check the edge before touching the quantities, so a refused fill
        # (e.g. on a canceled order) leaves the order as it was.
        event = self.transition(status, fill.ts, broker_order_id=fill.broker_order_id)
        prior = state["avg_fill_price"] or ZERO
        state["avg_fill_price"] = (
            prior * state["filled_quantity"] + fill.price * fill.quantity
        ) / filled
        state["filled_quantity"] = filled
        return event


# Constructors for the records made for every order (see :meth:`Record.maker`).
_event = OrderEvent.maker(
    "client_order_id",
    "decision_id",
    "seq",
    "status",
    "previous",
    "ts",
    "reason",
    "broker_order_id",
)
_order = Order.maker("intent", "updated_at")
