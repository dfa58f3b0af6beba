"""``tradepipe order options --strategy``: a named strategy whose legs the paper chain chooses."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.options import listed_expiries
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import paper_account_seeing, write_settings

NEW_YORK = ZoneInfo("America/New_York")
SPREAD = ["--strategy", "bull_call_spread", "--dte", "30", "--strikes", "600,610"]
LIMIT = ["--type", "limit", "--limit-price", "3.25"]


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """A paper account that has seen SPY at 600 (its chain is built around it), a ledger."""
    write_settings(
        workdir,
        """
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.brokers.paper]
state_file = "paper.json"
[default.logging]
dir = "logs"
""",
    )
    paper_account_seeing("SPY", 600.0)
    return workdir


def options(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, ["order", "options", "SPY", *args], obj=app)


def working() -> list[Any]:
    broker = PaperBroker(PaperBroker.Settings(state_file="paper.json"))
    broker.connect()
    return list(broker.open_orders())


def ledger(sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect("ledger.db") as db:
        return db.execute(sql).fetchall()


def strikes(instrument: dict[str, Any]) -> list[tuple[int, str, str]]:
    return sorted(
        (leg["ratio"], leg["instrument"]["right"], leg["instrument"]["strike"])
        for leg in instrument["legs"]
    )


@pytest.mark.slow
def test_a_spread_by_dte_and_strikes_is_chosen_from_the_chain_and_sent(workdir: Path) -> None:
    result = options(*SPREAD, "--quantity", "2", *LIMIT, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    decision = out["decision"]
    assert decision["source"] == "cli" and decision["action"] == "buy"
    # Strikes as listed, written plainly: "600", never "6E+2".
    assert strikes(decision["instrument"]) == [(-1, "C", "610"), (1, "C", "600")]
    assert decision["option_risk"]["strategy"] == "bull_call_spread"
    assert decision["option_risk"]["max_loss"] == "650.00"  # 3.25 x 100 x 2
    assert out["order"]["status"] == "accepted" and out["run_id"]
    assert [o.client_order_id for o in working()] == [out["order"]["client_order_id"]]
    cid = out["order"]["client_order_id"]
    assert ledger("SELECT client_order_id, source FROM orders") == [(cid, "cli")]
    (extra,) = ledger("SELECT extra FROM decisions")[0]
    assert json.loads(extra)["option_risk"]["strategy"] == "bull_call_spread"


def test_an_iron_condor_by_delta_is_sold_and_dry_run_sends_and_writes_nothing(
    workdir: Path,
) -> None:
    result = options(
        "--strategy", "iron_condor", "--dte", "30", "--delta", "0.2", "--width", "10",
        "--quantity", "1", "--dry-run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["sent"] is False and out["run_id"] is None
    assert out["decision"]["action"] == "sell"  # a credit strategy: its combo is sold
    # The combo is written in its debit form (the condor's legs reversed), then sold.
    (wing_call, wing_put, body_call, body_put) = strikes(out["decision"]["instrument"])
    assert [leg[:2] for leg in (wing_call, wing_put, body_call, body_put)] == [
        (-1, "C"), (-1, "P"), (1, "C"), (1, "P"),
    ]  # fmt: skip
    # The wings are --width beyond the strikes the delta chose.
    assert int(wing_call[2]) - int(body_call[2]) == 10 == int(body_put[2]) - int(wing_put[2])
    assert working() == []
    assert not (workdir / "ledger.db").exists()


def test_selling_a_strategy_takes_its_other_side(workdir: Path) -> None:
    result = options(
        "--strategy", "long_put", "--expiry", _listed(), "--strikes", "580",
        "--side", "sell", "--quantity", "1", "--dry-run", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)["decision"]
    assert decision["action"] == "sell" and decision["instrument"]["kind"] == "option"
    assert decision["instrument"]["strike"] == "580"
    assert decision["instrument"]["expiry"] == _listed()


def test_what_if_shows_the_preview_and_sends_nothing(workdir: Path) -> None:
    result = options(*SPREAD, "--quantity", "1", *LIMIT, "--what-if")
    assert result.exit_code == 0, result.output
    assert "What-if" in result.output and "not sent (dry run)" in result.output
    assert working() == []
    assert not (workdir / "ledger.db").exists()


def test_a_strategy_the_chain_cannot_build_exits_1_and_writes_nothing(workdir: Path) -> None:
    args = ["--strategy", "long_call", "--expiry", "2030-01-04", "--strikes", "600"]
    result = options(*args, "--quantity", "1")
    assert result.exit_code == 1
    assert "options order rejected: options.expiry: no options expire on 2030-01-04" in (
        result.stderr
    )
    assert "recorded" not in result.stderr
    assert not (workdir / "ledger.db").exists()  # chosen in a dry run: no run, no record
    assert working() == []


def test_strikes_that_round_to_one_listed_strike_are_rejected_showing_them_plainly(
    workdir: Path,
) -> None:
    result = options(
        "--strategy", "bull_call_spread", "--dte", "30", "--strikes", "600,601",
        "--quantity", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert "round to the same listed strike (600, 600)" in out["rejected"]["error"]
    assert out["rejected"]["raw"]["options"]["strikes"] == ["600", "601"]
    assert out["run_id"] is None and not (workdir / "ledger.db").exists()


def test_a_rejection_in_a_dry_run_is_not_recorded(workdir: Path) -> None:
    args = ["--strategy", "long_call", "--expiry", "2030-01-04", "--strikes", "600"]
    result = options(*args, "--quantity", "1", "--dry-run")
    assert result.exit_code == 1
    assert "options order rejected: options.expiry" in result.stderr
    assert "recorded" not in result.stderr
    assert not (workdir / "ledger.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SPREAD, "--leg", "buy C 600 2030-01-18"], "give --leg or --strategy, not both"),
        ([], "give --leg (once per leg) or --strategy"),
        (["--leg", "buy C 600 2030-01-18", "--dte", "30"], "--dte needs --strategy"),
        (["--strategy", "long_call", "--strikes", "600"], "give one of --expiry and --dte"),
        (
            ["--strategy", "long_call", "--dte", "30", "--expiry", "2030-01-18", "--delta", "0.5"],
            "give one of --expiry and --dte",
        ),
        (["--strategy", "long_call", "--dte", "30"], "give one of --strikes and --delta"),
        (
            ["--strategy", "long_call", "--dte", "30", "--strikes", "600", "--delta", "0.5"],
            "give one of --strikes and --delta",
        ),
        (["--strategy", "bull_call_spread", "--dte", "30", "--strikes", "600"], "--strikes: a"),
        (["--strategy", "long_call", "--dte", "30", "--strikes", "6OO"], "--strikes: cannot read"),
        (["--strategy", "long_call", "--dte", "30", "--strikes", "-5"], "--strikes: Input should"),
        (["--strategy", "long_call", "--dte", "30", "--delta", "1.5"], "--delta: Input should"),
        (["--strategy", "long_call", "--dte", "-1", "--delta", "0.5"], "--dte: Input should"),
        (
            ["--strategy", "long_call", "--dte", "30", "--strikes", "600", "--width", "5"],
            "--width goes with --delta",
        ),
        (["--strategy", "butterfly", "--dte", "30", "--strikes", "600"], "'--strategy'"),
        (["--strategy", "long_call", "--expiry", "soon", "--strikes", "600"], "'--expiry'"),
        ([*SPREAD, "--type", "stop"], "--type: an options strategy is sent as a market or limit"),
        ([*SPREAD, "--type", "stop", "--stop-price", "1"], "--stop-price: not supported"),
        ([*SPREAD, "--type", "limit"], "--limit-price is required for a limit order"),
        ([*SPREAD, "--limit-price", "3"], "--limit-price makes no sense for a market order"),
        ([*SPREAD, "--quantity", "0"], "--quantity: Input should be greater than 0"),
        # The order rules (issue 15.9), before the broker's chain is asked.
        ([*SPREAD, "--quantity", "1.5"], "--quantity 1.5 is not a whole number of combos"),
        (
            ["--strategy", "long_call", "--expiry", "2020-01-17", "--strikes", "600"],
            "options.expiry: an option expired on 2020-01-17",
        ),
        (
            ["--strategy", "long_call", "--expiry", "9999-12-31", "--strikes", "600"],
            "options.expiry: an option expires on 9999-12-31, more than 39 months after",
        ),
        (["--leg", "buy C 600 2020-01-17"], "option SPY 2020-01-17 600 C expired on 2020-01-17"),
        (["--leg", "buy C 600 9999-12-31"], "expires on 9999-12-31, more than 39 months after"),
        (
            ["--leg", "buy C 600 2030-01-18", "--leg", "sell C 610 9999-12-31"],
            "option SPY 9999-12-31 610 C expires on 9999-12-31",
        ),
        (
            ["--leg", "buy C 600 2030-01-18", "--quantity", "0.5"],
            "--quantity 0.5 is not a whole number of option contracts",
        ),
    ],
)
def test_bad_strategy_orders_are_usage_errors_that_change_nothing(
    workdir: Path, args: list[str], message: str
) -> None:
    if "--quantity" not in args:
        args = [*args, "--quantity", "1"]
    account = (workdir / "paper.json").read_bytes()
    result = options(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert (workdir / "paper.json").read_bytes() == account
    assert working() == []
    assert not (workdir / "ledger.db").exists()


def _listed() -> str:
    """An expiry the paper chain lists (a monthly one, a few weeks on)."""
    return listed_expiries(dt.datetime.now(NEW_YORK).date())[6].isoformat()
