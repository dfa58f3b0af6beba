"""Option strategies from decision documents: legs, side, risk figures, strike and expiry choice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from tradepipe.decision_schema import read_decision
from tradepipe.decisions import Action, Decision, RejectedDecision
from tradepipe.instruments import Combo, Option
from tradepipe.options.chain import (
    ChainError,
    OptionQuote,
    choose_expiry,
    nearest_delta,
    nearest_strike,
)
from tradepipe.options.risk import payoff
from tradepipe.orders import Side

D = Decimal
DEC = dt.date(2026, 12, 18)
JAN = dt.date(2027, 1, 15)
TODAY = dt.date(2026, 11, 20)
CALLS = {
    90: ("11.00", 0.9),
    95: ("7.00", 0.75),
    100: ("4.00", 0.5),
    105: ("2.00", 0.3),
    110: ("0.80", 0.15),
}
PUTS = {
    90: ("0.60", -0.1),
    95: ("1.50", -0.25),
    100: ("3.50", -0.5),
    105: ("6.00", -0.7),
    110: ("9.50", -0.85),
}


def _chain() -> list[OptionQuote]:
    out = []
    for expiry in (DEC, JAN):
        bump = D(0) if expiry == DEC else D(1)
        for right, table in (("C", CALLS), ("P", PUTS)):
            for strike, (price, delta) in table.items():
                option = Option(underlying="XYZ", expiry=expiry, strike=D(strike), right=right)
                out.append(OptionQuote(option=option, price=D(price) + bump, delta=delta))
    return out


CHAIN = _chain()
asked: list[tuple[str, dt.date | None]] = []


def chain(underlying: str, expiry: dt.date | None) -> list[OptionQuote]:
    asked.append((underlying, expiry))
    return [q for q in CHAIN if expiry is None or q.option.expiry == expiry]


def doc(options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "o-1",
        "symbol": "XYZ",
        "action": "buy",
        "confidence": 80,
        "quantity": 2,
        "options": options,
        **extra,
    }


def decide(options: dict[str, Any], **extra: Any) -> Decision:
    item = read_decision(
        doc(options, **extra), "test", chain=chain, today=TODAY, underlying_price=D(100)
    )
    assert isinstance(item, Decision), item
    return item


def legs(decision: Decision) -> list[tuple[int, str, Decimal]]:
    inst = decision.instrument
    if isinstance(inst, Option):
        return [(1, inst.right, inst.strike)]
    assert isinstance(inst, Combo)
    out = []
    for leg in inst.legs:
        assert isinstance(leg.instrument, Option)
        out.append((leg.ratio, leg.instrument.right, leg.instrument.strike))
    return sorted(out)


# strategy, strikes, ordered legs (ratio, right, strike), side, unit price,
# max loss, max gain (None: unlimited), breakevens — all hand-computed, quantity 2.
CASES = [
    ("long_call", [100], [(1, "C", 100)], "buy", "4.00", "800", None, ["104"]),
    ("long_put", [100], [(1, "P", 100)], "buy", "3.50", "700", "19300", ["96.5"]),
    # stock at 100 held, call 105 sold for 2: cost 98 a share
    ("covered_call", [105], [(1, "C", 105)], "sell", "2.00", "19600", "1400", ["98"]),
    ("cash_secured_put", [95], [(1, "P", 95)], "sell", "1.50", "18700", "300", ["93.5"]),
    (
        "bull_call_spread",
        [95, 105],
        [(-1, "C", 105), (1, "C", 95)],
        "buy",
        "5.00",
        "1000",
        "1000",
        ["100"],
    ),
    # credit strategies: the debit combo (+C95 -C105) is sold
    (
        "bear_call_spread",
        [95, 105],
        [(-1, "C", 105), (1, "C", 95)],
        "sell",
        "5.00",
        "1000",
        "1000",
        ["100"],
    ),
    (
        "bull_put_spread",
        [95, 105],
        [(-1, "P", 95), (1, "P", 105)],
        "sell",
        "4.50",
        "1100",
        "900",
        ["100.5"],
    ),
    (
        "bear_put_spread",
        [95, 105],
        [(-1, "P", 95), (1, "P", 105)],
        "buy",
        "4.50",
        "900",
        "1100",
        ["100.5"],
    ),
    (
        "straddle",
        [100, 100],
        [(1, "C", 100), (1, "P", 100)],
        "buy",
        "7.50",
        "1500",
        None,
        ["92.5", "107.5"],
    ),
    (
        "strangle",
        [95, 105],
        [(1, "C", 105), (1, "P", 95)],
        "buy",
        "3.50",
        "700",
        None,
        ["91.5", "108.5"],
    ),
    (
        "iron_condor",
        [90, 95, 105, 110],
        [(-1, "C", 110), (-1, "P", 90), (1, "C", 105), (1, "P", 95)],
        "sell",
        "2.10",
        "580",
        "420",
        ["92.9", "107.1"],
    ),
]


@pytest.mark.parametrize(
    ("name", "strikes", "want", "side", "price", "loss", "gain", "breakevens"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_every_strategy_builds_its_legs_side_and_risk(
    name: str,
    strikes: list[int],
    want: list[tuple[int, str, int]],
    side: str,
    price: str,
    loss: str,
    gain: str | None,
    breakevens: list[str],
) -> None:
    decision = decide({"strategy": name, "expiry": "2026-12-18", "strikes": strikes})
    assert legs(decision) == sorted((r, c, D(k)) for r, c, k in want)
    assert decision.action is (Action.BUY if side == "buy" else Action.SELL)
    assert decision.symbol == decision.instrument.ticker.upper()  # type: ignore[union-attr]
    risk = decision.option_risk
    assert risk is not None and risk.side == side and risk.quantity == 2
    assert abs(risk.net_premium) == D(price) or name == "covered_call"
    assert risk.max_loss == D(loss)
    assert risk.max_gain == (None if gain is None else D(gain))
    assert risk.unlimited_gain is (gain is None)
    assert not risk.unlimited_loss
    assert risk.breakevens == tuple(D(b) for b in breakevens)
    assert risk.model_dump(mode="json")["breakevens"] == breakevens  # 100, never 1E+2


def test_a_sold_strategy_takes_the_other_side_and_its_risk() -> None:
    decision = decide(
        {"strategy": "long_call", "expiry": "2026-12-18", "strikes": [100]}, action="sell"
    )
    risk = decision.option_risk
    assert decision.action is Action.SELL and risk is not None
    assert risk.unlimited_loss and risk.max_loss is None
    assert risk.max_gain == D(800) and risk.breakevens == (D(104),)
    assert not risk.defined_risk


def test_the_limit_price_is_the_premium_the_risk_uses() -> None:
    decision = decide(
        {"strategy": "bull_call_spread", "expiry": "2026-12-18", "strikes": [95, 105]},
        order_type="limit",
        limit_price=4.2,
    )
    risk = decision.option_risk
    assert risk is not None
    assert (risk.max_loss, risk.max_gain, risk.breakevens) == (D(840), D(1160), (D("99.2"),))


def test_strikes_snap_to_the_nearest_listed_and_dte_to_the_nearest_expiry() -> None:
    decision = decide({"strategy": "bull_call_spread", "dte": 30, "strikes": [96, 104]})
    assert legs(decision) == [(-1, "C", D(105)), (1, "C", D(95))]
    inst = decision.instrument
    assert isinstance(inst, Combo)
    assert {leg.instrument.expiry for leg in inst.legs} == {DEC}  # type: ignore[union-attr]
    later = decide({"strategy": "long_put", "dte": 50, "strikes": [101]})
    assert isinstance(later.instrument, Option)
    assert (later.instrument.expiry, later.instrument.strike) == (JAN, D(100))


def test_legs_by_delta_with_a_width() -> None:
    condor = decide({"strategy": "iron_condor", "expiry": "2026-12-18", "delta": 0.3, "width": 5})
    assert legs(condor) == [(-1, "C", D(110)), (-1, "P", D(90)), (1, "C", D(105)), (1, "P", D(95))]
    # put delta nearest -0.3 is the 95 put (-0.25), call nearest 0.3 the 105
    single = decide({"strategy": "long_call", "expiry": "2026-12-18", "delta": 0.7})
    assert legs(single) == [(1, "C", D(95))]
    spread = decide({"strategy": "bull_put_spread", "dte": 28, "delta": 0.45, "width": 10})
    assert legs(spread) == [(-1, "P", D(90)), (1, "P", D(100))]


def listing_unless_one_expiry(underlying: str, expiry: dt.date | None) -> list[OptionQuote]:
    """A chain like IBKR's: every expiry as a bare listing, one expiry with its greeks."""
    asked.append((underlying, expiry))
    if expiry is None:
        return [OptionQuote(option=q.option) for q in CHAIN]
    return [q for q in CHAIN if q.option.expiry == expiry]


