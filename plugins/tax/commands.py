"""``tradepipe tax``, registered by the tax capability."""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.plugins.tax.cli import tax

    register(tax)
