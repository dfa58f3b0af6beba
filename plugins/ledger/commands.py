"""The ledger's commands: ``ledger``, ``db`` and ``reconcile``.

Each command module is imported when the command is registered, so the sink
itself (:mod:`tradepipe.plugins.ledger.sink`) carries no command-line code.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.plugins.ledger.cli import ledger
    from tradepipe.plugins.ledger.db_cli import db
    from tradepipe.plugins.ledger.reconcile_cli import reconcile

    register(ledger)
    register(db)
    register(reconcile)
