"""A hand-checked corpus: trade sequences through ``tradepipe tax report``, figures worked by hand.

Each case is a ledger of fills (15:00 UTC, so the New York trade date is the
UTC date) and the Form 8949 rows expected for 2026 (or the year in ``YEARS``),
worked out in the comments to the cent: (description, acquired, sold,
proceeds, basis, code, adjustment, gain, term). Decimals are compared as
numbers (``1199`` equals ``1199.00``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.ledger.db import open_engine

D = Decimal
# (execution id, symbol, side, quantity, price, commission, multiplier, date[, kind])
Fills = list[tuple[str, ...]]
Row = tuple[str, str, str, str, str, str, str, str, str]

CASES: dict[str, tuple[str, Fills, list[Row]]] = {
    # Lot A: 10 @ 100 + 1.00 = 1001.00; lot B: 10 @ 110 + 1.00 = 1101.00.
    # Sale: 15 @ 120 - 1.50 = 1798.50, shared by quantity: 10/15 -> 1199.00, 5 -> 599.50.
    # FIFO: all of A (1199.00 - 1001.00 = 198.00), half of B (599.50 - 550.50 = 49.00).
    "fifo_commissions_partial": (
        "fifo",
        [
            ("a", "AAPL", "buy", "10", "100", "1.00", "1", "2026-01-05"),
            ("b", "AAPL", "buy", "10", "110", "1.00", "1", "2026-01-06"),
            ("s", "AAPL", "sell", "15", "120", "1.50", "1", "2026-03-02"),
        ],
        [
            (
                "10 sh. AAPL",
                "01/05/2026",
                "03/02/2026",
                "1199.00",
                "1001.00",
                "",
                "",
                "198.00",
                "short",
            ),
            (
                "5 sh. AAPL",
                "01/06/2026",
                "03/02/2026",
                "599.50",
                "550.50",
                "",
                "",
                "49.00",
                "short",
            ),
        ],
    ),
    # LIFO on the same fills: all of B (1199.00 - 1101.00 = 98.00), half of A
    # (599.50 - 1001.00 / 2 = 599.50 - 500.50 = 99.00).
    "lifo": (
        "lifo",
        [
            ("a", "AAPL", "buy", "10", "100", "1.00", "1", "2026-01-05"),
            ("b", "AAPL", "buy", "10", "110", "1.00", "1", "2026-01-06"),
            ("s", "AAPL", "sell", "15", "120", "1.50", "1", "2026-03-02"),
        ],
        [
            (
                "10 sh. AAPL",
                "01/06/2026",
                "03/02/2026",
                "1199.00",
                "1101.00",
                "",
                "",
                "98.00",
                "short",
            ),
            (
                "5 sh. AAPL",
                "01/05/2026",
                "03/02/2026",
                "599.50",
                "500.50",
                "",
                "",
                "99.00",
                "short",
            ),
        ],
    ),
    # HIFO: of 1000.00, 1200.00 and 1100.00 the dearest (1200.00) goes: 1150.00 - 1200.00
    # = -50.00. No wash sale: the last buy (01-07) is more than 30 days before 03-02.
    "hifo": (
        "hifo",
        [
            ("a", "MSFT", "buy", "10", "100", "0", "1", "2026-01-05"),
            ("b", "MSFT", "buy", "10", "120", "0", "1", "2026-01-06"),
            ("c", "MSFT", "buy", "10", "110", "0", "1", "2026-01-07"),
            ("s", "MSFT", "sell", "10", "115", "0", "1", "2026-03-02"),
        ],
        [
            (
                "10 sh. MSFT",
                "01/06/2026",
                "03/02/2026",
                "1150.00",
                "1200.00",
                "",
                "",
                "-50.00",
                "short",
            )
        ],
    ),
    # Bought 2025-03-03: sold on the anniversary (2026-03-03) is held one year, not
    # more: short. Sold the day after: long. Each 60.00 - 50.00 = 10.00.
    "one_year_boundary": (
        "fifo",
        [
            ("x1", "XOM", "buy", "1", "50", "0", "1", "2025-03-03"),
            ("y1", "YUM", "buy", "1", "50", "0", "1", "2025-03-03"),
            ("x2", "XOM", "sell", "1", "60", "0", "1", "2026-03-03"),
            ("y2", "YUM", "sell", "1", "60", "0", "1", "2026-03-04"),
        ],
        [
            ("1 sh. XOM", "03/03/2025", "03/03/2026", "60.00", "50.00", "", "", "10.00", "short"),
            ("1 sh. YUM", "03/03/2025", "03/04/2026", "60.00", "50.00", "", "", "10.00", "long"),
        ],
    ),
    # Reported for 2024 (see YEARS). Bought 2023-02-28, the holding period counts from
    # 2023-03-01; its first year ends 2024-02-29, so a sale on the leap day is held one
    # year exactly: short (IRS Pub. 550's example). Sold 2024-03-01: long. Each 10.00.
    "leap_year_boundary": (
        "fifo",
        [
            ("k1", "KO", "buy", "1", "50", "0", "1", "2023-02-28"),
            ("p1", "PEP", "buy", "1", "50", "0", "1", "2023-02-28"),
            ("k2", "KO", "sell", "1", "60", "0", "1", "2024-02-29"),
            ("p2", "PEP", "sell", "1", "60", "0", "1", "2024-03-01"),
        ],
        [
            ("1 sh. KO", "02/28/2023", "02/29/2024", "60.00", "50.00", "", "", "10.00", "short"),
            ("1 sh. PEP", "02/28/2023", "03/01/2024", "60.00", "50.00", "", "", "10.00", "long"),
        ],
    ),
    # Short sale: 10 @ 50 - 1.00 = 499.00 proceeds; covered 10 @ 45 + 1.00 = 451.00
    # basis; gain 48.00, short-term. Date acquired: the cover date, when the shares
    # delivered to close the short were bought (Form 8949's instructions), not 04-01.
    "short_sale": (
        "fifo",
        [
            ("o", "TSLA", "sell", "10", "50", "1.00", "1", "2026-04-01"),
            ("c", "TSLA", "buy", "10", "45", "1.00", "1", "2026-04-15"),
        ],
        [
            (
                "10 sh. TSLA (short sale)",
                "04/15/2026",
                "04/15/2026",
                "499.00",
                "451.00",
                "",
                "",
                "48.00",
                "short",
            )
        ],
    ),
    # A short open over a year: sold 5 @ 80 on 2025-02-03 (400.00), covered 5 @ 70 on
    # 2026-03-02 (350.00): gain 50.00. The shares delivered were bought on 03-02 and
    # held no time: short-term, acquired 03/02/2026.
    "short_sale_open_over_a_year": (
        "fifo",
        [
            ("o", "META", "sell", "5", "80", "0", "1", "2025-02-03"),
            ("c", "META", "buy", "5", "70", "0", "1", "2026-03-02"),
        ],
        [
            (
                "5 sh. META (short sale)",
                "03/02/2026",
                "03/02/2026",
                "400.00",
                "350.00",
                "",
                "",
                "50.00",
                "short",
            )
        ],
    ),
    # Option lot x100: 2 @ 3.50 = 700.00 + 1.30 = 701.30. One contract sold @ 4.25:
    # 425.00 - 0.65 = 424.35 against half the basis, 350.65: gain 73.70.
    "option_multiplier_partial": (
        "fifo",
        [
            ("b", "AAPL260619C200", "buy", "2", "3.50", "1.30", "100", "2026-05-01"),
            ("s", "AAPL260619C200", "sell", "1", "4.25", "0.65", "100", "2026-05-20"),
        ],
        [
            (
                "1 AAPL260619C200 (x100)",
                "05/01/2026",
                "05/20/2026",
                "424.35",
                "350.65",
                "",
                "",
                "73.70",
                "short",
            )
        ],
    ),
    # Wash sale: 100 @ 10 (01-05) sold @ 8 (02-02): loss 200.00, all disallowed by the
    # 100 bought @ 9 on 02-20 (18 days later). That lot's basis: 900.00 + 200.00 =
    # 1100.00; its holding period carries the 28 days held: acquired 02-20 - 28 = 01-23.
    # Sold @ 12 on 06-01: 1200.00 - 1100.00 = 100.00.
    "wash_sale_basis_carried": (
        "fifo",
        [
            ("a", "NVDA", "buy", "100", "10", "0", "1", "2026-01-05"),
            ("s1", "NVDA", "sell", "100", "8", "0", "1", "2026-02-02"),
            ("r", "NVDA", "buy", "100", "9", "0", "1", "2026-02-20"),
            ("s2", "NVDA", "sell", "100", "12", "0", "1", "2026-06-01"),
        ],
        [
            (
                "100 sh. NVDA",
                "01/05/2026",
                "02/02/2026",
                "800.00",
                "1000.00",
                "W",
                "200.00",
                "0.00",
                "short",
            ),
            (
                "100 sh. NVDA",
                "01/23/2026",
                "06/01/2026",
                "1200.00",
                "1100.00",
                "",
                "",
                "100.00",
                "short",
            ),
        ],
    ),
    # Partial wash: the same loss of 200.00 on 100 shares, only 40 bought back (02-10):
    # 200.00 x 40/100 = 80.00 disallowed, -120.00 allowed.
    "partial_wash": (
        "fifo",
        [
            ("a", "AMD", "buy", "100", "10", "0", "1", "2026-01-05"),
            ("s1", "AMD", "sell", "100", "8", "0", "1", "2026-02-02"),
            ("r", "AMD", "buy", "40", "9", "0", "1", "2026-02-10"),
        ],
        [
            (
                "100 sh. AMD",
                "01/05/2026",
                "02/02/2026",
                "800.00",
                "1000.00",
                "W",
                "80.00",
                "-120.00",
                "short",
            )
        ],
    ),
}

# Options settled on 2026-06-19 as the paper simulator books them: the option closed at
# 0, then (exercise, assignment) the shares traded at the strike, both of one kind. The
# option's own lots close with no row; its premium goes into the shares' row.
CALL_200 = "AAPL  260619C00200000"
PUT_190 = "AAPL  260619P00190000"
PUT_180 = "AAPL  260619P00180000"
SETTLED = "2026-06-19"
CASES |= {
    # Call bought @ 5.00 + 0.65 = 500.65. Exercised: 100 @ 200 = 20000.00, basis
    # 20000.00 + 500.65 = 20500.65, acquired on the exercise date. Sold @ 210 - 1.00:
    # 20999.00 - 20500.65 = 498.35.
    "long_call_exercised": (
        "fifo",
        [
            ("o", CALL_200, "buy", "1", "5.00", "0.65", "100", "2026-05-01"),
            ("x.1", CALL_200, "sell", "1", "0", "0", "100", SETTLED, "exercised"),
            ("x.2", "AAPL", "buy", "100", "200", "0", "1", SETTLED, "exercised"),
            ("s", "AAPL", "sell", "100", "210", "1.00", "1", "2026-07-01"),
        ],
        [
            (
                "100 sh. AAPL",
                "06/19/2026",
                "07/01/2026",
                "20999.00",
                "20500.65",
                "",
                "",
                "498.35",
                "short",
            )
        ],
    ),
    # 2 puts sold @ 3.10: 620.00 - 1.30 = 618.70 received. Assigned: 200 @ 190 =
    # 38000.00, basis 38000.00 - 618.70 = 37381.30. Sold @ 195: 39000.00 - 37381.30 =
    # 1618.70.
    "short_put_assigned": (
        "fifo",
        [
            ("o", PUT_190, "sell", "2", "3.10", "1.30", "100", "2026-05-01"),
            ("x.1", PUT_190, "buy", "2", "0", "0", "100", SETTLED, "assigned"),
            ("x.2", "AAPL", "buy", "200", "190", "0", "1", SETTLED, "assigned"),
            ("s", "AAPL", "sell", "200", "195", "0", "1", "2026-07-01"),
        ],
        [
            (
                "200 sh. AAPL",
                "06/19/2026",
                "07/01/2026",
                "39000.00",
                "37381.30",
                "",
                "",
                "1618.70",
                "short",
            )
        ],
    ),
    # 100 bought 2025-01-06 @ 150 = 15000.00; a call sold against them @ 4.00 = 400.00.
    # Assigned: sold @ 200 = 20000.00 + 400.00 = 20400.00; gain 5400.00, long-term.
    "short_call_assigned": (
        "fifo",
        [
            ("b", "AAPL", "buy", "100", "150", "0", "1", "2025-01-06"),
            ("o", CALL_200, "sell", "1", "4.00", "0", "100", "2026-05-01"),
            ("x.1", CALL_200, "buy", "1", "0", "0", "100", SETTLED, "assigned"),
            ("x.2", "AAPL", "sell", "100", "200", "0", "1", SETTLED, "assigned"),
        ],
        [
            (
                "100 sh. AAPL",
                "01/06/2025",
                "06/19/2026",
                "20400.00",
                "15000.00",
                "",
                "",
                "5400.00",
                "long",
            )
        ],
    ),
    # 100 bought 2026-01-05 @ 200 = 20000.00; a put bought @ 2.50 = 250.00. Exercised:
    # sold @ 180 = 18000.00 - 250.00 = 17750.00; loss -2250.00, short-term.
    "long_put_exercised": (
        "fifo",
        [
            ("b", "AAPL", "buy", "100", "200", "0", "1", "2026-01-05"),
            ("o", PUT_180, "buy", "1", "2.50", "0", "100", "2026-05-01"),
            ("x.1", PUT_180, "sell", "1", "0", "0", "100", SETTLED, "exercised"),
            ("x.2", "AAPL", "sell", "100", "180", "0", "1", SETTLED, "exercised"),
        ],
        [
            (
                "100 sh. AAPL",
                "01/05/2026",
                "06/19/2026",
                "17750.00",
                "20000.00",
                "",
                "",
                "-2250.00",
                "short",
            )
        ],
    ),
    # Expired worthless on 2026-06-19. The call bought @ 1.20 + 0.65 = 120.65: proceeds
    # 0.00, loss -120.65. The put sold @ 0.80 - 0.65 = 79.35: bought back at 0.00, gain
    # 79.35, acquired on the expiry date as any short's close.
    "options_expired": (
        "fifo",
        [
            ("c", CALL_200, "buy", "1", "1.20", "0.65", "100", "2026-05-01"),
            ("p", PUT_190, "sell", "1", "0.80", "0.65", "100", "2026-05-01"),
            ("c.1", CALL_200, "sell", "1", "0", "0", "100", SETTLED, "expired"),
            ("p.1", PUT_190, "buy", "1", "0", "0", "100", SETTLED, "expired"),
        ],
        [
            (
                f"1 {CALL_200} (x100)",
                "05/01/2026",
                "06/19/2026",
                "0.00",
                "120.65",
                "",
                "",
                "-120.65",
                "short",
            ),
            (
                f"1 {PUT_190} (x100)",
                "06/19/2026",
                "06/19/2026",
                "79.35",
                "0.00",
                "",
                "",
                "79.35",
                "short",
            ),
        ],
    ),
}

#: The tax year a case reports, when not 2026.
YEARS = {"leap_year_boundary": 2024}


def _ledger(url: str, fills: Fills) -> str:
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
                "bars, status, account) VALUES ('r1', 'r1', :ts, 'test', 'paper', 'list', '[]', "
                "0, 'completed', 'paper:/corpus/account.json')"
            ),
            {
                "ts": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
                if url.startswith("postgresql")
                else "2025-01-01T00:00:00+00:00"
            },
        )
        for eid, symbol, side, qty, price, fee, mult, day, *kind in fills:
            conn.execute(
                text(
                    "INSERT INTO fill_rows (run_no, execution_id, client_order_id, decision_id, "
                    "symbol, side, quantity, price, commission, multiplier, ts, kind) VALUES "
                    "((SELECT run_no FROM runs WHERE run_id = 'r1'), "
                    ":eid, 'tp-1', 'd1', :symbol, :side, :qty, :price, :fee, :mult, :ts, "
                    ":kind)"
                ),
                {
                    "eid": eid,
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "price": price,
                    "fee": fee,
                    "mult": mult,
                    "kind": kind[0] if kind else "trade",
                    "ts": dt.datetime.fromisoformat(f"{day}T15:00:00+00:00")
                    if url.startswith("postgresql")
                    else f"{day}T15:00:00+00:00",
                },
            )
    engine.dispose()
    return url


def _same(got: dict[str, str], want: Row) -> bool:
    keys = ("description", "date_acquired", "date_sold", "proceeds", "cost_basis")
    keys2 = ("adjustment_code", "adjustment_amount", "gain_or_loss", "term")
    text_keys = {"description", "date_acquired", "date_sold", "adjustment_code", "term"}
    for key, value in zip(keys + keys2, want, strict=True):
        if key in text_keys or not value:
            if got[key] != value:
                return False
        elif D(got[key]) != D(value):
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_corpus(
    case: str, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method, fills, want = CASES[case]
    url = _ledger(ledger_url, fills)
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)
    year = str(YEARS.get(case, 2026))
    args = ["tax", "report", "--year", year, "--method", method, "--csv", "f8949.csv", "--json"]
    result = CliRunner().invoke(
        cli, args, obj=AppContext(settings_path="settings.toml"), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    rows = data["rows"]
    assert len(rows) == len(want), rows
    for got, expected in zip(rows, want, strict=True):
        assert _same(got, expected), (got, expected)
    # The totals by term add the rows up, and the CSV holds the same rows then the totals.
    for term in ("short", "long"):
        mine = [r for r in want if r[8] == term]
        totals = data["totals"][term]
        assert D(totals["proceeds"]) == sum((D(r[3]) for r in mine), D(0))
        assert D(totals["cost_basis"]) == sum((D(r[4]) for r in mine), D(0))
        assert D(totals["adjustment_amount"]) == sum((D(r[6] or 0) for r in mine), D(0))
        assert D(totals["gain_or_loss"]) == sum((D(r[7]) for r in mine), D(0))
    # Basis reported (the default): box A short-term, D long-term, a total for each box used.
    assert [r["box"] for r in rows] == ["A" if r[8] == "short" else "D" for r in want]
    boxes = sorted({r["box"] for r in rows})
    assert list(data["box_totals"]) == boxes
    with open("f8949.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert written[: len(rows)] == rows
    totals_written = [r["description"] for r in written[len(rows) :]]
    assert totals_written == [f"Total box {b}" for b in boxes] + ["Total short", "Total long"]


def test_open_lots_after_the_corpus_partial_wash(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 40 replacement shares: 360.00 + 80.00 disallowed = 440.00, acquired 02-10 - 28
    # days = 2026-01-13.
    url = _ledger(ledger_url, CASES["partial_wash"][1])
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["tax", "lots", "--open", "--symbol", "amd", "--json"],
        obj=AppContext(settings_path="settings.toml"),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    (lot,) = json.loads(result.stdout)["open"]
    assert (D(lot["quantity"]), D(lot["basis"]), D(lot["wash_adjustment"])) == (40, 440, 80)
    assert lot["acquired"] == "2026-01-13"
