"""``tradepipe execute``, registered by the execute capability.

The command (:mod:`~tradepipe.plugins.execute.cli`) and the pipeline it runs
are imported when it is used, not when it is listed.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("execute", "tradepipe.plugins.execute.cli:execute"))
