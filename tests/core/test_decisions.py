"""Decisions, instruments, bar checks and the SMA indicator."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tradepipe.decisions import Action, Decision, OrderType, SizingHints
from tradepipe.indicators import SMA
from tradepipe.instruments import Combo, Leg, Option, Stock
from tradepipe.market import check_bar
from tradepipe.testing import T0, bar


def make(**overrides: Any) -> Decision:
    values: dict[str, Any] = {"symbol": "AAPL", "action": "buy", "confidence": 80}
    values.update(overrides)
    return Decision(**values)


def error_of(**overrides: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as exc:
        make(**overrides)
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [-0.1, 100.5, 1000])
def test_confidence_outside_0_100(confidence: float) -> None:
    assert error_of(confidence=confidence)["loc"] == ("confidence",)


@pytest.mark.parametrize("confidence", [0, 100, 55.5])
def test_confidence_bounds_are_inclusive(confidence: float) -> None:
    assert make(confidence=confidence).confidence == confidence


@pytest.mark.parametrize("quantity", ["0", "-1", "-0.5"])
def test_quantity_must_be_positive(quantity: str) -> None:
    error = error_of(quantity=Decimal(quantity))
    assert error["loc"] == ("quantity",)
    assert error["type"] == "greater_than"


def test_quantity_with_too_many_decimals() -> None:
    assert error_of(quantity=Decimal("0.000000001"))["loc"] == ("quantity",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"order_type": "limit"}, "limit_price is required for a limit order"),
        (
            {"order_type": "stop_limit", "stop_price": Decimal(9)},
            "limit_price is required for a stop_limit order",
        ),
        ({"limit_price": Decimal(10)}, "limit_price makes no sense for a market order"),
        (
            {"order_type": "stop", "stop_price": Decimal(9), "limit_price": Decimal(10)},
            "limit_price makes no sense for a stop order",
        ),
        ({"order_type": "stop"}, "stop_price is required for a stop order"),
        (
            {"order_type": "stop_limit", "limit_price": Decimal(10)},
            "stop_price is required for a stop_limit order",
        ),
        ({"stop_price": Decimal(9)}, "stop_price makes no sense for a market order"),
        (
            {"order_type": "limit", "limit_price": Decimal(10), "stop_price": Decimal(9)},
            "stop_price makes no sense for a limit order",
        ),
    ],
)
def test_prices_must_match_the_order_type(overrides: dict[str, Any], message: str) -> None:
    error = error_of(**overrides)
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("overrides", "order_type"),
    [
        ({}, OrderType.MARKET),
        ({"order_type": "limit", "limit_price": Decimal("10.5")}, OrderType.LIMIT),
        ({"order_type": "stop", "stop_price": Decimal(9)}, OrderType.STOP),
        (
            {"order_type": "stop_limit", "stop_price": Decimal(9), "limit_price": Decimal("8.9")},
            OrderType.STOP_LIMIT,
        ),
    ],
)
def test_consistent_order_types_validate(overrides: dict[str, Any], order_type: OrderType) -> None:
    assert make(**overrides).order_type is order_type


@pytest.mark.parametrize("expires_at", [T0 - dt.timedelta(seconds=1), T0])
def test_expires_at_must_follow_created_at(expires_at: dt.datetime) -> None:
    error = error_of(created_at=T0, expires_at=expires_at)
    assert "expires_at must be after created_at" in error["msg"]


def test_expires_after_created_is_fine() -> None:
    decision = make(created_at=T0, expires_at=T0 + dt.timedelta(minutes=5))
    assert decision.expires_at == T0 + dt.timedelta(minutes=5)


@pytest.mark.parametrize("field", ["created_at", "expires_at"])
def test_naive_datetimes_are_refused(field: str) -> None:
    error = error_of(**{field: dt.datetime(2026, 3, 2, 14, 30)})
    assert error["loc"] == (field,)
    assert error["type"] == "timezone_aware"


@pytest.mark.parametrize("symbol", ["", "   ", "-AAPL", ".X", "AA$PL", "A" * 22, "ÄPFEL"])
def test_bad_symbols(symbol: str) -> None:
    assert error_of(symbol=symbol)["loc"] == ("symbol",)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("aapl", "AAPL"),
        ("  msft ", "MSFT"),
        ("brk.b", "BRK.B"),
        ("EUR/usd", "EUR/USD"),
        ("A" * 21, "A" * 21),
    ],
)
def test_symbols_are_upper_cased(raw: str, clean: str) -> None:
    assert make(symbol=raw).symbol == clean


def test_unknown_fields_are_refused() -> None:
    assert error_of(colour="red")["loc"] == ("colour",)


@pytest.mark.parametrize("fraction", ["0", "1.01"])
def test_sizing_hint_risk_fraction_range(fraction: str) -> None:
    with pytest.raises(ValidationError) as exc:
        SizingHints(risk_fraction=Decimal(fraction))
    assert exc.value.errors()[0]["loc"] == ("risk_fraction",)


def test_decision_from_json() -> None:
    decision = Decision.model_validate_json(
        '{"symbol": "nvda", "action": "sell", "confidence": 91, "quantity": "2.5",'
        ' "created_at": "2026-03-02T14:30:00Z", "source": "llm",'
        ' "instrument": {"kind": "stock", "symbol": "nvda"}}'
    )
    assert decision.symbol == "NVDA"
    assert decision.action is Action.SELL
    assert decision.quantity == Decimal("2.5")
    assert decision.instrument == Stock(symbol="NVDA")


# -- ids -----------------------------------------------------------------------------


BASE: dict[str, Any] = {"source": "sma", "created_at": T0, "symbol": "AAPL", "action": "buy"}


def test_id_is_derived_and_stable() -> None:
    first = make(**BASE)
    second = make(**BASE, confidence=12, rationale="different words, same decision")
    assert re.fullmatch(r"d-[0-9a-f]{20}", first.id)
    assert first.id == second.id


@pytest.mark.parametrize(
    "change",
    [
        {"source": "other"},
        {"symbol": "MSFT"},
        {"created_at": T0 + dt.timedelta(microseconds=1)},
        {"action": "sell"},
        {"quantity": Decimal(3)},
        {"order_type": "limit", "limit_price": Decimal(10)},
    ],
)
def test_id_differs_when_the_decision_differs(change: dict[str, Any]) -> None:
    assert make(**{**BASE, **change}).id != make(**BASE).id


def test_id_needs_source_and_time() -> None:
    assert make(source="sma").id == ""
    assert make(created_at=T0).id == ""


def test_explicit_id_is_kept() -> None:
    assert make(**BASE, id="mine-1").id == "mine-1"


def test_with_origin_fills_source_time_and_id() -> None:
    bare = make(quantity=Decimal(5))
    filled = bare.with_origin("sma", T0)
    assert filled.source == "sma"
    assert filled.created_at == T0
    assert filled.id == make(**BASE, quantity=Decimal(5)).id
    assert filled.id.startswith("d-")
    assert bare.id == ""  # the original is untouched


def test_with_origin_keeps_what_is_already_there() -> None:
    original = make(source="llm", created_at=T0, id="given")
    again = original.with_origin("sma", T0 + dt.timedelta(days=1))
    assert (again.source, again.created_at, again.id) == ("llm", T0, "given")


def test_with_origin_keeps_nested_models() -> None:
    option = Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=Decimal(200), right="C")
    bare = make(instrument=option, sizing=SizingHints(notional=Decimal(500)))
    filled = bare.with_origin("sma", T0)
    assert filled.instrument == option
    assert filled.sizing == SizingHints(notional=Decimal(500))
    assert filled.id == make(**BASE).id


# -- instruments ---------------------------------------------------------------------


def test_stock() -> None:
    stock = Stock(symbol="spy")
    assert (stock.symbol, stock.multiplier, stock.currency, stock.exchange) == (
        "SPY",
        Decimal(1),
        "USD",
        "SMART",
    )
    assert stock.kind == "stock"


def test_option_symbol_and_multiplier() -> None:
    option = Option(
        underlying="aapl", expiry=dt.date(2026, 12, 18), strike=Decimal("200.50"), right="P"
    )
    assert option.multiplier == Decimal(100)
    assert option.symbol == "AAPL 2026-12-18 200.5 P"
    whole = Option(
        underlying="AAPL", expiry=dt.date(2026, 1, 16), strike=Decimal("2E+2"), right="C"
    )
    assert whole.symbol == "AAPL 2026-01-16 200 C"


@pytest.mark.parametrize("strike", ["0", "-5"])
def test_option_strike_must_be_positive(strike: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=Decimal(strike), right="C")
    assert exc.value.errors()[0]["loc"] == ("strike",)


def test_option_right_is_c_or_p() -> None:
    with pytest.raises(ValidationError) as exc:
        Option(underlying="AAPL", expiry=dt.date(2026, 12, 18), strike=Decimal(1), right="X")
    assert exc.value.errors()[0]["loc"] == ("right",)


def _call(strike: int) -> Option:
    return Option(underlying="SPY", expiry=dt.date(2026, 6, 19), strike=Decimal(strike), right="C")


def test_combo() -> None:
    combo = Combo(legs=(Leg(instrument=_call(500), ratio=1), Leg(instrument=_call(510), ratio=-1)))
    assert combo.symbol == "SPY"
    assert [leg.ratio for leg in combo.legs] == [1, -1]
    covered = Combo(
        legs=(Leg(instrument=Stock(symbol="spy"), ratio=100), Leg(instrument=_call(520), ratio=-1))
    )
    assert covered.symbol == "SPY"
    pair = Combo(
        legs=(
            Leg(instrument=Stock(symbol="KO"), ratio=1),
            Leg(instrument=Stock(symbol="PEP"), ratio=-1),
        )
    )
    assert pair.symbol == "KO+PEP"


def test_combo_needs_two_legs() -> None:
    with pytest.raises(ValidationError) as exc:
        Combo(legs=(Leg(instrument=_call(500), ratio=1),))
    assert exc.value.errors()[0]["loc"] == ("legs",)


def test_leg_ratio_cannot_be_zero() -> None:
    with pytest.raises(ValidationError) as exc:
        Leg(instrument=_call(500), ratio=0)
    assert exc.value.errors()[0]["loc"] == ("ratio",)
    assert Leg(instrument=_call(500), ratio=-2).ratio == -2


def test_instrument_is_chosen_by_kind() -> None:
    decision = make(
        instrument={
            "kind": "combo",
            "legs": [
                {
                    "instrument": {
                        "kind": "option",
                        "underlying": "spy",
                        "expiry": "2026-06-19",
                        "strike": "500",
                        "right": "C",
                    },
                    "ratio": 1,
                },
                {
                    "instrument": {
                        "kind": "option",
                        "underlying": "spy",
                        "expiry": "2026-06-19",
                        "strike": "510",
                        "right": "C",
                    },
                    "ratio": -1,
                },
            ],
        }
    )
    assert isinstance(decision.instrument, Combo)
    assert decision.instrument.legs[1].instrument == _call(510)
    with pytest.raises(ValidationError):
        make(instrument={"kind": "future", "symbol": "ES"})


# -- bars ----------------------------------------------------------------------------


def test_a_good_bar_passes() -> None:
    assert check_bar(bar(open=100, high=105, low=95, close=101, volume=0)) is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"ts": dt.datetime(2026, 3, 2)}, "timestamp has no timezone"),
        ({"open": 0.0}, "prices must be finite and positive"),
        ({"low": -1.0}, "prices must be finite and positive"),
        ({"close": math.nan}, "prices must be finite and positive"),
        ({"high": math.inf}, "prices must be finite and positive"),
        ({"high": 100.5, "close": 101.0}, "high/low do not bracket open and close"),
        ({"low": 100.5}, "high/low do not bracket open and close"),
        (
            {"high": 99.0, "low": 99.5, "open": 99.2, "close": 99.2},
            "high/low do not bracket open and close",
        ),
        ({"volume": -1.0}, "volume must be zero or more"),
        ({"volume": math.nan}, "volume must be zero or more"),
        ({"volume": math.inf}, "volume must be zero or more"),
    ],
)
def test_bad_bars(fields: dict[str, Any], problem: str) -> None:
    values: dict[str, Any] = {"open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0}
    values.update(fields)
    assert check_bar(bar(**values)) == problem


# -- SMA -----------------------------------------------------------------------------


def test_sma_none_until_full() -> None:
    sma = SMA(3)
    assert sma.update(1.0) is None
    assert sma.update(2.0) is None
    assert sma.update(6.0) == 3.0
    assert sma.update(10.0) == 6.0
    assert sma.value == 6.0


@pytest.mark.parametrize("period", [0, -3])
def test_sma_period_must_be_positive(period: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SMA(period)


@settings(max_examples=200, deadline=None)
@given(
    period=st.integers(min_value=1, max_value=12),
    values=st.lists(
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False),
        max_size=120,
    ),
)
def test_sma_matches_a_naive_mean(period: int, values: list[float]) -> None:
    sma = SMA(period)
    for i, x in enumerate(values):
        got = sma.update(x)
        window = values[max(0, i + 1 - period) : i + 1]
        if len(window) < period:
            assert got is None
        else:
            assert got is not None
            assert math.isclose(got, math.fsum(window) / period, rel_tol=1e-9, abs_tol=1e-9)


def test_sma_running_sum_is_rebuilt_from_the_window() -> None:
    # 1e16 + 1.0 rounds back to 1e16, so once 1e16 leaves the window the running
    # sum has lost the ones (0 instead of 2). After period x 64 = 128 updates the
    # sum is rebuilt from the window and the average is right again.
    sma = SMA(2)
    for x in [1e16] + [1.0] * 127:
        sma.update(x)
    assert sma.value == 1.0


def test_decision_id_does_not_depend_on_the_timezone_of_created_at() -> None:
    from zoneinfo import ZoneInfo

    utc = Decision(
        source="s",
        symbol="AAPL",
        action="buy",
        confidence=80,
        created_at=dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC),
    )
    ny = Decision(
        source="s",
        symbol="AAPL",
        action="buy",
        confidence=80,
        created_at=dt.datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("America/New_York")),
    )
    assert utc.id == ny.id


def test_decision_ids_stay_what_earlier_versions_derived() -> None:
    # A restarted run recognises the orders it sent by ids derived from its
    # decisions: the derivation must never change, even in how it writes the key.
    bought = Decision(
        source="sma_cross",
        symbol="AAPL",
        action=Action.BUY,
        confidence=80,
        quantity=Decimal("10"),
        created_at=dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC),
    )
    limit = Decision(
        source="llm",
        symbol="MSFT",
        action=Action.SELL,
        confidence=80,
        quantity=Decimal("2.5"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("401.25"),
        created_at=dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    )
    assert bought.id == "d-f33fd3bb1db89b151a2d"
    assert limit.id == "d-49f1c6f122fe1cbccf5f"


def test_a_decision_that_expired_before_it_was_handled_is_kept_to_be_denied() -> None:
    """No creation time, an expiry already past when it is handled: not a document at
    odds with itself (the creation time is the handling's), so it is kept, and the
    executor denies it as expired."""
    late = make(expires_at=T0 - dt.timedelta(minutes=5))
    filled = late.with_origin("sma", T0)
    assert (filled.created_at, filled.expires_at) == (T0, T0 - dt.timedelta(minutes=5))
    # A source that says so itself is still refused.
    with pytest.raises(ValidationError, match="expires_at must be after created_at"):
        make(source="llm", created_at=T0, expires_at=T0 - dt.timedelta(minutes=5))