def test_delta_by_dte_reads_the_chosen_expirys_chain() -> None:
    asked.clear()
    item = read_decision(
        doc({"strategy": "bull_call_spread", "dte": 28, "delta": 0.3, "width": 5}),
        "test",
        chain=listing_unless_one_expiry,
        today=TODAY,
    )
    assert isinstance(item, Decision), item
    assert legs(item) == [(-1, "C", D(110)), (1, "C", D(105))]
    assert asked == [("XYZ", None), ("XYZ", DEC)]
    # A leg by dte and delta likewise; by strike (or with an expiry given) one read is enough.
    asked.clear()
    leg = read_decision(
        doc(
            {
                "strategy": "long_put",
                "legs": [{"action": "buy", "right": "P", "dte": 50, "delta": 0.25}],
            }
        ),
        "test",
        chain=listing_unless_one_expiry,
        today=TODAY,
    )
    assert isinstance(leg, Decision), leg
    assert legs(leg) == [(1, "P", D(95))] and leg.instrument.expiry == JAN  # type: ignore[union-attr]
    assert asked == [("XYZ", None), ("XYZ", JAN)]
    asked.clear()
    for options in (
        {"strategy": "long_call", "dte": 28, "strikes": [100]},
        {"strategy": "long_call", "expiry": "2026-12-18", "delta": 0.3},
    ):
        read_decision(doc(options), "test", chain=listing_unless_one_expiry, today=TODAY)
    assert asked == [("XYZ", None), ("XYZ", DEC)]


