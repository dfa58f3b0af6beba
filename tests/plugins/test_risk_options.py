"""options_guards: defined risk, covered calls, cash-secured puts, max contracts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from risk_fakes import D, FakeContext, decision, intent
from tradepipe.instruments import Combo, Leg, Option, Stock
from tradepipe.options.risk import OptionRisk
from tradepipe.orders import OrderIntent
from tradepipe.plugins.risk.filters import MaxRiskPerTrade
from tradepipe.plugins.risk.options import OptionsGuards
from tradepipe.risk import Outcome

EXPIRY = dt.date(2026, 12, 18)
GUARD = OptionsGuards()


def option(right: str = "C", strike: int = 200) -> Option:
    return Option(underlying="AAPL", expiry=EXPIRY, strike=Decimal(strike), right=right)  # type: ignore[arg-type]


def single(side: str, opt: Option, quantity: str = "1") -> OrderIntent:
    return intent(
        side, quantity, symbol=opt.ticker, instrument=opt, order_type="limit", limit_price=D(2)
    )


def combo(side: str, legs: list[tuple[Option | Stock, int]], quantity: str = "1") -> OrderIntent:
    inst = Combo(legs=tuple(Leg(instrument=i, ratio=r) for i, r in legs))
    return intent(
        side, quantity, symbol=inst.ticker, instrument=inst, order_type="limit", limit_price=D(1)
    )


def test_stock_orders_pass() -> None:
    assert GUARD.check(intent(), decision(), FakeContext()).reason == "not an option order"


def test_long_options_pass_with_figures() -> None:
    check = GUARD.check(single("buy", option(), "3"), decision(), FakeContext())
    assert check.outcome is Outcome.PASS
    assert check.figures == {"contracts": D(3), "max_contracts": 10}


def test_naked_short_call_denies_covered_call_passes() -> None:
    order = single("sell", option("C"), "2")
    check = GUARD.check(order, decision(), FakeContext(positions={"AAPL": D(100)}))
    assert check.outcome is Outcome.DENY
    assert check.reason == "naked short call: 200 shares needed to cover it, 100 held"
    covered = GUARD.check(order, decision(), FakeContext(positions={"AAPL": D(200)}))
    assert covered.outcome is Outcome.PASS
    assert covered.figures["shares_held"] == D(200)


def test_naked_short_calls_need_both_switches() -> None:
    order = single("sell", option("C"))
    loose = OptionsGuards(OptionsGuards.Settings(defined_risk_only=False))
    assert loose.check(order, decision(), FakeContext()).outcome is Outcome.DENY
    looser = OptionsGuards(
        OptionsGuards.Settings(defined_risk_only=False, allow_naked_short_calls=True)
    )
    assert looser.check(order, decision(), FakeContext()).outcome is Outcome.PASS


def test_short_put_needs_the_cash_for_assignment() -> None:
    order = single("sell", option("P", 200))  # 200 x 100 = 20,000
    poor = GUARD.check(order, decision(), FakeContext(cash_=D(25_000), reserved_=D(10_000)))
    assert poor.outcome is Outcome.DENY
    assert poor.reason == "naked short put: assignment needs 20000.00, 15000.00 free"
    secured = GUARD.check(order, decision(), FakeContext(cash_=D(25_000)))
    assert secured.outcome is Outcome.PASS


def test_closing_a_long_option_passes() -> None:
    opt = option("C")
    check = GUARD.check(single("sell", opt), decision(), FakeContext(positions={opt.ticker: D(1)}))
    assert check.outcome is Outcome.PASS


def test_defined_risk_combos_pass() -> None:
    vertical = [(option("C", 200), 1), (option("C", 210), -1)]
    condor = [
        (option("P", 180), 1),
        (option("P", 190), -1),
        (option("C", 210), -1),
        (option("C", 220), 1),
    ]
    for legs in (vertical, condor):
        check = GUARD.check(combo("buy", legs), decision(), FakeContext())
        assert check.outcome is Outcome.PASS, check
    # A long straddle sold back... as a short straddle: the call side is open-ended.
    straddle = [(option("C", 200), 1), (option("P", 200), 1)]
    check = GUARD.check(combo("sell", straddle), decision(), FakeContext())
    assert check.outcome is Outcome.DENY
    assert check.figures["upside_slope"] == D(-100)


def test_bear_call_spread_bought_in_reverse_is_fine_short_call_ratio_is_not() -> None:
    ratio = [(option("C", 200), 1), (option("C", 210), -2)]
    check = GUARD.check(combo("buy", ratio), decision(), FakeContext())
    assert check.outcome is Outcome.DENY
    assert "net short calls" in check.reason
    # Shares held cover the extra short call.
    covered = GUARD.check(combo("buy", ratio), decision(), FakeContext(positions={"AAPL": D(100)}))
    assert covered.outcome is Outcome.PASS


def test_max_contracts_reduces_combos_by_whole_units() -> None:
    condor = [
        (option("P", 180), 1),
        (option("P", 190), -1),
        (option("C", 210), -1),
        (option("C", 220), 1),
    ]
    check = GUARD.check(combo("buy", condor, "5"), decision(), FakeContext())  # 20 contracts
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(2))
    assert check.reason == "reduced to 2: 20 contracts over 10"
    tight = OptionsGuards(OptionsGuards.Settings(max_contracts=3))
    denied = tight.check(combo("buy", condor), decision(), FakeContext())
    assert denied.outcome is Outcome.DENY
    big = GUARD.check(single("buy", option(), "12"), decision(), FakeContext())
    assert (big.outcome, big.quantity) == (Outcome.REDUCE, D(10))


def test_max_risk_per_trade_judges_a_strategy_by_its_stored_max_loss() -> None:
    """A spread's worst loss is stored with it: that is the trade's risk, no stop needed."""
    inst = combo("buy", [(option("C", 200), 1), (option("C", 210), -1)]).instrument

    def spread(quantity: str, max_loss: str | None) -> OrderIntent:
        risk = OptionRisk(
            strategy="bull_call_spread",
            side="buy",
            quantity=D(quantity),
            multiplier=D(100),
            net_premium=D(4),
            max_loss=None if max_loss is None else D(max_loss),
            max_gain=D(600),
            unlimited_loss=max_loss is None,
        )
        return intent(
            "buy",
            quantity,
            symbol=inst.ticker,
            instrument=inst,
            order_type="limit",
            limit_price=D(4),
            option_risk=risk,
        )

    flt = MaxRiskPerTrade()  # 2 % of 100 000: a budget of 2000
    ctx = FakeContext()
    check = flt.check(spread("5", "2000"), decision(), ctx)
    assert check.outcome is Outcome.PASS and check.figures["max_loss"] == D("2000.00")
    check = flt.check(spread("10", "4000"), decision(), ctx)
    assert (check.outcome, check.quantity) == (Outcome.REDUCE, D(5))
    assert "bull_call_spread's max loss 4000.00 exceeds 2000.00" in check.reason
    check = flt.check(spread("1", None), decision(), ctx)
    assert check.outcome is Outcome.DENY and "no bound" in check.reason
