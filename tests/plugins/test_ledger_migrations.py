"""The ledger's schema moves forward by migrations, and keeps every row it had."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from tradepipe import PersistenceError
from tradepipe.plugins.ledger import db as ledger_db
from tradepipe.plugins.ledger.db import head, open_engine, revision

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
