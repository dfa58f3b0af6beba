"""Reading a decision's history and a run's summary goes through indexes, and finds everything.

A run's summary counts its denials through an index of the denials alone
(migrations 0017 and 0018), where it read every verdict of the ledger; ``explain`` finds
a decision's verdicts in every run that judged it, a run an approval sent it
from included (that run did not record the decision again).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, text
from sqlmodel import Session
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.schema import (
    STATUS_CODES,
    ApprovalRow,
    DecisionRow,
    JudgementRow,
    OrderEventRow,
    OrderRow,
    RunRow,
    StatusChangeRow,
    table_of,
)

T0 = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)
DECISION = "d-approved"
CID = "tp-approved"
#: The tables a run writes a row or more to for every order (those behind the
#: views of its decisions, judgings, orders and fills, since migration 0022).
BIG = ("decision_rows", "judgement_rows", "order_rows", "status_changes", "fill_rows")


def _store(s: Session, row: Any) -> int:
    """Write ``row`` (read through a view) to the table behind its view, as the sink
    does: its run by number. Returns its id."""
    values = row.model_dump(exclude={"id", "run_id"})
    table = table_of(type(row))
    number = select(RunRow.__table__.c.run_no).where(RunRow.__table__.c.run_id == row.run_id)
    done = s.execute(insert(table).values(run_no=number.scalar_subquery(), **values))
    return int(done.inserted_primary_key[0])


def _run(run_id: str, minutes: int) -> RunRow:
    return RunRow(
        run_id=run_id,
        namespace="ns",
        started_at=T0 + dt.timedelta(minutes=minutes),
        env="paper",
        broker="paper",
        feed="csv",
        strategies="[]",
        status="completed",
    )


def _decision(run_id: str) -> DecisionRow:
    return DecisionRow(
        run_id=run_id,
        decision_id=DECISION,
        created_at=T0,
        source="ai",
        symbol="AAPL",
        action="buy",
        confidence=90.0,
        quantity=Decimal(10),
        order_type="market",
        tif="day",
        rationale="",
    )


def _verdict(run_id: str, name: str, outcome: str) -> JudgementRow:
    """A judging of one verdict, as the sink writes it."""
    reason = "" if outcome == "pass" else "refused here"
    after = "10" if outcome == "pass" else "0"
    return JudgementRow(
        run_id=run_id,
        decision_id=DECISION,
        client_order_id=CID,
        ts=T0,
        denied_by=name if outcome == "deny" else None,
        verdicts=json.dumps([[1, name, outcome, reason, "10", after, {}]]),
    )


def _sent_order(s: Session, run_id: str, cid: str, decision_id: str) -> None:
    """An order run ``run_id`` sent that never reached a final status."""
    order = OrderRow(
        run_id=run_id,
        client_order_id=cid,
        decision_id=decision_id,
        source="ai",
        symbol="AAPL",
        side="buy",
        quantity=Decimal(10),
        order_type="market",
        tif="day",
        outside_rth=False,
        created_at=T0,
    )
    order_id = _store(s, order)  # the order's row id keys its status changes
    s.add(
        StatusChangeRow(
            order_id=order_id,
            seq=1,
            status="submitted",
            previous="initialized",
            ts=T0,
            reason="",
        )
    )


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[tuple[Engine, Ledger]]:
    """A ledger where decision ``d-approved`` was recorded, judged and sent in run
    ``r-a``; waited for a person in run ``r-b``; and, approved, was judged again in
    run ``r-c``, which refused it before it became an order there."""
    engine = open_engine(ledger_url)
    with Session(engine) as s:
        s.add_all([_run("r-a", 0), _run("r-b", 1), _run("r-c", 2)])
        s.flush()  # the runs get their numbers
        _store(s, _decision("r-a"))
        _store(s, _decision("r-b"))
        _store(s, _verdict("r-a", "min_confidence", "pass"))
        _sent_order(s, "r-a", CID, DECISION)
        s.add(
            ApprovalRow(
                approval_id="ap-1",
                namespace="ns",
                run_id="r-b",
                decision_id=DECISION,
                source="ai",
                symbol="AAPL",
                side="buy",
                quantity=Decimal(10),
                reason="above the limit",
                decision="{}",
                created_at=T0,
                expires_at=T0 + dt.timedelta(hours=1),
                status="denied",
                sent_run_id="r-c",
            )
        )
        _store(s, _verdict("r-c", "duplicate", "deny"))
        s.commit()
    try:
        yield engine, Ledger(engine, "test ledger")
    finally:
        engine.dispose()


def test_a_decision_judged_again_where_an_approval_sent_it_is_explained(
    ledger: tuple[Engine, Ledger],
) -> None:
    _engine, found = ledger
    by_order = {c["run_id"]: c for c in found.chains(CID)}
    # The run that sent it, and the run that refused it again after the approval.
    assert set(by_order) == {"r-a", "r-c"}
    assert [(v["filter"], v["outcome"]) for v in by_order["r-a"]["verdicts"]] == [
        ("min_confidence", "pass")
    ]
    assert [o["order"]["client_order_id"] for o in by_order["r-a"]["orders"]] == [CID]
    assert [(v["filter"], v["outcome"], v["reason"]) for v in by_order["r-c"]["verdicts"]] == [
        ("duplicate", "deny", "refused here")
    ]
    assert by_order["r-c"]["orders"] == []
    # By its decision id: the runs that recorded it, the waiting one with its approval.
    by_decision = {c["run_id"]: c for c in found.chains(DECISION)}
    assert {"r-a", "r-b"} <= set(by_decision)
    assert [a["approval_id"] for a in by_decision["r-b"]["approvals"]] == ["ap-1"]


def _plans(engine: Engine, work: Any) -> list[tuple[str, str]]:
    """Each statement ``work()`` ran on ``engine``, with SQLite's plan for it."""
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    plans = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            plans.extend((statement, row[-1]) for row in rows)
    return plans


