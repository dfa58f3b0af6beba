"""A combo's fill is booked per leg: in the run's book, the ledger's fills and tax lots.

A bull call spread is bought and, two days later, sold again on the paper
simulator. What the account holds in between is two option positions (each
leg's OCC symbol), never one position under the combo's ticker; the ledger
keeps the order's fill at the net price and one row per leg; the tax lots are
the legs', and closing the spread leaves no lot behind.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.clock import ManualClock
from tradepipe.context import RunContext
from tradepipe.executor import Executor
from tradepipe.instruments import Combo, Leg, Option
from tradepipe.orders import Fill, Side
from tradepipe.portfolio import Book
from tradepipe.testing import T0, bar, replay

D = Decimal
SPREAD = {
    "symbol": "SPY",
    "confidence": 90,
    "quantity": 1,
    "options": {"strategy": "bull_call_spread", "dte": 45, "strikes": [600, 610]},
}
#: 45 days from Monday 2 March 2026: the monthly of Friday 17 April.
LOW, HIGH = "SPY   260417C00600000", "SPY   260417C00610000"


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *documents: dict[str, Any]) -> Any:
    """Replay four SPY bars with ``documents`` on stdin; the run's executor and summary."""
    made: list[Executor] = []
    start = Executor.__init__

    def keep(self: Executor, *args: Any, **kwargs: Any) -> None:
        start(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Executor, "__init__", keep)
    lines = "".join(json.dumps(d) + "\n" for d in documents)
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    monkeypatch.chdir(tmp_path)
    bars = [bar("SPY", d, open=600.0 + 4 * d) for d in range(4)]
    _pipeline, _result, summary = replay(
        bars,
        run={"strategies": ["decision_stdin"], "risk_filters": [], "sinks": ["sql"]},
        strategies={"decision_stdin": {"wait_for_eof": True}},
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )
    [executor] = made
    return executor, summary


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return db.execute(sql).fetchall()


def test_a_spread_is_held_as_its_legs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executor, summary = run(tmp_path, monkeypatch, SPREAD | {"id": "open", "action": "buy"})
    book = executor.book
    # The run's own book: the legs, by OCC symbol, 100 a contract; no combo ticker.
    assert book.held() == {LOW: D(100), HIGH: D(100)}
    assert (book.quantity(LOW), book.quantity(HIGH)) == (D(1), D(-1))
    [(combo_exec, net, qty, _combo)] = rows(
        tmp_path, "SELECT execution_id, price, quantity, is_combo FROM fills WHERE is_combo"
    )
    legs = rows(
        tmp_path,
        "SELECT symbol, side, quantity, price, multiplier FROM fills "
        f"WHERE combo_execution_id = '{combo_exec}' ORDER BY symbol",
    )
    assert [(s, side, q) for s, side, q, _p, _m in legs] == [
        (LOW, "buy", "1"),
        (HIGH, "sell", "1"),
    ]
    # The legs' prices make the net the order filled at.
    assert D(legs[0][3]) - D(legs[1][3]) == D(net) and D(qty) == 1
    assert {m for *_r, m in legs} == {"100"}
    # The order's figures stay the combo's: one fill, at the net.
    assert summary["fills"] == 1
    positions = {p["symbol"]: p["quantity"] for p in summary["positions"]}
    assert positions == {LOW: "1", HIGH: "-1"}
    [(instrument,)] = rows(tmp_path, "SELECT instrument FROM orders")
    assert json.loads(instrument)["kind"] == "combo"


@pytest.mark.slow
def test_closing_a_spread_leaves_no_phantom_lot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pipeline, summary = run(
        tmp_path,
        monkeypatch,
        SPREAD | {"id": "open", "action": "buy"},
        SPREAD | {"id": "close", "action": "sell"},
    )
    assert summary["positions"] == [] and summary["fills"] == 2
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\npath = "{tmp_path / "ledger.db"}"\n[default.logging]\nfile = false\n'
    )
    result = CliRunner().invoke(
        cli, ["tax", "lots", "--json"], obj=AppContext(settings_path="settings.toml")
    )
    assert result.exit_code == 0, result.output
    lots = json.loads(result.stdout)
    assert lots["open"] == []
    closed = {(r["symbol"], r["side"], r["quantity"]) for r in lots["closed"]}
    assert closed == {(LOW, "long", "1"), (HIGH, "short", "1")}
    legs = rows(tmp_path, "SELECT price FROM fills WHERE combo_execution_id IS NOT NULL")
    gains = sum(D(r["gain"]) for r in lots["closed"])
    commissions = sum(
        D(c) for (c,) in rows(tmp_path, "SELECT commission FROM fills WHERE is_combo")
    )
    # What the legs realized, less what the two orders paid, is the lots' gain.
    assert len(legs) == 4
    assert gains == D(summary["realized_pnl"]) - commissions


def _spread() -> Combo:
    expiry = dt.date(2026, 4, 17)
    low = Option(underlying="SPY", expiry=expiry, strike=D(600), right="C")
    high = Option(underlying="SPY", expiry=expiry, strike=D(610), right="C")
    return Combo(legs=(Leg(instrument=low, ratio=1), Leg(instrument=high, ratio=-1)))


@pytest.mark.parametrize(
    ("low", "high", "held"),
    [("2", "-2", "2"), ("3", "-1", "1"), ("-2", "2", "-2"), ("2", "0", "0"), ("2", "2", "0")],
)
def test_a_combos_position_is_what_its_legs_make_whole(low: str, high: str, held: str) -> None:
    """Sizing and the filters see a spread held as its legs (closing it reduces)."""
    combo = _spread()
    book = Book(D(100_000))
    for n, (leg, qty) in enumerate(zip(combo.legs, (low, high), strict=True)):
        if D(qty):
            book.apply(
                Fill(
                    execution_id=f"x{n}",
                    client_order_id="tp-1",
                    decision_id="d",
                    symbol=leg.instrument.ticker,
                    side=Side.BUY if D(qty) > 0 else Side.SELL,
                    quantity=abs(D(qty)),
                    price=D(5),
                    multiplier=D(100),
                    ts=T0,
                )
            )
    ctx = RunContext(ManualClock(T0), book, {})
    ticker = combo.ticker.upper()
    assert ctx.position(ticker) == 0  # unknown as a combo until judged
    ctx.know(combo)
    assert ctx.position(ticker) == D(held) and ctx.exposure(ticker) == D(held)
    assert ctx.position(LOW) == D(low)  # each leg is still its own position
    assert dt.date(2026, 4, 17) == combo.legs[0].instrument.expiry
