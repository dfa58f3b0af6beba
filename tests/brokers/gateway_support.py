"""A local HTTPS stand-in for the IBKR Client Portal Gateway, and its fixtures.

The fixtures are registered by ``conftest.py``; tests import the helpers from
here (a module named ``conftest`` is ambiguous when several test folders run
together).

``gateway`` (paper account ``DU1234567``) and ``live_gateway`` (live account ``U1234567``) each
start the stand-in (``python -m standin``, the package beside this module) in its own process
for one test and stop it afterwards; startup takes about 0.15 s. The certificates come from a
throwaway CA made with ``trustme`` once per session. ``start_gateway`` starts one with extra
command-line flags (e.g. ``--behaviour '{"idle_seconds": 0}'``).

Talk to the stand-in with ``gateway.client()`` (an ``httpx.Client`` on ``gateway.base_url`` that
trusts the CA) or build your own client with ``verify=gateway.ssl_context()``; httpx 0.28
deprecates ``verify=<path>``, so pass a context made from ``gateway.ca_path`` rather than the
path itself. The control methods (``set_auth``, ``questions``, ``fault``, ``fill``...) drive the
stand-in; see the docstring of the ``standin`` package for what each one does. They come from
:class:`standin.driver.Driver`, as do those of the stand-in in this process
(``inprocess_support.py``), so a test can be written once for either; ``serve_cli`` points the
CLI's Client Portal adapter at this one. Both sides keep IBKR's real pacing on the wall clock
here, so tests over HTTPS are few and short; the rest run in this process on a virtual clock.
"""

from __future__ import annotations

import json
import select
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from standin.driver import Driver

#: The folder holding the ``standin`` package: stand-ins are started there with ``python -m``.
HERE = Path(__file__).parent
STANDIN = "standin"
PAPER_ACCOUNT = "DU1234567"
LIVE_ACCOUNT = "U1234567"
STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class GatewayCerts:
    """PEM files: the CA to trust, and the server's certificate chain and key."""

    ca_path: Path
    cert_path: Path
    key_path: Path


@dataclass
class Gateway(Driver):
    """A running stand-in process: where it is, whom it trusts, and its control API."""

    base_url: str  # https://127.0.0.1:<port>/v1/api
    ca_path: str  # CA certificate (PEM) that signed the server certificate
    account: str
    port: int
    pid: int
    _control: httpx.Client = field(repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the stand-in's CA (pass it as ``verify=``)."""
        return ssl.create_default_context(cafile=self.ca_path)

    def client(self, *, paced: bool = False, **kwargs: Any) -> httpx.Client:
        """A new ``httpx.Client`` on ``base_url`` that trusts the CA; close it when done."""
        kwargs.setdefault("timeout", 10.0)
        if paced:
            kwargs.setdefault("event_hooks", {"request": [lambda _: time.sleep(0.11)]})
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), **kwargs)

    @property
    def verify(self) -> bool | str:
        return self.ca_path

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def serve_cli(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The CLI reaches this process through ``base_url`` (see :meth:`broker_table`) with
        the adapter's own pacing, on the wall clock both sides read: keep such tests short."""

    def _send(self, method: str, path: str, raw: bytes) -> tuple[int, str]:
        response = self._control.request(method, path, content=raw)
        return response.status_code, response.text


@pytest.fixture(scope="session")
def gateway_certs(tmp_path_factory: pytest.TempPathFactory) -> GatewayCerts:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost, as PEM files."""
    folder = tmp_path_factory.mktemp("gateway-certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = GatewayCerts(folder / "ca.pem", folder / "server-chain.pem", folder / "server-key.pem")
    ca.cert_pem.write_to_path(str(certs.ca_path))
    certs.cert_path.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(certs.key_path))
    return certs


def _read_port(proc: subprocess.Popen[bytes], stderr_path: Path) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("PORT "):
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        stderr = stderr_path.read_text(errors="replace")
        pytest.fail(
            f"gateway stand-in did not start (stdout {line!r}, exit {proc.returncode}):\n{stderr}"
        )
    return int(line.split()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


def launch(
    module: str, certs: GatewayCerts, folder: Path, *args: str
) -> tuple[subprocess.Popen[bytes], httpx.Client, int]:
    """Start ``python -m module`` (a stand-in) with ``args`` on a free port of 127.0.0.1.

    Returns its process, a control client trusting the CA, and the port; a
    process that does not come up is stopped and the test fails with its stderr.
    """
    stderr_path = folder / "stderr.txt"
    command = [
        sys.executable,
        "-m",
        module,
        "--cert",
        str(certs.cert_path),
        "--key",
        str(certs.key_path),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
    ]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, cwd=HERE)
    try:
        port = _read_port(proc, stderr_path)
    except BaseException:
        _stop(proc)
        raise
    control = httpx.Client(
        base_url=f"https://127.0.0.1:{port}/_standin",
        verify=ssl.create_default_context(cafile=str(certs.ca_path)),
        timeout=10.0,
    )
    return proc, control, port


@pytest.fixture
def start_gateway(
    gateway_certs: GatewayCerts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """``start_gateway(*flags, account="DU1234567")`` starts a stand-in; all stop at teardown."""
    running: list[tuple[subprocess.Popen[bytes], httpx.Client]] = []

    def start(*flags: str, account: str = PAPER_ACCOUNT) -> Gateway:
        folder = tmp_path_factory.mktemp("gateway-standin")
        proc, control, port = launch(STANDIN, gateway_certs, folder, "--account", account, *flags)
        running.append((proc, control))
        return Gateway(
            base_url=f"https://127.0.0.1:{port}/v1/api",
            ca_path=str(gateway_certs.ca_path),
            account=account,
            port=port,
            pid=proc.pid,
            _control=control,
        )

    yield start
    for proc, control in reversed(running):
        control.close()
        _stop(proc)


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A stand-in gateway logged in to the paper account DU1234567."""
    return start_gateway()


@pytest.fixture
def live_gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A stand-in gateway logged in to the live account U1234567 (``isPaper`` false)."""
    return start_gateway(account=LIVE_ACCOUNT)


def toml_lines(values: dict[str, Any]) -> str:
    """``key = value`` lines of a TOML table (JSON literals are valid TOML here)."""
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())


def write_broker_settings(path: Path, broker: str, table: dict[str, Any]) -> None:
    """``settings.toml`` in ``path``: ``broker`` with ``table``, three filters, an SQLite ledger.

    Replays may send their orders to the stand-in: it is a test account.
    """
    path.joinpath("settings.toml").write_text(
        f"""
[default.run]
broker = "{broker}"
replay_to_broker = true
risk_filters = ["min_confidence", "max_position_value", "buying_power"]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.risk.max_position_value]
limit = 100000
[default.feeds.synthetic]
symbols = ["AAPL"]
bars = 120
[default.logging]
dir = "logs"
[default.brokers.{broker}]
{toml_lines(table)}
"""
    )
