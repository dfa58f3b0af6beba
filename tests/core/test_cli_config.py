"""``tradepipe config show|check`` and the top-level help, through CliRunner."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from tradepipe.cli.testing import invoke
from tradepipe.settings import MASK

REPO_SETTINGS = Path(__file__).resolve().parents[2] / "settings.toml"
ACCOUNT = "DU5550001"
DB_URL = "postgresql://bob:pw-9f8e7d6c@db.internal/ledger"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of the repository's settings.toml."""
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO_SETTINGS, tmp_path / "settings.toml")
    return tmp_path


def assert_config_error(result: Result, *fragments: str) -> str:
    """Exit 2 with one line ``error: …`` on stderr holding every fragment."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_help_lists_the_builtin_and_plugin_commands(project: Path) -> None:
    result = invoke("--help")

    assert result.exit_code == 0
    commands = result.stdout.split("Commands:", 1)[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert {"run-pipeline", "config", "plugins", "ledger"} <= listed


def test_config_show_prints_merged_settings_as_json_with_secrets_masked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".secrets.toml").write_text(
        f'[default.brokers.paper]\naccount_id = "{ACCOUNT}"\n'
        f'[default.sinks.sql]\nurl = "{DB_URL}"\n'
    )
    monkeypatch.setenv("TRADEPIPE_BROKERS__WEB_API__ACCESS_TOKEN", "tok-from-env-123456")

    result = invoke("--settings", "settings.toml", "config", "show")

    assert result.exit_code == 0, result.output
    for secret in (ACCOUNT, DB_URL, "pw-9f8e7d6c", "tok-from-env-123456"):
        assert secret not in result.output
    data = json.loads(result.stdout)
    assert data["env"] == "development"
    assert data["path"] == "settings.toml"
    assert data["brokers"]["paper"]["account_id"] == MASK
    assert data["brokers"]["paper"]["initial_cash"] == 100000  # not secret, shown
    assert data["sinks"]["sql"] == {"path": "tradepipe.db", "url": MASK}
    assert data["brokers"]["web_api"]["access_token"] == MASK
    assert data["strategies"]["sma_cross"]["fast"] == 10
    assert data["sizing"]["risk_fraction"] == "0.01"
    assert "secret_keys" not in data


def test_config_show_uses_the_selected_environment(project: Path) -> None:
    result = invoke("--settings", "settings.toml", "--env", "live", "config", "show")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["env"] == "live"


def test_config_check_passes_on_the_repository_settings(project: Path) -> None:
    result = invoke("--settings", "settings.toml", "config", "check")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "settings OK: settings.toml, environment development"
    for table in (
        "brokers.paper",
        "feeds.synthetic",
        "strategies.sma_cross",
        "risk.min_confidence",
        "risk.max_position_value",
        "risk.max_risk_per_trade",
        "risk.buying_power",
        "sinks.sql",
    ):
        assert f"  [{table}] ok" in lines
    # Checking must not start anything: no ledger database, no log directory.
    assert not (project / "tradepipe.db").exists()
    assert not (project / "logs").exists()


def test_config_check_json(project: Path) -> None:
    result = invoke("--settings", "settings.toml", "--env", "paper", "config", "check", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["env"] == "paper"
    assert data["file"] == "settings.toml"
    assert "strategies.sma_cross" in data["checked"]


def test_config_check_uses_tradepipe_settings_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = project / "conf"
    elsewhere.mkdir()
    shutil.move(project / "settings.toml", elsewhere / "settings.toml")
    monkeypatch.setenv("TRADEPIPE_SETTINGS", str(elsewhere / "settings.toml"))

    result = invoke("config", "check")

    assert result.exit_code == 0, result.output
    assert f"settings OK: {elsewhere / 'settings.toml'}" in result.stdout


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[default.sizing]\nrisk_fraction = 5\n", ["[sizing] risk_fraction = 5", "less than"]),
        ('[default.run]\nbrokr = "x"\n', ["[run] brokr = 'x'", "not a known key", "broker"]),
        (
            "[default.risk.min_confidence]\ntreshold = 60\n",
            ["[risk.min_confidence] treshold = 60", "not a known key", "threshold"],
        ),
        ('[default.run]\nstrategies = ["no_such_strategy"]\n', ["'no_such_strategy'", "sma_cross"]),
        ('[default.run]\ncalendar = "NOPE"\n', ["[run] calendar = 'NOPE'", "XNYS", "always"]),
        (
            '[default.run]\nmaintenance_window = "midnight"\n',
            ["[run] maintenance_window = 'midnight'", "23:45-00:45"],
        ),
        ('[default.run]\nwhen_closed = "wait"\n', ["[run] when_closed = 'wait'", "queue"]),
    ],
)
def test_config_check_exits_2_with_one_line_naming_the_problem(
    project: Path, text: str, fragments: list[str]
) -> None:
    (project / "bad.toml").write_text(text)

    result = invoke("--settings", "bad.toml", "config", "check")

    assert_config_error(result, *fragments)
    assert "settings OK" not in result.stdout


def test_config_check_does_not_show_a_bad_secret(project: Path) -> None:
    (project / ".secrets.toml").write_text('[default.run]\nallow_live = "opensesame-42"\n')

    result = invoke("--settings", "settings.toml", "config", "check")

    assert_config_error(result, "[run] allow_live")
    assert "opensesame-42" not in result.output


def test_unknown_environment_exits_2(project: Path) -> None:
    result = invoke("--settings", "settings.toml", "--env", "nope", "config", "check")

    assert_config_error(result, "unknown environment 'nope'", "paper", "live")


def test_missing_settings_file_exits_2(project: Path) -> None:
    result = invoke("--settings", "missing.toml", "config", "show")

    assert_config_error(result, "missing.toml", "does not exist")


def test_an_environments_list_replaces_the_defaults_unless_asked_to_merge(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (project / "settings.toml").open("a") as out:
        out.write(
            '\n[paper.run]\nstrategies = ["decision_files"]\n'
            "[paper.risk.min_confidence]\nthreshold = 75\n"
            '[merged.run]\nrisk_filters = ["dynaconf_merge", "halt"]\n'
        )
    shown = json.loads(invoke("--env", "paper", "config", "show").stdout)
    assert shown["run"]["strategies"] == ["decision_files"]  # not ["sma_cross", ...]
    assert shown["run"]["broker"] == "paper"  # the rest of [default.run] stays
    assert shown["risk"]["min_confidence"] == {"threshold": 75}
    merged = json.loads(invoke("--env", "merged", "config", "show").stdout)
    assert merged["run"]["risk_filters"] == [
        "min_confidence",
        "max_position_value",
        "max_risk_per_trade",
        "buying_power",
        "halt",
    ]
    monkeypatch.setenv("TRADEPIPE_RUN__BROKER", "client_portal")
    sources = json.loads(invoke("--env", "paper", "config", "show", "--sources").stdout)
    assert sources["run.strategies"] == "settings.toml [paper]"
    assert sources["run.feed"] == "settings.toml [default]"
    assert sources["run.broker"] == "environment variable"
    assert sources["risk.min_confidence.threshold"] == "settings.toml [paper]"
    assert "run.mode" not in sources  # a built-in default
    merged_sources = json.loads(invoke("--env", "merged", "config", "show", "--sources").stdout)
    assert merged_sources["run.risk_filters"] == "settings.toml [default] + settings.toml [merged]"


def test_the_settings_a_caller_names_win_over_tradepipe_settings(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TRADEPIPE_SETTINGS stands in for a missing --settings; it never replaces one.
    (project / "other.toml").write_text('[default.run]\nbroker = "no_such_broker"\n')
    monkeypatch.setenv("TRADEPIPE_SETTINGS", str(project / "other.toml"))
    named = invoke("config", "show", settings=project / "settings.toml")
    assert named.exit_code == 0, named.output
    assert json.loads(named.stdout)["run"]["broker"] != "no_such_broker"
    by_variable = invoke("config", "show")
    assert json.loads(by_variable.stdout)["run"]["broker"] == "no_such_broker"


def test_config_check_json_answers_a_problem_too(project: Path) -> None:
    """With --json a problem is an answer on stdout (exit 2), its line on stderr;
    a secret's bad value is shown in neither."""
    (project / ".secrets.toml").write_text('[default.run]\nallow_live = "opensesame-42"\n')

    result = invoke("--settings", "settings.toml", "config", "check", "--json")

    assert result.exit_code == 2, result.output
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and answer["key"] == "run.allow_live"
    assert "[run] allow_live" in answer["error"]
    assert (
        result.stderr.startswith("error: [run] allow_live") or "[run] allow_live" in result.stderr
    )
    assert "opensesame-42" not in result.output


@pytest.mark.parametrize("as_json", [False, True])
def test_config_check_exits_2_when_a_named_component_cannot_be_loaded(
    project: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    """A plugin's broken registration of the broker the settings name is a problem
    of the configuration, found by the check (not by the run it would have broken)."""
    from typing import Any

    from tradepipe import hookimpl
    from tradepipe.cli import context
    from tradepipe.host import LazyComponent, load_host

    class Broken:
        __name__ = "broken_plugin"

        @hookimpl
        def tradepipe_register_brokers(self, register: Any) -> None:
            register(LazyComponent("gone", "tradepipe_no_such_module:Broker"))

    monkeypatch.setattr(context, "load_host", lambda settings=None: load_host(settings, [Broken()]))
    monkeypatch.setenv("TRADEPIPE_RUN__BROKER", "gone")
    args = ["--settings", "settings.toml", "config", "check", *(["--json"] if as_json else [])]

    result = invoke(*args)

    assert result.exit_code == 2, result.output
    assert "broker 'gone' could not be loaded from tradepipe_no_such_module:Broker" in (
        result.stderr
    )
    if as_json:
        answer = json.loads(result.stdout)
        assert answer["ok"] is False and "'gone'" in answer["error"]
