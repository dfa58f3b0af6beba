"""The order rules: prices, quantities, expiries and changes, in one place."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from typing import Any

import pytest
from tradepipe import Combo, Decision, InvalidOrderError, Leg, Option, OrderIntent, OrderStatus
from tradepipe.options.risk import OptionRisk
from tradepipe.order_rules import Change, OrderRules, contract_problem, months_after

# 23:30 in New York on 2 March: already 3 March in UTC. The run's date is New York's.
NOW = dt.datetime(2026, 3, 3, 4, 30, tzinfo=dt.UTC)
WHOLE, FRACTIONAL = OrderRules(), OrderRules(fractional=True)


def option(expiry: dt.date, strike: int = 100) -> Option:
    return Option(underlying="AAPL", expiry=expiry, strike=D(strike), right="C")


def intent(**kw: Any) -> OrderIntent:
    values: dict[str, Any] = dict(
        client_order_id="tp-1",
        decision_id="d",
        source="s",
        symbol="AAPL",
        side="buy",
        quantity=D(10),
        order_type="limit",
        limit_price=D(100),
        created_at=NOW,
    )
    return OrderIntent(**{**values, **kw})


@pytest.mark.parametrize(
    ("rules", "quantity", "kind", "problem"),
    [
        (WHOLE, "3", "stock", ""),
        (WHOLE, "3.00", "stock", ""),
        (WHOLE, "0.0000001", "stock", "quantity 0.0000001 is not a whole number of shares"),
        (WHOLE, "2.5", None, "fractional shares need [sizing] fractional = true"),
        (FRACTIONAL, "2.5", "stock", ""),
        (FRACTIONAL, "0.0001", "stock", ""),
        (FRACTIONAL, "0.0000001", "stock", "fractional shares trade in steps of 0.0001"),
        (FRACTIONAL, "1.5", "option", "quantity 1.5 is not a whole number of option contracts"),
        (FRACTIONAL, "1.5", "combo", "quantity 1.5 is not a whole number of combos"),
        (WHOLE, "0", "stock", "quantity must be positive, got 0"),
        (WHOLE, "-2", "option", "quantity must be positive, got -2"),
        (WHOLE, "NaN", "stock", "quantity must be positive"),
    ],
)
def test_quantities(rules: OrderRules, quantity: str, kind: str | None, problem: str) -> None:
    found = rules.quantity_problem(D(quantity), kind)
    assert (problem in found) if problem else found == ""


@pytest.mark.parametrize(
    ("expiry", "problem"),
    [
        (dt.date(2026, 3, 2), ""),  # expires today, New York's today: still trades
        (dt.date(2026, 3, 1), "expired on 2026-03-01 (the run's date is 2026-03-02)"),
        (dt.date(2029, 6, 2), ""),  # 39 months on, to the day
        (dt.date(2029, 6, 3), "more than 39 months after 2026-03-02"),
        (dt.date(9999, 12, 31), "more than 39 months after 2026-03-02"),
    ],
)
def test_expiries_are_judged_by_the_given_clock(expiry: dt.date, problem: str) -> None:
    found = contract_problem(option(expiry), NOW)
    assert (problem in found) if problem else found == ""


def test_every_option_leg_of_a_combo_is_judged() -> None:
    combo = Combo(
        legs=(
            Leg(instrument=option(dt.date(2026, 6, 19)), ratio=1),
            Leg(instrument=option(dt.date(2020, 6, 19), 110), ratio=-1),
        )
    )
    assert contract_problem(combo, NOW) == (
        "option AAPL 2020-06-19 110 C expired on 2020-06-19 (the run's date is 2026-03-02)"
    )
    assert WHOLE.check(intent(symbol=combo.ticker, instrument=combo), NOW).startswith("option")


def test_a_decision_is_judged_as_far_as_it_is_known() -> None:
    call = option(dt.date(2020, 1, 17))
    sized_later = Decision(symbol=call.ticker, instrument=call, action="buy", confidence=90)
    assert "expired on 2020-01-17" in WHOLE.check_decision(sized_later, NOW)
    shares = Decision(symbol="AAPL", action="buy", confidence=90, quantity=D("0.5"))
    with pytest.raises(InvalidOrderError, match="0.5 is not a whole number of shares"):
        WHOLE.require_decision(shares, NOW)
    FRACTIONAL.require_decision(shares, NOW)


def test_months_after_keeps_to_the_calendar() -> None:
    assert months_after(dt.date(2026, 11, 30), 3) == dt.date(2027, 2, 28)
    assert months_after(dt.date(2026, 3, 2), 39) == dt.date(2029, 6, 2)
    assert months_after(dt.date(9998, 6, 1), 39) == dt.date.max


@pytest.mark.parametrize(
    ("order", "change", "status", "filled", "problem"),
    [
        ({}, Change(limit_price=D(101)), "accepted", "0", ""),
        ({}, Change(quantity=D(5)), "partially_filled", "4", ""),
        ({"order_type": "market", "limit_price": None}, Change(limit_price=D(1)), "accepted",
         "0", "a market order has no limit price to change"),
        ({}, Change(stop_price=D(1)), "accepted", "0", "a limit order has no stop price"),
        ({"order_type": "stop", "limit_price": None, "stop_price": D(90)},
         Change(limit_price=D(1)), "accepted", "0", "a stop order has no limit price"),
        ({}, Change(), "accepted", "0", "nothing to change"),
        ({}, Change(limit_price=D(0)), "accepted", "0", "limit_price must be positive, got 0"),
        ({}, Change(quantity=D(4)), "partially_filled", "4",
         "quantity 4 is not more than the 4 already filled"),
        ({}, Change(quantity=D("4.5")), "accepted", "0", "not a whole number of shares"),
        ({}, Change(limit_price=D(1)), "filled", "10", "the order is filled, not working"),
        ({}, Change(limit_price=D(1)), "pending_cancel", "0", "the order is being canceled"),
    ],
)  # fmt: skip
def test_a_change_is_judged_as_a_new_order_would_be(
    order: dict[str, Any], change: Change, status: str, filled: str, problem: str
) -> None:
    before = intent(**order)
    if problem:
        with pytest.raises(InvalidOrderError, match=f"cannot modify tp-1: .*{problem}"):
            WHOLE.modified(before, change, status=OrderStatus(status), filled=D(filled))
        return
    after = WHOLE.modified(before, change, status=OrderStatus(status), filled=D(filled))
    assert after.model_dump() == {**before.model_dump(), **change.fields()}


def test_a_changed_quantity_scales_the_options_risk() -> None:
    risk = OptionRisk(
        strategy="long_call",
        side="buy",
        quantity=D(2),
        multiplier=D(100),
        net_premium=D(3),
        max_loss=D(600),
        max_gain=None,
        unlimited_gain=True,
        breakevens=(D(103),),
    )
    call = option(dt.date(2026, 6, 19))
    before = intent(symbol=call.ticker, instrument=call, quantity=D(2), option_risk=risk)
    after = WHOLE.modified(before, Change(quantity=D(1)), status=OrderStatus.ACCEPTED, filled=D(0))
    assert after.option_risk is not None
    assert (after.option_risk.quantity, after.option_risk.max_loss) == (D(1), D(300))
