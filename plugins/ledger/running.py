"""The runs the ledger says are still going on this machine."""

from __future__ import annotations

from sqlalchemy import Connection, select
from tradepipe.plugins.ledger import schema
from tradepipe.process import ProcessId, is_alive, this_process


def runs_here(conn: Connection) -> dict[str, ProcessId | None]:
    """The runs the ledger says are running on this host, each with its process
    while that is alive (``None``: gone, the run was killed)."""
    runs = schema.RunRow.__table__  # type: ignore[attr-defined]
    host = this_process().host
    rows = conn.execute(
        select(runs.c.run_id, runs.c.pid, runs.c.pid_started).where(
            (runs.c.status == "running") & (runs.c.host == host) & runs.c.pid.is_not(None)
        )
    ).all()
    out: dict[str, ProcessId | None] = {}
    for run_id, pid, started in rows:
        process = ProcessId(host, pid, started)
        out[run_id] = process if is_alive(process) else None
    return out


def one_running_here(conn: Connection) -> str | None:
    """A run still going on this host whose process is alive, if one is."""
    return next((run_id for run_id, alive in runs_here(conn).items() if alive is not None), None)
