"""The dashboard in a real browser: sign in, see the account, place and cancel an order."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest
from browser_support import ARTIFACTS, TOKEN, Served, _tradepipe

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

TIMEOUT = 20_000  # ms


def _page(browser: Any, served: Served, errors: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The page must not try to reach anything but the app that served it.
    page.on(
        "request",
        lambda r: None if r.url.startswith(served.url) else errors.append(f"request to {r.url}"),
    )
    return page


def _loaded(page: Any) -> None:
    """Wait for a refresh that started after now to finish."""
    # (The page's policy forbids eval, so no wait_for_function: a selector waits.)
    before = page.get_attribute("body", "data-loaded") or ""
    page.wait_for_selector(f'body[data-loaded]:not([data-loaded="{before}"])')


def test_sign_in_is_required_and_a_wrong_token_is_refused(browser: Any, served: Served) -> None:
    errors: list[str] = []
    page = _page(browser, served, errors)
    page.goto(served.url + "/")
    form = page.locator("#signin")
    form.wait_for(state="visible")
    assert page.locator("#main").inner_text() == ""
    page.fill("#token", "not-the-token-0123456789")
    page.click("#signin button[type=submit]")
    page.locator("#signin-error").filter(has_text="refused").wait_for()
    assert form.is_visible()
    assert page.locator("#main").inner_text() == ""
    assert errors == []


def test_positions_order_and_cancel_through_the_page(browser: Any, served: Served) -> None:
    held = served.api.get("/positions").json()
    assert held, "the replay should leave the paper account holding something"
    errors: list[str] = []
    page = _page(browser, served, errors)
    page.on("dialog", lambda dialog: dialog.accept())

    # The address `tradepipe serve` prints carries the token in the fragment;
    # the page keeps it in the tab and takes it out of the address bar.
    page.goto(f"{served.url}/#token={TOKEN}")
    page.wait_for_selector("body[data-loaded]")
    assert TOKEN not in page.url
    assert page.locator("#signin").is_hidden()

    positions = page.locator("#positions")
    for p in held:
        row = positions.locator("tr", has_text=p["symbol"])
        assert row.count() == 1
        assert p["quantity"] in row.inner_text()
    assert "paper account" in page.locator("#session").inner_text()
    assert "No live run" in page.locator("#live").inner_text()
    assert page.locator("#decisions tbody tr").count() > 0
    assert page.locator("#equity svg path").count() == 1
    # The replay's metrics, as GET /report gives them.
    performance = page.locator("#performance").inner_text()
    assert "total return" in performance and "sharpe" in performance and " %" in performance

    # A limit buy far below the market stays working until it is cancelled.
    form = page.locator("#order-form")
    form.locator("[name=symbol]").fill("aapl")
    form.locator("[name=side]").select_option("buy")
    form.locator("[name=quantity]").fill("1")
    form.locator("[name=order_type]").select_option("limit")
    form.locator("[name=limit_price]").fill("1.25")
    form.locator("button[type=submit]").click()
    result = page.locator("#order-result")
    result.locator(".good").wait_for()
    match = re.search(r"Order (tp-[0-9a-f]+): buy 1 AAPL limit — accepted", result.inner_text())
    assert match, result.inner_text()
    cid = match.group(1)
    row = page.locator("#orders tr", has_text=cid)
    row.wait_for()
    assert "1.25" in row.inner_text()
    assert [o["client_order_id"] for o in served.api.get("/orders").json()] == [cid]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    row.get_by_role("button", name=f"Cancel order {cid}").click()
    page.locator("#orders").filter(has_text="No open orders.").wait_for()
    assert served.api.get("/orders").json() == []
    page.locator("#notice").filter(has_text=f"Cancel of {cid}").wait_for()

    # The ledger has the order with every verdict, sent from the API, then cancelled.
    with sqlite3.connect(served.folder / "tradepipe.db") as db:
        (source, symbol, quantity, limit) = db.execute(
            "SELECT source, symbol, quantity, limit_price FROM orders WHERE client_order_id = ?",
            (cid,),
        ).fetchone()
        statuses = [
            s
            for (s,) in db.execute(
                "SELECT status FROM order_events WHERE client_order_id = ? ORDER BY seq", (cid,)
            )
        ]
        filters = [
            f
            for (f,) in db.execute(
                "SELECT filter FROM verdicts WHERE client_order_id = ? ORDER BY seq", (cid,)
            )
        ]
    assert (source, symbol, float(quantity), float(limit)) == ("api", "AAPL", 1.0, 1.25)
    assert filters == ["halt", "min_confidence", "max_position_value", "buying_power"]
    assert statuses[-1] == "canceled", statuses
    assert "submitted" in statuses or "accepted" in statuses

    # The decision shows on the page with its verdicts once the page refreshes.
    page.click("#refresh")
    _loaded(page)
    decision = page.locator("#decisions tr", has_text=cid)
    assert "canceled" in decision.inner_text()
    assert "min_confidence: pass" in decision.inner_text()
    assert errors == []


def test_halt_and_resume_from_the_page(browser: Any, served: Served) -> None:
    errors: list[str] = []
    page = _page(browser, served, errors)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{served.url}/#token={TOKEN}")
    page.wait_for_selector("body[data-loaded]")
    page.click("#halt")
    page.locator("#banner.halted").filter(has_text="halted by hand").wait_for()
    assert served.api.get("/halt").json()["halted"] is True

    # While halted, an order from the page is refused by the halt filter.
    form = page.locator("#order-form")
    form.locator("[name=symbol]").fill("MSFT")
    form.locator("[name=quantity]").fill("1")
    form.locator("[name=limit_price]").fill("1")
    form.locator("button[type=submit]").click()
    page.locator("#order-result p.bad").wait_for()
    assert "halt: deny" in page.locator("#order-result").inner_text()
    assert served.api.get("/orders").json() == []

    page.click("#resume")
    page.locator("#halt").wait_for(state="visible")
    assert page.locator("#banner").is_hidden()
    assert served.api.get("/halt").json()["halted"] is False
    assert errors == []


def test_the_snapshot_page_opens_from_disk(browser: Any, served: Served) -> None:
    """``tradepipe snapshot --html`` writes the same page, working with no server at all."""
    made = _tradepipe(served.folder, "snapshot", "--html")
    assert made.returncode == 0, made.stderr
    errors: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda r: None if r.url.startswith("file://") else errors.append(f"request to {r.url}"),
    )
    page.goto((served.folder / "snapshots" / "index.html").as_uri())
    positions = page.locator("#snap-positions")
    positions.wait_for()
    for p in served.api.get("/positions").json():
        assert p["symbol"] in positions.locator("tr", has_text=p["symbol"]).inner_text()
    assert "paper" in page.locator("#meta").inner_text()
    assert page.locator("#signin").is_hidden() and page.locator("#controls").is_hidden()
    assert page.locator("#snap-quotes tbody tr").count() > 0
    assert errors == []


def test_the_live_run_panel_shows_a_running_run(browser: Any, served: Served) -> None:
    import datetime as dt
    import json
    import os

    from tradepipe.services.status import process_start

    # A status file as a live run writes it, from a process that is alive (this one).
    (served.folder / "tradepipe-status.json").write_text(
        json.dumps(
            {
                "schema_version": 1,
                "state": "running",
                "pid": os.getpid(),
                "process_start": process_start(os.getpid()),
                "run_id": "20261206T101500-3fa2c1",
                "updated_at": dt.datetime.now(dt.UTC).isoformat(),
                "every_seconds": 2,
                "market": {"calendar": "always", "open": True, "description": "open"},
                "feed": {
                    "name": "synthetic_live",
                    "connected": True,
                    "lag_seconds": 0.4,
                    "last_bars": {"MSFT": {"ts": "2026-12-06T10:15:00+00:00", "close": 124.5}},
                },
                "counts": {"bars": 42, "decisions": 3, "orders": 2, "fills": 2},
                "pnl_today": {"pnl": "12.34"},
            }
        )
    )
    errors: list[str] = []
    page = _page(browser, served, errors)
    page.goto(f"{served.url}/#token={TOKEN}")
    page.wait_for_selector("body[data-loaded]")
    panel = page.locator("#live").inner_text()
    for text in (
        "running",
        "market open",
        "20261206T101500-3fa2c1",
        "synthetic_live: connected",
        "42 bars",
        "12.34",
        "MSFT",
        "124.5",
    ):
        assert text in panel, (text, panel)
    assert errors == []


def test_a_waiting_decision_is_approved_from_the_page(browser: Any, served: Served) -> None:
    # A decision of a source [approval] names waits instead of going to the broker.
    decision = {
        "source": "desk-review",
        "symbol": "AAPL",
        "action": "buy",
        "confidence": 90,
        "quantity": 1,
        "order_type": "limit",
        "limit_price": 1,
    }
    waiting = served.api.post("/decisions/execute", json=decision).json()
    approval = waiting["approval"]["approval_id"]
    errors: list[str] = []
    page = _page(browser, served, errors)
    page.on("dialog", lambda dialog: dialog.accept())  # "Send …?"
    page.goto(f"{served.url}/#token={TOKEN}")
    page.wait_for_selector("body[data-loaded]")
    row = page.locator("#approvals tr", has_text=approval)
    assert row.count() == 1 and "desk-review" in row.inner_text()
    page.get_by_label(f"Approve {approval}").click()
    page.locator("#notice", has_text=f"Approval {approval}: sent").wait_for()
    _loaded(page)
    assert "Nothing waits for approval." in page.locator("#approvals").inner_text()
    [answered] = served.api.get("/approvals", params={"all": True}).json()
    assert (answered["status"], answered["decided_by"]) == ("sent", "api")
    assert answered["client_order_id"] in page.locator("#orders").inner_text()
    assert errors == []
