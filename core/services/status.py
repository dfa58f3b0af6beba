"""A live run's status file: where it is, and whether the run that wrote it is still up.

A live run rewrites its status file every ``[run] status_seconds`` (see
:mod:`tradepipe.live.status` for what is in it) and once more when it ends.
``tradepipe status``, ``GET /status`` and the dashboard read it here and add
what only a reader can tell:

* ``running`` — the file says the run is up, its process is alive (the same
  process: its start time is checked, so a reused pid does not count), and it
  wrote within the last few intervals;
* ``stale`` — the process is alive but has not written for a while (stuck?);
* ``dead`` — the file says the run is up, but its process is gone (killed,
  crashed, the machine restarted): the run never closed;
* ``ended`` — the run closed (stopped, failed, interrupted);
* ``none`` — no live run has written the file.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradepipe.errors import ConfigError
from tradepipe.process import ProcessId, is_alive, start_ticks
from tradepipe.settings import AppSettings

#: The status file's format; a reader refuses another.
SCHEMA_VERSION = 1
#: States a run writes while it is up.
UP = ("starting", "running", "sleeping", "waiting", "stopping")
#: A status older than this many writing intervals (and at least ``_MIN_STALE`` s) is stale.
_STALE_INTERVALS = 5
_MIN_STALE = 15.0


def status_path(settings: AppSettings) -> Path:
    """``[run] status_file``, relative to the working directory as the other state files are.

    :raises ConfigError: the setting is empty (live runs write no status file).
    """
    if not settings.run.status_file:
        raise ConfigError(
            "[run] status_file is empty: live runs write no status file to read",
            key="run.status_file",
        )
    return Path(settings.run.status_file).expanduser()


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (kernel clock ticks since boot), as the file keeps it."""
    ticks = start_ticks(pid)
    return None if ticks is None else str(ticks)


def process_alive(pid: int, started: str | None) -> bool:
    """True when ``pid`` runs on this host and is the process that started at ``started``."""
    if pid <= 0:
        return False
    alive = is_alive(
        ProcessId(socket.gethostname(), pid, int(started) if started is not None else None)
    )
    return alive is not False


def read_status(path: Path, now: datetime | None = None) -> dict[str, Any]:
    """The status file with the reader's verdict: ``liveness`` (see the module docstring),
    ``running``, ``age_seconds`` since it was written and a one-line ``summary``.

    :raises ConfigError: the file exists but is not a status file tradepipe can read.
    """
    now = now or datetime.now(UTC)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {
            "liveness": "none",
            "running": False,
            "status_file": str(path),
            "summary": f"no live run: {path} does not exist (a live run writes it)",
        }
    except OSError as exc:
        raise ConfigError(f"cannot read the status file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the status file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(
            f"the status file {path} is not a tradepipe status file of schema version "
            f"{SCHEMA_VERSION}"
        )
    data["status_file"] = str(path)
    try:
        updated = datetime.fromisoformat(str(data.get("updated_at")))
        age = max(0.0, (now - updated).total_seconds())
    except ValueError:
        age = None
    data["age_seconds"] = None if age is None else round(age, 1)
    state = str(data.get("state"))
    run = data.get("run_id", "?")
    pid = int(data.get("pid") or 0)
    here = data.get("host") in (None, socket.gethostname())
    if state not in UP:
        liveness = "ended"
        summary = f"not running: run {run} ended ({state})"
    elif not here:
        liveness = "unknown"
        summary = f"run {run} runs on {data.get('host')}; its process cannot be checked from here"
    elif not process_alive(pid, data.get("process_start")):
        liveness = "dead"
        summary = (
            f"dead: run {run} (pid {pid}) is gone without closing (killed or crashed?); "
            f"last update {_ago(age)}"
        )
    elif age is not None and age > _stale_after(data):
        liveness = "stale"
        summary = f"stale: run {run} (pid {pid}) is alive but last wrote {_ago(age)}"
    else:
        liveness = "running"
        summary = f"running: run {run} (pid {pid}), {state}"
    data["liveness"] = liveness
    data["running"] = liveness == "running"
    data["summary"] = summary
    return data


def _stale_after(data: dict[str, Any]) -> float:
    try:
        every = float(data.get("every_seconds") or 0)
    except (TypeError, ValueError):
        every = 0.0
    return max(_MIN_STALE, every * _STALE_INTERVALS)


def _ago(age: float | None) -> str:
    return "at an unknown time" if age is None else f"{age:.0f} s ago"


def halt_reason(halt: dict[str, Any], *, since: bool = False) -> str:
    """Why a run is halted, from its status's ``halt`` table (``since``: when by hand)."""
    if halt.get("problem"):
        return str(halt["problem"])
    manual = halt.get("manual")
    if manual:
        at = f" (since {manual.get('at')})" if since else ""
        return f"by hand: {manual.get('reason')}{at}"
    daily = halt.get("daily") or {}
    return f"daily loss limit: loss {daily.get('loss')} >= {daily.get('limit')}"
