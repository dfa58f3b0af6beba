"""``llm``: an OpenAI-compatible endpoint, mocked with respx; nothing calls the internet."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from source_helpers import Ctx
from tradepipe import Action, Decision, RejectedDecision
from tradepipe.strategies.llm import LlmSource, first_json_object
from tradepipe.testing import MemorySink, bar, replay

BASE = "http://llm.test/v1"
KEY = "sk-test-5f1c2e9a7b"
ANSWER = {
    "symbol": "AAPL",
    "action": "buy",
    "confidence": 82,
    "stop_loss": 95,
    "rationale": "higher lows",
}


def reply(content: str) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    )


def source(**settings: Any) -> LlmSource:
    return LlmSource(
        LlmSource.Settings(base_url=BASE, model="local-model", api_key=KEY, **settings)
    )


@pytest.fixture
def endpoint() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def test_a_good_answer_becomes_a_decision_with_its_prompt_hash_and_raw_answer(
    endpoint: respx.MockRouter,
) -> None:
    content = "Here you go:\n```json\n" + json.dumps(ANSWER) + "\n```"
    route = endpoint.post("/chat/completions").mock(return_value=reply(content))
    decision = source().decide(bar("AAPL", 0, close=101), Ctx())
    assert isinstance(decision, Decision)
    assert decision.action is Action.BUY and decision.confidence == 82
    assert decision.source == "llm:local-model"
    assert decision.id.startswith("llm-")
    assert decision.inputs_hash is not None and decision.inputs_hash.startswith("sha256:")
    assert decision.raw == content
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["model"] == "local-model" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert "AAPL" in system["content"]
    assert json.loads(user["content"])["bar"]["close"] == 101


def test_ids_are_stable_per_question_and_differ_between_bars(
    endpoint: respx.MockRouter,
) -> None:
    endpoint.post("/chat/completions").mock(return_value=reply(json.dumps(ANSWER)))
    one = source().decide(bar("AAPL", 0), Ctx())
    again = source().decide(bar("AAPL", 0), Ctx())
    later = source().decide(bar("AAPL", 0), Ctx(Ctx().at + dt.timedelta(days=1)))
    assert isinstance(one, Decision) and isinstance(again, Decision)
    assert isinstance(later, Decision)
    assert one.id == again.id != later.id


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("I think you should buy.", "the answer holds no JSON object"),
        (json.dumps({**ANSWER, "confidence": 500}), "confidence: Input should be less than"),
        (json.dumps({**ANSWER, "symbol": "MSFT"}), "symbol: asked about AAPL, answered 'MSFT'"),
        (json.dumps({**ANSWER, "notes": "x"}), "notes: Extra inputs are not permitted"),
    ],
)
def test_a_garbage_answer_is_rejected_with_the_answer(
    endpoint: respx.MockRouter, content: str, error: str
) -> None:
    endpoint.post("/chat/completions").mock(return_value=reply(content))
    item = source().decide(bar("AAPL"), Ctx())
    assert isinstance(item, RejectedDecision)
    assert error in item.error
    assert item.raw == content


def test_a_reply_that_is_no_chat_completion_is_rejected_with_its_body(
    endpoint: respx.MockRouter,
) -> None:
    endpoint.post("/chat/completions").mock(return_value=httpx.Response(200, text="<html>oops"))
    item = source().decide(bar("AAPL"), Ctx())
    assert isinstance(item, RejectedDecision)
    assert item.raw == "<html>oops" and item.error == "the reply is not a chat completion"


@pytest.mark.parametrize(
    ("response", "logged"),
    [
        (httpx.ReadTimeout("read timed out"), "no answer about AAPL within 30s"),
        (httpx.ConnectError("refused"), "cannot reach http://llm.test/v1/chat/completions"),
        (httpx.Response(401, json={"error": "bad key"}), "refused the API key (HTTP 401)"),
        (httpx.Response(503, text="overloaded"), "server error (HTTP 503)"),
        (httpx.Response(404, text="no such model"), "HTTP 404 asking about AAPL: no such model"),
    ],
)
def test_failures_give_no_decision_and_a_logged_reason(
    endpoint: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    response: Any,
    logged: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    route = endpoint.post("/chat/completions")
    if isinstance(response, Exception):
        route.mock(side_effect=response)
    else:
        route.mock(return_value=response)
    assert source().decide(bar("AAPL"), Ctx()) is None
    assert logged in caplog.text
    assert KEY not in caplog.text


def test_rate_limiting_pauses_the_questions(
    endpoint: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    route = endpoint.post("/chat/completions").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "120"})
    )
    llm = source()
    clock = [1000.0]
    llm._monotonic = lambda: clock[0]
    assert llm.decide(bar("AAPL", 0), Ctx()) is None
    assert "rate limited (HTTP 429); no questions for 120s" in caplog.text
    clock[0] += 60
    assert llm.decide(bar("AAPL", 1), Ctx()) is None
    assert route.call_count == 1  # paused: not asked
    route.mock(return_value=reply(json.dumps(ANSWER)))
    clock[0] += 61
    assert isinstance(llm.decide(bar("AAPL", 2), Ctx()), Decision)
    assert route.call_count == 2


def test_a_server_without_json_mode_is_asked_again_without_it(
    endpoint: respx.MockRouter,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "response_format" in json.loads(request.content):
            return httpx.Response(400, json={"error": "unknown field response_format"})
        return reply(json.dumps(ANSWER))

    route = endpoint.post("/chat/completions").mock(side_effect=answer)
    llm = source()
    assert isinstance(llm.decide(bar("AAPL", 0), Ctx()), Decision)
    assert isinstance(llm.decide(bar("AAPL", 1), Ctx()), Decision)
    assert route.call_count == 3  # one refusal, then never response_format again


def test_only_the_configured_symbols_every_nth_bar(endpoint: respx.MockRouter) -> None:
    route = endpoint.post("/chat/completions").mock(return_value=reply(json.dumps(ANSWER)))
    llm = source(symbols=["aapl"], every_bars=2)
    asked = [llm.decide(bar(s, d), Ctx()) is not None for d in range(4) for s in ("AAPL", "MSFT")]
    assert asked == [True, False, False, False, True, False, False, False]
    assert route.call_count == 2
    history = json.loads(json.loads(route.calls.last.request.content)["messages"][1]["content"])
    assert history["recent_closes"] == [100.0, 100.0]


@pytest.mark.slow
def test_in_a_run_answers_and_rejections_reach_the_ledger(
    endpoint: respx.MockRouter, tmp_path: Path
) -> None:
    answers = iter(
        [
            reply(json.dumps({**ANSWER, "quantity": 3, "stop_loss": None})),
            reply("no idea"),
            httpx.ReadTimeout("slow"),
        ]
    )

    def answer(request: httpx.Request) -> httpx.Response:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    endpoint.post("/chat/completions").mock(side_effect=answer)
    _pipeline, result, _summary = replay(
        [bar("AAPL", d) for d in range(3)],
        run={"strategies": ["llm"], "risk_filters": [], "sinks": ["memory", "sql"]},
        strategies={"llm": {"base_url": BASE, "model": "local-model"}},
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )
    assert result.status == "completed" and result.bars == 3
    memory = MemorySink.last
    assert memory is not None
    [decision] = memory.decisions
    assert decision.quantity == 3
    [(raw, name, error)] = memory.rejected
    assert (raw, name, error) == ("no idea", "llm", "the answer holds no JSON object")
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        [(extra,)] = db.execute("SELECT extra FROM decisions").fetchall()
        [(raw_text,)] = db.execute("SELECT raw FROM rejected_decisions").fetchall()
    assert json.loads(extra)["raw"].startswith('{"symbol": "AAPL"')
    assert json.loads(extra)["inputs_hash"].startswith("sha256:")
    assert json.loads(raw_text) == "no idea"


def test_the_first_json_object_is_found_in_prose() -> None:
    assert first_json_object('Sure! {"a": 1} and {"b": 2}') == {"a": 1}
    assert first_json_object("{not json} then {}") == {}
    assert first_json_object("[1, 2]") is None


@pytest.mark.slow
def test_the_api_key_comes_from_the_secrets_file_and_is_masked(tmp_path: Path) -> None:
    from tradepipe.pipeline import make_component
    from tradepipe.settings import load_settings
    from tradepipe.testing import test_host

    (tmp_path / "settings.toml").write_text(
        '[default.run]\nstrategies = ["llm"]\n[default.strategies.llm]\nmodel = "local-model"\n'
    )
    (tmp_path / ".secrets.toml").write_text(f'[default.strategies.llm]\napi_key = "{KEY}"\n')
    app = load_settings(tmp_path / "settings.toml")
    llm = make_component(test_host(), app, "strategy", "llm")
    assert llm.settings.api_key.get_secret_value() == KEY
    assert KEY not in repr(llm.settings)
    assert app.masked()["strategies"]["llm"]["api_key"] == "********"
    assert KEY in app.secret_values()  # so every log handler redacts it


@pytest.mark.slow
def test_a_model_is_required(tmp_path: Path) -> None:
    from tradepipe import ConfigError
    from tradepipe.pipeline import make_component
    from tradepipe.testing import settings, test_host

    with pytest.raises(ConfigError, match=r"\[strategies.llm\] model: is required"):
        make_component(test_host(), settings(run={"strategies": ["llm"]}), "strategy", "llm")
