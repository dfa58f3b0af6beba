"""``tradepipe order stock``: one decision through sizing, the filters, the broker, the ledger."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from tradepipe import (
    AccountSummary,
    Broker,
    BrokerStatus,
    Fill,
    OrderIntent,
    OrderReport,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    hookimpl,
)
from tradepipe.adapter import BrokerEvent
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.errors import BrokerRejectedError
from tradepipe.testing import test_host, write_settings

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class QuotingBroker(Broker):
    """Quotes AAPL at 100; accepts orders, fills them on the next poll."""

    name = "quoting"
    placed: ClassVar[list[OrderIntent]] = []
    refuse: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._pending: list[OrderIntent] = []

    def connect(self) -> BrokerStatus:
        return self.status()

    def status(self) -> BrokerStatus:
        return BrokerStatus(broker=self.name, connected=True, authenticated=True, account_id="DU1")

    def account(self) -> AccountSummary:
        return AccountSummary(
            account_id="DU1",
            cash=Decimal(50_000),
            equity=Decimal(50_000),
            buying_power=Decimal(50_000),
            ts=T0,
        )

    def positions(self) -> list[Position]:
        return []

    def open_orders(self) -> list[OrderReport]:
        return []

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        return [Quote(symbol=s, ts=T0, last=Decimal(100)) for s in symbols if s == "AAPL"]

    def place(self, intent: OrderIntent) -> OrderUpdate:
        if self.refuse:
            raise BrokerRejectedError(self.refuse)
        self.placed.append(intent)
        self._pending.append(intent)
        return OrderUpdate(
            client_order_id=intent.client_order_id,
            status=OrderStatus.ACCEPTED,
            ts=T0,
            broker_order_id="B1",
        )

    def poll(self) -> Sequence[BrokerEvent]:
        out, self._pending = self._pending, []
        return [
            Fill(
                execution_id=f"x-{i.client_order_id}",
                client_order_id=i.client_order_id,
                decision_id=i.decision_id,
                symbol=i.symbol,
                side=i.side,
                quantity=i.quantity,
                price=Decimal(100),
                ts=T0,
            )
            for i in out
        ]

    def order(self, client_order_id: str) -> OrderReport | None:
        return None

    def preview(self, intent: OrderIntent) -> dict[str, Any]:
        return {"commission": "1.00", "position": {"after": str(intent.quantity)}}


class Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(QuotingBroker)


@pytest.fixture
def workdir(workdir: Path) -> Path:
    write_settings(
        workdir,
        """
