"""``tradepipe serve``: the token file, the bind address, the warning, a port in use."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.logs import ROOT, shutdown_logging
from tradepipe.plugins.api import cli as api_cli

Served = list[tuple[Any, str, int]]


@pytest.fixture
def logs_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`serve` sets up logging and takes uvicorn's logger over: put both back after."""
    monkeypatch.delenv(api_cli.TOKEN_ENV, raising=False)
    server = logging.getLogger("uvicorn")
    level, propagate, handlers = server.level, server.propagate, list(server.handlers)
    yield
    shutdown_logging()
    server.setLevel(level)
    server.propagate = propagate
    for handler in [h for h in server.handlers if h not in handlers]:
        server.removeHandler(handler)


@pytest.fixture
def served(workdir: Path, monkeypatch: pytest.MonkeyPatch, logs_restored: None) -> Served:
    calls: Served = []
    bound: list[tuple[str, int]] = []

    def listen(host: str, port: int) -> socket.socket:
        # No real port: tests run side by side, and 8700 may be taken.
        bound.append((host, port))
        return socket.socket()

    def run_server(app: Any, sock: socket.socket) -> None:
        calls.append((app, *bound[-1]))

    monkeypatch.setattr(api_cli, "listen", listen)
    monkeypatch.setattr(api_cli, "run_server", run_server)
    return calls


def serve(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, ["serve", *args], obj=app)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another program is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def status(app: Any, token: str) -> int:
    with TestClient(app) as client:
        return client.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.mark.slow
def test_a_token_is_generated_once_into_a_private_file(workdir: Path, served: Served) -> None:
    first = serve()
    assert first.exit_code == 0, first.output
    path = workdir / api_cli.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    assert token in first.stdout
    # The address that opens the dashboard signed in, shown only with the new token.
    assert f"dashboard, signed in: http://127.0.0.1:8700/#token={token}" in first.stdout
    assert served[0][1:] == ("127.0.0.1", 8700)
    assert status(served[0][0], token) == 200
    assert status(served[0][0], "x" * 32) == 401

    second = serve("--port", "8800")
    assert second.exit_code == 0, second.output
    assert token not in second.output
    assert path.read_text().strip() == token
    assert served[1][2] == 8800
    assert status(served[1][0], token) == 200


