"""``tradepipe serve``: the token file, the bind address, the warning."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins import api_cli

Served = list[tuple[Any, str, int]]


@pytest.fixture
def served(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Served:
    calls: Served = []

    def run_server(app: Any, host: str, port: int) -> None:
        calls.append((app, host, port))

    monkeypatch.setattr(api_cli, "run_server", run_server)
    monkeypatch.delenv(api_cli.TOKEN_ENV, raising=False)
    return calls


def serve(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, ["serve", *args], obj=app)


def status(app: Any, token: str) -> int:
    with TestClient(app) as client:
        return client.get("/orders", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_token_is_generated_once_into_a_private_file(workdir: Path, served: Served) -> None:
    first = serve()
    assert first.exit_code == 0, first.output
    path = workdir / api_cli.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    assert token in first.stdout
    assert served[0][1:] == ("127.0.0.1", 8700)
    assert status(served[0][0], token) == 200
    assert status(served[0][0], "x" * 32) == 401

    second = serve("--port", "8800")
    assert second.exit_code == 0, second.output
    assert token not in second.output
    assert path.read_text().strip() == token
    assert served[1][2] == 8800
    assert status(served[1][0], token) == 200


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


def test_a_remote_bind_needs_allow_remote_and_warns(workdir: Path, served: Served) -> None:
    refused = serve("--host", "0.0.0.0")
    assert refused.exit_code == 2
    assert "--allow-remote" in refused.output
    assert served == []
    allowed = serve("--host", "0.0.0.0", "--allow-remote")
    assert allowed.exit_code == 0, allowed.output
    assert "warning: serving on 0.0.0.0:8700" in allowed.stderr
    assert served[0][1] == "0.0.0.0"


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
