"""Option expiry, exercise and assignment belong to the order that opened the position.

Two brokers report them: the paper simulator (under its own settlement id) and
an IBKR-like one, which reports the same fills as IBKR does executions it
made without an order of ours: no client order id, no decision. Options are
SPY 600s expiring Friday 6 March 2026; the first bar of Monday 9 March settles
them on Friday's close.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine
from tradepipe import (
    Action,
    Bar,
    Fill,
    FillKind,
    Option,
    Side,
    Strategy,
    StrategyContext,
    hookimpl,
)
from tradepipe.adapter import BrokerEvent
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.lifecycle import Opening, Openings, describe
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.testing import MemorySink, replay, test_host

UTC = dt.UTC
FRIDAY = dt.date(2026, 3, 6)
NOT_SENT = "this run did not send"


def at(day: int, hour: int = 15) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=UTC)


def spy(day: int, close: float) -> Bar:
    return Bar("SPY", at(day), close, close, close, close, 1000.0)


def option(right: str) -> Option:
    return Option(underlying="SPY", expiry=FRIDAY, strike=D(600), right=right)  # type: ignore[arg-type]


class IbkrLike(PaperBroker):
    """The simulator, reporting settlements as IBKR reports executions not of our orders."""

    name = "ibkr_like"

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        events = list(super().on_bar(bar))
        for i, event in enumerate(events):
            if isinstance(event, Fill) and event.kind is not FillKind.TRADE:
                events[i] = event.model_copy(
                    update={
                        "client_order_id": "",
                        "decision_id": "",
                        "execution_id": f"0000e0d5.{i:08x}.01.01",
                    }
                )
        return events


class Opens(Strategy):
    """At Monday's bar: ``Opens.side`` one contract of ``Opens.right``, decision ``open-it``."""

    name = "opens"
    side: ClassVar[Side] = Side.BUY
    right: ClassVar[str] = "C"
    heard: ClassVar[list[FillKind]] = []

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> None:
        type(self).heard.append(fill.kind)

    def decide(self, bar: Bar, ctx: StrategyContext) -> Any:
        if bar.ts != at(2):
            return None
        contract = option(type(self).right)
        return self.decision(
            ctx,
            id="open-it",
            symbol=contract.ticker,
            instrument=contract,
            action=Action.BUY if type(self).side is Side.BUY else Action.SELL,
            confidence=90,
            quantity=D(1),
        )


class Plugin:
    __name__ = "lifecycle_tests"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Opens)

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(IbkrLike)


def week(*days: int, close: float) -> list[Bar]:
    """SPY at 600 on Monday and Tuesday (the order fills), at ``close`` from then on."""
    return [spy(day, 600 if day < 4 else close) for day in days]


def run(
    bars: list[Bar],
    tmp_path: Path,
    broker: str = "paper",
    *,
    side: Side = Side.BUY,
    right: str = "C",
    session: str = "",
) -> Any:
    Opens.side, Opens.right, Opens.heard = side, right, []
    return replay(
        bars,
        host=test_host(Plugin()),
        run={
            "broker": broker,
            "strategies": ["opens"],
            "risk_filters": ["min_confidence"],
            "sinks": ["memory", "sql"],
            "session": session,
        },
        brokers={broker: {"state_file": str(tmp_path / "paper.json")}},
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )


def ledger_fills(tmp_path: Path) -> list[tuple[str, ...]]:
    query = "SELECT run_id, client_order_id, decision_id, symbol, side, kind FROM fills ORDER BY id"
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return db.execute(query).fetchall()


def chains(tmp_path: Path, key: str) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        return Ledger(engine).chains(key)
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tradepipe")


# -- within one run ----------------------------------------------------------------------


