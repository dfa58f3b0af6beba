"""A decision document through a one-off run: what ``tradepipe execute`` and ``POST /execute`` do.

The document's text is read in full first: one that is no decision writes
nothing and is refused with its reason (also in the log file).
"""

from __future__ import annotations

import logging

from tradepipe.decision_schema import loads
from tradepipe.decisions import RejectedDecision
from tradepipe.direct import Outcome, RunOpener
from tradepipe.direct import execute_document as run_document
from tradepipe.logs import FILE_ONLY

log = logging.getLogger(__name__)

#: The source a document's decision is recorded under.
SOURCE = "execute"
#: The session used when ``[run] session`` is empty: duplicates are still refused.
DEFAULT_SESSION = "execute"


def execute_document(
    text: str,
    open_run: RunOpener,
    *,
    dry_run: bool = False,
    what_if: bool = False,
    wait: float = 0.0,
) -> tuple[Outcome | RejectedDecision, str | None]:
    """A decision document's text through a one-off run: the outcome, or why it was refused.

    ``open_run(dry, clock)`` opens the run (:func:`~tradepipe.direct.direct_run`
    over the caller's settings). The document is read in full first (see
    :func:`~tradepipe.direct.execute_document`): one that is no decision writes
    nothing. Returns the ledger run's id too (``None`` when dry or refused).
    """
    try:
        raw = loads(text)
    except (ValueError, RecursionError) as exc:
        rejected = RejectedDecision(text[:2000], f"not valid JSON: {exc}")
        log.warning("decision from %s rejected: %s", SOURCE, rejected.error, extra=FILE_ONLY)
        return rejected, None
    return run_document(raw, open_run, source=SOURCE, dry_run=dry_run, what_if=what_if, wait=wait)
