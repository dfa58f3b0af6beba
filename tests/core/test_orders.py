"""The order state machine, fills, client order ids and trusted records."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal
from typing import Any

import pytest
from pydantic import Field, PrivateAttr, ValidationError
from tradepipe.decisions import OrderType, TimeInForce
from tradepipe.errors import InvalidOrderTransition
from tradepipe.orders import (
    TRANSITIONS,
    Fill,
    Order,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    Side,
    client_order_id,
)
from tradepipe.record import Record
from tradepipe.risk import Outcome, RiskVerdict, rule_verdict
from tradepipe.testing import T0

S = OrderStatus

# Written out by hand from the diagram in orders.py, so a change to TRANSITIONS
# has to be made on purpose in both places.
LEGAL: dict[OrderStatus, set[OrderStatus]] = {
    S.INITIALIZED: {S.DENIED, S.SUBMITTED},
    S.SUBMITTED: {
        S.UNKNOWN,
        S.ACCEPTED,
        S.REJECTED,
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.PENDING_CANCEL,
        S.CANCELED,
        S.EXPIRED,
    },
    S.UNKNOWN: {
        S.ACCEPTED,
        S.REJECTED,
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.PENDING_CANCEL,
        S.CANCELED,
        S.EXPIRED,
    },
    S.ACCEPTED: {
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.PENDING_CANCEL,
        S.CANCELED,
        S.EXPIRED,
        S.REJECTED,
    },
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED},
    S.PENDING_CANCEL: {S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED, S.EXPIRED},
    S.DENIED: set(),
    S.REJECTED: set(),
    S.FILLED: set(),
    S.CANCELED: set(),
    S.EXPIRED: set(),
}
LEGAL_EDGES = sorted((a, b) for a, targets in LEGAL.items() for b in targets)
ILLEGAL_EDGES = sorted(
    (a, b) for a, b in itertools.product(OrderStatus, OrderStatus) if b not in LEGAL[a]
)
TERMINAL = [S.DENIED, S.REJECTED, S.FILLED, S.CANCELED, S.EXPIRED]

# How to reach each status from a fresh order.
PATHS: dict[OrderStatus, list[OrderStatus]] = {
    S.INITIALIZED: [],
    S.DENIED: [S.DENIED],
    S.SUBMITTED: [S.SUBMITTED],
    S.UNKNOWN: [S.SUBMITTED, S.UNKNOWN],
    S.ACCEPTED: [S.SUBMITTED, S.ACCEPTED],
    S.REJECTED: [S.SUBMITTED, S.REJECTED],
    S.PARTIALLY_FILLED: [S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED],
    S.FILLED: [S.SUBMITTED, S.ACCEPTED, S.FILLED],
    S.PENDING_CANCEL: [S.SUBMITTED, S.ACCEPTED, S.PENDING_CANCEL],
    S.CANCELED: [S.SUBMITTED, S.ACCEPTED, S.CANCELED],
    S.EXPIRED: [S.SUBMITTED, S.ACCEPTED, S.EXPIRED],
}

EVENT_NAMES = {
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


def make_intent(quantity: str = "10", **overrides: Any) -> OrderIntent:
    values: dict[str, Any] = {
        "client_order_id": "tp-test-1",
        "decision_id": "d-test-1",
        "source": "unit",
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal(quantity),
        "created_at": T0,
    }
    values.update(overrides)
    return OrderIntent(**values)


def make_order(quantity: str = "10") -> Order:
    return Order.from_intent(make_intent(quantity))


def walk(order: Order, path: list[OrderStatus]) -> list[OrderEvent]:
    return [
        order.transition(status, T0 + dt.timedelta(seconds=i + 1)) for i, status in enumerate(path)
    ]


def make_fill(quantity: str, price: str, n: int = 1, **overrides: Any) -> Fill:
    values: dict[str, Any] = {
        "execution_id": f"x-{n}",
        "client_order_id": "tp-test-1",
        "decision_id": "d-test-1",
        "broker_order_id": "B-77",
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal(quantity),
        "price": Decimal(price),
        "ts": T0 + dt.timedelta(minutes=n),
    }
    values.update(overrides)
    return Fill(**values)


# -- the transition table ----------------------------------------------------------


def test_transition_table_is_the_documented_one() -> None:
    assert {a: set(b) for a, b in TRANSITIONS.items()} == LEGAL
    assert len(LEGAL_EDGES) == 33
    assert len(ILLEGAL_EDGES) == 11 * 11 - 33


def test_paths_reach_their_status() -> None:
    for status, path in PATHS.items():
        order = make_order()
        walk(order, path)
        assert order.status is status


@pytest.mark.parametrize(("start", "target"), LEGAL_EDGES, ids=lambda s: s.value)
def test_legal_edge(start: OrderStatus, target: OrderStatus) -> None:
    order = make_order()
    walk(order, PATHS[start])
    ts = T0 + dt.timedelta(hours=1)
    assert order.can_transition(target)

    event = order.transition(target, ts, reason="because", broker_order_id="B-1")

    assert event.seq == len(PATHS[start]) + 1
    assert event.previous is start
    assert event.status is target
    assert event.name == EVENT_NAMES[target]
    assert event.ts == ts
    assert event.reason == "because"
    assert event.broker_order_id == "B-1"
    assert event.client_order_id == "tp-test-1"
    assert event.decision_id == "d-test-1"
    assert order.status is target
    assert order.seq == event.seq
    assert order.updated_at == ts
    assert order.reason == "because"
    assert order.broker_order_id == "B-1"


@pytest.mark.parametrize(("start", "target"), ILLEGAL_EDGES, ids=lambda s: s.value)
def test_illegal_edge_raises_and_leaves_the_order_alone(
    start: OrderStatus, target: OrderStatus
) -> None:
    order = make_order()
    walk(order, PATHS[start])
    before = order.model_dump()
    assert not order.can_transition(target)

    with pytest.raises(InvalidOrderTransition, match=f"cannot go from {start} to {target}") as exc:
        order.transition(target, T0 + dt.timedelta(hours=1), reason="nope", broker_order_id="B-9")

    assert exc.value.context == {"client_order_id": "tp-test-1"}
    assert order.model_dump() == before


@pytest.mark.parametrize("status", TERMINAL, ids=lambda s: s.value)
def test_terminal_states_accept_nothing(status: OrderStatus) -> None:
    order = make_order()
    walk(order, PATHS[status])
    assert status.is_terminal
    assert not status.is_working
    for target in OrderStatus:
        assert not order.can_transition(target)
        with pytest.raises(InvalidOrderTransition):
            order.transition(target, T0)
    assert order.status is status


def test_terminal_and_working_sets() -> None:
    assert {s for s in OrderStatus if s.is_terminal} == set(TERMINAL)
    assert {s for s in OrderStatus if s.is_working} == {
        S.SUBMITTED,
        S.UNKNOWN,
        S.ACCEPTED,
        S.PARTIALLY_FILLED,
        S.PENDING_CANCEL,
    }


@pytest.mark.parametrize(("status", "name"), sorted(EVENT_NAMES.items()))
def test_event_names(status: OrderStatus, name: str) -> None:
    assert status.event_name == name


def test_denied_is_not_rejected() -> None:
    denied = make_order().transition(S.DENIED, T0, reason="risk said no")
    rejected = make_order()
    rejected.transition(S.SUBMITTED, T0)
    broker_no = rejected.transition(S.REJECTED, T0, reason="broker said no")
    assert (denied.name, denied.previous) == ("OrderDenied", S.INITIALIZED)
    assert (broker_no.name, broker_no.previous) == ("OrderRejected", S.SUBMITTED)


def test_seq_increases_along_a_history() -> None:
    order = make_order()
    path = [S.SUBMITTED, S.UNKNOWN, S.ACCEPTED, S.PENDING_CANCEL, S.ACCEPTED, S.CANCELED]
    events = walk(order, path)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.previous for e in events] == [S.INITIALIZED, *path[:-1]]
    assert [e.status for e in events] == path


def test_broker_order_id_sticks_once_known() -> None:
    order = make_order()
    order.transition(S.SUBMITTED, T0)
    order.transition(S.ACCEPTED, T0, broker_order_id="B-5")
    event = order.transition(S.CANCELED, T0)
    assert event.broker_order_id == "B-5"
    assert order.broker_order_id == "B-5"


def test_a_fresh_order() -> None:
    intent = make_intent()
    order = Order.from_intent(intent)
    assert order.status is S.INITIALIZED
    assert order.seq == 0
    assert order.filled_quantity == 0
    assert order.avg_fill_price is None
    assert order.remaining == Decimal(10)
    assert order.updated_at == T0
    assert order.client_order_id == "tp-test-1"
    assert order == Order(intent=intent, updated_at=T0)


# -- fills -------------------------------------------------------------------------


def test_partial_fills_then_filled() -> None:
    order = make_order("10")
    walk(order, [S.SUBMITTED, S.ACCEPTED])

    first = order.apply_fill(make_fill("2", "101.00", 1))
    # 2 @ 101.00
    assert (first.status, first.previous, first.seq) == (S.PARTIALLY_FILLED, S.ACCEPTED, 3)
    assert first.broker_order_id == "B-77"
    assert first.ts == T0 + dt.timedelta(minutes=1)
    assert order.filled_quantity == Decimal(2)
    assert order.avg_fill_price == Decimal("101.00")
    assert order.remaining == Decimal(8)

    second = order.apply_fill(make_fill("3", "102.00", 2))
    # (2 x 101 + 3 x 102) / 5 = (202 + 306) / 5 = 101.60
    assert (second.status, second.previous, second.seq) == (
        S.PARTIALLY_FILLED,
        S.PARTIALLY_FILLED,
        4,
    )
    assert order.filled_quantity == Decimal(5)
    assert order.avg_fill_price == Decimal("101.60")

    third = order.apply_fill(make_fill("5", "100.40", 3))
    # (508 + 5 x 100.40) / 10 = (508 + 502) / 10 = 101.00
    assert (third.status, third.previous, third.seq) == (S.FILLED, S.PARTIALLY_FILLED, 5)
    assert third.name == "OrderFilled"
    assert order.status is S.FILLED
    assert order.filled_quantity == Decimal(10)
    assert order.avg_fill_price == Decimal("101.00")
    assert order.remaining == 0


def test_fractional_fills_average_exactly() -> None:
    order = make_order("1.5")
    order.transition(S.SUBMITTED, T0)
    order.apply_fill(make_fill("0.25", "200.10", 1))
    order.apply_fill(make_fill("1.25", "199.98", 2))
    # (0.25 x 200.10 + 1.25 x 199.98) / 1.5 = (50.025 + 249.975) / 1.5 = 300 / 1.5 = 200
    assert order.avg_fill_price == Decimal(200)
    assert order.filled_quantity == Decimal("1.5")
    assert order.status is S.FILLED


def test_one_fill_for_everything_goes_straight_to_filled() -> None:
    order = make_order("10")
    order.transition(S.SUBMITTED, T0)
    event = order.apply_fill(make_fill("10", "50.5"))
    assert (event.previous, event.status) == (S.SUBMITTED, S.FILLED)
    assert order.avg_fill_price == Decimal("50.5")


def test_overfill_raises_and_changes_nothing() -> None:
    order = make_order("10")
    walk(order, [S.SUBMITTED, S.ACCEPTED])
    order.apply_fill(make_fill("4", "10", 1))
    before = order.model_dump()

    with pytest.raises(InvalidOrderTransition, match="fill of 7 exceeds the remaining 6"):
        order.apply_fill(make_fill("7", "11", 2))

    assert order.model_dump() == before
    assert order.filled_quantity == Decimal(4)
    assert order.status is S.PARTIALLY_FILLED


@pytest.mark.parametrize("status", [S.INITIALIZED, S.CANCELED, S.REJECTED, S.DENIED])
def test_fill_on_an_order_that_cannot_fill_changes_nothing(status: OrderStatus) -> None:
    order = make_order("10")
    walk(order, PATHS[status])
    before = order.model_dump()

    with pytest.raises(InvalidOrderTransition):
        order.apply_fill(make_fill("3", "10"))

    assert order.model_dump() == before
    assert order.filled_quantity == 0
    assert order.avg_fill_price is None


def test_fill_notional_uses_the_multiplier() -> None:
    fill = make_fill("2", "3.15", multiplier=Decimal(100))
    assert fill.notional == Decimal("630.00")


# -- immutability ------------------------------------------------------------------


def test_order_is_frozen() -> None:
    order = make_order()
    with pytest.raises(ValidationError):
        order.status = S.FILLED  # type: ignore[misc]
    with pytest.raises(ValidationError):
        order.filled_quantity = Decimal(5)  # type: ignore[misc]
    with pytest.raises(ValidationError):
        order.intent.quantity = Decimal(1)  # type: ignore[misc]
    assert order.status is S.INITIALIZED
    assert order.filled_quantity == 0
    assert order.intent.quantity == Decimal(10)


def test_with_quantity_returns_a_new_intent() -> None:
    intent = make_intent("10")
    smaller = intent.with_quantity(Decimal(4))
    assert smaller.quantity == Decimal(4)
    assert intent.quantity == Decimal(10)
    assert smaller.model_dump(exclude={"quantity"}) == intent.model_dump(exclude={"quantity"})


# -- client order ids ---------------------------------------------------------------


def test_client_order_id_is_deterministic() -> None:
    assert client_order_id("run-1", "d-abc") == client_order_id("run-1", "d-abc")
    assert client_order_id("run-1", "d-abc") == client_order_id("run-1", "d-abc", 0)


def test_client_order_id_differs_by_namespace_decision_and_leg() -> None:
    ids = {
        client_order_id("run-1", "d-abc"),
        client_order_id("run-2", "d-abc"),
        client_order_id("run-1", "d-abd"),
        client_order_id("run-1", "d-abc", 1),
        client_order_id("run-1", "d-abc", 2),
        client_order_id("", "d-abc"),
    }
    assert len(ids) == 6


@pytest.mark.parametrize(
    ("namespace", "decision_id", "leg"),
    [("", "", 0), ("x" * 200, "d-" + "f" * 126, 99), ("live/acct 7", "d-0", 3)],
)
def test_client_order_id_is_short_and_plain(namespace: str, decision_id: str, leg: int) -> None:
    cid = client_order_id(namespace, decision_id, leg)
    assert len(cid) <= 32
    assert len(cid) == 24  # as documented
    assert re.fullmatch(r"tp-[0-9a-f]+", cid)


# -- trusted records ----------------------------------------------------------------


INTENT_VALUES: dict[str, Any] = {
    "client_order_id": "tp-1",
    "decision_id": "d-1",
    "source": "unit",
    "symbol": "MSFT",
    "side": Side.SELL,
    "quantity": Decimal("12.5"),
    "stop_loss": Decimal("401.25"),
    "created_at": T0,
}


def test_trusted_equals_validated() -> None:
    trusted = OrderIntent.trusted(**INTENT_VALUES)
    validated = OrderIntent(**INTENT_VALUES)
    assert trusted == validated
    assert trusted.model_dump() == validated.model_dump()
    assert list(trusted.model_dump()) == list(OrderIntent.model_fields)
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert trusted.model_fields_set == validated.model_fields_set


def test_trusted_fills_defaults() -> None:
    trusted = OrderIntent.trusted(**INTENT_VALUES)
    assert trusted.order_type is OrderType.MARKET
    assert trusted.tif is TimeInForce.DAY
    assert trusted.outside_rth is False
    assert trusted.limit_price is None
    assert trusted.reference_price is None


def test_trusted_order_with_nested_intent_equals_validated() -> None:
    intent = OrderIntent(**INTENT_VALUES)
    trusted = Order.trusted(intent=intent, updated_at=T0, status=S.ACCEPTED, seq=2)
    validated = Order(intent=intent, updated_at=T0, status=S.ACCEPTED, seq=2)
    assert trusted == validated
    assert trusted.model_dump() == validated.model_dump()
    assert trusted.model_dump_json() == validated.model_dump_json()


def test_trusted_event_equals_validated() -> None:
    values: dict[str, Any] = {
        "client_order_id": "tp-1",
        "decision_id": "d-1",
        "seq": 1,
        "status": S.SUBMITTED,
        "previous": S.INITIALIZED,
        "ts": T0,
    }
    assert OrderEvent.trusted(**values) == OrderEvent(**values)
    assert OrderEvent.trusted(**values).model_dump() == OrderEvent(**values).model_dump()


class _WithFactories(Record):
    name: str
    tags: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=lambda: {"seen": 0})
    notes: dict[str, str] = Field(default_factory=dict)
    level: int = 3


def test_trusted_default_factories_are_called_per_instance() -> None:
    a = _WithFactories.trusted(name="a")
    b = _WithFactories.trusted(name="b")
    assert a == _WithFactories(name="a")
    assert a.model_dump() == {
        "name": "a",
        "tags": [],
        "counts": {"seen": 0},
        "notes": {},
        "level": 3,
    }
    assert a.tags is not b.tags
    assert a.counts is not b.counts
    given = _WithFactories.trusted(name="c", tags=["x"])
    assert given.tags == ["x"]


def test_trusted_mutable_defaults_are_not_shared() -> None:
    a = _WithFactories.trusted(name="a")
    b = _WithFactories.trusted(name="b")
    assert a.notes is not b.notes
    a.notes["leak"] = "yes"
    assert b.notes == {}
    assert _WithFactories.trusted(name="c").notes == {}
    assert _WithFactories(name="d").notes == {}


def test_trusted_risk_verdict_figures_are_fresh() -> None:
    values: dict[str, Any] = {
        "decision_id": "d",
        "client_order_id": "c",
        "filter": "f",
        "seq": 1,
        "outcome": Outcome.PASS,
        "reason": "",
        "quantity_before": Decimal(1),
        "quantity_after": Decimal(1),
        "ts": T0,
    }
    first = RiskVerdict.trusted(**values)
    first.figures["x"] = 1
    assert RiskVerdict.trusted(**values).figures == {}
    assert RiskVerdict(**values).figures == {}
    assert RiskVerdict.trusted(**values) == RiskVerdict(**values)


def test_client_order_id_parts_cannot_run_into_each_other() -> None:
    assert client_order_id("a|b", "c") != client_order_id("a", "b|c")


@pytest.mark.parametrize(
    ("order_type", "prices", "problem"),
    [
        ("limit", {}, "limit_price is required"),
        ("market", {"limit_price": "10"}, "limit_price makes no sense for a market order"),
        ("stop", {}, "stop_price is required"),
        ("stop_limit", {"stop_price": "10"}, "limit_price is required"),
        ("limit", {"limit_price": "0"}, "greater than 0"),
        ("stop", {"stop_price": "-1"}, "greater than 0"),
    ],
)
def test_intent_prices_must_fit_the_order_type(
    order_type: str, prices: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        OrderIntent(
            client_order_id="tp-x",
            decision_id="d",
            source="s",
            symbol="aapl",
            side="buy",
            quantity=1,
            order_type=order_type,
            created_at=T0,
            **prices,
        )


def test_intent_symbol_is_normalised() -> None:
    intent = OrderIntent(
        client_order_id="tp-x",
        decision_id="d",
        source="s",
        symbol=" aapl ",
        side="buy",
        quantity=1,
        created_at=T0,
    )
    assert intent.symbol == "AAPL"


def test_maker_builds_what_the_validating_constructor_builds() -> None:
    make = OrderIntent.maker(*INTENT_VALUES)
    made = make(*INTENT_VALUES.values())
    validated = OrderIntent(**INTENT_VALUES)
    assert made == validated
    assert list(made.model_dump()) == list(OrderIntent.model_fields)
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set
    assert made.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)


def test_maker_defaults_are_per_instance_and_fields_sets_are_not_shared() -> None:
    make = _WithFactories.maker("name")
    a, b = make("a"), make("b")
    assert a == _WithFactories(name="a")
    assert a.tags is not b.tags
    assert a.counts is not b.counts
    assert a.notes is not b.notes
    assert a.model_fields_set == {"name"}
    assert a.model_fields_set is not b.model_fields_set
    copied = a.model_copy(update={"level": 4})
    assert copied.model_fields_set == {"name", "level"}
    assert b.model_fields_set == {"name"}


class _MostlyDefaults(Record):
    tags: list[str] = Field(default_factory=list)
    a: int = 1
    name: str
    b: str = "b"
    c: Decimal | None = None
    d: bool = False
    e: float = 2.5
    level: int = 3


@pytest.mark.parametrize("names", [("name",), ("name", "level"), ("level", "name", "a")])
def test_maker_of_a_record_mostly_at_its_defaults_builds_what_validation_builds(
    names: tuple[str, ...],
) -> None:
    """Such a record's fields start from a copy of its defaults (Record.maker): each
    record its own, in declaration order, with fresh factories."""
    values = {"name": "x", "level": 7, "a": 5}
    make = _MostlyDefaults.maker(*names)
    one, two = make(*(values[n] for n in names)), make(*(values[n] for n in names))
    validated = _MostlyDefaults(**{n: values[n] for n in names})
    assert one == validated
    assert list(one.__dict__) == list(_MostlyDefaults.model_fields)
    assert one.model_dump_json() == validated.model_dump_json()
    assert one.model_fields_set == validated.model_fields_set
    assert one.__dict__ is not two.__dict__
    assert one.tags is not two.tags
    one.__dict__["b"] = "changed"  # as Order.transition changes its own fields
    assert make(*(values[n] for n in names)).b == "b"


def test_maker_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="nickname"):
        _WithFactories.maker("name", "nickname")
    with pytest.raises(ValueError, match="named twice"):
        _WithFactories.maker("name", "name")
    with pytest.raises(ValueError, match="required field name"):
        _WithFactories.maker("level")


def test_events_and_verdicts_made_on_the_hot_path_equal_validated_ones() -> None:
    order = Order.from_intent(OrderIntent(**INTENT_VALUES))
    assert order == Order(intent=OrderIntent(**INTENT_VALUES), updated_at=T0)
    event = order.transition(S.SUBMITTED, T0)
    assert event == OrderEvent(
        client_order_id="tp-1",
        decision_id="d-1",
        seq=1,
        status=S.SUBMITTED,
        previous=S.INITIALIZED,
        ts=T0,
        reason="",
        broker_order_id=None,
    )
    verdict = rule_verdict("d-1", "tp-1", "expired", Outcome.DENY, "too late", T0)
    validated = RiskVerdict(
        decision_id="d-1",
        client_order_id="tp-1",
        filter="expired",
        seq=0,
        outcome=Outcome.DENY,
        reason="too late",
        quantity_before=Decimal(0),
        quantity_after=Decimal(0),
        figures={},
        ts=T0,
    )
    assert verdict == validated
    assert verdict.model_dump_json() == validated.model_dump_json()


class _WithPrivate(Record):
    name: str
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)


class _WithPostInit(Record):
    name: str

    def model_post_init(self, context: Any) -> None:
        pass


@pytest.mark.parametrize("model", [_WithPrivate, _WithPostInit])
def test_fast_constructors_refuse_records_they_would_build_wrong(model: type[Record]) -> None:
    with pytest.raises(TypeError, match="private attributes or model_post_init"):
        model.maker("name")
    with pytest.raises(TypeError, match="private attributes or model_post_init"):
        model.trusted(name="x")
    assert model(name="x").name == "x"
