"""IBKR's option chain through the broker: the listing, and prices and greeks near the money.

A respx stand-in answers the chain recipe (``secdef/search``, ``strikes``,
``info``) and the snapshot, whose first request for a conid is IBKR's
pre-flight (no values). AAPL trades at 201.30; DEC26 lists the 11th (a weekly)
and the 18th, calls 180–220 and puts 180–215 every 5.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from ibkr_fakes import BASE, FakeTime
from tradepipe.brokers.ibkr.chain import window
from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
from tradepipe.errors import BrokerAuthError
from tradepipe.options.chain import ChainError, OptionQuote, nearest_delta

ACCT = "DU1234567"
AAPL = 265598
DEC18 = dt.date(2026, 12, 18)
DEC11 = dt.date(2026, 12, 11)
CALLS = [180 + 5 * i for i in range(9)]  # 180 … 220
PUTS = CALLS[:-1]  # 180 … 215
SNAPSHOT = "/iserver/marketdata/snapshot"
UNSUBSCRIBE = "/iserver/marketdata/unsubscribe"
INFO = "/iserver/secdef/info"


def conid(strike: float, right: str, day: dt.date = DEC18) -> int:
    """The fake option conids: readable, distinct per expiry, strike and right."""
    return (day.day * 100_000) + int(strike) * 10 + (1 if right == "P" else 0)


class Snapshots:
    """IBKR's snapshot endpoint: a pre-flight per conid, then the rows in ``fields``.

    ``fields[conid]`` may be a list of rows: each later request takes the next
    (the last one repeats), so fields can arrive late.
    """

    def __init__(self, fields: Mapping[int, Any]) -> None:
        self.fields = dict(fields)
        self.started: set[int] = set()
        self.served: dict[int, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        out = []
        for text in request.url.params["conids"].split(","):
            c = int(text)
            if c not in self.started:
                self.started.add(c)
                out.append({"conid": c, "conidEx": text})
                continue
            rows = self.fields.get(c, {})
            if isinstance(rows, list):
                n = self.served.get(c, 0)
                self.served[c] = n + 1
                rows = rows[min(n, len(rows) - 1)]
            out.append({"conid": c, "conidEx": text, "_updated": 1_797_000_000_000, **rows})
        return httpx.Response(200, json=out)


def info(request: httpx.Request) -> httpx.Response:
    p = request.url.params
    strike, right = float(p["strike"]), p["right"]
    listed = CALLS if right == "C" else PUTS
    if p["month"] != "DEC26" or strike not in listed:
        return httpx.Response(200, json=[])
    return httpx.Response(
        200,
        json=[
            {
                "conid": conid(strike, right, day),
                "symbol": "AAPL",
                "secType": "OPT",
                "right": right,
                "strike": strike,
                "maturityDate": f"{day:%Y%m%d}",
                "multiplier": "100",
            }
            for day in (DEC11, DEC18)
        ],
    )


def greeks(strike: int, right: str) -> dict[str, str]:
    """A plausible row: calls' deltas fall with the strike, puts' (negative) rise."""
    call = round(max(0.05, min(0.95, 0.5 - (strike - 200) * 0.04)), 2)
    delta = call if right == "C" else round(call - 1, 2)
    return {
        "31": "3.10",
        "84": f"{strike / 100:.2f}",
        "86": f"{strike / 100 + 0.1:.2f}",
        "7308": f"{delta}",
        "7633": "24.5%",
        "6509": "RpB",
    }


def market(**overrides: Any) -> dict[int, Any]:
    rows: dict[int, Any] = {AAPL: {"31": "201.30", "84": "201.25", "86": "201.35", "6509": "RpB"}}
    for right, strikes in (("C", CALLS), ("P", PUTS)):
        for k in strikes:
            rows[conid(k, right)] = greeks(k, right)
    for key, value in overrides.items():
        rows[int(key[1:]) if key[0] == "c" else conid(int(key[1:]), key[0])] = value
    return rows


@pytest.fixture
def gw() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as r:
        r.post("/iserver/auth/status").respond(
            200, json={"authenticated": True, "connected": True, "competing": False}
        )
        r.get("/iserver/accounts").respond(
            200, json={"accounts": [ACCT], "selectedAccount": ACCT, "isPaper": True}
        )
        r.get("/portfolio/accounts").respond(200, json=[{"id": ACCT}])
        r.get("/sso/validate").respond(200, json={"RESULT": True, "LOGIN_TYPE": 2})
        r.get("/iserver/secdef/search").respond(
            200,
            json=[
                {
                    "conid": str(AAPL),
                    "symbol": "AAPL",
                    "sections": [{"secType": "OPT", "months": "DEC26;JAN27"}],
                }
            ],
        )
        r.get("/iserver/secdef/strikes", name="strikes").respond(
            200, json={"call": [float(k) for k in CALLS], "put": [float(k) for k in PUTS]}
        )
        r.get(INFO, name="info").mock(side_effect=info)
        r.get(SNAPSHOT, name="snapshot").mock(side_effect=Snapshots(market()))
        r.post(UNSUBSCRIBE, name="unsubscribe").respond(200, json={"success": True})
        yield r


def make_broker(**settings: Any) -> ClientPortalBroker:
    t = FakeTime()
    broker = ClientPortalBroker(
        ClientPortalBroker.Settings(base_url=BASE, keepalive_seconds=0, **settings)
    )
    broker.monotonic = t.monotonic
    broker.sleep = t.sleep
    broker.use_http(httpx.Client())
    return broker


def by_key(chain: list[OptionQuote]) -> dict[tuple[str, int], OptionQuote]:
    return {(q.option.right, int(q.option.strike)): q for q in chain}


def info_asked(gw: Any) -> list[tuple[str, str, str]]:
    return [
        (
            c.request.url.params["month"],
            c.request.url.params["strike"],
            c.request.url.params["right"],
        )
        for c in gw["info"].calls
    ]


def snapshot_params(gw: Any) -> list[tuple[list[int], list[str]]]:
    return [
        (
            [int(c) for c in call.request.url.params["conids"].split(",")],
            call.request.url.params["fields"].split(","),
        )
        for call in gw["snapshot"].calls
    ]


# -- the window -------------------------------------------------------------------------


def test_the_window_is_the_nearest_listed_strikes_each_side_of_the_price() -> None:
    listed = [Decimal(k) for k in (210, 180, 200, 190, 205, 195, 185, 200)]
    assert window(listed, Decimal("201.3"), 2) == [195, 200, 205, 210]
    assert window(listed, Decimal(200), 1) == [200, 205]  # a strike at the price counts below
    assert window(listed, Decimal(150), 2) == [180, 185]  # nothing below: only above
    assert window(listed, Decimal(300), 3) == [200, 205, 210]
    assert window(listed, Decimal(200), 0) == []
    assert window([], Decimal(200), 5) == []


# -- one expiry: prices and greeks --------------------------------------------------------


def test_one_expiry_carries_ibkrs_prices_and_greeks_inside_the_window(gw: Any) -> None:
    broker = make_broker(chain_strike_window=2)
    chain = broker.option_chain("aapl", DEC18)
    quotes = by_key(chain)
    assert len(chain) == len(CALLS) + len(PUTS)
    assert {q.option.expiry for q in chain} == {DEC18}
    priced = {k for k, q in quotes.items() if q.delta is not None}
    assert priced == {(r, k) for r in "CP" for k in (195, 200, 205, 210)}
    # Outside the window: listed, nothing read or made up.
    assert all(q.price is None and q.iv is None for k, q in quotes.items() if k not in priced)
    call = quotes[("C", 200)]
    assert (call.price, call.delta, call.iv) == (Decimal("2.05"), 0.5, 0.245)  # mid of 2.00/2.10
    assert quotes[("P", 205)].delta == -0.7
    assert all(q.option.conid is None for q in chain)  # conids stay the adapter's business
    # One secdef/info per strike and right of the window, in the expiry's month.
    assert sorted(info_asked(gw)) == sorted(
        ("DEC26", f"{k}", r) for r in "CP" for k in (195, 200, 205, 210)
    )
    # The underlying first (pre-flight, then data), then the options (likewise).
    asked = snapshot_params(gw)
    assert [c for c, _ in asked] == [
        [AAPL],
        [AAPL],
        *[[conid(k, r) for r, k in priced_order()]] * 2,
    ]
    assert {"31", "84", "86", "7308", "7633"} <= set(asked[2][1])


def priced_order() -> list[tuple[str, int]]:
    return [(r, k) for r in "CP" for k in (195, 200, 205, 210)]


def test_conids_are_cached_across_reads_and_expiries_of_a_month(gw: Any) -> None:
    broker = make_broker(chain_strike_window=1)
    broker.option_chain("AAPL", DEC18)
    assert gw["info"].call_count == 4  # 200 and 205, calls and puts
    broker.option_chain("AAPL", DEC18)
    broker.option_chain("AAPL", DEC11)  # the weekly came with the same answers
    assert gw["info"].call_count == 4
    weekly = snapshot_params(gw)[-1][0]
    assert sorted(weekly) == sorted(conid(k, r, DEC11) for r in "CP" for k in (200, 205))


def test_without_an_expiry_the_listing_has_no_market_data(gw: Any) -> None:
    broker = make_broker()
    chain = broker.option_chain("AAPL")
    assert {q.option.expiry for q in chain} == {DEC11, DEC18}
    assert all(q.price is None and q.delta is None for q in chain)
    assert gw["snapshot"].call_count == 0
    # One secdef/info per month, at its middle strike, to learn the month's dates.
    assert info_asked(gw) == [("DEC26", "200", "C"), ("JAN27", "200", "C")]


def test_a_window_of_zero_keeps_the_listing_only(gw: Any) -> None:
    chain = make_broker(chain_strike_window=0).option_chain("AAPL", DEC18)
    assert all(q.delta is None for q in chain)
    assert gw["snapshot"].call_count == 0 and gw["info"].call_count == 0


# -- what IBKR's fields say ---------------------------------------------------------------


def test_deltas_are_signed_by_the_right_and_iv_is_a_fraction(gw: Any) -> None:
    gw["snapshot"].side_effect = Snapshots(
        market(
            P200={"84": "1.00", "86": "1.20", "7308": "0.45", "7633": "31.5"},  # positive put
            P205={"31": "4.40", "7308": "-0.62", "7633": "28.25%"},
            C200={"84": "2.00", "86": "2.20", "7308": "-0.51"},  # a call is never negative
            C205={"84": "0", "86": "1.50", "31": "C1.35", "7308": "1.7"},  # nonsense delta
        )
    )
    quotes = by_key(make_broker(chain_strike_window=1).option_chain("AAPL", DEC18))
    assert (quotes[("P", 200)].delta, quotes[("P", 200)].iv) == (-0.45, 0.315)
    assert (quotes[("P", 205)].delta, quotes[("P", 205)].iv) == (-0.62, 0.2825)
    assert quotes[("P", 205)].price == Decimal("4.40")  # no bid/ask: the last
    assert (quotes[("C", 200)].delta, quotes[("C", 200)].price) == (0.51, Decimal("2.10"))
    c205 = quotes[("C", 205)]
    assert c205.delta is None  # |delta| > 1 is dropped, not clipped
    assert c205.price == Decimal("1.35")  # a zero bid is no market: yesterday's close
    assert c205.iv is None


def test_greeks_arriving_after_the_prices_are_waited_for(gw: Any) -> None:
    late = {"84": "2.00", "86": "2.10"}
    gw["snapshot"].side_effect = Snapshots(
        market(C200=[late, late, {**late, "7308": "0.52", "7633": "25%"}])
    )
    quotes = by_key(make_broker(chain_strike_window=1).option_chain("AAPL", DEC18))
    assert quotes[("C", 200)].delta == 0.52
    # Underlying: pre-flight + data; options: pre-flight + two without the delta + one with.
    assert gw["snapshot"].call_count == 2 + 4


def test_a_field_that_never_comes_is_left_out_after_the_bounded_retries(gw: Any) -> None:
    gw["snapshot"].side_effect = Snapshots(market(C200={"84": "2.00", "86": "2.10"}))
    broker = make_broker(chain_strike_window=1, snapshot_attempts=3)
    quotes = by_key(broker.option_chain("AAPL", DEC18))
    assert (quotes[("C", 200)].price, quotes[("C", 200)].delta) == (Decimal("2.05"), None)
    assert quotes[("C", 205)].delta is not None  # the others are not held back
    assert gw["snapshot"].call_count == 2 + 3


def test_delayed_and_frozen_data_is_used_and_said(
    gw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw["snapshot"].side_effect = Snapshots(
        market(
            C200={**greeks(200, "C"), "6509": "DPB"},
            P200={**greeks(200, "P"), "6509": "ZpB"},
        )
    )
    with caplog.at_level(logging.INFO, logger="tradepipe.brokers.ibkr"):
        quotes = by_key(make_broker(chain_strike_window=1).option_chain("AAPL", DEC18))
    assert (quotes[("C", 200)].delta, quotes[("P", 200)].delta) == (0.5, -0.5)
    assert "market data is delayed / frozen, not real time" in caplog.text


def test_a_contract_without_a_subscription_gets_nothing(gw: Any) -> None:
    gw["snapshot"].side_effect = Snapshots(market(C200={**greeks(200, "C"), "6509": "N"}))
    quotes = by_key(make_broker(chain_strike_window=1).option_chain("AAPL", DEC18))
    assert (quotes[("C", 200)].price, quotes[("C", 200)].delta) == (None, None)
    assert quotes[("P", 200)].delta == -0.5


# -- when market data cannot be had ---------------------------------------------------------


def test_a_failed_snapshot_leaves_the_listing_and_delta_choice_is_refused(
    gw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gw["snapshot"].side_effect = None
    gw["snapshot"].respond(500, json={"error": "no market data permissions"})
    chain = make_broker(chain_strike_window=2).option_chain("AAPL", DEC18)
    assert len(chain) == len(CALLS) + len(PUTS)
    assert all(q.price is None and q.delta is None and q.iv is None for q in chain)
    assert "market data not read" in caplog.text
    with pytest.raises(ChainError, match="supplies no deltas"):
        nearest_delta(chain, DEC18, "C", 0.3, "options.delta")


def test_no_price_for_the_underlying_means_no_option_lookups(gw: Any) -> None:
    gw["snapshot"].side_effect = Snapshots(market(c265598={"6509": "N"}))
    chain = make_broker(snapshot_attempts=2).option_chain("AAPL", DEC18)
    assert all(q.delta is None for q in chain)
    assert gw["info"].call_count == 0
    assert gw["snapshot"].call_count == 2  # the underlying's pre-flight and one retry


def test_failed_conid_lookups_leave_the_listing(gw: Any) -> None:
    gw["info"].side_effect = None
    gw["info"].respond(503, json={"error": "busy"})
    chain = make_broker(chain_strike_window=2).option_chain("AAPL", DEC18)
    assert len(chain) == len(CALLS) + len(PUTS) and all(q.delta is None for q in chain)


def test_a_lost_session_is_not_mistaken_for_missing_market_data(gw: Any) -> None:
    gw["snapshot"].side_effect = None
    gw["snapshot"].respond(401, text="access denied")
    with pytest.raises(BrokerAuthError):
        make_broker().option_chain("AAPL", DEC18)


def released(gw: Any) -> list[int]:
    return [json.loads(c.request.content)["conid"] for c in gw["unsubscribe"].calls]


def test_the_option_streams_are_closed_after_the_read(gw: Any) -> None:
    # Each stream holds one of the account's market-data lines.
    make_broker(chain_strike_window=2).option_chain("AAPL", DEC18)
    assert sorted(released(gw)) == sorted(conid(k, r) for r, k in priced_order())


def test_a_stream_that_will_not_close_does_not_spoil_the_read(gw: Any) -> None:
    gw["unsubscribe"].respond(500, json={"error": "unknown"})
    chain = make_broker(chain_strike_window=2).option_chain("AAPL", DEC18)
    assert by_key(chain)[("C", 200)].delta == 0.5
    assert len(released(gw)) == 8  # every one was tried


def test_streams_are_closed_even_when_the_snapshot_fails(gw: Any) -> None:
    gw["snapshot"].side_effect = Snapshots(market())
    calls = {"n": 0}
    underlying_then_fail = gw["snapshot"].side_effect

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] > 2:  # the underlying's two reads pass; the options' fail
            return httpx.Response(503, json={"error": "service unavailable"})
        return underlying_then_fail(request)

    gw["snapshot"].side_effect = flaky
    chain = make_broker(chain_strike_window=2).option_chain("AAPL", DEC18)
    assert all(q.delta is None for q in chain)
    assert sorted(released(gw)) == sorted(conid(k, r) for r, k in priced_order())
