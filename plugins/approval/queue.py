"""The approval queue in the ledger: find, expire, approve (exactly once), reject.

A request waits as ``pending`` until a person answers it or it expires. To
approve is to move it from ``pending`` to ``approved`` in one conditional
update: of two approvals at once, one wins and the other is told the request
was already answered. Whoever sends it first takes it, ``approved`` to
``sending``, in another conditional update, so an order is sent once: the
live run of its session when one is up (it holds the broker's session and
the account; it looks every few seconds), else ``tradepipe approve`` or the
API at once. The approved decision then goes through sizing and every risk
filter again, at the prices of now, in the session it was made in (so its
order has the client order id it would have had: the executor's duplicate
check is a second lock), and the request ends ``sent``, ``denied`` (a filter
said no now) or ``failed``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.approval import Approved, ending
from tradepipe.decisions import Decision
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.plugins.ledger.schema import ApprovalRow

#: Where a request stands once answered.
FINAL = ("sent", "denied", "failed", "rejected", "expired")
#: How long an approval waits for the live run that sends it to say how it went (it
#: looks every few seconds while the market is open).
LIVE_RUN_WAIT = 15.0


def who() -> str:
    """The person at this terminal (their login name)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name to be had (a container): say so
        return "unknown user"


class Queue:
    """The approvals in the ledger at ``engine``."""

    def __init__(self, engine: Engine, where: str = "") -> None:
        self.engine = engine
        self.where = where

    def _fail(self, what: str) -> PersistenceError:
        return PersistenceError(f"could not {what} the approvals in the ledger at {self.where}")

    def expire(self, now: dt.datetime) -> int:
        """Mark what waited past its time ``expired`` (and what was approved but not
        taken by any run before then); how many."""
        late = col(ApprovalRow.expires_at) <= now
        try:
            with Session(self.engine) as s:
                done = s.execute(
                    update(ApprovalRow)
                    .where(col(ApprovalRow.status) == "pending", late)
                    .values(status="expired", decided_at=now, decided_by="expiry")
                )
                untaken = s.execute(
                    update(ApprovalRow)
                    .where(col(ApprovalRow.status) == "approved", late)
                    .values(status="expired", note="approved, but not sent before it expired")
                )
                s.commit()
                return int(getattr(done, "rowcount", 0) or 0) + int(
                    getattr(untaken, "rowcount", 0) or 0
                )
        except SQLAlchemyError as exc:
            raise self._fail("expire") from exc

    def _move(self, approval_id: str, was: str, **values: Any) -> bool:
        """Set ``values`` on a request that is ``was``, in one conditional update:
        whether it was (of two callers at once, one finds it so)."""
        try:
            with Session(self.engine) as s:
                done = s.execute(
                    update(ApprovalRow)
                    .where(
                        col(ApprovalRow.approval_id) == approval_id,
                        col(ApprovalRow.status) == was,
                    )
                    .values(**values)
                )
                s.commit()
        except SQLAlchemyError as exc:
            raise self._fail("update") from exc
        return bool(getattr(done, "rowcount", 0))

    def claim(self, approval_id: str, run_id: str = "") -> bool:
        """Take an approved request to send it: whether this caller got it (of two at
        once, one does)."""
        return self._move(approval_id, "approved", status="sending", sent_run_id=run_id or None)

    def take(self, namespace: str, run_id: str, now: dt.datetime) -> list[Approved]:
        """The approved requests of ``namespace`` no one took yet, taken for ``run_id``."""
        self.expire(now)
        try:
            with Session(self.engine) as s:
                rows = list(
                    s.scalars(
                        select(ApprovalRow)
                        .where(
                            col(ApprovalRow.namespace) == namespace,
                            col(ApprovalRow.status) == "approved",
                        )
                        .order_by(col(ApprovalRow.decided_at))
                    )
                )
        except SQLAlchemyError as exc:
            raise self._fail("read") from exc
        return [approved(row) for row in rows if self.claim(row.approval_id, run_id)]

    def rows(self, now: dt.datetime, *, every: bool = False) -> list[ApprovalRow]:
        """The pending requests (``every``: all of them), the latest first."""
        self.expire(now)
        try:
            with Session(self.engine) as s:
                chosen = select(ApprovalRow).order_by(col(ApprovalRow.created_at).desc())
                if not every:
                    chosen = chosen.where(col(ApprovalRow.status) == "pending")
                return list(s.scalars(chosen))
        except SQLAlchemyError as exc:
            raise self._fail("read") from exc

    def get(self, approval_id: str) -> ApprovalRow:
        """:raises ConfigError: no such request."""
        try:
            with Session(self.engine) as s:
                found = s.get(ApprovalRow, approval_id)
        except SQLAlchemyError as exc:
            raise self._fail("read") from exc
        if found is None:
            raise ConfigError(
                f"no approval {approval_id!r} (`tradepipe approvals` lists those waiting)"
            )
        return found

    def answer(
        self, approval_id: str, status: str, by: str, now: dt.datetime, note: str = ""
    ) -> ApprovalRow:
        """Move a pending request to ``status`` (``approved`` or ``rejected``), once.

        :raises ConfigError: no such request, or it was answered (or expired) already.
        """
        self.expire(now)
        self.get(approval_id)  # an unknown id says so, before any update
        moved = self._move(
            approval_id, "pending", status=status, decided_by=by, decided_at=now, note=note
        )
        if not moved:
            row = self.get(approval_id)
            if row.status == "expired":
                raise ConfigError(
                    f"approval {approval_id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: "
                    "nothing was sent"
                )
            by_whom = f", answered by {row.decided_by}" if row.decided_by else ""
            raise ConfigError(
                f"approval {approval_id} was answered already ({row.status}{by_whom})"
            )
        return self.get(approval_id)

    def asked_next(self, row: ApprovalRow) -> ApprovalRow | None:
        """The broker's question about the order ``row`` sent, waiting now, if it asked one."""
        try:
            with Session(self.engine) as s:
                return s.scalars(
                    select(ApprovalRow)
                    .where(
                        col(ApprovalRow.namespace) == row.namespace,
                        col(ApprovalRow.decision_id) == row.decision_id,
                        col(ApprovalRow.attempt) > row.attempt,
                        col(ApprovalRow.status) == "pending",
                    )
                    .order_by(col(ApprovalRow.attempt).desc())
                ).first()
        except SQLAlchemyError as exc:
            raise self._fail("read") from exc

    def wait(self, approval_id: str, seconds: float, sleep: Any = time.sleep) -> ApprovalRow:
        """The request once it ended (sent, denied, failed, expired), or as it stands
        after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            row = self.get(approval_id)
            if row.status in FINAL or time.monotonic() >= deadline:
                return row
            sleep(0.25)

    def close(self, approval_id: str, status: str, note: str, **values: Any) -> ApprovalRow:
        """Record how an approved request ended (``sent``, ``denied``, ``failed``)."""
        try:
            with Session(self.engine) as s:
                s.execute(
                    update(ApprovalRow)
                    .where(col(ApprovalRow.approval_id) == approval_id)
                    .values(status=status, note=note, **values)
                )
                s.commit()
        except SQLAlchemyError as exc:
            raise self._fail("record") from exc
        return self.get(approval_id)


def approved(row: ApprovalRow) -> Approved:
    """What a run needs to send an approved request."""
    return Approved(
        approval_id=row.approval_id,
        decision=Decision.model_validate_json(row.decision),
        attempt=row.attempt,
        answered=tuple(i for i in row.answered.split(",") if i),
    )


def live_run_of(settings: Any, namespace: str) -> str:
    """The id of the live run of ``namespace`` that is up (by ``[run] status_file``),
    which sends what is approved for it; ``""`` when none is."""
    from tradepipe.services.status import read_status, status_path

    try:
        document = read_status(status_path(settings))
    except ConfigError:
        return ""  # no status file to read: no live run is known
    if document.get("liveness") != "running" or document.get("session") != namespace:
        return ""
    return str(document.get("run_id") or "")


def document(row: ApprovalRow) -> dict[str, Any]:
    """A request as the CLI's JSON and the API show it (without its decision's JSON)."""
    return row.model_dump(mode="json", exclude={"decision"})


@dataclass(frozen=True)
class Answered:
    """An approved request after :func:`answer_approved`.

    :param row: the request as it stands.
    :param live_run: the live run it was left to (``""``: sent here).
    :param asked: the broker's question about the order it sent, waiting for a
        person now, if the broker asked one.
    """

    row: ApprovalRow
    live_run: str
    asked: ApprovalRow | None

    def document(self) -> dict[str, Any]:
        return {
            **document(self.row),
            "sent_by_live_run": self.live_run or None,
            "asked": None if self.asked is None else document(self.asked),
        }


def answer_approved(
    settings: Any, host: Any, queue: Queue, row: ApprovalRow, opener: Any = None
) -> Answered:
    """Have an approved request sent: by the live run of its session when one is up
    (waiting a little for it to say how it went), else here and now."""
    run_id = live_run_of(settings, row.namespace)
    if run_id:
        done = queue.wait(row.approval_id, LIVE_RUN_WAIT)
    else:
        done = send_approved(settings, host, queue, row, opener)
    # The order it sent may have met a broker question that waits for a person now.
    asked = queue.asked_next(done) if done.status == "sent" else None
    return Answered(done, run_id, asked)


def still_sending(row: ApprovalRow) -> bool:
    """Approved and not yet sent by the run it was left to."""
    return row.status in ("approved", "sending")


def send_approved(
    settings: Any, host: Any, queue: Queue, row: ApprovalRow, opener: Any = None
) -> ApprovalRow:
    """Send an approved request's decision here, judged again by every filter now.

    :param opener: opens the one-off run (settings, source) → a context of
        :class:`~tradepipe.direct.Direct`; default :func:`~tradepipe.direct.direct_run`
        (the API passes its own, which sets its held broker connection aside).
    """
    from tradepipe.direct import direct_run

    if not queue.claim(row.approval_id):
        return queue.get(row.approval_id)  # a run took it first: it sends it
    request = approved(row)
    session = settings.model_copy(
        update={"run": settings.run.model_copy(update={"session": row.namespace})}
    )
    if opener is None:

        def opener(chosen: Any, source: str) -> Any:
            return direct_run(chosen, host, source=source)

    try:
        with opener(session, row.source) as run:
            run.executor.allow(request)
            outcome = run.execute(request.decision)
            run_id = run.pipeline.run.run_id
    except Exception as exc:
        queue.close(row.approval_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    why = next((v.reason for v in reversed(outcome.verdicts) if v.outcome.value == "deny"), "")
    status, note, sent = ending(outcome.order if outcome.sent else None, why)
    return queue.close(row.approval_id, status, note, client_order_id=sent, sent_run_id=run_id)
