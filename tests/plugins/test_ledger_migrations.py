"""The ledger's schema moves forward by migrations, and keeps every row it had."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from tradepipe import PersistenceError
from tradepipe.plugins.ledger import db as ledger_db
from tradepipe.plugins.ledger.db import head, open_engine, revision
from tradepipe.plugins.ledger.queries import Ledger

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

ROWS = {
    "runs": "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
    "bars, status) VALUES ('r1', 'ns', '2026-01-02T00:00:00+00:00', 'dev', 'paper', 'csv', "
    "'[\"s\"]', 3, 'completed')",
    "orders": "INSERT INTO orders (run_id, client_order_id, decision_id, source, symbol, side, "
    "quantity, order_type, tif, outside_rth, created_at) VALUES ('r1', 'tp-1', 'd1', 's', "
    "'AAPL', 'buy', '10', 'market', 'day', false, '2026-01-02T00:00:00+00:00')",
    "fills": "INSERT INTO fills (run_id, execution_id, client_order_id, decision_id, symbol, "
    "side, quantity, price, commission, multiplier, ts) VALUES ('r1', 'e1', 'tp-1', 'd1', "
    "'AAPL', 'buy', '10', '101.25', '1', '1', '2026-01-02T00:00:01+00:00')",
}


def _at_revision(url: str, rev: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), rev)
        for sql in ROWS.values():
            conn.execute(text(sql))
    engine.dispose()


def _check_rows_kept(url: str) -> None:
    engine = open_engine(url)
    try:
        assert revision(engine) == head()
        assert "instrument" in {c["name"] for c in inspect(engine).get_columns("orders")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT status, bars FROM runs")).all() == [("completed", 3)]
            assert conn.execute(text("SELECT client_order_id, instrument FROM orders")).all() == [
                ("tp-1", None)
            ]
            [(execution, price, kind)] = conn.execute(
                text("SELECT execution_id, price, kind FROM fills")
            )
            assert (execution, str(price), kind) == ("e1", "101.25", "trade")
    finally:
        engine.dispose()


def test_an_old_schema_with_data_is_upgraded_and_loses_nothing(ledger_url: str) -> None:
    url = ledger_url
    _at_revision(url, "0001")
    _check_rows_kept(url)


def test_a_ledger_from_before_migrations_is_recognised_and_upgraded(ledger_url: str) -> None:
    url = ledger_url
    _at_revision(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as the first versions left it
    engine.dispose()
    _check_rows_kept(url)


def test_opening_an_up_to_date_ledger_changes_nothing(ledger_url: str) -> None:
    url = ledger_url
    engine = open_engine(url)
    assert ledger_db.upgrade(engine) is None
    engine.dispose()


def test_a_ledger_newer_than_this_tradepipe_is_refused(ledger_url: str) -> None:
    url = ledger_url
    open_engine(url).dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(PersistenceError, match=r"newer than this tradepipe knows"):
        open_engine(url)


def test_migrations_match_the_tables_the_code_writes(ledger_url: str) -> None:
    """Upgrading an empty database gives exactly the schema in ledger_schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from tradepipe.plugins.ledger.schema import metadata

    engine = open_engine(ledger_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_db_commands_show_and_apply_the_upgrade(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner
    from tradepipe.cli import cli
    from tradepipe.cli.context import AppContext

    _at_revision(ledger_url, "0001")
    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{ledger_url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def tp(*args: str) -> str:
        result = CliRunner().invoke(
            cli, list(args), obj=AppContext(settings_path="settings.toml"), catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    assert json.loads(tp("db", "current", "--json"))["revision"] == "0001"
    assert f"0001 -> {head()}" in tp("db", "upgrade")
    assert json.loads(tp("db", "current", "--json"))["up_to_date"] is True
    assert "nothing to do" in tp("db", "upgrade")
    _check_rows_kept(ledger_url)


def _tp(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``tradepipe`` against the ledger at ``url``: (exit code, stdout, stderr)."""
    from click.testing import CliRunner
    from tradepipe.cli import cli
    from tradepipe.cli.context import AppContext

    (tmp_path / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{url}"\n[default.logging]\nfile = false\n'
    )
    monkeypatch.chdir(tmp_path)

    def tp(*args: str, answer: str | None = None) -> tuple[int, str, str]:
        result = CliRunner().invoke(
            cli, list(args), input=answer, obj=AppContext(settings_path="settings.toml")
        )
        return result.exit_code, result.stdout, result.stderr

    return tp


def test_db_downgrade_takes_the_ledger_back_for_an_older_tradepipe(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``db downgrade --to`` says what it undoes and asks first; refused, unknown or
    not older, it changes nothing; done, ``db current`` says the ledger is behind
    and ``db upgrade`` brings it back with every verdict as it was."""
    engine = _judge_in_a_new_run(ledger_url)
    with engine.connect() as conn:
        before = _verdict_rows(conn)
    tp = _tp(tmp_path, ledger_url, monkeypatch)

    code, out, _err = tp("db", "downgrade", "--to", "0019", answer="n\n")
    assert code == 1
    assert f"schema {head()} -> 0019 undoes" in out
    # The migrations' own words, without their docstrings' markup.
    assert "0020  What a run's verdicts repeat is written once: verdict_heads." in out
    assert revision(engine) == head()
    # Not a schema it knows: a usage error (exit 2), naming the range it knows.
    for target in ["0099", "19", ""]:
        code, _out, err = tp("db", "downgrade", "--to", target, "--yes")
        assert code == 2, err
        assert err.startswith(f"error: --to {target!r}: not a schema this tradepipe knows (0001 to")
    code, out, _err = tp("db", "downgrade", "--to", head(), "--yes")
    assert (code, out) == (0, f"{ledger_url}: schema {head()} already; nothing to do\n")
    assert revision(engine) == head()

    code, out, _err = tp("db", "downgrade", "--to", "0019", answer="y\n")
    assert code == 0, out
    assert f"schema {head()} -> 0019, done: a tradepipe whose newest schema is 0019" in out
    assert revision(engine) == "0019"
    code, _out, err = tp("db", "downgrade", "--to", "0020", "--yes")
    assert (code, "--to 0020 is newer than the ledger's schema (0019)" in err) == (2, True), err
    code, out, _err = tp("db", "current", "--json")
    assert (code, json.loads(out)["state"]) == (0, "behind")
    assert tp("db", "upgrade")[0] == 0
    with engine.connect() as conn:
        assert _verdict_rows(conn) == before
    engine.dispose()


def test_db_downgrade_waits_for_a_run_still_going(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradepipe.process import this_process

    open_engine(ledger_url).dispose()
    me = this_process()
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text(ROWS["runs"].replace("'completed'", "'running'")))
        conn.execute(
            text("UPDATE runs SET host = :host, pid = :pid, pid_started = :started"),
            {"host": me.host, "pid": me.pid, "started": me.started},
        )
    tp = _tp(tmp_path, ledger_url, monkeypatch)
    code, _out, err = tp("db", "downgrade", "--to", "0019", "--yes")
    assert (code, "run r1 is still running against" in err) == (1, True), err
    assert revision(engine) == head()
    engine.dispose()


def test_db_current_says_a_ledger_from_a_newer_tradepipe_is_ahead(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_engine(ledger_url).dispose()
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    tp = _tp(tmp_path, ledger_url, monkeypatch)
    code, out, _err = tp("db", "current")
    assert code == 1
    assert "schema 0099 (newest" in out
    assert "made by a newer tradepipe, which this one cannot use; upgrade tradepipe" in out
    assert f"take the ledger back with the newer one: `tradepipe db downgrade --to {head()}`" in out
    code, out, _err = tp("db", "current", "--json")
    assert (code, json.loads(out)["state"], json.loads(out)["up_to_date"]) == (1, "ahead", False)
    # Every other command refuses it, saying how to go back; so does a downgrade.
    code, _out, err = tp("ledger", "runs")
    assert code == 1
    assert "newer than this tradepipe knows" in err
    assert f"take the ledger back with the newer one: `tradepipe db downgrade --to {head()}`" in err
    code, _out, err = tp("db", "downgrade", "--to", "0019", "--yes")
    assert code == 1
    assert "schema 0099 was made by a newer tradepipe, which this one does not know" in err


#: Verdict rows as schema 0017 held them, in the order written: run r1's chain of
#: two guards and three filters that passed with a reduction; run r2 writing in
#: between (runs share a ledger and interleave by batches); r1 judging the same
#: decision again at the same time, denied by the second filter; and a rule's
#: denial on its own. (id, run, decision, order, seq, filter, outcome, reason,
#: before, after, figures, minute)
OLD_VERDICTS = [
    (1, "r1", "d1", "tp-1", 0, "stale_price", "pass", "price is 3 s old", "10", "10", "{}", 0),
    (2, "r1", "d1", "tp-1", 0, "order_rules", "pass", "tick", "10", "10", "{}", 0),
    (3, "r1", "d1", "tp-1", 1, "min_confidence", "pass", "", "10", "10", '{"c":90.0}', 0),
    (4, "r2", "d9", "tp-9", 1, "min_confidence", "deny", 'below "70"', "5", "0", "{}", 0),
    (5, "r1", "d1", "tp-1", 2, "max_position_value", "reduce", "cap", "10", "6.50", '{"b":"1"}', 0),
    (6, "r1", "d1", "tp-1", 3, "buying_power", "pass", "", "6.50", "6.50", "{}", 0),
    (7, "r1", "d1", "tp-1", 1, "min_confidence", "pass", "", "10", "10", "{}", 0),
    (8, "r1", "d1", "tp-1", 2, "max_position_value", "deny", "over", "10", "0", "{}", 0),
    (9, "r1", "d2", "tp-2", 0, "duplicate", "deny", "already sent", "0", "0", "{}", 1),
]


def _verdicts_at_0017(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), "0017")
        conn.execute(text(ROWS["runs"]))
        conn.execute(text(ROWS["runs"].replace("'r1'", "'r2'")))
        for row in OLD_VERDICTS:
            *values, minute = row
            conn.execute(
                text(
                    "INSERT INTO verdicts (id, run_id, decision_id, client_order_id, seq, "
                    "filter, outcome, reason, quantity_before, quantity_after, figures, ts) "
                    "VALUES (:id, :run, :d, :cid, :seq, :f, :o, :r, :qb, :qa, :fig, :ts)"
                ),
                dict(
                    zip(
                        ["id", "run", "d", "cid", "seq", "f", "o", "r", "qb", "qa", "fig"],
                        values,
                        strict=True,
                    ),
                    ts=f"2026-01-02T00:0{minute}:00+00:00",
                ),
            )
    engine.dispose()


def _verdict_rows(conn: Any) -> list[tuple[Any, ...]]:
    """The verdicts as their old columns give them, each run's in the order they
    were given (a run's order is what is kept; runs that wrote at the same time
    interleaved by batches)."""
    rows = conn.execute(
        text(
            "SELECT run_id, decision_id, client_order_id, seq, filter, outcome, reason, "
            "quantity_before, quantity_after, figures, ts FROM verdicts ORDER BY id"
        )
    ).all()
    got = [
        (*row[:7], str(row[7]), str(row[8]), json.loads(row[9]), _instant(row[10])) for row in rows
    ]
    return sorted(got, key=lambda row: row[0])  # stable: by run, in order within one


def _instant(ts: Any) -> dt.datetime:
    return ts if isinstance(ts, dt.datetime) else dt.datetime.fromisoformat(ts)


def _upgraded_reads(url: str, before: Any, read: Callable[[Any], Any]) -> None:
    """Upgraded to the latest schema, the ledger ``read`` gives ``before``."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            assert read(conn) == before
    finally:
        engine.dispose()


def test_verdicts_become_one_row_per_judging_and_read_as_before(ledger_url: str) -> None:
    url = ledger_url
    _verdicts_at_0017(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        before = _verdict_rows(conn)
    engine.dispose()
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            # The view gives back every verdict, in the order they were given.
            assert _verdict_rows(conn) == before
            judgings = conn.execute(
                text(
                    "SELECT id, run_id, decision_id, denied_by, verdicts "
                    "FROM judgements ORDER BY id"
                )
            ).all()
        assert [(j[0], j[1], j[2], j[3], len(json.loads(j[4]))) for j in judgings] == [
            (1, "r1", "d1", None, 5),  # the guards and filters of one chain
            (4, "r2", "d9", "min_confidence", 1),
            (7, "r1", "d1", "max_position_value", 2),  # judged again: a row of its own
            (9, "r1", "d2", "duplicate", 1),
        ]
        assert json.loads(judgings[0][4])[3] == [
            2,
            "max_position_value",
            "reduce",
            "cap",
            "10",
            "6.50",
            {"b": "1"},
        ]
        summary = Ledger(engine, "test").summary("r1")
        assert summary["not_sent"] == [
            {"by": "duplicate", "count": 1, "reason": "already sent"},
            {"by": "max_position_value", "count": 1, "reason": "over"},
        ]
        # The sink's next judging takes the next id, after the converted ones.
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO judgement_rows (run_no, decision_id, client_order_id, ts, "
                    "verdicts) VALUES ((SELECT run_no FROM runs WHERE run_id = 'r2'), 'd3', "
                    "'tp-3', :ts, '[]')"
                ),
                {"ts": _ts_value(engine, "2026-01-02T00:05:00+00:00")},
            )
            assert conn.execute(text("SELECT MAX(id) FROM judgements")).scalar() == 10
    finally:
        engine.dispose()


def _ts_value(engine: Any, iso: str) -> Any:
    value = dt.datetime.fromisoformat(iso)
    return value if engine.dialect.name == "postgresql" else iso


def test_verdicts_go_back_to_their_rows_on_a_downgrade(ledger_url: str) -> None:
    url = ledger_url
    _verdicts_at_0017(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        before = _verdict_rows(conn)
    open_engine(url).dispose()
    with engine.begin() as conn:
        command.downgrade(ledger_db._config(conn), "0017")
    try:
        with engine.connect() as conn:
            assert _verdict_rows(conn) == before
            assert "judgements" not in inspect(conn).get_table_names()
            names = {i["name"] for i in inspect(conn).get_indexes("verdicts")}
            assert {"ix_verdicts_decision", "ix_verdicts_denied"} <= names
            if engine.dialect.name == "postgresql":
                assert inspect(conn).get_pk_constraint("verdicts")["name"] == "verdicts_pkey"
    finally:
        engine.dispose()
    # And up again: the same verdicts through the view.
    _upgraded_reads(url, before, _verdict_rows)


def test_verdicts_json_would_refuse_are_converted_and_read_back(ledger_url: str) -> None:
    """Figures whose text the databases' JSON functions would refuse or change (a float
    that is not finite, escapes, text that is not JSON) come back as they were; a
    reason holding a NUL (SQLite kept it) comes back with U+FFFD for it."""
    odd = [
        '{"max_age_seconds":Infinity,"age":0.0}',
        '{"y":NaN}',
        '{"why":"a\\u0000b","where":"caf\\u00e9"}',
        '{"say "hi"":1}',
    ]
    sqlite = ledger_url.startswith("sqlite")
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), "0017")
        conn.execute(text(ROWS["runs"]))
        for n, figures in enumerate(odd, start=1):
            conn.execute(
                text(
                    "INSERT INTO verdicts (run_id, decision_id, client_order_id, seq, filter, "
                    "outcome, reason, quantity_before, quantity_after, figures, ts) VALUES "
                    "('r1', 'd1', 'tp-1', :seq, 'f', 'pass', :reason, '1', '1', :figures, :ts)"
                ),
                {
                    "seq": n,
                    "reason": "nul \x00 here" if sqlite and n == 1 else "",
                    "figures": figures,
                    "ts": _ts_value(engine, "2026-01-02T00:00:00+00:00"),
                },
            )
    engine.dispose()
    engine = open_engine(ledger_url)
    try:
        back = Ledger(engine, "test").verdicts("r1")
        assert [v.figures for v in back] == odd
        assert back[0].reason == ("nul \ufffd here" if sqlite else "")
    finally:
        engine.dispose()


def _run(run_id: str, at: dt.datetime) -> Any:
    from tradepipe import RunInfo

    return RunInfo(
        run_id=run_id,
        namespace=run_id,
        started_at=at,
        env="test",
        broker="paper",
        feed="list",
        strategies=("s",),
    )


def _judge_in_a_new_run(url: str) -> Any:
    """A run of today's sink judges two decisions: a pass then a cut, a pass then a
    denial (its ledger brought to the latest schema first, as a run does). Returns an
    engine on the ledger, which does not migrate it."""
    from tradepipe.plugins.ledger.sink import SqlSink
    from tradepipe.risk import Outcome, RiskVerdict

    at = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    run = _run("r3", at)

    def verdict(decision: str, seq: int, name: str, outcome: str, after: str) -> RiskVerdict:
        return RiskVerdict(
            decision_id=decision,
            client_order_id="tp-" + decision,
            filter=name,
            seq=seq,
            outcome=Outcome(outcome),
            reason="" if outcome == "pass" else "cap",
            quantity_before=Decimal(7),
            quantity_after=Decimal(after),
            figures={"price": Decimal("1.50")},
            ts=at,
        )

    sink = SqlSink(SqlSink.Settings(url=url, writer="inline"))
    sink.open(run)
    for v in [
        verdict("d5", 1, "min_confidence", "pass", "7"),
        verdict("d5", 2, "max_position_value", "reduce", "5"),
        verdict("d6", 1, "min_confidence", "pass", "7"),
        verdict("d6", 2, "max_position_value", "deny", "0"),
    ]:
        sink.record_verdict(v)
    sink.close(run, bars=0, status="completed")
    return create_engine(url)


def test_verdicts_naming_heads_are_written_out_again_on_a_downgrade(ledger_url: str) -> None:
    """Migration 0020 converts nothing: verdicts written out in full read as before,
    beside new ones that name their run's heads. A downgrade to 0019 writes every
    verdict out in full again, and the view of 0018 reads them all the same."""
    url = ledger_url
    _verdicts_at_0017(url)
    engine = _judge_in_a_new_run(url)
    try:
        with engine.connect() as conn:
            before = _verdict_rows(conn)
            lengths = conn.execute(
                text("SELECT run_id, verdicts FROM judgements ORDER BY id")
            ).all()
        assert {len(item) for run, items in lengths for item in json.loads(items)} == {2, 4, 7}
        assert [row[:9] for row in before if row[0] == "r3"] == [
            ("r3", "d5", "tp-d5", 1, "min_confidence", "pass", "", "7", "7"),
            ("r3", "d5", "tp-d5", 2, "max_position_value", "reduce", "cap", "7", "5"),
            ("r3", "d6", "tp-d6", 1, "min_confidence", "pass", "", "7", "7"),
            ("r3", "d6", "tp-d6", 2, "max_position_value", "deny", "cap", "7", "0"),
        ]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0019")
        with engine.connect() as conn:
            assert _verdict_rows(conn) == before
            items = conn.execute(text("SELECT verdicts FROM judgements")).scalars()
            assert {len(item) for row in items for item in json.loads(row)} == {7}
            assert "quantity" not in {c["name"] for c in inspect(conn).get_columns("judgements")}
            assert "verdict_heads" not in inspect(conn).get_table_names()
            names = {i["name"] for i in inspect(conn).get_indexes("judgements")}
            assert {"ix_judgements_decision", "ix_judgements_denied"} <= names
    finally:
        engine.dispose()
    # And up again: the same verdicts through the view.
    _upgraded_reads(url, before, _verdict_rows)


def test_figure_names_go_back_into_each_verdict_on_a_downgrade(ledger_url: str) -> None:
    """Migration 0024: a head names its verdicts' figures and they write values only.
    Verdicts written before it keep their objects and read as before; a downgrade to
    0023 writes each object out again, as the text it was, and drops the names."""
    from tradepipe.plugins.ledger.sink import SqlSink
    from tradepipe.risk import Outcome, RiskVerdict

    _verdicts_at_0017(ledger_url)  # verdicts from before heads, in full
    engine = _judge_in_a_new_run(ledger_url)  # naming heads, and now their figures
    at = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    odd = {"price": Decimal("1.50"), "x": 0.1 + 0.2, "big": 10**20, "on": True, "no": None}
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(_run("r4", at))
    for n, figures in enumerate([odd, {**odd, "x": math.nan}, odd]):
        sink.record_verdict(
            RiskVerdict(
                decision_id=f"d{n}",
                client_order_id=f"tp-{n}",
                filter="max_position_value",
                seq=1,
                outcome=Outcome.PASS,
                reason="",
                quantity_before=Decimal(7),
                quantity_after=Decimal(7),
                figures=figures,
                ts=at,
            )
        )
    sink.close(_run("r4", at), bars=0, status="completed")
    read = "SELECT run_id, decision_id, seq, filter, figures FROM verdicts ORDER BY run_id, id"
    try:
        with engine.connect() as conn:
            before = conn.execute(text(read)).all()
            named = conn.execute(
                text("SELECT run_id, figures FROM verdict_heads WHERE figures IS NOT NULL")
            ).all()
        # On SQLite only: PostgreSQL's verdicts keep their objects.
        assert sorted(set(named)) == (
            []
            if ledger_url.startswith("postgresql")
            else [("r3", '["price"]'), ("r4", '["price","x","big","on","no"]')]
        )
        assert [row.figures for row in before if row.run_id == "r4"] == [
            '{"price":"1.50","x":0.30000000000000004,"big":100000000000000000000,'
            '"on":true,"no":null}',
            '{"price":"1.50","x":NaN,"big":100000000000000000000,"on":true,"no":null}',
            '{"price":"1.50","x":0.30000000000000004,"big":100000000000000000000,'
            '"on":true,"no":null}',
        ]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0023")
        with engine.connect() as conn:
            assert conn.execute(text(read)).all() == before
            assert "figures" not in {c["name"] for c in inspect(conn).get_columns("verdict_heads")}
            stored = conn.execute(text("SELECT verdicts FROM judgements WHERE run_id = 'r4'"))
            assert all(
                isinstance(item[1], dict | str) for (items,) in stored for item in json.loads(items)
            )
    finally:
        engine.dispose()
    # And up again: the same verdicts through the view.
    _upgraded_reads(ledger_url, before, lambda conn: conn.execute(text(read)).all())


def test_a_downgrade_on_sqlite_before_3_35_copies_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no DROP COLUMN: the table is copied, and its indexes,
    the partial one of denials too, are made again."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = _judge_in_a_new_run(url)
    try:
        with engine.connect() as conn:
            before = _verdict_rows(conn)
        monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0019")
        with engine.connect() as conn:
            assert _verdict_rows(conn) == before
            assert "quantity" not in {c["name"] for c in inspect(conn).get_columns("judgements")}
            indexes = dict(
                conn.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'judgements'")
                ).all()
            )
        assert "WHERE denied_by IS NOT NULL" in indexes["ix_judgements_denied"]
        assert "ix_judgements_decision" in indexes
    finally:
        engine.dispose()


def test_a_downgrade_writes_out_judgings_by_the_ten_thousand(ledger_url: str) -> None:
    """More judgings than one statement rewrites: every one is written out."""
    from tradepipe.plugins.ledger.sink import SqlSink
    from tradepipe.risk import Outcome

    at = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    run = _run("r4", at)
    judgings = 10_001  # the downgrade's CHUNK and one
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(run)
    for n in range(judgings):
        sink.record_verdict_values(
            f"d{n}",
            f"tp-{n}",
            "min_confidence",
            1,
            Outcome.PASS,
            "",
            Decimal(n + 1),
            Decimal(n + 1),
            {},
            at,
        )
    sink.close(run, bars=0, status="completed")
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0019")
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT decision_id, verdicts FROM judgements ORDER BY id")
            ).all()
        assert len(rows) == judgings
        assert [(d, json.loads(items)) for d, items in (rows[0], rows[-1])] == [
            ("d0", [[1, "min_confidence", "pass", "", "1", "1", {}]]),
            ("d10000", [[1, "min_confidence", "pass", "", "10001", "10001", {}]]),
        ]
    finally:
        engine.dispose()


def test_a_missing_head_reads_as_nothing_and_stops_a_downgrade(ledger_url: str) -> None:
    """A verdict naming a head the ledger lost (deleted by hand) gives NULLs, never
    another element read as its filter or reason, nor its figures' values without
    their names; a downgrade then refuses, and changes nothing."""
    engine = _judge_in_a_new_run(ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM verdict_heads WHERE n = 0"))
        with engine.connect() as conn:
            first = conn.execute(
                text("SELECT seq, filter, outcome, reason, figures FROM verdicts ORDER BY id")
            ).first()
            assert first is not None
            # On SQLite its figures are values without their names: none either.
            figures = '{"price":"1.50"}' if ledger_url.startswith("postgresql") else None
            assert tuple(first) == (None, None, None, None, figures)
            stored = conn.execute(text("SELECT verdicts FROM judgements ORDER BY id")).all()
        refused = pytest.raises(RuntimeError, match=r"names verdict head 0 of its run")
        with refused:  # as `db downgrade` does: one transaction, DDL and all
            ledger_db.downgrade(engine, "0019")
        assert revision(engine) == head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT verdicts FROM judgements ORDER BY id")).all() == stored
    finally:
        engine.dispose()


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)  # only SQLite's hold lists
def test_a_lost_head_of_figure_names_stops_a_downgrade_to_0023(ledger_url: str) -> None:
    """A verdict whose figures are a list of values, its head (which held their
    names) deleted by hand: taking back 0024 cannot give the values their names, so
    it refuses and changes nothing (the older view would show bare values)."""
    engine = _judge_in_a_new_run(ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM verdict_heads WHERE figures IS NOT NULL"))
            stored = conn.execute(text("SELECT verdicts FROM judgements ORDER BY id")).all()
        refused = pytest.raises(RuntimeError, match=r"for its figures' names, which the ledger")
        with refused:  # as `db downgrade` does: one transaction, DDL and all
            ledger_db.downgrade(engine, "0023")
        assert revision(engine) == head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT verdicts FROM judgements ORDER BY id")).all() == stored
    finally:
        engine.dispose()


def test_change_times_left_to_their_order_are_written_in_on_a_downgrade(ledger_url: str) -> None:
    """Migration 0021: a change at its order's time is written without it (SQLite);
    taken back to 0020, every change holds its time again, and ``order_events``
    reads the same at both."""
    from tradepipe import OrderIntent
    from tradepipe.orders import Order, OrderStatus, Side
    from tradepipe.plugins.ledger.sink import SqlSink

    at = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    run = _run("r5", at)
    order = Order.from_intent(
        OrderIntent(
            client_order_id="tp-5",
            decision_id="d5",
            source="s",
            symbol="AAPL",
            side=Side.BUY,
            quantity=Decimal(1),
            created_at=at,
        )
    )
    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    sink.open(run)
    sink.record_order(order)
    for status, ts in [
        (OrderStatus.SUBMITTED, at),
        (OrderStatus.ACCEPTED, at),
        (OrderStatus.CANCELED, at + dt.timedelta(seconds=1)),
    ]:
        sink.record_order_event(order.transition(status, ts))
    sink.close(run, bars=0, status="completed")

    def events(conn: Any) -> list[tuple[Any, ...]]:
        rows = conn.execute(
            text(
                "SELECT id, run_id, client_order_id, seq, status, ts FROM order_events ORDER BY id"
            )
        ).all()
        return [(*row[:5], _instant(row[5])) for row in rows]

    def blank(conn: Any) -> int:
        if engine.dialect.name == "postgresql":
            return 0  # times are timestamps there: never written empty
        return int(conn.execute(text("SELECT COUNT(*) FROM status_changes WHERE ts = ''")).scalar())

    engine = create_engine(ledger_url)
    try:
        with engine.connect() as conn:
            before = events(conn)
            assert blank(conn) == (0 if engine.dialect.name == "postgresql" else 2)
        assert [row[4:] for row in before] == [
            ("submitted", at),
            ("accepted", at),
            ("canceled", at + dt.timedelta(seconds=1)),
        ]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0020")
        with engine.connect() as conn:
            assert (_without_ids(events(conn)), blank(conn)) == (_without_ids(before), 0)
    finally:
        engine.dispose()
    _upgraded_reads(ledger_url, before, events)


#: Status changes at 0018: (id, run, client order id, decision, seq, status).
OLD_EVENTS = [
    (1, "r1", "tp-1", "d1", 1, "submitted"),
    (2, "r2", "tp-2", "d2", 1, "submitted"),
    (3, "r1", "tp-1", "d1", 2, "accepted"),
    (4, "r1", "tp-1", "d1", 3, "filled"),
    # One naming another decision than its order's: the view gives the order's.
    (5, "r2", "tp-2", "d-other", 2, "accepted"),
    (6, "r2", "tp-2", "d2", 3, "partially_filled"),
    # No order row for it, and the highest id: new changes must come after it.
    (8, "r1", "tp-x", "dx", 1, "submitted"),
]


def _events_at_0018(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), "0018")
        conn.execute(text(ROWS["runs"]))
        conn.execute(text(ROWS["runs"].replace("'r1'", "'r2'")))
        conn.execute(text(ROWS["orders"]))
        conn.execute(text(ROWS["orders"].replace("'r1', 'tp-1', 'd1'", "'r2', 'tp-2', 'd2'")))
        for id_, run, cid, decision, seq, status in OLD_EVENTS:
            conn.execute(
                text(
                    "INSERT INTO order_events (id, run_id, client_order_id, decision_id, seq, "
                    "status, previous, ts, reason, broker_order_id) VALUES (:id, :run, :cid, "
                    ":d, :seq, :status, NULL, :ts, :reason, :broker)"
                ),
                {
                    "id": id_,
                    "run": run,
                    "cid": cid,
                    "d": decision,
                    "seq": seq,
                    "status": status,
                    "ts": _ts_value(engine, f"2026-01-02T00:0{id_}:00+00:00"),
                    "reason": "why" if id_ == 3 else "",
                    "broker": "B7" if id_ == 4 else None,
                },
            )
    engine.dispose()


def _event_rows(conn: Any) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        text(
            "SELECT id, run_id, client_order_id, decision_id, seq, status, previous, ts, "
            "reason, broker_order_id FROM order_events ORDER BY id"
        )
    ).all()
    return [(*row[:7], _instant(row[7]), *row[8:]) for row in rows]


def _without_ids(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Status changes as read (an id first, then the run and the client order id),
    but their ids, by run and order, each order's in the order read. A change's id
    is made of its key since migration 0030, which leaves the ids before it
    behind, and a downgrade past it numbers the changes anew."""
    return sorted((row[1:] for row in rows), key=lambda row: (row[0], row[1]))


def _event_keys(conn: Any) -> list[tuple[Any, ...]]:
    """:func:`_event_rows` but the ids."""
    return _without_ids(_event_rows(conn))


def _as_read_after_0019(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The change naming another decision than its order's is read with its order's."""
    return [(*row[:3], "d2", *row[4:]) if row[0] == 5 else row for row in rows]


def test_status_changes_are_keyed_by_their_order_and_read_as_before(ledger_url: str) -> None:
    _events_at_0018(ledger_url)
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        before = _event_rows(conn)
    engine.dispose()
    assert len(before) == len(OLD_EVENTS)
    before = _as_read_after_0019(before)
    engine = create_engine(ledger_url)
    try:
        # The ids, as 0019 to 0029 keep them (0030 makes them of each change's key).
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0029")
        with engine.connect() as conn:
            assert _event_rows(conn) == before
            changes = conn.execute(
                text(
                    "SELECT status_changes.id, orders.client_order_id, seq FROM status_changes "
                    "JOIN orders ON orders.id = order_id ORDER BY status_changes.id"
                )
            ).all()
            assert [tuple(c) for c in changes] == [
                (1, "tp-1", 1),
                (2, "tp-2", 1),
                (3, "tp-1", 2),
                (4, "tp-1", 3),
                (5, "tp-2", 2),
                (6, "tp-2", 3),
            ]
            unmatched = conn.execute(
                text("SELECT id FROM order_events_unmatched ORDER BY id")
            ).scalars()
            assert list(unmatched) == [8]
        # The sink's next change takes the next id, after the converted ones.
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO status_changes (order_id, seq, status, ts, reason) "
                    "VALUES ((SELECT id FROM orders WHERE client_order_id = 'tp-2'), 4, "
                    "7, :ts, '')"  # filled (migration 0023)
                ),
                {"ts": _ts_value(engine, "2026-01-02T00:09:00+00:00")},
            )
            ids = conn.execute(text("SELECT id FROM order_events ORDER BY id")).scalars()
            assert list(ids) == [1, 2, 3, 4, 5, 6, 8, 9]
    finally:
        engine.dispose()
    engine = open_engine(ledger_url)
    try:
        with engine.connect() as conn:
            assert _event_keys(conn)[:-1] == _without_ids(before)
            ids = conn.execute(text("SELECT id FROM order_events")).scalars().all()
            assert len(set(ids)) == len(ids) == 8
        found = Ledger(engine, "test")
        assert [e.status for e in found.order_events("r1", "tp-1")] == [
            "submitted",
            "accepted",
            "filled",
        ]
        # r1: tp-1 filled; tp-x, kept without an order row, submitted.
        orders = found.summary("r1")["orders"]
        assert (orders["filled"], orders["open"], orders["submitted"]) == (1, 1, 2)
        # r2: tp-2 filled by the change written above.
        assert found.summary("r2")["orders"]["filled"] == 1
    finally:
        engine.dispose()


def test_status_changes_go_back_to_their_rows_on_a_downgrade(ledger_url: str) -> None:
    _events_at_0018(ledger_url)
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        before = _event_rows(conn)
    before = _as_read_after_0019(before)
    open_engine(ledger_url).dispose()
    with engine.begin() as conn:
        command.downgrade(ledger_db._config(conn), "0018")
    try:
        with engine.connect() as conn:
            # Numbered anew by 0030's downgrade, after the one kept without its order.
            assert _event_keys(conn) == _without_ids(before)
            ids = conn.execute(text("SELECT id FROM order_events ORDER BY id")).scalars()
            assert list(ids) == [8, 9, 10, 11, 12, 13, 14]
            tables = inspect(conn).get_table_names()
            assert "status_changes" not in tables and "order_events_unmatched" not in tables
            [unique] = inspect(conn).get_unique_constraints("order_events")
            assert unique["column_names"] == ["run_id", "client_order_id", "seq"]
            if engine.dialect.name == "postgresql":
                assert unique["name"] == "uq_order_events_seq"
                pk = inspect(conn).get_pk_constraint("order_events")["name"]
                assert pk == "order_events_pkey"
    finally:
        engine.dispose()
    # And up again: the same changes through the view.
    _upgraded_reads(ledger_url, _without_ids(before), _event_keys)


@pytest.mark.parametrize(
    "command",
    [("db", "current"), ("db", "current", "--json"), ("db", "upgrade"), ("ledger", "runs")],
)
def test_a_ledger_that_cannot_be_reached_or_opened_is_one_clear_line(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    from sqlalchemy.engine import make_url

    missing = make_url(postgres_url).set(database="no_such_ledger", password="pw-not-shown")
    no_driver = make_url(postgres_url).set(drivername="postgresql+pg8000")
    for url, said in (
        (missing, 'database "no_such_ledger" does not exist'),
        (no_driver, "its driver pg8000 is not installed"),
    ):
        tp = _tp(tmp_path, url.render_as_string(hide_password=False), monkeypatch)
        code, out, err = tp(*command)
        assert code == 1, err
        assert err.startswith("error: cannot open the ledger at ") and said in err
        assert len(err.strip().splitlines()) == 1, err  # no link to a background page
        assert "internal error" not in err and "pw-not-shown" not in err
        if "--json" in command:  # a script reading the JSON still gets JSON
            answer = json.loads(out)
            assert (answer["state"], answer["revision"], answer["up_to_date"]) == (
                "error",
                None,
                False,
            )
            assert said in answer["error"] and "pw-not-shown" not in out


#: What the four tables hold at 0021, as rows of their views give them back.
_VIEWS = {
    "decisions": "id, run_id, decision_id, created_at, action, quantity",
    "judgements": "id, run_id, decision_id, client_order_id, denied_by, verdicts",
    "orders": "id, run_id, client_order_id, decision_id, quantity, created_at",
    "fills": "id, run_id, execution_id, client_order_id, price, ts",
}


def _runs_at_0021(url: str, orphan: bool = True) -> None:
    """Two runs' decisions, judgings, orders, changes and fills, interleaved (runs
    share a ledger), r2 started first; and (``orphan``) a fill whose run has no row."""
    engine = create_engine(url)
    ts = "'2026-01-02T00:00:00+00:00'"
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), "0021")
        conn.execute(text(ROWS["runs"]))
        conn.execute(text(ROWS["runs"].replace("'r1'", "'r2'").replace("2026-01-02", "2026-01-01")))
        for n, run in [(1, "r1"), (2, "r2"), (3, "r1")]:
            conn.execute(
                text(
                    "INSERT INTO decisions (run_id, decision_id, created_at, source, symbol, "
                    "action, confidence, quantity, order_type, tif, rationale) VALUES "
                    f"('{run}', 'd{n}', {ts}, 's', 'AAPL', 'buy', 90, '{n}', 'market', 'day', '')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO judgements (run_id, decision_id, client_order_id, ts, "
                    f"denied_by, verdicts) VALUES ('{run}', 'd{n}', 'tp-{n}', {ts}, "
                    f"{'NULL' if n != 2 else chr(39) + 'max_position_value' + chr(39)}, '[]')"
                )
            )
            if n != 2:
                conn.execute(
                    text(
                        ROWS["orders"]
                        .replace("'r1', 'tp-1', 'd1'", f"'{run}', 'tp-{n}', 'd{n}'")
                        .replace("'10'", f"'{n}0'")
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO status_changes (order_id, seq, status, ts, reason) "
                        f"SELECT id, 1, 'submitted', {ts}, '' FROM orders "
                        f"WHERE client_order_id = 'tp-{n}'"
                    )
                )
                conn.execute(
                    text(
                        ROWS["fills"]
                        .replace("'r1', 'e1', 'tp-1', 'd1'", f"'{run}', 'e{n}', 'tp-{n}', 'd{n}'")
                        .replace("'101.25'", f"'10{n}.25'")
                    )
                )
        if orphan:
            conn.execute(text(ROWS["fills"].replace("'r1', 'e1'", "'r9', 'e9'")))
    engine.dispose()


def _run_rows(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    got = {}
    for view, columns in _VIEWS.items():
        rows = conn.execute(text(f"SELECT {columns} FROM {view} ORDER BY id")).all()
        got[view] = [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in rows]
    events = conn.execute(
        text("SELECT id, run_id, client_order_id, status FROM order_events ORDER BY id")
    )
    got["order_events"] = _without_ids([tuple(r) for r in events])
    return got


def test_runs_are_numbered_and_their_rows_read_as_before(ledger_url: str) -> None:
    """Migration 0022: every run gets a number in the order runs started, its rows
    name it by that number, and the views give back every row, id and column as
    the tables did; a run the rows name but ``runs`` lacks gets a row. A run of
    today's sink takes the next number and ids after the converted ones, and a
    downgrade gives back the tables, the new run's rows included."""
    from tradepipe.plugins.ledger.sink import SqlSink

    _runs_at_0021(ledger_url)
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        before = _run_rows(conn)
    engine.dispose()
    assert [r[1] for r in before["decisions"]] == ["r1", "r2", "r1"]
    assert [r[1] for r in before["fills"]] == ["r1", "r1", "r9"]

    engine = open_engine(ledger_url)
    try:
        with engine.connect() as conn:
            assert _run_rows(conn) == before
            runs = conn.execute(
                text("SELECT run_id, run_no, status, namespace, account FROM runs ORDER BY run_no")
            )
            orphaned = "(rows without a run)"
            assert [tuple(r) for r in runs] == [
                ("r2", 1, "completed", "ns", None),
                ("r1", 2, "completed", "ns", None),
                ("r9", 3, "unknown", orphaned, orphaned),
            ]
            numbers = conn.execute(text("SELECT run_no FROM decision_rows ORDER BY id")).all()
            assert numbers == [(2,), (1,), (2,)]
            numbers = conn.execute(text("SELECT run_no FROM fill_rows ORDER BY id")).all()
            assert numbers == [(2,), (2,), (3,)]
        # Made for its rows, r9 is no run a person means by "the last run" (r1 is), and
        # its orders are never settled or followed, as before.
        found = Ledger(engine, "test")
        assert found.run() is not None and found.run().run_id == "r1"  # type: ignore[union-attr]
        assert "r9" not in {u.run_id for u in found.unsettled(None)}
        sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
        at = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
        run = _run("r4", at)
        sink.open(run)
        sink.record_fill(_fill("e4", "tp-4", at))
        sink.close(run, bars=0, status="completed")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT run_no FROM runs WHERE run_id = 'r4'")).scalar() == 4
            after = _run_rows(conn)
        assert after["fills"][:3] == before["fills"]
        assert after["fills"][3][:3] == (4, "r4", "e4")
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0021")
        assert {"decisions", "judgements", "orders", "fills"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as conn:
            assert _run_rows(conn) == after
        assert revision(engine) == "0021"
        assert "run_no" not in {c["name"] for c in inspect(engine).get_columns("runs")}
        with engine.connect() as conn:  # the run made for r9's rows is gone with it
            runs = conn.execute(text("SELECT run_id FROM runs ORDER BY run_id")).scalars()
            assert list(runs) == ["r1", "r2", "r4"]
    finally:
        engine.dispose()
    _upgraded_reads(ledger_url, after, _run_rows)


def _fill(execution_id: str, cid: str, at: dt.datetime) -> Any:
    from tradepipe.orders import Fill, Side

    return Fill(
        execution_id=execution_id,
        client_order_id=cid,
        decision_id="d4",
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal(1),
        price=Decimal("104.25"),
        ts=at,
    )


def test_every_order_status_has_a_number() -> None:
    """A status added to OrderStatus needs its number (and a migration naming it in
    ``order_events``): the sink could not write it."""
    from tradepipe.orders import OrderStatus
    from tradepipe.plugins.ledger.schema import STATUS_CODES

    assert set(STATUS_CODES) == {s.value for s in OrderStatus}
    assert sorted(STATUS_CODES.values()) == list(range(len(STATUS_CODES)))


def _changes(conn: Any) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        text("SELECT id, client_order_id, seq, status, previous FROM order_events ORDER BY id")
    )
    return [tuple(r) for r in rows]


def test_statuses_are_stored_as_numbers_and_read_as_names(ledger_url: str) -> None:
    """Migration 0023: each change's statuses become numbers, ``order_events`` and
    the summary name them as before; a downgrade writes the names back."""
    _runs_at_0021(ledger_url)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        command.upgrade(ledger_db._config(conn), "0022")
        conn.execute(
            text(
                "INSERT INTO status_changes (order_id, seq, status, previous, ts, reason) "
                "SELECT id, 2, 'partially_filled', 'submitted', ts, 'part' FROM status_changes "
                "WHERE seq = 1"
            )
        )
        before = _changes(conn)
    assert [r[3:] for r in before] == [
        ("submitted", None),
        ("submitted", None),
        ("partially_filled", "submitted"),
        ("partially_filled", "submitted"),
    ]
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0023")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT status, previous FROM status_changes ORDER BY id"))
            assert [tuple(r) for r in stored] == [(2, None), (2, None), (6, 2), (6, 2)]
            assert _changes(conn) == before
        summary = Ledger(engine, "test").summary("r1")
        assert summary["orders"]["open"] == 2
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0022")
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT status FROM status_changes ORDER BY id"))
            assert [r[0] for r in stored] == [
                "submitted",
                "submitted",
                "partially_filled",
                "partially_filled",
            ]
            assert _changes(conn) == before
    finally:
        engine.dispose()


def test_a_status_no_tradepipe_wrote_stops_the_upgrade_and_changes_nothing(
    ledger_url: str,
) -> None:
    _runs_at_0021(ledger_url)
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0022")
            conn.execute(text("UPDATE status_changes SET previous = 'parked' WHERE id = 1"))
            before = _changes(conn)
        refused = pytest.raises(PersistenceError, match=r"does not know \('parked'\): nothing was")
        with refused, engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0023")
        assert revision(engine) == "0022"
        with engine.connect() as conn:
            assert _changes(conn) == before
    finally:
        engine.dispose()


_TIMES = {
    "decisions": "created_at",
    "judgements": "ts",
    "verdicts": "ts",
    "orders": "created_at",
    "fills": "ts",
    "order_events": "ts",
}


def _times(conn: Any) -> dict[str, list[Any]]:
    """Every view's times, as the database gives them (text on SQLite)."""
    return {
        view: [r[0] for r in conn.execute(text(f"SELECT {column} FROM {view} ORDER BY id"))]
        for view, column in _TIMES.items()
    }


def test_times_to_the_second_are_stored_short_and_written_out_on_a_downgrade(
    ledger_url: str,
) -> None:
    """Migration 0025: rows already written keep their ISO text and read as before; a
    new run's times in UTC to the second are stored as seconds since 1970 on SQLite
    and read as ISO text; a downgrade to 0024 writes the text into them, and every
    view reads the same at both."""
    from tradepipe import OrderIntent
    from tradepipe.orders import Order, OrderStatus, Side
    from tradepipe.plugins.ledger.sink import SqlSink
    from tradepipe.risk import Outcome, RiskVerdict

    _runs_at_0021(ledger_url, orphan=False)
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0024")
            old = _times(conn)
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "head")
            assert _times(conn) == old
        at = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
        sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
        sink.open(_run("r3", at))
        for n, when in enumerate([at, at.replace(microsecond=5)]):
            intent = OrderIntent(
                client_order_id=f"tp-new{n}",
                decision_id=f"dn{n}",
                source="s",
                symbol="AAPL",
                side=Side.BUY,
                quantity=Decimal(1),
                created_at=when,
            )
            sink.record_verdict(
                RiskVerdict(
                    decision_id=f"dn{n}",
                    client_order_id=f"tp-new{n}",
                    filter="min_confidence",
                    seq=1,
                    outcome=Outcome.PASS,
                    reason="",
                    quantity_before=Decimal(1),
                    quantity_after=Decimal(1),
                    ts=when,
                )
            )
            order = Order.from_intent(intent)
            sink.record_order(order)
            sink.record_order_event(order.transition(OrderStatus.SUBMITTED, when))
            sink.record_order_event(
                order.transition(OrderStatus.CANCELED, when + dt.timedelta(minutes=1))
            )
            sink.record_fill(_fill(f"en{n}", f"tp-new{n}", when))
        sink.close(_run("r3", at), bars=0, status="completed")
        with engine.connect() as conn:
            after = _times(conn)
            stored = conn.execute(text("SELECT created_at FROM order_rows ORDER BY id")).all()
        new = [v if isinstance(v, str) else v.isoformat() for v in after["orders"][-2:]]
        if ledger_url.startswith("sqlite"):
            # The seconds, kept as an integer since 0031; a fraction of a second as text.
            assert [r[0] for r in stored][-2:] == [int(at.timestamp()), new[1]]
            assert new == [at.isoformat(), at.replace(microsecond=5).isoformat()]
        assert {view: times[: len(old[view])] for view, times in after.items()} == old
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0024")
        with engine.connect() as conn:
            assert _times(conn) == after
            if ledger_url.startswith("sqlite"):
                for table, column in [("order_rows", "created_at"), ("status_changes", "ts")]:
                    short = conn.execute(
                        text(
                            f"SELECT COUNT(*) FROM {table} "
                            f"WHERE {column} <> '' AND {column} NOT LIKE '%T%'"
                        )
                    ).scalar()
                    assert short == 0
    finally:
        engine.dispose()
    upgraded = open_engine(ledger_url)  # and up again: the same times
    try:
        with upgraded.connect() as conn:
            assert _times(conn) == after
    finally:
        upgraded.dispose()


#: Each table of a run's rows and its time (migration 0031).
_ROW_TIMES = {
    "decision_rows": "created_at",
    "judgement_rows": "ts",
    "order_rows": "created_at",
    "fill_rows": "ts",
    "status_changes": "ts",
}


def _stored_times(conn: Any) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Each table's time column: its declared type, and its values with their
    storage classes (SQLite)."""
    got = {}
    for table, time in _ROW_TIMES.items():
        [declared] = [c["type"] for c in inspect(conn).get_columns(table) if c["name"] == time]
        values = conn.execute(text(f"SELECT typeof({time}), {time} FROM {table}")).all()
        got[table] = (str(declared), sorted((k, str(v)) for k, v in values))
    return got


def test_times_stored_as_seconds_are_integers_and_read_as_before(ledger_url: str) -> None:
    """Migration 0031: on SQLite the times of a run's rows are declared DATETIME,
    and one stored as seconds since 1970 is kept as an integer; ISO text and a
    change's empty time stay text. Every view reads as before, indexes, views and
    the trigger are made again, and a downgrade gives the text back."""
    _runs_at_0021(ledger_url, orphan=False)
    engine = create_engine(ledger_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0030")
            if sqlite:  # a time in seconds in each table, as the sink writes them
                for table, time in _ROW_TIMES.items():
                    if table != "status_changes":
                        conn.execute(text(f"UPDATE {table} SET {time} = '1767623400' WHERE id = 1"))
                # One change in seconds, one whose time is its order's (empty).
                for ts, which in (("1767623400", "MAX"), ("", "MIN")):
                    conn.execute(
                        text(
                            f"UPDATE status_changes SET ts = '{ts}' WHERE order_id = "
                            f"(SELECT {which}(order_id) FROM status_changes)"
                        )
                    )
            before = _run_rows(conn), _times(conn)
            if sqlite:
                old = _stored_times(conn)
                made = conn.execute(
                    text("SELECT type, name FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY 1, 2")
                ).all()
        if sqlite:
            assert old["order_rows"][0] == "VARCHAR(40)"
            assert ("text", "1767623400") in old["order_rows"][1]
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0031")
        with engine.connect() as conn:
            assert (_run_rows(conn), _times(conn)) == before
            if sqlite:
                now = _stored_times(conn)
                assert {t: k for t, (k, _v) in now.items()} == dict.fromkeys(_ROW_TIMES, "DATETIME")
                for table, (_kind, values) in now.items():
                    was = old[table][1]
                    assert values == sorted(
                        ("integer", v) if v == "1767623400" else (k, v) for k, v in was
                    )
                    assert ("integer", "1767623400") in values
                assert ("text", "") in now["status_changes"][1]
                again = conn.execute(
                    text("SELECT type, name FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY 1, 2")
                ).all()
                assert again == made  # every table, index, view and trigger
        refused = pytest.raises(Exception, match="cannot be deleted while the ledger holds")
        with refused, engine.begin() as conn:
            conn.execute(text("DELETE FROM runs WHERE run_id = 'r1'"))
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0030")
        with engine.connect() as conn:
            assert (_run_rows(conn), _times(conn)) == before
            if sqlite:
                assert _stored_times(conn) == old
    finally:
        engine.dispose()
    upgraded = open_engine(ledger_url)  # and up again
    try:
        with upgraded.connect() as conn:
            assert (_run_rows(conn), _times(conn)) == before
    finally:
        upgraded.dispose()


def _fills(conn: Any) -> list[tuple[Any, ...]]:
    rows = conn.execute(text("SELECT * FROM fills ORDER BY id")).all()
    return [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in rows]


def test_fills_name_their_order_s_row_and_read_as_before(ledger_url: str) -> None:
    """Migration 0026: a fill of an order its run holds names the order's row and
    leaves the ids to it, one whose decision differs keeps its decision id, one
    without an order keeps both; every fill reads as before through ``fills``, the
    ids of new fills are after the old ones', and a downgrade puts the ids back."""
    _runs_at_0021(ledger_url)  # fills of orders tp-1 (r1) and tp-3, and one without a run
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0025")
            conn.execute(text("UPDATE fill_rows SET decision_id = 'd-other' WHERE id = 2"))
            before = _fills(conn)
        assert [row[3:5] for row in before] == [
            ("tp-1", "d1"),
            ("tp-3", "d-other"),
            ("tp-1", "d1"),
        ]
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0026")
        with engine.connect() as conn:
            assert _fills(conn) == before
            stored = conn.execute(
                text(
                    "SELECT order_id IS NOT NULL, client_order_id, decision_id FROM fill_rows "
                    "ORDER BY id"
                )
            ).all()
            assert [(bool(o), c, d) for o, c, d in stored] == [
                (True, None, None),
                (True, None, "d-other"),
                (False, "tp-1", "d1"),  # its run (made for rows without one) has no order
            ]
        sink_run = _run("r4", dt.datetime(2026, 1, 4, tzinfo=dt.UTC))
        from tradepipe.plugins.ledger.sink import SqlSink

        sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
        sink.open(sink_run)
        sink.record_fill(_fill("e-new", "tp-none", dt.datetime(2026, 1, 4, tzinfo=dt.UTC)))
        sink.close(sink_run, bars=0, status="completed")
        with engine.connect() as conn:
            after = _fills(conn)
        assert after[:3] == before and after[3][2:4] == ("e-new", "tp-none")
        assert after[3][0] > before[-1][0]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0025")
        with engine.connect() as conn:
            assert _fills(conn) == after
            names = {c["name"] for c in inspect(conn).get_columns("fill_rows")}
            assert "order_id" not in names
            assert {i["name"] for i in inspect(conn).get_indexes("fill_rows")} >= {
                "ix_fills_client_order_id"
            }
    finally:
        engine.dispose()
    upgraded = open_engine(ledger_url)  # and up again
    try:
        with upgraded.connect() as conn:
            assert _fills(conn) == after
    finally:
        upgraded.dispose()


def _orders(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the views over orders, as a reader gets them (status changes
    but their ids, see :func:`_without_ids`)."""
    got = {}
    for view in ("orders", "order_events", "fills"):
        rows = conn.execute(text(f"SELECT * FROM {view} ORDER BY id")).all()
        got[view] = [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in rows]
    got["order_events"] = _without_ids(got["order_events"])
    return got


def test_orders_name_their_decision_s_row_and_read_as_before(ledger_url: str) -> None:
    """Migration 0027: an order of a decision its run recorded names the decision's
    row (the first, should the run hold the id twice) and leaves the id to it; an
    order of a decision its run lacks keeps it. Orders, their status changes and
    their fills read as before through the views, a new run's orders are keyed as
    they are written, and a downgrade puts the ids back."""
    _runs_at_0021(ledger_url)  # orders tp-1 and tp-3 of r1's decisions d1 and d3
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0026")
            conn.execute(
                text(
                    "UPDATE order_rows SET decision_id = 'd-elsewhere' "
                    "WHERE client_order_id = 'tp-3'"
                )
            )
            # d1 recorded twice in its run: the order takes the first.
            _record_again(conn, "d1")
            before = _orders(conn)
        assert [row[2:4] for row in before["orders"]] == [("tp-1", "d1"), ("tp-3", "d-elsewhere")]
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0027")
        with engine.connect() as conn:
            assert _orders(conn) == before
            stored = conn.execute(
                text(
                    "SELECT o.client_order_id, o.decision_id, d.decision_id, d.id = "
                    "(SELECT MIN(id) FROM decision_rows WHERE decision_id = 'd1') "
                    "FROM order_rows o LEFT JOIN decision_rows d ON d.id = o.decision_row "
                    "ORDER BY o.id"
                )
            ).all()
            assert [tuple(r) for r in stored] == [
                ("tp-1", None, "d1", True),
                ("tp-3", "d-elsewhere", None, None),
            ]
        from tradepipe import Decision, Order, OrderIntent
        from tradepipe.orders import Side
        from tradepipe.plugins.ledger.sink import SqlSink

        at = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
        sink_run = _run("r4", at)
        sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
        sink.open(sink_run)
        new = Decision(source="s", created_at=at, symbol="AAPL", action="buy", confidence=90)
        sink.record_decision(new)
        for cid, decision_id in (("tp-new", new.id), ("tp-other", "d-not-recorded")):
            intent = OrderIntent(
                client_order_id=cid,
                decision_id=decision_id,
                source="s",
                symbol="AAPL",
                side=Side.BUY,
                quantity=Decimal(5),
                created_at=at,
            )
            sink.record_order(Order.from_intent(intent))
        sink.close(sink_run, bars=0, status="completed")
        with engine.connect() as conn:
            after = _orders(conn)
            assert [row[2:4] for row in after["orders"][2:]] == [
                ("tp-new", new.id),
                ("tp-other", "d-not-recorded"),
            ]
            assert after["orders"][2][0] > before["orders"][-1][0]
            kept = conn.execute(
                text(
                    "SELECT decision_id FROM order_rows WHERE client_order_id LIKE 'tp-%' "
                    "ORDER BY id"
                )
            ).all()
            assert [k for (k,) in kept] == [None, "d-elsewhere", None, "d-not-recorded"]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0026")
        with engine.connect() as conn:
            assert _orders(conn) == after
            assert "decision_row" not in {
                c["name"] for c in inspect(conn).get_columns("order_rows")
            }
    finally:
        engine.dispose()
    _upgraded_reads(ledger_url, after, _orders)  # and up again


def _record_again(conn: Any, decision_id: str) -> None:
    """Record the decision ``decision_id`` a second time in its run."""
    conn.execute(
        text(
            "INSERT INTO decision_rows (run_no, decision_id, created_at, source, symbol, "
            "action, confidence, order_type, tif, rationale) SELECT run_no, decision_id, "
            "created_at, source, symbol, action, confidence, order_type, tif, rationale "
            "FROM decision_rows WHERE decision_id = :d"
        ),
        {"d": decision_id},
    )


def _judgings(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the views over judgings, as a reader gets them (but a verdict's
    judging, which ``verdicts`` names since migration 0029)."""
    got = {}
    for view in ("judgements", "verdicts"):
        rows = conn.execute(text(f"SELECT * FROM {view} ORDER BY id")).mappings().all()
        got[view] = [
            tuple(str(v) if isinstance(v, Decimal) else v for k, v in r.items() if k != "judging")
            for r in rows
        ]
    return got


def test_judgings_name_their_order_s_row_and_read_as_before(ledger_url: str) -> None:
    """Migration 0028: a judging of an order its run holds names the order's row and
    leaves the client order id to it; a denial keeps it. Judgings and verdicts read
    as before, and a downgrade puts the ids back."""
    _runs_at_0021(ledger_url)  # judgings of tp-1 and tp-3 (sent, r1) and tp-2 (denied, r2)
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0027")
            before = _judgings(conn)
        assert [row[2:4] for row in before["judgements"]] == [
            ("d1", "tp-1"),
            ("d2", "tp-2"),
            ("d3", "tp-3"),
        ]
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0028")
        with engine.connect() as conn:
            assert _judgings(conn) == before
            stored = conn.execute(
                text(
                    "SELECT decision_id, order_id IS NOT NULL, client_order_id "
                    "FROM judgement_rows ORDER BY id"
                )
            ).all()
            assert [(d, bool(k), c) for d, k, c in stored] == [
                ("d1", True, None),
                ("d2", False, "tp-2"),
                ("d3", True, None),
            ]
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0027")
        with engine.connect() as conn:
            assert _judgings(conn) == before
            names = {c["name"] for c in inspect(conn).get_columns("judgement_rows")}
            assert "order_id" not in names
    finally:
        engine.dispose()
    _upgraded_reads(ledger_url, before, _judgings)  # and up again


def test_judgings_name_their_decision_s_row_and_read_as_before(ledger_url: str) -> None:
    """Migration 0029: a judging of a decision its run recorded names the decision's
    row (the first, when recorded twice) and leaves the id to it; one of a decision
    its run did not record keeps its id. Judgings and verdicts read as before, each
    verdict names its judging, and a downgrade puts the ids back."""
    _runs_at_0021(ledger_url)  # judgings of d1 and d3 (r1) and d2 (denied, r2)
    engine = create_engine(ledger_url)
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0028")
            # A judging of a decision r1 did not record (sent on from elsewhere).
            conn.execute(
                text(
                    "INSERT INTO judgement_rows (run_no, decision_id, client_order_id, ts, "
                    "verdicts) SELECT run_no, 'd-elsewhere', 'tp-9', ts, verdicts "
                    "FROM judgement_rows WHERE decision_id = 'd1'"
                )
            )
            # Each with a verdict written out (seq, filter, outcome, reason, quantities).
            conn.execute(
                text(
                    "UPDATE judgement_rows SET verdicts = "
                    """'[[1,"max_position_value","pass","","1","1",{"limit":"5"}]]'"""
                )
            )
            # d1 recorded twice in its run: the judging takes the first.
            _record_again(conn, "d1")
            before = _judgings(conn)
        assert [row[2:4] for row in before["judgements"]] == [
            ("d1", "tp-1"),
            ("d2", "tp-2"),
            ("d3", "tp-3"),
            ("d-elsewhere", "tp-9"),
        ]
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0029")
        with engine.connect() as conn:
            assert _judgings(conn) == before
            stored = conn.execute(
                text(
                    "SELECT j.decision_id, d.decision_id, d.id = (SELECT MIN(id) FROM "
                    "decision_rows WHERE decision_id = d.decision_id) FROM judgement_rows j "
                    "LEFT JOIN decision_rows d ON d.id = j.decision_row ORDER BY j.id"
                )
            ).all()
            assert [tuple(r) for r in stored] == [
                (None, "d1", True),
                (None, "d2", True),
                (None, "d3", True),
                ("d-elsewhere", None, None),
            ]
            named = conn.execute(text("SELECT id, judging FROM verdicts ORDER BY id")).all()
            assert named and all(judging == id // 1000 for id, judging in named)
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0028")
        with engine.connect() as conn:
            assert _judgings(conn) == before
            names = {c["name"] for c in inspect(conn).get_columns("judgement_rows")}
            assert "decision_row" not in names
            verdict_names = {c["name"] for c in inspect(conn).get_columns("verdicts")}
            assert "judging" not in verdict_names
    finally:
        engine.dispose()
    _upgraded_reads(ledger_url, before, _judgings)  # and up again


def test_status_changes_are_keyed_by_order_and_place_and_read_as_before(
    ledger_url: str,
) -> None:
    """Migration 0030: a status change's key is its order's row and its place, with
    no id or index beside it; the view reads every change as before, its id made
    of its key (one kept without its order negated). A downgrade numbers the
    changes anew after the kept ones, and new changes follow them."""
    _events_at_0018(ledger_url)  # r1's tp-1 and r2's tp-2, and tp-x without an order
    engine = create_engine(ledger_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0029")
            before = _event_rows(conn)
        with engine.begin() as conn:
            command.upgrade(ledger_db._config(conn), "0030")
        with engine.connect() as conn:
            assert _event_keys(conn) == _without_ids(before)
            rows = {r: n for r, n in conn.execute(text("SELECT client_order_id, id FROM orders"))}
            shown = conn.execute(
                text("SELECT id, client_order_id, seq FROM order_events ORDER BY id")
            ).all()
            made = sorted(rows[c] * 2**20 + seq for _i, c, seq in shown if c != "tp-x")
            assert [i for i, _c, _s in shown] == [-8, *made]
            assert all(i == rows[c] * 2**20 + seq for i, c, seq in shown if c != "tp-x")
            columns = [c["name"] for c in inspect(conn).get_columns("status_changes")]
            assert columns[:2] == ["order_id", "seq"] and "id" not in columns
            key = inspect(conn).get_pk_constraint("status_changes")
            assert key["constrained_columns"] == ["order_id", "seq"]
            assert inspect(conn).get_unique_constraints("status_changes") == []
            assert inspect(conn).get_indexes("status_changes") == []
            if sqlite:
                made = conn.execute(
                    text("SELECT sql FROM sqlite_schema WHERE name = 'status_changes'")
                ).scalar()
                assert made.rstrip().endswith("WITHOUT ROWID")
        # A change at a place its order has, or without its order, is refused.
        for order in ("(SELECT id FROM orders WHERE client_order_id = 'tp-1')", "NULL"):
            refused = pytest.raises(Exception, match="(?i)unique|duplicate|not null|null value")
            with refused, engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO status_changes (order_id, seq, status, ts, reason) "
                        f"VALUES ({order}, 1, 7, :ts, '')"
                    ),
                    {"ts": _ts_value(engine, "2026-01-02T00:09:00+00:00")},
                )
        with engine.connect() as conn:
            assert _event_keys(conn) == _without_ids(before)
        with engine.begin() as conn:
            command.downgrade(ledger_db._config(conn), "0029")
        with engine.connect() as conn:
            assert _event_keys(conn) == _without_ids(before)
            ids = conn.execute(text("SELECT id FROM order_events ORDER BY id")).scalars()
            assert list(ids) == [8, 9, 10, 11, 12, 13, 14]
        with engine.begin() as conn:  # the next change takes the next id
            conn.execute(
                text(
                    "INSERT INTO status_changes (order_id, seq, status, ts, reason) VALUES "
                    "((SELECT id FROM orders WHERE client_order_id = 'tp-2'), 4, 7, :ts, '')"
                ),
                {"ts": _ts_value(engine, "2026-01-02T00:09:00+00:00")},
            )
            last = conn.execute(text("SELECT MAX(id) FROM order_events")).scalar()
            assert last == 15
            after = _event_keys(conn)
    finally:
        engine.dispose()
    assert len(after) == len(before) + 1
    _upgraded_reads(ledger_url, after, _event_keys)  # and up again


def test_a_run_keeps_its_row_while_the_ledger_holds_its_rows(ledger_url: str) -> None:
    """Deleting a run's row by hand would leave its rows naming a number the next run
    takes: the database refuses, and nothing changes. A run without rows can go."""
    from tradepipe.plugins.ledger.sink import SqlSink

    sink = SqlSink(SqlSink.Settings(url=ledger_url, writer="inline"))
    at = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    for run_id, fills in (("r1", 1), ("r2", 0)):
        run = _run(run_id, at)
        sink.open(run)
        for n in range(fills):
            sink.record_fill(_fill(f"e{n}", "tp-4", at))
        sink.close(run, bars=0, status="completed")
    engine = create_engine(ledger_url)
    try:
        refused = pytest.raises(
            Exception, match="cannot be deleted while the ledger holds its rows"
        )
        with refused, engine.begin() as conn:
            conn.execute(text("DELETE FROM runs WHERE run_id = 'r1'"))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM runs WHERE run_id = 'r2'"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT run_id FROM runs")).scalars().all() == ["r1"]
            assert conn.execute(text("SELECT run_id, execution_id FROM fills")).all() == [
                ("r1", "e0")
            ]
    finally:
        engine.dispose()


