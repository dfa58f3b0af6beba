"""Reading the ledger: runs, decisions, orders with their status, fills, snapshots.

A run's summary is built in :mod:`.ledger_summary`, a decision's history and the
latest activity in :mod:`.ledger_history`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Row, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe import ConfigError, PersistenceError
from tradepipe.lifecycle import Opening
from tradepipe.logs import mask_account
from tradepipe.money import ZERO
from tradepipe.orders import OrderIntent, OrderStatus
from tradepipe.plugins.ledger import history
from tradepipe.plugins.ledger import summary as summaries
from tradepipe.plugins.ledger.schema import (
    FILL_ROWS,
    AccountRow,
    DecisionRow,
    FillRow,
    ImportRow,
    OrderEventRow,
    OrderRow,
    PositionRow,
    RejectedDecisionRow,
    RunRow,
    VerdictRow,
    fills_of_orders,
    fills_of_run,
)
from tradepipe.sink import Unsettled, account_label, account_of

if TYPE_CHECKING:
    from tradepipe.plugins.ledger.tally import RunTally

#: The namespace of reconciliation runs, which only correct earlier runs.
RECONCILE_NAMESPACE = "reconcile"
#: The namespace (and account) of a run migration 0022 made for rows whose run
#: had no row: never the latest run, and its orders are neither settled nor followed.
ORPHANED = "(rows without a run)"


def ledger_sink(settings: Any, host: Any, *, required: bool = False) -> Any:
    """The configured ``sql`` sink when its ledger exists, else ``None``.

    A database URL counts as existing; a file must be there (reading never creates one).

    :raises PersistenceError: ``required`` and there is no ledger yet, saying how to make one.
    """
    from tradepipe.pipeline import make_component  # the pipeline imports this module's users

    sink = make_component(host, settings, "sink", "sql")
    if not sink.exists():
        if required:
            raise PersistenceError(
                f"no ledger at {sink.settings.path}; run `tradepipe run-pipeline` first, "
                "or point [sinks.sql] path at an existing ledger"
            )
        return None
    return sink


@contextlib.contextmanager
def open_ledger(settings: Any, host: Any, *, required: bool = False) -> Iterator[Ledger | None]:
    """The configured ledger for reading, or ``None`` when there is none yet (see
    :func:`ledger_sink`); its engine is disposed of on leaving, so a pooled PostgreSQL
    connection is never left for the garbage collector."""
    sink = ledger_sink(settings, host, required=required)
    if sink is None:
        yield None
        return
    engine = sink.engine()
    try:
        yield Ledger(engine, sink.where)
    finally:
        engine.dispose()


#: What ``--run`` takes for the latest pipeline run (:meth:`Ledger.run`).
LATEST = "latest"


class Ledger:
    """Read access to one ledger database."""

    def __init__(self, engine: Engine, where: str = "") -> None:
        self.engine = engine
        self.where = where

    def _session(self) -> Session:
        return Session(self.engine)

    def _guard(self, what: str) -> PersistenceError:
        return PersistenceError(f"could not read {what} from the ledger at {self.where}")

    def runs(self, limit: int = 20) -> list[RunRow]:
        try:
            with self._session() as s:
                stmt = select(RunRow).order_by(col(RunRow.started_at).desc()).limit(limit)
                return list(s.scalars(stmt))
        except SQLAlchemyError as exc:
            raise self._guard("runs") from exc

    def accounts(self) -> list[dict[str, Any]]:
        """Every account the ledger's runs traded against, or trades were imported
        for, the latest first: ``{"account", "label", "runs", "imports", "first",
        "last"}`` (see :func:`run_account`; an import counts at its time)."""
        try:
            with self._session() as s:
                found = s.execute(
                    select(
                        col(RunRow.account),
                        func.count(),
                        func.min(col(RunRow.started_at)),
                        func.max(col(RunRow.started_at)),
                    ).group_by(col(RunRow.account))
                ).all()
                imported = s.execute(
                    select(
                        col(ImportRow.account),
                        func.count(),
                        func.min(col(ImportRow.imported_at)),
                        func.max(col(ImportRow.imported_at)),
                    ).group_by(col(ImportRow.account))
                ).all()
        except SQLAlchemyError as exc:
            raise self._guard("the accounts") from exc
        accounts: dict[str, dict[str, Any]] = {}
        for key, n, first, last in found:
            if key:
                accounts[key] = {"account": key, "label": account_label(key), "runs": n}
                accounts[key].update(imports=0, first=first, last=last)
        for key, n, first, last in imported:
            known = accounts.setdefault(
                key,
                {"account": key, "label": account_label(key), "runs": 0, "imports": 0},
            )
            known["imports"] = n
            known["first"] = min(known.get("first", first), first)
            known["last"] = max(known.get("last", last), last)
        return sorted(accounts.values(), key=lambda a: a["last"], reverse=True)

    def account(self, selector: str | None = None, run_id: str | None = None) -> str:
        """The account one read covers: the one ``selector`` names (its key, or
        what its label shows: an account id, masked or not, a paper account
        file's name, a replay's run id), else run ``run_id``'s, else the latest
        trading run's. ``""`` when the ledger has no run.

        :raises ConfigError: ``selector`` or ``run_id`` names none, ``selector``
            more than one, or both are given.
        """
        if selector and run_id:
            raise ConfigError("give an account (--account) or a run (--run), not both")
        if selector:
            accounts = self.accounts()
            wanted = selector.strip()
            exact: list[str] = [a["account"] for a in accounts if a["account"] == wanted]
            if exact:
                return exact[0]
            found: list[str] = [a["account"] for a in accounts if _names(a["account"], wanted)]
            if len(found) == 1:
                return found[0]
            known = ", ".join(a["account"] for a in accounts[:10]) or "none"
            problem = "matches several accounts" if found else "names no account in the ledger"
            raise ConfigError(
                f"--account {selector!r} {problem} (tradepipe ledger accounts lists them: {known})"
            )
        run = self.run(run_id)
        if run is None:
            if run_id is not None:
                raise ConfigError(f"no run {run_id} in the ledger at {self.where}")
            # No trading run: the account trades were last imported for, if any.
            listed = self.accounts()
            return str(listed[0]["account"]) if listed else ""
        return account_of(run)

    def account_runs(self, account: str) -> Any:
        """A subquery of the run ids of ``account`` (for ``IN``)."""
        return select(col(RunRow.run_id)).where(col(RunRow.account) == account)

    def run(self, run_id: str | None = None) -> RunRow | None:
        """The run ``run_id``, or when ``None`` (or ``latest``) the latest trading run.

        Reconciliation runs (``reconcile --fix``, a settled cancel) only carry
        corrections to earlier runs; "the last run" a person means is the
        latest run of a pipeline, whether or not any of its orders went out.
        """
        if run_id is None or run_id == LATEST:
            try:
                with self._session() as s:
                    stmt = (
                        select(RunRow)
                        .where(col(RunRow.namespace).not_in([RECONCILE_NAMESPACE, ORPHANED]))
                        .order_by(col(RunRow.started_at).desc())
                        .limit(1)
                    )
                    return s.scalars(stmt).first()
            except SQLAlchemyError as exc:
                raise self._guard("runs") from exc
        try:
            with self._session() as s:
                return s.get(RunRow, run_id)
        except SQLAlchemyError as exc:
            raise self._guard("the run") from exc

    def _rows(self, model: Any, run_id: str, order: Any, limit: int | None) -> list[Any]:
        try:
            with self._session() as s:
                stmt = select(model).where(col(model.run_id) == run_id).order_by(order)
                if limit:
                    stmt = stmt.limit(limit)
                return list(s.scalars(stmt))
        except SQLAlchemyError as exc:
            raise self._guard(model.__tablename__) from exc

    def decisions(self, run_id: str, limit: int | None = None) -> list[DecisionRow]:
        return self._rows(DecisionRow, run_id, col(DecisionRow.id), limit)

    def rejected_decisions(self, run_id: str) -> list[RejectedDecisionRow]:
        return self._rows(RejectedDecisionRow, run_id, col(RejectedDecisionRow.id), None)

    def verdicts(self, run_id: str, limit: int | None = None) -> list[VerdictRow]:
        return self._rows(VerdictRow, run_id, col(VerdictRow.id), limit)

    def fills(self, run_id: str, limit: int | None = None) -> list[FillRow]:
        if not limit:
            return self._rows(FillRow, run_id, col(FillRow.id), None)
        # The first ``limit`` are chosen in the table: through the view, every fill
        # of the run would find its order's row before the sort (migration 0026).
        fills = FILL_ROWS.c
        first = select(fills.id).where(fills_of_run(run_id)).order_by(fills.id).limit(limit)
        try:
            with self._session() as s:
                stmt = select(FillRow).where(col(FillRow.id).in_(first)).order_by(col(FillRow.id))
                return list(s.scalars(stmt))
        except SQLAlchemyError as exc:
            raise self._guard(FillRow.__tablename__) from exc

    def order_events(self, run_id: str, client_order_id: str) -> list[OrderEventRow]:
        try:
            with self._session() as s:
                stmt = (
                    select(OrderEventRow)
                    .where(col(OrderEventRow.run_id) == run_id)
                    .where(col(OrderEventRow.client_order_id) == client_order_id)
                    .order_by(col(OrderEventRow.seq))
                )
                return list(s.scalars(stmt))
        except SQLAlchemyError as exc:
            raise self._guard("order events") from exc

    def _latest_events(self, run_id: str, among: Any = None) -> Any:
        """The latest status change of each order of the run (``among``: of those ids)."""
        mine = col(OrderEventRow.run_id) == run_id
        if among is not None:
            mine = mine & col(OrderEventRow.client_order_id).in_(among)
        last = (
            select(
                col(OrderEventRow.client_order_id).label("cid"),
                func.max(OrderEventRow.seq).label("seq"),
            )
            .where(mine)
            .group_by(col(OrderEventRow.client_order_id))
            .subquery()
        )
        return (
            select(OrderEventRow)
            .join(
                last,
                (col(OrderEventRow.client_order_id) == last.c.cid)
                & (col(OrderEventRow.seq) == last.c.seq),
            )
            .where(mine)
        )

    def orders(self, run_id: str, limit: int | None = None) -> list[tuple[OrderRow, str, str]]:
        """Orders with their current status and the reason of their last change."""
        try:
            with self._session() as s:
                stmt = (
                    select(OrderRow)
                    .where(col(OrderRow.run_id) == run_id)
                    .order_by(col(OrderRow.id))
                )
                if limit:
                    stmt = stmt.limit(limit)
                rows = list(s.scalars(stmt))
                # Only the shown orders' histories are read when a limit shows few
                # (an id list longer than that would exceed a driver's parameters).
                among = [row.client_order_id for row in rows] if limit and limit <= 1000 else None
                latest = {
                    e.client_order_id: e for e in s.scalars(self._latest_events(run_id, among))
                }
                out = []
                for row in rows:
                    event = latest.get(row.client_order_id)
                    out.append(
                        (
                            row,
                            event.status if event else "initialized",
                            event.reason if event else "",
                        )
                    )
                return out
        except SQLAlchemyError as exc:
            raise self._guard("orders") from exc

    def client_ids(self, namespace: str) -> set[str]:
        """Client order ids of every order created in runs of ``namespace``."""
        try:
            with self._session() as s:
                stmt = (
                    select(col(OrderRow.client_order_id))
                    .join(RunRow, col(RunRow.run_id) == col(OrderRow.run_id))
                    .where(col(RunRow.namespace) == namespace)
                )
                return set(s.scalars(stmt))
        except SQLAlchemyError as exc:
            raise self._guard("client order ids") from exc

    def unsettled(
        self, namespace: str | None, exclude_run: str = "", account: str | None = None
    ) -> list[Unsettled]:
        """Orders of ``namespace``'s runs (``None``: every run) sent without a final status.

        ``account``: only the runs filed under that account key (and those recorded
        before runs said what they traded). Each run's history is read to find its
        unfinished orders, so the replays a ledger keeps are left out this way.
        """
        try:
            with self._session() as s:
                which = (col(RunRow.run_id) != exclude_run) & (col(RunRow.namespace) != ORPHANED)
                if namespace is not None:
                    which = which & (col(RunRow.namespace) == namespace)
                if account is not None:
                    which = which & (
                        (col(RunRow.account) == account) | col(RunRow.account).is_(None)
                    )
                runs = list(s.scalars(select(col(RunRow.run_id)).where(which)))
                out: list[Unsettled] = []
                for run_id in runs:
                    unfinished = summaries.unfinished(s, run_id)
                    if not unfinished:
                        continue  # one pass over the run's history, as a rule
                    latest = {
                        e.client_order_id: e
                        for e in s.scalars(self._latest_events(run_id, unfinished))
                    }
                    open_ids = [cid for cid, e in latest.items() if e.status != "initialized"]
                    if not open_ids:
                        continue
                    # Executions of the order recorded by any run, by execution id: a
                    # later run that adopted the order while it was working at the
                    # broker recorded its fills there, and they must not be
                    # recovered into this run a second time.
                    fills: dict[str, dict[str, FillRow]] = {}
                    # Only trades: an expiry recorded under the order is no execution of it.
                    for f in s.scalars(
                        select(FillRow).where(
                            fills_of_orders(s, open_ids)
                            & (col(FillRow.kind) == "trade")
                            # a combo's fill counts once, by its own row
                            & col(FillRow.combo_execution_id).is_(None)
                        )
                    ):
                        fills.setdefault(f.client_order_id, {}).setdefault(f.execution_id, f)
                    rows = s.scalars(
                        select(OrderRow).where(
                            (col(OrderRow.run_id) == run_id)
                            & col(OrderRow.client_order_id).in_(open_ids)
                        )
                    )
                    for row in rows:
                        event = latest[row.client_order_id]
                        done = list(fills.get(row.client_order_id, {}).values())
                        out.append(
                            Unsettled(
                                run_id=run_id,
                                intent=_intent(row),
                                status=OrderStatus(event.status),
                                seq=event.seq,
                                filled=sum((f.quantity for f in done), ZERO),
                                executions=frozenset(f.execution_id for f in done),
                                broker_order_id=event.broker_order_id,
                                updated_at=event.ts,
                            )
                        )
                return out
        except SQLAlchemyError as exc:
            raise self._guard("unsettled orders") from exc

    def opening(self, namespace: str, symbol: str, side: str) -> Opening | None:
        """The order of ``namespace``'s runs whose fill last opened a position in ``symbol``.

        The latest trade (no settlement) of ``symbol`` on ``side`` under an
        order, in any run of ``namespace``; ``None`` if there is none.
        """
        try:
            with self._session() as s:
                stmt = (
                    select(
                        col(FillRow.run_id),
                        col(FillRow.client_order_id),
                        col(FillRow.decision_id),
                    )
                    .join(RunRow, col(RunRow.run_id) == col(FillRow.run_id))
                    .where(
                        (col(RunRow.namespace) == namespace)
                        & (col(FillRow.symbol) == symbol)
                        & (col(FillRow.side) == side)
                        & (col(FillRow.kind) == "trade")
                        & ~col(FillRow.is_combo)  # a combo's legs are the positions
                        & (col(FillRow.client_order_id) != "")
                    )
                    .order_by(col(FillRow.ts).desc(), col(FillRow.id).desc())
                    .limit(1)
                )
                row = s.execute(stmt).first()
        except SQLAlchemyError as exc:
            raise self._guard("the order that opened a position") from exc
        return None if row is None else Opening(row[0], row[1], row[2])

    def unsettled_of(self, client_ids: Iterable[str], exclude_run: str = "") -> list[Unsettled]:
        """Of ``client_ids``, the orders the ledger holds without a final status, in any run.

        One per client order id: the earliest run's (the run that sent it, or
        that first adopted it from the broker). Indexed reads of those ids only,
        however many runs the ledger holds.
        """
        wanted = sorted(set(client_ids))
        out: list[Unsettled] = []
        try:
            with self._session() as s:
                for start in range(0, len(wanted), 500):
                    out.extend(self._unsettled_of(s, wanted[start : start + 500], exclude_run))
        except SQLAlchemyError as exc:
            raise self._guard("unsettled orders") from exc
        return out

    def _unsettled_of(self, s: Session, ids: list[str], exclude_run: str) -> list[Unsettled]:
        rows = s.execute(
            select(OrderRow, col(RunRow.started_at))
            .join(RunRow, col(RunRow.run_id) == col(OrderRow.run_id))
            .where(col(OrderRow.client_order_id).in_(ids) & (col(OrderRow.run_id) != exclude_run))
            .order_by(col(RunRow.started_at), col(OrderRow.id))
        ).all()
        if not rows:
            return []
        latest: dict[tuple[str, str], OrderEventRow] = {}
        # By run and order (the histories' index), not by order alone: that read
        # every status change of the ledger.
        runs = {row.run_id for row, _started in rows}
        for e in s.scalars(
            select(OrderEventRow)
            .where(
                col(OrderEventRow.run_id).in_(runs) & col(OrderEventRow.client_order_id).in_(ids)
            )
            .order_by(col(OrderEventRow.seq))
        ):
            latest[(e.run_id, e.client_order_id)] = e
        fills: dict[str, dict[str, FillRow]] = {}
        for f in s.scalars(
            select(FillRow).where(
                fills_of_orders(s, ids)
                & (col(FillRow.kind) == "trade")
                # a combo's fill counts once, by its own row
                & col(FillRow.combo_execution_id).is_(None)
            )
        ):
            fills.setdefault(f.client_order_id, {}).setdefault(f.execution_id, f)
        out: dict[str, Unsettled] = {}
        for row, _started in rows:
            event = latest.get((row.run_id, row.client_order_id))
            if row.client_order_id in out or event is None or event.status == "initialized":
                continue
            status = OrderStatus(event.status)
            if status.is_terminal:
                continue
            done = list(fills.get(row.client_order_id, {}).values())
            out[row.client_order_id] = Unsettled(
                run_id=row.run_id,
                intent=_intent(row),
                status=status,
                seq=event.seq,
                filled=sum((f.quantity for f in done), ZERO),
                executions=frozenset(f.execution_id for f in done),
                broker_order_id=event.broker_order_id,
                updated_at=event.ts,
            )
        return list(out.values())

    def execution_ids(self) -> set[str]:
        """Every execution id recorded, in any run."""
        try:
            with self._session() as s:
                return set(s.scalars(select(col(FillRow.execution_id))))
        except SQLAlchemyError as exc:
            raise self._guard("executions") from exc

    def orders_of_executions(self, execution_ids: Iterable[str]) -> dict[str, str]:
        """The client order id each of ``execution_ids`` was recorded under (those known)."""
        wanted = list(execution_ids)
        out: dict[str, str] = {}
        try:
            with self._session() as s:
                for start in range(0, len(wanted), 500):
                    stmt = select(col(FillRow.execution_id), col(FillRow.client_order_id)).where(
                        col(FillRow.execution_id).in_(wanted[start : start + 500])
                    )
                    out.update((e, c) for e, c in s.execute(stmt) if c)
        except SQLAlchemyError as exc:
            raise self._guard("executions") from exc
        return out

    def all_client_ids(self) -> set[str]:
        """Every client order id the ledger has an order for, in any run."""
        try:
            with self._session() as s:
                return set(s.scalars(select(col(OrderRow.client_order_id))))
        except SQLAlchemyError as exc:
            raise self._guard("client order ids") from exc

    def latest_positions(self) -> tuple[str, dict[str, Decimal]] | None:
        """The most recent account snapshot's positions: ``(run_id, {symbol: quantity})``."""
        try:
            with self._session() as s:
                account = s.scalars(
                    select(AccountRow).order_by(
                        col(AccountRow.ts).desc(), col(AccountRow.id).desc()
                    )
                ).first()
            if account is None:
                return None
            rows, _ = self.positions(account.run_id)
            return account.run_id, {p.symbol: p.quantity for p in rows if p.quantity}
        except SQLAlchemyError as exc:
            raise self._guard("positions") from exc

    def positions(self, run_id: str) -> tuple[list[PositionRow], AccountRow | None]:
        """The run's last snapshot of positions and of the account."""
        try:
            with self._session() as s:
                account = s.scalars(
                    select(AccountRow)
                    .where(col(AccountRow.run_id) == run_id)
                    .order_by(col(AccountRow.id).desc())
                    .limit(1)
                ).first()
                if account is None:
                    return [], None
                positions = s.scalars(
                    select(PositionRow)
                    .where(col(PositionRow.run_id) == run_id)
                    .where(col(PositionRow.ts) == account.ts)
                    .order_by(col(PositionRow.symbol))
                )
                return list(positions), account
        except SQLAlchemyError as exc:
            raise self._guard("positions") from exc

    def equity_curve(self, limit: int | None = None, account: str = "") -> list[Row[Any]]:
        """The account's equity over time: the snapshots of the runs of ``account``
        (a key of :meth:`accounts`; empty: the latest snapshot's account).

        Replays snapshot each day's close, and every run, order and reconcile
        ends with a snapshot. Runs are taken from the most recent back, each
        only if all its snapshots come before those already taken: replays on
        an in-memory paper account, which all start again from the same cash
        over the same dates, would otherwise interleave into a zigzag; the
        latest such replay stands for them. Oldest first; ``limit`` keeps the
        most recent points. Each point is a row of ``account_snapshots`` (the
        columns of :class:`AccountRow` as attributes): plain rows, not mapped
        objects, read several times faster, as the dashboard polls it.
        """
        newest = (col(AccountRow.ts).desc(), col(AccountRow.id).desc())
        table = AccountRow.__table__  # type: ignore[attr-defined]
        points: list[Row[Any]] = []
        try:
            with self._session() as s:
                among = select(AccountRow)
                if account:
                    among = among.where(col(AccountRow.run_id).in_(self.account_runs(account)))
                latest = s.scalars(among.order_by(*newest).limit(1)).first()
                if latest is None:
                    return []
                ours: Any
                if account:
                    ours = col(AccountRow.run_id).in_(self.account_runs(account))
                else:
                    ours = col(AccountRow.account_id) == latest.account_id
                # Each run's span, from the index alone; only the rows of the runs
                # chosen (up to ``limit``) are read.
                spans = s.execute(
                    select(
                        col(AccountRow.run_id),
                        func.max(AccountRow.ts),
                        func.min(AccountRow.ts),
                        func.max(AccountRow.id),
                    )
                    .where(ours)
                    .group_by(col(AccountRow.run_id))
                ).all()
                oldest: dt.datetime | None = None
                # Runs by their newest snapshot, newest first.
                for run_id, last, first, _last_id in sorted(
                    spans, key=lambda span: (span[1], span[3]), reverse=True
                ):
                    if oldest is not None and last > oldest:
                        continue
                    query = (
                        select(table)
                        .where(ours & (col(AccountRow.run_id) == run_id))
                        .order_by(*newest)
                    )
                    if limit:
                        query = query.limit(limit - len(points))
                    points.extend(s.execute(query))
                    oldest = first
                    if limit and len(points) >= limit:
                        break
        except SQLAlchemyError as exc:
            raise self._guard("account snapshots") from exc
        points.reverse()
        return points

    def summary(self, run_id: str, tally: RunTally | None = None) -> dict[str, Any]:
        """The run's figures, read from the ledger (see :mod:`.summary`).

        ``tally``: the run's figures as the sink that wrote it counted them
        (:mod:`.tally`), taken in place of reading its status changes and fills
        back when the ledger holds exactly the rows that sink wrote.
        """
        run = self.run(run_id)
        if run is None:
            raise PersistenceError(f"no run {run_id} in the ledger at {self.where}")
        try:
            with self._session() as s:
                if tally is not None and tally.exact and summaries.written(s, run_id) == tally.rows:
                    counts, trades = tally.figures(), tally.trades
                else:
                    counts, trades = summaries.figures(s, run_id), None
                performance = summaries.metrics(s, run_id, trades)
        except SQLAlchemyError as exc:
            raise self._guard("the run summary") from exc
        positions, account = self.positions(run_id)
        document = summaries.document(run, counts, positions, account, self.where)
        return {**document, "metrics": performance}

    def recent(self, limit: int = 50) -> dict[str, list[dict[str, Any]]]:
        """The latest activity of any run (see :func:`.ledger_history.recent`)."""
        try:
            with self._session() as s:
                return history.recent(s, limit)
        except SQLAlchemyError as exc:
            raise self._guard("recent activity") from exc

    def chains(self, key: str) -> list[dict[str, Any]]:
        """Everything recorded about a decision or order id (see :func:`.ledger_history.chains`)."""
        try:
            with self._session() as s:
                return history.chains(s, key)
        except SQLAlchemyError as exc:
            raise self._guard("the decision's history") from exc

    def explained(self, key: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """What ``explain`` shows of ``key``: every run's record of it, or only
        ``run_id``'s (``latest``: the newest run that has one).

        :raises NotInLedger: nothing about ``key`` (in that run), or no such run.
        """
        chains = self.chains(key)
        if not chains:
            raise NotInLedger(f"the ledger knows no decision or order {key!r}")
        if run_id == LATEST:
            run_id = chains[-1]["run_id"]
        if run_id is None:
            return chains
        mine = [c for c in chains if c["run_id"] == run_id]
        if mine:
            return mine
        if self.run(run_id) is None:
            raise NotInLedger(f"the ledger has no run {run_id!r}", no_run=True)
        raise NotInLedger(f"run {run_id!r} recorded nothing about {key!r}")


class NotInLedger(LookupError):
    """What was asked for is not in the ledger; the message says what.

    :param no_run: the run named does not exist (not just silent about the id).
    """

    def __init__(self, message: str, *, no_run: bool = False) -> None:
        super().__init__(message)
        self.no_run = no_run


def _intent(row: OrderRow) -> OrderIntent:
    instrument = json.loads(row.instrument) if row.instrument else None
    return OrderIntent.model_validate(
        {
            "client_order_id": row.client_order_id,
            "decision_id": row.decision_id,
            "source": row.source,
            "symbol": row.symbol,
            "side": row.side,
            "quantity": row.quantity,
            "order_type": row.order_type,
            "limit_price": row.limit_price,
            "stop_price": row.stop_price,
            "tif": row.tif,
            "outside_rth": row.outside_rth,
            "stop_loss": row.stop_loss,
            "take_profit": row.take_profit,
            "reference_price": row.reference_price,
            "created_at": row.created_at,
            "instrument": instrument,
            "option_risk": json.loads(row.option_risk) if row.option_risk else None,
        }
    )


def _names(key: str, wanted: str) -> bool:
    """Whether ``wanted`` is what a person would call the account ``key``."""
    kind, _, rest = key.partition(":")
    if kind == "account":
        return wanted in (rest, mask_account(rest), f"account:{mask_account(rest)}")
    if kind == "paper":
        return wanted in (rest, Path(rest).name)
    return wanted == rest
