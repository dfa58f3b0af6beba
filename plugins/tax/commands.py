"""``tradepipe tax`` and the always-on ``named_lots`` filter, registered by the tax capability."""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("tax", "tradepipe.plugins.tax.cli:tax"))


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    from tradepipe.plugins.tax.guard import NamedLots

    register(NamedLots)
