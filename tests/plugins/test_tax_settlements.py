"""Options that expire, are exercised or are assigned, and the shares they deliver.

Each case is worked by hand. The settlement's fills are as the paper simulator
books them: the option closed at price 0, then (for an exercise or an
assignment) the shares traded at the strike, both of one kind and stamped
16:00 in New York on the expiry date, 2026-06-19 (20:00 UTC).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from sqlalchemy import select
from sqlmodel import Session, col
from tradepipe import Action, Bar, Option, Strategy, StrategyContext, hookimpl
from tradepipe.errors import LotError
from tradepipe.orders import Fill, FillKind, Side
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.ledger.schema import FillRow
from tradepipe.plugins.tax.lots import Term, compute_lots
from tradepipe.plugins.tax.lots_db import read_lots, rebuild_lots
from tradepipe.testing import replay, test_host

D = Decimal
EXPIRY = "2026-06-19"
CALL_200 = "AAPL  260619C00200000"
PUT_190 = "AAPL  260619P00190000"
PUT_180 = "AAPL  260619P00180000"


def fill(
    eid: str,
    side: str,
    qty: int,
    price: str,
    day: str,
    symbol: str = "AAPL",
    commission: str = "0",
    kind: FillKind = FillKind.TRADE,
) -> Fill:
    option = len(symbol) == 21
    return Fill(
        execution_id=eid,
        client_order_id="tp-x",
        decision_id="d",
        symbol=symbol,
        side=Side(side),
        quantity=D(qty),
        price=D(price),
        commission=D(commission),
        multiplier=D(100 if option else 1),
        ts=dt.datetime.fromisoformat(
            f"{day}T{'20:00' if kind is not FillKind.TRADE else '15:00'}:00+00:00"
        ),
        kind=kind,
    )


def settled(
    option: str, option_side: str, kind: FillKind, shares_side: str, strike: str
) -> list[Fill]:
    """The two fills of one contract's exercise or assignment."""
    return [
        fill("x.1", option_side, 1, "0", EXPIRY, option, kind=kind),
        fill("x.2", shares_side, 100, strike, EXPIRY, kind=kind),
    ]


def test_a_long_call_exercised_adds_its_cost_to_the_shares_basis() -> None:
    # Bought 1 call @ 5.00 + 0.65 commission: 500.65. Exercised: 100 shares @ 200 =
    # 20000.00, basis 20000.00 + 500.65 = 20500.65, acquired on the exercise date (the
    # holding period starts the day after). The call closes with no gain or loss.
    # Sold 2026-07-01 @ 210 - 1.00 commission: 20999.00 - 20500.65 = 498.35.
    result = compute_lots(
        [
            fill("o", "buy", 1, "5.00", "2026-05-01", CALL_200, "0.65"),
            *settled(CALL_200, "sell", FillKind.EXERCISED, "buy", "200"),
            fill("s", "sell", 100, "210", "2026-07-01", commission="1.00"),
        ]
    )
    [sale] = result.closed
    assert (sale.symbol, sale.lot_id, sale.quantity) == ("AAPL", "x.2", 100)
    assert (sale.proceeds, sale.basis, sale.gain) == (D("20999.00"), D("20500.65"), D("498.35"))
    assert (sale.acquired, sale.sold, sale.term) == (
        dt.date(2026, 6, 19),
        dt.date(2026, 7, 1),
        Term.SHORT,
    )
    assert result.open == ()


def test_a_short_put_assigned_takes_its_premium_off_the_shares_basis() -> None:
    # Sold 2 puts @ 3.10 - 1.30 commission: 620.00 - 1.30 = 618.70 received. Assigned:
    # 200 shares bought @ 190 = 38000.00, basis 38000.00 - 618.70 = 37381.30 (186.9065 a
    # share). No row for the puts.
    result = compute_lots(
        [
            fill("o", "sell", 2, "3.10", "2026-05-01", PUT_190, "1.30"),
            fill("x.1", "buy", 2, "0", EXPIRY, PUT_190, kind=FillKind.ASSIGNED),
            fill("x.2", "buy", 200, "190", EXPIRY, kind=FillKind.ASSIGNED),
        ]
    )
    assert result.closed == ()
    [lot] = result.open
    assert (lot.symbol, lot.short, lot.quantity, lot.basis) == ("AAPL", False, 200, D("37381.30"))
    assert (lot.purchased, lot.acquired) == (dt.date(2026, 6, 19), dt.date(2026, 6, 19))


