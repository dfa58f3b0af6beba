"""Sweeps in the ledger: the sweep, and each replay's result as it comes in.

Every result is written when it arrives, so a sweep that is interrupted keeps
what it did; run again, the same sweep (the same id: see
:func:`~tradepipe.plugins.research.sweep.sweep_id`) skips what it has.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.plugins.ledger.schema import SweepResultRow, SweepRow
from tradepipe.plugins.research.task import TaskResult


@dataclass(frozen=True)
class Stored:
    """A result as read back: the task's own fields, and where it stands in the sweep."""

    key: str
    kind: str
    window: int
    params: dict[str, Any]
    start: str
    end: str
    metrics: dict[str, Any]
    equity: list[tuple[str, float]]
    error: str
    seconds: float


class SweepStore:
    """One sweep's rows in the ledger at ``engine``."""

    def __init__(self, engine: Engine, sweep_id: str, where: str = "") -> None:
        self.engine = engine
        self.sweep_id = sweep_id
        self.where = where

    def _fail(self, what: str, exc: Exception) -> PersistenceError:
        return PersistenceError(
            f"could not {what} sweep {self.sweep_id} in the ledger at {self.where}"
        )

    def open(self, metric: str, spec: dict[str, Any], tasks: int) -> dict[str, Stored]:
        """Create the sweep, or find it again; the results it already has, by task key."""
        now = dt.datetime.now(dt.UTC)
        try:
            with Session(self.engine) as s:
                found = s.get(SweepRow, self.sweep_id)
                if found is None:
                    s.execute(
                        insert(SweepRow),
                        [
                            {
                                "sweep_id": self.sweep_id,
                                "created_at": now,
                                "status": "running",
                                "metric": metric,
                                "spec": json.dumps(spec, sort_keys=True, default=str),
                                "tasks": tasks,
                            }
                        ],
                    )
                else:
                    s.execute(
                        update(SweepRow)
                        .where(col(SweepRow.sweep_id) == self.sweep_id)
                        .values(status="running", finished_at=None, tasks=tasks)
                    )
                s.commit()
        except SQLAlchemyError as exc:
            raise self._fail("open", exc) from exc
        return {r.key: r for r in self.results()}

    def forget(self) -> int:
        """Drop this sweep's results (``--fresh``): every replay runs again; how many."""
        try:
            with Session(self.engine) as s:
                done = s.execute(
                    delete(SweepResultRow).where(col(SweepResultRow.sweep_id) == self.sweep_id)
                )
                s.commit()
                return int(getattr(done, "rowcount", 0) or 0)
        except SQLAlchemyError as exc:
            raise self._fail("clear", exc) from exc

    def add(self, result: TaskResult, kind: str, window: int = 0) -> None:
        """Record one result. A key already there is left as it is, unless it failed
        then: a task tried again replaces its failure."""
        row = {
            "sweep_id": self.sweep_id,
            "task_key": result.key,
            "kind": kind,
            "window": window,
            "params": json.dumps(result.params, sort_keys=True, default=str),
            "start": result.start,
            "end": result.end,
            "metrics": json.dumps(result.metrics, default=str),
            "equity": json.dumps(result.equity),
            "error": result.error,
            "seconds": result.seconds,
            "ts": dt.datetime.now(dt.UTC),
        }
        try:
            with Session(self.engine) as s:
                s.execute(insert(SweepResultRow), [row])
                s.commit()
        except IntegrityError:
            self._retried(row)
        except SQLAlchemyError as exc:
            raise self._fail("record a result of", exc) from exc

    def _retried(self, row: dict[str, Any]) -> None:
        """A result for a key an earlier run recorded: it replaces a failure only."""
        try:
            with Session(self.engine) as s:
                s.execute(
                    update(SweepResultRow)
                    .where(
                        col(SweepResultRow.sweep_id) == self.sweep_id,
                        col(SweepResultRow.task_key) == row["task_key"],
                        col(SweepResultRow.error) != "",
                    )
                    .values(**{k: v for k, v in row.items() if k not in ("sweep_id", "task_key")})
                )
                s.commit()
        except SQLAlchemyError as exc:
            raise self._fail("record a result of", exc) from exc

    def finish(self, status: str) -> None:
        try:
            with Session(self.engine) as s:
                s.execute(
                    update(SweepRow)
                    .where(col(SweepRow.sweep_id) == self.sweep_id)
                    .values(status=status, finished_at=dt.datetime.now(dt.UTC))
                )
                s.commit()
        except SQLAlchemyError as exc:
            raise self._fail("close", exc) from exc

    def sweep(self) -> SweepRow:
        """:raises ConfigError: no such sweep."""
        try:
            with Session(self.engine) as s:
                found = s.get(SweepRow, self.sweep_id)
        except SQLAlchemyError as exc:
            raise self._fail("read", exc) from exc
        if found is None:
            raise ConfigError(f"no sweep {self.sweep_id!r} in the ledger at {self.where}")
        return found

    def results(self) -> list[Stored]:
        try:
            with Session(self.engine) as s:
                rows = list(
                    s.scalars(
                        select(SweepResultRow)
                        .where(col(SweepResultRow.sweep_id) == self.sweep_id)
                        .order_by(col(SweepResultRow.id))
                    )
                )
        except SQLAlchemyError as exc:
            raise self._fail("read the results of", exc) from exc
        return [
            Stored(
                key=r.task_key,
                kind=r.kind,
                window=r.window,
                params=json.loads(r.params),
                start=r.start,
                end=r.end,
                metrics=json.loads(r.metrics),
                equity=[(day, value) for day, value in json.loads(r.equity)],
                error=r.error,
                seconds=r.seconds,
            )
            for r in rows
        ]


def list_sweeps(engine: Engine, where: str = "") -> list[SweepRow]:
    try:
        with Session(engine) as s:
            return list(s.scalars(select(SweepRow).order_by(col(SweepRow.created_at).desc())))
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read the sweeps from the ledger at {where}") from exc
