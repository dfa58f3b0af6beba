"""``tradepipe reconcile``: every difference between ledger and broker, and --fix."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from remote_broker import Plugin, Remote, reset
from sqlalchemy import text
from tradepipe import (
    Fill,
    OrderIntent,
    OrderStatus,
    Position,
)
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.testing import bar, replay, test_host

T0 = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


@pytest.fixture(autouse=True)
def _reset() -> None:
    reset()


def _fill(execution_id: str, cid: str, symbol: str, qty: int) -> Fill:
    return Fill(
        execution_id=execution_id,
        client_order_id=cid,
        decision_id="",
        symbol=symbol,
        side="buy",
        quantity=Decimal(qty),
        price=Decimal(50),
        ts=T0 + dt.timedelta(hours=1),
    )


@pytest.mark.slow
def test_reconcile_reports_every_difference_and_fix_adopts_the_broker_word(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(
        [bar("AAPL", T0 + dt.timedelta(minutes=m), open=100, close=100) for m in range(2)],
        host=test_host(Plugin()),
        run={
            "strategies": ["buy_low"],
            "broker": "remote",
            "replay_to_broker": True,
            "risk_filters": [],
            "session": "acct",
            "sinks": ["sql"],
        },
        sinks={"sql": {"url": ledger_url, "writer": "inline"}},
    )
    [cid] = Remote.orders
    # While nothing ran: 6 filled, the rest cancelled; another tool traded too.
    Remote.executions += [_fill("e1", cid, "AAPL", 6), _fill("e-x", "", "MSFT", 3)]
    Remote.orders[cid]["status"] = OrderStatus.CANCELED
    Remote.orders["tp-foreign"] = {
        "intent": OrderIntent(
            client_order_id="tp-foreign",
            decision_id="",
            source="tws",
            symbol="IBM",
            side="sell",
            quantity=Decimal(1),
            order_type="limit",
            limit_price=Decimal(300),
            created_at=T0,
        ),
        "status": OrderStatus.ACCEPTED,
    }
    Remote.held = [
        Position(symbol="AAPL", quantity=Decimal(6)),
        Position(symbol="MSFT", quantity=Decimal(3)),
    ]
    (tmp_path / "settings.toml").write_text(
        f'[default.run]\nbroker = "remote"\n[default.sinks.sql]\nurl = "{ledger_url}"\n'
        'writer = "inline"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def tp(*args: str) -> tuple[int, Any]:
        result = CliRunner().invoke(
            cli,
            ["reconcile", "--json", *args],
            obj=AppContext(settings_path="settings.toml", _host=test_host(Plugin())),
            catch_exceptions=False,
        )
        return result.exit_code, json.loads(result.stdout)

    code, found = tp()
    assert code == 1
    kinds = sorted((d["kind"], d["subject"]) for d in found["differences"])
    assert kinds == [
        ("order_end", cid),
        ("position", "AAPL"),
        ("position", "MSFT"),
        ("unknown_order", "tp-foreign"),
        ("unrecorded_fill", "e-x"),
    ]
    assert found["reconcile_run"] is None

    code, fixed = tp("--fix")
    assert code == 0 and fixed["reconcile_run"]
    engine = open_engine(ledger_url)
    try:
        with engine.connect() as conn:
            events = (
                conn.execute(
                    text("select status from order_events where client_order_id = :c order by seq"),
                    {"c": cid},
                )
                .scalars()
                .all()
            )
            assert events == ["submitted", "accepted", "partially_filled", "canceled"]
            assert sorted(conn.execute(text("select execution_id from fills")).scalars()) == [
                "e-x",
                "e1",
            ]
            audit = conn.execute(text("select kind, action from audit order by id")).all()
            assert sorted(audit) == sorted(
                [
                    ("order_end", "adopted"),
                    ("position", "adopted"),
                    ("position", "adopted"),
                    ("unknown_order", "noted"),
                    ("unrecorded_fill", "adopted"),
                ]
            )
            # The snapshot that takes the broker's positions carries its account too,
            # not zeros that would show as a crash in the equity curve.
            cash, equity = conn.execute(
                text("select cash, equity from account_snapshots order by id desc limit 1")
            ).one()
            assert float(equity) > 0 and float(cash) != 0
    finally:
        engine.dispose()

    code, again = tp()
    assert code == 1  # the other tool's order is still working: noted, not ours to adopt
    assert [d["kind"] for d in again["differences"]] == ["unknown_order"]


def test_reconciling_an_in_memory_paper_account_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "settings.toml").write_text(
        '[default.run]\nbroker = "paper"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["reconcile"], obj=AppContext(settings_path="settings.toml"), catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "set [brokers.paper] state_file" in result.stderr


@pytest.mark.slow
def test_an_order_that_never_reached_the_broker_is_rejected_once_its_window_passed(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Remote.lose_sends = True
    # The broker may take ten days to list an order: the run leaves it unknown.
    monkeypatch.setattr(Remote, "order_visibility_seconds", 10 * 86_400.0)
    replay(
        [bar("AAPL", T0 + dt.timedelta(minutes=m), open=100, close=100) for m in range(2)],
        host=test_host(Plugin()),
        run={
            "strategies": ["buy_low"],
            "broker": "remote",
            "replay_to_broker": True,
            "risk_filters": [],
            "session": "acct",
            "sinks": ["sql"],
            "final_poll_seconds": 0,
        },
        sinks={"sql": {"url": ledger_url, "writer": "inline"}},
    )
    (tmp_path / "settings.toml").write_text(
        f'[default.run]\nbroker = "remote"\n[default.sinks.sql]\nurl = "{ledger_url}"\n'
        'writer = "inline"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def tp(*args: str) -> tuple[int, Any]:
        result = CliRunner().invoke(
            cli,
            [*args, "--json"],
            obj=AppContext(settings_path="settings.toml", _host=test_host(Plugin())),
            catch_exceptions=False,
        )
        return result.exit_code, json.loads(result.stdout)

    code, found = tp("reconcile")
    [diff] = found["differences"]
    assert (code, diff["kind"], diff["ledger"]) == (1, "order_unknown_to_broker", "unknown")
    assert "settled as never sent once 864000 s have passed" in diff["meaning"]
    code, found = tp("reconcile", "--fix")
    assert [d["action"] for d in found["differences"]] == ["noted"]  # nothing claimed
    # Two days later (T0), with IBKR's one-minute window: it never arrived.
    monkeypatch.setattr(Remote, "order_visibility_seconds", 60.0)
    code, found = tp("reconcile")
    [diff] = found["differences"]
    assert (code, diff["kind"], diff["broker"]) == (1, "order_end", "rejected, 0 new fill(s)")
    code, fixed = tp("reconcile", "--fix")
    assert (code, [d["action"] for d in fixed["differences"]]) == (0, ["adopted"])
    code, again = tp("reconcile")
    assert (code, again["differences"]) == (0, [])
    # The order's end is in the run that sent it; `ledger orders` shows that run,
    # not the reconciliation runs that corrected it.
    code, orders = tp("ledger", "orders")
    assert code == 0
    [order] = orders
    assert order["status"] == "rejected"
    engine = open_engine(ledger_url)
    try:
        with engine.connect() as conn:
            reason = conn.execute(
                text("select reason from order_events where status = 'rejected'")
            ).scalar_one()
            audit = conn.execute(text("select kind, action from audit order by id")).all()
    finally:
        engine.dispose()
    assert reason.startswith("never reached the broker")
    assert audit == [("order_unknown_to_broker", "noted"), ("order_end", "adopted")]
