"""A sale that names its tax lots: checked before it is sent, honoured when lots are rebuilt."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError
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
from tradepipe.decisions import Decision
from tradepipe.testing import test_host, write_settings

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


class FillingBroker(Broker):
    """Fills every order at :attr:`price` on the next poll, a minute after the last fill."""

    name = "filling"
    price: ClassVar[Decimal] = Decimal(100)
    placed: ClassVar[list[OrderIntent]] = []
    fills: ClassVar[int] = 0

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._pending: list[OrderIntent] = []

    def connect(self) -> BrokerStatus:
        return self.status()

    def status(self) -> BrokerStatus:
        return BrokerStatus(
            broker=self.name, connected=True, authenticated=True, account_id="DU1234567"
        )

    def account(self) -> AccountSummary:
        cash = Decimal(100_000)
        return AccountSummary(
            account_id="DU1234567", cash=cash, equity=cash, buying_power=cash, ts=T0
        )

    def positions(self) -> list[Position]:
        return []

    def open_orders(self) -> list[OrderReport]:
        return []

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        return [Quote(symbol=s, ts=T0, last=self.price) for s in symbols]

    def place(self, intent: OrderIntent) -> OrderUpdate:
        self.placed.append(intent)
        self._pending.append(intent)
        return OrderUpdate(
            client_order_id=intent.client_order_id, status=OrderStatus.ACCEPTED, ts=T0
        )

    def poll(self) -> Sequence[BrokerEvent]:
        out, self._pending = self._pending, []
        events = []
        for intent in out:
            type(self).fills += 1
            events.append(
                Fill(
                    execution_id=f"x{self.fills}",
                    client_order_id=intent.client_order_id,
                    decision_id=intent.decision_id,
                    symbol=intent.symbol,
                    side=intent.side,
                    quantity=intent.quantity,
                    price=self.price,
                    ts=T0 + dt.timedelta(minutes=self.fills),
                )
            )
        return events

    def order(self, client_order_id: str) -> OrderReport | None:
        return None


class Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(FillingBroker)


def filling_workdir(workdir: Path, extra: str = "", filters: str = "[]") -> Path:
    """Settings for :class:`FillingBroker` with an SQL ledger (and ``extra`` tables),
    and the broker as new."""
    write_settings(
        workdir,
        f"""
[default.run]
broker = "filling"
risk_filters = {filters}
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.logging]
dir = "logs"
{extra}
""",
    )
    FillingBroker.placed.clear()
    FillingBroker.fills = 0
    FillingBroker.price = Decimal(100)
    return workdir


@pytest.fixture
def workdir(workdir: Path) -> Path:
    return filling_workdir(workdir)


def tp(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml", _host=test_host(Plugin()))
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


def trade(side: str, quantity: int, price: int, *lots: str) -> Result:
    FillingBroker.price = Decimal(price)
    named = [arg for lot in lots for arg in ("--lot", lot)]
    return tp(
        "order", "stock", "AAPL", "--side", side, "--quantity", str(quantity), *named,
        "--wait", "1", "--json",
    )  # fmt: skip


def lots(*args: str) -> dict[str, Any]:
    result = tp("tax", "lots", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.slow
def test_a_sale_relieves_the_lots_it_names_and_tax_lots_shows_their_names(workdir: Path) -> None:
    assert trade("buy", 10, 100).exit_code == 0
    assert trade("buy", 10, 120).exit_code == 0
    names = [lot["name"] for lot in lots("--open")["open"]]
    assert names == ["AAPL/2026-03-02/10@100.00", "AAPL/2026-03-02/10@120.00"]
    table = tp("tax", "lots", "--open")
    assert "AAPL/2026-03-02/10@120.00" in table.stdout

    # First in, first out would sell the 100 lot; the sale names the dearer one.
    sold = trade("sell", 4, 130, "AAPL/2026-03-02/10@120.00")
    assert sold.exit_code == 0, sold.output
    verdicts = json.loads(sold.stdout)["verdicts"]
    assert [(v["filter"], v["outcome"]) for v in verdicts] == [("named_lots", "pass")]

    found = lots()
    # 4 of the 120 lot: basis 480, proceeds 520, a gain of 40 (a loss would be washed
    # by the 100 lot, bought within 30 days).
    assert [(r["name"], r["quantity"], r["proceeds"], r["basis"]) for r in found["closed"]] == [
        ("AAPL/2026-03-02/10@120.00", "4", "520", "480")
    ]
    assert [(r["name"], r["quantity"]) for r in found["open"]] == [
        ("AAPL/2026-03-02/10@100.00", "10"),
        ("AAPL/2026-03-02/10@120.00", "6"),
    ]
    assert found["notes"] == []
    # The choice is on record with the decision.
    decisions = json.loads(tp("ledger", "decisions", "--json").stdout)
    assert [d["action"] for d in decisions] == ["sell"]
    explained = tp("explain", json.loads(sold.stdout)["decision"]["id"]).stdout
    assert "named_lots" in explained


@pytest.mark.slow
def test_naming_a_lot_the_account_does_not_hold_open_sends_nothing(workdir: Path) -> None:
    assert trade("buy", 10, 100).exit_code == 0
    placed = len(FillingBroker.placed)

    unknown = trade("sell", 5, 110, "AAPL/2026-03-02/10@99.00")
    assert unknown.exit_code == 1
    verdict = json.loads(unknown.stdout)["verdicts"][0]
    assert (verdict["filter"], verdict["outcome"]) == ("named_lots", "deny")
    # The account is named (its id masked), with the command that lists its lots.
    assert verdict["reason"] == (
        "lot 'AAPL/2026-03-02/10@99.00' is not an open long AAPL lot of the account this "
        "order trades, DU***4567 (`tradepipe tax lots --open --account account:DU***4567` lists "
        "them)"
    )
    # A buy closes short lots only: the long lot cannot be named by it.
    wrong_side = trade("buy", 5, 110, "AAPL/2026-03-02/10@100.00")
    assert wrong_side.exit_code == 1
    assert "not an open short AAPL lot" in wrong_side.stdout
    # A name with a space is no lot name: a usage error before anything runs.
    spaced = trade("sell", 5, 110, "AAPL 2026-03-02")
    assert spaced.exit_code == 2
    assert "--lot: String should match pattern" in spaced.output
    assert len(FillingBroker.placed) == placed
    assert [lot["quantity"] for lot in lots("--open")["open"]] == ["10"]


def test_a_hold_cannot_name_lots_and_a_decision_keeps_the_order_given() -> None:
    base = dict(symbol="AAPL", confidence=50, source="s", created_at=T0)
    with pytest.raises(ValidationError, match="a hold trades nothing"):
        Decision(action="hold", lots=["AAPL/2026-03-02/10@100.00"], **base)
    decision = Decision(action="sell", lots=["b", "a"], **base)
    assert decision.lots == ("b", "a")