def test_a_status_no_tradepipe_wrote_is_one_clear_error_from_any_command(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No row without its run: the upgrade's first statements then change only the
    # schema, which Python's sqlite3 would commit one by one outside a transaction.
    _runs_at_0021(ledger_url, orphan=False)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE status_changes SET status = 'parked' WHERE id = 1"))
    engine.dispose()
    tp = _tp(tmp_path, ledger_url, monkeypatch)
    code, _out, err = tp("ledger", "runs")
    assert code == 1
    last = err.strip().splitlines()[-1]  # after the upgrade's warnings
    assert last.startswith("error: the ledger's status changes hold statuses this tradepipe")
    assert "internal error" not in err and "('parked')" in err
    engine = create_engine(ledger_url)
    try:
        assert revision(engine) == "0021"
        # Nothing of the upgrade stayed (SQLite too: the whole of it was one transaction).
        assert "run_no" not in {c["name"] for c in inspect(engine).get_columns("runs")}
        assert "orders" in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(text("UPDATE status_changes SET status = 'submitted' WHERE id = 1"))
    finally:
        engine.dispose()
    assert tp("db", "upgrade")[0] == 0
    assert tp("ledger", "runs")[0] == 0


def test_a_users_own_view_or_a_run_still_going_stops_the_upgrade_and_changes_nothing(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view a user made over a table the upgrade rebuilds, or a run of an older
    tradepipe still writing on this machine, would break (the view, the run):
    the upgrade is refused, saying why, and the ledger stays as it was."""
    from tradepipe.process import this_process

    _runs_at_0021(ledger_url)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE VIEW my_events AS SELECT * FROM order_events"))
    tp = _tp(tmp_path, ledger_url, monkeypatch)
    code, _out, err = tp("db", "upgrade")
    assert code == 1
    assert "views tradepipe did not make (my_events): drop them" in err
    assert revision(engine) == "0021"
    me = this_process()
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW my_events"))
        conn.execute(
            text(
                "UPDATE runs SET status = 'running', host = :host, pid = :pid, "
                "pid_started = :started WHERE run_id = 'r1'"
            ),
            {"host": me.host, "pid": me.pid, "started": me.started},
        )
    code, _out, err = tp("ledger", "runs")
    assert code == 1
    assert "run r1 is still running against the ledger, whose schema must move from 0021" in err
    assert revision(engine) == "0021"
    with engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'completed' WHERE run_id = 'r1'"))
    engine.dispose()
    assert tp("db", "upgrade")[0] == 0
