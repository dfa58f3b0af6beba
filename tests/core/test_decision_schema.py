"""The external decision document: validation that names fields, ids, conversion."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from tradepipe import Action, Decision, DecisionDocument, RejectedDecision
from tradepipe.decision_schema import SCHEMA_VERSION, content_id, loads, read_decision

BASE: dict[str, Any] = {"symbol": "aapl", "action": "buy", "confidence": 80}


def read(**fields: Any) -> Decision | RejectedDecision:
    return read_decision({**BASE, **fields}, "files")


def rejected(**fields: Any) -> str:
    item = read(**fields)
    assert isinstance(item, RejectedDecision), item
    return item.error


def test_a_full_document_becomes_a_decision() -> None:
    text = """{
      "schema_version": 1, "id": "gpt-2026-03-02-0001", "source": "gpt-4o",
      "created_at": "2026-03-02T14:30:00Z", "expires_at": "2026-03-02T20:00:00Z",
      "symbol": "AAPL", "action": "buy", "confidence": 72.5,
      "sizing": {"risk_fraction": 0.005, "stop_distance": 3.1},
      "order_type": "limit", "limit_price": 150.10, "tif": "gtc",
      "stop_loss": 147.00, "take_profit": 160.00,
      "rationale": "earnings beat", "inputs_hash": "sha256:abc"
    }"""
    decision = read_decision(loads(text), "files")
    assert isinstance(decision, Decision)
    assert decision.id == "gpt-2026-03-02-0001"
    assert decision.source == "gpt-4o"
    assert decision.created_at == dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    assert decision.limit_price == Decimal("150.10")  # exact, never through a float
    assert decision.sizing is not None and decision.sizing.stop_distance == Decimal("3.1")
    assert decision.action is Action.BUY and decision.confidence == 72.5
    assert decision.inputs_hash == "sha256:abc"


def test_defaults_source_and_id_from_the_reader_and_the_content() -> None:
    decision = read()
    assert isinstance(decision, Decision)
    assert decision.source == "files"
    assert decision.symbol == "AAPL"
    assert decision.created_at is None  # the executor stamps the time it is handled
    assert decision.id == content_id(BASE) and decision.id.startswith("c-")


def test_the_content_id_ignores_key_order_and_layout() -> None:
    one = loads('{"symbol": "AAPL", "action": "buy", "confidence": 80}')
    two = loads('{"confidence":80,"action":"buy","symbol":"AAPL"}')
    assert content_id(one) == content_id(two)
    assert content_id(one) != content_id({**one, "confidence": 81})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"confidence": 101}, "confidence: Input should be less than or equal to 100"),
        ({"action": "yolo"}, "action: Input should be 'buy', 'sell', 'close' or 'hold'"),
        ({"schema_version": 2}, "schema_version: Input should be 1"),
        ({"stoploss": 140}, "stoploss: Extra inputs are not permitted"),
        ({"quantity": -1}, "quantity: Input should be greater than 0"),
        ({"created_at": "2026-03-02T14:30:00"}, "created_at: Input should have timezone info"),
        ({"sizing": {"risk_fraction": 2}}, "sizing.risk_fraction: Input should be less than"),
        ({"id": "has space"}, "id: String should match pattern"),
        ({"quantity": 5, "sizing": {"stop_distance": 2}}, "give quantity or sizing, not both"),
        ({"order_type": "limit"}, "limit_price is required for a limit order"),
        ({"stop_loss": 150, "take_profit": 140}, "take_profit (140) must be above its stop_loss"),
        (
            {"created_at": "2026-03-02T15:00:00Z", "expires_at": "2026-03-02T14:00:00Z"},
            "expires_at must be after created_at",
        ),
    ],
)
def test_bad_documents_are_rejected_naming_the_field(fields: dict[str, Any], message: str) -> None:
    assert message in rejected(**fields)


def test_not_an_object_is_rejected() -> None:
    item = read_decision([BASE], "files")
    assert isinstance(item, RejectedDecision)
    assert item.error == "expected a JSON object, got an array"


def test_an_options_strategy_becomes_a_combo_decision() -> None:
    options = {
        "strategy": "bull_call_spread",
        "legs": [
            {"action": "buy", "right": "C", "strike": 600, "expiry": "2026-12-18"},
            {"action": "sell", "right": "C", "strike": 610, "expiry": "2026-12-18"},
        ],
    }
    item = read(options=options, quantity=1)
    assert isinstance(item, Decision), item
    assert item.instrument is not None and item.instrument.kind == "combo"
    assert item.symbol == item.instrument.ticker.upper()
    # without a chain or a limit price the premium, and so the risk, is unknown
    assert item.option_risk is None
    assert "quantity: an options strategy needs" in rejected(options=options)
    document = DecisionDocument.model_validate({**BASE, "options": options})
    assert document.options is not None and len(document.options.legs) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "moon_shot", "dte": 30, "delta": 0.3}, "options.strategy: Input should be"),
        ({"strategy": "iron_condor", "dte": 30}, "give strikes or delta"),
        ({"strategy": "straddle", "strikes": [600]}, "give one of expiry and dte"),
        (
            {"strategy": "strangle", "dte": 30, "strikes": [590, 600, 610]},
            "a strangle needs 2 strike(s), got 3",
        ),
        (
            {"strategy": "long_call", "legs": [{"action": "buy", "right": "C", "dte": 30}]},
            "options.legs.0: give one of strike and delta",
        ),
        (
            {
                "strategy": "long_put",
                "legs": [{"action": "buy", "right": "P", "dte": 30, "strike": 500}] * 2,
            },
            "a long_put has 1 leg(s), got 2",
        ),
    ],
)
def test_a_malformed_options_strategy_names_what_is_wrong(
    options: dict[str, Any], message: str
) -> None:
    assert message in rejected(options=options)


def test_the_schema_is_versioned_and_published() -> None:
    schema = DecisionDocument.model_json_schema()
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION == 1
    assert set(schema["required"]) == {"symbol", "action", "confidence"}


def test_every_document_field_reaches_the_decision_or_is_the_envelope() -> None:
    envelope = {"schema_version", "options"}
    assert set(DecisionDocument.model_fields) - envelope <= set(Decision.model_fields)
