"""max_exposure, order-rate and open-order caps, symbol lists, price band, stale, live."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from risk_fakes import D, FakeContext, decision, intent
from tradepipe.plugins.risk.limits import (
    LiveAccount,
    MaxExposure,
    MaxOpenOrders,
    MaxOrdersPerMinute,
    PriceBand,
    StaleDecision,
    SymbolLists,
    underlying_of,
)
from tradepipe.risk import Outcome
from tradepipe.testing import T0


def exposure(**values: object) -> MaxExposure:
    return MaxExposure(MaxExposure.Settings.model_validate(values))


# -- max_exposure -------------------------------------------------------------------------


def test_exposure_within_the_gross_limit_passes_with_figures() -> None:
    # MSFT 100 x 200 = 20,000 held; AAPL 10 x 100 = 1,000 more: 21,000 <= 50,000
    ctx = FakeContext(positions={"MSFT": D(100)}, prices={"MSFT": D(200), "AAPL": D(100)})
    check = exposure(limit=50_000).check(intent(), decision(), ctx)
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "price": D(100),
        "position": D(0),
        "gross_after": D("21000.00"),
        "gross_limit": D(50_000),
    }


def test_exposure_over_the_gross_limit_reduces() -> None:
    # 20,000 held + 300 x 100 = 50,000 > 30,000: room for 100
    ctx = FakeContext(positions={"MSFT": D(-100)}, prices={"MSFT": D(200), "AAPL": D(100)})
    check = exposure(limit=30_000).check(intent(quantity="300"), decision(), ctx)
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(100))
    assert check.reason == "reduced to 100: gross exposure 50000.00 over 30000"


def test_exposure_with_no_room_denies() -> None:
    ctx = FakeContext(positions={"MSFT": D(200)}, prices={"MSFT": D(200), "AAPL": D(100)})
    check = exposure(limit=30_000).check(intent(quantity="1"), decision(), ctx)
    assert check.outcome is Outcome.DENY
    assert check.reason.endswith("and no smaller order fits")


def test_group_limit_counts_only_the_group() -> None:
    # tech: MSFT 10,000 + AAPL 100 x 100 = 20,000 > 15,000 -> 50; XOM is energy.
    ctx = FakeContext(
        positions={"MSFT": D(50), "XOM": D(1000)},
        prices={"MSFT": D(200), "XOM": D(100), "AAPL": D(100)},
    )
    flt = exposure(
        limit=1_000_000,
        groups={"aapl": "tech", "MSFT": "tech", "XOM": "energy"},
        group_limits={"tech": 15_000},
    )
    check = flt.check(intent(quantity="100"), decision(), ctx)
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(50))
    assert check.figures["group"] == "tech"
    assert check.figures["group_after"] == D("20000.00")
    assert check.figures["gross_after"] == D("120000.00")


def test_working_orders_and_options_count_with_their_multiplier() -> None:
    occ = "AAPL  261218C00200000"
    ctx = FakeContext(
        pendings={occ: D(2)},
        prices={occ: D(5), "AAPL": D(100)},
        multipliers={occ: D(100)},
    )
    # 2 x 5 x 100 = 1,000 pending + 10 x 100
    check = exposure(limit=2_000).check(intent(), decision(), ctx)
    assert check.outcome is Outcome.PASS and check.figures["gross_after"] == D("2000.00")
    assert underlying_of(occ) == "AAPL"


def test_unpriced_holding_denies() -> None:
    ctx = FakeContext(positions={"MSFT": D(1)}, prices={"AAPL": D(100)})
    check = exposure().check(intent(), decision(), ctx)
    assert (check.outcome, check.reason) == (
        Outcome.DENY,
        "no price known for MSFT to value the exposure",
    )


def test_reducing_order_passes_exposure() -> None:
    ctx = FakeContext(positions={"AAPL": D(500)}, prices={"AAPL": D(100)})
    check = exposure(limit=1).check(intent("sell", "100"), decision(), ctx)
    assert (check.outcome, check.reason) == (Outcome.PASS, "reduces the position")


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell"]),
    quantity=st.integers(min_value=1, max_value=5000),
    position=st.integers(min_value=-1000, max_value=1000),
    other=st.integers(min_value=-1000, max_value=1000),
    price=st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
    limit=st.decimals(min_value=D(1), max_value=D(500_000), places=2),
    group_limit=st.decimals(min_value=D(1), max_value=D(500_000), places=2),
)
def test_no_approved_order_breaks_the_exposure_limits(
    side: str,
    quantity: int,
    position: int,
    other: int,
    price: Decimal,
    limit: Decimal,
    group_limit: Decimal,
) -> None:
    ctx = FakeContext(
        positions={"AAPL": D(position), "MSFT": D(other)},
        prices={"AAPL": price, "MSFT": D(50)},
    )
    flt = exposure(
        limit=limit, groups={"AAPL": "tech", "MSFT": "tech"}, group_limits={"tech": group_limit}
    )
    order = intent(side, str(quantity))
    check = flt.check(order, decision(), ctx)
    if check.outcome is Outcome.DENY:
        return
    final = check.quantity if check.outcome is Outcome.REDUCE else order.quantity
    assert final is not None and 0 < final <= order.quantity
    after = D(position) + (final if side == "buy" else -final)
    if check.reason == "reduces the position":
        assert abs(after) < abs(position)
        return
    total = abs(after) * price + abs(other) * 50
    assert total <= limit and total <= group_limit


# -- max_orders_per_minute / max_open_orders ----------------------------------------------


def test_orders_per_minute_denies_the_one_over_and_recovers() -> None:
    flt = MaxOrdersPerMinute(MaxOrdersPerMinute.Settings(limit=2))
    ctx = FakeContext()
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.PASS
    ctx.when = T0 + dt.timedelta(seconds=30)
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.PASS
    check = flt.check(intent(), decision(), ctx)
    assert check.outcome is Outcome.DENY
    assert check.figures == {"orders_in_window": 2, "limit": 2, "window_seconds": 60}
    ctx.when = T0 + dt.timedelta(seconds=60)  # the first left the window
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.PASS


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=40),
)
def test_no_minute_ever_sees_more_than_the_limit(limit: int, gaps: list[int]) -> None:
    flt = MaxOrdersPerMinute(MaxOrdersPerMinute.Settings(limit=limit))
    ctx = FakeContext()
    passed: list[dt.datetime] = []
    for gap in gaps:
        ctx.when += dt.timedelta(seconds=gap)
        if flt.check(intent(), decision(), ctx).outcome is Outcome.PASS:
            passed.append(ctx.when)
    for t in passed:
        in_window = [p for p in passed if t - dt.timedelta(seconds=60) < p <= t]
        assert len(in_window) <= limit


def test_open_orders_cap() -> None:
    flt = MaxOpenOrders(MaxOpenOrders.Settings(limit=3))
    assert flt.check(intent(), decision(), FakeContext(working=2)).outcome is Outcome.PASS
    check = flt.check(intent(), decision(), FakeContext(working=3))
    assert (check.outcome, check.reason) == (Outcome.DENY, "3 orders already working (limit 3)")
    assert check.figures == {"open_orders": 3, "limit": 3}


# -- symbol_lists -------------------------------------------------------------------------


def test_symbol_lists() -> None:
    flt = SymbolLists(SymbolLists.Settings(allow=["aapl", "msft"], deny=["MSFT"]))
    assert flt.check(intent(), decision(), FakeContext()).outcome is Outcome.PASS
    denied = flt.check(intent(symbol="MSFT"), decision(), FakeContext())
    assert (denied.outcome, denied.reason) == (Outcome.DENY, "MSFT on the deny list")
    missing = flt.check(intent(symbol="TSLA"), decision(), FakeContext())
    assert (missing.outcome, missing.reason) == (Outcome.DENY, "TSLA not on the allow list")
    assert missing.figures == {"symbols": ["TSLA"]}


def test_symbol_lists_judge_options_by_underlying() -> None:
    from tradepipe.instruments import Option

    option = Option(underlying="TSLA", expiry=dt.date(2026, 12, 18), strike=D(300), right="C")
    order = intent(symbol=option.ticker, instrument=option)
    check = SymbolLists(SymbolLists.Settings(deny=["TSLA"])).check(order, decision(), FakeContext())
    assert check.outcome is Outcome.DENY


# -- price_band ---------------------------------------------------------------------------


def band(**values: object) -> PriceBand:
    return PriceBand(PriceBand.Settings.model_validate(values))


def test_limit_within_the_band_passes() -> None:
    order = intent(order_type="limit", limit_price=D(104))
    check = band().check(order, decision(), FakeContext(prices={"AAPL": D(100)}))
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "last_price": D(100),
        "max_deviation_pct": D(5),
        "limit_price": D(104),
        "limit_deviation_pct": D("4.00"),
    }


def test_fat_finger_limit_denies() -> None:
    order = intent(order_type="limit", limit_price=D(1000))
    check = band().check(order, decision(), FakeContext(prices={"AAPL": D(100)}))
    assert check.outcome is Outcome.DENY
    assert check.reason == "limit price 1000 is 900.00% from the last price 100 (band 5%)"


def test_stop_price_is_checked_too() -> None:
    order = intent(order_type="stop", stop_price=D(80))
    check = band(max_deviation_pct=10).check(
        order, decision(), FakeContext(prices={"AAPL": D(100)})
    )
    assert check.outcome is Outcome.DENY and check.figures["stop_deviation_pct"] == D("20.00")


def test_market_order_without_a_last_price_denies() -> None:
    check = band().check(intent(), decision(), FakeContext())
    assert (check.outcome, check.reason) == (
        Outcome.DENY,
        "market order with no last price for AAPL",
    )
    assert (
        band().check(intent(), decision(), FakeContext(prices={"AAPL": D(1)})).outcome
        is Outcome.PASS
    )


def test_limit_without_a_last_price_passes_unless_required() -> None:
    order = intent(order_type="limit", limit_price=D(100))
    assert band().check(order, decision(), FakeContext()).outcome is Outcome.PASS
    strict = band(require_last_price=True).check(order, decision(), FakeContext())
    assert strict.outcome is Outcome.DENY


# -- stale_decision -----------------------------------------------------------------------


def test_stale_decision_by_age() -> None:
    flt = StaleDecision(StaleDecision.Settings(max_age_seconds=60))
    fresh = decision(created_at=T0 - dt.timedelta(seconds=60))
    check = flt.check(intent(), fresh, FakeContext())
    assert check.outcome is Outcome.PASS
    assert check.figures == {"age_seconds": 60.0, "max_age_seconds": 60}
    old = decision(created_at=T0 - dt.timedelta(seconds=61))
    check = flt.check(intent(), old, FakeContext())
    assert (check.outcome, check.reason) == (Outcome.DENY, "decision is 61s old (max 60s)")


def test_stale_decision_by_expiry() -> None:
    expired = decision(created_at=T0 - dt.timedelta(seconds=5), expires_at=T0)
    check = StaleDecision().check(intent(), expired, FakeContext())
    assert check.outcome is Outcome.DENY and check.reason.startswith("decision expired at")


# -- live_account -------------------------------------------------------------------------


def test_live_account_guard() -> None:
    assert LiveAccount().check(intent(), decision(), FakeContext()).outcome is Outcome.PASS
    check = LiveAccount().check(intent(), decision(), FakeContext(paper=False))
    assert check.outcome is Outcome.DENY and check.figures == {"paper": False}
    allowed = LiveAccount(LiveAccount.Settings(allow_live=True))
    assert allowed.check(intent(), decision(), FakeContext(paper=False)).outcome is Outcome.PASS