def _newest(statement: str) -> bool:
    """A read of a table's newest rows, which walks its key back from the end and
    stops at the limit (the dashboard's): a SCAN in the plan, but not of every row."""
    return "WHERE" not in statement and ".id DESC" in statement and "LIMIT" in statement


def _full_scans(plans: list[tuple[str, str]]) -> list[str]:
    return [
        f"{detail}: {statement}"
        for statement, detail in plans
        if detail.startswith("SCAN ")
        and detail.split()[1] in BIG
        and "USING" not in detail  # an index scan says which index
        and not _newest(statement)
    ]


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_history_and_a_summary_read_the_big_tables_through_indexes(
    ledger: tuple[Engine, Ledger],
) -> None:
    engine, found = ledger
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'completed'"))
    plans = _plans(
        engine,
        lambda: (
            found.chains(CID),
            found.summary("r-c"),
            found.summary("r-a"),
            found.unsettled_of([CID, "tp-unknown"]),  # what a live run's start asks
            found.recent(50),  # the dashboard's
            found.fills("r-a", 20),
            found.chains(DECISION),
            found.orders("r-a", 20),
        ),
    )
    assert any("FROM verdicts" in statement for statement, _detail in plans)
    assert any("FROM judgements" in statement for statement, _detail in plans)
    assert _full_scans(plans) == []
    # The newest fills, and a run's first, are read down the fills' own keys, not
    # sorted after each has found its order's row (migration 0026).
    fills: dict[str, list[str]] = {}
    for statement, detail in plans:
        if "FROM fills" in statement and "LIMIT" in statement:
            fills.setdefault(statement, []).append(detail)
    [newest] = [d for st, d in fills.items() if "DESC" in st]
    assert not any("TEMP B-TREE" in d for d in newest)
    # A run's first: only their ids are sorted, read from an index alone.
    [first] = [d for st, d in fills.items() if "DESC" not in st]
    assert any("COVERING INDEX" in d for d in first)
    # An order's fills, through the index of order rows; a decision's orders,
    # through that of decision rows (migrations 0026 and 0027).
    assert any("ix_fills_order" in detail for _statement, detail in plans)
    assert any("ix_orders_decision_row" in detail for _statement, detail in plans)
    # The denials are counted from their own index.
    assert any("ix_judgements_denied" in detail for _statement, detail in plans)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_runs_summary_counts_its_own_denials(ledger: tuple[Engine, Ledger]) -> None:
    _engine, found = ledger
    assert found.summary("r-c")["not_sent"] == [
        {"by": "duplicate", "count": 1, "reason": "refused here"}
    ]
    assert found.summary("r-a")["not_sent"] == []


def test_an_order_sent_and_never_finished_is_found_unsettled(
    ledger: tuple[Engine, Ledger],
) -> None:
    _engine, found = ledger
    [held] = found.unsettled_of([CID, "tp-unknown"])
    assert (held.run_id, held.intent.client_order_id, held.status) == ("r-a", CID, "submitted")
    assert found.unsettled_of(["tp-unknown"]) == []
    assert found.unsettled_of([CID], exclude_run="r-a") == []


