"""``tradepipe run-pipeline`` and ``tradepipe ledger`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from tradepipe.cli import cli
from tradepipe.cli.testing import invoke

REPO_SETTINGS = Path(__file__).parents[2] / "settings.toml"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    shutil.copy(REPO_SETTINGS, tmp_path / "settings.toml")
    return tmp_path


def test_demo_runs_end_to_end_and_the_ledger_holds_everything(workdir: Path) -> None:
    result = invoke("run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["status"] == "completed"
    assert summary["bars"] == 3 * 750

    db = sqlite3.connect(workdir / "tradepipe.db")
    q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
    run_id = summary["run_id"]
    assert q("select bars, status from runs") == [(2250, "completed")]
    decisions = q("select count(*) from decisions")[0][0]
    assert decisions == summary["decisions"] > 10
    # Every decision that led to an order has one verdict per filter, in order.
    for (cid,) in q("select client_order_id from orders"):
        filters = [
            r[0]
            for r in q(f"select filter from verdicts where client_order_id = '{cid}' order by seq")
        ]
        assert filters[0] == "min_confidence"
    statuses = dict(
        q(
            "select e.status, count(*) from order_events e join (select client_order_id c, "
            "max(seq) s from order_events group by client_order_id) l on e.client_order_id = l.c "
            "and e.seq = l.s group by e.status"
        )
    )
    assert statuses.get("filled", 0) == summary["orders"]["filled"] > 0
    assert summary["orders"]["denied"] == statuses.get("denied", 0)
    fills = q("select side, quantity, price, commission from fills")
    assert len(fills) == summary["fills"]
    # Cash from the ledger's fills equals the reported cash, to the cent.
    cash = Decimal(100_000)
    for side, qty, price, commission in fills:
        sign = 1 if side == "buy" else -1
        cash -= sign * Decimal(qty) * Decimal(price) + Decimal(commission)
    assert cash == Decimal(summary["cash"])
    # Every fill links back to its order and decision.
    orphans = q(
        "select count(*) from fills f left join orders o on o.client_order_id = "
        "f.client_order_id left join decisions d on d.decision_id = o.decision_id "
        "where d.decision_id is null"
    )
    assert orphans == [(0,)]
    # Positions in the summary equal the net of the fills.
    net: dict[str, Decimal] = {}
    for symbol, side, qty in q("select symbol, side, quantity from fills"):
        signed = Decimal(qty) if side == "buy" else -Decimal(qty)
        net[symbol] = net.get(symbol, Decimal(0)) + signed
    assert {p["symbol"]: Decimal(p["quantity"]) for p in summary["positions"]} == {
        s: v for s, v in net.items() if v
    }
    market = sum(Decimal(p["market_value"]) for p in summary["positions"])
    equity = Decimal(summary["cash"]) + market
    assert equity == Decimal(summary["equity"])
    assert run_id in (workdir / "logs" / "tradepipe.log").read_text()
    # The equity curve: one account snapshot at the close of each of the 750 days
    # before the last, then the run's final one; equity is cash plus positions.
    snapshots = q(
        "select ts, cash, equity, gross_position_value from account_snapshots order by id"
    )
    assert len(snapshots) == 750
    days = [ts[:10] for ts, *_ in snapshots]
    assert len(set(days)) == 750 and days == sorted(days)
    for _ts, cash_, equity_, gross in snapshots:
        assert abs(Decimal(cash_) + Decimal(gross) - Decimal(equity_)) < Decimal("0.01")
    assert Decimal(snapshots[-1][2]) == Decimal(summary["equity"])
    assert len({Decimal(e) for _t, _c, e, _g in snapshots}) > 100  # it moves with the market


@pytest.mark.slow
@pytest.mark.parametrize(
    "table", ["risk.min_confidance", "strategies.sma_crss", "brokers.papr", "sinks.sqll"]
)
def test_a_misspelt_component_table_stops_the_run_before_it_starts(
    workdir: Path, table: str
) -> None:
    """A table for no installed component is refused by the run itself, as by
    ``config check``: a misspelt filter's limit would otherwise go unheard."""
    (workdir / "settings.toml").write_text(f"[default.{table}]\nthreshold = 90\n")
    result = invoke("run-pipeline", "--no-progress")
    assert result.exit_code == 2, result.output
    assert f"[{table}] configures an unknown" in result.stderr
    assert not (workdir / "tradepipe.db").exists()


