"""Form 8949 through ``tradepipe tax report``, on SQLite and PostgreSQL: boxes, rounding,
combined rows, every year, and the option wash-sale setting; figures worked by hand."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.tax.documents import FORM_8949

CALL = "AAPL  260619C00050000"
# (execution id, symbol, side, quantity, price, commission, multiplier, date)
FILLS = [
    # Lot a: 10 @ 100 + 1.00 = 1001.00; lot b: 10 @ 110 + 1.00 = 1101.00. Sold 15 @ 120 -
    # 1.50 = 1798.50, shared 10/15 -> 1199.00 and 599.50: FIFO all of a (gain 198.00) and
    # half of b (599.50 - 550.50 = 49.00), both short-term.
    ("a", "AAPL", "buy", "10", "100", "1.00", "1", "2026-01-05"),
    ("b", "AAPL", "buy", "10", "110", "1.00", "1", "2026-01-06"),
    ("s", "AAPL", "sell", "15", "120", "1.50", "1", "2026-03-02"),
    # 1 MSFT @ 20.005 (basis 20.005 -> 20.00), sold @ 30.015 (30.015 -> 30.02) over a year
    # later: gain 30.02 - 20.00 = 10.02 on the form (the exact 10.01 would not add up).
    ("m1", "MSFT", "buy", "1", "20.005", "0", "1", "2025-01-06"),
    ("m2", "MSFT", "sell", "1", "30.015", "0", "1", "2026-02-02"),
    # A 2025 sale: 5 SPY @ 400 = 2000.00 sold @ 390 = 1950.00, a loss of 50.00.
    ("p1", "SPY", "buy", "5", "400", "0", "1", "2025-02-03"),
    ("p2", "SPY", "sell", "5", "390", "0", "1", "2025-03-03"),
]
# 100 AAPL @ 50 = 5000.00, sold @ 45 = 4500.00 30 days later (a loss of 500.00), and
# 1 call (x100) @ 2.00 = 200.00 nine days after the sale.
OPTION_WASH = [
    ("b", "AAPL", "buy", "100", "50", "0", "1", "2026-03-02"),
    ("s", "AAPL", "sell", "100", "45", "0", "1", "2026-04-01"),
    ("c", CALL, "buy", "1", "2", "0", "100", "2026-04-10"),
]


def _ledger(url: str, fills: list[tuple[str, ...]]) -> None:
    engine = open_engine(url)
    pg = url.startswith("postgresql")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
                "bars, status, account) VALUES ('r1', 'r1', :ts, 'test', 'paper', 'list', '[]', "
                "0, 'completed', 'paper:/f8949/account.json')"
            ),
            {"ts": dt.datetime(2025, 1, 1, tzinfo=dt.UTC) if pg else "2025-01-01T00:00:00+00:00"},
        )
        for eid, symbol, side, qty, price, fee, mult, day in fills:
            ts = f"{day}T15:00:00+00:00"
            conn.execute(
                text(
                    "INSERT INTO fill_rows (run_no, execution_id, client_order_id, decision_id, "
                    "symbol, side, quantity, price, commission, multiplier, ts) VALUES "
                    "((SELECT run_no FROM runs WHERE run_id = 'r1'), "
                    ":eid, 'tp-1', 'd1', :symbol, :side, :qty, :price, :fee, :mult, :ts)"
                ),
                {
                    "eid": eid,
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "price": price,
                    "fee": fee,
                    "mult": mult,
                    "ts": dt.datetime.fromisoformat(ts) if pg else ts,
                },
            )
    engine.dispose()


@pytest.fixture
def report(ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``tax report … --json`` over a ledger of ``fills``, with ``tax`` lines in ``[tax]``."""
    monkeypatch.chdir(tmp_path)

    def run(fills: list[tuple[str, ...]], *args: str, tax: str = "") -> dict[str, Any]:
        _ledger(ledger_url, fills)
        (tmp_path / "settings.toml").write_text(
            f'[default.sinks.sql]\nurl = "{ledger_url}"\n[default.logging]\nfile = false\n'
            f"[default.tax]\n{tax}\n"
        )
        result = CliRunner().invoke(
            cli,
            ["tax", "report", *args, "--json"],
            obj=AppContext(settings_path="settings.toml"),
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    return run


def test_the_csv_column_by_column_boxes_a_and_d_rounded_rows_and_totals(report: Any) -> None:
    data = report(FILLS, "--year", "2026", "--csv", "f8949.csv")
    with open("f8949.csv", newline="") as f:
        written = list(csv.reader(f))
    # Columns (a)-(h), term, box. 1199.00 + 599.50 = 1798.50; 1001.00 + 550.50 = 1551.50;
    # 198.00 + 49.00 = 247.00.
    assert written == [
        list(FORM_8949),
        *(
            line.split(",")
            for line in (
                "10 sh. AAPL,01/05/2026,03/02/2026,1199.00,1001.00,,,198.00,short,A",
                "5 sh. AAPL,01/06/2026,03/02/2026,599.50,550.50,,,49.00,short,A",
                "1 sh. MSFT,01/06/2025,02/02/2026,30.02,20.00,,,10.02,long,D",
                "Total box A,,,1798.50,1551.50,,0.00,247.00,short,A",
                "Total box D,,,30.02,20.00,,0.00,10.02,long,D",
                "Total short,,,1798.50,1551.50,,0.00,247.00,short,",
                "Total long,,,30.02,20.00,,0.00,10.02,long,",
            )
        ),
    ]
    assert (data["year"], data["period"], data["combined"]) == (2026, "2026", False)
    assert [list(r.values()) for r in data["rows"]] == written[1:4]
    assert data["box_totals"]["A"]["gain_or_loss"] == "247.00"
    assert data["totals"]["long"]["gain_or_loss"] == "10.02"


def test_basis_not_reported_and_combined_sales(report: Any) -> None:
    data = report(FILLS, "--year", "2026", "--combine", tax="basis_reported = false")
    # One row for sale s: 10 + 5 shares, lots acquired 01/05 and 01/06, so VARIOUS;
    # 1199.00 + 599.50 = 1798.50, 1001.00 + 550.50 = 1551.50, gain 247.00. Box B and E.
    assert [",".join(r.values()) for r in data["rows"]] == [
        "15 sh. AAPL,VARIOUS,03/02/2026,1798.50,1551.50,,,247.00,short,B",
        "1 sh. MSFT,01/06/2025,02/02/2026,30.02,20.00,,,10.02,long,E",
    ]
    assert list(data["box_totals"]) == ["B", "E"]
    assert data["combined"] is True


def test_every_year_is_labelled_and_sums_all_the_sales(report: Any) -> None:
    data = report(FILLS, "--all")
    assert (data["year"], data["period"]) == (None, "all years")
    # Short-term by date sold: SPY (2025), then AAPL; then MSFT, long-term.
    assert [(r["description"], r["date_sold"]) for r in data["rows"]] == [
        ("5 sh. SPY", "03/03/2025"),
        ("10 sh. AAPL", "03/02/2026"),
        ("5 sh. AAPL", "03/02/2026"),
        ("1 sh. MSFT", "02/02/2026"),
    ]
    # 1950.00 + 1798.50 = 3748.50; 2000.00 + 1551.50 = 3551.50; -50.00 + 247.00 = 197.00.
    assert data["totals"]["short"] == {
        "proceeds": "3748.50",
        "cost_basis": "3551.50",
        "adjustment_amount": "0.00",
        "gain_or_loss": "197.00",
    }


def test_year_and_all_are_one_or_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in ([], ["--year", "2026", "--all"]):
        result = CliRunner().invoke(cli, ["tax", "report", *args], obj=AppContext())
        assert result.exit_code == 2 and "give --year YYYY or --all" in result.output


@pytest.mark.parametrize("on", [True, False])
def test_a_call_on_the_stock_washes_its_loss_only_with_the_setting(report: Any, on: bool) -> None:
    data = report(OPTION_WASH, "--year", "2026", tax=f"wash_sale_options = {str(on).lower()}")
    (row,) = data["rows"]
    assert (row["proceeds"], row["cost_basis"]) == ("4500.00", "5000.00")
    if on:
        # 500.00 disallowed: 4500.00 - 5000.00 + 500.00 = 0.00.
        assert (row["adjustment_code"], row["adjustment_amount"], row["gain_or_loss"]) == (
            "W",
            "500.00",
            "0.00",
        )
    else:
        assert (row["adjustment_code"], row["gain_or_loss"]) == ("", "-500.00")
    lots = CliRunner().invoke(
        cli,
        ["tax", "lots", "--open", "--json"],
        obj=AppContext(settings_path="settings.toml"),
        catch_exceptions=False,
    )
    (call,) = json.loads(lots.stdout)["open"]
    # On: 200.00 + 500.00 = 700.00, acquired 04-10 less the 30 days held = 03-11.
    assert (call["basis"], call["acquired"]) == (
        ("700", "2026-03-11") if on else ("200", "2026-04-10")
    )
