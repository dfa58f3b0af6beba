"""Fixtures shared by every test folder: the ledger on SQLite and on PostgreSQL.

PostgreSQL comes from ``LEDGER_TEST_POSTGRES`` (an SQLAlchemy URL of a
database the tests may create schemas in), else ``127.0.0.1:5432`` as user
``postgres``, database ``test``. Each test gets a schema of its own, dropped
afterwards. Where no server answers, PostgreSQL tests are skipped, except under
CI (``CI`` set), where a missing server is a failure: the ledger must be proven
on both backends there.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_receiver import Receiver, in_thread
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

pytest_plugins = ["tradepipe.testing"]


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT
    # ignored, and so would every process it starts: the Ctrl-C tests need it to
    # interrupt as a terminal's Ctrl-C does. A caught signal is reset to the default
    # on exec, so child processes get Python's KeyboardInterrupt too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


POSTGRES = os.environ.get(
    "LEDGER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder as the current directory, with no ``TRADEPIPE_*`` variables
    from the environment the suite runs in (they would override its settings)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture(autouse=True)
def private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test its own ``$XDG_STATE_HOME``: state shared between processes (IBKR's
    pacing budget) stays within the test and never touches the real home folder."""
    folder = tmp_path_factory.mktemp("state-home")
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> str | None:
    """The PostgreSQL URL if a server answers, else ``None``."""
    engine = create_engine(POSTGRES, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return POSTGRES
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url(postgres_server: str | None) -> Iterator[str]:
    """A PostgreSQL URL whose default schema is fresh and private to this test."""
    if postgres_server is None:
        message = f"no PostgreSQL server at {make_url(POSTGRES).render_as_string()}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI the ledger must be tested on PostgreSQL")
        pytest.skip(message)
    schema = f"tp_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(postgres_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ledger's URL on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A notification receiver on 127.0.0.1 (:mod:`notify_receiver`), stopped after the test."""
    found = Receiver()
    with in_thread(found.server):
        yield found


#: How many replays had their counted summary held to the ledger's (see below).
TALLIES_CHECKED: list[str] = []


@pytest.fixture(autouse=True)
def counted_summaries_match_the_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every replay the suite runs in its own process with the SQL ledger has its
    summary, as the sink counted it (:mod:`tradepipe.plugins.ledger.tally`), held to
    the summary read back from the ledger: the two must be the same document."""
    from tradepipe.plugins.ledger.db import open_engine
    from tradepipe.plugins.ledger.queries import Ledger
    from tradepipe.plugins.ledger.sink import SqlSink

    counted = SqlSink.summary

    def checked(sink: SqlSink, run_id: str) -> dict[str, object]:
        summary = counted(sink, run_id)
        if sink.tally(run_id) is not None:
            engine = open_engine(sink.url, migrate=False)
            try:
                read = Ledger(engine, sink.where).summary(run_id)
            finally:
                engine.dispose()
            assert summary == read, "a replay's counted summary differs from its ledger's"
            TALLIES_CHECKED.append(run_id)
        return summary

    checked.__wrapped__ = counted  # type: ignore[attr-defined]
    monkeypatch.setattr(SqlSink, "summary", checked)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLIES_CHECKED:
        terminalreporter.write_line(
            f"{len(TALLIES_CHECKED)} replay summaries counted by the sink matched the ledger's"
        )
