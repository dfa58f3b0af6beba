"""Commands are listed without importing them, and imported when they are used."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tradepipe import PluginError
from tradepipe.cli import cli
from tradepipe.cli.lazy import LazyCommand, _definition, source_help
from tradepipe.host import load_host

REPO_SETTINGS = Path(__file__).parents[2] / "settings.toml"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO_SETTINGS, tmp_path / "settings.toml")
    return tmp_path


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
