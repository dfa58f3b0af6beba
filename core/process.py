"""Which process is this, and is a process recorded earlier still alive.

A run records the process that runs it (host name, pid and, where the system
tells it, the pid's start time), so that a later start can tell a run that is
still going from one whose process was killed (SIGKILL, a power cut) and
would otherwise say "running" forever. The start time guards against a pid
the system has since given to another process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessId:
    """One process on one host."""

    host: str
    pid: int
    #: Clock ticks after boot at which the process started (Linux), else ``None``.
    started: int | None = None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot; ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(socket.gethostname(), pid, start_ticks(pid))


def is_alive(process: ProcessId) -> bool | None:
    """Whether ``process`` still runs: ``None`` when this host cannot tell (another host)."""
    if process.host != socket.gethostname():
        return None
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    if process.started is not None:
        now = start_ticks(process.pid)
        if now is not None and now != process.started:
            return False  # the pid now belongs to another process
    return True
