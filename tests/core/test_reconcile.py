"""A restarted session settles the orders an earlier run left open, in that run's history."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from remote_broker import BuyLow, Plugin, Remote, reset
from tradepipe import (
    BrokerUnavailableError,
    Fill,
    OrderStatus,
    StrategyContext,
    hookimpl,
)
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.sink import open_engine
from tradepipe.process import ProcessId, start_ticks, this_process
from tradepipe.testing import bar, replay, test_host

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _reset() -> None:
    reset()


def _session(db: str, days: int = 2, *plugins: object) -> None:
    replay(
        [bar("AAPL", day, open=100, close=100) for day in range(days)],
        host=test_host(Plugin(), *plugins),
        run={
            "strategies": ["buy_low"],
            "broker": "remote",
            "replay_to_broker": True,
            "risk_filters": [],
            "session": "acct",
            "sinks": ["sql"],
        },
        sinks={"sql": {"url": db, "writer": "inline"}},
    )


def _history(db: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    engine = open_engine(db)
    try:
        ledger = Ledger(engine)
        out = []
        fills = []
        for run in reversed(ledger.runs()):
            for row, _status, _reason in ledger.orders(run.run_id):
                events = ledger.order_events(run.run_id, row.client_order_id)
                out.append((run.run_id, [e.status for e in events]))
            fills += [f.execution_id for f in ledger.fills(run.run_id)]
        return out, fills
    finally:
        engine.dispose()


def test_fills_and_a_cancel_while_down_are_recorded_in_the_run_that_sent_the_order(
    ledger_url: str,
) -> None:
    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    assert statuses == ["submitted", "accepted"]
    [cid] = Remote.orders
    # While no pipeline runs: 6 of 10 fill, then the rest is cancelled.
    Remote.executions.append(
        Fill(
            execution_id="e1",
            client_order_id=cid,
            decision_id="",
            symbol="AAPL",
            side="buy",
            quantity=Decimal(6),
            price=Decimal(50),
            ts=T0 + dt.timedelta(days=3),
        )
    )
    Remote.orders[cid]["status"] = OrderStatus.CANCELED

    _session(db)
    history, fills = _history(db)
    assert history == [
        (first_run, ["submitted", "accepted", "partially_filled", "canceled"])
    ]  # the second run sent nothing: its decision was already sent
    assert fills == ["e1"]

    _session(db)  # a third start finds nothing left to settle, and records nothing twice
    assert _history(db) == (history, fills)


def test_an_order_still_working_is_left_open_and_recorded_once(ledger_url: str) -> None:
    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    for _ in range(3):
        _session(db)
    # Later runs follow the working order; none records it again.
    assert _history(db) == ([(first_run, statuses)], [])
    assert statuses == ["submitted", "accepted"]


def test_a_held_order_filled_while_a_later_run_follows_it_stays_in_its_run(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ledger_url
    _session(db)
    [(first_run, _statuses)] = _history(db)[0]
    [cid] = Remote.orders
    # 4 of 10 fill while no run is up, 6 during the next run (at its first bar).
    Remote.executions.append(_fill("e1", cid, 4, days=1))
    late = _fill("e2", cid, 6, days=3)

    def on_bar(self: Remote, bar: object) -> list[Fill]:
        if late in Remote.executions:
            return []
        Remote.executions.append(late)
        Remote.orders[cid]["status"] = OrderStatus.FILLED
        return [late]

    monkeypatch.setattr(Remote, "on_bar", on_bar)
    _session(db)
    history, fills = _history(db)
    assert history == [
        (first_run, ["submitted", "accepted", "partially_filled", "filled"])
    ]  # the later run recorded no order of its own
    assert fills == ["e1", "e2"]


def _fill(execution: str, cid: str, quantity: int, *, days: int) -> Fill:
    return Fill(
        execution_id=execution,
        client_order_id=cid,
        decision_id="d-low",
        symbol="AAPL",
        side="buy",
        quantity=Decimal(quantity),
        price=Decimal(50),
        ts=T0 + dt.timedelta(days=days),
    )


def test_a_broker_that_cannot_list_executions_stops_the_start(ledger_url: str) -> None:
    db = ledger_url
    _session(db)
    Remote.fail_fills = True
    with pytest.raises(BrokerUnavailableError, match="executions timed out"):
        _session(db)


@pytest.fixture
def other_process() -> Iterator[ProcessId]:
    """Another process on this host, alive for the test: a run's, say."""
    child = subprocess.Popen(["sleep", "300"])
    try:
        yield ProcessId(this_process().host, child.pid, start_ticks(child.pid))
    finally:
        child.kill()
        child.wait()


