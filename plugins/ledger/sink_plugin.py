"""The ``sql_sink`` plugin: registers the SQL ledger's sink.

The sink (:mod:`~tradepipe.plugins.ledger.sink`), SQLAlchemy and alembic are
imported only when sinks are looked up, not whenever tradepipe starts.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_sinks(register: Any) -> None:
    from tradepipe.plugins.ledger.sink import SqlSink

    register(SqlSink)
