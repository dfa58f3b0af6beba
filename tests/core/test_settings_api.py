"""``[api]``: ``tradepipe serve``'s table, validated like the others, its token a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from tradepipe.errors import ConfigError
from tradepipe.settings import MASK, AppSettings, load_settings


def load(tmp_path: Path, text: str, secrets: str = "") -> AppSettings:
    (tmp_path / "settings.toml").write_text(text)
    if secrets:
        (tmp_path / ".secrets.toml").write_text(secrets)
    return load_settings(tmp_path / "settings.toml")


def test_defaults(tmp_path: Path) -> None:
    api = load(tmp_path, "").api
    assert (api.token, api.token_file, api.host, api.port) == ("", "", "127.0.0.1", 8700)


def test_the_token_is_a_secret(tmp_path: Path) -> None:
    token = "a-token-from-secrets-0123"
    settings = load(tmp_path, "[default.api]\nport = 9000\n", f'[default.api]\ntoken = "{token}"\n')
    assert settings.api.token == token and settings.api.port == 9000
    assert "api.token" in settings.secret_keys
    assert token in settings.secret_values()
    assert settings.masked()["api"]["token"] == MASK


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("port = 0", "[api] port = 0", "greater than or equal to 1"),
        ("port = 70000", "[api] port = 70000", "less than or equal to 65535"),
        ('host = ""', "[api] host", "at least 1 character"),
        ('token = "short-secret"', f"[api] token = {MASK}", "shorter than 16"),
        ('tokn = "x"', "[api] tokn", "expected one of: host, port, token, token_file"),
    ],
)
def test_a_bad_value_names_the_key(tmp_path: Path, text: str, where: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[default.api]\n{text}\n")
    message = str(info.value)
    assert where in message and expected in message
    assert "short-secret" not in message
