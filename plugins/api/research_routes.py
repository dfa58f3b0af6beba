"""The research routes: a run's performance (``tradepipe report``) and a sweep's results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from tradepipe.errors import ConfigError
from tradepipe.plugins.api.problems import LEDGER_ERRORS
from tradepipe.plugins.api.service import Service, masked

RunParam = Annotated[str | None, Query(max_length=64, description="default: the latest run")]
#: Empty: no benchmark (what the dashboard asks, so it never reads a feed).
SymbolParam = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9. /-]{0,32}$")]


def research_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    api = APIRouter()

    @api.get("/report", tags=["research"], responses=LEDGER_ERRORS)
    def run_report(run: RunParam = None, benchmark: SymbolParam = None) -> dict[str, Any]:
        """A run's performance metrics, against ``benchmark`` (default ``[research]
        benchmark``; empty: none), a symbol of its feed (``tradepipe report --json``)."""
        from tradepipe.plugins.research.runs import feed_closes, metrics_of, read_run

        chosen = benchmark if benchmark is not None else service.settings.research.benchmark
        symbol = chosen.upper()
        with service.ledger() as led:
            try:
                data = read_run(led, run)
            except ConfigError as exc:
                raise HTTPException(404, str(exc)) from None
        closes = (
            feed_closes(service.settings, service.host, data.run.feed, symbol) if symbol else []
        )
        return masked({"run_id": data.run.run_id, **metrics_of(data, closes, symbol).as_dict()})

    @api.get("/sweeps/{sweep_id}", tags=["research"], responses=LEDGER_ERRORS)
    def sweep_report(
        sweep_id: Annotated[str, PathParam(pattern=r"^sw-[0-9a-f]{1,32}$")],
        top: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> dict[str, Any]:
        """A sweep's best results, failures, warnings and walk-forward
        (``tradepipe report --sweep ID --json``)."""
        from tradepipe.plugins.research.summary import read_sweep

        with service.ledger() as led:
            try:
                return masked(read_sweep(led, sweep_id, top)[0])
            except ConfigError as exc:
                raise HTTPException(404, str(exc)) from None

    return api
