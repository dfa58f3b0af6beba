"""The Client Portal adapter end to end: the CLI a user runs, against the gateway stand-in.

Most tests run the stand-in in this process (``inprocess_gateway``): the adapter a ``tradepipe``
command builds reaches it through the in-process transport and waits on its virtual clock, so
IBKR's real pacing limits (5 s between order-list reads, 60 s between session validations...)
apply at no wall-time cost. What only a real connection shows runs against the stand-in in its
own process over TLS (verified against its CA), with IBKR's pacing compressed in time: the
certificate check, and a dropped connection (which also runs in this process).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gateway_support import LIVE_ACCOUNT, Gateway, write_broker_settings
from inprocess_support import InProcessGateway
from standin.driver import Driver
from tradepipe.brokers.ibkr.contracts import month_code
from tradepipe.cli.testing import invoke

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow


def write_settings(path: Path, gw: Driver, **broker: Any) -> None:
    write_broker_settings(path, "client_portal", gw.broker_table(**broker))


def serve(gw: Driver, path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands run in ``path`` use the client_portal broker on ``gw``."""
    gw.serve_cli(monkeypatch)
    write_settings(path, gw)
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def gw(inprocess_gateway: InProcessGateway) -> InProcessGateway:
    return inprocess_gateway


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gw: InProcessGateway) -> Path:
    return serve(gw, tmp_path, monkeypatch)


def ok_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_reads_through_the_cli(workdir: Path, gw: Driver) -> None:
    status = ok_json("broker", "status")
    assert status["authenticated"] and status["paper"]
    assert status["account_id"] == "DU***4567"
    gw.positions([{"conid": 265598, "position": 10, "avgPrice": 150.0, "ticker": "AAPL"}])
    positions = ok_json("broker", "positions")
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("AAPL", "10")]
    quotes = ok_json("broker", "quote", "AAPL", "MSFT")
    assert {q["symbol"] for q in quotes} == {"AAPL", "MSFT"}
    assert all(q["last"] is not None for q in quotes)  # the pre-flight was handled
    bars = ok_json("broker", "history", "AAPL", "--bars", "5")
    assert len(bars) == 5
    assert ok_json("broker", "scan")
    paths = [r["path"] for r in gw.requests()]
    # The account list is read before the portfolio and market data.
    assert paths.index("/iserver/accounts") < paths.index("/iserver/marketdata/snapshot")
    assert "/portfolio/accounts" in paths


def test_place_list_and_cancel_an_order(workdir: Path, gw: Driver) -> None:
    placed = ok_json(
        "order",
        "stock",
        "AAPL",
        "--side",
        "buy",
        "--quantity",
        "5",
        "--type",
        "limit",
        "--limit-price",
        "90",
    )
    cid = placed["order"]["client_order_id"]
    assert placed["order"]["status"] == "accepted"
    book = gw.orders()
    assert [o.get("cOID") or o.get("order_ref") for o in book] == [cid]
    orders = ok_json("broker", "orders")
    assert [o["client_order_id"] for o in orders] == [cid]
    result = invoke("broker", "cancel", cid, "--wait", "5")
    assert result.exit_code == 0, result.output
    assert "canceled" in result.output
    # The confirmed cancel is written into the history of the run that sent the order.
    ledger = ok_json("ledger", "orders", "--run", placed["run_id"])
    assert [(o["client_order_id"], o["status"]) for o in ledger] == [(cid, "canceled")]
    posts = [r for r in gw.requests() if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert len(posts) == 1
    assert posts[0]["body"]["orders"][0]["cOID"] == cid


def test_the_reply_policy_confirms_known_questions_and_refuses_others(
    workdir: Path, gw: Driver
) -> None:
    write_settings(workdir, gw, confirm=["o163"])
    gw.questions(["o163"])
    assert (
        ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "1")["order"]["status"]
        == "accepted"
    )
    gw.questions(["o163", "o354"])
    result = invoke("order", "stock", "AAPL", "--side", "buy", "--quantity", "2", "--json")
    assert result.exit_code == 1
    order = json.loads(result.stdout)["order"]
    assert order["status"] == "rejected"
    assert "o354" in order["reason"] and "reply policy does not confirm" in order["reason"]
    assert len(gw.orders()) == 1  # the refused one was discarded at IBKR