def test_table_output_and_ledger_commands(workdir: Path) -> None:
    result = invoke("run-pipeline", "--no-progress")
    assert result.exit_code == 0, result.output
    for word in (
        "bars processed",
        "2250",
        "decisions",
        "orders",
        "fills",
        "cash",
        "equity",
        "realized P&L",
        "unrealized P&L",
    ):
        assert word in result.output
    orders = json.loads(invoke("ledger", "orders", "--json").output)
    assert orders and {"client_order_id", "decision_id", "status"} <= set(orders[0])
    fills = json.loads(invoke("ledger", "fills", "--json").output)
    assert {f["client_order_id"] for f in fills} <= {o["client_order_id"] for o in orders}
    decisions = json.loads(invoke("ledger", "decisions", "--json", "--limit", "3").output)
    assert len(decisions) == 3 and decisions[0]["source"] == "sma_cross"
    positions = json.loads(invoke("ledger", "positions", "--json").output)
    assert positions["account"]["account_id"] == "PAPER"
    runs = json.loads(invoke("ledger", "runs", "--json").output)
    assert runs[0]["status"] == "completed"
    for command in ("orders", "fills", "decisions", "positions", "runs"):
        assert invoke("ledger", command).exit_code == 0
    # --run latest names the default, as explain's and report's --run do.
    latest = json.loads(invoke("ledger", "orders", "--json", "--run", "latest").output)
    assert latest == orders
    unknown = invoke("ledger", "orders", "--run", "no-such-run")
    assert unknown.exit_code == 2 and "no run 'no-such-run'" in unknown.stderr


def test_settings_path_for_ledger_and_overrides(workdir: Path) -> None:
    text = (
        (workdir / "settings.toml")
        .read_text()
        .replace('path = "tradepipe.db"', 'path = "data/ledger.db"')
        .replace("bars = 750", "bars = 60")
    )
    (workdir / "custom.toml").write_text(text)
    result = invoke("--settings", "custom.toml", "run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (workdir / "data" / "ledger.db").exists()
    assert not (workdir / "tradepipe.db").exists()
    assert json.loads(result.output)["bars"] == 180
    assert (workdir / "data" / "ledger.db").stat().st_mode & 0o777 == 0o600


def test_unknown_broker_exits_2_with_the_choices(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["run-pipeline", "--broker", "nope"])
    assert result.exit_code == 2
    assert "unknown broker 'nope'; choose one of: client_portal, paper" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "tradepipe.db").exists()


def test_unknown_env_and_bad_settings_exit_2(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["run-pipeline", "--env", "nope"]).exit_code == 2
    (workdir / "settings.toml").write_text("[default.run]\nbroker = 5\n")
    result = CliRunner().invoke(cli, ["run-pipeline"])
    assert result.exit_code == 2
    assert "[run] broker = 5" in result.output


