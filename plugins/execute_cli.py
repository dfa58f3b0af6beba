"""``tradepipe execute DECISION.json``: one decision document through the whole pipeline.

The document (see :mod:`tradepipe.decision_schema`) is read from a file or
standard input (``-``), then takes exactly the path a strategy's decision
takes: sizing, every configured risk filter, the ledger, the configured
broker. A document that is not a valid decision is recorded as rejected and
nothing is sent. Its id decides its client order id within the session, so
executing one decision twice is refused as a duplicate.

A document with an options strategy is read once the broker is connected:
its legs are chosen from the broker's option chain, and the chain's prices
give the filters the combo's price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO, Any

import click
from tradepipe import hookimpl
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.outcome import report, report_rejected
from tradepipe.clock import Clock, SystemClock
from tradepipe.decision_schema import loads, read_decision
from tradepipe.decisions import Decision, RejectedDecision
from tradepipe.direct import Direct, Outcome, direct_run

SOURCE = "execute"
#: The session used when ``[run] session`` is empty: duplicates are still refused.
DEFAULT_SESSION = "execute"


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


def execute_document(
    text: str,
    open_run: Callable[[bool, Clock], AbstractContextManager[Direct]],
    *,
    dry_run: bool = False,
    what_if: bool = False,
    wait: float = 0.0,
) -> tuple[Outcome | RejectedDecision, str | None]:
    """A decision document's text through a one-off run: the outcome, or why it was refused.

    ``open_run(dry, clock)`` opens the run (:func:`~tradepipe.direct.direct_run`
    over the caller's settings). A document that is not a valid decision is
    recorded as rejected in that run's ledger unless dry; a dry run is not even
    opened for one that is invalid on its face. An options strategy is read
    once the broker can show its chain. Returns the ledger run's id too
    (``None`` when dry).
    """
    dry = dry_run or what_if
    item = None if has_options_strategy(text) else read_document(text)
    if isinstance(item, RejectedDecision) and dry:
        return item, None
    clock = SystemClock()
    with open_run(dry, clock) as run:
        if item is None:
            item = read_document(text, run, clock.now().date())
        result = run.act(item, what_if=what_if, wait=wait)
        return result, None if dry else run.pipeline.run.run_id


def has_options_strategy(text: str) -> bool:
    """Whether the document asks for an options strategy (so needs the broker's chain)."""
    try:
        raw = loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and raw.get("options") is not None


def read_document(text: str, run: Direct | None = None, today: dt.date | None = None) -> Item:
    """The decision in a document's text, or why it is none.

    With ``run``, an options strategy's legs are chosen from its broker's chain
    (see :meth:`~tradepipe.direct.Direct.read`).
    """
    try:
        raw = loads(text)
    except (ValueError, RecursionError) as exc:
        return RejectedDecision(text[:2000], f"not valid JSON: {exc}")
    if run is None:
        return read_decision(raw, SOURCE)
    return run.read(raw, today=today)


Item = Decision | RejectedDecision


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    register(execute)