def test_a_question_left_to_a_person_waits_and_its_approval_sends_the_order_again(
    workdir: Path, gw: Driver
) -> None:
    write_settings(workdir, gw, confirm=["o354"], ask=["o163"])
    gw.questions(["o163", "o354"])
    asked = ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "2")
    first = asked["order"]
    assert first["status"] == "rejected" and "o163" in first["reason"]
    waiting = asked["approval"]
    assert waiting["kind"] == "question" and "o163" in waiting["reason"]
    # Declined at IBKR at once (its reply id dies with the next request): nothing is
    # at the market while the person decides.
    assert gw.orders() == []
    replies = [r["body"] for r in gw.requests() if r["path"].startswith("/iserver/reply/")]
    assert replies == [{"confirmed": False}]
    [listed] = ok_json("approvals")
    assert (listed["approval_id"], listed["kind"], listed["message_ids"], listed["status"]) == (
        waiting["approval_id"],
        "question",
        "o163",
        "pending",
    )
    assert "price percentage limit" in listed["question"]

    done = ok_json("approve", waiting["approval_id"])
    assert done["status"] == "sent", done
    cid = done["client_order_id"]
    assert cid != first["client_order_id"]  # a new order: IBKR discarded the first
    assert [o.get("cOID") or o.get("order_ref") for o in gw.orders()] == [cid]
    replies = [r["body"] for r in gw.requests() if r["path"].startswith("/iserver/reply/")]
    # o163 confirmed for this order because a person said so; o354 by the policy.
    assert replies == [{"confirmed": False}, {"confirmed": True}, {"confirmed": True}]

    # Approving again sends nothing.
    again = invoke("approve", waiting["approval_id"])
    assert again.exit_code != 0 and "answered already (sent" in again.output
    assert len(gw.orders()) == 1
    # A later order asks again: the person's answer was for that order only.
    later = ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "1")
    assert later["order"]["status"] == "rejected" and later["approval"]["kind"] == "question"
    assert len(gw.orders()) == 1
    # The order sent again meets the next question, which waits too, and approve says so.
    write_settings(workdir, gw, ask=["o163", "o354"])
    second = invoke("approve", later["approval"]["approval_id"])
    assert second.exit_code == 0, second.output
    [(next_id, ids, answered)] = [
        (a["approval_id"], a["message_ids"], a["answered"]) for a in ok_json("approvals")
    ]
    assert (ids, answered) == ("o354", "o163,o354")
    assert f"waits for you as approval {next_id}" in second.output and "o354" in second.output
    assert len(gw.orders()) == 1
    third = ok_json("approve", next_id)
    assert third["status"] == "sent" and third["asked"] is None
    assert len(gw.orders()) == 2

    # explain: the refused order, the question that waited and who answered, the order sent.
    chains = ok_json("explain", asked["decision"]["id"])
    orders = [
        (o["order"]["client_order_id"], o["events"][-1]["status"])
        for c in chains
        for o in c["orders"]
    ]
    assert (first["client_order_id"], "rejected") in orders and (cid, "accepted") in orders
    [shown] = {a["approval_id"]: a for c in chains for a in c["approvals"]}.values()
    assert shown["status"] == "sent" and shown["decided_by"]
    text = invoke("explain", asked["decision"]["id"]).output
    assert f"approval {waiting['approval_id']}: waited" in text


