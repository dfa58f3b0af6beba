"""The kill switch and a live run's status.

Each mirrors a command (named in its docstring) and makes the same library calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from tradepipe.clock import NEW_YORK, SystemClock
from tradepipe.plugins.api.models import (
    Halted,
    HaltRequest,
    HaltState,
    LiveStatus,
    Resumed,
)
from tradepipe.plugins.api.problems import (
    problems,
)
from tradepipe.plugins.api.service import Service, masked
from tradepipe.services.halt import announce, halts_now, lift_halt, set_halt
from tradepipe.services.status import read_status, status_path


def risk_router(service: Service) -> APIRouter:
    """The routes over ``service``."""
    settings = service.settings
    api = APIRouter()

    @api.get("/halt", tags=["risk"], response_model=HaltState, responses=problems(400))
    def halt_state() -> dict[str, Any]:
        """The kill switch: the manual halt and today's loss-limit halt.

        Every pipeline honours the manual halt: its ``halt`` filter always runs.
        """
        return masked(halts_now(settings, datetime.now(NEW_YORK)))

    @api.get("/status", tags=["service"], response_model=LiveStatus, responses=problems(400))
    def live_status() -> dict[str, Any]:
        """Whether a live run is up, and its market, feed, orders and P&L (``tradepipe status``).

        Read from the status file the run rewrites (``[run] status_file``); an
        answer, not an error, when no run is up.
        """
        return masked(read_status(status_path(settings)))

    @api.post("/halt", tags=["risk"], response_model=Halted, responses=problems(400))
    def halt(request: HaltRequest | None = None) -> dict[str, Any]:
        """Halt trading until ``/resume`` (``tradepipe halt``)."""
        with service.files:
            reason = request.reason if request else ""
            manual = set_halt(service.halt_file(), reason, SystemClock().now())
        announce(service.host, f"trading halted from the API ({manual['reason']})")
        return masked({"halted": True, **manual})

    @api.post("/resume", tags=["risk"], response_model=Resumed, responses=problems(400))
    def resume() -> dict[str, Any]:
        """Lift the manual halt (``tradepipe resume``)."""
        with service.files:
            was, _ = lift_halt(service.halt_file())
        if was:
            announce(service.host, "trading resumed from the API: the halt was lifted")
        return {"halted": False, "was_halted": was}

    return api
