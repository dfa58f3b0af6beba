"""Commands are listed without importing them, and imported when they are used.

``tradepipe --help`` and ``--version`` run in a fresh process, as a user runs
them, and ``-X importtime`` tells what that process imported: none of the
libraries only a command's work needs.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tradepipe import PluginError
from tradepipe.cli import cli
from tradepipe.cli.lazy import HEAVY, LazyCommand, _definition, source_help
from tradepipe.host import load_host

REPO_SETTINGS = Path(__file__).parents[2] / "settings.toml"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO_SETTINGS, tmp_path / "settings.toml")
    return tmp_path


def imported(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``python -m tradepipe ARGS`` in a fresh process, and the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tradepipe", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, modules


def heavy(modules: set[str]) -> list[str]:
    return sorted(lib for lib in HEAVY if lib in modules)


def test_help_lists_every_command_without_loading_what_they_need(workdir: Path) -> None:
    done, modules = imported(workdir, "--help")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line}
    assert {"run-pipeline", "broker", "ledger", "explain", "serve", "auth", "tax"} <= listed
    assert "tradepipe.host" in modules  # what -X importtime lists is read
    assert heavy(modules) == []
    # Nor the command modules themselves, built-in or a plugin's.
    assert "tradepipe.cli.broker" not in modules
    assert "tradepipe.plugins.ledger.cli" not in modules


def test_version_loads_no_plugin(workdir: Path) -> None:
    done, modules = imported(workdir, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tradepipe, version ")
    assert heavy(modules) == []
    assert not [m for m in modules if m.startswith(("tradepipe.plugins", "tradepipe.brokers"))]


def test_a_lazy_command_shows_its_own_help_and_loads_when_used(workdir: Path) -> None:
    done, modules = imported(workdir, "ledger", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: tradepipe ledger [OPTIONS] COMMAND")
    assert "runs" in done.stdout.split("Commands:")[1]
    assert "sqlalchemy" in modules


def test_a_lazy_builtin_command_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(cli, ["plugins", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"name": "sql_sink"' in result.stdout


def test_listed_help_is_the_real_commands_help(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read from the source, it must say what the imported command says.
    monkeypatch.chdir(workdir)
    lazy = [c for c in cli.commands.values() if isinstance(c, LazyCommand)]
    lazy += [c for c in load_host().commands().values() if isinstance(c, LazyCommand)]
    assert {"broker", "run-pipeline", "ledger", "explain", "execute", "auth", "halt"} <= {
        c.name for c in lazy
    }
    for command in lazy:
        listed = LazyCommand(command.name or "", command.target)
        for limit in (45, 200):
            assert listed.get_short_help_str(limit) == command.load().get_short_help_str(limit)


def test_a_command_that_cannot_import_is_listed_and_fails_when_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    broken = LazyCommand("broken", "tradepipe_no_such_module_xyz:broken")
    monkeypatch.setitem(cli.commands, "broken", broken)

    listed = CliRunner().invoke(cli, ["--help"])
    assert listed.exit_code == 0
    assert "broken" in listed.stdout.split("Commands:")[1]

    ran = CliRunner().invoke(cli, ["broken"])
    assert ran.exit_code == 1
    assert ran.stderr.startswith(
        "error: command 'broken' (tradepipe_no_such_module_xyz:broken) failed to import"
    )


def test_a_lazy_command_must_name_the_command_it_stands_for() -> None:
    wrong = LazyCommand("settings", "tradepipe.cli.config:config")
    with pytest.raises(PluginError, match="is not the command 'settings'"):
        wrong.load()


def test_help_given_explicitly_is_not_read_from_the_source() -> None:
    command = LazyCommand("later", "tradepipe_no_such_module_xyz:later", help="Do it later.")
    assert command.get_short_help_str() == "Do it later."


SAMPLE = '''
import click


@click.group("sample")
def sample():
    """Do sample things.

    At length.
    """


@click.command(
    "odd",
    short_help="""Odd one.

Laid out so its definition cannot be cut out alone.""",
)
def odd():
    pass


def plain():
    """Not a command."""
'''


def test_help_is_read_from_the_definition_or_else_the_whole_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lazy_sample_xyz.py").write_text(SAMPLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sample_help = "Do sample things.\n\n    At length.\n    "
    assert source_help("lazy_sample_xyz", "sample") == (sample_help, None)
    with pytest.raises(SyntaxError):  # cut at the blank line in its decorator
        ast.parse(_definition(SAMPLE, "odd") or "")
    assert source_help("lazy_sample_xyz", "odd") == (
        None,
        "Odd one.\n\nLaid out so its definition cannot be cut out alone.",
    )
    assert source_help("lazy_sample_xyz", "plain") is None
    assert source_help("lazy_sample_xyz", "missing") is None
    assert source_help("tradepipe_no_such_module_xyz", "sample") is None
    assert "lazy_sample_xyz" not in sys.modules