@pytest.mark.parametrize("broker", ["paper", "ibkr_like"])
def test_a_short_put_assigned_is_booked_under_the_order_that_sold_it(
    broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, result, _ = run(
        week(2, 3, 4, 5, 6, 9, close=590), tmp_path, broker, side=Side.SELL, right="P"
    )
    assert result.status == "completed"
    memory = MemorySink.last
    assert memory is not None
    [order] = memory.orders
    cid = order.client_order_id
    sold, put, shares = memory.fills
    assert (sold.side, sold.kind) == (Side.SELL, FillKind.TRADE)
    assert [(f.symbol, f.side, f.quantity, f.price, f.kind) for f in (put, shares)] == [
        (option("P").ticker, Side.BUY, 1, 0, FillKind.ASSIGNED),
        ("SPY", Side.BUY, 100, 600, FillKind.ASSIGNED),
    ]
    assert {(f.client_order_id, f.decision_id) for f in memory.fills} == {(cid, "open-it")}
    # The strategy that sold the put hears of its assignment, shares and all.
    assert Opens.heard == [FillKind.TRADE, FillKind.ASSIGNED, FillKind.ASSIGNED]
    # The shares the assignment delivered are in the run's book and at the broker.
    assert pipeline.broker.positions()[0].symbol == "SPY"
    assert NOT_SENT not in caplog.text
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert (
        f"{option('P').ticker} assigned: closes the short position opened by order {cid} "
        "(decision open-it)"
    ) in said
    assert (
        f"100 SPY bought at 600 on the assignment of {option('P').ticker}: "
        f"booked under order {cid} (decision open-it)"
    ) in said
    rows = ledger_fills(tmp_path)
    assert len({r[0] for r in rows}) == 1  # one run
    assert [r[1:] for r in rows] == [
        (cid, "open-it", option("P").ticker, "sell", "trade"),
        (cid, "open-it", option("P").ticker, "buy", "assigned"),
        (cid, "open-it", "SPY", "buy", "assigned"),
    ]


def test_explain_lists_a_call_that_expired_worthless_under_its_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(week(2, 3, 4, 5, 6, 9, close=580), tmp_path, "ibkr_like")
    call = option("C").ticker
    assert NOT_SENT not in caplog.text
    assert any(
        r.getMessage().startswith(f"{call} expired worthless: closes the long position opened by")
        for r in caplog.records
    )
    [chain] = chains(tmp_path, "open-it")
    [order] = chain["orders"]
    assert [(f["symbol"], f["side"], f["price"], f["kind"]) for f in order["fills"]] == [
        (call, "buy", order["fills"][0]["price"], "trade"),
        (call, "sell", "0", "expired"),
    ]
    # And as a person reads it.
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\npath = "{tmp_path / "ledger.db"}"\n'
    )
    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(
        cli, ["explain", order["order"]["client_order_id"]], obj=AppContext("settings.toml")
    )
    assert shown.exit_code == 0, shown.output
    assert "expired" in shown.stdout and call in shown.stdout


# -- across runs of one session ------------------------------------------------------------


@pytest.mark.parametrize("broker", ["paper", "ibkr_like"])
def test_a_run_restarted_after_the_open_still_links_the_exercise(
    broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run(week(2, 3, 4, close=610), tmp_path, broker, session="march")
    first = MemorySink.last
    assert first is not None
    [order] = first.orders
    cid = order.client_order_id
    opened_in = ledger_fills(tmp_path)[0][0]

    caplog.clear()
    run(week(5, 6, 9, close=610), tmp_path, broker, session="march")
    second = MemorySink.last
    assert second is not None and second is not first
    assert second.orders == []
    call, shares = second.fills
    assert [(f.symbol, f.side, f.kind) for f in (call, shares)] == [
        (option("C").ticker, Side.SELL, FillKind.EXERCISED),
        ("SPY", Side.BUY, FillKind.EXERCISED),
    ]
    assert {(f.client_order_id, f.decision_id) for f in (call, shares)} == {(cid, "open-it")}
    assert NOT_SENT not in caplog.text
    rows = ledger_fills(tmp_path)
    assert [r[0] == opened_in for r in rows] == [True, False, False]
    assert {r[1:3] for r in rows} == {(cid, "open-it")}
    # explain shows them under the decision of the first run, where the order is.
    [chain] = chains(tmp_path, "open-it")
    assert chain["run_id"] == opened_in
    [listed] = chain["orders"]
    assert [f["kind"] for f in listed["fills"]] == ["trade", "exercised", "exercised"]
    assert chains(tmp_path, cid) == [chain]


def test_a_settlement_with_no_order_of_the_session_behind_it_is_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run(week(2, 3, 4, close=610), tmp_path, "ibkr_like", session="one")
    caplog.clear()
    run(week(5, 6, 9, close=610), tmp_path, "ibkr_like", session="another")
    second = MemorySink.last
    assert second is not None
    assert {(f.client_order_id, f.decision_id) for f in second.fills} == {("", "")}
    assert NOT_SENT not in caplog.text
    assert (
        f"{option('C').ticker} exercised: no order of this session opened the position"
        in caplog.text
    )


# -- the pieces -------------------------------------------------------------------------------


def fill(symbol: str, side: Side, kind: FillKind = FillKind.TRADE, cid: str = "tp-1") -> Fill:
    return Fill(
        execution_id="e",
        client_order_id=cid,
        decision_id="d-1",
        symbol=symbol,
        side=side,
        quantity=D(1),
        price=D(0),
        ts=at(6),
        kind=kind,
    )


def test_only_a_fill_that_opens_or_adds_counts_as_the_opening() -> None:
    openings = Openings("r1")
    call = option("C").ticker
    openings.note(fill(call, Side.BUY, cid="tp-open"), D(0))
    openings.note(fill(call, Side.BUY, cid="tp-add"), D(1))
    openings.note(fill(call, Side.SELL, cid="tp-reduce"), D(2))
    assert openings.of(fill(call, Side.SELL, FillKind.EXPIRED, "")) == Opening(
        "r1", "tp-add", "d-1"
    )
    # A short would have been opened by a sell; none was.
    assert openings.of(fill(call, Side.BUY, FillKind.EXPIRED, "")) is None


def test_an_unlinked_delivery_names_what_it_is() -> None:
    shares = fill("SPY", Side.SELL, FillKind.EXERCISED)
    assert describe(shares, None, "SPY   260306P00600000") == (
        "1 SPY sold at 0 on the exercise of SPY   260306P00600000: "
        "no order of this session opened the position"
    )
