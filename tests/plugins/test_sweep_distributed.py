"""``tradepipe sweep --scheduler``: replays on a Dask cluster of separate processes.

A ``dask scheduler`` on 127.0.0.1 (a port the system chose, read back from its
scheduler file, no dashboard) and two ``dask worker`` processes of one thread
each, every one started in a session of its own and stopped by its pid
afterwards. What the workers compute must be what the same replay computes in
this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.research import task
from tradepipe.plugins.research.sweep import complete, plain_settings
from tradepipe.plugins.research.task import TaskSpec, run_task
from tradepipe.settings import load_settings

SETTINGS = """
[default.run]
strategies = ["sma_cross"]
sinks = ["sql"]
[default.feeds.synthetic]
symbols = ["AAPL", "MSFT"]
bars = 250
interval = "1d"
seed = 3
[default.sinks.sql]
path = "ledger.db"
[default.logging]
file = false
"""
FAST = [5, 10, 15]
WORKERS = 2
#: Seconds a process has to start, and to stop after SIGTERM before it is killed.
START_TIMEOUT = 30
STOP_TIMEOUT = 10


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRADEPIPE_", "DASK_"))}


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=cwd,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}" for p in folder.glob("*.log"))


def _scheduler_address(proc: subprocess.Popen[bytes], file: Path, folder: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dask scheduler exited ({proc.returncode}):\n{_logs(folder)}")
        try:
            address: str = json.loads(file.read_text())["address"]
            return address
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    pytest.fail(f"dask scheduler did not start within {START_TIMEOUT} s:\n{_logs(folder)}")


def _wait_for_workers(address: str, procs: list[subprocess.Popen[bytes]], folder: Path) -> None:
    from dask.distributed import Client

    with Client(address, timeout=f"{START_TIMEOUT}s") as client:
        deadline = time.monotonic() + START_TIMEOUT
        while len(client.scheduler_info(n_workers=-1)["workers"]) < WORKERS:
            if any(p.poll() is not None for p in procs):
                pytest.fail(f"a dask process exited:\n{_logs(folder)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {WORKERS} workers within {START_TIMEOUT} s:\n{_logs(folder)}")
            time.sleep(0.1)


def _start_scheduler(folder: Path) -> subprocess.Popen[bytes]:
    """A Dask scheduler on a free port of 127.0.0.1, its address in ``scheduler.json``."""
    return _start(
        [
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(folder / "scheduler.json"),
        ],
        folder,
        folder / "scheduler.log",
    )


@pytest.fixture
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a Dask scheduler with two single-thread workers, each a process
    of its own (no nanny) in a session of its own: a Ctrl-C meant for pytest does not
    reach them, and stopping a pid stops a whole worker."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start_scheduler(folder))
        address = _scheduler_address(procs[0], file, folder)
        for number in range(1, WORKERS + 1):
            procs.append(
                _start(
                    [
                        "distributed.cli.dask_worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--name",
                        f"worker-{number}",
                        "--local-directory",
                        str(folder / f"worker-{number}"),
                        # Left alone by a scheduler gone away, a worker exits.
                        "--death-timeout",
                        "30",
                    ],
                    folder,  # not the test's folder: a synthetic feed reads no file
                    folder / f"worker-{number}.log",
                )
            )
        _wait_for_workers(address, procs, folder)
        yield address
    finally:
        for proc in reversed(procs):  # the workers first, then their scheduler
            _stop(proc)


def _bars_read_by_workers(address: str) -> dict[str, int]:
    """Each worker's count of feeds read (its bar cache)."""
    from dask.distributed import Client

    with Client(address, timeout=f"{START_TIMEOUT}s") as client:
        counts: dict[str, int] = client.run(lambda: len(task._BARS))
    return counts


def tp(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


def in_process(fast: int) -> dict[str, Any]:
    """The metrics of the replay with ``fast``, run here as a worker runs it."""
    plain = plain_settings(load_settings("settings.toml"))
    result = complete(
        run_task(TaskSpec(f"here:{fast}", plain, {"strategies.sma_cross.fast": fast}))
    )
    assert not result.error, result.error
    return result.metrics


@pytest.mark.slow
def test_sweep_on_a_scheduler_gives_what_a_replay_here_gives(
    workdir: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "settings.toml").write_text(SETTINGS)
    values = ",".join(map(str, FAST))
    done = tp(
        "sweep",
        "--scheduler",
        scheduler,
        "--param",
        f"strategies.sma_cross.fast={values}",
        "--json",
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["status"] == "completed"
    assert document["failed"] == []
    assert document["ran"] == len(FAST)
    by_fast = {row["params"]["strategies.sma_cross.fast"]: row for row in document["top"]}
    assert sorted(by_fast) == FAST
    assert sum(_bars_read_by_workers(scheduler).values()) >= 1  # the workers replayed

    # This process's bar and plugin caches are the module's; the replays here start
    # from empty ones and leave them as they were.
    monkeypatch.setattr(task, "_BARS", {})
    monkeypatch.setattr(task, "_HOSTS", {})
    for fast, row in by_fast.items():
        assert row["period"] == "all"
        expected = in_process(fast)
        assert expected["trades"] > 0
        for key in ("sharpe", "total_return", "trades"):
            assert row["metrics"][key] == expected[key], (fast, key)


@pytest.mark.slow
def test_a_scheduler_without_workers_is_an_error_not_a_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradepipe.errors import ConfigError
    from tradepipe.plugins.research import sweep

    proc = _start_scheduler(tmp_path)
    try:
        address = _scheduler_address(proc, tmp_path / "scheduler.json", tmp_path)
        monkeypatch.setattr(sweep, "WORKER_WAIT_SECONDS", 1.0)
        with pytest.raises(ConfigError, match="has no workers after 1 s: start some"):
            sweep.DaskRunner(address, given_as="--scheduler")
    finally:
        _stop(proc)
