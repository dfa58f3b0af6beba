"""The ``tradepipe`` command line.

Commands are thin: they parse options, load settings and plugins through the
shared :class:`~tradepipe.cli.context.AppContext`, and call library functions.
Plugins add commands through ``tradepipe_register_commands``; those are looked
up only when needed, so ``tradepipe --help`` works even with a broken plugin.
The built-in commands are :class:`~tradepipe.cli.lazy.LazyCommand` entries:
listing them imports none of them, nor what they need.

Exit codes: 0 success, 2 usage or settings error, 1 anything else. Errors are
one line; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Any

import click
from tradepipe.cli.context import app_context
from tradepipe.cli.lazy import LazyCommand
from tradepipe.errors import ConfigError, TradepipeError


class TradepipeGroup(click.Group):
    """A group that adds plugin commands and turns errors into exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        # --help still lists the built-in commands when plugins cannot load.
        with contextlib.suppress(TradepipeError):
            names.update(app_context(ctx).host.commands())
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return app_context(ctx).host.commands().get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # One line, as every other error: what is wrong, and where help is.
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except ConfigError as exc:
            _fail(ctx, exc, 2)
        except TradepipeError as exc:
            _fail(ctx, exc, 1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader went away (`tradepipe … | head`): nothing more to say, to anyone.
            # What is left in the buffer goes nowhere, not into a second error at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(1)
        except Exception as exc:
            _fail(ctx, exc, 1, internal=True)


def _fail(ctx: click.Context, exc: BaseException, code: int, internal: bool = False) -> None:
    app = app_context(ctx)
    message = str(exc) if not internal else f"internal error: {type(exc).__name__}: {exc}"
    if app.redaction is not None:
        message = app.redaction.redact(message)
    if app.debug:
        text = "".join(traceback.format_exception(exc))
        click.echo(app.redaction.redact(text) if app.redaction else text, err=True)
    click.echo(f"error: {message}", err=True)
    if internal and not app.debug:
        click.echo("run again with --debug to see where it happened", err=True)
    ctx.exit(code)


@click.group(cls=TradepipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--settings",
    "settings_path",
    metavar="FILE",
    envvar="TRADEPIPE_SETTINGS",
    help="Settings file (default: ./settings.toml).",
)
@click.option("--env", metavar="NAME", help="Settings environment (default: development).")
@click.option("--debug", is_flag=True, help="Verbose logs and tracebacks on errors.")
@click.version_option(package_name="tradepipe")
@click.pass_context
def cli(ctx: click.Context, settings_path: str | None, env: str | None, debug: bool) -> None:
    """Run trading strategies against Interactive Brokers as a pipeline of plugins."""
    app_context(ctx)


def main() -> None:
    cli.main(prog_name="tradepipe")


def _register_builtin_commands() -> None:
    for name, target in (
        ("broker", "tradepipe.cli.broker:broker"),
        ("config", "tradepipe.cli.config:config"),
        ("order", "tradepipe.cli.order:order"),
        ("plugins", "tradepipe.cli.plugin_list:plugins"),
        ("run-pipeline", "tradepipe.cli.run:run_pipeline"),
        ("status", "tradepipe.cli.status:status"),
    ):
        cli.add_command(LazyCommand(name, target))


_register_builtin_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
