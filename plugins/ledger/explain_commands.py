"""``tradepipe explain``, registered by the ledger.

The command (:mod:`~tradepipe.plugins.ledger.explain_cli`) and the ledger it
reads are imported when it is used, not when it is listed.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("explain", "tradepipe.plugins.ledger.explain_cli:explain"))
