"""``tradepipe plugins``."""

from __future__ import annotations

from dataclasses import asdict

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import console, print_json, table


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_app
def plugins(app: AppContext, as_json: bool) -> None:
    """List the loaded plugins: distribution, version, hooks and components."""
    host = app.host
    host.collect()
    infos = sorted(host.plugins.values(), key=lambda p: (not p.builtin, p.name))
    if as_json:
        print_json([asdict(info) for info in infos])
        return
    rows = [
        (
            info.name,
            f"{info.distribution} {info.version}".strip() or "-",
            ", ".join(info.components + [f"command:{c}" for c in info.commands]) or "-",
            ", ".join(h.removeprefix("tradepipe_") for h in info.hooks),
        )
        for info in infos
    ]
    console().print(table("Plugins", ["name", "distribution", "provides", "hooks"], rows))
