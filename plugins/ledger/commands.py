"""The ledger's commands: ``ledger``, ``db`` and ``reconcile``.

Each command module is imported when the command is used, not when it is
listed, so the sink itself (:mod:`tradepipe.plugins.ledger.sink`) carries no
command-line code and ``tradepipe --help`` does not load SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("ledger", "tradepipe.plugins.ledger.cli:ledger"))
    register(LazyCommand("db", "tradepipe.plugins.ledger.db_cli:db"))
    register(LazyCommand("reconcile", "tradepipe.plugins.ledger.reconcile_cli:reconcile"))
