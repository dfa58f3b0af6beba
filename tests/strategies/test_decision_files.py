"""``decision_files``: folders and files of decisions, each executed once, even across restarts."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from source_helpers import Ctx, SteppedFeed, SteppedPlugin
from tradepipe import Action, ConfigError, Decision, RejectedDecision
from tradepipe.clock import ManualClock
from tradepipe.pipeline import build_pipeline, run_pipeline
from tradepipe.strategies.decision_files import DecisionFiles
from tradepipe.testing import MemorySink, bar, settings, test_host

BUY_AAPL = {"id": "ai-1", "symbol": "AAPL", "action": "buy", "confidence": 90, "quantity": 5}
BUY_MSFT = {"id": "ai-2", "symbol": "MSFT", "action": "buy", "confidence": 90, "quantity": 3}


def line(document: dict[str, Any]) -> str:
    return json.dumps(document) + "\n"


def days(count: int, *symbols: str) -> list[Any]:
    return [bar(s, d, open=100 + d) for d in range(count) for s in symbols or ("AAPL",)]


def run(
    tmp_path: Path,
    bars: list[Any],
    before: dict[int, Any] | None = None,
    *,
    sql: bool = False,
    session: str = "",
    **source: Any,
) -> MemorySink:
    """One run of the pipeline with the ``decision_files`` source over ``bars``."""
    SteppedFeed.source = bars
    SteppedFeed.before = before or {}
    app = settings(
        run={
            "feed": "stepped",
            "broker": "paper",
            "strategies": ["decision_files"],
            "risk_filters": ["min_confidence"],
            "sinks": ["memory", "sql"] if sql else ["memory"],
            "session": session,
        },
        strategies={
            "decision_files": {
                "path": str(tmp_path / "inbox"),
                "scan_seconds": 0,
                **source,
            }
        },
        sinks={"sql": {"path": str(tmp_path / "ledger.db"), "writer": "inline"}},
    )
    pipeline = build_pipeline(app, test_host(SteppedPlugin()), clock=ManualClock(bars[0].ts))
    run_pipeline(pipeline)
    assert MemorySink.last is not None
    return MemorySink.last


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def test_a_file_dropped_between_bars_is_picked_up_at_the_next_bar(
    tmp_path: Path, inbox: Path
) -> None:
    bars = days(5)
    memory = run(
        tmp_path, bars, {2: lambda: (inbox / "late.json").write_text(json.dumps(BUY_AAPL))}
    )
    [decision] = memory.decisions
    assert decision.id == "ai-1" and decision.source == "decision_files"
    assert decision.created_at == bars[2].ts  # handled on the bar it appeared before
    [fill] = memory.fills
    assert fill.ts == bars[3].ts and fill.quantity == 5  # filled at the next bar's open


def test_objects_arrays_and_lines_bad_ones_rejected_and_the_rest_go_on(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "a.json").write_text(json.dumps([BUY_AAPL, {**BUY_AAPL, "id": "ai-3"}]))
    (inbox / "b.jsonl").write_text(
        line(BUY_MSFT) + "not json\n\n" + line({**BUY_MSFT, "confidence": 900})
    )
    (inbox / "c.json").write_text(json.dumps({**BUY_MSFT, "id": "ai-4", "confidence": 10}))
    (inbox / "notes.txt").write_text("ignored: not a decision file")
    (inbox / ".hidden.json").write_text("ignored: hidden (a file being written)")
    memory = run(tmp_path, days(3, "AAPL", "MSFT"))
    assert [d.id for d in memory.decisions] == ["ai-1", "ai-3", "ai-2", "ai-4"]
    errors = [error for _raw, _source, error in memory.rejected]
    assert errors[0].startswith("not valid JSON")
    assert errors[1] == "confidence: Input should be less than or equal to 100"
    assert memory.rejected[1][0]["confidence"] == 900  # the raw document is recorded
    denied = [o.client_order_id for o in memory.orders if o.status.value == "denied"]
    assert len(denied) == 1  # ai-4: confidence 10 < 70
    assert sorted(f.symbol for f in memory.fills) == ["AAPL", "AAPL", "MSFT"]


def test_a_decision_waits_for_a_bar_of_its_own_symbol(tmp_path: Path, inbox: Path) -> None:
    (inbox / "d.jsonl").write_text(line(BUY_MSFT))
    bars = [bar("AAPL", 0), bar("AAPL", 1), bar("MSFT", 2, open=50), bar("MSFT", 3, open=51)]
    memory = run(tmp_path, bars)
    [decision] = memory.decisions
    assert decision.created_at == bars[2].ts
    assert [o.intent.reference_price for o in memory.orders] == [50]


def test_release_at_created_at_replays_timed_decisions_without_look_ahead(
    tmp_path: Path, inbox: Path
) -> None:
    bars = days(5)
    made = bars[3].ts.isoformat()
    (inbox / "d.jsonl").write_text(line({**BUY_AAPL, "created_at": made}))
    memory = run(tmp_path, bars, release="created_at")
    [decision] = memory.decisions
    assert decision.created_at == bars[3].ts
    assert [f.ts for f in memory.fills] == [bars[4].ts]


def test_lines_appended_to_a_file_are_read_once(tmp_path: Path, inbox: Path) -> None:
    feed = inbox / "feed.jsonl"
    feed.write_text(line(BUY_AAPL))

    def append() -> None:
        with feed.open("a") as fh:
            fh.write(line({**BUY_AAPL, "id": "ai-9"}))

    memory = run(tmp_path, days(5), {2: append})
    assert [d.id for d in memory.decisions] == ["ai-1", "ai-9"]


def test_a_restarted_source_does_not_read_again_what_it_processed(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "d.jsonl").write_text(line(BUY_AAPL) + "garbage\n")
    first = run(tmp_path, days(3))
    assert len(first.decisions) == 1 and len(first.rejected) == 1
    state = inbox / ".tradepipe-state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    second = run(tmp_path, days(3))
    assert second.decisions == [] and second.rejected == []
    with (inbox / "d.jsonl").open("a") as fh:
        fh.write(line(BUY_MSFT | {"symbol": "AAPL"}))
    third = run(tmp_path, days(3))
    assert [d.id for d in third.decisions] == ["ai-2"]


def test_each_decision_executes_once_across_restarts_with_the_sql_ledger(
    tmp_path: Path, inbox: Path
) -> None:
    """The state file lost (a crash after sending, before marking): the ledger still refuses."""
    (inbox / "d.jsonl").write_text(line(BUY_AAPL) + line(BUY_MSFT))
    first = run(tmp_path, days(4, "AAPL", "MSFT"), sql=True, session="live-1")
    assert [o.status.value for o in first.orders] == ["filled", "filled"]
    sent = {o.client_order_id for o in first.orders}

    (inbox / ".tradepipe-state.json").unlink()
    second = run(tmp_path, days(4, "AAPL", "MSFT"), sql=True, session="live-1")
    assert [d.id for d in second.decisions] == [d.id for d in first.decisions]
    assert second.orders == [] and second.fills == []
    assert {v.filter for v in second.verdicts} == {"duplicate"}
    assert {v.client_order_id for v in second.verdicts} == sent
    assert "earlier run of session 'live-1'" in second.verdicts[0].reason

    with sqlite3.connect(tmp_path / "ledger.db") as db:
        orders = db.execute("SELECT client_order_id FROM orders").fetchall()
        duplicates = db.execute("SELECT COUNT(*) FROM verdicts WHERE filter = 'duplicate'")
        assert sorted(o for (o,) in orders) == sorted(sent)
        assert duplicates.fetchone() == (2,)


@pytest.mark.slow
def test_without_a_fixed_session_only_the_state_file_prevents_a_second_execution(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "d.jsonl").write_text(line(BUY_AAPL))
    assert len(run(tmp_path, days(3), sql=True).orders) == 1
    (inbox / ".tradepipe-state.json").unlink()
    assert len(run(tmp_path, days(3), sql=True).orders) == 1  # a new session: a new order


def test_only_what_the_executor_handled_is_marked(inbox: Path) -> None:
    (inbox / "d.jsonl").write_text(line(BUY_AAPL) + line({**BUY_AAPL, "id": "ai-5"}))
    source = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    handing = source.decide(bar(), Ctx())
    assert handing is not None
    first = next(handing)
    assert isinstance(first, Decision) and first.id == "ai-1"
    assert not (inbox / ".tradepipe-state.json").exists()  # not handled yet
    next(handing)  # the executor handled ai-1 and asks for the next
    handing.close()  # the run stopped before ai-5 was handled
    state = json.loads((inbox / ".tradepipe-state.json").read_text())
    assert state["files"]["d.jsonl"]["offset"] == len(line(BUY_AAPL))

    again = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    handing = again.decide(bar(), Ctx())
    assert handing is not None
    assert [d.id for d in handing if isinstance(d, Decision)] == ["ai-5"]


def test_an_unfinished_last_line_waits_until_it_is_complete(inbox: Path) -> None:
    feed = inbox / "d.jsonl"
    feed.write_text(line(BUY_AAPL) + '{"symbol": "AAPL", "act')
    source = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    assert [d.id for d in source.decide(bar(), Ctx()) or ()] == ["ai-1"]  # type: ignore[union-attr]
    assert source.decide(bar(), Ctx()) is None
    with feed.open("a") as fh:
        fh.write('ion": "close", "confidence": 80}')  # complete, still without a newline
    [closing] = list(source.decide(bar(), Ctx()) or ())
    assert isinstance(closing, Decision) and closing.action is Action.CLOSE


def test_an_invalid_file_is_rejected_once_it_has_settled(inbox: Path) -> None:
    broken = inbox / "d.json"
    broken.write_text('{"symbol": "AAPL", ')
    waiting = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    assert waiting.decide(bar(), Ctx()) is None  # may still be being written
    settled = DecisionFiles(
        DecisionFiles.Settings(path=str(inbox), scan_seconds=0, settle_seconds=0)
    )
    [item] = list(settled.decide(bar(), Ctx()) or ())
    assert isinstance(item, RejectedDecision) and item.error.startswith("not valid JSON")


def test_a_replaced_file_is_read_from_the_start(inbox: Path) -> None:
    feed = inbox / "d.jsonl"
    feed.write_text(line(BUY_AAPL))
    source = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    list(source.decide(bar(), Ctx()) or ())
    feed.write_text(line({**BUY_AAPL, "id": "ai-7"}) + line({**BUY_AAPL, "id": "ai-8"}))
    assert [d.id for d in source.decide(bar(), Ctx()) or ()] == ["ai-7", "ai-8"]  # type: ignore[union-attr]


def test_a_single_file_keeps_its_state_beside_it(tmp_path: Path) -> None:
    feed = tmp_path / "signals.jsonl"
    feed.write_text(line(BUY_AAPL))
    source = DecisionFiles(DecisionFiles.Settings(path=str(feed), scan_seconds=0))
    assert len(list(source.decide(bar(), Ctx()) or ())) == 1
    assert (tmp_path / ".signals.jsonl.state.json").exists()
    again = DecisionFiles(DecisionFiles.Settings(path=str(feed), scan_seconds=0))
    assert again.decide(bar(), Ctx()) is None


def test_a_damaged_state_file_stops_the_start(inbox: Path) -> None:
    (inbox / ".tradepipe-state.json").write_text("{not json")
    with pytest.raises(ConfigError, match="state file .* is damaged"):
        DecisionFiles(DecisionFiles.Settings(path=str(inbox)))


def test_a_missing_path_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder") as info:
        DecisionFiles(DecisionFiles.Settings(path=str(tmp_path / "nowhere")))
    assert info.value.key == "strategies.decision_files.path"


def test_remember_false_keeps_no_state(tmp_path: Path, inbox: Path) -> None:
    (inbox / "d.jsonl").write_text(line(BUY_AAPL))
    run(tmp_path, days(2), remember=False)
    assert os.listdir(inbox) == ["d.jsonl"]
    assert len(run(tmp_path, days(2), remember=False).decisions) == 1


def test_a_restarted_source_does_not_open_files_it_read_through(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inbox / "a.json").write_text(json.dumps(BUY_AAPL))
    (inbox / "b.jsonl").write_text(line(BUY_MSFT))
    first = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    assert len(list(first.decide(bar("AAPL"), Ctx()) or ())) == 1
    assert len(list(first.decide(bar("MSFT"), Ctx()) or ())) == 1
    opened: list[str] = []
    real_open = Path.open

    def watched(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watched)
    again = DecisionFiles(DecisionFiles.Settings(path=str(inbox), scan_seconds=0))
    assert again.decide(bar("AAPL"), Ctx()) is None
    assert again.decide(bar("MSFT"), Ctx()) is None
    assert [name for name in opened if not name.startswith(".")] == []


def test_an_options_decision_is_released_by_a_bar_of_its_underlying(
    tmp_path: Path, inbox: Path
) -> None:
    expiry = "2026-04-17"  # a monthly expiry the paper chain lists (third Friday)
    vertical = {
        "id": "opt-folder",
        "symbol": "SPY",
        "action": "buy",
        "confidence": 90,
        "quantity": 1,
        "order_type": "limit",
        "limit_price": 3.5,
        "options": {"strategy": "bull_call_spread", "expiry": expiry, "strikes": [100, 110]},
    }
    (inbox / "d.jsonl").write_text(line(vertical))
    memory = run(tmp_path, [bar("SPY", d, open=104 + d) for d in range(3)])
    [order] = memory.orders
    assert order.intent.instrument is not None and order.intent.instrument.kind == "combo"
    assert order.intent.symbol.startswith("SPY X")
    assert memory.events[0].status == "submitted"
