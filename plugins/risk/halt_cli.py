"""``tradepipe halt`` and ``tradepipe resume``: the manual kill switch from the command line."""

from __future__ import annotations

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import print_json
from tradepipe.clock import SystemClock
from tradepipe.services.halt import announce, halt_state_path, lift_halt, set_halt


@click.command("halt")
@click.option("--reason", default="", help="Why; recorded with every denial while halted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def halt(app: AppContext, reason: str, as_json: bool) -> None:
    """Halt trading until `tradepipe resume` (the `halt` risk filter denies new orders)."""
    path = halt_state_path(app.settings)
    manual = set_halt(path, reason, SystemClock().now())
    announce(
        app.host, f"trading halted by hand ({manual['reason']}): every pipeline denies new orders"
    )
    if as_json:
        print_json({"halted": True, "state_file": str(path), **manual})
    else:
        click.echo(f"trading halted ({manual['reason']}); state in {path}")


@click.command("resume")
@click.option(
    "--daily-loss",
    is_flag=True,
    help="Also lift today's max_daily_loss halt; the day's loss is then measured afresh.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def resume(app: AppContext, daily_loss: bool, as_json: bool) -> None:
    """Lift the manual halt (and, with --daily-loss, today's loss-limit halt)."""
    was, lifted_daily = lift_halt(halt_state_path(app.settings), daily_loss=daily_loss)
    if was or lifted_daily:
        announce(app.host, "trading resumed: the halt was lifted by hand")
    if as_json:
        print_json({"halted": False, "was_halted": was, "daily_loss_lifted": lifted_daily})
    else:
        click.echo("trading resumed" if was or lifted_daily else "trading was not halted")
