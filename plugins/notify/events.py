"""What becomes a notification: the run's events, turned into lines for a person.

Hooks only (the notifier is made on the first event that needs it):

- ``fill``: every fill; ``denial``: an order a risk filter denied, with the
  filter and its reason; ``rejection``: an order the broker rejected;
  ``unknown``: an order whose sending had no clear outcome;
- ``halt``: the daily loss limit hit (the ``max_daily_loss`` filter's
  denial), or a halt set by hand; ``connection``: the broker's session lost,
  back, or not back; ``daily_summary``: a live run's day at the close;
- ``run``: a live run starting and ending.

A replay notifies nothing unless ``[notify] replays`` is on: its fills are
history being replayed, not news. One-off orders (``tradepipe order``, the
API) and live runs always notify.
"""

from __future__ import annotations

import threading
from typing import Any

from tradepipe import hookimpl, observes_when

_state: dict[str, Any] = {"settings": None, "notifier": None, "active": True}
_lock = threading.Lock()


def notifier() -> Any:
    """The process's notifier, made on first use; ``None`` without targets."""
    with _lock:
        if _state["notifier"] is None and _state["settings"] is not None:
            from tradepipe.plugins.notify.notifier import from_settings

            _state["notifier"] = from_settings(_state["settings"]) or False
        return _state["notifier"] or None


def _event(kind: str, text: str) -> None:
    if not _state["active"] or _state["settings"] is None:
        return
    if not _state["settings"].notify.targets:
        return
    found = notifier()
    if found is not None:
        found.event(kind, text)


def _listening() -> bool:
    """Whether this run's order events may become notifications: asked once per run,
    so a replay that notifies nothing (the default) never calls the observers below."""
    settings = _state["settings"]
    return bool(_state["active"] and settings is not None and settings.notify.targets)


@hookimpl
def tradepipe_configure(settings: Any) -> None:
    _state["settings"] = settings
    _state["notifier"] = None


@hookimpl
def tradepipe_run_started(run: Any) -> None:
    settings = _state["settings"]
    if settings is None:
        return
    live = settings.run.mode == "live"
    # A run with a feed that is not live is a replay; one without is a one-off order.
    _state["active"] = live or not run.feed or settings.notify.replays
    if live:
        _event("run", f"live run {run.run_id} started: broker {run.broker}, feed {run.feed}")


@hookimpl
@observes_when(_listening)
def tradepipe_risk_verdict(verdict: Any) -> None:
    if verdict.outcome.value != "deny":
        return
    if verdict.filter == "max_daily_loss" and "daily loss" in verdict.reason:
        _event("halt", f"daily loss limit: {verdict.reason}")
    _event(
        "denial", f"order {verdict.client_order_id} denied by {verdict.filter}: {verdict.reason}"
    )


@hookimpl
@observes_when(_listening)
def tradepipe_order_event(order: Any, event: Any) -> None:
    status = event.status.value
    intent = order.intent
    what = f"{intent.side.value} {intent.quantity} {intent.symbol}"
    if status == "rejected":
        _event("rejection", f"{what} ({order.intent.client_order_id}) rejected: {event.reason}")
    elif status == "unknown":
        _event(
            "unknown",
            f"{what} ({order.intent.client_order_id}): sending had no clear outcome; "
            "tradepipe asks the broker until it knows",
        )


@hookimpl
@observes_when(_listening)
def tradepipe_order_filled(fill: Any) -> None:
    _event(
        "fill",
        f"{fill.side.value} {fill.quantity} {fill.symbol} at {fill.price} "
        f"(order {fill.client_order_id})",
    )


@hookimpl
def tradepipe_alert(kind: str, message: str) -> None:
    _event(kind, message)


@hookimpl
def tradepipe_run_finished(run: Any, status: str, summary: dict[str, Any]) -> None:
    settings = _state["settings"]
    if settings is not None and settings.run.mode == "live":
        orders = (summary.get("orders") or {}).get("total", 0)
        _event(
            "run",
            f"live run {run.run_id} {status}: {orders} order(s), {summary.get('fills', 0)} "
            f"fill(s), equity {summary.get('equity', '?')}",
        )
    found = _state["notifier"]
    if found:
        found.flush(timeout=settings.notify.timeout_seconds if settings is not None else 10)
    _state["active"] = True


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("notify", "tradepipe.plugins.notify.cli:notify"))
