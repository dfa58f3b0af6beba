"""The SQL ledger sink and its reader, on a real SQLite file and on PostgreSQL.

Tests taking ``target`` run on every backend (SQLite with each writer, and
PostgreSQL); the rest are about SQLite's own file, pragmas and writer process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tradepipe import (
    AccountSummary,
    Decision,
    Fill,
    Order,
    OrderEvent,
    OrderIntent,
    OrderStatus,
    PersistenceError,
    Position,
    RunInfo,
)
from tradepipe.clock import ManualClock, SystemClock
from tradepipe.orders import Side
from tradepipe.plugins.ledger import sink as sink_module
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.sink import SqlSink, _figures_json
from tradepipe.risk import Outcome, RiskVerdict
from tradepipe.testing import bars_from_closes, replay

T = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


@pytest.fixture(params=["process", "inline"])
def writer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Target:
    """One ledger backend: how to open sinks on it and read its rows back."""

    url: str
    writer: str = "inline"
    opened: list[SqlSink] = field(default_factory=list)

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def sink(self, **kw: Any) -> SqlSink:
        sink = SqlSink(SqlSink.Settings(**{"url": self.url, "writer": self.writer, **kw}))
        self.opened.append(sink)
        return sink

    def close(self) -> None:
        while self.opened:
            with contextlib.suppress(PersistenceError):
                self.opened.pop().close(run_info(), bars=0, status="test ended")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()


@pytest.fixture(
    params=[
        "sqlite-process",
        "sqlite-inline",
        "postgresql-process",
        "postgresql-inline",
        "postgresql-process-copy",
        "postgresql-inline-copy",
    ]
)
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    if request.param.startswith("postgresql"):
        found = Target(request.getfixturevalue("postgres_url"), writer=request.param.split("-")[1])
        # Every batch by COPY, as a replay's large ones are; else each row an INSERT.
        monkeypatch.setattr(
            sink_module, "COPY_FROM", 1 if request.param.endswith("copy") else 10**9
        )
    else:
        found = Target(f"sqlite:///{tmp_path / 'l.db'}", writer=request.param.split("-")[1])
    yield found
    found.close()  # before the backend goes away


_open: list[SqlSink] = []


def make_sink(path: Path, **kw: Any) -> SqlSink:
    sink = SqlSink(SqlSink.Settings(path=str(path), **kw))
    _open.append(sink)
    return sink


@pytest.fixture(autouse=True)
def _close_sinks() -> Any:
    yield
    while _open:
        sink = _open.pop()
        # Tests of failures leave a broken ledger behind on purpose.
        with contextlib.suppress(PersistenceError):
            sink.close(run_info(), bars=0, status="test ended")


def run_info(run_id: str = "r1") -> RunInfo:
    return RunInfo(
        run_id=run_id,
        namespace=run_id,
        started_at=T,
        env="test",
        broker="paper",
        feed="list",
        strategies=("s",),
    )


def decision(n: int = 1) -> Decision:
    return Decision(
        source="s",
        created_at=T + dt.timedelta(minutes=n),
        symbol="AAPL",
        action="buy",
        confidence=80,
        quantity=Decimal("0.3"),
        sizing={"stop_distance": "1.25"},
        rationale="why not",
    )


def order_for(d: Decision, cid: str = "tp-1") -> Order:
    intent = OrderIntent(
        client_order_id=cid,
        decision_id=d.id,
        source="s",
        symbol="AAPL",
        side=Side.BUY,
        quantity=d.quantity,
        created_at=T,
        reference_price=Decimal("100.10"),
    )
    return Order.from_intent(intent)


def fill_for(order: Order, price: str = "0.1", commission: str = "0.2") -> Fill:
    return Fill(
        execution_id=f"x-{order.client_order_id}",
        client_order_id=order.client_order_id,
        decision_id=order.intent.decision_id,
        symbol="AAPL",
        side=Side.BUY,
        quantity=order.intent.quantity,
        price=Decimal(price),
        commission=Decimal(commission),
        ts=T + dt.timedelta(days=1),
    )


def record_equity(sink: SqlSink, *equities: str) -> None:
    """One account snapshot a day from ``T``, cash and equity each ``equities``' own."""
    for day, equity in enumerate(equities):
        sink.record_snapshot(
            [],
            AccountSummary(
                account_id="PAPER",
                cash=Decimal(equity),
                equity=Decimal(equity),
                buying_power=Decimal(equity),
                ts=T + dt.timedelta(days=day),
            ),
        )


def ten_aapl(execution_id: str, side: Side, price: str, ts: dt.datetime) -> Fill:
    """A fill of ten AAPL, its order named after the execution."""
    return Fill(
        execution_id=execution_id,
        client_order_id=f"c-{execution_id}",
        decision_id="d",
        symbol="AAPL",
        side=side,
        quantity=Decimal(10),
        price=Decimal(price),
        ts=ts,
    )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
def test_everything_round_trips_exactly(target: Target) -> None:
    sink = target.sink()
    sink.open(run_info())
    d = decision()
    sink.record_decision(d)
    order = order_for(d)
    sink.record_order(order)
    sink.record_verdict(
        RiskVerdict.trusted(
            decision_id=d.id,
            client_order_id="tp-1",
            filter="f",
            seq=1,
            outcome=Outcome.REDUCE,
            reason="r",
            quantity_before=Decimal("0.3"),
            quantity_after=Decimal("0.1"),
            figures={"price": Decimal("100.10"), "n": 3, "x": 0.5, "why": "text", "none": None},
            ts=T,
        )
    )
    for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
        sink.record_order_event(order.transition(status, T, "because"))
    fill = fill_for(order)
    sink.record_order_event(order.apply_fill(fill))
    sink.record_fill(fill)
    sink.record_snapshot(
        [
            Position(
                symbol="AAPL",
                quantity=Decimal("0.3"),
                avg_cost=Decimal("0.1"),
                mark_price=Decimal("0.3"),
            )
        ],
        AccountSummary(
            account_id="PAPER",
            cash=Decimal("99999.77"),
            equity=Decimal("99999.86"),
            buying_power=Decimal("99999.77"),
            ts=T + dt.timedelta(days=1),
        ),
    )
    sink.close(run_info(), bars=7, status="completed")

    ledger = Ledger(target.sink().engine(), target.url)
    [drow] = ledger.decisions("r1")
    assert drow.quantity == Decimal("0.3") and drow.created_at == d.created_at
    assert drow.created_at.tzinfo is not None
    assert '"stop_distance":"1.25"' in (drow.extra or "")
    [(orow, status, _reason)] = ledger.orders("r1")
    assert (orow.reference_price, status) == (Decimal("100.10"), "filled")
    assert [e.status for e in ledger.order_events("r1", "tp-1")] == [
        "submitted",
        "accepted",
        "filled",
    ]
    [frow] = ledger.fills("r1")
    assert frow.price * frow.quantity == Decimal("0.03")  # no binary float anywhere
    [vrow] = ledger.verdicts("r1")
    assert vrow.figures == '{"price":"100.10","n":3,"x":0.5,"why":"text","none":null}'
    summary = ledger.summary("r1")
    assert summary["bars"] == 7 and summary["status"] == "completed"
    assert summary["orders"]["filled"] == 1 and summary["orders"]["submitted"] == 1
    assert summary["commissions"] == "0.20"
    assert summary["positions"][0]["unrealized_pnl"] == "0.06"
    assert summary["cash"] == "99999.77"
    # The metrics read the fills back through the driver, as each backend gives them.
    assert (summary["metrics"]["fills"], summary["metrics"]["commissions"]) == (1, 0.2)
    assert summary["metrics"]["turnover"] == pytest.approx(0.03 / 99999.86)
    if target.postgres:
        assert target.rows("select pg_typeof(price)::text, price from fills") == [
            ("numeric", Decimal("0.1"))
        ]
    else:
        # Stored as text, not REAL, so SQLite itself cannot round it.
        assert target.rows("select typeof(price), price from fills") == [("text", "0.1")]


def verdict(
    seq: int,
    name: str,
    outcome: Outcome = Outcome.PASS,
    *,
    decision_id: str = "d1",
    ts: dt.datetime = T,
    reason: str = "",
    figures: dict[str, Any] | None = None,
) -> RiskVerdict:
    return RiskVerdict(
        decision_id=decision_id,
        client_order_id="tp-" + decision_id,
        filter=name,
        seq=seq,
        outcome=outcome,
        reason=reason,
        quantity_before=Decimal("10"),
        quantity_after=Decimal(0) if outcome is Outcome.DENY else Decimal("10"),
        figures=figures or {},
        ts=ts,
    )


def hand_values(sink: SqlSink, v: RiskVerdict) -> None:
    """What the risk chain does: a verdict's values, without the record."""
    sink.record_verdict_values(*(getattr(v, name) for name in RiskVerdict.model_fields))


