"""A cancel confirmed by the broker is written into the order's history in the ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import write_settings

SETTINGS = """
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "buying_power"]
sinks = ["sql"]
[default.brokers.paper]
symbols = ["AAPL"]
state_file = "paper.json"
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.logging]
dir = "logs"
"""


@pytest.fixture
def workdir(workdir: Path) -> Path:
    write_settings(workdir, SETTINGS)
    return workdir


def tp(*args: str) -> Any:
    result = CliRunner().invoke(
        cli, [*args, "--json"], obj=AppContext(settings_path="settings.toml")
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def history(db: Path, cid: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT status FROM order_events WHERE client_order_id = ? ORDER BY seq", (cid,)
        )
        return [status for (status,) in rows]


@pytest.mark.slow
def test_a_cancel_ends_the_order_in_the_run_that_sent_it(workdir: Path) -> None:
    placed = tp(
        "order", "stock", "AAPL", "--side", "buy", "--quantity", "1",
        "--type", "limit", "--limit-price", "1",
    )  # fmt: skip
    cid = placed["order"]["client_order_id"]
    assert history(workdir / "ledger.db", cid)[-1] == "accepted"

    canceled = tp("broker", "cancel", cid)
    assert canceled["status"] == "canceled" and canceled["final"] is True
    assert canceled["ledger_run"]
    assert history(workdir / "ledger.db", cid)[-1] == "canceled"
    with sqlite3.connect(workdir / "ledger.db") as conn:
        (run_id,) = conn.execute(
            "SELECT run_id FROM order_events WHERE client_order_id = ? AND status = 'canceled'",
            (cid,),
        ).fetchone()
        audit = conn.execute("SELECT kind, subject, action FROM audit").fetchall()
    assert run_id == placed["run_id"]  # the order's history stays in one run
    assert audit == [("order_end", cid, "adopted")]

    # Cancelling again changes nothing in the ledger: the order's end is known.
    again = CliRunner().invoke(
        cli, ["broker", "cancel", cid, "--json"], obj=AppContext(settings_path="settings.toml")
    )
    assert history(workdir / "ledger.db", cid).count("canceled") == 1
    assert again.exit_code != 0 or json.loads(again.stdout)["ledger_run"] is None


@pytest.mark.slow
def test_without_a_ledger_a_cancel_still_works(workdir: Path) -> None:
    placed = tp(
        "order", "stock", "AAPL", "--side", "buy", "--quantity", "1",
        "--type", "limit", "--limit-price", "1",
    )  # fmt: skip
    (workdir / "ledger.db").unlink()
    canceled = tp("broker", "cancel", placed["order"]["client_order_id"])
    assert canceled["status"] == "canceled" and canceled["ledger_run"] is None
    assert not (workdir / "ledger.db").exists()
