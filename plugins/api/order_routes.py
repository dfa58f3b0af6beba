"""The order routes: open orders, stock and options orders, decision documents, cancels.

Each mirrors a command (named in its docstring) and makes the same library calls.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi import Path as PathParam
from tradepipe.clock import Clock, SystemClock
from tradepipe.decisions import Decision, RejectedDecision, bracket_problem
from tradepipe.direct import Direct, Outcome
from tradepipe.errors import ConfigError
from tradepipe.instruments import Option
from tradepipe.options.orders import option_fields, place_strategy, strategy_document
from tradepipe.order_rules import OrderRules
from tradepipe.plugins.api.models import (
    CancelRequested,
    OptionsOrder,
    OrderOutcome,
    StockOrder,
    WorkingOrder,
)
from tradepipe.plugins.api.problems import (
    BROKER_ERRORS,
    ORDER_ERRORS,
)
from tradepipe.plugins.api.service import Service, masked
from tradepipe.services import documents
from tradepipe.services.broker import await_final
from tradepipe.services.figures import model_figures
from tradepipe.services.records import record_end

#: The source an order placed over the API is recorded under.
SOURCE = "api"
#: How an order is to be executed, beside what it trades (``tradepipe order``'s options).
ORDER_TERMS = frozenset(
    {"order_type", "limit_price", "stop_price", "tif", "outside_rth", "rationale"}
)
ClientOrderId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


def order_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    settings = service.settings
    host = service.host
    rules = OrderRules.of(settings)
    api = APIRouter()

    @api.get("/orders", tags=["orders"], response_model=list[WorkingOrder], responses=BROKER_ERRORS)
    def open_orders() -> list[dict[str, Any]]:
        """Open orders as the broker sees them (``tradepipe broker orders``)."""
        with service.broker() as (adapter, _state):
            working = adapter.open_orders()
        return masked([model_figures(o) for o in working])

    @api.post("/orders/stock", tags=["orders"], response_model=OrderOutcome, responses=ORDER_ERRORS)
    def order_stock(order: StockOrder) -> dict[str, Any]:
        """One stock order through sizing, every risk filter, the ledger and the broker.

        As ``tradepipe order stock``: ``dry_run`` judges without sending or
        writing; ``what_if`` also asks the broker for its preview. A denial is
        an answer (``ok`` false, the verdicts say why), not an error.
        """
        clock = SystemClock()
        decision = Decision(
            source=SOURCE,
            created_at=clock.now(),
            confidence=100,
            action=order.side,
            **order.model_dump(exclude={"side", "dry_run", "what_if", "wait"}),
        )
        problem = bracket_problem(
            decision.action, decision.take_profit, decision.stop_loss, ("take_profit", "stop_loss")
        )
        if problem:
            raise ConfigError(problem)
        rules.require_decision(decision, clock.now())
        dry = order.dry_run or order.what_if
        with service.run(settings, source=SOURCE, dry_run=dry, clock=clock) as run:
            outcome = (
                run.preview(decision) if order.what_if else run.execute(decision, wait=order.wait)
            )
            ledger = None if dry else run.pipeline.run.run_id
        return masked(service.outcome(outcome, ledger))

    @api.post(
        "/orders/options", tags=["orders"], response_model=OrderOutcome, responses=ORDER_ERRORS
    )
    def order_options(order: OptionsOrder) -> dict[str, Any]:
        """An option, a combo, or a named strategy through the whole pipeline.

        As ``tradepipe order options``: ``legs`` with exact strikes and
        expiries make one option (on its leg's side) or a combo (bought or
        sold as ``side``). ``strategy`` instead names one as a decision
        document does: the broker's option chain chooses its legs and prices
        it, so the broker is asked even with ``dry_run``. A strategy the chain
        cannot build is answered 422 and leaves the ledger as it was; so is,
        before anything is asked, one it cannot be sent as (a stop order).
        """
        clock = SystemClock()
        pending = _options_order(order, rules, clock.now())
        outcome, ledger = _place_options(service, pending, order, clock)
        if isinstance(outcome, RejectedDecision):
            raise HTTPException(422, f"options order rejected: {outcome.error}")
        return masked(service.outcome(outcome, ledger))

    @api.post(
        "/decisions/execute",
        tags=["orders"],
        response_model=OrderOutcome,
        responses=ORDER_ERRORS,
    )
    def execute_decision(
        document: Annotated[dict[str, Any], Body(description="A decision document.")],
        dry_run: bool = False,
        what_if: bool = False,
        wait: Annotated[float, Query(ge=0, le=60)] = 0.0,
    ) -> dict[str, Any]:
        """A decision document (``tradepipe execute``) → the verdicts and the order.

        A document that is not a valid decision is answered 422; nothing is
        sent and nothing is written to the ledger.
        """
        text = json.dumps(document)
        run_settings = settings.model_copy(
            update={
                "run": settings.run.model_copy(
                    update={"session": settings.run.session or documents.DEFAULT_SESSION}
                )
            }
        )

        def open_run(dry: bool, clock: Clock) -> AbstractContextManager[Direct]:
            return service.run(run_settings, source=documents.SOURCE, dry_run=dry, clock=clock)

        result, ledger = documents.execute_document(
            text, open_run, dry_run=dry_run, what_if=what_if, wait=wait
        )
        if isinstance(result, RejectedDecision):
            raise HTTPException(422, f"decision rejected: {result.error}")
        return masked(service.outcome(result, ledger))

    @api.delete(
        "/orders/{client_order_id}",
        status_code=202,
        tags=["orders"],
        response_model=CancelRequested,
        responses=ORDER_ERRORS,
    )
    def cancel(
        client_order_id: ClientOrderId,
        wait: Annotated[
            float,
            Query(
                ge=0, le=30, description="Seconds to wait for the broker to confirm (as the CLI)."
            ),
        ] = 5.0,
    ) -> dict[str, Any]:
        """Ask the broker to cancel (``tradepipe broker cancel``).

        It is final only once the broker confirms: with ``wait`` the broker is
        asked again until then. A confirmed end is written into the order's
        history in the ledger (``ledger_run`` names the reconciliation run).
        """
        with service.order_lock, service.broker() as (adapter, _state):
            update = adapter.cancel(client_order_id)
            final, known = update.status, True
            if not final.is_terminal and wait > 0:
                final, known = await_final(adapter, client_order_id, final, wait)
            recorded = record_end(
                settings,
                host,
                adapter,
                client_order_id,
                final=final,
                known=known,
                requested=update,
            )
        return masked(
            {
                "client_order_id": client_order_id,
                "broker": adapter.name,
                "status": final.value,
                "final": final.is_terminal,
                "reason": update.reason,
                "ledger_run": recorded,
            }
        )

    return api


def _options_order(
    order: OptionsOrder, rules: OrderRules, now: datetime
) -> Decision | dict[str, Any]:
    """The decision an options order makes: exact legs make one now; a named strategy
    makes a document whose legs the broker's chain chooses once it is connected."""
    if order.strategy is None:
        legs = [
            (
                leg.action,
                leg.ratio,
                Option(
                    underlying=order.underlying,
                    right=leg.right,
                    strike=leg.strike,
                    expiry=leg.expiry,
                ),
            )
            for leg in order.legs
        ]
        decision = Decision(
            source=SOURCE,
            created_at=now,
            confidence=100,
            quantity=order.quantity,
            **option_fields(legs, order.side),
            **order.model_dump(include=set(ORDER_TERMS)),
        )
        rules.require_decision(decision, now)
        return decision
    try:
        return strategy_document(
            order.underlying,
            order.strategy,
            side=order.side,
            quantity=order.quantity,
            terms=order.model_dump(mode="json", include=set(ORDER_TERMS)),
            source=SOURCE,
            created_at=now,
        )
    except ValueError as exc:
        raise HTTPException(422, f"options order rejected: {exc}") from None


def _place_options(
    service: Service, pending: Decision | dict[str, Any], order: OptionsOrder, clock: Clock
) -> tuple[Outcome | RejectedDecision, str | None]:
    """An options order through a one-off run: the outcome, and the ledger's run (if any)."""
    settings = service.settings
    if not isinstance(pending, Decision):

        def open_run(dry: bool, at: Clock) -> AbstractContextManager[Direct]:
            return service.run(settings, source=SOURCE, dry_run=dry, clock=at)

        return place_strategy(
            open_run,
            pending,
            source=SOURCE,
            dry_run=order.dry_run,
            what_if=order.what_if,
            wait=order.wait,
        )
    dry = order.dry_run or order.what_if
    with service.run(settings, source=SOURCE, dry_run=dry, clock=clock) as run:
        ledger = None if dry else run.pipeline.run.run_id
        if order.what_if:
            return run.preview(pending), ledger
        return run.execute(pending, wait=order.wait), ledger
