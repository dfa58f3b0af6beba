"""An ordinary day with IBKR, through the commands a user types, against a truthful gateway.

The stand-in runs as IBKR documents by default: the first order list of every brokerage
session is cold, ssodh/init takes seconds, an idle brokerage session drops to 401 while the
SSO session lives, and the pacing limits are measured on arrival with a 10-minute penalty
box. Each test drives ``tradepipe`` commands (``CliRunner``, in this process, on the
stand-in's virtual clock: IBKR's real limits, no wall time) and asserts on the gateway's
request journal what was sent: POSTs per client order id, the spacing of paced calls, no
429 and no request inside a penalty. The same commands over TLS, as separate processes on
the wall clock, are in ``test_ibkr_processes.py``.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gateway_support import write_broker_settings
from inprocess_support import InProcessGateway
from tradepipe.cli.testing import invoke

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

ACCT = "DU1234567"
ORDERS = f"/iserver/account/{ACCT}/orders"


@pytest.fixture
def gw(
    inprocess_gateway: InProcessGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> InProcessGateway:
    """The stand-in as it comes, and ``tradepipe`` commands in ``tmp_path`` pointed at it."""
    inprocess_gateway.serve_cli(monkeypatch)
    write_broker_settings(tmp_path, "client_portal", inprocess_gateway.broker_table())
    monkeypatch.chdir(tmp_path)
    return inprocess_gateway


def ok(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def arrivals(gw: InProcessGateway, path: str, method: str = "GET") -> list[float]:
    return [r["at"] for r in gw.requests() if (r["method"], r["path"]) == (method, path)]


def order_posts(gw: InProcessGateway, cid: str) -> int:
    return sum(
        1
        for r in gw.requests()
        if (r["method"], r["path"]) == ("POST", ORDERS)
        and any(o.get("cOID") == cid for o in (r["body"] or {}).get("orders", []))
    )


def assert_paced(gw: InProcessGateway) -> None:
    """No 429 from IBKR, and the order list read no more than once per 5 s."""
    assert gw.violations() == []
    assert all(r["status"] != 429 for r in gw.requests())
    reads = arrivals(gw, "/iserver/account/orders")
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(reads)), reads


def buy(*extra: str) -> Any:
    return ok("order", "stock", "AAPL", "--side", "buy", "--quantity", "5", *extra)


# -- 1. cold order lists ----------------------------------------------------------------------


def test_the_first_commands_after_a_login_read_through_the_cold_order_list(
    gw: InProcessGateway,
) -> None:
    assert ok("broker", "orders") == []  # not an error: read again until IBKR has it
    cold, warm = arrivals(gw, "/iserver/account/orders")
    assert warm - cold >= 5.5
    placed = buy("--type", "limit", "--limit-price", "90")
    assert placed["order"]["status"] == "accepted"
    assert [o["client_order_id"] for o in ok("broker", "orders")] == [
        placed["order"]["client_order_id"]
    ]
    assert_paced(gw)


# -- 2. a 401 is not "log in again" -------------------------------------------------------------


def test_an_idle_brokerage_session_is_reopened_without_a_login(gw: InProcessGateway) -> None:
    placed = buy("--type", "limit", "--limit-price", "90")
    cid = placed["order"]["client_order_id"]
    gw.pause(600)  # nobody asked anything: IBKR closes the brokerage session; SSO lives
    orders = ok("broker", "orders")
    assert [o["client_order_id"] for o in orders] == [cid]
    inits = arrivals(gw, "/iserver/auth/ssodh/init", "POST")
    assert len(inits) == 1
    # The status was polled until the session came up (IBKR takes 3 s), then the accounts
    # were read again before the order list.
    after = [r for r in gw.requests() if r["at"] >= inits[0]]
    paths = [r["path"] for r in after]
    assert paths.count("/iserver/auth/status") >= 2
    assert paths.index("/iserver/accounts") < paths.index("/iserver/account/orders")
    assert_paced(gw)


def test_only_a_gone_sso_session_asks_for_a_login(gw: InProcessGateway) -> None:
    gw.set_auth(logged_in=False)
    result = invoke("broker", "orders")
    assert result.exit_code == 1
    assert f"log in at https://127.0.0.1:{gw.port} in a browser" in result.output
    assert not arrivals(gw, "/iserver/auth/ssodh/init", "POST")


def test_a_run_waits_for_a_login_and_then_goes_on(gw: InProcessGateway, tmp_path: Path) -> None:
    settings = (tmp_path / "settings.toml").read_text()
    (tmp_path / "settings.toml").write_text(
        settings.replace("[default.run]", "[default.run]\nsession_wait_seconds = 3600", 1)
    )
    gw.fill_market_orders(100.0)
    # Mid-run the gateway's login is lost (a reset, another login); a person logs in
    # again five minutes later.
    gw.clock.after(20, lambda: gw.set_auth(logged_in=False))
    gw.clock.after(320, lambda: gw.set_auth(logged_in=True))
    result = invoke("run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "waiting up to 60 min for the session to come back" in result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["orders"].get("open", 0) == 0, summary
    assert ok("reconcile")["differences"] == []
    assert_paced(gw)


def test_a_run_whose_login_never_comes_back_stops_after_the_wait(
    gw: InProcessGateway, tmp_path: Path
) -> None:
    settings = (tmp_path / "settings.toml").read_text()
    (tmp_path / "settings.toml").write_text(
        settings.replace("[default.run]", "[default.run]\nsession_wait_seconds = 120", 1)
    )
    gw.fill_market_orders(100.0)
    gw.clock.after(20, lambda: gw.set_auth(logged_in=False))
    result = invoke("run-pipeline", "--no-progress")
    assert result.exit_code == 1
    assert "log in at" in result.output
    assert ok("ledger", "runs")[0]["status"] == "failed"


# -- 3. pacing with headroom, one budget --------------------------------------------------------


def test_commands_as_fast_as_a_person_types_draw_no_429(gw: InProcessGateway) -> None:
    ok("broker", "orders")
    placed = buy("--type", "limit", "--limit-price", "90")
    cid = placed["order"]["client_order_id"]
    ok("broker", "orders")
    assert invoke("broker", "cancel", cid, "--wait", "10").exit_code == 0
    ok("broker", "positions")
    ok("run-pipeline", "--no-progress")
    assert len(arrivals(gw, "/sso/validate")) == 1  # once a minute, across every command
    assert order_posts(gw, cid) == 1
    assert_paced(gw)


# -- 4. refused before processing ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["503", "429"])
def test_an_order_refused_before_processing_ends_rejected_not_unknown(
    gw: InProcessGateway, kind: str
) -> None:
    ok("broker", "orders")
    gw.fault("POST", ORDERS, kind)  # refused without being processed
    result = invoke("order", "stock", "AAPL", "--side", "buy", "--quantity", "5", "--json")
    assert result.exit_code == 0, result.output
    placed = json.loads(result.stdout)
    cid = placed["order"]["client_order_id"]
    assert placed["order"]["status"] == "unknown"
    if kind == "429":
        # IBKR's penalty box: nothing may be asked for 15 minutes, and nothing is.
        blocked = invoke("reconcile")
        assert blocked.exit_code == 1 and "paused until" in blocked.output
        before = len(gw.requests())
        gw.pause(900)
        assert len(gw.requests()) == before
    gw.pause(61)  # IBKR's window to show an order it took has passed
    found = ok_end = invoke("reconcile", "--json")
    assert found.exit_code == 1
    [diff] = [d for d in json.loads(ok_end.stdout)["differences"] if d["subject"] == cid]
    assert (diff["kind"], diff["broker"]) == ("order_end", "rejected, 0 new fill(s)")
    fixed = ok("reconcile", "--fix")
    assert [d["action"] for d in fixed["differences"] if d["subject"] == cid] == ["adopted"]
    assert ok("reconcile")["differences"] == []
    [row] = [o for o in ok("ledger", "orders", "--run", placed["run_id"])]
    assert (row["client_order_id"], row["status"]) == (cid, "rejected")
    assert order_posts(gw, cid) == 1  # never sent again
    assert not gw.orders()


# -- 5. a run ends with its orders' final states -------------------------------------------------


def test_a_run_ends_with_what_ibkr_says_of_its_orders(gw: InProcessGateway) -> None:
    gw.fill_market_orders(100.0)  # the market takes market orders at once
    summary = ok("run-pipeline", "--no-progress")
    orders = summary["orders"]
    assert orders.get("filled", 0) >= 1, summary
    assert orders.get("open", 0) == 0, summary
    assert ok("reconcile")["differences"] == []
    assert_paced(gw)


# -- 6. bracket exits stay linked ----------------------------------------------------------------


def test_a_bracket_exit_filled_after_the_command_is_linked_by_its_ibkr_id(
    gw: InProcessGateway,
) -> None:
    placed = buy("--take-profit", "170", "--stop-loss", "140")
    cid = placed["order"]["client_order_id"]
    [parent] = [o for o in gw.orders() if o["cOID"] == cid]
    exits = sorted(
        (o for o in gw.orders() if o["parent_order_id"] == parent["order_id"]),
        key=lambda o: o["order_id"],
    )
    take_profit = exits[0]
    ledger = {o["client_order_id"]: o for o in ok("ledger", "orders", "--run", placed["run_id"])}
    assert ledger[f"{cid}-tp"]["status"] == "accepted"
    assert ledger[f"{cid}-sl"]["status"] == "accepted"
    # IBKR lists the exits without a cOID; tradepipe knows them by name.
    assert {o["client_order_id"] for o in ok("broker", "orders")} == {
        cid,
        f"{cid}-tp",
        f"{cid}-sl",
    }
    # Later, with nothing of tradepipe running: the parent fills, then the take-profit.
    gw.fill(parent["order_id"], 5, 150.0)
    gw.pause(60)
    gw.fill(take_profit["order_id"], 5, 170.0)
    gw.order_status(exits[1]["order_id"], "Cancelled")  # IBKR cancels the other exit
    gw.pause(60)
    result = invoke("reconcile", "--json")
    assert result.exit_code == 1
    found = {(d["subject"], d["broker"]) for d in json.loads(result.stdout)["differences"]}
    # Every execution is known as the exit's, none as "a trade made elsewhere".
    assert found == {
        (cid, "filled, 1 new fill(s)"),
        (f"{cid}-tp", "filled, 1 new fill(s)"),
        (f"{cid}-sl", "canceled, 0 new fill(s)"),
    }
    ok("reconcile", "--fix")
    assert ok("reconcile")["differences"] == []
    [chain] = ok("explain", cid)  # the decision, its order and both exits, in one run
    orders = {o["order"]["client_order_id"]: o for o in chain["orders"]}
    assert set(orders) == {cid, f"{cid}-tp", f"{cid}-sl"}
    [exit_fill] = orders[f"{cid}-tp"]["fills"]
    assert Decimal(exit_fill["price"]) == 170 and Decimal(exit_fill["quantity"]) == 5
    assert [e["status"] for e in orders[f"{cid}-sl"]["events"]][-1] == "canceled"
    traded = {t["client_order_id"] for t in ok("broker", "trades")}
    assert f"{cid}-tp" in traded
    assert_paced(gw)


# -- 7. a lost cancel answer -------------------------------------------------------------------


def test_a_lost_cancel_answer_is_settled_and_recorded(gw: InProcessGateway) -> None:
    placed = buy("--type", "limit", "--limit-price", "90")
    cid = placed["order"]["client_order_id"]
    [parent] = gw.orders()
    gw.fault("DELETE", f"/iserver/account/{ACCT}/order/{parent['order_id']}", "drop", after=True)
    before = len(gw.requests())
    result = invoke("broker", "cancel", cid, "--wait", "10")
    assert result.exit_code == 0, result.output
    assert "canceled" in result.output
    # The ledger knew IBKR's id for the order: the cancel and its look-ups needed no
    # (paced) read of the order list.
    during = gw.requests()[before:]
    assert "/iserver/account/orders" not in {r["path"] for r in during}
    ledger = ok("ledger", "orders", "--run", placed["run_id"])
    assert [(o["client_order_id"], o["status"]) for o in ledger] == [(cid, "canceled")]
    [chain] = ok("explain", cid)
    history = [(e["status"], e["reason"]) for e in chain["orders"][0]["events"]]
    assert [status for status, _ in history] == [
        "submitted",
        "accepted",
        "pending_cancel",
        "canceled",
    ]
    assert history[2][1].startswith("cancel requested")
    assert history[3][1] == "settled after the cancel that was asked for from the broker's report"
    deletes = arrivals(gw, f"/iserver/account/{ACCT}/order/{parent['order_id']}", "DELETE")
    assert len(deletes) == 1
    assert_paced(gw)


# -- 8. the small ones -------------------------------------------------------------------------


def test_logout_ends_the_gateway_session(gw: InProcessGateway) -> None:
    assert "logged out" in ok("broker", "logout", "--yes")["message"]
    assert arrivals(gw, "/logout", "POST")
    result = invoke("broker", "status")
    assert result.exit_code == 1 and "log in at" in result.output
