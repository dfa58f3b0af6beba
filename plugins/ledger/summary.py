"""A run's summary from the ledger: its order counts by status, fills, commissions and account.

What ``tradepipe run-pipeline`` prints at the end of a run (and ``--json``
gives); :class:`~tradepipe.plugins.ledger.queries.Ledger` opens the session and
reports its errors.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import case, func, select, union_all
from sqlmodel import Session, col
from tradepipe.decisions import Action
from tradepipe.logs import mask_account
from tradepipe.money import ZERO, money_text
from tradepipe.orders import TERMINAL, WORKING, OrderStatus
from tradepipe.plugins.ledger.schema import (
    FILL_ROWS,
    AccountRow,
    DecisionRow,
    JudgementRow,
    OrderRow,
    PositionRow,
    RejectedDecisionRow,
    RunRow,
    StatusChangeRow,
    UnmatchedOrderEventRow,
    VerdictHeadRow,
    fills_of_run,
)
from tradepipe.services.figures import position_figures
from tradepipe.sink import account_fields, account_of

if TYPE_CHECKING:
    from tradepipe.plugins.research.metrics import TradeFigures

TERMINAL_STATES = tuple(sorted(status.value for status in TERMINAL))
ORDER_STATES = tuple(status.value for status in OrderStatus)
#: Latest statuses of an order that is still alive at the broker.
OPEN_STATES = tuple(status.value for status in WORKING if status is not OrderStatus.UNKNOWN)


#: Order ids named in one statement (drivers limit a statement's parameters).
_IDS_AT_ONCE = 1000


def _orders_of(run_id: str) -> Any:
    """The row ids of the run's orders (the orders' index by run, read alone)."""
    return select(col(OrderRow.id)).where(col(OrderRow.run_id) == run_id)


def _order_range(s: Session, run_id: str) -> tuple[Any, Any]:
    """The lowest and highest row ids of the run's orders (``None``s without any),
    from the orders' index by run."""
    # id + 0: PostgreSQL took min(id) by walking the primary key from its start
    # until it met the run (most of the table for a late run), not the run's index.
    ids = col(OrderRow.id) + 0
    lo, hi = s.execute(
        select(func.min(ids), func.max(ids)).where(col(OrderRow.run_id) == run_id)
    ).one()
    return lo, hi


def _changes_of(s: Session, run_id: str) -> Any:
    """A condition picking the status changes of the run's orders.

    The run's order rows span a range of ids (its batches, other runs' between
    them): the range is read first, from the orders' index by run, so the
    changes are found through a range of their own index on either database,
    however many runs the ledger holds; the run's ids then pick them out.
    (Asked for the run's ids alone, PostgreSQL planned a scan of every run's
    changes.)
    """
    lo, hi = _order_range(s, run_id)
    if lo is None:
        return None
    order = col(StatusChangeRow.order_id)
    return order.between(lo, hi) & order.in_(_orders_of(run_id))


def _final(status: Any) -> Any:
    return case((status.in_(TERMINAL_STATES), 1), else_=0)


def _never_ended(mine: Any) -> Any:
    """Row ids of the orders whose changes ``mine`` picks that have no final one."""
    changes = col(StatusChangeRow.order_id)
    return (
        select(changes)
        .where(mine)
        .group_by(changes)
        .having(func.sum(_final(col(StatusChangeRow.status))) == 0)
    )


def _never_ended_unmatched(run_id: str) -> Any:
    """Client order ids of the run's changes kept by migration 0019 without an order
    row (see :class:`UnmatchedOrderEventRow`) that have no final one."""
    kept = col(UnmatchedOrderEventRow.client_order_id)
    return (
        select(kept)
        .where(col(UnmatchedOrderEventRow.run_id) == run_id)
        .group_by(kept)
        .having(func.sum(_final(col(UnmatchedOrderEventRow.status))) == 0)
    )


