"""Ctrl-C in a terminal: the run stops, says so, and loses nothing it recorded."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tradepipe import Bar, hookimpl
from tradepipe.adapter import BrokerEvent
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.testing import MemorySink, bars_from_closes, replay, test_host

SETTINGS = """
[default.run]
batch_size = 200
[default.feeds.synthetic]
symbols = ["AAPL", "MSFT"]
bars = 150000
interval = "1m"
[default.strategies.sma_cross]
fast = 2
slow = 3
quantity = 1
counter_trend_confidence = 90
[default.logging]
console_level = "ERROR"
"""


def count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def writer_processes(cwd: Path) -> set[int]:
    """Live ledger writer processes working in ``cwd``, read from /proc (no procps needed).

    Filtering by working directory keeps other test runs on the machine out.
    """
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
            where = (entry / "cwd").resolve()
        except OSError:
            continue
        if where != cwd.resolve():
            continue
        if b"ledger_writer.py" in cmdline and state != "Z":
            found.add(int(entry.name))
    return found


def _replay_process(cwd: Path) -> subprocess.Popen[str]:
    """``tradepipe run-pipeline`` in ``cwd``, in a process group of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "run-pipeline", "--no-progress"],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_to_the_process_group_records_an_interrupted_run(
    tmp_path: Path, signum: int
) -> None:
    """Ctrl-C in a terminal, or SIGTERM from ``kill`` or a scheduler."""
    (tmp_path / "settings.toml").write_text(SETTINGS)
    proc = _replay_process(tmp_path)
    db = tmp_path / "tradepipe.db"
    deadline = time.monotonic() + 90
    while count(db, "select count(*) from orders") < 50:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.2)
    os.killpg(proc.pid, signum)  # SIGINT: what a terminal's Ctrl-C does
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, f"exit {proc.returncode}: {err}"
    with sqlite3.connect(db) as conn:
        run_id, status, bars, finished = conn.execute(
            "select run_id, status, bars, finished_at from runs"
        ).fetchone()
        assert f"interrupted: run {run_id}" in err
        assert status == "interrupted" and finished is not None
        assert 0 < bars < 300000, "the run should have been stopped part way"
        # Every order the run created has its history, and every fill its order.
        orders = conn.execute("select count(*) from orders").fetchone()[0]
        with_events = conn.execute(
            "select count(distinct client_order_id) from order_events"
        ).fetchone()[0]
        assert orders == with_events >= 50
        orphans = conn.execute(
            "select count(*) from fills f left join orders o using (client_order_id) "
            "where o.id is null"
        ).fetchone()[0]
        assert orphans == 0
        # The account as the interrupt left it is the run's last snapshot (after those
        # of each day's close): its positions are the net of every fill.
        (last,) = conn.execute("select max(ts) from account_snapshots").fetchone()
        held = dict(
            conn.execute(
                "select symbol, cast(quantity as real) from position_snapshots where ts = ?",
                (last,),
            ).fetchall()
        )
        net: dict[str, float] = {}
        for symbol, side, quantity in conn.execute("select symbol, side, quantity from fills"):
            net[symbol] = net.get(symbol, 0.0) + (1 if side == "buy" else -1) * float(quantity)
        assert {k: v for k, v in held.items() if v} == {k: v for k, v in net.items() if v}
    assert writer_processes(tmp_path) == set()


@pytest.mark.slow
def test_a_second_sigterm_stops_a_replay_at_once_and_its_run_still_closes(
    tmp_path: Path,
) -> None:
    """Two signals in a row (a scheduler that insists). The first stops the replay
    after its bar; the second lands while the ledger is closed (every record of
    the run is written at the close here: one batch) and is ignored there, so the
    run says interrupted, never running."""
    (tmp_path / "settings.toml").write_text(
        SETTINGS.replace("batch_size = 200", "batch_size = 1000000")
    )
    proc = _replay_process(tmp_path)
    db = tmp_path / "tradepipe.db"
    log_file = tmp_path / "logs" / "tradepipe.log"
    deadline = time.monotonic() + 90
    while " started: " not in (log_file.read_text() if log_file.exists() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.1)
    time.sleep(1.0)  # a second of bars, all waiting for the close
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)

    # 130; or, when the second came after the run had closed, killed by it then.
    assert proc.returncode in (130, -signal.SIGTERM), f"exit {proc.returncode}: {err}"
    with sqlite3.connect(db) as conn:
        run_id, status, bars, finished = conn.execute(
            "select run_id, status, bars, finished_at from runs"
        ).fetchone()
    assert f"interrupted: run {run_id}" in err
    assert status == "interrupted" and finished is not None and 0 < bars < 300000
    assert writer_processes(tmp_path) == set()


class _InterruptedInAFill(PaperBroker):
    """The paper simulator, given a Ctrl-C after it filled an order and before it
    hands the fill back: where a replay's interrupt is most likely to land."""

    name = "interrupted"

    def on_bar(self, bar: Bar) -> Sequence[BrokerEvent]:
        events = super().on_bar(bar)
        if events:
            os.kill(os.getpid(), signal.SIGINT)
        return events


class _Plugin:
    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(_InterruptedInAFill)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_inside_a_bar_stops_the_replay_after_it_with_every_fill_recorded() -> None:
    """Interrupted while the simulator fills, the replay records that fill and stops
    before the next bar: its last snapshot holds what its fills add up to."""
    closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9, 10, 11, 12]
    with pytest.raises(KeyboardInterrupt):
        replay(
            bars_from_closes(closes),
            host=test_host(_Plugin()),
            run={"strategies": ["sma_cross"], "risk_filters": [], "broker": "interrupted"},
            strategies={"sma_cross": {"fast": 2, "slow": 4, "quantity": 10}},
        )
    sink = MemorySink.last
    assert sink is not None and sink.closed is not None and sink.closed[1] == "interrupted"
    [fill] = sink.fills  # the fill the Ctrl-C came in, and nothing after it
    positions, _account = sink.snapshots[-1]
    assert {p.symbol: p.quantity for p in positions if p.quantity} == {"AAPL": fill.quantity}
    # A second Ctrl-C is not needed, and the terminal's handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
