"""``tradepipe report`` (and ``tradepipe sweep``), registered by the research capability."""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("report", "tradepipe.plugins.research.cli:report"))
    register(LazyCommand("sweep", "tradepipe.plugins.research.sweep_cli:sweep"))