def test_explicit_legs_are_checked_against_the_strategy() -> None:
    good = decide(
        {
            "strategy": "bear_put_spread",
            "legs": [
                {"action": "buy", "right": "P", "strike": 105, "expiry": "2026-12-18"},
                {"action": "sell", "right": "P", "strike": 95, "dte": 28},
            ],
        }
    )
    assert legs(good) == [(-1, "P", D(95)), (1, "P", D(105))]
    bad = read_decision(
        doc(
            {
                "strategy": "bull_call_spread",
                "legs": [
                    {"action": "sell", "right": "C", "strike": 95, "expiry": "2026-12-18"},
                    {"action": "buy", "right": "C", "strike": 105, "expiry": "2026-12-18"},
                ],
            }
        ),
        "test",
        chain=chain,
        today=TODAY,
    )
    assert isinstance(bad, RejectedDecision)
    assert bad.error.startswith("options.legs: a bull_call_spread is +C(K0) -C(K1)")


@pytest.mark.parametrize(
    ("options", "extra", "error"),
    [
        (
            {"strategy": "long_call", "expiry": "2026-12-19", "strikes": [100]},
            {},
            "options.expiry: no options expire on 2026-12-19",
        ),
        (
            {"strategy": "bull_call_spread", "expiry": "2026-12-18", "strikes": [100, 101]},
            {},
            "options.strikes: the requested strikes round",
        ),
        (
            {"strategy": "bull_call_spread", "expiry": "2026-12-18", "delta": 0.3},
            {},
            "options.width:",
        ),
        (
            {"strategy": "long_call", "expiry": "2026-12-18", "strikes": [100]},
            {"quantity": None},
            "quantity: an options strategy needs",
        ),
        (
            {"strategy": "long_call", "expiry": "2026-12-18", "strikes": [100]},
            {"action": "close"},
            "action: close is not supported",
        ),
        (
            {"strategy": "long_call", "expiry": "2026-12-18", "strikes": [100]},
            {"order_type": "stop", "stop_price": 3},
            "stop_price: not supported",
        ),
        (
            {"strategy": "straddle", "expiry": "2026-12-18", "strikes": [95, 100]},
            {},
            "options.strikes: a straddle's two strikes",
        ),
    ],
)
def test_bad_strategies_are_rejected_naming_the_field(
    options: dict[str, Any], extra: dict[str, Any], error: str
) -> None:
    raw = doc(options, **extra)
    raw = {k: v for k, v in raw.items() if v is not None}
    item = read_decision(raw, "test", chain=chain, today=TODAY)
    assert isinstance(item, RejectedDecision)
    assert item.error.startswith(error), item.error


