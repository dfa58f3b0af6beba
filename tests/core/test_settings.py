"""Settings: merging of files, secrets and variables; errors that name what is wrong."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from tradepipe.errors import ConfigError, UnknownComponentError
from tradepipe.host import PluginHost
from tradepipe.pipeline import check_components
from tradepipe.settings import MASK, AppSettings, RunSettings, load_settings

REPO_SETTINGS = Path(__file__).resolve().parents[2] / "settings.toml"

LAYERED = """
[default.run]
broker = "paper"
batch_size = 10

[default.sizing]
method = "fixed_quantity"
quantity = 5

[default.strategies.sma_cross]
fast = 10
slow = 30

[development.sizing]
quantity = 6

[paper.sizing]
quantity = 7

[paper.strategies.sma_cross]
slow = 50

[live.sizing]
quantity = 9
"""


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TRADEPIPE_* variable from the outside, and a cwd without settings files."""
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(directory: Path, text: str, name: str = "settings.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, **kwargs: object) -> AppSettings:
    return load_settings(write(tmp_path, text), **kwargs)  # type: ignore[arg-type]


# -- merging and environments ----------------------------------------------------


def test_default_tables_apply_under_development_and_its_tables_override(tmp_path: Path) -> None:
    path = write(tmp_path, LAYERED)

    settings = load_settings(path)

    assert settings.env == "development"
    assert settings.path == str(path)
    assert settings.sizing.method == "fixed_quantity"  # only in [default]
    assert settings.sizing.quantity == Decimal(6)  # [development] beats [default]
    assert settings.run.batch_size == 10
    assert settings.strategies["sma_cross"] == {"fast": 10, "slow": 30}


def test_env_argument_selects_environment_and_merges_tables_key_by_key(tmp_path: Path) -> None:
    settings = load_text(tmp_path, LAYERED, env="paper")

    assert settings.env == "paper"
    assert settings.sizing.quantity == Decimal(7)
    assert settings.sizing.method == "fixed_quantity"
    # [paper.strategies.sma_cross] changes slow, fast still comes from [default].
    assert settings.strategies["sma_cross"] == {"fast": 10, "slow": 50}


def test_tradepipe_env_variable_selects_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_ENV", "live")

    settings = load_text(tmp_path, LAYERED)

    assert settings.env == "live"
    assert settings.sizing.quantity == Decimal(9)


def test_explicit_env_beats_tradepipe_env_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_ENV", "live")

    settings = load_text(tmp_path, LAYERED, env="paper")

    # Both the reported environment and the tables loaded must be paper's.
    assert settings.env == "paper"
    assert settings.sizing.quantity == Decimal(7)


def test_settings_toml_in_cwd_is_used_when_no_path_is_given(tmp_path: Path) -> None:
    write(tmp_path, LAYERED)

    settings = load_settings()

    assert settings.path == "settings.toml"
    assert settings.sizing.quantity == Decimal(6)


def test_builtin_defaults_when_cwd_has_no_settings_file() -> None:
    settings = load_settings()

    assert settings.path is None
    assert settings.env == "development"
    assert settings.run == RunSettings()
    assert settings.run.broker == "paper"
    assert settings.strategies == {}
    assert settings.secret_keys == frozenset()


# -- environment variables and overrides -----------------------------------------


def test_environment_variables_override_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_RUN__BROKER", "client_portal")
    monkeypatch.setenv("TRADEPIPE_SIZING__QUANTITY", "42")
    monkeypatch.setenv("TRADEPIPE_STRATEGIES__SMA_CROSS__FAST", "3")

    settings = load_text(tmp_path, LAYERED)

    assert settings.run.broker == "client_portal"
    assert settings.sizing.quantity == Decimal(42)
    assert settings.strategies["sma_cross"] == {"fast": 3, "slow": 30}
    assert settings.run.batch_size == 10  # untouched keys of the table survive


def test_overrides_beat_environment_variables_and_keep_other_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_RUN__BROKER", "client_portal")

    settings = load_text(tmp_path, LAYERED, overrides={"run": {"broker": "web_api"}})

    assert settings.run.broker == "web_api"
    assert settings.run.batch_size == 10


def test_tradepipe_settings_variable_is_not_read_as_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI reads --settings from TRADEPIPE_SETTINGS; it must not break loading.
    path = write(tmp_path, LAYERED)
    monkeypatch.setenv("TRADEPIPE_SETTINGS", str(path))

    settings = load_settings(path)

    assert settings.sizing.quantity == Decimal(6)


# -- secrets -------------------------------------------------------------------------

DB_URL = "postgresql://bob:pw-9f8e7d6c@db.internal/ledger"


def test_secrets_file_beside_settings_is_merged_and_reported_secret(tmp_path: Path) -> None:
    write(tmp_path, '[default.sinks.sql]\npath = "ledger.db"\n')
    write(
        tmp_path,
        f'[default.sinks.sql]\nurl = "{DB_URL}"\n[paper.brokers.paper]\naccount_id = "DU5550001"\n',
        ".secrets.toml",
    )

    settings = load_settings(tmp_path / "settings.toml")

    assert settings.sinks["sql"] == {"path": "ledger.db", "url": DB_URL}
    assert "sinks.sql.url" in settings.secret_keys
    assert settings.is_secret("sinks.sql.url")
    assert not settings.is_secret("sinks.sql.path")
    assert DB_URL in settings.secret_values()
    assert "ledger.db" not in settings.secret_values()
    # The [paper] part of the secrets applies to paper only.
    assert "paper" not in settings.brokers

    masked = settings.masked()
    assert masked["sinks"]["sql"] == {"path": "ledger.db", "url": MASK}
    assert DB_URL not in json.dumps(masked)
    assert "bob" not in json.dumps(masked)

    # [paper] exists only in the secrets file; that is enough to select it.
    paper = load_settings(tmp_path / "settings.toml", env="paper")
    assert paper.brokers["paper"] == {"account_id": "DU5550001"}
    assert paper.masked()["brokers"]["paper"]["account_id"] == MASK
    assert "DU5550001" in paper.secret_values()


def test_secrets_file_is_looked_for_beside_the_settings_file_not_in_cwd(
    tmp_path: Path,
) -> None:
    write(tmp_path, f'[default.sinks.sql]\nurl = "{DB_URL}"\n', ".secrets.toml")
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()

    settings = load_settings(write(elsewhere, LAYERED))

    assert "sql" not in settings.sinks
    assert DB_URL not in settings.secret_values()


@pytest.mark.parametrize("key", ["access_token", "password", "api_key", "client_secret"])
def test_keys_secret_by_name_are_masked_even_from_settings_toml(tmp_path: Path, key: str) -> None:
    value = "v4lue-that-must-not-show"
    settings = load_text(
        tmp_path, f'[default.brokers.web_api]\n{key} = "{value}"\nbase_url = "https://x"\n'
    )

    dotted = f"brokers.web_api.{key}"
    assert settings.is_secret(dotted)
    assert value in settings.secret_values()
    masked = settings.masked()
    assert masked["brokers"]["web_api"] == {key: MASK, "base_url": "https://x"}
    assert value not in json.dumps(masked)


def test_secret_from_environment_variable_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__ACCESS_TOKEN", "tok-from-env-123")

    settings = load_text(tmp_path, LAYERED)

    assert settings.brokers["web_api"]["access_token"] == "tok-from-env-123"
    assert "tok-from-env-123" in settings.secret_values()
    assert settings.masked()["brokers"]["web_api"]["access_token"] == MASK


def test_a_password_in_a_url_is_masked_wherever_the_url_was_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger URL with its password in settings.toml or the environment: what
    `config show`, a run's recorded settings and the logs' redaction see."""
    monkeypatch.setenv(
        "TRADEPIPE_SINKS__SQL__URL", "postgresql+psycopg://me:s%40cret-pw@db.example:5432/ledger"
    )
    settings = load_text(
        tmp_path,
        '[default.sinks.other]\nurl = "https://user:another-pw@example.com/x?a=1"\n'
        '[default.sinks.plain]\nurl = "https://example.com/x:y@z"\n'
        '[default.sinks.bare]\nurl = "postgresql://me:Se@cret@db.example/ledger"\n',
    )
    masked = settings.masked()
    assert masked["sinks"]["sql"]["url"] == f"postgresql+psycopg://me:{MASK}@db.example:5432/ledger"
    assert masked["sinks"]["other"]["url"] == f"https://user:{MASK}@example.com/x?a=1"
    assert masked["sinks"]["plain"]["url"] == "https://example.com/x:y@z"  # no password there
    # An "@" left unencoded in the password: the whole of it is masked.
    assert masked["sinks"]["bare"]["url"] == f"postgresql://me:{MASK}@db.example/ledger"
    for shown in ("s%40cret-pw", "s@cret-pw", "another-pw"):
        assert shown not in json.dumps(masked)
        assert shown in settings.secret_values()


def test_non_secret_values_are_not_masked(tmp_path: Path) -> None:
    masked = load_text(tmp_path, LAYERED).masked()

    assert masked["run"]["broker"] == "paper"
    assert masked["strategies"]["sma_cross"] == {"fast": 10, "slow": 30}
    assert "secret_keys" not in masked


# -- files that cannot be used -----------------------------------------------------


def test_explicit_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mine.toml"

    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings(missing)

    assert str(missing) in str(info.value)


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[default.run\nbroker = ")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(path)

    assert str(path) in str(info.value)


def test_invalid_secrets_toml_is_an_error_naming_that_file(tmp_path: Path) -> None:
    path = write(tmp_path, LAYERED)
    secrets = write(tmp_path, "password = ", ".secrets.toml")

    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(path)

    assert str(secrets) in str(info.value)


def test_unknown_environment_is_an_error_listing_the_defined_ones(tmp_path: Path) -> None:
    path = write(tmp_path, LAYERED)

    with pytest.raises(ConfigError) as info:
        load_settings(path, env="nope")

    message = str(info.value)
    assert "'nope'" in message
    assert str(path) in message
    assert "live" in message and "paper" in message
    assert info.value.key == "env"


def test_unknown_environment_from_variable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_ENV", "staging")

    with pytest.raises(ConfigError, match="'staging'"):
        load_text(tmp_path, LAYERED)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ('[run]\nbroker = "paper"\n', ["[run]", "[default.run]"]),
        ('[sizing]\nmethod = "risk"\n', ["[sizing]", "[default.sizing]"]),
        ('broker = "paper"\n', ["broker", "outside any table"]),
    ],
)
def test_tables_outside_an_environment_are_refused_not_ignored(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_settings(path)

    for fragment in fragments:
        assert fragment in str(info.value)
    assert str(path) in str(info.value)


# -- bad keys and values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "shown", "expected", "dotted"),
    [
        (
            '[default.run]\nbrokr = "x"\n',
            "[run] brokr",
            "'x'",
            ["is not a known key", "broker", "strategies"],
            "run.brokr",
        ),
        (
            '[development.sizing]\nmethod = "yolo"\n',
            "[sizing] method",
            "'yolo'",
            ["'fixed_quantity'", "'fixed_notional'", "'risk'"],
            "sizing.method",
        ),
        (
            "[default.sizing]\nrisk_fraction = 5\n",
            "[sizing] risk_fraction",
            "5",
            ["less than or equal to 1"],
            "sizing.risk_fraction",
        ),
        (
            "[default.run]\nbatch_size = 0\n",
            "[run] batch_size",
            "0",
            ["greater than or equal to 1"],
            "run.batch_size",
        ),
    ],
)
def test_bad_key_or_value_names_table_key_value_and_expectation(
    tmp_path: Path, text: str, where: str, shown: str, expected: list[str], dotted: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_settings(path)

    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"{where} = {shown}:" in message
    for fragment in expected:
        assert fragment in message
    assert info.value.key == dotted


def test_bad_value_from_environment_variable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_RUN__BATCH_SIZE", "0")

    with pytest.raises(ConfigError, match=r"\[run\] batch_size = 0") as info:
        load_text(tmp_path, LAYERED)

    assert info.value.key == "run.batch_size"


def test_bad_value_from_secrets_file_is_masked_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, LAYERED)
    write(tmp_path, '[default.run]\nallow_live = "opensesame-42"\n', ".secrets.toml")

    with pytest.raises(ConfigError) as info:
        load_settings(path)

    message = str(info.value)
    assert "opensesame-42" not in message
    assert f"[run] allow_live = {MASK}" in message
    assert "boolean" in message
    assert info.value.key == "run.allow_live"
    assert message.startswith(f"{tmp_path / '.secrets.toml'}: ")  # the file it came from


def test_unknown_key_secret_by_name_is_masked_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, '[default.run]\napi_key = "sk-live-0123456789"\n')

    message = str(info.value)
    assert "sk-live-0123456789" not in message
    assert "[run] api_key" in message
    assert "is not a known key" in message


# -- component tables ------------------------------------------------------------


def test_repository_settings_pass_component_checks(
    tmp_path: Path, tradepipe_host: PluginHost
) -> None:
    path = tmp_path / "settings.toml"
    shutil.copy(REPO_SETTINGS, path)

    for env in ("development", "paper", "live"):
        checked = check_components(load_settings(path, env=env), tradepipe_host)
        assert {
            "brokers.paper",
            "feeds.synthetic",
            "strategies.sma_cross",
            "risk.min_confidence",
            "risk.max_position_value",
            "risk.max_risk_per_trade",
            "risk.buying_power",
            "sinks.sql",
        } <= set(checked)


@pytest.mark.parametrize(
    ("run_key", "value", "name", "choice"),
    [
        ("strategies", '["sma_cross", "no_such_strategy"]', "no_such_strategy", "sma_cross"),
        ("broker", '"ibkr"', "ibkr", "paper"),
        ("risk_filters", '["no_such_filter"]', "no_such_filter", "min_confidence"),
    ],
)
def test_unknown_component_in_run_lists_the_choices(
    tmp_path: Path, tradepipe_host: PluginHost, run_key: str, value: str, name: str, choice: str
) -> None:
    settings = load_text(tmp_path, f"[default.run]\n{run_key} = {value}\n")

    with pytest.raises(ConfigError) as info:
        check_components(settings, tradepipe_host)

    assert isinstance(info.value, UnknownComponentError)
    message = str(info.value)
    assert repr(name) in message
    assert "choose one of" in message and choice in message


def test_bad_key_in_a_component_table(tmp_path: Path, tradepipe_host: PluginHost) -> None:
    path = write(tmp_path, "[default.risk.min_confidence]\ntreshold = 60\n")

    with pytest.raises(ConfigError) as info:
        check_components(load_settings(path), tradepipe_host)

    message = str(info.value)
    assert str(path) in message
    assert "[risk.min_confidence] treshold = 60: is not a known key" in message
    assert "expected one of: threshold" in message
    assert info.value.key == "risk.min_confidence.treshold"


def test_bad_value_in_a_component_table(tmp_path: Path, tradepipe_host: PluginHost) -> None:
    settings = load_text(tmp_path, "[default.risk.min_confidence]\nthreshold = 500\n")

    with pytest.raises(ConfigError) as info:
        check_components(settings, tradepipe_host)

    assert "[risk.min_confidence] threshold = 500" in str(info.value)
    assert "less than or equal to 100" in str(info.value)
    assert info.value.key == "risk.min_confidence.threshold"


def test_strategy_with_fast_not_below_slow_is_refused(
    tmp_path: Path, tradepipe_host: PluginHost
) -> None:
    settings = load_text(tmp_path, "[default.strategies.sma_cross]\nfast = 50\nslow = 10\n")

    with pytest.raises(ConfigError) as info:
        check_components(settings, tradepipe_host)

    message = str(info.value)
    assert "sma_cross" in message
    assert "fast (50) must be shorter than slow (10)" in message
    assert info.value.key is not None and info.value.key.startswith("strategies.sma_cross")


def test_table_of_a_component_that_is_not_installed_is_refused(
    tmp_path: Path, tradepipe_host: PluginHost
) -> None:
    settings = load_text(tmp_path, "[default.strategies.no_such_strategy]\nwindow = 20\n")

    with pytest.raises(ConfigError) as info:
        check_components(settings, tradepipe_host)

    message = str(info.value)
    assert "[strategies.no_such_strategy]" in message
    assert "unknown strategy" in message
    assert "sma_cross" in message  # what is installed
    assert info.value.key == "strategies.no_such_strategy"


def test_a_bad_value_from_an_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPIPE_SIZING__METHOD", "yolo")
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, LAYERED)
    message = str(raised.value)
    assert message.startswith("environment variable TRADEPIPE_SIZING__METHOD: [sizing] method")
    assert "settings.toml" not in message


def test_a_bad_component_value_from_an_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tradepipe_host: PluginHost
) -> None:
    """A component's table is checked when the component is made: the value's source
    is still the variable, not the settings file that never held it."""
    from tradepipe.pipeline import make_component

    monkeypatch.setenv("TRADEPIPE_FEEDS__SYNTHETIC__BARS", "abc")
    settings = load_text(tmp_path, LAYERED)
    with pytest.raises(ConfigError) as raised:
        make_component(tradepipe_host, settings, "feed", "synthetic")
    message = str(raised.value)
    assert message.startswith(
        "environment variable TRADEPIPE_FEEDS__SYNTHETIC__BARS: [feeds.synthetic] bars = 'abc'"
    )
    assert "settings.toml" not in message
