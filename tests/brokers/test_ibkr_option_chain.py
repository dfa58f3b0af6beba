"""IBKR's option chain through the broker interface: months, strikes, expiry dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import respx
from ibkr_fakes import BASE, make_client
from tradepipe.brokers.ibkr.broker import WebApiBroker
from tradepipe.brokers.ibkr.contracts import Contracts


def _routes() -> Any:
    respx.get(f"{BASE}/iserver/secdef/search").respond(
        200,
        json=[
            {
                "conid": "265598",
                "symbol": "AAPL",
                "sections": [{"secType": "OPT", "months": "DEC26;JAN27"}],
            }
        ],
    )
    respx.get(f"{BASE}/iserver/secdef/strikes").respond(
        200, json={"call": [195.0, 200.0, 205.0], "put": [195.0, 200.0]}
    )
    return respx.get(f"{BASE}/iserver/secdef/info").respond(
        200,
        json=[
            {"conid": 1, "maturityDate": "20261211", "right": "C"},
            {"conid": 2, "maturityDate": "20261218", "right": "C"},
        ],
    )


def _chain(underlying: str, expiry: dt.date | None) -> list[Any]:
    stub = SimpleNamespace(contracts=Contracts(make_client()))
    return WebApiBroker._chain(stub, underlying, expiry)  # type: ignore[arg-type]


@respx.mock
def test_a_chain_of_one_expiry_lists_its_strikes_without_conids() -> None:
    info = _routes()
    chain = _chain("AAPL", dt.date(2026, 12, 18))
    assert [(q.option.right, q.option.strike) for q in chain] == [
        ("C", Decimal("195.0")),
        ("C", Decimal("200.0")),
        ("C", Decimal("205.0")),
        ("P", Decimal("195.0")),
        ("P", Decimal("200.0")),
    ]
    assert {q.option.expiry for q in chain} == {dt.date(2026, 12, 18)}
    assert all(q.price is None and q.delta is None and q.option.conid is None for q in chain)
    assert info.call_count == 0  # conids are looked up when an order is placed


@respx.mock
def test_without_an_expiry_each_month_is_asked_for_its_dates() -> None:
    info = _routes()
    chain = _chain("AAPL", None)
    assert {q.option.expiry for q in chain} == {dt.date(2026, 12, 11), dt.date(2026, 12, 18)}
    assert info.call_count == 2  # DEC26 and JAN27, one strike each
    assert info.calls[0].request.url.params["strike"] == "200"
    assert len(chain) == 2 * 2 * 5  # two months x two dates x five strikes (same answer)
