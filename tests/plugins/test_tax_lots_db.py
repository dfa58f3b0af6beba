"""Tax lots in the ledger, on SQLite and PostgreSQL, and the commands that show them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.tax.lots import Method
from tradepipe.plugins.tax.lots_db import read_lots, rebuild_lots

# Two runs. The AAPL loss of 2026-02-02 (200 on 100 shares) is washed by the buys of
# 2026-02-10 and -11 (65 shares: 130 disallowed); MSFT is held over a year (long-term).
FILLS = [
    ("r1", "e1", "AAPL", "buy", "100", "10", "0", "2026-01-05T15:00:00+00:00"),
    ("r1", "m1", "MSFT", "buy", "10", "300", "1", "2025-01-06T15:00:00+00:00"),
    ("r1", "e2", "AAPL", "sell", "100", "8", "0", "2026-02-02T15:00:00+00:00"),
    ("r2", "e3", "AAPL", "buy", "60", "9", "0", "2026-02-10T15:00:00+00:00"),
    ("r2", "m2", "MSFT", "sell", "4", "400", "1", "2026-01-07T15:00:00+00:00"),
    # The same execution id in another run is another execution.
    ("r2", "e1", "AAPL", "buy", "5", "9.5", "0", "2026-02-11T15:00:00+00:00"),
]


#: Both runs traded one paper account file.
ACCOUNT = "paper:/home/me/paper-account.json"


def _run(conn: Any, run_id: str, account: str, started: str = "2026-01-05T14:00:00+00:00") -> None:
    conn.execute(
        text(
            "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
            "bars, status, account) VALUES (:run, :run, :started, 'test', 'paper', 'list', "
            "'[]', 0, 'completed', :account)"
        ),
        {"run": run_id, "started": started, "account": account},
    )


def _ledger_with_fills(url: str) -> None:
    engine = open_engine(url)
    with engine.begin() as conn:
        _run(conn, "r1", ACCOUNT, "2025-01-06T14:00:00+00:00")
        _run(conn, "r2", ACCOUNT, "2026-02-10T14:00:00+00:00")
        for run, eid, symbol, side, qty, price, fee, ts in FILLS:
            conn.execute(
                text(
                    "INSERT INTO fill_rows (run_no, execution_id, client_order_id, decision_id, "
                    "symbol, side, quantity, price, commission, multiplier, ts) VALUES "
                    "((SELECT run_no FROM runs WHERE run_id = :run), "
                    ":eid, 'tp-1', 'd1', :symbol, :side, :qty, :price, :fee, '1', :ts)"
                ),
                {
                    "run": run,
                    "eid": eid,
                    "symbol": symbol,
                    "side": side,
                    "qty": qty,
                    "price": price,
                    "fee": fee,
                    "ts": ts,
                },
            )
    engine.dispose()


def test_rebuild_writes_the_lots_and_is_idempotent(ledger_url: str) -> None:
    _ledger_with_fills(ledger_url)
    engine = open_engine(ledger_url)
    try:
        rebuild_lots(engine, Method.FIFO)
        first = [[r.model_dump() for r in rows] for rows in read_lots(engine)]
        rebuild_lots(engine, Method.FIFO)
        assert [[r.model_dump() for r in rows] for rows in read_lots(engine)] == first
        open_rows, closed = read_lots(engine)
        assert [(r.lot_id, str(r.quantity), str(r.basis)) for r in open_rows] == [
            ("m1", "6", "1800.6"),
            ("e3", "60", "660"),
            ("r2/e1", "5", "57.5"),
        ]
        assert [(r.symbol, r.term, str(r.adjustment), str(r.gain)) for r in closed] == [
            ("MSFT", "long", "0", "398.6"),
            ("AAPL", "short", "130", "-70"),
        ]
        rebuild_lots(engine, Method.LIFO)
        assert {r.method for r in read_lots(engine)[0]} == {"lifo"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_lots_and_tax_report_commands(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ledger_with_fills(ledger_url)
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{ledger_url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def tp(*args: str) -> str:
        result = CliRunner().invoke(
            cli, list(args), obj=AppContext(settings_path="settings.toml"), catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    closed = json.loads(tp("ledger", "lots", "--closed", "--json"))
    assert set(closed) == {"account", "account_label", "method", "closed", "notes"}
    assert (closed["account"], closed["account_label"]) == (ACCOUNT, "paper paper-account.json")
    assert [(r["lot_id"], r["gain"], r["adjustment"]) for r in closed["closed"]] == [
        ("m1", "398.6", "0"),
        ("r1/e1", "-70", "130"),
    ]
    opened = json.loads(tp("ledger", "lots", "--open", "--year", "2025", "--json"))
    assert [r["lot_id"] for r in opened["open"]] == ["m1"]
    report = json.loads(tp("ledger", "tax-report", "--year", "2026", "--json"))
    assert report["totals"] == {
        "proceeds": "2399.00",
        "basis": "2200.40",
        "short_term": "-70.00",
        "long_term": "398.60",
        "total": "328.60",
        "wash_sale_disallowed": "130.00",
    }
    assert set(report["symbols"]) == {"AAPL", "MSFT"}
    assert "328.6" in tp("ledger", "tax-report", "--year", "2026")
    assert "Open lots (hifo)" in tp("ledger", "lots", "--method", "hifo")


@pytest.mark.slow
def test_replays_never_pool_with_each_other_or_with_an_account(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two identical replays and the account: each report covers one of them."""
    _ledger_with_fills(ledger_url)
    engine = open_engine(ledger_url)
    with engine.begin() as conn:
        for n, run in enumerate(("replay-1", "replay-2")):
            _run(conn, run, f"replay:{run}", f"2026-03-0{n + 1}T14:00:00+00:00")
            for eid, side, qty, price, ts in (
                ("x1", "buy", "10", "100", "2026-02-02T15:00:00+00:00"),
                ("x2", "sell", "10", "90", "2026-02-03T15:00:00+00:00"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO fill_rows (run_no, execution_id, client_order_id, "
                        "decision_id, symbol, side, quantity, price, commission, multiplier, ts) "
                        "VALUES "
                        "((SELECT run_no FROM runs WHERE run_id = :run), "
                        ":eid, 'tp-9', 'd9', 'AAPL', :side, :qty, :price, '0', '1', :ts)"
                    ),
                    {"run": run, "eid": eid, "side": side, "qty": qty, "price": price, "ts": ts},
                )
    engine.dispose()
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{ledger_url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def report(*args: str) -> dict[str, Any]:
        result = CliRunner().invoke(
            cli,
            ["tax", "report", "--year", "2026", "--json", *args],
            obj=AppContext(settings_path="settings.toml"),
        )
        assert result.exit_code == 0, result.output
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    latest = report()  # the latest run's account: the second replay, alone
    assert latest["account"] == "replay:replay-2" and latest["account_label"] == "simulated"
    assert [r["gain_or_loss"] for r in latest["rows"]] == ["-100.00"]
    assert [r["adjustment_code"] for r in latest["rows"]] == [""]  # no wash against replay-1
    assert report("--run", "replay-1")["rows"] == latest["rows"]
    account = report("--account", "paper-account.json")
    assert account["account"] == ACCOUNT
    assert {r["description"] for r in account["rows"]} == {"100 sh. AAPL", "4 sh. MSFT"}
    bad = CliRunner().invoke(
        cli,
        ["tax", "report", "--year", "2026", "--account", "U9"],
        obj=AppContext(settings_path="settings.toml"),
    )
    assert bad.exit_code == 2 and "names no account in the ledger" in bad.output
