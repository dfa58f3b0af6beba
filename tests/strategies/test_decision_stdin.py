"""``decision_stdin``: JSON lines on standard input; bad lines are recorded, the rest go on."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from source_helpers import Ctx
from tradepipe import Decision, RejectedDecision
from tradepipe.strategies.decision_stdin import DecisionStdin
from tradepipe.testing import MemorySink, bar, replay

LINES = "\n".join(
    [
        json.dumps(
            {"id": "s-1", "symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": 4}
        ),
        "{broken",
        "",
        json.dumps({"symbol": "AAPL", "action": "buy", "confidence": 90}) + " trailing",
        json.dumps({"id": "s-2", "symbol": "AAPL", "action": "hold", "confidence": 50}),
    ]
)


def test_a_piped_file_is_read_before_the_first_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(LINES + "\n"))
    replay(
        [bar("AAPL", d) for d in range(3)],
        run={"strategies": ["decision_stdin"], "risk_filters": []},
        strategies={"decision_stdin": {"wait_for_eof": True}},
    )
    memory = MemorySink.last
    assert memory is not None
    assert [(d.id, d.action.value) for d in memory.decisions] == [("s-1", "buy"), ("s-2", "hold")]
    assert [d.source for d in memory.decisions] == ["decision_stdin"] * 2
    assert [error.split(":")[0] for _raw, _src, error in memory.rejected] == ["not valid JSON"] * 2
    assert memory.rejected[0][0] == "{broken\n"
    assert [(f.ts, f.quantity) for f in memory.fills] == [(bar("AAPL", 1).ts, 4)]


def test_lines_are_picked_up_as_they_arrive() -> None:
    read_fd, write_fd = os.pipe()
    source = DecisionStdin()
    with os.fdopen(read_fd, encoding="utf-8") as stream, os.fdopen(write_fd, "w") as writer:
        source.start(stream)
        assert source.decide(bar(), Ctx()) is None
        writer.write(
            json.dumps({"id": "p-1", "symbol": "AAPL", "action": "close", "confidence": 99})
        )
        writer.write("\nnot json\n")
        writer.flush()
        items: list[Decision | RejectedDecision] = []
        deadline = time.monotonic() + 5
        while len(items) < 2 and time.monotonic() < deadline:
            items.extend(source.decide(bar(), Ctx()) or ())
            time.sleep(0.01)
    [decision] = [i for i in items if isinstance(i, Decision)]
    [rejected] = [i for i in items if isinstance(i, RejectedDecision)]
    assert decision.id == "p-1"
    assert rejected.raw == "not json\n"


def test_a_decision_for_another_symbol_waits_for_its_bar() -> None:
    source = DecisionStdin(DecisionStdin.Settings(wait_for_eof=True))
    source.start(io.StringIO(json.dumps({"symbol": "MSFT", "action": "buy", "confidence": 80})))
    assert source.decide(bar("AAPL"), Ctx()) is None
    assert source.waiting == 1
    [decision] = list(source.decide(bar("MSFT"), Ctx()) or ())
    assert isinstance(decision, Decision) and decision.symbol == "MSFT"
    assert source.waiting == 0