[default.run]
broker = "quoting"
risk_filters = ["min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.risk.max_position_value]
limit = 5000
[default.logging]
dir = "logs"
""",
    )
    QuotingBroker.placed.clear()
    QuotingBroker.refuse = ""
    return workdir


def order(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    return CliRunner().invoke(cli, ["order", "stock", *args], obj=app, catch_exceptions=False)


def ledger(*args: str) -> Any:
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    result = CliRunner().invoke(cli, ["ledger", *args, "--json"], obj=app, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_an_order_goes_through_the_filters_to_the_broker_and_the_ledger(workdir: Path) -> None:
    result = order("AAPL", "--side", "buy", "--quantity", "10", "--wait", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [v["filter"] for v in out["verdicts"]] == [
        "min_confidence",
        "max_position_value",
        "buying_power",
    ]
    assert out["order"]["status"] == "filled"
    assert [i.quantity for i in QuotingBroker.placed] == [Decimal(10)]
    cid = out["order"]["client_order_id"]
    orders = ledger("orders")
    assert [(o["client_order_id"], o["status"]) for o in orders] == [(cid, "filled")]
    assert [f["execution_id"] for f in ledger("fills")] == [f"x-{cid}"]
    decisions = ledger("decisions")
    assert decisions[0]["source"] == "cli" and decisions[0]["confidence"] == 100


@pytest.mark.slow
def test_a_filter_reduces_a_large_order_using_the_broker_quote(workdir: Path) -> None:
    result = order("AAPL", "--side", "buy", "--quantity", "80")
    assert result.exit_code == 0, result.output
    assert "reduce" in result.output
    assert [i.quantity for i in QuotingBroker.placed] == [Decimal(50)]  # 5000 / 100


def test_dry_run_judges_but_sends_and_writes_nothing(workdir: Path) -> None:
    result = order("AAPL", "--side", "buy", "--quantity", "10", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "not sent (dry run)" in result.output
    # The id it shows is not one `tradepipe explain` can find, and it says so.
    assert "dry run: nothing written to the ledger" in " ".join(result.output.split())
    assert QuotingBroker.placed == []
    assert not (workdir / "ledger.db").exists()


def test_what_if_shows_the_broker_preview(workdir: Path) -> None:
    result = order("AAPL", "--side", "buy", "--quantity", "10", "--what-if", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["preview"] == {
        "commission": "1.00",
        "position": {"after": "10"},
    }
    assert QuotingBroker.placed == []


@pytest.mark.slow
def test_a_denied_order_exits_1_and_is_recorded(workdir: Path) -> None:
    result = order("MSFT", "--side", "buy", "--quantity", "10")  # no quote, no price
    assert result.exit_code == 1
    assert "denied" in result.output
    assert QuotingBroker.placed == []
    assert [o["status"] for o in ledger("orders")] == ["denied"]


@pytest.mark.slow
def test_fractional_shares_go_through_when_the_settings_allow_them(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_SIZING__FRACTIONAL", "true")
    assert order("AAPL", "--side", "buy", "--quantity", "2.5").exit_code == 0
    assert [i.quantity for i in QuotingBroker.placed] == [Decimal("2.5")]

    tiny = order("AAPL", "--side", "buy", "--quantity", "0.0000001")
    assert tiny.exit_code == 2
    assert "--quantity 0.0000001: fractional shares trade in steps of 0.0001" in tiny.output
    assert len(QuotingBroker.placed) == 1


@pytest.mark.slow
def test_a_broker_rejection_exits_1_with_its_reason(workdir: Path) -> None:
    QuotingBroker.refuse = "IBKR refused the order: [no permissions]"
    result = order("AAPL", "--side", "buy", "--quantity", "1")
    assert result.exit_code == 1
    assert "rejected" in result.output
    assert "[no permissions]" in result.output  # shown, not eaten as markup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "limit"], "limit_price is required"),
        (["--limit-price", "5"], "limit_price makes no sense for a market order"),
        (["--quantity", "-3"], "greater than 0"),
        (["--take-profit", "90", "--stop-loss", "95"], "take-profit (90) must be above"),
        (["--quantity", "0.0000001"], "--quantity 0.0000001 is not a whole number of shares"),
        (["--quantity", "2.5"], "fractional shares need [sizing] fractional = true"),
    ],
)
def test_bad_orders_are_refused_before_anything_happens(
    workdir: Path, args: list[str], message: str
) -> None:
    base = ["AAPL", "--side", "buy", "--quantity", "10"]
    if args[0] == "--quantity":
        base = base[:3]
    result = order(*base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert QuotingBroker.placed == []
    assert not (workdir / "ledger.db").exists()


@pytest.mark.slow
def test_ids_stay_on_one_line_in_every_table_at_60_columns(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copyable into `tradepipe explain`: never wrapped, whatever else must give way.
    monkeypatch.setenv("COLUMNS", "60")
    placed = order("AAPL", "--side", "buy", "--quantity", "10", "--wait", "1")
    assert placed.exit_code == 0, placed.output
    [run] = ledger("runs")
    [made] = ledger("orders")
    [fill] = ledger("fills")
    run_id, cid, decision_id = run["run_id"], made["client_order_id"], made["decision_id"]
    execution = fill["execution_id"]
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))

    def shown(*args: str) -> list[str]:
        result = CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    for lines, ids in [
        (placed.stdout.splitlines(), [cid, run_id]),
        (shown("ledger", "runs"), [run_id]),
        (shown("ledger", "decisions"), [decision_id]),
        (shown("ledger", "orders"), [cid, decision_id]),
        (shown("ledger", "fills"), [execution, cid]),
        (shown("explain", cid), [execution]),
    ]:
        for text in ids:
            assert any(text in line for line in lines), (text, "\n".join(lines))