def _mark(
    db: str, run_id: str, *, going: bool, host: str = "", process: ProcessId | None = None
) -> None:
    """Make ``run_id`` a run still going in ``process`` (this one by default; on
    ``host``, when given), or one that ended."""
    from sqlalchemy import text

    me = process or this_process()
    engine = open_engine(db)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE runs SET status = :status, host = :host, pid = :pid, "
                    "pid_started = :started WHERE run_id = :run"
                ),
                {
                    "status": "running" if going else "completed",
                    "host": host or me.host,
                    "pid": me.pid,
                    "started": me.started,
                    "run": run_id,
                },
            )
    finally:
        engine.dispose()


def test_the_orders_of_a_run_still_going_are_left_to_it(
    ledger_url: str, other_process: ProcessId
) -> None:
    """A second run of the session (a one-off order, an API call) writes nothing into
    the history of a pipeline that is still writing it; once that one has ended, the
    next start settles its orders as usual."""
    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    [cid] = Remote.orders
    Remote.executions.append(_fill("e1", cid, 4, days=1))  # still working: 4 of 10
    _mark(db, first_run, going=True, process=other_process)

    _session(db)
    assert _history(db) == ([(first_run, statuses)], [])  # nothing written of it
    assert statuses == ["submitted", "accepted"]

    Remote.orders[cid]["status"] = OrderStatus.CANCELED
    _session(db)  # ended at the broker, but its run is still going: still its to write
    assert _history(db) == ([(first_run, statuses)], [])

    _mark(db, first_run, going=False)
    _session(db)
    assert _history(db) == (
        [(first_run, ["submitted", "accepted", "partially_filled", "canceled"])],
        ["e1"],
    )


@pytest.mark.parametrize(
    "host",
    [
        # This host cannot tell whether it still runs: a session moved to another
        # machine after its host died must still settle what the dead run left.
        "another-host",
        # This very process, which runs one run at a time: another of its own that
        # still says it is running failed to close.
        "",
    ],
)
def test_a_run_marked_going_that_cannot_be_is_settled_as_an_ended_one(
    ledger_url: str, host: str
) -> None:
    db = ledger_url
    _session(db)
    [(first_run, _statuses)] = _history(db)[0]
    [cid] = Remote.orders
    Remote.executions.append(_fill("e1", cid, 10, days=1))
    Remote.orders[cid]["status"] = OrderStatus.FILLED
    _mark(db, first_run, going=True, host=host)
    _session(db)
    assert _history(db) == ([(first_run, ["submitted", "accepted", "filled"])], ["e1"])


def test_a_fill_of_an_order_a_run_still_going_holds_is_left_to_that_run(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, other_process: ProcessId
) -> None:
    """The later run follows the working order (its exposure counts it, and its book
    takes the fill), but the fill is the other run's to record and announce."""
    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    [cid] = Remote.orders
    Remote.executions.append(_fill("e1", cid, 4, days=1))
    late = _fill("e2", cid, 6, days=3)
    seen: list[tuple[Decimal, Decimal]] = []
    bars: list[object] = []

    def on_bar(self: Remote, bar: object) -> list[Fill]:
        bars.append(bar)
        if len(bars) == 1 or late in Remote.executions:
            return []
        Remote.executions.append(late)
        Remote.orders[cid]["status"] = OrderStatus.FILLED
        return [late]

    def decide(self: BuyLow, bar: object, ctx: StrategyContext) -> None:
        seen.append((ctx.pending("AAPL"), ctx.position("AAPL")))

    monkeypatch.setattr(Remote, "on_bar", on_bar)
    monkeypatch.setattr(BuyLow, "decide", decide)
    _mark(db, first_run, going=True, process=other_process)
    filled: list[str] = []

    class Listener:
        @hookimpl
        def tradepipe_order_filled(self, fill: Fill) -> None:
            filled.append(fill.execution_id)

    _session(db, 2, Listener())
    assert _history(db) == ([(first_run, statuses)], [])
    assert filled == []
    # 6 of the 10 still to fill at the first bar (4 filled before the start are in
    # the broker's positions, which this broker leaves empty); e2 fills them at the second.
    assert seen == [(Decimal(6), Decimal(0)), (Decimal(0), Decimal(6))]


