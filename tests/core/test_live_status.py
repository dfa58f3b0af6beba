"""The status file a live run rewrites, and how a reader tells whether the run is up."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tradepipe import ConfigError
from tradepipe.cli.testing import invoke
from tradepipe.live.status import StatusFile
from tradepipe.plugins.feeds.synthetic import SyntheticFeed
from tradepipe.services.status import process_start, read_status
from tradepipe.testing import live

UTC = dt.UTC


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    return tmp_path


def market(count: int = 40) -> list[Any]:
    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["AAPL", "MSFT"], bars=count, interval="1m", seed=3)
    )
    feed.load()
    return list(feed.bars())


def document(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "state": "running",
        "pid": os.getpid(),
        "process_start": process_start(os.getpid()),
        "run_id": "r1",
        "session": "s1",
        "updated_at": dt.datetime.now(UTC).isoformat(),
        "every_seconds": 2,
    }
    return {**base, **fields}


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.slow
def test_a_live_run_writes_its_status_and_closes_it(workdir: Path) -> None:
    strategies = {"sma_cross": {"fast": 2, "slow": 4, "quantity": 1, "confidence": 90}}
    _p, result, _s, _r = live(
        market(),
        run={
            "strategies": ["sma_cross"],
            "risk_filters": ["halt"],
            "status_file": "status.json",
            "status_seconds": 0.2,
        },
        strategies=strategies,
        risk={"halt": {"state_file": "halt.json"}},
    )
    path = workdir / "status.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["state"] == "stopped" and doc["run_id"] and doc["mode"] == "live"
    assert doc["broker"] == "paper" and doc["account"] == "PAPER" and doc["paper"] is True
    assert doc["feed"]["name"] == "list_live" and set(doc["feed"]["last_bars"]) == {"AAPL", "MSFT"}
    assert doc["market"]["calendar"] == "always" and doc["market"]["open"] is True
    assert doc["counts"]["bars"] == result.bars == 80
    assert doc["counts"]["decisions"] == result.decisions > 0
    assert doc["pnl_today"]["start_equity"] == "100000.00"
    assert doc["halt"] == {
        "halted": False,
        "manual": None,
        "daily": None,
        "daily_limit_used": False,
    }
    found = read_status(path)
    assert found["liveness"] == "ended" and not found["running"]
    assert found["summary"] == f"not running: run {doc['run_id']} ended (stopped)"


def test_liveness_from_the_readers_side(workdir: Path) -> None:
    path = workdir / "status.json"
    assert read_status(path)["liveness"] == "none"
    assert read_status(write(path, document()))["liveness"] == "running"
    old = (dt.datetime.now(UTC) - dt.timedelta(minutes=5)).isoformat()
    stale = read_status(write(path, document(updated_at=old)))
    assert stale["liveness"] == "stale" and "last wrote 300 s ago" in stale["summary"]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = read_status(write(path, document(pid=int(gone.stdout), process_start="1")))
    assert dead["liveness"] == "dead" and "gone without closing" in dead["summary"]
    reused = read_status(write(path, document(process_start="12345")))
    assert reused["liveness"] == "dead"  # this pid belongs to another process now
    with pytest.raises(ConfigError, match="schema version"):
        read_status(write(path, {"state": "running"}))


def test_a_second_live_run_on_the_same_status_file_is_refused(workdir: Path) -> None:
    path = write(workdir / "status.json", document(pid=os.getppid(), process_start=None))
    with pytest.raises(ConfigError, match=r"another live run \(r1, pid .*\) is up"):
        StatusFile(path, 2).claim("s2")


def test_a_restart_of_the_session_keeps_the_days_starting_equity(workdir: Path) -> None:
    day = dt.datetime.now(UTC)
    doc = document(
        state="stopped",
        pnl_today={"day": "2026-03-02", "start_equity": "99000.00", "pnl": "12.00"},
    )
    path = write(workdir / "status.json", doc)
    again = StatusFile(path, 2)
    again.claim("s1")
    assert (again.day, again.day_start) == ("2026-03-02", 99000)
    other = StatusFile(path, 2)
    other.claim("another-session")
    assert other.day_start is None
    assert day  # the day itself is compared when the status is written


def test_tradepipe_status_for_no_run_a_running_one_and_a_dead_one(workdir: Path) -> None:
    none = invoke("status")
    assert (
        none.exit_code == 1 and "no live run: tradepipe-status.json does not exist" in none.output
    )
    path = workdir / "tradepipe-status.json"
    write(
        path,
        document(
            feed={
                "name": "synthetic_live",
                "connected": True,
                "lag_seconds": 0.4,
                "bars": 9,
                "gap_count": 0,
                "last_bars": {
                    "AAPL": {"ts": "2026-03-02T14:30:00+00:00", "close": 101.5, "age_seconds": 1.0}
                },
            },
            market={"calendar": "XNYS", "description": "open until 2026-03-02 21:00 UTC"},
            counts={"bars": 9, "decisions": 2, "orders": 1, "fills": 1},
            open_orders=[
                {
                    "client_order_id": "tp-1",
                    "symbol": "AAPL",
                    "side": "buy",
                    "quantity": "5",
                    "filled": "0",
                    "order_type": "limit",
                    "status": "accepted",
                }
            ],
            halt={"halted": False},
            pnl_today={"day": "2026-03-02", "start_equity": "100000.00", "pnl": "-3.10"},
        ),
    )
    up = invoke("status")
    assert up.exit_code == 0, up.output
    assert up.output.startswith(f"running: run r1 (pid {os.getpid()}), running")
    for text in ("XNYS: open until", "synthetic_live: connected", "-3.10", "tp-1", "101.5"):
        assert text in up.output
    as_json = json.loads(invoke("status", "--json").output)
    assert as_json["liveness"] == "running" and as_json["run_id"] == "r1"
    assert "waiting" not in up.output
    # A run whose broker session is lost says what it waits for.
    write(path, document(waiting_for="client_portal: the gateway is not logged in"))
    waiting = invoke("status")
    assert "waiting" in waiting.output and "for the broker's session" in waiting.output
    waited = json.loads(invoke("status", "--json").output)["waiting_for"]
    assert waited == "client_portal: the gateway is not logged in"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    write(path, document(pid=int(gone.stdout), process_start="1"))
    dead = invoke("status")
    assert dead.exit_code == 1 and dead.output.startswith("dead: run r1")


def test_without_a_status_file_there_is_nothing_to_read(workdir: Path) -> None:
    (workdir / "settings.toml").write_text('[default.run]\nstatus_file = ""\n')
    result = invoke("status")
    assert result.exit_code == 2
    assert "error: [run] status_file is empty: live runs write no status file" in result.output


@pytest.mark.slow
def test_the_console_view_draws_a_status(workdir: Path) -> None:
    import io

    from rich.console import Console
    from tradepipe.cli.live_view import render

    _p, _r, _s, _runner = live(
        market(10), run={"status_file": "status.json", "status_seconds": 0.2}
    )
    doc = json.loads((workdir / "status.json").read_text())
    doc["halt"] = {"halted": True, "manual": {"reason": "lunch"}}
    doc["open_orders"] = [
        {
            "client_order_id": "tp-1",
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "5",
            "filled": "0",
            "status": "accepted",
        }
    ]
    out = io.StringIO()
    Console(file=out, width=120).print(render(doc))
    text = out.getvalue()
    for part in (
        "tradepipe live",
        "feed list_live",
        "market always",
        "HALTED",
        "lunch",
        "AAPL",
        "tp-1",
        "Ctrl-C stops",
    ):
        assert part in text, part