class _Tracking:
    """A broker that only notes what it is told to follow."""

    name = "tracking"

    def __init__(self, key: str) -> None:
        self.key = key
        self.tracked: list[str] = []

    def ledger_account(self, account_id: str | None) -> str:
        return self.key

    def track(self, intent: Any, broker_order_id: str | None) -> None:
        self.tracked.append(intent.client_order_id)


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_a_broker_follows_the_open_orders_of_its_own_account_only(ledger_url: str) -> None:
    """`tradepipe broker` commands tell the broker of the orders the ledger holds open
    there: those of the runs filed under its account and of runs recorded before runs
    said what they traded, never a replay's (every replay kept would be read)."""
    from tradepipe.plugins.ledger.sink import SqlSink
    from tradepipe.services import records

    engine = open_engine(ledger_url)
    with Session(engine) as s:
        live, replay, old = _run("r-live", 0), _run("r-replay", 1), _run("r-old", 2)
        live.account, replay.account = "account:DU1", "replay:r-replay"
        s.add_all([live, replay, old])
        s.flush()  # the runs get their numbers
        for run in ("live", "replay", "old"):
            _sent_order(s, f"r-{run}", f"tp-{run}", f"d-{run}")
        s.commit()
    found = Ledger(engine, "test ledger")
    assert sorted(u.intent.client_order_id for u in found.unsettled(None)) == [
        "tp-live",
        "tp-old",
        "tp-replay",
    ]
    assert sorted(
        u.intent.client_order_id for u in found.unsettled(None, account="account:DU1")
    ) == ["tp-live", "tp-old"]
    engine.dispose()

    sink = SqlSink(SqlSink.Settings(url=ledger_url))
    broker = _Tracking("account:DU1")
    records._follow(sink, broker, "DU1")  # type: ignore[arg-type]
    assert sorted(broker.tracked) == ["tp-live", "tp-old"]
    # A simulator's account that lives as long as its process: nothing to follow.
    in_memory = _Tracking("")
    records._follow(sink, in_memory, None)  # type: ignore[arg-type]
    assert in_memory.tracked == []
    sink.release()


def test_a_row_dumps_its_fields_in_the_order_the_table_declares_them() -> None:
    """Loaded rows hold their attributes in the order they were loaded, which varies
    from process to process: `explain --json` printed the same record with its keys
    in another order each time."""
    row = OrderEventRow(
        run_id="r",
        client_order_id="tp-1",
        decision_id="d-1",
        seq=1,
        status="submitted",
        previous="initialized",
        ts=T0,
        reason="",
    )
    object.__setattr__(row, "__dict__", dict(reversed(list(row.__dict__.items()))))
    assert list(row.model_dump(exclude={"id"})) == [
        "run_id",
        "client_order_id",
        "decision_id",
        "seq",
        "status",
        "previous",
        "ts",
        "reason",
        "broker_order_id",
    ]