def test_failures_exit_1_and_debug_shows_the_traceback(workdir: Path) -> None:
    (workdir / "settings.toml").write_text(
        '[default.run]\nfeed = "csv"\n[default.feeds.csv]\npaths = ["missing.csv"]\n'
    )
    result = CliRunner().invoke(cli, ["run-pipeline", "--no-progress"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: cannot read missing.csv")
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(cli, ["--debug", "run-pipeline", "--no-progress"])
    assert debug.exit_code == 1 and "Traceback" in debug.output


def test_a_run_that_fails_says_why_once(workdir: Path) -> None:
    settings = workdir / "settings.toml"
    settings.write_text(
        settings.read_text().replace('path = "tradepipe.db"', 'path = "settings.toml/ledger.db"')
    )
    result = CliRunner().invoke(cli, ["run-pipeline", "--no-progress"])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: cannot open the ledger at sqlite:///settings.toml/ledger.db")
    # The log file keeps the failed run's record.
    assert "failed: cannot open the ledger" in (workdir / "logs" / "tradepipe.log").read_text()


@pytest.mark.slow
def test_ledger_commands_without_a_ledger_do_not_create_one(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["ledger", "orders"])
    assert result.exit_code == 1
    assert "no ledger at tradepipe.db" in result.output
    assert not (workdir / "tradepipe.db").exists()
    text = (workdir / "settings.toml").read_text().replace("bars = 750", "bars = 40")
    (workdir / "settings.toml").write_text(text)
    assert invoke("run-pipeline", "--no-progress").exit_code == 0
    result = CliRunner().invoke(cli, ["ledger", "orders", "--run", "nope"])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output


def test_daily_snapshots_can_be_turned_off(workdir: Path) -> None:
    text = (workdir / "settings.toml").read_text()
    (workdir / "settings.toml").write_text(
        text.replace("allow_live = false\n", "allow_live = false\ndaily_snapshots = false\n", 1)
    )
    result = invoke("run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(workdir / "tradepipe.db")
    assert db.execute("select count(*) from account_snapshots").fetchone() == (1,)


def test_a_live_run_needs_a_live_feed_and_a_live_feed_needs_a_live_run(workdir: Path) -> None:
    result = invoke("run-pipeline", "--live", "--feed", "synthetic")
    assert result.exit_code == 2
    assert "error: [run] feed = 'synthetic' replays history and cannot run live" in result.output
    assert "live feeds: " in result.output and "synthetic_live" in result.output
    result = invoke("run-pipeline", "--feed", "synthetic_live")
    assert result.exit_code == 2
    assert "run it with `tradepipe run-pipeline --live`" in result.output
    assert not (workdir / "tradepipe.db").exists()  # nothing was started


def test_a_replay_never_sends_real_orders_at_old_prices_unless_asked(workdir: Path) -> None:
    (workdir / "settings.toml").write_text(
        '[default.run]\nbroker = "client_portal"\n'
        '[default.brokers.client_portal]\nbase_url = "https://127.0.0.1:9/v1/api"\n'
    )
    result = invoke("run-pipeline", "--no-progress")
    assert result.exit_code == 2
    assert (
        "error: a replay of feed 'synthetic' would send real orders to broker 'client_portal' at "
        "the prices of its bars" in result.output
    )
    assert "[run] replay_to_broker = true" in result.output
    assert not (workdir / "tradepipe.db").exists()  # refused before anything started


@pytest.mark.slow
def test_a_halt_stops_the_demo_though_its_risk_filters_leave_halt_out(workdir: Path) -> None:
    """The shipped settings do not list `halt`; the kill switch still holds."""
    halted = CliRunner().invoke(cli, ["halt", "--reason", "fomc"])
    assert halted.exit_code == 0, halted.output
    assert halted.stderr == ""  # nothing to warn about: every pipeline honours it
    result = invoke("run-pipeline", "--json", "--no-progress")
    summary = json.loads(result.output)
    assert summary["decisions"] > 0
    assert summary["orders"]["submitted"] == 0 and summary["fills"] == 0
    assert summary["orders"]["denied"] == summary["orders"]["total"] == summary["decisions"]
    assert summary["not_sent"] == [
        {"by": "halt", "count": summary["decisions"], "reason": "trading halted by hand: fomc"}
    ]
    shown = invoke("run-pipeline", "--no-progress").output
    assert f"No order was sent to the broker: {summary['decisions']} stopped by halt" in shown
    assert "(trading halted by hand: fomc)." in shown


@pytest.mark.slow
def test_a_run_whose_decisions_are_all_sized_to_nothing_says_so(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_SIZING__MAX_POSITION_VALUE", "1")
    summary = json.loads(invoke("run-pipeline", "--json", "--no-progress").output)
    assert summary["decisions"] > 0 and summary["orders"]["total"] == 0
    [sizing] = [stop for stop in summary["not_sent"] if stop["by"] == "sizing"]
    assert sizing["reason"].startswith("sized to zero: ")
    assert sum(stop["count"] for stop in summary["not_sent"]) == summary["decisions"]
    shown = " ".join(invoke("run-pipeline", "--no-progress").output.split())
    assert "not sent" in shown and "by sizing: sized to zero" in shown
    assert "No order was sent to the broker: " in shown


def test_a_run_that_sent_orders_lists_its_stops_without_the_no_order_line(
    workdir: Path,
) -> None:
    shown = invoke("run-pipeline", "--no-progress").output
    assert "by min_confidence: confidence 60 is below 70" in " ".join(shown.split())
    assert "No order was sent" not in shown


@pytest.mark.slow
def test_a_second_identical_replay_does_not_double_the_tax_report(workdir: Path) -> None:
    def tax() -> dict[str, object]:
        result = CliRunner().invoke(cli, ["tax", "report", "--year", "2023", "--json"])
        assert result.exit_code == 0, result.output
        found: dict[str, object] = json.loads(result.stdout)
        return found

    first = json.loads(invoke("run-pipeline", "--json", "--no-progress").output)
    assert first["account"] == f"replay:{first['run_id']}"
    assert first["account_label"] == "simulated"
    once = tax()
    assert once["rows"], "the demo sells something in 2023"
    second = json.loads(invoke("run-pipeline", "--json", "--no-progress").output)
    again = tax()
    assert again["account"] == f"replay:{second['run_id']}" != once["account"]
    # The same sales, and no wash sale against the first replay's trades.
    assert again["rows"] == once["rows"] and again["totals"] == once["totals"]


def test_a_usage_error_is_one_error_line(workdir: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["order", "stock", "AAPL", "--side", "buy", "--quantity", "2.5", "--type", "market"],
        prog_name="tradepipe",
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --quantity 2.5 is not a whole number of shares (fractional shares need "
        "[sizing] fractional = true) (see tradepipe order stock --help)"
    ]


@pytest.mark.slow
def test_a_tax_report_takes_an_account_or_a_run_not_both(workdir: Path) -> None:
    summary = json.loads(invoke("run-pipeline", "--json", "--no-progress").output)
    result = CliRunner().invoke(
        cli,
        ["tax", "report", "--year", "2023", "--run", summary["run_id"], "--account", "x"],
    )
    assert result.exit_code == 2
    assert "give an account (--account) or a run (--run), not both" in result.output


def test_ledger_positions_of_a_run_that_ended_flat_says_so(workdir: Path) -> None:
    text = (workdir / "settings.toml").read_text().replace("bars = 750", "bars = 5")
    (workdir / "settings.toml").write_text(text)  # too few bars to cross: no trade
    assert invoke("run-pipeline", "--no-progress").exit_code == 0
    runs = json.loads(invoke("ledger", "runs", "--json").output)
    result = invoke("ledger", "positions")
    assert result.exit_code == 0
    assert f"No open positions at the end of {runs[0]['run_id']}." in result.output
    assert "cash" in result.output  # the account is still shown
