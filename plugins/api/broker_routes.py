"""The broker's routes: its status, a kept connection, the account and positions.

Each mirrors a command (named in its docstring) and makes the same library calls.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.plugins.api.models import (
    Account,
    BrokerState,
    Position,
    Released,
)
from tradepipe.plugins.api.problems import (
    BROKER_ERRORS,
    problems,
)
from tradepipe.plugins.api.service import Service, masked
from tradepipe.services.broker import broker_problem
from tradepipe.services.figures import model_figures, position_figures

Symbol = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9. /-]{1,32}$")]


def _status(adapter: Broker, state: BrokerStatus, *, held: bool) -> dict[str, Any]:
    """``/broker/status``'s answer: the broker's state, whether it is ready, whether it is kept."""
    trouble = broker_problem(adapter, state)
    return masked(
        {
            "broker": adapter.name,
            "connected": state.connected,
            "authenticated": state.authenticated,
            "account_id": state.account_id,
            "paper": state.is_paper,
            "message": state.message,
            "ready": trouble is None,
            "problem": None if trouble is None else str(trouble),
            "held": held,
        }
    )


def broker_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    api = APIRouter()

    @api.get("/broker/status", tags=["broker"], response_model=BrokerState, responses=BROKER_ERRORS)
    def broker_status() -> dict[str, Any]:
        """Whether the broker can be used, and with which account (``tradepipe broker status``)."""
        with service.broker(ready=False) as (adapter, state):
            return _status(adapter, state, held=service.held is adapter)

    @api.post(
        "/broker/connect", tags=["broker"], response_model=BrokerState, responses=BROKER_ERRORS
    )
    def broker_connect() -> dict[str, Any]:
        """Connect the broker and keep the connection for later calls (idempotent).

        Reads then use it instead of connecting each time; an IBKR adapter
        keeps its session alive meanwhile. A live account is refused unless
        ``[run] allow_live``; a broker that is not ready is not kept (503).
        """
        adapter, state = service.hold()
        return _status(adapter, state, held=True)

    @api.post("/broker/disconnect", tags=["broker"], response_model=Released)
    def broker_disconnect() -> dict[str, Any]:
        """Release the kept connection (idempotent); ``released`` says whether there was one."""
        return {"held": False, "released": service.release()}

    @api.get("/account", tags=["broker"], response_model=Account, responses=BROKER_ERRORS)
    def account() -> dict[str, Any]:
        """Cash, equity and buying power (``tradepipe broker accounts``)."""
        with service.broker() as (adapter, state):
            summary = adapter.account()
        return masked(
            {"broker": adapter.name, "paper": state.is_paper, "summary": model_figures(summary)}
        )

    @api.get("/positions", tags=["broker"], response_model=list[Position], responses=BROKER_ERRORS)
    def positions() -> list[dict[str, Any]]:
        """Every position the broker reports (``tradepipe broker positions``)."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        return masked([position_figures(p) for p in held])

    @api.get(
        "/positions/{symbol}",
        tags=["broker"],
        response_model=Position,
        responses=problems(400, 404, 502, 503),
    )
    def position(symbol: Symbol) -> dict[str, Any]:
        """One symbol's position; 404 when none is held."""
        with service.broker() as (adapter, _state):
            held = adapter.positions()
        found = [p for p in held if p.symbol == symbol.upper()]
        if not found:
            raise HTTPException(404, f"no position in {symbol.upper()}")
        return masked(position_figures(found[0]))

    return api
