"""The approval routes: what waits for a person, and their answer (``tradepipe approve``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from pydantic import Field
from tradepipe.errors import ConfigError
from tradepipe.plugins.api.models import _Body
from tradepipe.plugins.api.problems import LEDGER_ERRORS
from tradepipe.plugins.api.service import Service, masked

#: Who answered through the API, as the request records it.
API_USER = "api"

ApprovalId = Annotated[str, PathParam(pattern=r"^ap-[0-9a-f]{1,32}$")]


class Answer(_Body):
    """Send the waiting decision (``approve``: judged again, now) or drop it."""

    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=500, description="Kept with a rejection.")


def approval_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    api = APIRouter()

    @api.get("/approvals", tags=["approvals"], responses=LEDGER_ERRORS)
    def approvals(
        every: Annotated[
            bool, Query(alias="all", description="Every request, answered too.")
        ] = False,
    ) -> list[dict[str, Any]]:
        """The decisions waiting for a person (``tradepipe approvals``); none without a ledger."""
        from tradepipe.plugins.approval.queue import Queue, document

        with service.ledger_if_any() as led:
            if led is None:
                return []
            rows = Queue(led.engine, led.where).rows(dt.datetime.now(dt.UTC), every=every)
        return masked([document(r) for r in rows])

    @api.post("/approvals/{approval_id}", tags=["approvals"], responses=LEDGER_ERRORS)
    def answer(approval_id: ApprovalId, body: Answer) -> dict[str, Any]:
        """Approve (send it, judged again by every filter now) or reject a waiting
        decision (``tradepipe approve|reject``); once: a second answer is 409.

        While a live run of its session is up, that run sends it (its id is in
        ``sent_by_live_run``): the answer comes when it did, or after 15 s with
        ``status`` still ``approved`` or ``sending``. ``asked`` is the broker's
        question about the order sent, when it asked one that waits for a person."""
        from tradepipe.clock import SystemClock
        from tradepipe.plugins.approval.queue import Queue, answer_approved, document

        if body.decision == "reject" and not body.reason.strip():
            raise ConfigError("a rejection needs its reason", key="reason")
        now = dt.datetime.now(dt.UTC)
        with service.ledger() as led:
            queue = Queue(led.engine, led.where)
            try:
                queue.get(approval_id)
            except ConfigError as exc:
                raise HTTPException(404, str(exc)) from None
            status = "approved" if body.decision == "approve" else "rejected"
            try:
                row = queue.answer(approval_id, status, API_USER, now, body.reason)
            except ConfigError as exc:
                raise HTTPException(409, str(exc)) from None
            if status == "approved":

                def opener(chosen: Any, source: str) -> Any:
                    return service.run(chosen, source=source, dry_run=False, clock=SystemClock())

                answered = answer_approved(service.settings, service.host, queue, row, opener)
                return masked(answered.document())
        return masked(document(row))

    return api
