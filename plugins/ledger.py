"""Reading the ledger: runs, decisions, orders with their status, fills, summaries."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe import PersistenceError
from tradepipe.logs import mask_account
from tradepipe.money import ZERO, fmt
from tradepipe.orders import TERMINAL, WORKING, OrderIntent, OrderStatus
from tradepipe.plugins.ledger_schema import (
    AccountRow,
    DecisionRow,
    FillRow,
    OrderEventRow,
    OrderRow,
    PositionRow,
    RejectedDecisionRow,
    RunRow,
    VerdictRow,
)
from tradepipe.sink import Unsettled

TERMINAL_STATES = tuple(sorted(status.value for status in TERMINAL))
ORDER_STATES = tuple(status.value for status in OrderStatus)
#: Latest statuses of an order that is still alive at the broker.
OPEN_STATES = tuple(status.value for status in WORKING if status is not OrderStatus.UNKNOWN)


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

    def run(self, run_id: str | None = None) -> RunRow | None:
        """The run ``run_id``, or the latest run when ``None``."""
        if run_id is None:
            latest = self.runs(limit=1)
            return latest[0] if latest else None
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
        return self._rows(FillRow, run_id, col(FillRow.id), limit)

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

    @staticmethod
    def _unfinished(run_id: str) -> Any:
        """Client order ids of the run's orders that have a history but no final status.

        A final status is always an order's last, so these are found by what
        their history lacks, without reading each order's latest change.
        """
        final = case((col(OrderEventRow.status).in_(TERMINAL_STATES), 1), else_=0)
        return (
            select(col(OrderEventRow.client_order_id))
            .where(col(OrderEventRow.run_id) == run_id)
            .group_by(col(OrderEventRow.client_order_id))
            .having(func.sum(final) == 0)
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

    def unsettled(self, namespace: str | None, exclude_run: str = "") -> list[Unsettled]:
        """Orders of ``namespace``'s runs (``None``: every run) sent without a final status."""
        try:
            with self._session() as s:
                which = col(RunRow.run_id) != exclude_run
                if namespace is not None:
                    which = which & (col(RunRow.namespace) == namespace)
                runs = list(s.scalars(select(col(RunRow.run_id)).where(which)))
                out: list[Unsettled] = []
                for run_id in runs:
                    latest = {
                        e.client_order_id: e
                        for e in s.scalars(self._latest_events(run_id, self._unfinished(run_id)))
                    }
                    open_ids = [cid for cid, e in latest.items() if e.status != "initialized"]
                    if not open_ids:
                        continue
                    # Executions of the order recorded by any run, by execution id: a
                    # later run that adopted the order while it was working at the
                    # broker recorded its fills there, and they must not be
                    # recovered into this run a second time.
                    fills: dict[str, dict[str, FillRow]] = {}
                    for f in s.scalars(
                        select(FillRow).where(col(FillRow.client_order_id).in_(open_ids))
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
                            )
                        )
                return out
        except SQLAlchemyError as exc:
            raise self._guard("unsettled orders") from exc

    def execution_ids(self) -> set[str]:
        """Every execution id recorded, in any run."""
        try:
            with self._session() as s:
                return set(s.scalars(select(col(FillRow.execution_id))))
        except SQLAlchemyError as exc:
            raise self._guard("executions") from exc

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

    def equity_curve(self, limit: int | None = None) -> list[AccountRow]:
        """The account's equity over time: snapshots of the latest snapshot's account.

        Replays snapshot each day's close, and every run, order and reconcile
        ends with a snapshot. Runs are taken from the most recent back, each
        only if all its snapshots come before those already taken: replays on
        an in-memory paper account, which all start again from the same cash
        over the same dates, would otherwise interleave into a zigzag; the
        latest such replay stands for them. Oldest first; ``limit`` keeps the
        most recent points.
        """
        newest = (col(AccountRow.ts).desc(), col(AccountRow.id).desc())
        points: list[AccountRow] = []
        try:
            with self._session() as s:
                latest = s.scalars(select(AccountRow).order_by(*newest).limit(1)).first()
                if latest is None:
                    return []
                account = col(AccountRow.account_id) == latest.account_id
                # Each run's span, from the index alone; only the rows of the runs
                # chosen (up to ``limit``) are read.
                spans = s.execute(
                    select(
                        col(AccountRow.run_id),
                        func.max(AccountRow.ts),
                        func.min(AccountRow.ts),
                        func.max(AccountRow.id),
                    )
                    .where(account)
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
                        select(AccountRow)
                        .where(account & (col(AccountRow.run_id) == run_id))
                        .order_by(*newest)
                    )
                    if limit:
                        query = query.limit(limit - len(points))
                    points.extend(s.scalars(query))
                    oldest = first
                    if limit and len(points) >= limit:
                        break
        except SQLAlchemyError as exc:
            raise self._guard("account snapshots") from exc
        points.reverse()
        return points

    def _status_counts(self, s: Session, run_id: str) -> tuple[dict[str, int], int]:
        """How many orders of the run are in each status now, and how many were sent.

        A terminal status is always an order's last, and no order reaches one
        twice: terminal statuses are counted straight from the events, in the
        same pass that counts the orders with any history (each has exactly one
        first event). Only when some of those never ended is their latest
        event looked up.
        """
        states = dict.fromkeys(ORDER_STATES, 0)
        first = func.sum(case((col(OrderEventRow.seq) == 1, 1), else_=0))
        counts = {
            status: (int(n), int(firsts or 0))
            for status, n, firsts in s.execute(
                select(col(OrderEventRow.status), func.count(), first)
                .where(col(OrderEventRow.run_id) == run_id)
                .group_by(col(OrderEventRow.status))
            )
        }
        ended = 0
        for status in TERMINAL_STATES:
            n = counts.get(status, (0, 0))[0]
            states[status] = n
            ended += n
        sent = counts.get(OrderStatus.SUBMITTED.value, (0, 0))[0]
        if ended == sum(firsts for _n, firsts in counts.values()):
            return states, sent  # every order with a history has ended
        # The unfinished orders are found first (few, as a rule); only their
        # histories are read, through the (run, order) index.
        unfinished = self._unfinished(run_id)
        latest: dict[str, str] = {}
        for cid, status in s.execute(
            select(col(OrderEventRow.client_order_id), col(OrderEventRow.status))
            .where(col(OrderEventRow.run_id) == run_id)
            .where(col(OrderEventRow.client_order_id).in_(unfinished))
            .order_by(col(OrderEventRow.seq))
        ):
            latest[cid] = status
        for status in latest.values():
            states[status] += 1
        return states, sent

    def summary(self, run_id: str) -> dict[str, Any]:
        """The run's figures, all read from the ledger."""
        run = self.run(run_id)
        if run is None:
            raise PersistenceError(f"no run {run_id} in the ledger at {self.where}")
        try:
            with self._session() as s:

                def count(model: Any) -> int:
                    stmt = (
                        select(func.count()).select_from(model).where(col(model.run_id) == run_id)
                    )
                    return int(s.scalar(stmt) or 0)

                states, sent = self._status_counts(s, run_id)
                # Summed in Python: SQLite would add the decimal text as floats.
                # Grouped first: a run's fills share a handful of distinct amounts.
                commissions = sum(
                    (
                        amount * n
                        for amount, n in s.execute(
                            select(col(FillRow.commission), func.count())
                            .where(col(FillRow.run_id) == run_id)
                            .group_by(col(FillRow.commission))
                        )
                    ),
                    ZERO,
                )
                decisions = count(DecisionRow)
                rejected = count(RejectedDecisionRow)
                orders = count(OrderRow)
                fills = count(FillRow)
        except SQLAlchemyError as exc:
            raise self._guard("the run summary") from exc
        positions, account = self.positions(run_id)
        return {
            "run_id": run.run_id,
            "status": run.status,
            "env": run.env,
            "broker": run.broker,
            "feed": run.feed,
            "ledger": self.where,
            "bars": run.bars,
            "decisions": decisions,
            "decisions_rejected": rejected,
            "orders": {
                "total": orders,
                "submitted": sent,
                "denied": states["denied"],
                "rejected": states["rejected"],
                "filled": states["filled"],
                "canceled": states["canceled"],
                "expired": states["expired"],
                "open": sum(states[k] for k in OPEN_STATES),
                "unknown": states["unknown"],
            },
            "fills": fills,
            "commissions": fmt(commissions),
            "positions": [position_json(p) for p in positions],
            "account_id": mask_account(account.account_id) if account else None,
            "cash": fmt(account.cash) if account else None,
            "equity": fmt(account.equity) if account else None,
            "realized_pnl": fmt(account.realized_pnl) if account else None,
            "unrealized_pnl": fmt(account.unrealized_pnl) if account else None,
        }

    def recent(self, limit: int = 50) -> dict[str, list[dict[str, Any]]]:
        """The latest decisions of any run, each with its verdicts and order, and fills.

        ``decisions``: newest first, each with ``verdicts`` (filter, outcome,
        reason, in the order judged) and ``order`` (client order id and latest
        status, or ``None`` when no order was made). ``rejected``: documents
        refused before they became decisions. ``fills``: newest first.
        """
        try:
            with self._session() as s:
                decisions = list(
                    s.scalars(select(DecisionRow).order_by(col(DecisionRow.id).desc()).limit(limit))
                )
                ids = {d.decision_id for d in decisions}
                runs = {d.run_id for d in decisions}
                verdicts: dict[tuple[str, str], list[dict[str, Any]]] = {}
                for v in s.scalars(
                    select(VerdictRow)
                    .where(col(VerdictRow.run_id).in_(runs) & col(VerdictRow.decision_id).in_(ids))
                    .order_by(col(VerdictRow.id))
                ):
                    verdicts.setdefault((v.run_id, v.decision_id), []).append(
                        {"filter": v.filter, "outcome": v.outcome, "reason": v.reason}
                    )
                orders: dict[tuple[str, str], OrderRow] = {
                    (o.run_id, o.decision_id): o
                    for o in s.scalars(
                        select(OrderRow).where(
                            col(OrderRow.run_id).in_(runs) & col(OrderRow.decision_id).in_(ids)
                        )
                    )
                }
                latest: dict[tuple[str, str], OrderEventRow] = {}
                cids = {o.client_order_id for o in orders.values()}
                for e in s.scalars(
                    select(OrderEventRow)
                    .where(
                        col(OrderEventRow.run_id).in_(runs)
                        & col(OrderEventRow.client_order_id).in_(cids)
                    )
                    .order_by(col(OrderEventRow.seq))
                ):
                    latest[(e.run_id, e.client_order_id)] = e
                rejected = list(
                    s.scalars(
                        select(RejectedDecisionRow)
                        .order_by(col(RejectedDecisionRow.id).desc())
                        .limit(limit)
                    )
                )
                fills = list(
                    s.scalars(select(FillRow).order_by(col(FillRow.id).desc()).limit(limit))
                )
        except SQLAlchemyError as exc:
            raise self._guard("recent activity") from exc

        def order(d: DecisionRow) -> dict[str, Any] | None:
            o = orders.get((d.run_id, d.decision_id))
            if o is None:
                return None
            event = latest.get((o.run_id, o.client_order_id))
            return {
                "client_order_id": o.client_order_id,
                "side": o.side,
                "quantity": fmt(o.quantity),
                "status": event.status if event else "initialized",
                "reason": event.reason if event else "",
            }

        return {
            "decisions": [
                {
                    **d.model_dump(mode="json", exclude={"id", "extra"}),
                    "verdicts": verdicts.get((d.run_id, d.decision_id), []),
                    "order": order(d),
                }
                for d in decisions
            ],
            "rejected": [r.model_dump(mode="json", exclude={"id"}) for r in rejected],
            "fills": [f.model_dump(mode="json", exclude={"id"}) for f in fills],
        }

    def chains(self, key: str) -> list[dict[str, Any]]:
        """Everything recorded about a decision id or a client order id, in any run.

        One chain per run and decision: the decision (``None`` if only its order
        is known), every verdict in order, each order with its status changes
        and fills. Empty when the ledger knows nothing of ``key``.
        """
        try:
            with self._session() as s:
                pairs: set[tuple[str, str]] = set()
                for model, field in (
                    (DecisionRow, DecisionRow.decision_id),
                    (OrderRow, OrderRow.client_order_id),
                ):
                    stmt = select(col(model.run_id), col(model.decision_id)).where(
                        col(field) == key
                    )
                    pairs.update((r, d) for r, d in s.execute(stmt))
                # A decision refused before it became an order is known by its
                # verdicts alone, which carry its client order id: a repeat, in a
                # later run, of a decision an earlier run sent, say. Its decision
                # id is one already found, when there is one (all indexed reads).
                ids = {d for _r, d in pairs}
                verdict = select(col(VerdictRow.run_id), col(VerdictRow.decision_id))
                if ids:
                    verdict = verdict.where(
                        col(VerdictRow.decision_id).in_(ids)
                        & (col(VerdictRow.client_order_id) == key)
                    )
                else:
                    verdict = verdict.where(
                        (col(VerdictRow.decision_id) == key)
                        | (col(VerdictRow.client_order_id) == key)
                    )
                pairs.update((r, d) for r, d in s.execute(verdict))
                out = []
                for run_id, decision_id in pairs:
                    out.append(self._chain(s, run_id, decision_id))
        except SQLAlchemyError as exc:
            raise self._guard("the decision's history") from exc
        out.sort(key=lambda c: (c["started_at"] or "", c["run_id"]))
        return out

    def _chain(self, s: Session, run_id: str, decision_id: str) -> dict[str, Any]:
        def where(model: Any) -> Any:
            return (col(model.run_id) == run_id) & (col(model.decision_id) == decision_id)

        run = s.get(RunRow, run_id)
        decision = s.scalars(select(DecisionRow).where(where(DecisionRow))).first()
        verdicts = s.scalars(
            select(VerdictRow).where(where(VerdictRow)).order_by(col(VerdictRow.id))
        )
        orders = []
        for order in s.scalars(select(OrderRow).where(where(OrderRow)).order_by(col(OrderRow.id))):
            cid = order.client_order_id
            events = s.scalars(
                select(OrderEventRow)
                .where(
                    (col(OrderEventRow.run_id) == run_id)
                    & (col(OrderEventRow.client_order_id) == cid)
                )
                .order_by(col(OrderEventRow.seq))
            )
            fills = s.scalars(
                select(FillRow)
                .where((col(FillRow.run_id) == run_id) & (col(FillRow.client_order_id) == cid))
                .order_by(col(FillRow.id))
            )
            orders.append(
                {
                    "order": order.model_dump(mode="json", exclude={"id", "run_id"}),
                    "events": [e.model_dump(mode="json", exclude={"id", "run_id"}) for e in events],
                    "fills": [f.model_dump(mode="json", exclude={"id", "run_id"}) for f in fills],
                }
            )
        return {
            "run_id": run_id,
            "started_at": run.started_at.isoformat() if run else None,
            "decision_id": decision_id,
            "decision": (
                decision.model_dump(mode="json", exclude={"id", "run_id"}) if decision else None
            ),
            "verdicts": [
                {
                    **v.model_dump(mode="json", exclude={"id", "run_id", "figures"}),
                    "figures": json.loads(v.figures or "{}"),
                }
                for v in verdicts
            ],
            "orders": orders,
        }


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


def position_json(p: PositionRow) -> dict[str, Any]:
    value = p.quantity * p.mark_price * p.multiplier if p.mark_price is not None else None
    unrealized = None
    if p.mark_price is not None:
        unrealized = (p.mark_price - p.avg_cost) * p.quantity * p.multiplier
    return {
        "symbol": p.symbol,
        "quantity": fmt(p.quantity),
        "avg_cost": fmt(p.avg_cost),
        "mark_price": fmt(p.mark_price),
        "market_value": fmt(value),
        "unrealized_pnl": fmt(unrealized),
        "realized_pnl": fmt(p.realized_pnl),
    }