#: Orders, each with a fill, of a big run beside the fixture's small ones.
BIG_RUN = 20_000


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_postgresql_reads_a_small_run_and_an_order_s_fills_and_a_decision_s_orders_by_index(
    ledger: tuple[Engine, Ledger],
) -> None:
    """With statistics of a big run, PostgreSQL still finds an order's fills, the
    newest fills and a small run's through indexes: the fills view's LEFT JOIN of
    the order's row (migration 0026) must not turn into a scan of every order."""
    engine, found = ledger
    with Session(engine) as s:
        s.add(_run("r-big", 3))
        s.commit()
    with engine.begin() as conn:
        number = conn.execute(text("SELECT run_no FROM runs WHERE run_id = 'r-big'")).scalar()
        conn.execute(
            text(
                "INSERT INTO decision_rows (run_no, decision_id, created_at, source, symbol, "
                "action, confidence, order_type, tif, rationale) "
                "SELECT :run, 'd-big-' || g, :at, 'ai', 'AAPL', 'buy', 90, 'market', 'day', '' "
                "FROM generate_series(1, :n) AS g"
            ),
            {"run": number, "at": T0, "n": BIG_RUN},
        )
        # Each order names its decision's row, as the sink writes it (migration 0027).
        conn.execute(
            text(
                "INSERT INTO order_rows (run_no, decision_row, client_order_id, source, symbol, "
                "side, quantity, order_type, tif, outside_rth, created_at) "
                "SELECT run_no, id, 'tp-big-' || substr(decision_id, 7), 'ai', 'AAPL', 'buy', 1, "
                "'market', 'day', false, :at FROM decision_rows WHERE run_no = :run ORDER BY id"
            ),
            {"run": number, "at": T0},
        )
        conn.execute(
            text(
                "INSERT INTO fill_rows (run_no, order_id, execution_id, symbol, side, quantity, "
                "price, commission, multiplier, ts, kind, is_combo) "
                "SELECT run_no, id, 'x-' || id, 'AAPL', 'buy', 1, 100, 0, 1, :at, 'trade', false "
                "FROM order_rows WHERE run_no = :run"
            ),
            {"run": number, "at": T0},
        )
        # Each order judged (its judging names the order's and the decision's rows,
        # migrations 0028 and 0029); the ninth sent and not finished, as a live
        # run's start asks about.
        conn.execute(
            text(
                "INSERT INTO judgement_rows (run_no, order_id, decision_row, ts, verdicts) "
                "SELECT run_no, id, decision_row, :at, '[]' FROM order_rows WHERE run_no = :run"
            ),
            {"run": number, "at": T0},
        )
        conn.execute(
            text(
                "INSERT INTO status_changes (order_id, seq, status, previous, ts, reason) "
                "SELECT id, 1, :submitted, :initialized, :at, '' FROM order_rows "
                "WHERE client_order_id = 'tp-big-9'"
            ),
            {
                "submitted": STATUS_CODES["submitted"],
                "initialized": STATUS_CODES["initialized"],
                "at": T0,
            },
        )
    # Right after a big replay, before PostgreSQL has statistics of the new rows
    # (autovacuum analyzes later), and after. Before, PostgreSQL guesses: it may
    # scan a table once, but never for each row it reads (a lookup of fills by
    # client order id once scanned every fill for each fill). After, every lookup
    # goes through an index.
    _reads_by_index(engine, found, analyzed=False)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    _reads_by_index(engine, found, analyzed=True)


#: The tables of a run's rows, each as large as the run (status changes here are two).
LOOKED_UP = ("fill_rows", "order_rows", "decision_rows", "judgement_rows")


def _scans(node: dict[str, Any], repeated: bool = False) -> list[tuple[str, bool]]:
    """The big tables a PostgreSQL plan (JSON) scans whole, each with whether it
    scans it once for each row of another: under the inner side of a nested loop,
    or in a correlated subplan."""
    found = []
    if node["Node Type"] == "Seq Scan" and node["Relation Name"] in LOOKED_UP:
        found.append((node["Relation Name"], repeated))
    for child in node.get("Plans", []):
        again = repeated or child.get("Parent Relationship") == "SubPlan"
        if node["Node Type"] == "Nested Loop" and child.get("Parent Relationship") == "Inner":
            again = True
        found += _scans(child, again)
    return found


def _reads_by_index(engine: Engine, found: Ledger, *, analyzed: bool) -> None:
    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and any(
            name in statement for name in ("fill", "order", "decision", "judgement", "verdict")
        ):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert [f.client_order_id for f in found.fills("r-big", 3)] == [
            "tp-big-1",
            "tp-big-2",
            "tp-big-3",
        ]
        assert found.recent(50)["fills"][0]["client_order_id"] == f"tp-big-{BIG_RUN}"
        [chain] = found.chains("tp-big-7")
        assert chain["decision"]["decision_id"] == "d-big-7"
        assert [o["order"]["decision_id"] for o in chain["orders"]] == ["d-big-7"]
        assert [f["client_order_id"] for f in chain["orders"][0]["fills"]] == ["tp-big-7"]
        [chain] = found.chains("d-big-8")
        assert [o["order"]["client_order_id"] for o in chain["orders"]] == ["tp-big-8"]
        found.fills("r-a", 20)
        [held] = found.unsettled_of(
            [CID, "tp-big-9", "tp-big-10", "tp-big-11", "tp-big-12", "tp-big-13"], exclude_run="r-a"
        )
        assert (held.intent.client_order_id, held.filled) == ("tp-big-9", 1)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(seen) >= 10
    with engine.connect() as conn:
        for statement, parameters in seen:
            explain = "EXPLAIN (FORMAT JSON) " + statement
            [[[plan]]] = conn.exec_driver_sql(explain, parameters).all()
            scans = _scans(plan["Plan"])
            # Before statistics a table may be scanned once; never once a row.
            assert [t for t, repeated in scans if repeated or analyzed] == [], (statement, plan)