@pytest.mark.slow
def test_the_token_can_come_from_the_environment(
    workdir: Path, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(api_cli.TOKEN_ENV, "from-the-environment-123")
    result = serve()
    assert result.exit_code == 0, result.output
    assert "from-the-environment-123" not in result.output
    assert not (workdir / api_cli.TOKEN_FILE).exists()
    assert status(served[0][0], "from-the-environment-123") == 200


def test_a_short_environment_token_is_refused(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(api_cli.TOKEN_ENV, "short")
    result = serve()
    assert result.exit_code == 2
    assert "shorter than 16" in result.output
    assert served == []


@pytest.mark.slow
def test_a_token_file_others_can_read_is_refused(workdir: Path, served: Served) -> None:
    path = workdir / "token"
    path.write_text("a-token-long-enough-0123456789\n")
    path.chmod(0o644)
    result = serve("--token-file", str(path))
    assert result.exit_code == 2
    assert "chmod 600" in result.output
    assert served == []
    path.chmod(0o600)
    assert serve("--token-file", str(path)).exit_code == 0
    assert status(served[0][0], "a-token-long-enough-0123456789") == 200


@pytest.mark.slow
def test_a_remote_bind_needs_allow_remote_and_warns(workdir: Path, served: Served) -> None:
    refused = serve("--host", "0.0.0.0")
    assert refused.exit_code == 2
    assert "--allow-remote" in refused.output
    assert served == []
    allowed = serve("--host", "0.0.0.0", "--allow-remote")
    assert allowed.exit_code == 0, allowed.output
    assert "warning: serving on 0.0.0.0:8700" in allowed.stderr
    assert served[0][1] == "0.0.0.0"


class Kept(logging.Handler):
    """Keeps what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_servers_own_records_are_redacted_into_the_log(
    workdir: Path, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "the-served-token-0123456789"
    monkeypatch.setenv(api_cli.TOKEN_ENV, token)
    assert serve().exit_code == 0
    catch = Kept()
    logging.getLogger().addHandler(catch)
    try:
        # What uvicorn logs: each request with its query string, and the traceback
        # of an exception it sees after the app has answered 500.
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/account?token={token}", "1.1", 401
        )
        try:
            raise RuntimeError(f"account U1234567 with {token}")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    finally:
        logging.getLogger().removeHandler(catch)
    for handler in logging.getLogger(ROOT).handlers:
        handler.flush()
    text = (workdir / "logs" / "tradepipe.log").read_text()
    assert "uvicorn.access" in text and "GET /account?token=[REDACTED]" in text
    assert "Exception in ASGI application" in text and "U***4567" in text
    assert token not in text and "U1234567" not in text
    # Nothing goes around the redaction to the root logger's handlers (or stderr).
    assert catch.records == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert api_cli.is_loopback(host) is loopback


# -- the [api] settings table ----------------------------------------------------------


def add_settings(workdir: Path, text: str, name: str = "settings.toml") -> None:
    path = workdir / name
    path.write_text((path.read_text() if path.exists() else "") + text)


@pytest.mark.slow
def test_host_and_port_come_from_the_settings_and_the_options_win(
    workdir: Path, served: Served
) -> None:
    add_settings(workdir, '[default.api]\nhost = "localhost"\nport = 8801\n')
    assert serve().exit_code == 0
    assert served[0][1:] == ("localhost", 8801)
    assert serve("--port", "8802", "--host", "127.0.0.2").exit_code == 0
    assert served[1][1:] == ("127.0.0.2", 8802)


def test_a_remote_host_from_the_settings_still_needs_allow_remote(
    workdir: Path, served: Served
) -> None:
    add_settings(workdir, '[default.api]\nhost = "0.0.0.0"\n')
    refused = serve()
    assert refused.exit_code == 2 and "--allow-remote" in refused.output
    assert served == []


@pytest.mark.slow
def test_the_token_can_come_from_the_secrets_file(workdir: Path, served: Served) -> None:
    token = "from-the-secrets-file-0123"
    add_settings(workdir, f'[default.api]\ntoken = "{token}"\n', ".secrets.toml")
    result = serve()
    assert result.exit_code == 0, result.output
    assert "API token: from [api] token" in result.stdout
    assert token not in result.output and "warning" not in result.stderr
    assert not (workdir / api_cli.TOKEN_FILE).exists()
    assert status(served[0][0], token) == 200
    shown = CliRunner().invoke(cli, ["config", "show"], obj=AppContext("settings.toml"))
    assert shown.exit_code == 0, shown.output
    assert token not in shown.output
    assert json.loads(shown.stdout)["api"]["token"] == "********"


@pytest.mark.slow
def test_a_token_in_the_settings_file_is_used_with_a_warning(workdir: Path, served: Served) -> None:
    add_settings(workdir, '[default.api]\ntoken = "in-the-settings-file-0123"\n')
    result = serve()
    assert result.exit_code == 0, result.output
    assert "move it to .secrets.toml" in result.stderr
    assert status(served[0][0], "in-the-settings-file-0123") == 200


@pytest.mark.slow
def test_the_environment_and_the_token_file_option_beat_the_setting(
    workdir: Path, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_settings(workdir, '[default.api]\ntoken = "the-configured-token-0123"\n', ".secrets.toml")
    path = workdir / "given"
    path.write_text("from-the-given-file-0123\n")
    path.chmod(0o600)
    assert serve("--token-file", str(path)).exit_code == 0
    assert status(served[0][0], "from-the-given-file-0123") == 200
    assert status(served[0][0], "the-configured-token-0123") == 401
    monkeypatch.setenv(api_cli.TOKEN_ENV, "from-the-environment-123")
    assert serve().exit_code == 0
    assert status(served[1][0], "from-the-environment-123") == 200


@pytest.mark.slow
def test_the_token_file_setting_is_relative_to_the_settings_file(
    workdir: Path, served: Served
) -> None:
    add_settings(workdir, '[default.api]\ntoken_file = "private/api-token"\n')
    (workdir / "private").mkdir()
    result = serve()
    assert result.exit_code == 0, result.output
    path = workdir / "private" / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert status(served[0][0], path.read_text().strip()) == 200


def test_a_short_configured_token_is_refused_without_showing_it(
    workdir: Path, served: Served
) -> None:
    add_settings(workdir, '[default.api]\ntoken = "tiny-secret"\n', ".secrets.toml")
    result = serve()
    assert result.exit_code == 2
    assert "[api] token" in result.output and "shorter than 16" in result.output
    assert "tiny-secret" not in result.output
    assert served == []


# -- binding -------------------------------------------------------------------------


def test_a_port_in_use_is_one_error_line_and_exit_1(
    workdir: Path, taken_port: int, logs_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_server(app: Any, sock: socket.socket) -> None:
        raise AssertionError("served on a port it could not bind")

    monkeypatch.setattr(api_cli, "run_server", run_server)
    result = serve("--port", str(taken_port))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot serve on 127.0.0.1:{taken_port}: port {taken_port} is in use "
        "(another tradepipe serve?); stop that or use --port"
    ]
    # Nothing was started, so no token was made (and shown) for nothing.
    assert not (workdir / api_cli.TOKEN_FILE).exists()


@pytest.mark.slow
def test_the_installed_command_on_a_port_in_use(workdir: Path, taken_port: int) -> None:
    # The real process: no traceback, nothing from uvicorn, no "serving on".
    done = subprocess.run(
        [sys.executable, "-m", "tradepipe", "serve", "--port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, api_cli.TOKEN_ENV: "from-the-environment-123"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: cannot serve on 127.0.0.1:{taken_port}: port {taken_port} is in use "
        "(another tradepipe serve?); stop that or use --port"
    ]


def test_serving_on_is_said_once_the_socket_is_bound(
    workdir: Path, logs_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []

    def run_server(app: Any, sock: socket.socket) -> None:
        # Already listening: a client can connect before the server loop starts.
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            seen.append(sock.getsockname()[:2])

    monkeypatch.setattr(api_cli, "run_server", run_server)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = serve("--port", str(port))
    assert result.exit_code == 0, result.output
    assert seen == [("127.0.0.1", port)]
    assert result.stdout.count("serving on") == 1
    assert f"serving on http://127.0.0.1:{port} " in result.stdout
    # Closed when the server returns: the port is free again.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
