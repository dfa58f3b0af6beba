"""What the ledger holds about decisions: one decision's whole history and the latest activity.

:func:`chains` is ``tradepipe explain`` (and ``GET /explain/{key}``); :func:`recent`
is the dashboard's activity panel (``GET /ledger/recent``). Both read through a
session that :class:`~tradepipe.plugins.ledger.queries.Ledger` opens and whose errors
it reports; every lookup goes through an index on a decision or client order id.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlmodel import Session, col
from tradepipe.money import fmt
from tradepipe.plugins.ledger.schema import (
    JUDGEMENT_ROWS,
    ApprovalRow,
    DecisionRow,
    FillRow,
    JudgementRow,
    OrderEventRow,
    OrderRow,
    RejectedDecisionRow,
    RunRow,
    VerdictRow,
    fills_of_orders,
    judgings_of_decisions,
    orders_of_decisions,
    verdicts_of_decisions,
)


def recent(s: Session, limit: int) -> dict[str, list[dict[str, Any]]]:
    """The latest decisions of any run, each with its verdicts and order, and fills.

    ``decisions``: newest first, each with ``verdicts`` (filter, outcome,
    reason, in the order judged) and ``order`` (client order id and latest
    status, or ``None`` when no order was made). ``rejected``: documents
    refused before they became decisions. ``fills``: newest first.
    """
    decisions = list(
        s.scalars(select(DecisionRow).order_by(col(DecisionRow.id).desc()).limit(limit))
    )
    ids = {d.decision_id for d in decisions}
    runs = {d.run_id for d in decisions}
    verdicts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    # By the judgings' ids alone: those of another run are never asked for below.
    for v in s.scalars(
        select(VerdictRow).where(verdicts_of_decisions(s, ids)).order_by(col(VerdictRow.id))
    ):
        verdicts.setdefault((v.run_id, v.decision_id), []).append(
            {"filter": v.filter, "outcome": v.outcome, "reason": v.reason}
        )
    orders: dict[tuple[str, str], OrderRow] = {
        (o.run_id, o.decision_id): o
        for o in s.scalars(
            select(OrderRow).where(col(OrderRow.run_id).in_(runs) & orders_of_decisions(s, ids))
        )
    }
    latest: dict[tuple[str, str], OrderEventRow] = {}
    cids = {o.client_order_id for o in orders.values()}
    for e in s.scalars(
        select(OrderEventRow)
        .where(col(OrderEventRow.run_id).in_(runs) & col(OrderEventRow.client_order_id).in_(cids))
        .order_by(col(OrderEventRow.seq))
    ):
        latest[(e.run_id, e.client_order_id)] = e
    rejected = list(
        s.scalars(
            select(RejectedDecisionRow).order_by(col(RejectedDecisionRow.id).desc()).limit(limit)
        )
    )
    fills = list(s.scalars(select(FillRow).order_by(col(FillRow.id).desc()).limit(limit)))

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


def chains(s: Session, key: str) -> list[dict[str, Any]]:
    """Everything recorded about a decision id or a client order id, in any run.

    One chain per run and decision, oldest run first: the decision (``None``
    if only its order is known), every verdict in order, each order with its
    status changes and fills. Empty when the ledger knows nothing of ``key``.
    """
    pairs: set[tuple[str, str]] = set()
    for model, field in (
        (DecisionRow, DecisionRow.decision_id),
        (OrderRow, OrderRow.client_order_id),
    ):
        stmt = select(col(model.run_id), col(model.decision_id)).where(col(field) == key)
        pairs.update((r, d) for r, d in s.execute(stmt))
    # A decision refused before it became an order is known by its
    # verdicts alone, which carry its client order id: a repeat, in a
    # later run, of a decision an earlier run sent, say. Its decision
    # id is one already found, when there is one (all indexed reads).
    ids = {d for _r, d in pairs}
    judged = select(col(JudgementRow.run_id), col(JudgementRow.decision_id))
    if ids:
        judged = judged.where(
            judgings_of_decisions(s, ids) & (col(JudgementRow.client_order_id) == key)
        )
    else:
        # No decision or order has the key for its id: a judging of it keeps the
        # id in its own row (migrations 0028 and 0029), read there rather than
        # through the view's joins.
        rows = JUDGEMENT_ROWS.c
        own = select(rows.id).where((rows.decision_id == key) | (rows.client_order_id == key))
        judged = judged.where(col(JudgementRow.id).in_(own))
    pairs.update((r, d) for r, d in s.execute(judged))
    out = []
    for run_id, decision_id in pairs:
        out.append(_chain(s, run_id, decision_id))
    out.sort(key=lambda c: (c["started_at"] or "", c["run_id"]))
    return out


def _chain(s: Session, run_id: str, decision_id: str) -> dict[str, Any]:
    def where(model: Any) -> Any:
        # An order's and a judging's decision id may be its decision row's (0027, 0029).
        if model is OrderRow:
            return (col(model.run_id) == run_id) & orders_of_decisions(s, [decision_id])
        if model is VerdictRow:
            return (col(model.run_id) == run_id) & verdicts_of_decisions(s, [decision_id])
        return (col(model.run_id) == run_id) & (col(model.decision_id) == decision_id)

    run = s.get(RunRow, run_id)
    decision = s.scalars(select(DecisionRow).where(where(DecisionRow))).first()
    verdicts = s.scalars(select(VerdictRow).where(where(VerdictRow)).order_by(col(VerdictRow.id)))
    orders = []
    for order in s.scalars(select(OrderRow).where(where(OrderRow)).order_by(col(OrderRow.id))):
        cid = order.client_order_id
        events = s.scalars(
            select(OrderEventRow)
            .where(
                (col(OrderEventRow.run_id) == run_id) & (col(OrderEventRow.client_order_id) == cid)
            )
            .order_by(col(OrderEventRow.seq))
        )
        # The order's own fills, and the expiry, exercise or assignment that
        # closed what it opened, which a later run of the session may have
        # recorded (unless that run has an order of the same id to show it under).
        elsewhere = select(col(OrderRow.run_id)).where(
            (col(OrderRow.client_order_id) == cid) & (col(OrderRow.run_id) != run_id)
        )
        fills = s.scalars(
            select(FillRow)
            .where(
                fills_of_orders(s, [cid])
                & (
                    (col(FillRow.run_id) == run_id)
                    | ((col(FillRow.kind) != "trade") & col(FillRow.run_id).not_in(elsewhere))
                )
            )
            .order_by(col(FillRow.id))
        )
        orders.append(
            {
                "order": order.model_dump(mode="json", exclude={"id", "run_id"}),
                "events": [e.model_dump(mode="json", exclude={"id", "run_id"}) for e in events],
                "fills": [f.model_dump(mode="json", exclude={"id", "run_id"}) for f in fills],
            }
        )
    # A decision that waited for a person (its own wait, then any broker question
    # about its order): in the run it waited in, and the one an approval sent it from.
    waited = s.scalars(
        select(ApprovalRow)
        .where(
            (col(ApprovalRow.decision_id) == decision_id)
            & ((col(ApprovalRow.run_id) == run_id) | (col(ApprovalRow.sent_run_id) == run_id))
        )
        .order_by(col(ApprovalRow.attempt))
    ).all()
    return {
        "run_id": run_id,
        # As every other time in the JSON: a UTC one ends in Z.
        "started_at": to_jsonable_python(run.started_at) if run else None,
        "decision_id": decision_id,
        "approvals": [w.model_dump(mode="json", exclude={"decision"}) for w in waited],
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


def fill_kind(fill: Any) -> str:
    """What a fill row is, in a word: ``trade``, an option's ``expired`` /
    ``exercised`` / ``assigned``, or a combo's ``combo`` row and its ``leg`` rows."""
    get = fill.get if isinstance(fill, dict) else lambda key: getattr(fill, key)
    if get("is_combo"):
        return "combo"
    if get("combo_execution_id"):
        return "leg"
    return str(get("kind"))
