"""Separate ``tradepipe`` processes against one gateway over TLS, at IBKR's real limits.

IBKR counts requests per session, not per program: commands typed one after another (and a
run or ``serve`` beside them) spend one budget. Each command here is its own process, as a
user runs it, on the wall clock against the stand-in in its own process, which measures
IBKR's published limits on arrival. Slow by nature (the order list is readable once every
5 s): the rest of the ordinary-day tests run in this process on a virtual clock.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gateway_support import Gateway, write_broker_settings


def tradepipe(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    return subprocess.run(
        [sys.executable, "-m", "tradepipe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(cwd: Path, *args: str) -> Any:
    done = tradepipe(cwd, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.slow
def test_commands_in_separate_processes_share_one_budget_and_draw_no_429(
    gateway: Gateway, tmp_path: Path
) -> None:
    write_broker_settings(tmp_path, "client_portal", gateway.broker_table())
    assert ok(tmp_path, "broker", "orders") == []  # through the new session's cold list
    time.sleep(10)
    placed = ok(
        tmp_path,
        "order", "stock", "AAPL", "--side", "buy", "--quantity", "5",
        "--type", "limit", "--limit-price", "90",
    )  # fmt: skip
    cid = placed["order"]["client_order_id"]
    # Typed straight after: the order list was read by the last process moments ago.
    assert [o["client_order_id"] for o in ok(tmp_path, "broker", "orders")] == [cid]

    journal = gateway.requests()
    assert gateway.violations() == []
    assert all(r["status"] != 429 for r in journal)
    # /sso/validate once a minute: the later commands knew the login type already.
    assert [r["path"] for r in journal].count("/sso/validate") == 1
    reads = [r["at"] for r in journal if r["path"] == "/iserver/account/orders"]
    assert len(reads) >= 3
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(reads)), reads
    posts = [r for r in journal if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert [p["body"]["orders"][0]["cOID"] for p in posts] == [cid]