def test_without_a_chain_exact_strikes_work_and_choices_are_refused() -> None:
    item = read_decision(
        doc({"strategy": "strangle", "expiry": "2026-12-18", "strikes": [95, 105]}), "t"
    )
    assert isinstance(item, Decision) and item.option_risk is None  # no prices, no limit
    assert legs(item) == [(1, "C", D(105)), (1, "P", D(95))]
    refused = read_decision(doc({"strategy": "strangle", "dte": 30, "strikes": [95, 105]}), "t")
    assert isinstance(refused, RejectedDecision)
    assert "needs the broker's option chain" in refused.error


def test_choosers_break_ties_low_and_early() -> None:
    assert nearest_strike(CHAIN, DEC, "C", D("97.5"), "f").option.strike == D(95)
    assert nearest_delta(CHAIN, DEC, "P", 0.5, "f").option.strike == D(100)
    assert (
        choose_expiry(CHAIN, dte=41, today=TODAY) == DEC
    )  # 2026-12-31: 13 days after one, 15 before the other


def test_an_expiry_that_has_passed_is_never_chosen() -> None:
    # Today between the two listed expiries: dte 0 must not go back to December.
    assert choose_expiry(CHAIN, dte=0, today=DEC + dt.timedelta(days=1)) == JAN
    with pytest.raises(ChainError, match="2026-12-18 has passed"):
        choose_expiry(CHAIN, expiry=DEC, today=DEC + dt.timedelta(days=1))
    assert choose_expiry(CHAIN, expiry=DEC, today=DEC) == DEC  # expiring today still trades
    # A chain from bars that stopped long ago lists only expiries that are over.
    with pytest.raises(ChainError, match="every expiry the broker lists has passed"):
        choose_expiry(CHAIN, dte=30, today=dt.date(2028, 1, 3))


def test_payoff_is_what_the_legs_pay() -> None:
    decision = decide(
        {"strategy": "iron_condor", "expiry": "2026-12-18", "strikes": [90, 95, 105, 110]}
    )
    inst = decision.instrument
    assert isinstance(inst, Combo)
    held = [leg.model_copy(update={"ratio": -leg.ratio}) for leg in inst.legs]
    assert payoff(held, D("-2.10"), 0, D(100)) == D("2.10")
    assert payoff(held, D("-2.10"), 0, D(120)) == D("-2.90")
    assert Side.SELL.value == decision.option_risk.side  # type: ignore[union-attr]