def unfinished(s: Session, run_id: str) -> list[str]:
    """Client order ids of the run's orders that have a history but no final status.

    A final status is always an order's last, so these are found by what
    their history lacks, without reading each order's latest change. Read from
    the tables: the ``order_events`` view would join every change of the run
    to its order first.
    """
    kept = _never_ended_unmatched(run_id)
    changes = _changes_of(s, run_id)
    if changes is None:
        return list(s.scalars(kept))
    never = _never_ended(changes)
    return list(
        s.scalars(
            union_all(
                select(col(OrderRow.client_order_id)).where(col(OrderRow.id).in_(never)), kept
            )
        )
    )


def order_counts(s: Session, run_id: str) -> tuple[dict[str, int], int]:
    """How many orders of the run are in each status now, and how many were sent.

    A terminal status is always an order's last, and no order reaches one
    twice: terminal statuses are counted straight from the changes, in the
    same pass that counts the orders with any history (each has exactly one
    first change). Only when some of those never ended is their latest
    change looked up.
    """
    states = dict.fromkeys(ORDER_STATES, 0)
    counts: dict[str, tuple[int, int]] = {}
    changes = _changes_of(s, run_id)
    tables: list[tuple[Any, Any]] = [
        (UnmatchedOrderEventRow, col(UnmatchedOrderEventRow.run_id) == run_id)
    ]
    if changes is not None:
        tables.append((StatusChangeRow, changes))
    for table, mine in tables:
        by = col(table.status)
        first = func.sum(case((col(table.seq) == 1, 1), else_=0))
        for name, n, firsts in s.execute(select(by, func.count(), first).where(mine).group_by(by)):
            had, had_first = counts.get(name, (0, 0))
            counts[name] = (had + int(n), had_first + int(firsts or 0))
    ended = 0
    for status in TERMINAL_STATES:
        n = counts.get(status, (0, 0))[0]
        states[status] = n
        ended += n
    sent = counts.get(OrderStatus.SUBMITTED.value, (0, 0))[0]
    if ended == sum(firsts for _n, firsts in counts.values()):
        return states, sent  # every order with a history has ended
    # The unfinished orders are found first (few, as a rule); only their
    # histories are read, through the index of changes by order.
    latest: dict[Any, str] = {}
    order = col(StatusChangeRow.order_id)
    never = [] if changes is None else list(s.scalars(_never_ended(changes)))
    for at in range(0, len(never), _IDS_AT_ONCE):
        for key, status in s.execute(
            select(order, col(StatusChangeRow.status))
            .where(order.in_(never[at : at + _IDS_AT_ONCE]))
            .order_by(col(StatusChangeRow.seq))
        ):
            latest[key] = status
    kept = col(UnmatchedOrderEventRow.client_order_id)
    for cid, status in s.execute(
        select(kept, col(UnmatchedOrderEventRow.status))
        .where(col(UnmatchedOrderEventRow.run_id) == run_id)
        .where(kept.in_(_never_ended_unmatched(run_id)))
        .order_by(col(UnmatchedOrderEventRow.seq))
    ):
        latest["kept:" + cid] = status
    for status in latest.values():
        states[status] += 1
    return states, sent


def written(s: Session, run_id: str) -> list[int]:
    """How many status changes and fill rows the ledger holds for the run: what
    :class:`~tradepipe.plugins.ledger.tally.RunTally` checks its ``rows`` against.

    The changes are those in the range of the run's orders' row ids (its orders'
    and any other run's written in between), read from the index alone: a run
    written on its own by one sink has exactly the changes it wrote there.
    """
    lo, hi = _order_range(s, run_id)
    changes = 0
    if lo is not None:
        order = col(StatusChangeRow.order_id)
        changes = int(
            s.scalar(select(func.count()).select_from(StatusChangeRow).where(order.between(lo, hi)))
            or 0
        )
    fills = s.scalar(select(func.count()).select_from(FILL_ROWS).where(fills_of_run(run_id)))
    return [changes, int(fills or 0)]