def test_a_dropped_connection_after_the_order_is_settled_not_resent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, any_gateway: Driver
) -> None:
    gw = any_gateway  # in this process, then a real TCP connection shut by the server
    serve(gw, tmp_path, monkeypatch)
    gw.fault("POST", f"/iserver/account/{gw.account}/orders", "drop", after=True)
    placed = ok_json("order", "stock", "AAPL", "--side", "buy", "--quantity", "3")
    statuses = [e["status"] for e in placed["events"]]
    assert statuses == ["submitted", "unknown", "accepted"]
    assert len(gw.orders()) == 1
    posts = [r for r in gw.requests() if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert len(posts) == 1


def test_a_logged_out_gateway_says_where_to_log_in(workdir: Path, gw: Driver) -> None:
    gw.set_auth(logged_in=False)
    result = invoke("broker", "status")
    assert result.exit_code == 1
    assert f"log in at https://127.0.0.1:{gw.port} in a browser" in result.output
    result = invoke("order", "stock", "AAPL", "--side", "buy", "--quantity", "1")
    assert result.exit_code == 1
    assert not gw.orders()


def test_a_dropped_brokerage_session_is_reopened(workdir: Path, gw: Driver) -> None:
    gw.set_auth(authenticated=False, connected=True)
    assert ok_json("broker", "status")["authenticated"]
    assert any(r["path"] == "/iserver/auth/ssodh/init" for r in gw.requests())


def test_a_live_account_is_refused_without_opt_in(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start_inprocess_gateway: Callable[..., InProcessGateway],
) -> None:
    live_gateway = start_inprocess_gateway(LIVE_ACCOUNT)
    serve(live_gateway, tmp_path, monkeypatch)
    result = invoke("order", "stock", "AAPL", "--side", "buy", "--quantity", "1")
    assert result.exit_code == 2
    assert "live account (U***4567)" in result.output
    assert not live_gateway.orders()


def test_a_429_is_reported_and_not_retried(workdir: Path, gw: Driver) -> None:
    gw.fault("GET", f"/portfolio/{gw.account}/summary", "429")
    result = invoke("broker", "accounts")
    assert result.exit_code == 1
    assert "rate limit" in result.output
    hits = [r for r in gw.requests() if r["path"].endswith("/summary")]
    assert len(hits) == 1


def test_tls_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateway: Gateway) -> None:
    gw = gateway  # the stand-in in its own process, over TLS
    workdir = serve(gw, tmp_path, monkeypatch)
    assert ok_json("broker", "status")["authenticated"]  # trusting the stand-in's CA
    write_settings(workdir, gw, verify=True)  # the system store does not know the CA
    result = invoke("broker", "status")
    assert result.exit_code == 1
    assert "failed TLS verification" in result.output
    write_settings(workdir, gw, verify=False)  # allowed: the gateway is on loopback
    assert ok_json("broker", "status")["authenticated"]


