"""The ledger's routes: a run's orders, fills and decisions, and explain.

Each mirrors a command (named in its docstring) and makes the same library calls.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from tradepipe.plugins.api.models import (
    LedgerDecisions,
    LedgerFills,
    LedgerOrders,
)
from tradepipe.plugins.api.problems import (
    LEDGER_ERRORS,
)
from tradepipe.plugins.api.service import Service, masked

RunId = Annotated[str | None, Query(alias="run", max_length=64, description="default: latest")]
Limit = Annotated[int | None, Query(ge=1, le=10_000)]
#: ``explain``'s run: only that run's record of the id (``latest``: the newest that has one).
OneRun = Annotated[
    str | None,
    Query(max_length=64, description="only this run's record; latest: the newest run that has one"),
]


def ledger_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    api = APIRouter()

    @api.get(
        "/ledger/orders", tags=["ledger"], response_model=LedgerOrders, responses=LEDGER_ERRORS
    )
    def ledger_orders(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Orders of a run with their latest status (``tradepipe ledger orders``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [
                {**o.model_dump(mode="json", exclude={"id"}), "status": status, "reason": reason}
                for o, status, reason in led.orders(rid, limit)
            ]
        return masked({"run_id": rid, "orders": rows})

    @api.get("/ledger/fills", tags=["ledger"], response_model=LedgerFills, responses=LEDGER_ERRORS)
    def ledger_fills(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Fills of a run (``tradepipe ledger fills``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [f.model_dump(mode="json", exclude={"id"}) for f in led.fills(rid, limit)]
        return masked({"run_id": rid, "fills": rows})

    @api.get(
        "/ledger/decisions",
        tags=["ledger"],
        response_model=LedgerDecisions,
        responses=LEDGER_ERRORS,
    )
    def ledger_decisions(run_id: RunId = None, limit: Limit = None) -> dict[str, Any]:
        """Decisions of a run (``tradepipe ledger decisions``)."""
        with service.ledger() as led:
            rid = service.run_id(led, run_id)
            rows = [r.model_dump(mode="json", exclude={"id"}) for r in led.decisions(rid, limit)]
        return masked({"run_id": rid, "decisions": rows})

    @api.get("/explain/{key}", tags=["ledger"], responses=LEDGER_ERRORS)
    def explain(
        key: Annotated[str, PathParam(max_length=128)], run: OneRun = None
    ) -> list[dict[str, Any]]:
        """Verdicts, order, status changes and fills of an id (``tradepipe explain``)."""
        from tradepipe.plugins.ledger.queries import NotInLedger

        with service.ledger() as led:
            try:
                chains = led.explained(key, run)
            except NotInLedger as exc:
                raise HTTPException(404, str(exc)) from exc
        return masked(json.loads(json.dumps(chains, default=str)))

    return api
