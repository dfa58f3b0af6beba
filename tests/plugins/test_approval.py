"""Decisions that wait for a person: queued, approved once (judged again), rejected, expired."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from freezegun import freeze_time
from test_tax_named_lots import FillingBroker, filling_workdir, tp
from tradepipe.approval import approval_reason, expiry
from tradepipe.decisions import Decision
from tradepipe.orders import OrderIntent, Side
from tradepipe.settings import ApprovalSettings

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def _intent(quantity: str = "10") -> OrderIntent:
    return OrderIntent(
        client_order_id="tp-1",
        decision_id="d-1",
        source="llm",
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal(quantity),
        created_at=T0,
    )


def test_the_rules_say_why_an_order_waits() -> None:
    decision = Decision(symbol="AAPL", action="buy", confidence=65, source="llm", created_at=T0)
    intent, price = _intent(), Decimal(100)
    assert approval_reason(ApprovalSettings(), decision, intent, price, paper=False) == ""
    cases = {
        "all": ({"all": True}, "every decision waits"),
        "sources": ({"sources": ["llm"]}, "decisions of llm wait"),
        "confidence": ({"below_confidence": 70}, "confidence 65 is below 70"),
        "quantity": ({"above_quantity": 5}, "10 is more than 5"),
        # 10 x 100 = 1000 > 500
        "notional": ({"above_notional": 500}, "worth 1000.00, more than 500"),
    }
    for name, (rules, reason) in cases.items():
        found = approval_reason(ApprovalSettings(**rules), decision, intent, price, paper=False)
        assert found.startswith(reason), name
    # A source names every model it asks; a model's full name only that model.
    qwen = decision.model_copy(update={"source": "llm:qwen"})
    for sources in (["llm"], ["llm:qwen"]):
        found = approval_reason(ApprovalSettings(sources=sources), qwen, intent, price, paper=False)
        assert found.startswith("decisions of llm:qwen wait"), sources
    for sources in (["llm:gpt"], ["ll"]):
        assert (
            approval_reason(ApprovalSettings(sources=sources), qwen, intent, price, paper=False)
            == ""
        )
    # Live accounts only: on paper nothing waits.
    live_only = ApprovalSettings(all=True, live_only=True)
    assert approval_reason(live_only, decision, intent, price, paper=True) == ""
    assert approval_reason(live_only, decision, intent, price, paper=False) != ""
    # Unpriced, a notional rule cannot tell: the order waits rather than slip through.
    unpriced = approval_reason(
        ApprovalSettings(above_notional=500), decision, intent, None, paper=False
    )
    assert unpriced.startswith("no price")
    # It waits 15 minutes by default, never past the decision's own expiry.
    assert expiry(ApprovalSettings(), decision, T0) == T0 + dt.timedelta(minutes=15)
    soon = decision.model_copy(update={"expires_at": T0 + dt.timedelta(minutes=5)})
    assert expiry(ApprovalSettings(), soon, T0) == T0 + dt.timedelta(minutes=5)


@pytest.fixture
def workdir(workdir: Path) -> Path:
    return filling_workdir(
        workdir,
        "[default.risk.max_position_value]\nlimit = 5000\n[default.approval]\nabove_quantity = 5\n",
        filters='["max_position_value"]',
    )


def _waiting_order(quantity: str = "10") -> str:
    placed = tp("order", "stock", "AAPL", "--side", "buy", "--quantity", quantity, "--json")
    assert placed.exit_code == 0, placed.output
    answer = json.loads(placed.stdout)
    assert answer["order"] is None and answer["sent"] is False
    assert answer["approval"]["reason"].startswith(f"{quantity} is more than 5")
    return str(answer["approval"]["approval_id"])


@pytest.mark.slow
def test_an_order_waits_and_an_approval_sends_it_once(workdir: Path) -> None:
    approval = _waiting_order()
    assert FillingBroker.placed == []  # nothing reached the broker
    [waiting] = json.loads(tp("approvals", "--json").stdout)
    assert (waiting["approval_id"], waiting["status"], waiting["quantity"]) == (
        approval,
        "pending",
        "10",
    )
    sent = tp("approve", approval, "--json")
    assert sent.exit_code == 0, sent.output
    done = json.loads(sent.stdout)
    assert done["status"] == "sent" and done["decided_by"]
    assert [i.quantity for i in FillingBroker.placed] == [Decimal(10)]
    # Approving again sends nothing more, and says why.
    again = tp("approve", approval)
    assert again.exit_code != 0
    assert f"approval {approval} was answered already (sent" in again.output
    assert len(FillingBroker.placed) == 1
    assert json.loads(tp("approvals", "--json").stdout) == []
    # The order it sent is the decision's, in the ledger.
    orders = json.loads(tp("ledger", "orders", "--json").stdout)
    assert [o["client_order_id"] for o in orders] == [done["client_order_id"]]
    # explain shows that it waited, who answered and when, beside its order.
    chains = json.loads(tp("explain", done["decision_id"], "--json").stdout)
    approvals = [a for c in chains for a in c["approvals"]]
    assert {a["approval_id"] for a in approvals} == {approval}
    assert approvals[-1]["decided_by"] == done["decided_by"]
    shown = tp("explain", done["decision_id"]).output
    assert f"approval {approval}: waited (10 is more than 5 ([approval] above_quantity))" in shown
    assert "sent" in shown


@pytest.mark.slow
def test_two_approvals_at_once_send_one_order(workdir: Path) -> None:
    approval = _waiting_order()
    results: list[Result] = []

    def approve() -> None:
        results.append(tp("approve", approval))

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # (Output captured from two threads at once is not reliable: the codes are.)
    won, lost = sorted(results, key=lambda r: r.exit_code)
    assert won.exit_code == 0 and lost.exit_code == 2  # 2: "approval … is … already"
    assert len(FillingBroker.placed) == 1


@pytest.mark.slow
def test_an_approval_is_judged_again_at_the_prices_of_now(workdir: Path) -> None:
    reduced, denied = _waiting_order(), _waiting_order("12")
    # The price rose while they waited: 10 x 600 is more than the 5000 limit allows,
    # so max_position_value sends what it does allow, 8 (5000 / 600, whole shares).
    FillingBroker.price = Decimal(600)
    judged = tp("approve", reduced, "--json")
    assert judged.exit_code == 0 and json.loads(judged.stdout)["status"] == "sent"
    assert [i.quantity for i in FillingBroker.placed] == [Decimal(8)]
    # At 6000 a share not one share fits: denied now, nothing more sent.
    FillingBroker.price = Decimal(6000)
    refused = tp("approve", denied, "--json")
    assert refused.exit_code == 1
    done = json.loads(refused.stdout)
    assert done["status"] == "denied" and "5000" in done["note"]
    assert len(FillingBroker.placed) == 1


@pytest.mark.slow
def test_a_rejection_and_an_expiry_send_nothing(workdir: Path) -> None:
    rejected = _waiting_order()
    dropped = tp("reject", rejected, "--reason", "not today", "--json")
    assert dropped.exit_code == 0
    assert json.loads(dropped.stdout)["note"] == "not today"
    assert "answered already (rejected, answered by" in tp("approve", rejected).output
    # A rejection says why: a blank reason is refused, and nothing changes.
    blank = tp("reject", _waiting_order("12"), "--reason", "  ")
    assert blank.exit_code == 2 and "a rejection needs its reason" in blank.output
    [still] = json.loads(tp("approvals", "--json").stdout)
    assert (still["quantity"], still["status"]) == ("12", "pending")
    FillingBroker.fills = 0
    with freeze_time(dt.datetime.now(dt.UTC)) as frozen:
        expired = _waiting_order("11")
        frozen.tick(dt.timedelta(minutes=16))
        assert json.loads(tp("approvals", "--json").stdout) == []
        late = tp("approve", expired)
        assert late.exit_code != 0 and f"approval {expired} expired at " in late.output
    assert FillingBroker.placed == []
    every: list[dict[str, Any]] = json.loads(tp("approvals", "--all", "--json").stdout)
    assert sorted(r["status"] for r in every) == ["expired", "expired", "rejected"]


@pytest.mark.slow
def test_decisions_waiting_when_a_live_run_stops_still_wait_after_a_restart(
    workdir: Path,
) -> None:
    from tradepipe.plugins.ledger.db import open_engine
    from tradepipe.testing import live

    # Bars of the last hour: a request expires by the clock of the world, after 15 minutes.
    bars = recent_bars(hours=1)
    tables: dict[str, Any] = {
        "run": {"sinks": ["sql"], "session": "desk", "risk_filters": []},
        "sinks": {"sql": {"path": "ledger.db", "writer": "inline"}},
        "strategies": {"sma_cross": {"fast": 2, "slow": 3, "quantity": 10}},
        "approval": {"sources": ["sma_cross"], "expire_minutes": 24 * 60},
    }
    # The ledger exists before the runs start: made during a run, its migrations
    # would take long enough, at the test clock's speed, to make the prices stale.
    open_engine(f"sqlite:///{workdir / 'ledger.db'}").dispose()
    _, first, _, _ = live(bars[:30], **tables)
    assert first.fills == 0  # every decision waits
    waiting = json.loads(tp("approvals", "--json").stdout)
    assert waiting and {w["status"] for w in waiting} == {"pending"}
    # The run is stopped and started again (same session): what waited still does.
    _, second, _, _ = live(bars[30:], **tables)
    after = json.loads(tp("approvals", "--all", "--json").stdout)
    assert {w["approval_id"] for w in waiting} <= {w["approval_id"] for w in after}
    assert all(w["status"] == "pending" for w in after)
    assert second.fills == 0


def recent_bars(hours: int) -> list[Any]:
    """An hour of volatile 1-minute AAPL bars, the first ``hours`` ago."""
    from tradepipe.plugins.feeds.synthetic import SyntheticFeed

    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["AAPL"], bars=60, interval="1m", seed=9, volatility=0.05)
    )
    feed.load()
    bars = list(feed.bars())
    shift = (
        dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        - dt.timedelta(hours=hours)
        - bars[0].ts
    )
    return [b._replace(ts=b.ts + shift) for b in bars]


@pytest.mark.slow
def test_a_live_run_sends_what_a_person_approves_while_it_runs(workdir: Path) -> None:
    """The paper account is the live run's: an approval is left to it, and the broker's
    question it asked (market orders, o10151, left to a person) is answered."""
    from tradepipe.plugins.ledger.db import open_engine
    from tradepipe.testing import live

    bars = recent_bars(hours=2)
    (workdir / "settings.toml").write_text(
        """
