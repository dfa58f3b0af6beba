"""A live run against IBKR as a user starts it: ``run-pipeline --live`` on ``ibkr_stream``.

The gateway stand-in runs in its own process over TLS, on the wall clock, with IBKR's
documented behaviour (pacing measured on arrival, cold order lists…); a thread of the test
plays the market (trades through ``/_standin/ticks``). ``tradepipe run-pipeline --live``
runs as its own process: it streams quotes over the WebSocket, builds 5-second bars, picks up
a decision dropped in its folder, sends the order through the Client Portal adapter and
learns of the fill from IBKR's order stream, and stops on SIGTERM. Slow by nature (IBKR's
pacing on the wall clock): about 15 s.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import Gateway, write_broker_settings

AAPL = 265598


@pytest.fixture
def market(gateway: Gateway) -> Iterator[None]:
    """AAPL trades every half second around 190 while the test runs."""
    stop = threading.Event()

    def trade() -> None:
        price = 190.0
        while not stop.wait(0.5):
            price += 0.05 if int(time.monotonic() * 2) % 3 else -0.07
            gateway.ticks({"conid": AAPL, "price": round(price, 2), "size": 100, "after": 0})

    thread = threading.Thread(target=trade, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def ledger(path: Path, sql: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            return list(conn.execute(sql))
        except sqlite3.OperationalError:
            return []  # the run is still creating its tables


@pytest.mark.slow
@pytest.mark.slow
def test_a_live_run_on_ibkrs_stream_trades_and_stops_on_sigterm(
    gateway: Gateway, market: None, tmp_path: Path
) -> None:
    gateway.fill_market_orders(190.0)
    write_broker_settings(tmp_path, "client_portal", gateway.broker_table())
    settings = (tmp_path / "settings.toml").read_text()
    settings = settings.replace(
        "[default.run]",
        '[default.run]\nstrategies = ["decision_files"]\nsession = "live-ibkr"\n'
        'maintenance_window = ""\nstatus_seconds = 0.5',
        1,
    )
    settings += (
        '\n[default.feeds.ibkr_stream]\nsymbols = ["AAPL"]\nbar_size = "5s"\nwarmup_bars = 0\n'
        '[default.strategies.decision_files]\npath = "inbox"\n'
    )
    (tmp_path / "settings.toml").write_text(settings)
    (tmp_path / "inbox").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "run-pipeline", "--live", "--always",
         "--feed", "ibkr_stream", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        status_file = tmp_path / "tradepipe-status.json"

        def streaming() -> bool:
            try:
                status = json.loads(status_file.read_text())
            except (OSError, ValueError):
                return False
            return bool(status.get("feed", {}).get("connected")) and bool(
                status.get("feed", {}).get("last_bars")
            )

        wait_for("the stream's first bar", streaming, 30)
        decision = {"symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": 5}
        (tmp_path / "inbox" / "d1.json").write_text(json.dumps(decision))
        db = tmp_path / "ledger.db"
        fills = wait_for(
            "the fill in the ledger",
            lambda: ledger(db, "select ts, quantity, price from fills"),
            20,
        )
        [(_ts, quantity, price)] = fills
        assert (float(quantity), float(price)) == (5.0, 190.0)
        # The fill came from IBKR's order stream, not the 5-second executions poll: it is
        # in the ledger within about a second of the order's acceptance.
        [(accepted,)] = ledger(
            db, "select ts from order_events where status = 'accepted' order by seq"
        )
        [(filled,)] = ledger(db, "select ts from order_events where status = 'filled'")
        gap = _seconds(filled) - _seconds(accepted)
        assert gap < 3.0, f"the fill took {gap:.1f} s to reach the ledger"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert proc.returncode == 0, err
    [(status,)] = ledger(tmp_path / "ledger.db", "select status from runs")
    assert status == "stopped"
    journal = gateway.requests()
    assert gateway.violations() == []
    assert all(r["status"] != 429 for r in journal)
    posts = [r for r in journal if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert len(posts) == 1


def _seconds(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(str(text)).timestamp()