def not_sent(s: Session, run_id: str) -> list[dict[str, Any]]:
    """Why the run's decisions did not become orders at the broker, by who stopped them.

    Every stop is a denying verdict, one per decision: a risk filter's, or one
    recorded before an order existed (``sizing``, ``expired``, ``duplicate``, the
    live run's ``market_closed``, ``stale_price`` and ``stopping``). Each entry
    gives how many decisions stopped there and the latest reason, most first.
    """
    # IS NOT NULL is what the partial index of denials (ix_judgements_denied) holds:
    # written out, a prepared statement's generic plan on PostgreSQL uses it too.
    by = col(JudgementRow.denied_by)
    counted = s.execute(
        select(by, func.count(), func.max(col(JudgementRow.id)))
        .where(col(JudgementRow.run_id) == run_id)
        .where(by.is_not(None))
        .group_by(by)
    ).all()
    if not counted:
        return []
    # A denial ends its judging: its reason is the last verdict's, written out in
    # full or named by the run's head (see JudgementRow).
    last_verdicts = {
        id_: json.loads(verdicts)[-1]
        for id_, verdicts in s.execute(
            select(col(JudgementRow.id), col(JudgementRow.verdicts)).where(
                col(JudgementRow.id).in_([last for _f, _n, last in counted])
            )
        )
    }
    heads = {
        n: reason
        for n, reason in s.execute(
            select(col(VerdictHeadRow.n), col(VerdictHeadRow.reason))
            .where(col(VerdictHeadRow.run_id) == run_id)
            .where(
                col(VerdictHeadRow.n).in_(
                    [item[0] for item in last_verdicts.values() if len(item) != 7]
                )
            )
        )
    }
    latest = {
        id_: item[3] if len(item) == 7 else heads.get(item[0], "")
        for id_, item in last_verdicts.items()
    }
    stops = [
        {"by": name, "count": int(n), "reason": latest.get(last, "")} for name, n, last in counted
    ]
    return sorted(stops, key=lambda stop: (-stop["count"], stop["by"]))


def figures(s: Session, run_id: str) -> dict[str, Any]:
    """The run's counts and commissions (a :func:`document`'s ``figures``)."""

    def count(model: Any) -> int:
        stmt = select(func.count()).select_from(model).where(col(model.run_id) == run_id)
        return int(s.scalar(stmt) or 0)

    states, sent = order_counts(s, run_id)
    fills = FILL_ROWS.c
    of_run = fills_of_run(run_id) & fills.combo_execution_id.is_(None)
    # Summed in Python: SQLite would add the decimal text as floats.
    # Grouped first: a run's fills share a handful of distinct amounts.
    commissions = sum(
        (
            amount * n
            for amount, n in s.execute(
                select(fills.commission, func.count())
                .where(of_run)  # a combo's, once
                .group_by(fills.commission)
            )
        ),
        ZERO,
    )
    return {
        "states": states,
        "sent": sent,
        "commissions": commissions,
        "decisions": count(DecisionRow),
        "rejected": count(RejectedDecisionRow),
        "holds": int(
            s.scalar(
                select(func.count())
                .select_from(DecisionRow)
                .where(col(DecisionRow.run_id) == run_id)
                .where(col(DecisionRow.action) == Action.HOLD.value)
            )
            or 0
        ),
        "not_sent": not_sent(s, run_id),
        "orders": count(OrderRow),
        # A combo's fill once (its legs are rows of their own).
        "fills": int(s.scalar(select(func.count()).select_from(FILL_ROWS).where(of_run)) or 0),
    }


class LedgerFill(NamedTuple):
    """The columns of a fill row that its figures read (:class:`~tradepipe.orders.FillLike`)."""

    execution_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    multiplier: Decimal
    ts: dt.datetime
    kind: str