def test_a_cancel_of_an_order_whose_run_is_still_going_is_left_to_that_run(
    ledger_url: str, other_process: ProcessId
) -> None:
    """``DELETE /orders/{id}`` or ``tradepipe broker cancel`` while the pipeline that
    sent the order runs: the pipeline hears of the cancel and records it; written
    here as well, its own change would collide with this one and stop it."""
    from tradepipe import OrderUpdate
    from tradepipe.plugins.ledger.reconcile import settle_order
    from tradepipe.plugins.ledger.sink import SqlSink

    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    [cid] = Remote.orders
    Remote.orders[cid]["status"] = OrderStatus.CANCELED
    requested = OrderUpdate(client_order_id=cid, status=OrderStatus.PENDING_CANCEL, ts=T0)

    def cancel() -> str | None:
        sink = SqlSink(SqlSink.Settings(url=db, writer="inline"))
        try:
            return settle_order(sink, "test", Remote(), cid, requested)
        finally:
            sink.release()

    _mark(db, first_run, going=True, process=other_process)
    assert cancel() is None
    assert _history(db) == ([(first_run, statuses)], [])
    _mark(db, first_run, going=False)
    assert cancel() is not None  # ended without hearing of it: written for it
    assert _history(db)[0] == [(first_run, ["submitted", "accepted", "pending_cancel", "canceled"])]


def test_reconcile_fix_is_refused_while_a_run_is_going_here(
    ledger_url: str, other_process: ProcessId, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from tradepipe.cli import cli
    from tradepipe.cli.context import AppContext

    db = ledger_url
    _session(db)
    [(first_run, statuses)] = _history(db)[0]
    [cid] = Remote.orders
    Remote.orders[cid]["status"] = OrderStatus.CANCELED
    _mark(db, first_run, going=True, process=other_process)
    (tmp_path / "settings.toml").write_text(
        f'[default.run]\nbroker = "remote"\n[default.sinks.sql]\nurl = "{db}"\n'
        'writer = "inline"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["reconcile", "--fix"],
        obj=AppContext(settings_path="settings.toml", _host=test_host(Plugin())),
    )
    assert result.exit_code == 1
    assert f"run {first_run} is still going" in result.stderr
    assert _history(db) == ([(first_run, statuses)], [])  # nothing written


def test_an_order_left_to_a_run_that_ends_first_is_recorded_in_that_run_from_then_on(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, other_process: ProcessId
) -> None:
    """A pipeline restarted while the old one was still stopping: the old one ends
    with its order still working; what becomes of the order next goes into the old
    run's history, numbered on from what that run recorded."""
    from tradepipe.orders import Order
    from tradepipe.plugins.ledger.sink import SqlSink

    db = ledger_url
    _session(db)
    [(first_run, _statuses)] = _history(db)[0]
    [cid] = Remote.orders
    _mark(db, first_run, going=True, process=other_process)
    early, mid, late = (
        _fill("e1", cid, 4, days=1),
        _fill("e1b", cid, 2, days=2),
        _fill("e2", cid, 4, days=3),
    )
    theirs = Order.trusted(
        intent=Remote.orders[cid]["intent"],
        status=OrderStatus.ACCEPTED,
        seq=2,
        filled_quantity=Decimal(0),
        broker_order_id="B1",
        updated_at=T0,
    )

    def recorded_by_the_first_run(fill: Fill) -> None:
        sink = SqlSink(SqlSink.Settings(url=db, writer="inline"))
        sink.engine()
        sink.record_reconciled(first_run, [theirs.apply_fill(fill)], [fill])
        sink.release()

    bars: list[object] = []

    def on_bar(self: Remote, bar: object) -> list[Fill]:
        bars.append(bar)
        if len(bars) == 1:
            # The first run, still going, hears of e1 and records it; this run
            # applies it to its book and leaves the record to that run.
            Remote.executions.append(early)
            recorded_by_the_first_run(early)
            return [early]
        if len(bars) == 2:
            # It records e1b too, then ends with the order still working; this run
            # hears of e1b only now (not recorded again), then of e2 (recorded).
            Remote.executions.append(mid)
            recorded_by_the_first_run(mid)
            _mark(db, first_run, going=False)
            Remote.executions.append(late)
            Remote.orders[cid]["status"] = OrderStatus.FILLED
            return [mid, late]
        return []

    monkeypatch.setattr(Remote, "on_bar", on_bar)
    _session(db, 3)
    assert _history(db) == (
        [
            (
                first_run,
                ["submitted", "accepted", "partially_filled", "partially_filled", "filled"],
            )
        ],
        ["e1", "e1b", "e2"],
    )