@pytest.mark.parametrize("by_values", [False, True], ids=["records", "values"])
def test_a_chains_verdicts_are_one_row_and_read_back_one_by_one(
    target: Target, by_values: bool
) -> None:
    hand = hand_values if by_values else SqlSink.record_verdict
    later = T + dt.timedelta(minutes=1)
    given = [
        # Two guards (place 0), then the filters: one judging.
        verdict(0, "stale_price", reason="price is 4 s old"),
        verdict(0, "order_rules", reason="rounded to the tick"),
        verdict(1, "min_confidence", figures={"confidence": 80.0, "threshold": 70}),
        verdict(2, "max_position_value", reason='a "quoted" cap of 5 €', figures={"b": "é"}),
        # The same decision judged again at once (a place that does not go up).
        verdict(1, "min_confidence"),
        verdict(2, "max_position_value", Outcome.DENY, reason="over the limit"),
        # Another decision: a rule's denial of its own.
        verdict(0, "duplicate", Outcome.DENY, decision_id="d2", reason="sent before"),
        # The same decision at a later time, then a flush while it is open.
        verdict(1, "min_confidence", decision_id="d2", ts=later),
    ]
    sink = target.sink()
    sink.open(run_info())
    for v in given:
        hand(sink, v)
    sink.flush()
    hand(sink, verdict(2, "buying_power", decision_id="d2", ts=later))
    sink.close(run_info(), bars=0, status="completed")
    given.append(verdict(2, "buying_power", decision_id="d2", ts=later))

    judgings = target.rows("select decision_id, denied_by, verdicts from judgements order by id")
    assert [(d, by, len(json.loads(items))) for d, by, items in judgings] == [
        ("d1", None, 4),
        ("d1", "max_position_value", 2),
        ("d2", "duplicate", 1),
        ("d2", None, 1),  # closed by the flush: the verdict after it is a row of its own
        ("d2", None, 1),
    ]
    # Read back through the verdicts view: every verdict, in order, as given.
    ledger = Ledger(target.sink().engine(), target.url)
    back = ledger.verdicts("r1")
    assert [
        (
            v.decision_id,
            v.client_order_id,
            v.seq,
            v.filter,
            v.outcome,
            v.reason,
            v.quantity_before,
            v.quantity_after,
            json.loads(v.figures),
            v.ts,
        )
        for v in back
    ] == [
        (
            v.decision_id,
            v.client_order_id,
            v.seq,
            v.filter,
            v.outcome.value,
            v.reason,
            v.quantity_before,
            v.quantity_after,
            json.loads(_figures_json(v.figures)),
            v.ts,
        )
        for v in given
    ]
    assert ledger.summary("r1")["not_sent"] == [
        {"by": "duplicate", "count": 1, "reason": "sent before"},
        {"by": "max_position_value", "count": 1, "reason": "over the limit"},
    ]


def test_verdicts_json_would_refuse_read_back_as_they_were_written(target: Target) -> None:
    """A float that is not finite (``inf`` is a valid setting of some filters), escaped
    characters, a key with a quote: the verdicts view gives every one back, and the
    figures as the text they always had. A NUL or lone surrogate in a reason, which
    the databases' JSON cannot carry, is U+FFFD."""
    odd = [
        {"max_age_seconds": math.inf, "age": 0.0},
        {"x": -math.inf, "y": math.nan},
        {"why": "a\x00b", "where": "caf\u00e9"},
        {"half": "\ud800"},
        {'say "hi"': 1, "back\\slash": Decimal("NaN")},
    ]
    reasons = ["nul \x00 here", "lone \udc80", "caf\u00e9 \u20ac", "", "tab\tand\nline"]
    given = [
        verdict(n + 1, f"f{n}", decision_id="d1", reason=reason, figures=figures)
        for n, (reason, figures) in enumerate(zip(reasons, odd, strict=True))
    ]
    sink = target.sink()
    sink.open(run_info())
    for v in given:
        sink.record_verdict(v)
    sink.close(run_info(), bars=0, status="completed")
    back = Ledger(target.sink().engine(), target.url).verdicts("r1")
    assert [v.figures for v in back] == [_figures_json(v.figures) for v in given]
    assert [v.reason for v in back] == [
        "nul \ufffd here",
        "lone \ufffd",
        "caf\u00e9 \u20ac",
        "",
        "tab\tand\nline",
    ]
    assert target.rows("select count(*) from verdicts") == [(5,)]


def test_a_head_names_its_verdicts_figures_and_the_view_gives_each_object_back(
    target: Target,
) -> None:
    """On SQLite a head holds its verdicts' figure names, and each verdict only the
    values; the ``verdicts`` view gives back the object as the text it always had:
    floats as Python wrote them (not as SQLite prints a double), decimals, integers
    past 64 bits, booleans, null. A value a list cannot carry (a float that is not
    finite, text with an escaped character) keeps the object, under a head without
    names. On PostgreSQL every verdict keeps its object."""
    values: list[dict[str, Any]] = [
        {"price": Decimal("99.07"), "confidence": 0.1 + 0.2, "limit": 10**20, "n": -7},
        {"price": Decimal("1E+3"), "confidence": 1e-7, "limit": True, "n": None},
        {"price": Decimal("-0.50"), "confidence": 1.2345678901234567, "limit": "cap", "n": 0},
        {"price": Decimal(1), "confidence": math.inf, "limit": False, "n": 1},  # not finite
        {"price": Decimal(2), "confidence": 2.5, "limit": "caf\u00e9", "n": 2},  # escaped
        {"price": Decimal(3), "confidence": 3.0, "limit": 2**63 - 1, "n": -(2**63) + 1},
    ]
    given = [
        verdict(1, "max_position_value", decision_id=f"d{n}", figures=figures)
        for n, figures in enumerate(values)
    ] + [verdict(2, "odd_names", figures={'say "hi"': 1}), verdict(3, "none_at_all")]
    sink = target.sink()
    sink.open(run_info())
    for v in given:
        sink.record_verdict(v)
    sink.close(run_info(), bars=0, status="completed")
    back = Ledger(target.sink().engine(), target.url).verdicts("r1")
    assert [v.figures for v in back] == [_figures_json(v.figures) for v in given]
    heads = target.rows("select n, figures from verdict_heads order by n")
    if target.postgres:  # objects: the view would join names and values for every row
        assert heads == [(0, None), (1, None), (2, None)]
        return
    assert heads == [
        (0, '["price","confidence","limit","n"]'),
        (1, None),  # for the verdicts whose values need the object
        (2, None),  # a name with a quote
        (3, None),  # no figures
    ]
    lists = [
        item
        for (items,) in target.rows("select verdicts from judgements order by id")
        for item in json.loads(items)
    ]
    assert [item[0] for item in lists] == [0, 0, 0, 1, 1, 0, 2, 3]
    assert lists[0][1] == ["99.07", ["0.30000000000000004"], ["100000000000000000000"], -7]


def test_figures_a_list_cannot_carry_make_one_head_without_names(target: Target) -> None:
    """A filter whose figures hold a value without a plain JSON form (a time, as the
    market-hours guard's do) numbers one head for them, without names, and every
    head numbered is used: none is left for names its verdicts never write so."""
    given = [
        verdict(1, "market_hours", decision_id=f"d{n}", figures={"now": T, "n": n})
        for n in range(3)
    ] + [verdict(2, "max_position_value", figures={"price": Decimal("1.5")})]
    sink = target.sink()
    sink.open(run_info())
    for v in given:
        sink.record_verdict(v)
    sink.close(run_info(), bars=0, status="completed")
    assert target.rows("select n, filter, figures from verdict_heads order by n") == [
        (0, "market_hours", None),
        (1, "max_position_value", None if target.postgres else '["price"]'),
    ]
    back = Ledger(target.sink().engine(), target.url).verdicts("r1")
    assert [v.figures for v in back] == [_figures_json(v.figures) for v in given]


def _read_back(target: Target) -> list[tuple[Any, ...]]:
    return [
        (
            *(v.decision_id, v.seq, v.filter, v.outcome, v.reason),
            *(str(v.quantity_before), str(v.quantity_after), json.loads(v.figures)),
        )
        for v in Ledger(target.sink().engine(), target.url).verdicts("r1")
    ]


def _recorded_and_read_back(target: Target, given: list[RiskVerdict]) -> None:
    """One run records ``given``; the verdicts view gives each back as it was."""
    sink = target.sink()
    sink.open(run_info())
    for v in given:
        sink.record_verdict(v)
    sink.close(run_info(), bars=0, status="completed")
    assert _read_back(target) == [
        (
            *(v.decision_id, v.seq, v.filter, v.outcome.value, v.reason),
            *(str(v.quantity_before), str(v.quantity_after), v.figures),
        )
        for v in given
    ]


def test_verdicts_name_their_run_s_heads_and_keep_their_quantities(target: Target) -> None:
    """A verdict names its run's head (place, filter, outcome, reason) by number, and
    gives its quantities only where they are not the judging's: after a reduction,
    and where the text differs though the number is the same (10.0 is not 10)."""
    cut = verdict(2, "max_position_value", Outcome.REDUCE, reason="cap").model_copy(
        update={"quantity_after": Decimal("6.50")}
    )
    after_cut = verdict(3, "buying_power").model_copy(
        update={"quantity_before": Decimal("6.50"), "quantity_after": Decimal("6.50")}
    )
    same_number = verdict(4, "max_risk_per_trade").model_copy(
        update={"quantity_before": Decimal("10.0"), "quantity_after": Decimal("10.0")}
    )
    given = [
        verdict(1, "min_confidence", figures={"confidence": 80.0}),
        cut,
        after_cut,
        same_number,
        # The next decision's chain: the same heads again, so no new ones.
        verdict(1, "min_confidence", decision_id="d2", figures={"confidence": 90.5}),
        verdict(2, "max_position_value", decision_id="d2", reason="cap"),
    ]
    _recorded_and_read_back(target, given)
    shapes = [
        [len(item) for item in json.loads(items)]
        for (items,) in target.rows("select verdicts from judgements order by id")
    ]
    assert shapes == [[2, 4, 4, 4], [2, 2]]
    heads = target.rows("select n, seq, filter, outcome, reason from verdict_heads order by n")
    assert heads == [
        (0, 1, "min_confidence", "pass", ""),
        (1, 2, "max_position_value", "reduce", "cap"),
        (2, 3, "buying_power", "pass", ""),
        (3, 4, "max_risk_per_trade", "pass", ""),
        (4, 2, "max_position_value", "pass", "cap"),
    ]