def fill_rows(s: Session, run_id: str) -> Iterator[LedgerFill]:
    """The run's fills (a combo's legs, not its own row) in time order, read a few
    thousand rows at a time: a run of a million fills is never in memory whole.

    Read through the driver, not the ORM: building a row object per fill cost
    more than the figures worked out from it.
    """
    conn = s.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.exec_driver_sql(
        "SELECT execution_id, symbol, side, quantity, price, commission, multiplier, ts, kind "
        f"FROM fills WHERE run_id = {mark} AND NOT is_combo ORDER BY ts, id",
        (run_id,),
        # PostgreSQL's rows through a server-side cursor, a chunk at a time too.
        execution_options={"stream_results": True},
    )
    money = Decimal  # SQLite gives the text the ledger stored, PostgreSQL a Decimal
    while rows := cursor.fetchmany(5000):
        for execution_id, symbol, side, quantity, price, commission, multiplier, ts, kind in rows:
            yield LedgerFill(
                execution_id,
                symbol,
                side,
                money(quantity),
                money(price),
                money(commission),
                money(multiplier),
                ts if isinstance(ts, dt.datetime) else dt.datetime.fromisoformat(ts),
                kind,
            )


def account_series(s: Session, run_id: str) -> list[tuple[Any, Any, Any]]:
    """The run's account snapshots as (time, equity, gross position value), in time order."""
    snaps = s.execute(
        select(col(AccountRow.ts), col(AccountRow.equity), col(AccountRow.gross_position_value))
        .where(col(AccountRow.run_id) == run_id)
        .order_by(col(AccountRow.ts), col(AccountRow.id))
    ).all()
    return [(ts, equity, gross) for ts, equity, gross in snaps]


def run_series(s: Session, run_id: str) -> tuple[list[tuple[Any, Any, Any]], list[LedgerFill]]:
    """The run's account snapshots (:func:`account_series`) and its fills
    (:func:`fill_rows`): what its performance metrics are worked out from."""
    return account_series(s, run_id), list(fill_rows(s, run_id))


def metrics(s: Session, run_id: str, trades: TradeFigures | None = None) -> dict[str, Any]:
    """The run's performance metrics (:mod:`tradepipe.plugins.research.metrics`), no
    benchmark; ``trades``: the figures of its fills, if they are known already."""
    from tradepipe.plugins.research.metrics import (
        FillsOutOfOrder,
        day_closes,
        run_metrics,
        trade_figures,
    )

    equity, invested = day_closes(account_series(s, run_id))
    if not equity:
        return {}
    if trades is not None:
        return run_metrics(equity, trades, invested=invested).as_dict()
    try:
        trades = trade_figures(fill_rows(s, run_id))
    except FillsOutOfOrder:
        # SQLite orders times as the text they were written in: times written with
        # different UTC offsets come back out of order. Put them in order here.
        trades = trade_figures(list(fill_rows(s, run_id)))
    return run_metrics(equity, trades, invested=invested).as_dict()


def document(
    run: RunRow,
    figures: dict[str, Any],
    positions: list[PositionRow],
    account: AccountRow | None,
    where: str,
) -> dict[str, Any]:
    """The summary as printed and answered: the run, its figures, its last snapshot."""
    states: dict[str, int] = figures["states"]
    commissions: Decimal = figures["commissions"]
    return {
        "run_id": run.run_id,
        "status": run.status,
        "env": run.env,
        "broker": run.broker,
        **account_fields(account_of(run)),
        "feed": run.feed,
        "ledger": where,
        "bars": run.bars,
        "decisions": figures["decisions"],
        "decisions_rejected": figures["rejected"],
        "decisions_held": figures["holds"],
        "not_sent": figures["not_sent"],
        "orders": {
            "total": figures["orders"],
            "submitted": figures["sent"],
            "denied": states["denied"],
            "rejected": states["rejected"],
            "filled": states["filled"],
            "canceled": states["canceled"],
            "expired": states["expired"],
            "open": sum(states[k] for k in OPEN_STATES),
            "unknown": states["unknown"],
        },
        "fills": figures["fills"],
        "commissions": money_text(commissions),
        "positions": [position_figures(p) for p in positions],
        "account_id": mask_account(account.account_id) if account else None,
        "cash": money_text(account.cash) if account else None,
        "equity": money_text(account.equity) if account else None,
        "realized_pnl": money_text(account.realized_pnl) if account else None,
        "unrealized_pnl": money_text(account.unrealized_pnl) if account else None,
    }
