"""The kill switches' state file: the manual halt and the day's loss-limit halt.

One small JSON file (``tradepipe-halt.json`` by default) written atomically
with mode 0600, shared by the ``halt`` and ``max_daily_loss`` risk filters,
``tradepipe halt``/``resume``, the HTTP API and a live run's status::

    {"manual": {"reason": "...", "at": "..."},
     "daily": {"<broker>:<account digest>": {"day": "2026-03-02",
               "start_equity": "100000", "halted": {...}}}}

The day's loss limit is kept per account (a key with no account number in
it): a paper replay and an IBKR account traded from the same folder each
measure their own day. An older file's single ``daily`` entry is dropped.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tradepipe.clock import NEW_YORK
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.services.files import write_private_json
from tradepipe.settings import AppSettings

DEFAULT_STATE_FILE = "tradepipe-halt.json"


def read_state(path: Path) -> dict[str, Any]:
    """The state file's content; ``{}`` when there is none yet.

    :raises PersistenceError: the file exists but cannot be read as a JSON object
        (a halt must never be lost silently: the filters deny when this raises).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PersistenceError(f"cannot read the halt state file {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PersistenceError(f"the halt state file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PersistenceError(f"the halt state file {path} does not hold a JSON object")
    return data


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Replace the state file atomically, readable by its owner only (0600)."""
    write_private_json(path, data)


def load_state(path: Path) -> dict[str, Any]:
    """:func:`read_state` for commands and the API: a damaged file is a :class:`ConfigError`."""
    try:
        return read_state(path)
    except PersistenceError as exc:
        raise ConfigError(str(exc), key="risk.halt.state_file") from exc


def trading_day(at: datetime) -> str:
    """The New York date of ``at``: the trading day a loss limit resets on."""
    return at.astimezone(NEW_YORK).date().isoformat()


def daily_accounts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``state``'s per-account days (kept in it: changes are written with it)."""
    daily = state.get("daily")
    if not isinstance(daily, dict) or "day" in daily:
        # None yet, or an older file's single day of an unknown account: start afresh.
        daily = {}
        state["daily"] = daily
    return daily


def current_halts(
    state: dict[str, Any], now: datetime, account: str | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The halts in force at ``now``: the manual one and a day's loss-limit one.

    The manual halt is ``{"reason", "at"}``; the daily one ``{"day",
    "start_equity", "at", "loss", "limit"}``, only on the New York date it was
    hit (it lifts itself the next day): ``account``'s, or (``None``) any
    account's. ``None`` where there is none.
    """
    manual = state.get("manual")
    found = None
    if isinstance(manual, dict) and manual:
        found = {"reason": str(manual.get("reason") or ""), "at": manual.get("at")}
    today = None
    for key, daily in daily_accounts(dict(state)).items():
        if account is not None and key != account:
            continue
        if not isinstance(daily, dict) or daily.get("day") != trading_day(now):
            continue
        halted = daily.get("halted")
        if isinstance(halted, dict) and halted:
            today = {
                "day": daily["day"],
                "start_equity": daily.get("start_equity"),
                "at": halted.get("at"),
                "loss": halted.get("loss"),
                "limit": halted.get("limit"),
            }
            break
    return found, today


def halt_state_path(settings: AppSettings) -> Path:
    """The state file of ``[risk.halt]`` (else ``[risk.max_daily_loss]``, else the default)."""
    for name in ("halt", "max_daily_loss"):
        table = settings.component_table("risk", name)
        if "state_file" in table:
            return Path(str(table["state_file"]))
    return Path(DEFAULT_STATE_FILE)


def halts_now(settings: AppSettings, now: datetime) -> dict[str, Any]:
    """``{"halted", "manual", "daily"}`` at ``now``, as the API's ``/halt`` answers.

    :raises ConfigError: the state file cannot be read.
    """
    manual, daily = current_halts(load_state(halt_state_path(settings)), now)
    return {
        "halted": manual is not None or daily is not None,
        "manual": manual,
        "daily": daily,
    }


def set_halt(path: Path, reason: str, now: datetime) -> dict[str, Any]:
    """Halt trading by hand until lifted; returns the manual halt as recorded.

    :raises ConfigError: the state file exists but is damaged (nothing is written).
    """
    state = load_state(path)
    state["manual"] = {
        "reason": reason or "halted by hand",
        "at": now.astimezone(NEW_YORK).isoformat(timespec="seconds"),
    }
    write_state(path, state)
    return dict(state["manual"])


def lift_halt(path: Path, *, daily_loss: bool = False) -> tuple[bool, bool]:
    """Lift the manual halt and, with ``daily_loss``, today's loss-limit halts.

    Forgetting the day makes ``max_daily_loss`` take the equity at the next order
    as the day's start; keeping it would halt again at once.

    :returns: whether a manual halt was lifted, and whether a loss-limit halt was.
    :raises ConfigError: the state file exists but is damaged (nothing is written).
    """
    state = load_state(path)
    was = bool(state.pop("manual", None))
    lifted_daily = False
    if daily_loss:
        accounts = daily_accounts(state)
        halted = [
            key
            for key, daily in accounts.items()
            if not isinstance(daily, dict) or daily.get("halted")
        ]
        for key in halted:
            accounts.pop(key)
        lifted_daily = bool(halted)
    write_state(path, state)
    return was, lifted_daily


def announce(host: Any, message: str) -> None:
    """Tell the ``tradepipe_alert`` observers (notifications) of a halt set or lifted."""
    observers = host.observers("tradepipe_alert")
    if observers is not None:
        observers(kind="halt", message=message)
