"""``tradepipe approvals``, ``approve`` and ``reject``, registered by the approval capability."""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    for name in ("approvals", "approve", "reject"):
        register(LazyCommand(name, f"tradepipe.plugins.approval.cli:{name}"))
