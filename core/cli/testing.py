"""Running ``tradepipe`` commands in process, for tests of the CLI and of plugins' commands.

::

    from tradepipe.cli.testing import invoke

    result = invoke("ledger", "runs", "--json")
    assert result.exit_code == 0, result.output

Standard output and standard error are kept apart (``result.stdout``,
``result.stderr``).
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.host import PluginHost


def invoke(
    *args: str,
    settings: Path | str | None = None,
    host: PluginHost | None = None,
    debug: bool = False,
    catch_exceptions: bool = False,
    input: str | None = None,
) -> Result:
    """Run ``tradepipe ARGS`` in this process and return what it printed and its exit code.

    :param settings: the settings file (default: what the CLI itself reads when a
        user passes no ``--settings``: ``TRADEPIPE_SETTINGS``, else ``./settings.toml``
        when there is one).
    :param host: the plugin host to use (default: the installed plugins).
    :param catch_exceptions: keep an unexpected exception in ``result.exception``
        instead of raising it.
    """
    # Options go on the command line, as a user gives them; a context is made
    # beforehand only to hand in a plugin host.
    head = [*(["--debug"] if debug else []), *(["--settings", str(settings)] if settings else [])]
    app = AppContext(_host=host) if host is not None else None
    return CliRunner().invoke(
        cli, [*head, *args], obj=app, catch_exceptions=catch_exceptions, input=input
    )