def test_a_short_call_assigned_adds_its_premium_to_the_proceeds() -> None:
    # 100 shares bought 2025-01-06 @ 150: 15000.00. A covered call sold @ 4.00: 400.00.
    # Assigned: the shares sold @ 200 = 20000.00, proceeds 20000.00 + 400.00 = 20400.00;
    # gain 20400.00 - 15000.00 = 5400.00, long-term (held 2025-01-06 to 2026-06-19).
    result = compute_lots(
        [
            fill("b", "buy", 100, "150", "2025-01-06"),
            fill("o", "sell", 1, "4.00", "2026-05-01", CALL_200),
            *settled(CALL_200, "buy", FillKind.ASSIGNED, "sell", "200"),
        ]
    )
    [sale] = result.closed
    assert (sale.lot_id, sale.close_execution_id) == ("b", "x.2")
    assert (sale.proceeds, sale.basis, sale.gain, sale.term) == (
        D("20400.00"),
        D("15000"),
        D("5400.00"),
        Term.LONG,
    )
    assert result.open == ()


def test_a_long_put_exercised_takes_its_cost_off_the_proceeds() -> None:
    # 100 shares bought 2026-01-05 @ 200: 20000.00. A put bought @ 2.50: 250.00.
    # Exercised: the shares sold @ 180 = 18000.00, proceeds 18000.00 - 250.00 =
    # 17750.00; loss 17750.00 - 20000.00 = -2250.00, short-term.
    result = compute_lots(
        [
            fill("b", "buy", 100, "200", "2026-01-05"),
            fill("o", "buy", 1, "2.50", "2026-05-01", PUT_180),
            *settled(PUT_180, "sell", FillKind.EXERCISED, "sell", "180"),
        ]
    )
    [sale] = result.closed
    assert (sale.symbol, sale.proceeds, sale.basis, sale.gain, sale.term) == (
        "AAPL",
        D("17750.00"),
        D("20000"),
        D("-2250.00"),
        Term.SHORT,
    )
    assert result.open == ()


def test_a_long_option_that_expires_loses_what_it_cost_on_the_expiry_date() -> None:
    # Bought 1 call @ 1.20 + 0.65: 120.65. Expired: closed at 0 on 2026-06-19, proceeds
    # 0.00, loss 120.65, short-term (held from 2026-05-01).
    result = compute_lots(
        [
            fill("o", "buy", 1, "1.20", "2026-05-01", CALL_200, "0.65"),
            fill("x.1", "sell", 1, "0", EXPIRY, CALL_200, kind=FillKind.EXPIRED),
        ]
    )
    [row] = result.closed
    assert (row.proceeds, row.basis, row.gain, row.term) == (0, D("120.65"), D("-120.65"), "short")
    assert (row.acquired, row.sold) == (dt.date(2026, 5, 1), dt.date(2026, 6, 19))


def test_a_short_option_that_expires_gains_what_it_brought_in() -> None:
    # Sold 1 put @ 0.80 - 0.65: 79.35 received. Expired: bought back at 0 on 2026-06-19,
    # gain 79.35, short-term; acquired on the expiry date, as any short sale's close.
    result = compute_lots(
        [
            fill("o", "sell", 1, "0.80", "2026-05-01", PUT_190, "0.65"),
            fill("x.1", "buy", 1, "0", EXPIRY, PUT_190, kind=FillKind.EXPIRED),
        ]
    )
    [row] = result.closed
    assert (row.short, row.proceeds, row.basis, row.gain, row.term) == (
        True,
        D("79.35"),
        0,
        D("79.35"),
        "short",
    )
    assert (row.acquired, row.sold) == (dt.date(2026, 6, 19), dt.date(2026, 6, 19))


def test_the_premium_is_shared_between_a_short_covered_and_shares_opened() -> None:
    # Short 50 shares @ 210 (10500.00). A call bought @ 5.00 (500.00) is exercised: the
    # 100 shares @ 200 with 500.00 charged, 50/100 each way: 50 cover the short at
    # 10000.00 + 250.00 = 10250.00 (gain 10500.00 - 10250.00 = 250.00), 50 open a lot of
    # basis 10250.00.
    result = compute_lots(
        [
            fill("s", "sell", 50, "210", "2026-05-01"),
            fill("o", "buy", 1, "5.00", "2026-05-01", CALL_200),
            *settled(CALL_200, "sell", FillKind.EXERCISED, "buy", "200"),
        ]
    )
    [cover] = result.closed
    assert (cover.short, cover.proceeds, cover.basis, cover.gain) == (True, 10500, 10250, 250)
    [lot] = result.open
    assert (lot.lot_id, lot.quantity, lot.basis) == ("x.2", 50, D("10250.00"))
    # No money lost on the way: the cash, 10500.00 - 500.00 - 20000.00 = -10000.00, is
    # the gain (250.00) less the basis still held (10250.00).
    assert cover.gain - lot.basis == D("-10000.00")


