"""``tradepipe approvals|approve|reject``: the decisions waiting for a person."""

from __future__ import annotations

import datetime as dt

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.plugins.approval.queue import (
    Queue,
    answer_approved,
    document,
    still_sending,
    who,
)
from tradepipe.plugins.ledger.cli import command_ledger


def _queue(app: AppContext) -> Queue:
    led = command_ledger(app)
    return Queue(led.engine, led.where)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@click.command("approvals")
@click.option("--all", "every", is_flag=True, help="Every request, answered or not.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def approvals(app: AppContext, every: bool, as_json: bool) -> None:
    """The decisions waiting for a person ([approval]); those past their time expire."""
    rows = _queue(app).rows(_now(), every=every)
    if as_json:
        print_json([document(r) for r in rows])
        return
    if not rows:
        click.echo("No approvals yet." if every else "Nothing waits for approval.")
        return
    console().print(
        table(
            "Approvals" if every else "Waiting for approval",
            ["approval", "order", "source", "why", "until", "status"],
            [
                (
                    Id(r.approval_id),
                    f"{r.side} {r.quantity} {r.symbol}"
                    + (f" ({r.notional:.2f})" if r.notional is not None else ""),
                    r.source,
                    r.reason,
                    f"{r.expires_at:%Y-%m-%d %H:%M}",
                    r.status + (f" by {r.decided_by}" if r.decided_by else ""),
                )
                for r in rows
            ],
        )
    )


@click.command("approve")
@click.argument("approval_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def approve(app: AppContext, approval_id: str, as_json: bool) -> None:
    """Send a waiting decision: sized and judged by every risk filter again, now.

    While a live run of its session is up, that run sends it (within seconds while
    the market is open) and this command waits a little to say how it went.
    """
    queue = _queue(app)
    row = queue.answer(approval_id, "approved", who(), _now())
    app.setup_logging()
    answered = answer_approved(app.settings, app.host, queue, row)
    done, live_run, asked = answered.row, answered.live_run, answered.asked
    if as_json:
        print_json(answered.document())
    elif live_run and still_sending(done):
        click.echo(
            f"approval {done.approval_id}: approved; the live run {live_run} of session "
            f"{done.namespace!r} sends it at its next look while the market is open "
            "(`tradepipe approvals --all` shows how it went)"
        )
    else:
        by = f" by the live run {live_run}" if live_run else ""
        click.echo(f"approval {done.approval_id}: {done.status}{by} ({done.note})")
        if asked is not None:
            click.echo(
                f"the broker asked about it: {asked.reason}; that waits for you as approval "
                f"{asked.approval_id} (`tradepipe approve {asked.approval_id}` sends the order "
                "again with it confirmed)"
            )
    if done.status != "sent" and not (live_run and still_sending(done)):
        raise SystemExit(1)


@click.command("reject")
@click.argument("approval_id")
@click.option("--reason", required=True, help="Why; kept with the request.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def reject(app: AppContext, approval_id: str, reason: str, as_json: bool) -> None:
    """Drop a waiting decision: nothing is sent."""
    if not reason.strip():
        raise click.BadParameter("a rejection needs its reason", param_hint="--reason")
    done = _queue(app).answer(approval_id, "rejected", who(), _now(), reason.strip())
    if as_json:
        print_json(document(done))
    else:
        click.echo(f"approval {done.approval_id}: rejected by {done.decided_by} ({reason})")