def test_each_run_numbers_its_own_heads(target: Target) -> None:
    """Two runs of one sink, one after the other: each numbers its heads from 0, and
    each run's verdicts and denials read back with its own heads."""
    runs = {
        "r1": [verdict(1, "min_confidence", Outcome.DENY, reason="too unsure")],
        "r2": [
            verdict(1, "max_position_value", Outcome.DENY, reason="too big"),
            verdict(1, "min_confidence", decision_id="d2"),
        ],
    }
    sink = target.sink()
    for run_id, given in runs.items():
        sink.open(run_info(run_id))
        for v in given:
            sink.record_verdict(v)
        sink.close(run_info(run_id), bars=0, status="completed")
    assert target.rows("select run_id, n, filter from verdict_heads order by run_id, n") == [
        ("r1", 0, "min_confidence"),
        ("r2", 0, "max_position_value"),
        ("r2", 1, "min_confidence"),
    ]
    ledger = Ledger(target.sink().engine(), target.url)
    assert [(v.filter, v.outcome, v.reason) for v in ledger.verdicts("r2")] == [
        ("max_position_value", "deny", "too big"),
        ("min_confidence", "pass", ""),
    ]
    assert ledger.summary("r1")["not_sent"] == [
        {"by": "min_confidence", "count": 1, "reason": "too unsure"}
    ]
    assert ledger.summary("r2")["not_sent"] == [
        {"by": "max_position_value", "count": 1, "reason": "too big"}
    ]