[default.run]
session = "desk"
sinks = ["sql"]
status_file = "status.json"
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.logging]
dir = "logs"
"""
    )
    tables: dict[str, Any] = {
        "run": {
            "sinks": ["sql"],
            "session": "desk",
            "risk_filters": [],
            "status_file": "status.json",
        },
        "sinks": {"sql": {"path": "ledger.db", "writer": "inline"}},
        "strategies": {"sma_cross": {"fast": 2, "slow": 3, "quantity": 10}},
        "brokers": {"paper": {"questions": ["o10151"], "ask": ["o10151"]}},
        "approval": {"expire_minutes": 24 * 60},
    }
    open_engine(f"sqlite:///{workdir / 'ledger.db'}").dispose()
    ran: list[Any] = []
    thread = threading.Thread(
        target=lambda: ran.append(live(bars, speed=240, timeout=60, **tables)), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        waiting: list[dict[str, Any]] = []
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.2)
            waiting = json.loads(tp("approvals", "--json").stdout)
        assert waiting, "no question waited"
        first = waiting[-1]
        assert first["kind"] == "question" and first["message_ids"] == "o10151"
        done = tp("approve", first["approval_id"], "--json")
        assert done.exit_code == 0, done.output
        answer = json.loads(done.stdout)
    finally:
        thread.join(90)
    assert not thread.is_alive()
    [(_, result, _, runner)] = ran
    run_id = runner.p.run.run_id
    # The live run took it and sent it, with the question confirmed: it filled there.
    assert (answer["status"], answer["sent_by_live_run"], answer["sent_run_id"]) == (
        "sent",
        run_id,
        run_id,
    )
    assert result.fills >= 1
    fills = json.loads(tp("ledger", "fills", "--json").stdout)
    assert answer["client_order_id"] in {f["client_order_id"] for f in fills}
    chains = json.loads(tp("explain", first["decision_id"], "--json").stdout)
    assert first["approval_id"] in {a["approval_id"] for c in chains for a in c["approvals"]}
