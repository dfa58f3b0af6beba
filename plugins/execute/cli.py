"""``tradepipe execute DECISION.json``: one decision document through the whole pipeline.

The document (see :mod:`tradepipe.decision_schema`) is read from a file or
standard input (``-``), then takes exactly the path a strategy's decision
takes: sizing, every configured risk filter, the ledger, the configured
broker. A document that is not a valid decision is refused with its reason
(and in the log file); nothing is sent and nothing is written to the ledger.
Its id decides its client order id within the session, so executing one
decision twice is refused as a duplicate.

A document with an options strategy is read once the broker is connected:
its legs are chosen from the broker's option chain, and the chain's prices
give the filters the combo's price.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import IO

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.outcome import report, report_rejected
from tradepipe.clock import Clock
from tradepipe.decisions import RejectedDecision
from tradepipe.direct import Direct, direct_run
from tradepipe.services.documents import DEFAULT_SESSION, SOURCE, execute_document


@click.command("execute")
@click.argument("document", metavar="DECISION.json", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Judge with the risk filters; send nothing.")
@click.option("--what-if", is_flag=True, help="Ask the broker for a preview; send nothing.")
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=0.0,
    help="Seconds to wait for the broker to fill or finish the order.",
)
@click.option("--broker", "broker_name", metavar="NAME", help="Use this broker ([run] broker).")
@click.option(
    "--session",
    metavar="NAME",
    help=f"Client order id namespace ([run] session, else {DEFAULT_SESSION!r}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def execute(
    app: AppContext,
    document: IO[str],
    dry_run: bool,
    what_if: bool,
    wait: float,
    broker_name: str | None,
    session: str | None,
    as_json: bool,
) -> None:
    """Execute one decision document (a file, or - for standard input).

    \b
    Examples:
      tradepipe execute decision.json --dry-run
      my-model | tradepipe execute - --json
    """
    text = document.read()
    app.setup_logging()
    settings = app.settings
    # A plugin command is found through the plugins, so the settings are loaded
    # by now: the options replace keys of a copy (the broker name is checked
    # when the broker is made).
    changes = {"session": session or settings.run.session or DEFAULT_SESSION}
    if broker_name:
        changes["broker"] = broker_name
    settings = settings.model_copy(update={"run": settings.run.model_copy(update=changes)})

    def open_run(dry: bool, clock: Clock) -> AbstractContextManager[Direct]:
        return direct_run(settings, app.host, source=SOURCE, dry_run=dry, clock=clock)

    result, ledger = execute_document(text, open_run, dry_run=dry_run, what_if=what_if, wait=wait)
    # Reported once the run is closed: exiting inside it would mark it failed.
    if isinstance(result, RejectedDecision):
        report_rejected(result, ledger, as_json)
    report(result, ledger, as_json)