def test_a_settlement_must_find_its_lots_and_its_shares() -> None:
    bought = fill("o", "buy", 1, "5.00", "2026-05-01", CALL_200)
    exercised = settled(CALL_200, "sell", FillKind.EXERCISED, "buy", "200")
    with pytest.raises(LotError, match="but 0 long are open"):
        compute_lots(exercised)
    with pytest.raises(LotError, match="no fill of AAPL .* delivers its shares"):
        compute_lots([bought, exercised[0]])
    with pytest.raises(LotError, match="no option on AAPL was exercised"):
        compute_lots([exercised[1]])
    wrong = exercised[1].model_copy(update={"quantity": D(50)})
    with pytest.raises(LotError, match="the exercise of .* delivers a buy of 100"):
        compute_lots([bought, exercised[0], wrong])
    with pytest.raises(LotError, match="but 0 long are open"):
        compute_lots([fill("x.1", "sell", 1, "0", EXPIRY, CALL_200, kind=FillKind.EXPIRED)])


# -- from the paper simulator, through the ledger ------------------------------------------


FRIDAY = dt.date(2026, 3, 6)


def spy_week(close: float) -> list[Bar]:
    """SPY at 600 Monday to Tuesday, then at ``close``; Monday 9 March settles Friday's options."""
    return [
        Bar("SPY", dt.datetime(2026, 3, day, 15, tzinfo=dt.UTC), c, c, c, c, 1000.0)
        for day, c in ((2, 600.0), (3, 600.0), (4, close), (5, close), (6, close), (9, close))
    ]


class OpensOne(Strategy):
    """At Monday's bar: ``OpensOne.action`` one SPY 600 ``OpensOne.right`` expiring Friday."""

    name = "opens_one"
    action: ClassVar[Action] = Action.BUY
    right: ClassVar[Literal["C", "P"]] = "C"

    def decide(self, bar: Bar, ctx: StrategyContext) -> Any:
        if bar.ts.day != 2:
            return None
        contract = Option(underlying="SPY", expiry=FRIDAY, strike=D(600), right=type(self).right)
        return self.decision(
            ctx,
            symbol=contract.ticker,
            instrument=contract,
            action=type(self).action,
            confidence=90,
            quantity=D(1),
        )


class OpensPlugin:
    __name__ = "tax_settlement_tests"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(OpensOne)


@pytest.mark.parametrize(
    ("action", "right", "close", "kind", "sign"),
    [
        (Action.BUY, "C", 610.0, "exercised", 1),  # long call: its cost adds to the basis
        (Action.SELL, "P", 590.0, "assigned", -1),  # short put: its premium comes off
    ],
)
def test_the_simulators_settlement_folds_the_premium_in_the_ledgers_lots(
    action: Action,
    right: Literal["C", "P"],
    close: float,
    kind: str,
    sign: int,
    ledger_url: str,
    tmp_path: Path,
) -> None:
    OpensOne.action, OpensOne.right = action, right
    _, result, _ = replay(
        spy_week(close),
        host=test_host(OpensPlugin()),
        run={"strategies": ["opens_one"], "risk_filters": [], "sinks": ["sql"]},
        brokers={"paper": {"state_file": str(tmp_path / "paper.json")}},
        sinks={"sql": {"url": ledger_url, "writer": "inline"}},
    )
    assert result.status == "completed"
    engine = open_engine(ledger_url)
    try:
        with Session(engine) as session:
            rows = list(session.scalars(select(FillRow).order_by(col(FillRow.id))))
        opened, settled_option, shares = rows
        assert [r.kind for r in rows] == ["trade", kind, kind]
        assert (shares.symbol, shares.side, shares.quantity, shares.price) == (
            "SPY",
            "buy",
            100,
            600,
        )
        # The option's lot: what the call cost (price x 100 + commission), or what the
        # put brought in (price x 100 - commission). The shares: 100 x 600 = 60000 plus
        # the call's cost, or less the put's premium; no row for the option.
        premium = opened.price * 100 + sign * opened.commission
        rebuild_lots(engine)
        open_rows, closed = read_lots(engine)
    finally:
        engine.dispose()
    assert closed == []
    [lot] = open_rows
    assert (lot.symbol, lot.side, lot.quantity) == ("SPY", "long", 100)
    assert lot.basis == 60000 + sign * premium
    assert lot.acquired == FRIDAY
    assert settled_option.price == 0