def test_run_pipeline_against_the_gateway(workdir: Path, gw: Driver) -> None:
    result = invoke("run-pipeline", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    sent = summary["orders"].get("submitted", 0) + summary["orders"].get("open", 0)
    assert summary["broker"] == "client_portal"
    cids = {o["client_order_id"] for o in ok_json("ledger", "orders") if o["status"] != "denied"}
    assert cids, summary
    assert {o.get("cOID") or o.get("order_ref") for o in gw.orders()} == cids
    assert sent >= 0


def buy_call_spread(expiry: str, quantity: int) -> Any:
    """``tradepipe order options``: the AAPL 200/210 call spread, limit 3.25."""
    return ok_json(
        "order",
        "options",
        "AAPL",
        "--leg",
        f"buy C 200 {expiry}",
        "--leg",
        f"sell C 210 {expiry}",
        "--quantity",
        str(quantity),
        "--type",
        "limit",
        "--limit-price",
        "3.25",
    )


def test_option_and_combo_orders(workdir: Path, gw: Driver) -> None:
    expiry = _expiry(gw)
    before = len(gw.requests())
    single = ok_json(
        "order",
        "options",
        "AAPL",
        "--leg",
        f"buy C 200 {expiry}",
        "--quantity",
        "2",
        "--type",
        "limit",
        "--limit-price",
        "4.10",
    )
    assert single["order"]["status"] == "accepted"
    assert (
        single["order"]["intent"]["symbol"]
        == f"AAPL  {expiry[2:4]}{expiry[5:7]}{expiry[8:10]}C00200000"
    )
    combo = buy_call_spread(expiry, 1)
    assert combo["order"]["status"] == "accepted"
    ours = gw.requests()[before:]
    posts = [
        r["body"]["orders"][0]
        for r in ours
        if r["method"] == "POST" and r["path"].endswith("/orders")
    ]
    assert isinstance(posts[0]["conid"], int) and "ticker" not in posts[0]
    assert (posts[0]["side"], posts[0]["quantity"], posts[0]["price"]) == ("BUY", 2, 4.1)
    assert posts[1]["conidex"].startswith("28812380;;;")
    legs = posts[1]["conidex"].split(";;;")[1].split(",")
    assert [leg.split("/")[1] for leg in legs] == ["1", "-1"]
    assert "conid" not in posts[1]
    # The chain was walked the way IBKR requires: search before info.
    paths = [r["path"] for r in ours]
    assert paths.index("/iserver/secdef/search") < paths.index("/iserver/secdef/info")
    # Only the underlying is ever looked up as a stock: never an option's OCC symbol
    # or a combo's ticker ("AAPL X68DBC5A5").
    looked_up = {r["query"].get("symbols") for r in ours if r["path"] == "/trsrv/stocks"}
    assert looked_up <= {"AAPL"}, looked_up


def test_a_spread_chosen_by_delta_from_ibkrs_snapshot(workdir: Path, gw: Driver) -> None:
    expiry = _expiry(gw)
    day = dt.date.fromisoformat(expiry)
    conids = _option_conids(gw, day, [180, 185, 190, 195, 200, 205, 210])
    # AAPL trades at 190.25: a window of 3 is 180-190 below and 195-205 above. The
    # stand-in's own deltas are replaced so the 30-delta call is unmistakably the 200.
    calls = {180: "0.80", 185: "0.70", 190: "0.55", 195: "0.42", 200: "0.31", 205: "0.21"}
    gw.market({conids[k, "C"]: {"7308": d} for k, d in calls.items()})
    dte = (day - dt.datetime.now(dt.UTC).date()).days
    order = [
        "order", "options", "AAPL", "--strategy", "bull_call_spread", "--dte", str(dte),
        "--delta", "0.3", "--width", "10", "--quantity", "1",
        "--type", "limit", "--limit-price", "3.00",
    ]  # fmt: skip

    # Without market data for the chain, choosing by delta is refused, nothing sent.
    write_settings(workdir, gw, chain_strike_window=0)
    refused = invoke(*order)
    assert refused.exit_code == 1
    assert "the broker supplies no deltas" in refused.output
    assert not gw.orders()

    write_settings(workdir, gw, chain_strike_window=3)
    before = len(gw.requests())
    placed = ok_json(*order)
    assert placed["order"]["status"] == "accepted"
    ours = gw.requests()[before:]
    [post] = [r["body"] for r in ours if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert post["orders"][0]["conidex"] == f"28812380;;;{conids[200, 'C']}/1,{conids[210, 'C']}/-1"
    # Greeks were read once for the window's calls and puts (pre-flight, then data).
    window = {conids[k, r] for k in calls for r in "CP"}
    snapshots = [r["query"] for r in ours if r["path"] == "/iserver/marketdata/snapshot"]
    options = [q for q in snapshots if str(AAPL_CONID) != q["conids"]]
    assert len(options) == 2
    assert all({int(c) for c in q["conids"].split(",")} == window for q in options)
    assert {"7308", "7633"} <= set(options[0]["fields"].split(","))


AAPL_CONID = 265598


def _option_conids(gw: Driver, day: dt.date, strikes: list[int]) -> dict[tuple[int, str], int]:
    """The stand-in's conids of AAPL's options expiring ``day``, by strike and right."""
    month = month_code(day)
    out = {}
    with gw.client(paced=True) as client:
        for strike in strikes:
            for right in "CP":
                info = client.get(
                    "/iserver/secdef/info",
                    params={
                        "conid": AAPL_CONID,
                        "sectype": "OPT",
                        "month": month,
                        "strike": str(strike),
                        "right": right,
                    },
                ).json()
                [found] = [i for i in info if i["maturityDate"] == f"{day:%Y%m%d}"]
                out[strike, right] = int(found["conid"])
    gw.pause(1.0)  # the look-ups spent this second's budget, not the adapter's
    return out


def _expiry(gw: Driver) -> str:
    """An expiry the stand-in lists for AAPL (its nearest monthly)."""
    with gw.client(paced=True) as client:
        client.get("/iserver/accounts")
        search = client.get("/iserver/secdef/search", params={"symbol": "AAPL"}).json()
        conid = search[0]["conid"]
        month = next(s for s in search[0]["sections"] if s["secType"] == "OPT")["months"].split(
            ";"
        )[0]
        info = client.get(
            "/iserver/secdef/info",
            params={
                "conid": conid,
                "sectype": "OPT",
                "month": month,
                "strike": "200",
                "right": "C",
            },
        ).json()
    gw.pause(1.0)  # the look-ups spent this second's budget, not the adapter's
    date = info[-1]["maturityDate"]
    return f"{date[:4]}-{date[4:6]}-{date[6:]}"


def test_modify_a_working_order_from_another_process(workdir: Path, gw: Driver) -> None:
    placed = ok_json(
        "order",
        "stock",
        "AAPL",
        "--side",
        "buy",
        "--quantity",
        "5",
        "--type",
        "limit",
        "--limit-price",
        "90",
        "--tif",
        "gtc",
    )
    cid = placed["order"]["client_order_id"]
    modified = ok_json("order", "modify", cid, "--limit-price", "91.5", "--quantity", "4")
    assert modified["status"] == "accepted"
    [body] = [r["body"] for r in gw.requests() if r["method"] == "POST" and "/order/" in r["path"]]
    # IBKR wants every original field repeated, with the changes applied.
    assert body["conid"] == 265598 and body["side"] == "BUY" and body["tif"] == "GTC"
    assert (body["orderType"], body["price"], body["quantity"]) == ("LMT", 91.5, 4)
    assert body["cOID"] == cid
    [order] = gw.orders()
    assert (order["price"], order["quantity"]) == (91.5, 4)
    bigger = invoke("order", "modify", cid, "--quantity", "50")
    assert bigger.exit_code == 1 and "place a new order for the difference" in bigger.output
    unknown = invoke("order", "modify", "tp-nope", "--limit-price", "1")
    assert unknown.exit_code == 1 and "unknown to the broker" in unknown.output


def test_ibkrs_pacing_is_kept_at_virtual_time(workdir: Path, gw: InProcessGateway) -> None:
    start = gw.clock.monotonic()
    result = invoke("broker", "cancel", "tp-nope")
    assert result.exit_code == 1 and "IBKR has no order tp-nope" in result.output
    reads = [r["at"] for r in gw.requests() if r["path"] == "/iserver/account/orders"]
    # The new brokerage session's first (cold) answer is read again; then the list is
    # read twice before "no such order".
    assert len(reads) == 3
    # IBKR's 5 s between order-list reads (plus 10% headroom) was waited for, on the
    # stand-in's clock, as the stand-in measured it.
    assert all(later - earlier >= 5.5 for earlier, later in itertools.pairwise(reads))
    assert pytest.approx(5.5) in gw.clock.slept
    assert gw.clock.monotonic() - start >= 11.0
    assert gw.violations() == []


def test_a_combos_execution_is_booked_per_leg(workdir: Path, gw: Driver) -> None:
    """IBKR reports a combo's execution per leg and for the combo: one fill with its legs."""
    expiry = _expiry(gw)
    placed = buy_call_spread(expiry, 2)
    order = placed["order"]
    assert order["status"] == "accepted"
    gw.fill(order["broker_order_id"], 2, 3.2)
    # Three executions at IBKR (two legs and the combo): one fill, carrying its legs.
    [fill] = ok_json("broker", "trades")
    code = f"{expiry[2:4]}{expiry[5:7]}{expiry[8:10]}"
    assert (fill["symbol"], fill["quantity"]) == (order["intent"]["symbol"], "2")
    assert Decimal(fill["price"]) == Decimal("3.2")  # the combo's net
    legs = {
        leg["symbol"]: (leg["side"], leg["quantity"], leg["multiplier"]) for leg in fill["legs"]
    }
    assert legs == {
        f"AAPL  {code}C00200000": ("buy", "2", "100"),
        f"AAPL  {code}C00210000": ("sell", "2", "100"),
    }
    low, high = sorted(fill["legs"], key=lambda leg: leg["symbol"])
    assert Decimal(low["price"]) - Decimal(high["price"]) == Decimal("3.2")
    held = {p["symbol"]: p["quantity"] for p in ok_json("broker", "positions")}
    assert held == {f"AAPL  {code}C00200000": "2", f"AAPL  {code}C00210000": "-2"}
