"""SIGKILL a live run on a durable paper account; restart it; nothing sent twice, nothing lost.

As :mod:`test_kill` does for a replay, for ``run-pipeline --live``: a live run
on a paper account kept in a file, with a fixed ``[run] session`` and the
ledger writer process, is killed (its whole process group, SIGKILL) at random
moments while it trades, and started again each time. Each restart settles
the orders the killed run left unfinished from the broker's records and
adopts those still working. Finally a last run is stopped with SIGTERM, and
against the broker's own records: no client order id was sent twice, every
fill the account made is in the ledger exactly once, and the ledger's
positions are the account's. ``tradepipe status`` says a killed run is dead.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_interrupt import writer_processes
from test_kill import SITECUSTOMIZE, state

KILLS = 3

SETTINGS = """
[default.run]
feed = "synthetic_live"
strategies = ["sma_cross"]
risk_filters = []
sinks = ["sql"]
session = "live-kill"
batch_size = 50
status_seconds = 0.2
[default.feeds.synthetic_live]
symbols = ["AAPL", "MSFT"]
speed = 60
quote_seconds = 0
warmup_bars = 5
volatility = 0.05
[default.strategies.sma_cross]
fast = 2
slow = 3
quantity = 1
counter_trend_confidence = 90
[default.brokers.paper]
state_file = "paper.json"
[default.sinks.sql]
writer = "process"
[default.logging]
console_level = "ERROR"
"""


def start(cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "run-pipeline", "--live", "--always", "--quiet"],
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def placed(cwd: Path) -> int:
    account = state(cwd / "paper.json")
    return 0 if account is None else int(account["next_id"]) - 1


def wait_for_orders(proc: subprocess.Popen[str], cwd: Path, wanted: int, why: str) -> None:
    deadline = time.monotonic() + 30
    while placed(cwd) < wanted:
        assert proc.poll() is None, f"{why}: the run ended: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{why}: the run never got going"
        time.sleep(0.005)


def wait_for_fills(proc: subprocess.Popen[str], cwd: Path, wanted: int, why: str) -> None:
    """Until the account has made ``wanted`` fills: orders placed just before a kill
    fill only on a later run's bars, so the count of placed orders alone does not
    say that enough was traded to test."""
    deadline = time.monotonic() + 30
    while True:
        account = state(cwd / "paper.json")
        if account is not None and len(account["fills"]) >= wanted:
            return
        assert proc.poll() is None, f"{why}: the run ended: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{why}: too little trading"
        time.sleep(0.005)


def status(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradepipe", "status", "--json"],
        cwd=cwd,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
@pytest.mark.slow
def test_a_killed_live_run_restarts_without_sending_twice_or_losing_a_fill(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("TRADEPIPE_KILL_SEED", "0")) or random.randrange(1, 10**6)
    rng = random.Random(seed)
    why = f"live kill test seed {seed} (rerun with TRADEPIPE_KILL_SEED={seed})"
    (tmp_path / "settings.toml").write_text(SETTINGS)
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))

    for kill in range(KILLS):
        proc = start(tmp_path, env)
        wait_for_orders(proc, tmp_path, placed(tmp_path) + rng.randint(2, 8), why)
        time.sleep(rng.uniform(0, 0.05))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        if kill == 0:
            dead = status(tmp_path, env)
            assert dead.returncode == 1, f"{why}: {dead.stdout}{dead.stderr}"
            assert json.loads(dead.stdout)["liveness"] == "dead", why
        deadline = time.monotonic() + 10
        while writer_processes(tmp_path):
            assert time.monotonic() < deadline, f"{why}: a ledger writer outlived the kill"
            time.sleep(0.01)

    # A last run, started on the killed one's status file and stopped gracefully.
    proc = start(tmp_path, env)
    try:
        wait_for_orders(proc, tmp_path, placed(tmp_path) + 2, why)
        wait_for_fills(proc, tmp_path, KILLS * 2, why)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{why}: {err}"

    account = state(tmp_path / "paper.json")
    assert account is not None
    broker_fills = {f["execution_id"]: f for f in account["fills"]}
    assert len(broker_fills) == len(account["fills"]) >= KILLS * 2, f"{why}: too little trading"
    sends = Counter((tmp_path / "sends.log").read_text().split())
    twice = {cid: n for cid, n in sends.items() if n > 1}
    assert not twice, f"{why}: client order ids sent more than once: {twice}"

    with sqlite3.connect(tmp_path / "tradepipe.db") as conn:
        ledger_fills = conn.execute(
            "select execution_id, symbol, side, quantity from fills"
        ).fetchall()
        runs = conn.execute("select status from runs order by started_at").fetchall()
    recorded = Counter(execution for execution, *_ in ledger_fills)
    missing = set(broker_fills) - set(recorded)
    assert not missing, f"{why}: fills the broker made but the ledger lost: {sorted(missing)}"
    doubled = {e: n for e, n in recorded.items() if n > 1}
    assert not doubled, f"{why}: fills recorded more than once: {doubled}"
    assert set(recorded) == set(broker_fills), f"{why}: fills the broker never made"
    # A killed run never closed itself: "running", or "killed" where a later start
    # tells from its recorded process that it is gone.
    assert [s for (s,) in runs][-1] == "stopped" and len(runs) == KILLS + 1, why
    assert {s for (s,) in runs[:-1]} <= {"running", "killed"}, why

    held: dict[str, Decimal] = {}
    for _execution, symbol, side, quantity in ledger_fills:
        sign = 1 if side == "buy" else -1
        held[symbol] = held.get(symbol, Decimal(0)) + sign * Decimal(str(quantity))
    broker_positions: dict[str, Any] = {
        p["symbol"]: Decimal(p["quantity"]) for p in account["positions"] if Decimal(p["quantity"])
    }
    assert {s: q for s, q in held.items() if q} == broker_positions, why
    print(f"{why}: {len(broker_fills)} fills, {sum(sends.values())} sends")
