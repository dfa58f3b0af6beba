"""Sizing: from a decision, a price, a position and equity to a side and a quantity."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tradepipe.decisions import Decision, SizingHints
from tradepipe.errors import SizingError
from tradepipe.instruments import Option
from tradepipe.orders import Side
from tradepipe.settings import SizingSettings
from tradepipe.sizing import Sizer

D = Decimal


def sizer(**values: Any) -> Sizer:
    return Sizer(SizingSettings(**values))


def decide(action: str = "buy", **values: Any) -> Decision:
    return Decision(symbol="AAPL", action=action, confidence=80, **values)


# -- methods -------------------------------------------------------------------------


def test_fixed_quantity() -> None:
    assert sizer(method="fixed_quantity", quantity=D(25)).size(decide(), D(50), D(0), D(0)) == (
        Side.BUY,
        D(25),
    )


def test_fixed_quantity_is_capped() -> None:
    # 100 x 150 = 15000 > 10000; 10000 / 150 = 66.67 -> 66
    assert sizer(method="fixed_quantity").size(decide(), D(150), D(0), D(0)) == (Side.BUY, D(66))


def test_fixed_notional_from_settings() -> None:
    # 2000 / 30 = 66.67 -> 66
    s = sizer(method="fixed_notional", notional=D(2000))
    assert s.size(decide(), D(30), D(0), D(0)) == (Side.BUY, D(66))


def test_fixed_notional_from_the_decision_hint() -> None:
    # 1500 / 30 = 50
    s = sizer(method="fixed_notional", notional=D(2000))
    hinted = decide(sizing=SizingHints(notional=D(1500)))
    assert s.size(hinted, D(30), D(0), D(0)) == (Side.BUY, D(50))


def test_risk_from_the_stop_distance_hint() -> None:
    # 100000 x 0.01 / 2.5 = 400; 400 x 20 = 8000 fits
    hinted = decide(sizing=SizingHints(stop_distance=D("2.5")))
    assert sizer().size(hinted, D(20), D(0), D(100_000)) == (Side.BUY, D(400))


def test_risk_from_stop_loss() -> None:
    # |20 - 17.5| = 2.5; 100000 x 0.01 / 2.5 = 400
    assert sizer().size(decide(stop_loss=D("17.5")), D(20), D(0), D(100_000)) == (Side.BUY, D(400))


def test_risk_short_with_stop_above() -> None:
    # |20 - 22| = 2; 100000 x 0.01 / 2 = 500; 500 x 20 = 10000 = the cap, still fits
    assert sizer().size(decide("sell", stop_loss=D(22)), D(20), D(0), D(100_000)) == (
        Side.SELL,
        D(500),
    )


def test_risk_fraction_hint_overrides_settings() -> None:
    # 100000 x 0.005 / 2.5 = 200
    hinted = decide(sizing=SizingHints(risk_fraction=D("0.005"), stop_distance=D("2.5")))
    assert sizer().size(hinted, D(20), D(0), D(100_000)) == (Side.BUY, D(200))


def test_stop_distance_hint_wins_over_stop_loss() -> None:
    # 100000 x 0.01 / 4 = 250 (the stop_loss would give 1000 / 2.5 = 400)
    hinted = decide(sizing=SizingHints(stop_distance=D(4)), stop_loss=D("17.5"))
    assert sizer().size(hinted, D(20), D(0), D(100_000)) == (Side.BUY, D(250))


def test_equity_may_be_a_function_called_only_for_risk_sizing() -> None:
    calls: list[int] = []

    def equity() -> Decimal:
        calls.append(1)
        return D(100_000)

    assert sizer(method="fixed_quantity", quantity=D(5)).size(decide(), D(20), D(0), equity) == (
        Side.BUY,
        D(5),
    )
    assert calls == []
    # 100000 x 0.01 / 2.5 = 400
    assert sizer().size(decide(stop_loss=D("17.5")), D(20), D(0), equity) == (Side.BUY, D(400))
    assert calls == [1]


def test_risk_rounds_down() -> None:
    # 50000 x 0.01 / 3 = 166.67 -> 166
    assert sizer().size(decide(stop_loss=D(47)), D(50), D(0), D(50_000)) == (Side.BUY, D(166))


def test_risk_without_a_stop_raises() -> None:
    with pytest.raises(SizingError, match="risk sizing needs a stop: give sizing.stop_distance"):
        sizer().size(decide(), D(20), D(0), D(100_000))


def test_risk_with_the_stop_at_the_price_raises() -> None:
    with pytest.raises(SizingError, match="risk sizing needs a stop"):
        sizer().size(decide(stop_loss=D(20)), D(20), D(0), D(100_000))


@pytest.mark.parametrize("price", [None, D(0), D(-1)])
def test_missing_price_raises(price: Decimal | None) -> None:
    with pytest.raises(SizingError, match=r"^no price known for AAPL; cannot size$"):
        sizer(method="fixed_quantity").size(decide(), price, D(0), D(100_000))


# -- the cap -------------------------------------------------------------------------


def test_cap_counts_an_existing_long_when_buying() -> None:
    # held 300 x 20 = 6000; room (10000 - 6000) / 20 = 200 < 400 from risk
    assert sizer().size(decide(stop_loss=D("17.5")), D(20), D(300), D(100_000)) == (
        Side.BUY,
        D(200),
    )


def test_cap_counts_an_existing_short_when_selling() -> None:
    # held |-300| x 20 = 6000; room 200
    assert sizer().size(decide("sell", stop_loss=D("22.5")), D(20), D(-300), D(100_000)) == (
        Side.SELL,
        D(200),
    )


def test_cap_ignores_an_opposite_position() -> None:
    # buying while short 300: only the new exposure is capped; risk gives 400
    assert sizer().size(decide(stop_loss=D("17.5")), D(20), D(-300), D(100_000)) == (
        Side.BUY,
        D(400),
    )


def test_no_room_left_raises() -> None:
    # held 500 x 20 = 10000 = the cap
    expected = "sized to zero: AAPL at 20 with max_position_value 10000"
    with pytest.raises(SizingError, match=expected):
        sizer(method="fixed_quantity").size(decide(), D(20), D(500), D(0))


def test_less_than_one_unit_of_room_raises_unless_fractional() -> None:
    # room 10000 / 12000 = 0.8333
    with pytest.raises(SizingError, match="sized to zero"):
        sizer(method="fixed_quantity").size(decide(), D(12000), D(0), D(0))
    assert sizer(method="fixed_quantity", fractional=True).size(decide(), D(12000), D(0), D(0)) == (
        Side.BUY,
        D("0.8333"),
    )


def test_fractional_never_makes_part_of_an_option_contract() -> None:
    call = Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=D(200), right="C")
    frac = sizer(method="fixed_notional", notional=D(1000), fractional=True)
    decision = Decision(symbol=call.ticker, instrument=call, action="buy", confidence=80)
    assert frac.size(decision, D(300), D(0), D(0)) == (Side.BUY, D(3))


def test_fractional_rounds_down_to_four_places() -> None:
    # 1000 / 300 = 3.33333...
    whole = sizer(method="fixed_notional", notional=D(1000))
    frac = sizer(method="fixed_notional", notional=D(1000), fractional=True)
    assert whole.size(decide(), D(300), D(0), D(0)) == (Side.BUY, D(3))
    _, quantity = frac.size(decide(), D(300), D(0), D(0))
    assert quantity == D("3.3333")
    assert quantity.as_tuple().exponent == -4


# -- explicit quantities, closing, selling ------------------------------------------


def test_explicit_quantity_is_used_as_is() -> None:
    # 7 x 10000 is far over the cap; the risk filters judge it, not sizing
    assert sizer().size(decide(quantity=D(7)), D(10_000), D(0), D(0)) == (Side.BUY, D(7))
    assert sizer().size(decide("sell", quantity=D("0.5")), None, D(3), D(0)) == (
        Side.SELL,
        D("0.5"),
    )


def test_close_a_long() -> None:
    assert sizer().size(decide("close"), None, D(25), D(0)) == (Side.SELL, D(25))


def test_close_a_short() -> None:
    assert sizer().size(decide("close"), None, D("-2.5"), D(0)) == (Side.BUY, D("2.5"))


def test_close_with_a_quantity_closes_part_and_never_flips() -> None:
    assert sizer().size(decide("close", quantity=D(10)), None, D(25), D(0)) == (Side.SELL, D(10))
    assert sizer().size(decide("close", quantity=D(40)), None, D(25), D(0)) == (Side.SELL, D(25))
    assert sizer().size(decide("close", quantity=D(9)), None, D(-4), D(0)) == (Side.BUY, D(4))


def test_close_when_flat_raises() -> None:
    with pytest.raises(SizingError, match="nothing to close: no position in AAPL"):
        sizer().size(decide("close"), D(10), D(0), D(100_000))


def test_hold_has_nothing_to_size() -> None:
    with pytest.raises(SizingError, match="hold"):
        sizer().size(decide("hold"), D(10), D(5), D(100_000))


def test_sell_without_quantity_while_long_sells_the_holding() -> None:
    # no price and no stop needed: the holding is the answer
    assert sizer().size(decide("sell"), None, D(40), D(0)) == (Side.SELL, D(40))


def test_sell_while_flat_is_sized_like_a_new_short() -> None:
    s = sizer(method="fixed_notional", notional=D(1000))
    assert s.size(decide("sell"), D(40), D(0), D(0)) == (Side.SELL, D(25))


# -- property ------------------------------------------------------------------------

prices = st.decimals(min_value=D("0.01"), max_value=D(5000), places=2)
money = st.decimals(min_value=D(100), max_value=D(10_000_000), places=2)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["fixed_quantity", "fixed_notional", "risk"]),
    side=st.sampled_from(["buy", "sell"]),
    price=prices,
    equity=money,
    max_value=money,
    notional=money,
    fixed=st.decimals(min_value=D("0.01"), max_value=D(10_000), places=2),
    fraction=st.decimals(min_value=D("0.0001"), max_value=D("0.1"), places=4),
    distance=st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
    position=st.integers(min_value=-2000, max_value=2000).map(D),
    fractional=st.booleans(),
)
def test_sized_position_never_exceeds_the_cap(
    method: str,
    side: str,
    price: Decimal,
    equity: Decimal,
    max_value: Decimal,
    notional: Decimal,
    fixed: Decimal,
    fraction: Decimal,
    distance: Decimal,
    position: Decimal,
    fractional: bool,
) -> None:
    # Selling while long sells the holding; that is not a sized position.
    assume(not (side == "sell" and position > 0))
    s = sizer(
        method=method,
        quantity=fixed,
        notional=notional,
        risk_fraction=fraction,
        max_position_value=max_value,
        fractional=fractional,
    )
    decision = decide(side, sizing=SizingHints(stop_distance=distance))
    try:
        got_side, quantity = s.size(decision, price, position, equity)
    except SizingError as exc:
        assert str(exc).startswith("sized to zero")
        step = D("0.0001") if fractional else D(1)
        held = abs(position) * price if (position > 0) == (side == "buy") else D(0)
        by_method = {
            "fixed_quantity": fixed,
            "fixed_notional": notional / price,
            "risk": equity * fraction / distance,
        }[method]
        # only when the cap or the method leaves less than one step
        assert by_method < step or (max_value - held) / price < step
        return
    assert got_side is Side(side)
    assert quantity > 0
    if fractional:
        assert quantity == quantity.quantize(D("0.0001"))
    else:
        assert quantity == quantity.to_integral_value()
    after = position + (quantity if side == "buy" else -quantity)
    if (after > 0) == (side == "buy") and after != 0:
        assert abs(after) * price <= max_value