def test_past_its_most_heads_a_run_writes_verdicts_out_in_full(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reasons that quote figures make a head each: past ``MOST_HEADS`` of them a
    run's verdicts carry their own, and read back the same."""
    monkeypatch.setattr("tradepipe.plugins.ledger.sink.MOST_HEADS", 2)
    given = [
        verdict(1, "max_position_value", Outcome.DENY, decision_id=f"d{n}", reason=f"over {n}")
        for n in range(4)
    ]
    _recorded_and_read_back(target, given)
    shapes = [
        len(json.loads(items)[0]) for (items,) in target.rows("select verdicts from judgements")
    ]
    assert sorted(shapes) == [4, 4, 7, 7]
    assert target.rows("select count(*) from verdict_heads") == [(2,)]
    ledger = Ledger(target.sink().engine(), target.url)
    assert ledger.summary("r1")["not_sent"] == [
        {"by": "max_position_value", "count": 4, "reason": "over 3"}
    ]


def test_a_change_at_its_order_s_time_leaves_the_time_to_the_order(target: Target) -> None:
    """On SQLite, changes at the time their order was placed are written without it
    (the order's row has it); a later change, another run's order of the same id,
    and every change on PostgreSQL keep their own. ``order_events`` gives each
    change its time either way."""
    later = T + dt.timedelta(minutes=1)
    order = order_for(decision(1), "tp-d1")
    earlier = order_for(decision(2), "tp-d1")  # the same id, an earlier run's order
    sink = target.sink()
    sink.open(run_info("r0"))
    sink.record_order(earlier)
    sink.record_order_event(earlier.transition(OrderStatus.SUBMITTED, later))
    sink.close(run_info("r0"), bars=0, status="completed")
    sink = target.sink()
    sink.open(run_info("r1"))
    sink.record_order(order)
    changes = [
        order.transition(OrderStatus.SUBMITTED, T),
        order.transition(OrderStatus.ACCEPTED, T, broker_order_id="B1"),
    ]
    for e in changes:
        sink.record_order_event(e)
    # Still the order placed last, but the earlier run's: its own time.
    settled = earlier.transition(OrderStatus.CANCELED, T)
    sink.record_reconciled("r0", [settled], [])
    changes.append(order.transition(OrderStatus.CANCELED, later))
    sink.record_order_event(changes[-1])
    sink.close(run_info("r1"), bars=0, status="completed")

    # By order and place: r0's order's two changes, then r1's three.
    stored = [
        ts if isinstance(ts, str | int) else ts.isoformat()
        for (ts,) in target.rows("select ts from status_changes order by order_id, seq")
    ]
    at, after = T.isoformat(), later.isoformat()
    if target.postgres:
        assert stored == [after, at, at, at, after]
    else:  # times in UTC to the second as their seconds since 1970 (0025, 0031)
        assert stored == [
            int(later.timestamp()),
            int(T.timestamp()),
            "",
            "",
            int(later.timestamp()),
        ]
    ledger = Ledger(target.sink().engine(), target.url)
    assert [(e.status, e.ts) for e in ledger.order_events("r1", "tp-d1")] == [
        (e.status.value, e.ts) for e in changes
    ]
    assert [(e.status, e.ts) for e in ledger.order_events("r0", "tp-d1")] == [
        ("submitted", later),
        ("canceled", T),
    ]


def test_every_time_reads_back_as_the_text_it_was_written_in(target: Target) -> None:
    """On SQLite a time in UTC to the second is stored as its seconds since 1970
    (migration 0025), from year 1 to 9999; one with a fraction of a second or
    another offset as ISO text. Every view gives each back as the ISO text it was
    written in (on PostgreSQL the same instant)."""
    from zoneinfo import ZoneInfo

    times = [
        T,
        T.replace(microsecond=250_000),
        T.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        T.astimezone(ZoneInfo("Europe/London")),  # GMT in March: offset 0, short
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    ]
    sink = target.sink()
    sink.open(run_info())
    for n, at in enumerate(times):
        d = decision(n).model_copy(update={"created_at": at})
        sink.record_decision(d)
        cid = f"tp-{n}"
        sink.record_verdict(verdict(1, "min_confidence", decision_id=d.id, ts=at))
        order = order_for(d, cid)
        order = Order.from_intent(order.intent.model_copy(update={"created_at": at}))
        sink.record_order(order)
        sink.record_order_event(order.transition(OrderStatus.SUBMITTED, at))
        sink.record_fill(fill_for(order).model_copy(update={"ts": at}))
        later = times[(n + 1) % len(times)]
        sink.record_order_event(order.transition(OrderStatus.CANCELED, later))
    sink.close(run_info(), bars=0, status="completed")

    def read(sql: str) -> list[str]:
        return [v if isinstance(v, str) else v.isoformat() for (v,) in target.rows(sql)]

    written = [at.isoformat() for at in times]
    changes = [t for n, at in enumerate(written) for t in (at, written[(n + 1) % len(times)])]
    got = {
        "decisions": read("select created_at from decisions order by id"),
        "judgements": read("select ts from judgements order by id"),
        "verdicts": read("select ts from verdicts order by id"),
        "orders": read("select created_at from orders order by id"),
        "fills": read("select ts from fills order by id"),
        "order_events": read("select ts from order_events order by id"),
    }
    if target.postgres:  # the same instants, in UTC
        got = {k: [dt.datetime.fromisoformat(v).isoformat() for v in vs] for k, vs in got.items()}
        written = [at.astimezone(dt.UTC).isoformat() for at in times]
        changes = [dt.datetime.fromisoformat(t).astimezone(dt.UTC).isoformat() for t in changes]
    assert got == {
        "decisions": written,
        "judgements": written,
        "verdicts": written,
        "orders": written,
        "fills": written,
        "order_events": changes,
    }
    if not target.postgres:
        stored = [ts for (ts,) in target.rows("select created_at from order_rows order by id")]
        # Seconds since 1970 kept as integers (migration 0031), other times as text.
        assert stored == [
            1772461800,
            "2026-03-02T14:30:00.250000+00:00",
            "2026-03-02T20:00:00+05:30",
            1772461800,
            -62135596800,
            -1,
            253402300799,
        ]


def test_a_missing_time_is_never_written_as_an_empty_one() -> None:
    """The times' text is remembered from one record to the next: a first record
    without a time fails, as it always did, rather than taking the empty text the
    cache starts with (an empty change time means "its order's")."""
    for short in (False, True):
        times = sink_module._Timestamps(short=short)
        with pytest.raises(AttributeError):
            times(None)
        assert times(T) == (str(int(T.timestamp())) if short else T.isoformat())


def test_an_order_names_its_decision_s_row_and_reads_back_with_its_id(target: Target) -> None:
    """An order of a decision its run recorded names the decision's row and leaves
    the id to it (migration 0027); an order of a decision the run did not record
    (recorded by another run, or not at all) keeps its id. Orders, their fills and
    explain give every decision id as written."""
    first, second = decision(1), decision(2)
    sink = target.sink()
    sink.open(run_info("r0"))
    sink.record_decision(second)  # in another run
    sink.close(run_info("r0"), bars=0, status="completed")
    sink = target.sink()
    sink.open(run_info("r1"))
    sink.record_decision(first)
    orders = [order_for(first, "tp-1"), order_for(second, "tp-2"), order_for(decision(3), "tp-3")]
    for o in orders:
        sink.record_order(o)
    other = fill_for(orders[0]).model_copy(update={"execution_id": "x-other", "decision_id": "d-x"})
    sink.record_fill(fill_for(orders[0]))
    sink.record_fill(other)
    sink.close(run_info("r1"), bars=0, status="completed")

    ledger = Ledger(target.sink().engine(), target.url)
    assert [(o.client_order_id, o.decision_id) for o, _s, _r in ledger.orders("r1")] == [
        (o.client_order_id, o.intent.decision_id) for o in orders
    ]
    assert [f.decision_id for f in ledger.fills("r1")] == [first.id, "d-x"]
    [chain] = ledger.chains(first.id)
    assert [o["order"]["client_order_id"] for o in chain["orders"]] == ["tp-1"]
    assert [(f["execution_id"], f["decision_id"]) for f in chain["orders"][0]["fills"]] == [
        ("x-tp-1", first.id),
        ("x-other", "d-x"),
    ]
    # A decision its run did not record: its order keeps the id, found by it.
    [chain] = ledger.chains("tp-2")
    assert (chain["run_id"], chain["decision_id"]) == ("r1", second.id)
    assert [o["order"]["client_order_id"] for o in chain["orders"]] == ["tp-2"]
    stored = target.rows(
        "select client_order_id, decision_row is not null, decision_id from order_rows order by id"
    )
    assert [(c, bool(k), d) for c, k, d in stored] == [
        ("tp-1", True, None),
        ("tp-2", False, second.id),
        ("tp-3", False, decision(3).id),
    ]


def test_a_fill_names_its_order_s_row_and_reads_back_with_its_ids(target: Target) -> None:
    """A fill of an order the ledger holds in its run names the order's row and leaves
    the ids to it (migration 0026), its decision id kept where it is not the
    order's; a fill of an order the ledger lacks, or holds in another run only,
    keeps its own; a fill a later run reconciles for an earlier one takes that
    run's order. The ``fills`` view gives every fill its ids, in the order written."""
    first = order_for(decision(1), "tp-1")
    sink = target.sink()
    sink.open(run_info("r0"))
    sink.record_order(first)
    sink.close(run_info("r0"), bars=0, status="completed")
    second = order_for(decision(2), "tp-2")
    given = [
        fill_for(second),
        fill_for(second).model_copy(update={"execution_id": "x-other", "decision_id": "d-x"}),
        fill_for(order_for(decision(3), "tp-missing")),
        # The earlier run's order, filled in this run (an expiry names the order
        # that opened the position): not this run's order.
        fill_for(first).model_copy(update={"execution_id": "x-expired", "kind": "expired"}),
    ]
    sink = target.sink()
    sink.open(run_info("r1"))
    sink.record_order(second)
    for f in given:
        sink.record_fill(f)
    late = fill_for(first).model_copy(update={"execution_id": "x-late"})
    sink.record_reconciled("r0", [], [late])
    sink.close(run_info("r1"), bars=0, status="completed")

    ledger = Ledger(target.sink().engine(), target.url)
    fields = ("execution_id", "client_order_id", "decision_id", "kind", "price")
    for run, fills in (("r1", given), ("r0", [late])):
        assert [tuple(getattr(f, k) for k in fields) for f in ledger.fills(run)] == [
            tuple(getattr(f, k) for k in fields) for f in fills
        ]
    stored = target.rows(
        "select execution_id, order_id is not null, client_order_id, decision_id "
        "from fill_rows order by id"
    )
    assert [(e, bool(o), c, d) for e, o, c, d in stored] == [
        ("x-tp-2", True, None, None),
        ("x-other", True, None, "d-x"),
        ("x-tp-missing", False, "tp-missing", decision(3).id),
        ("x-expired", False, "tp-1", decision(1).id),
        ("x-late", True, None, None),
    ]
    # Found by the client order id either way.
    by_id = "select execution_id from fills where client_order_id = '{}' order by id"
    assert target.rows(by_id.format("tp-2")) == [("x-tp-2",), ("x-other",)]
    assert target.rows(by_id.format("tp-1")) == [("x-expired",), ("x-late",)]


def test_a_change_keeps_its_time_unless_its_own_order_was_placed_last_then(
    target: Target,
) -> None:
    """Order A placed at T, order B at T2, then A canceled at B's very time: A's
    change is not B's, so it keeps its own time (and reads back as T2)."""
    later = T + dt.timedelta(minutes=1)
    a = order_for(decision(1), "tp-a")
    b = order_for(decision(2), "tp-b")
    b = Order.from_intent(b.intent.model_copy(update={"created_at": later}))
    sink = target.sink()
    sink.open(run_info())
    sink.record_order(a)
    sink.record_order_event(a.transition(OrderStatus.SUBMITTED, T))
    sink.record_order(b)
    sink.record_order_event(b.transition(OrderStatus.SUBMITTED, b.intent.created_at))
    canceled = a.transition(OrderStatus.CANCELED, b.intent.created_at)
    sink.record_order_event(canceled)
    sink.close(run_info(), bars=0, status="completed")
    if not target.postgres:
        # A's two changes, then B's.
        assert target.rows("select ts from status_changes order by order_id, seq") == [
            ("",),
            (int(later.timestamp()),),
            ("",),
        ]
    ledger = Ledger(target.sink().engine(), target.url)
    assert [(e.status, e.ts) for e in ledger.order_events("r1", "tp-a")] == [
        ("submitted", T),
        ("canceled", later),
    ]
    assert [(e.status, e.ts) for e in ledger.order_events("r1", "tp-b")] == [("submitted", later)]


def test_a_batch_that_holds_an_order_holds_its_verdicts(target: Target) -> None:
    """A batch is cut by the record that fills it; a judging still open then goes
    with it, so a crash after that batch never leaves an order without its verdicts."""
    sink = target.sink(batch_size=2)
    sink.open(run_info())
    sink.record_verdict(verdict(1, "min_confidence"))
    sink.record_verdict(verdict(2, "buying_power"))
    order = order_for(decision(1), "tp-d1")
    sink.record_order(order)  # one record: no batch yet
    sink.record_order_event(order.transition(OrderStatus.SUBMITTED, T, ""))  # the second
    if target.writer == "process":
        sink.flush()  # sent without waiting: wait for it here
    assert target.rows("select count(*) from orders") == [(1,)]
    assert target.rows("select filter from verdicts order by id") == [
        ("min_confidence",),
        ("buying_power",),
    ]
    sink.close(run_info(), bars=0, status="completed")


def test_a_judging_names_its_order_s_row_and_reads_back_with_its_id(target: Target) -> None:
    """A judging of an order its run holds, written in the same batch or before it,
    names the order's row and leaves the client order id to it (migration 0028);
    a denial, and a judging whose order comes in a later batch, keep the id. The
    judgements and verdicts views and explain give every id as written."""
    d1, d2, d3 = (decision(n).id for n in (1, 2, 3))
    sink = target.sink(batch_size=1000)
    sink.open(run_info())
    # d1: judged and sent in one batch; d2: denied; d3: its order in a later batch.
    sink.record_verdict(verdict(1, "min_confidence", decision_id=d1))
    sink.record_order(order_for(decision(1), f"tp-{d1}"))
    sink.record_verdict(verdict(1, "max_position_value", Outcome.DENY, decision_id=d2))
    sink.record_verdict(verdict(1, "min_confidence", decision_id=d3))
    sink.flush()
    sink.record_order(order_for(decision(3), f"tp-{d3}"))
    sink.close(run_info(), bars=0, status="completed")
    assert target.rows("select decision_id, client_order_id from judgements order by id") == [
        (d, f"tp-{d}") for d in (d1, d2, d3)
    ]
    assert target.rows("select client_order_id, filter from verdicts order by id") == [
        (f"tp-{d1}", "min_confidence"),
        (f"tp-{d2}", "max_position_value"),
        (f"tp-{d3}", "min_confidence"),
    ]
    stored = target.rows(
        "select decision_id, order_id is not null, client_order_id from judgement_rows order by id"
    )
    assert [(d, bool(k), c) for d, k, c in stored] == [
        (d1, True, None),
        (d2, False, f"tp-{d2}"),
        (d3, False, f"tp-{d3}"),
    ]
    ledger = Ledger(target.sink().engine(), target.url)
    # explain finds a denial by its client order id alone (no order has it).
    [chain] = ledger.chains(f"tp-{d2}")
    assert [(v["filter"], v["outcome"]) for v in chain["verdicts"]] == [
        ("max_position_value", "deny")
    ]
    [chain] = ledger.chains(f"tp-{d1}")
    assert [v["filter"] for v in chain["verdicts"]] == ["min_confidence"]
    assert [o["order"]["client_order_id"] for o in chain["orders"]] == [f"tp-{d1}"]


def test_a_judging_names_its_decision_s_row_and_reads_back_with_its_id(target: Target) -> None:
    """A judging of a decision its run recorded, sent or denied, names the decision's
    row and leaves the decision id to it (migration 0029); one of a decision the run
    did not record keeps the id. The views, explain and the latest activity give
    every verdict under its decision as written."""
    d1, d2, d3 = (decision(n) for n in (1, 2, 3))
    sink = target.sink(batch_size=1000)
    sink.open(run_info())
    # d1 judged and sent, d2 denied, both recorded; d3 sent on from elsewhere.
    for d in (d1, d2):
        sink.record_decision(d)
    sink.record_verdict(verdict(1, "min_confidence", decision_id=d1.id))
    sink.record_order(order_for(d1, f"tp-{d1.id}"))
    sink.record_verdict(verdict(1, "max_position_value", Outcome.DENY, decision_id=d2.id))
    sink.record_verdict(verdict(1, "min_confidence", decision_id=d3.id))
    sink.record_order(order_for(d3, f"tp-{d3.id}"))
    sink.close(run_info(), bars=0, status="completed")
    ids = [d1.id, d2.id, d3.id]
    assert target.rows("select decision_id from judgements order by id") == [(d,) for d in ids]
    assert target.rows("select decision_id from verdicts order by id") == [(d,) for d in ids]
    stored = target.rows(
        "select j.decision_id, d.decision_id from judgement_rows j "
        "left join decision_rows d on d.id = j.decision_row order by j.id"
    )
    assert stored == [(None, d1.id), (None, d2.id), (d3.id, None)]
    ledger = Ledger(target.sink().engine(), target.url)
    for d, shown in ((d1, "min_confidence"), (d2, "max_position_value"), (d3, "min_confidence")):
        [chain] = ledger.chains(d.id)
        assert [v["filter"] for v in chain["verdicts"]] == [shown]
        assert [v["decision_id"] for v in chain["verdicts"]] == [d.id]
    recent = {r["decision_id"]: r["verdicts"] for r in ledger.recent(10)["decisions"]}
    assert [v["filter"] for v in recent[d1.id]] == ["min_confidence"]
    assert [(v["filter"], v["outcome"]) for v in recent[d2.id]] == [("max_position_value", "deny")]


def test_a_judging_holds_at_most_a_thousand_verdicts(target: Target) -> None:
    """The view numbers a judging's verdicts within its id times 1,000."""
    sink = target.sink()
    sink.open(run_info())
    for n in range(1001):
        sink.record_verdict(verdict(0, f"guard{n}"))
    sink.record_verdict(verdict(1, "other", decision_id="d2"))
    sink.close(run_info(), bars=0, status="completed")
    back = Ledger(target.sink().engine(), target.url).verdicts("r1")
    assert [v.filter for v in back] == [f"guard{n}" for n in range(1001)] + ["other"]
    assert len({v.id for v in back}) == 1002
    assert target.rows("select count(*) from judgements") == [(3,)]


def test_records_wait_for_the_batch_or_a_flush(target: Target) -> None:
    sink = target.sink(batch_size=3)
    sink.open(run_info())
    sink.record_decision(decision(1))
    sink.record_decision(decision(2))
    assert target.rows("select count(*) from decisions") == [(0,)]
    sink.record_decision(decision(3))  # the third record fills the batch: it is sent
    sink.record_decision(decision(4))
    sink.flush()  # flush returns once everything is committed
    assert target.rows("select count(*) from decisions") == [(4,)]
    sink.close(run_info(), bars=0, status="completed")


def test_flush_waits_for_batches_already_sent_without_waiting(tmp_path: Path) -> None:
    sink = make_sink(tmp_path / "l.db", batch_size=2)
    sink.open(run_info())
    assert sink._writer is not None
    calls: list[tuple[int, bool]] = []
    real = sink._writer.write

    def spy(statements: Any, *, wait: bool) -> None:
        calls.append((sum(len(rows) for _sql, rows in statements), wait))
        real(statements, wait=wait)

    sink._writer.write = spy  # type: ignore[method-assign]
    sink.record_decision(decision(1))
    sink.record_decision(decision(2))  # a full batch: sent, not waited for
    sink.flush()  # nothing buffered, but the batch above is not yet acknowledged
    sink.flush()  # now there is nothing to wait for
    assert calls == [(2, False), (0, True)]


def test_inline_writer_commits_a_full_batch_at_once(target: Target) -> None:
    if target.writer != "inline":
        pytest.skip("about the inline writer")  # the process writer is tested above
    sink = target.sink(batch_size=3)
    sink.open(run_info())
    for n in range(3):
        sink.record_decision(decision(n))
    assert target.rows("select count(*) from decisions") == [(3,)]


def test_a_failed_batch_writes_nothing_and_says_why(target: Target) -> None:
    sink = target.sink()
    sink.open(run_info())
    d = decision()
    order = order_for(d)
    sink.record_decision(d)
    sink.record_order(order)
    sink.record_order(order)  # the same client order id twice violates uniqueness
    with pytest.raises(PersistenceError, match="(?i)could not write.*unique"):
        sink.flush()
    # One transaction: the decision in the same batch was not half-written.
    assert target.rows("select count(*) from decisions") == [(0,)]
    # The failure is not forgotten: the ledger refuses further writes.
    sink.record_decision(decision(2))
    with pytest.raises(PersistenceError):
        sink.flush()
    # Closing says so too, and the run's row says it failed (not "running", which
    # the next start would take for a process killed outright).
    with pytest.raises(PersistenceError, match="(?i)refuses writes|unique"):
        sink.close(run_info(), bars=5, status="completed")
    assert target.rows("select status, bars from runs") == [("failed", 5)]


def test_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "l.db"
    sink = make_sink(path)
    sink.open(run_info())
    assert path.stat().st_mode & 0o777 == 0o600
    assert rows(path, "pragma journal_mode") == [("wal",)]


def test_unopenable_ledger_is_a_persistence_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(PersistenceError, match="cannot open the ledger"):
        make_sink(tmp_path / "dir.db").engine()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_writer_process_that_dies_is_reported_and_its_batch_not_lost_silently(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import signal

    url = (
        f"sqlite:///{tmp_path / 'l.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    target = Target(url, writer="process")
    try:
        sink = target.sink()
        sink.open(run_info())
        assert sink._writer is not None
        os.kill(sink._writer.pid, signal.SIGKILL)
        sink.record_decision(decision())
        with pytest.raises(PersistenceError, match="ledger writer stopped"):
            sink.flush()
        assert target.rows("select count(*) from decisions") == [(0,)]
        with pytest.raises(PersistenceError, match="refuses writes"):
            sink.record_decision(decision(2))
            sink.flush()
    finally:
        target.close()


def test_a_postgresql_writer_that_cannot_connect_says_why_without_the_password(
    postgres_url: str,
) -> None:
    from sqlalchemy.engine import make_url
    from tradepipe.plugins.ledger.writer import WriterError, WriterProcess

    url = make_url(postgres_url)
    keywords = {
        "host": url.host or "",
        "port": url.port or 5432,
        "user": url.username or "",
        "password": "s3cret-pw",
        "dbname": "no_such_ledger",
    }
    with pytest.raises(WriterError, match="no_such_ledger") as raised:
        WriterProcess(keywords, None)
    assert "s3cret-pw" not in str(raised.value)


@pytest.mark.parametrize(
    "query",
    [
        # libpq reads these as SQLAlchemy hands them on: spaces and all.
        {"options": "-c search_path={schema} -c statement_timeout=0"},
        {"options": "-csearch_path={schema}", "application_name": "my app"},
    ],
)
def test_the_writer_process_connects_as_the_url_says(
    postgres_url: str, query: dict[str, str]
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    schema = url.query["options"].removeprefix("-csearch_path=")
    given = url.set(query={k: v.format(schema=schema) for k, v in query.items()})
    target = Target(given.render_as_string(hide_password=False), writer="process")
    try:
        sink = target.sink()
        sink.open(run_info())
        sink.record_decision(decision())
        sink.flush()
        assert sink._writer is not None
    finally:
        target.close()
    assert target.rows("select count(*) from decisions") == [(1,)]


def test_a_password_the_driver_would_quote_is_never_shown(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.engine import make_url
    from tradepipe.plugins.ledger import writer

    def refuse(self: Any, where: Any, pragmas: Any) -> None:
        raise writer.WriterError(f"bad password {where['password']!r}")

    monkeypatch.setattr(writer.WriterProcess, "__init__", refuse)
    url = make_url(postgres_url).set(password="hunter 2-SECRET")
    target = Target(url.render_as_string(hide_password=False), writer="process")
    try:
        with pytest.raises(PersistenceError) as raised:
            target.sink().open(run_info())
    finally:
        target.close()
    assert "hunter" not in str(raised.value) and "***" in str(raised.value)


@pytest.mark.slow
def test_writer_process_stops_when_the_pipeline_dies(tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sql_sink import make_sink, run_info, decision
        from pathlib import Path
        sink = make_sink(Path({str(tmp_path / "l.db")!r}), batch_size=2)
        sink.open(run_info())
        sink.record_decision(decision(1))
        sink.record_decision(decision(2))   # a full batch, sent without waiting
        sink.flush()
        sink.record_decision(decision(3))   # buffered, never sent
        print(sink._writer.pid, flush=True)
        os._exit(0)                         # the pipeline dies without closing
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    child = int(out.stdout.strip())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the writer process outlived its pipeline")
    assert rows(tmp_path / "l.db", "select count(*) from decisions") == [(2,)]


@pytest.mark.slow
def test_two_writers_on_one_ledger_lose_nothing(target: Target) -> None:
    target.sink().engine()  # create the schema once

    def writer(name: str) -> None:
        sink = target.sink(batch_size=7)
        sink.open(run_info(name))
        for n in range(200):
            sink.record_decision(decision(n))
        sink.close(run_info(name), bars=200, status="completed")

    threads = [threading.Thread(target=writer, args=(f"run{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.rows("select run_id, count(*) from decisions group by run_id order by 1") == [
        ("run0", 200),
        ("run1", 200),
        ("run2", 200),
    ]


def test_figures_json_matches_json_dumps() -> None:
    import json

    figures = {
        "a": Decimal("1.50"),
        "b": 2,
        "c": 2.5,
        "d": 'x"y',
        "e": None,
        "f": True,
        "g": dt.date(2026, 1, 2),
    }
    assert json.loads(_figures_json(figures)) == {
        "a": "1.50",
        "b": 2,
        "c": 2.5,
        "d": 'x"y',
        "e": None,
        "f": True,
        "g": "2026-01-02",
    }
    assert _figures_json({}) == "{}"


@pytest.mark.parametrize(
    "value", [100.0, 0.1 + 0.2, -0.0, 1e300, 5e-324, 1e16, float("nan"), float("inf"), -math.inf]
)
def test_figures_json_writes_floats_as_json_does(value: float) -> None:
    import json

    assert _figures_json({"x": value}) == '{"x":' + json.dumps(value) + "}"


@pytest.mark.slow
def test_a_whole_replay_lands_in_the_ledger(target: Target) -> None:
    closes = [100 + (i % 40) - (i % 7) for i in range(400)]
    _, result, summary = replay(
        bars_from_closes(closes),
        run={"sinks": ["sql"], "batch_size": 50},
        sinks={"sql": {"url": target.url, "writer": target.writer}},
        strategies={"sma_cross": {"quantity": 10}},
    )
    assert summary["orders"]["total"] == result.orders > 5
    assert summary["fills"] == result.fills
    assert summary["decisions"] == result.decisions
    assert target.rows("select count(*) from orders") == [(result.orders,)]
    orders = summary["orders"]
    assert orders["denied"] > 0  # counter-trend entries fall below min_confidence
    assert orders["rejected"] == orders["canceled"] == 0
    assert orders["filled"] + orders["open"] + orders["denied"] == orders["total"]
    assert orders["submitted"] == orders["filled"] + orders["open"]
    # submitted, accepted, filled for a fill; submitted, accepted for an open
    # order; one event for a denial.
    events = target.rows("select count(*) from order_events")[0][0]
    assert events == 3 * orders["filled"] + 2 * orders["open"] + orders["denied"]


@pytest.mark.slow
def test_summary_counts_each_order_once_by_its_latest_status(target: Target) -> None:
    sink = target.sink()
    sink.open(run_info())
    steps = {
        "tp-sub": [OrderStatus.SUBMITTED],
        "tp-acc": [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED],
        "tp-unk": [OrderStatus.SUBMITTED, OrderStatus.UNKNOWN],
        "tp-den": [OrderStatus.DENIED],
        "tp-can": [
            OrderStatus.SUBMITTED,
            OrderStatus.ACCEPTED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED,
        ],
    }
    for n, (cid, statuses) in enumerate(steps.items()):
        order = order_for(decision(n), cid)
        sink.record_order(order)
        for status in statuses:
            sink.record_order_event(order.transition(status, T))
    sink.close(run_info(), bars=1, status="completed")
    ledger = Ledger(target.sink().engine(), "x")
    statuses = [(row.client_order_id, status) for row, status, _ in ledger.orders("r1")]
    assert statuses == [
        ("tp-sub", "submitted"),
        ("tp-acc", "accepted"),
        ("tp-unk", "unknown"),
        ("tp-den", "denied"),
        ("tp-can", "canceled"),
    ]
    # A limit reads only the shown orders' histories, to the same answer.
    assert [(row.client_order_id, status) for row, status, _ in ledger.orders("r1", 2)] == (
        statuses[:2]
    )
    orders = ledger.summary("r1")["orders"]
    assert orders == {
        "total": 5,
        "submitted": 4,
        "denied": 1,
        "rejected": 0,
        "filled": 0,
        "canceled": 1,
        "expired": 0,
        "open": 2,
        "unknown": 1,
    }


def test_summary_of_a_run_whose_orders_all_ended_sums_commissions_exactly(
    target: Target,
) -> None:
    sink = target.sink()
    sink.open(run_info())
    commissions = ["0.35", "1.00", "0.35", "0.1", "0.35"]
    for n, commission in enumerate(commissions):
        order = order_for(decision(n), f"tp-{n}")
        sink.record_order(order)
        for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
            sink.record_order_event(order.transition(status, T))
        fill = fill_for(order, commission=commission)
        sink.record_fill(fill)
        sink.record_order_event(order.apply_fill(fill))
    denied = order_for(decision(9), "tp-den")
    sink.record_order(denied)
    sink.record_order_event(denied.transition(OrderStatus.DENIED, T))
    sink.close(run_info(), bars=1, status="completed")
    summary = Ledger(target.sink().engine(), "x").summary("r1")
    assert summary["orders"] == {
        "total": 6,
        "submitted": 5,
        "denied": 1,
        "rejected": 0,
        "filled": 5,
        "canceled": 0,
        "expired": 0,
        "open": 0,
        "unknown": 0,
    }
    assert summary["fills"] == 5
    assert summary["commissions"] == "2.15"


@pytest.mark.slow
def test_two_pipeline_processes_share_one_ledger(target: Target, tmp_path: Path) -> None:
    """Two processes replaying at once into one ledger: both runs complete, whole."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from tradepipe.testing import bars_from_closes, replay
        closes = [100 + (i % 40) - (i % 7) for i in range(300)]
        _, result, summary = replay(
            bars_from_closes(closes),
            run={{"sinks": ["sql"], "batch_size": 25}},
            sinks={{"sql": {{"url": {target.url!r}, "writer": {target.writer!r}}}}},
            strategies={{"sma_cross": {{"quantity": 10}}}},
        )
        assert summary["status"] == "completed", summary
        print(summary["run_id"], result.orders, result.decisions)
    """)
    target.sink().engine()  # the schema exists before the race starts
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    for out, _err in outputs:
        run_id, orders, decisions = out.split()
        assert target.rows(f"select count(*) from orders where run_id = '{run_id}'") == [
            (int(orders),)
        ]
        assert target.rows(f"select count(*) from decisions where run_id = '{run_id}'") == [
            (int(decisions),)
        ]
        assert target.rows(f"select status from runs where run_id = '{run_id}'") == [("completed",)]


@pytest.mark.slow
def test_ctrl_c_while_a_batch_is_sent_leaves_the_frame_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from tradepipe.plugins.ledger import writer as ledger_writer

    path = tmp_path / "l.db"
    sink = make_sink(path)
    sink.open(run_info())
    real = ledger_writer._send

    def interrupted(stream: Any, message: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands while the frame goes out
        real(stream, message)

    monkeypatch.setattr(ledger_writer, "_send", interrupted)
    sink.record_decision(decision(1))
    with pytest.raises(KeyboardInterrupt):
        sink.flush()
    monkeypatch.setattr(ledger_writer, "_send", real)
    # The writer is still whole: the run's end can be recorded, as on a real Ctrl-C.
    sink.close(run_info(), bars=1, status="interrupted")
    assert rows(path, "select status from runs") == [("interrupted",)]
    assert rows(path, "select count(*) from decisions") == [(1,)]


def test_writer_frames_carry_rows_by_marshal_and_anything_else_by_pickle() -> None:
    import io

    from tradepipe.plugins.ledger import writer as ledger_writer

    rows_message = ("write", 1, [("INSERT ...", [("r1", 1, 2.5, True, None)])], False)
    other = ("write", 2, [("INSERT ...", [(Decimal("1.10"), T)])], True)
    stream = io.BytesIO()
    ledger_writer._send(stream, rows_message)
    marshal_end = stream.tell()
    ledger_writer._send(stream, other)
    frames = stream.getvalue()
    assert frames[4] == ledger_writer._MARSHAL
    assert frames[marshal_end + 4] == ledger_writer._PICKLE
    stream.seek(0)
    assert ledger_writer._receive(stream) == rows_message
    assert ledger_writer._receive(stream) == other
    assert ledger_writer._receive(stream) is None  # end of input
    # A frame cut short is never half read.
    assert ledger_writer._receive(io.BytesIO(frames[: marshal_end - 1])) is None


@pytest.mark.slow
def test_a_run_whose_process_is_gone_is_marked_killed_at_the_next_start(
    ledger_url: str,
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(gone.stdout)
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(run_info("r-dead"))
    sink.flush()
    sink.close(run_info("r-dead"), bars=0, status="completed")
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(run_info("r-alive"))  # this process: alive
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET status = 'running', pid = :pid WHERE run_id = 'r-dead'"),
            {"pid": dead_pid},
        )
    engine.dispose()
    later = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    later.open(run_info("r-next"))
    reader = create_engine(ledger_url)
    statuses = {r.run_id: r.status for r in Ledger(reader).runs()}
    reader.dispose()
    assert statuses["r-dead"] == "killed"
    assert statuses["r-alive"] == "running"  # its process (this one) still runs
    later.close(run_info("r-next"), bars=0, status="completed")
    sink.close(run_info("r-alive"), bars=0, status="completed")


def test_trade_figures_read_back_in_time_order_whatever_offset_times_were_written_in(
    target: Target,
) -> None:
    """A sell at 14:00 UTC, a buy at 14:10 UTC, and a buy at 14:30 UTC written as
    09:30-05:00: SQLite sorts that text first. In time order the 14:10 buy covers
    the short (+50) and the 14:30 one opens a position; in the text's order the
    09:30 buy would open first and the sell close it (+100)."""
    ny = dt.timezone(dt.timedelta(hours=-5))
    sink = target.sink()
    sink.open(run_info())
    sink.record_fill(ten_aapl("short", Side.SELL, "110", T.replace(hour=14, minute=0)))
    sink.record_fill(ten_aapl("cover", Side.BUY, "105", T.replace(hour=14, minute=10)))
    sink.record_fill(
        ten_aapl("long", Side.BUY, "100", T.replace(hour=14, minute=30).astimezone(ny))
    )
    record_equity(sink, "100000", "100100")
    sink.close(run_info(), bars=2, status="completed")

    metrics = Ledger(target.sink().engine(), target.url).summary("r1")["metrics"]
    # Short 10 at 110, covered at 105: one trade that made 50.
    assert (metrics["fills"], metrics["trades"], metrics["win_rate"]) == (3, 1, 1.0)
    assert metrics["avg_win"] == 50.0


def replay_sink(target: Target, run_id: str = "r1", clock: Any = None) -> SqlSink:
    """A sink attached to a run as the pipeline attaches it: a replay's (a
    ManualClock) unless ``clock`` says otherwise."""
    sink = target.sink(batch_size=7)  # batches cut through every kind of record
    sink.attach(SimpleNamespace(clock=clock or ManualClock(T)))
    sink.open(run_info(run_id))
    return sink


def test_a_replays_summary_as_counted_is_the_one_the_ledger_gives(target: Target) -> None:
    """Everything the summary counts, recorded as a replay records it: holds,
    rejected decisions, denials (one with a NUL in its reason), every order ending,
    orders left open, partial fills, a combo's fill and its legs, and another run's
    order settled in passing. The sink's counted summary is the ledger's, key by key."""
    earlier = replay_sink(target, "r0")
    left = order_for(decision(50), "tp-earlier")
    earlier.record_order(left)
    earlier.record_order_event(left.transition(OrderStatus.SUBMITTED, T))
    earlier.close(run_info("r0"), bars=1, status="completed")

    sink = replay_sink(target)
    hold = Decision(source="s", created_at=T, symbol="AAPL", action="hold", confidence=10)
    sink.record_decision(hold)
    sink.record_decision_rejected({"symbol": 5}, "s", "symbol: not a string")
    sink.record_decision_rejected(None, "s", "empty")
    paths = {
        "tp-den": [OrderStatus.DENIED],
        "tp-rej": [OrderStatus.SUBMITTED, OrderStatus.REJECTED],
        "tp-exp": [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.EXPIRED],
        "tp-can": [
            OrderStatus.SUBMITTED,
            OrderStatus.ACCEPTED,
            OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED,
        ],
        "tp-acc": [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED],
        "tp-unk": [OrderStatus.SUBMITTED, OrderStatus.UNKNOWN],
        "tp-pc": [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PENDING_CANCEL],
    }
    for n, (cid, statuses) in enumerate(paths.items()):
        d = decision(n)
        sink.record_decision(d)
        if statuses == [OrderStatus.DENIED]:
            hand_values(sink, verdict(1, "max_position", Outcome.DENY, reason="too\x00big"))
        order = order_for(d, cid)
        sink.record_order(order)
        for status in statuses:
            sink.record_order_event(order.transition(status, T))
    for n, by in enumerate(["min_confidence", "min_confidence", "halt"]):
        hand_values(
            sink,
            verdict(1, by, Outcome.DENY, decision_id=f"den{n}", reason=f"no {n}", ts=T),
        )
    # Bought in two fills, sold in one: a trade that made money after commissions.
    for n, (side, price, quantity) in enumerate(
        [(Side.BUY, "100", "3"), (Side.BUY, "101", "7"), (Side.SELL, "104.5", "10")]
    ):
        d = decision(20 + n)
        sink.record_decision(d)
        order = order_for(d, f"tp-f{n}")
        sink.record_order(order)
        sink.record_order_event(order.transition(OrderStatus.SUBMITTED, T))
        fill = Fill(
            execution_id=f"x{n}",
            client_order_id=order.client_order_id,
            decision_id=d.id,
            symbol="AAPL",
            side=side,
            quantity=Decimal(quantity),
            price=Decimal(price),
            commission=Decimal("0.35"),
            ts=T + dt.timedelta(minutes=n),
        )
        sink.record_fill(fill)
    leg = {"client_order_id": "tp-combo", "decision_id": "dc", "commission": Decimal(0)}
    combo = Fill(
        execution_id="xc",
        symbol="SPY combo",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal("1.10"),
        commission=Decimal("1.30"),
        multiplier=Decimal(100),
        ts=T + dt.timedelta(minutes=5),
        legs=tuple(
            Fill(
                execution_id=f"xc.{n}",
                symbol=symbol,
                side=side,
                quantity=Decimal(1),
                price=Decimal(price),
                multiplier=Decimal(100),
                ts=T + dt.timedelta(minutes=5),
                **leg,
            )
            for n, (symbol, side, price) in enumerate(
                [("SPY C500", Side.BUY, "3.10"), ("SPY C510", Side.SELL, "2.00")], 1
            )
        ),
        **{k: v for k, v in leg.items() if k != "commission"},
    )
    sink.record_fill(combo)
    # The earlier run's order settles now: its rows are the earlier run's.
    sink.record_reconciled("r0", [left.transition(OrderStatus.CANCELED, T)], [])
    record_equity(sink, "100000", "100031.5")
    sink.close(run_info(), bars=3, status="completed")

    assert sink.tally("r1") is not None
    counted = sink.summary("r1")
    read = Ledger(target.sink().engine(), sink.where).summary("r1")
    assert counted == read
    assert counted["orders"] == {
        "total": 10,
        "submitted": 9,
        "denied": 1,
        "rejected": 1,
        "filled": 0,
        "canceled": 1,
        "expired": 1,
        "open": 5,
        "unknown": 1,
    }
    assert (counted["decisions"], counted["decisions_held"], counted["decisions_rejected"]) == (
        11,
        1,
        2,
    )
    assert counted["not_sent"] == [
        {"by": "min_confidence", "count": 2, "reason": "no 1"},
        {"by": "halt", "count": 1, "reason": "no 2"},
        {"by": "max_position", "count": 1, "reason": "too\ufffdbig"},
    ]
    assert (counted["fills"], counted["commissions"]) == (4, "2.35")
    assert (counted["metrics"]["fills"], counted["metrics"]["trades"]) == (5, 1)
    # The earlier run's summary counts its order's end, written by this sink.
    assert sink.tally("r0") is None
    assert sink.summary("r0")["orders"]["canceled"] == 1


def test_a_replays_fills_out_of_time_order_are_read_back_for_its_trades(
    target: Target,
) -> None:
    """The ledger gives fills back in its own order, not the order recorded, and
    the trade figures are read back then. ``late``: bought at 100 at 14:10 and sold
    at 110 at 14:20, with a sale at 90 at 14:00 recorded last; in time order the
    14:00 sale opens a short the 14:10 buy covers (-100), where in the order
    recorded the first sale would close the long (+100). ``offset``: two buys at
    one instant, the second written in New York time, and a sale; SQLite gives the
    New York one back first (its text sorts first), so the sale closes that lot."""
    ny = dt.timezone(dt.timedelta(hours=-5))
    utc = dt.UTC
    runs = {
        "late": [
            (Side.BUY, "100", 10, utc),
            (Side.SELL, "110", 20, utc),
            (Side.SELL, "90", 0, utc),
        ],
        "offset": [
            (Side.BUY, "100", 0, utc),
            (Side.BUY, "105", 0, ny),
            (Side.SELL, "110", 10, utc),
        ],
    }
    for run_id, fills in runs.items():
        sink = replay_sink(target, run_id)
        for n, (side, price, minute, zone) in enumerate(fills):
            ts = T.replace(hour=14, minute=minute).astimezone(zone)
            sink.record_fill(ten_aapl(f"{run_id}{n}", side, price, ts))
        record_equity(sink, "1000")
        sink.close(run_info(run_id), bars=2, status="completed")
        metrics = sink.summary(run_id)["metrics"]
        assert metrics == Ledger(target.sink().engine(), sink.where).summary(run_id)["metrics"]
        assert (metrics["fills"], metrics["trades"]) == (3, 1)
        if run_id == "late":
            assert (metrics["win_rate"], metrics["avg_loss"]) == (0.0, -100.0)
        elif not target.postgres:  # PostgreSQL gives equal instants back as written
            assert metrics["avg_win"] == 50.0


def test_a_replays_summary_reads_no_change_or_fill_back(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the sink counted stands in for every status change and fill of the run."""
    from tradepipe.plugins.ledger import summary as summaries

    sink = replay_sink(target)
    order = order_for(decision(1), "tp-1")
    sink.record_order(order)
    sink.record_order_event(order.transition(OrderStatus.SUBMITTED, T))
    sink.record_fill(fill_for(order))
    sink.record_order_event(order.apply_fill(fill_for(order)))
    record_equity(sink, "9")
    sink.close(run_info(), bars=1, status="completed")
    read = Ledger(target.sink().engine(), sink.where).summary("r1")

    def not_read(*_args: Any) -> Any:
        raise AssertionError("read back")

    for name in ("order_counts", "fill_rows", "figures"):
        monkeypatch.setattr(summaries, name, not_read)
    # As run_pipeline asks for it (without the suite's check, which reads back).
    monkeypatch.setattr(SqlSink, "summary", SqlSink.summary.__wrapped__)  # type: ignore[attr-defined]
    assert sink.summary("r1") == read
    assert (read["orders"]["filled"], read["metrics"]["fills"]) == (1, 1)


def test_changes_out_of_their_order_leave_a_replays_counts_to_the_ledger(target: Target) -> None:
    """A change after an order's end, or ahead of an earlier one, never comes from an
    order's own transitions; handed to the sink all the same, the ledger's counts
    (an order with an end has ended) are the summary's."""
    sink = replay_sink(target)
    for cid, steps in {
        "tp-late": [(1, "submitted"), (2, "filled"), (3, "partially_filled")],
        "tp-ahead": [(1, "submitted"), (3, "canceled"), (2, "accepted")],
    }.items():
        order = order_for(decision(len(cid)), cid)
        sink.record_order(order)
        for seq, status in steps:
            sink.record_order_event(
                OrderEvent(
                    client_order_id=cid,
                    decision_id=order.intent.decision_id,
                    seq=seq,
                    status=OrderStatus(status),
                    previous=None,
                    ts=T,
                )
            )
    sink.close(run_info(), bars=1, status="completed")
    orders = sink.summary("r1")["orders"]
    assert orders == Ledger(target.sink().engine(), sink.where).summary("r1")["orders"]
    assert (orders["filled"], orders["canceled"], orders["open"]) == (1, 1, 0)


def test_a_replay_with_many_open_lots_leaves_its_trade_figures_to_the_ledger(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lots held open are memory the run would keep to its end: past a bound the
    trade figures are read back instead, to the same answer."""
    from tradepipe.plugins.ledger import tally

    monkeypatch.setattr(tally, "MOST_OPEN_LOTS", 2)
    sink = replay_sink(target)
    for n, side in enumerate([Side.BUY, Side.BUY, Side.BUY, Side.SELL]):
        order = order_for(decision(n), f"tp-{n}")
        sink.record_fill(fill_for(order).model_copy(update={"side": side}))
    counted = sink._tally
    assert counted is not None and counted.trades is None
    record_equity(sink, "9")
    sink.close(run_info(), bars=1, status="completed")
    metrics = sink.summary("r1")["metrics"]
    assert metrics == Ledger(target.sink().engine(), sink.where).summary("r1")["metrics"]
    assert (metrics["fills"], metrics["trades"]) == (4, 1)


@pytest.mark.parametrize("live", [False, True], ids=["replay", "live"])
def test_a_runs_order_settled_by_another_process_is_in_its_summary(
    target: Target, live: bool
) -> None:
    """Another process settling a run's order (a run of the same session, or
    ``tradepipe reconcile``) writes into the run. A live run's summary always reads
    the ledger back; a replay's finds more rows there than its sink wrote, and
    reads it back too."""
    sink = replay_sink(target, clock=SystemClock() if live else None)
    order = order_for(decision(1), "tp-1")
    sink.record_order(order)
    sink.record_order_event(order.transition(OrderStatus.SUBMITTED, T))
    sink.flush()
    other = target.sink()
    other.open(run_info("r-other"))
    other.record_reconciled("r1", [order.transition(OrderStatus.REJECTED, T, "unknown")], [])
    sink.close(run_info(), bars=1, status="completed")
    assert (sink.tally("r1") is None) is live
    summary = sink.summary("r1")
    assert summary == Ledger(target.sink().engine(), sink.where).summary("r1")
    assert (summary["orders"]["rejected"], summary["orders"]["open"]) == (1, 0)


def test_an_open_judging_stays_in_its_run_when_another_runs_rows_fill_a_batch(
    target: Target,
) -> None:
    first = target.sink()
    first.open(run_info("r0"))
    earlier = order_for(decision(1), "tp-earlier")
    first.record_order(earlier)
    first.close(run_info("r0"), bars=0, status="completed")
    sink = target.sink(batch_size=3)
    sink.open(run_info("r1"))
    hand_values(sink, verdict(1, "min_confidence"))  # a judging still open
    steps = [OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    sink.record_reconciled("r0", [earlier.transition(status, T) for status in steps], [])
    sink.close(run_info("r1"), bars=0, status="completed")
    assert target.rows("select run_id, decision_id from judgements") == [("r1", "d1")]


_AWKWARD = "tab\there\nnew line \\ back\\slash \\N \"quoted\" 'single' é ✓ 𝄞 ,;|"


def _awkward_run(sink: SqlSink, run_id: str) -> None:
    """Every kind of row, with text COPY has to escape and decimals and times as given."""
    sink._clock = ManualClock(T)  # what a rejection is timed by
    sink.open(run_info(run_id))
    d = Decision(
        source="s",
        created_at=dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        symbol="AAPL",
        action="buy",
        confidence=80,
        quantity=Decimal("1E+2"),
        rationale=_AWKWARD,
    )
    sink.record_decision(d)
    sink.record_decision_rejected({"raw": _AWKWARD}, "s", _AWKWARD)
    order = order_for(d, cid=f"tp-{run_id}")
    hand_values(
        sink,
        verdict(1, "f", Outcome.REDUCE, reason=_AWKWARD, figures={"why": _AWKWARD, "q": -0.0}),
    )
    sink.record_order(order)
    for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
        sink.record_order_event(order.transition(status, T, _AWKWARD))
    fill = fill_for(order, price="1234567890123456789012345678901234567890.123")
    sink.record_order_event(order.apply_fill(fill))
    sink.record_fill(fill)
    sink.record_audit(
        "k", _AWKWARD, ledger_value="", broker_value=None, action="a", detail="", ts=T
    )
    sink.close(run_info(run_id), bars=1, status="completed")


@pytest.mark.parametrize(
    ("writer", "copy_from"), [("inline", 1), ("process", 10**9), ("process", 1)]
)
def test_a_batch_by_copy_or_the_writer_process_writes_what_inserts_write(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, writer: str, copy_from: int
) -> None:
    """The pipeline's own INSERTs are the reference; the writer process is sent
    decimals and times as text, which PostgreSQL must read back as the same values."""
    target = Target(postgres_url)
    try:
        monkeypatch.setattr(sink_module, "COPY_FROM", 10**9)
        _awkward_run(target.sink(), "by-insert")
        monkeypatch.setattr(sink_module, "COPY_FROM", copy_from)
        _awkward_run(target.sink(writer=writer), "by-copy")
    finally:
        target.close()
    tables = [
        "decisions",
        "rejected_decisions",
        "judgements",
        "orders",
        "order_events",
        "fills",
        "audit",
        "verdicts",
    ]
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for table in tables:
                found = {}
                for run_id in ("by-insert", "by-copy"):
                    read = conn.execute(
                        text(f"select * from {table} where run_id = :run"), {"run": run_id}
                    ).mappings()
                    own = {run_id, f"tp-{run_id}", f"x-tp-{run_id}"}
                    # Row ids aside, and the run's own ids, the rows are the same.
                    found[run_id] = [
                        {
                            k: v
                            for k, v in row.items()
                            if k not in ("id", "order_id", "judging") and v not in own
                        }
                        for row in read
                    ]
                assert found["by-copy"], table
                assert found["by-copy"] == found["by-insert"], table
    finally:
        engine.dispose()
    [(rationale,)] = target.rows("select rationale from decisions where run_id = 'by-copy'")
    assert rationale == _AWKWARD


def test_a_status_change_whose_order_is_missing_fails_its_copied_batch(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sink_module, "COPY_FROM", 1)
    target = Target(postgres_url)
    try:
        sink = target.sink()
        sink.open(run_info())
        d = decision()
        sink.record_decision(d)
        order = order_for(d)  # never recorded
        sink.record_order_event(order.transition(OrderStatus.SUBMITTED, T, "sent"))
        with pytest.raises(PersistenceError, match="(?i)could not write.*null"):
            sink.flush()
        assert target.rows("select count(*) from decisions") == [(0,)]
        assert target.rows("select count(*) from status_changes") == [(0,)]
    finally:
        target.close()


def test_a_role_that_may_not_make_temporary_tables_writes_a_replays_batches(
    postgres_server: str | None,
) -> None:
    """Hardened databases refuse TEMPORARY to ordinary roles: large batches, status
    changes included, must not need it."""
    if postgres_server is None:
        pytest.skip("no PostgreSQL server")
    from sqlalchemy.engine import make_url

    suffix = os.urandom(4).hex()
    database, role = f"tp_notemp_{suffix}", f"tp_notemp_{suffix}"
    server = make_url(postgres_server)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN"))
            conn.execute(text(f"CREATE DATABASE {database}"))
            conn.execute(text(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC"))
            conn.execute(text(f"GRANT CONNECT ON DATABASE {database} TO {role}"))
        owner = create_engine(server.set(database=database))
        with owner.begin() as conn:
            conn.execute(text(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}"))
        owner.dispose()
        url = server.set(database=database, username=role).render_as_string(hide_password=False)
        for writer in ("process", "inline"):
            target = Target(url, writer=writer)
            try:
                sink = target.sink(batch_size=10_000)
                sink.open(run_info(f"r-{writer}"))
                d = decision()
                sink.record_decision(d)
                for n in range(40):  # 120 status changes, 40 orders and fills: COPY's size
                    order = order_for(d, cid=f"tp-{writer}-{n}")
                    sink.record_order(order)
                    for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
                        sink.record_order_event(order.transition(status, T, "sent"))
                    fill = fill_for(order)
                    sink.record_order_event(order.apply_fill(fill))
                    sink.record_fill(fill)
                sink.flush()
            finally:
                target.close()
            assert target.rows(
                f"select count(*) from order_events where run_id = 'r-{writer}'"
            ) == [(120,)]
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_a_ledger_url_and_a_database_error_are_shown_safe_and_on_one_line() -> None:
    from tradepipe.plugins.ledger.db import reason, shown

    # An "@" left unencoded in the password: the parser takes the rest for the host.
    assert shown("postgresql+psycopg://me:Se@cret@db.example:5432/l") == (
        "postgresql+psycopg://me:***@***@db.example:5432/l"
    )
    assert (
        shown("postgresql+psycopg://me:pw@db.example/l")
        == "postgresql+psycopg://me:***@db.example/l"
    )
    error = Exception(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        "(Background on this error at: https://sqlalche.me/e/21/e3q8)"
    )
    assert reason(error) == (
        'connection to server at "127.0.0.1", port 1 failed: Connection refused '
        "Is the server running on that host and accepting TCP/IP connections?"
    )


@pytest.mark.parametrize(("replay_clock", "has_writer"), [(True, True), (False, False)])
def test_a_postgresql_ledger_gets_a_writer_process_for_a_replay_by_default(
    postgres_url: str, replay_clock: bool, has_writer: bool
) -> None:
    """A replay's large batches go to a process; a live or one-off run's few writes,
    each waited for, are written by the pipeline, without a process to start."""
    sink = SqlSink(SqlSink.Settings(url=postgres_url))
    clock = ManualClock(T) if replay_clock else SystemClock()
    sink.attach(
        SimpleNamespace(clock=clock, settings=SimpleNamespace(run=SimpleNamespace(batch_size=10)))
    )
    try:
        sink.open(run_info())
        assert (sink._writer is not None) is has_writer
        sink.record_decision(decision())
        sink.flush()
    finally:
        sink.close(run_info(), bars=0, status="completed")
    assert Target(postgres_url).rows("select count(*) from decisions") == [(1,)]
