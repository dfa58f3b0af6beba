"""``tradepipe config show|check``."""

from __future__ import annotations

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import print_json
from tradepipe.errors import ConfigError, PluginError
from tradepipe.pipeline import check_components
from tradepipe.schedule import MarketSchedule


@click.group()
def config() -> None:
    """Show or check the merged settings."""


@config.command("show")
@click.option(
    "--sources",
    is_flag=True,
    help="Print where each value you set came from (file and table, variable, command line).",
)
@pass_app
def show(app: AppContext, sources: bool) -> None:
    """Print the merged settings as JSON, secrets masked."""
    if sources:
        print_json(dict(sorted(app.settings.sources.items())))
        return
    print_json(app.settings.masked())


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Validate the settings and every component they name; exit 2 on a problem."""
    try:
        settings = app.settings
        checked = check_components(settings, app.host)
        calendar = settings.run.calendar
        if calendar and calendar.lower() != "always":
            MarketSchedule(calendar)  # an exchange the calendar library does not know
            checked.append("run.calendar")
    except (ConfigError, PluginError) as exc:
        # Both are problems of the configuration: a bad value, or a component that
        # cannot be made (a plugin's broken registration): exit 2 either way.
        if not as_json:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc)) from exc
        message = str(exc) if app.redaction is None else app.redaction.redact(str(exc))
        print_json({"ok": False, "error": message, "key": getattr(exc, "key", None)})
        click.echo(f"error: {message}", err=True)
        click.get_current_context().exit(2)
    if as_json:
        print_json({"ok": True, "env": settings.env, "file": settings.path, "checked": checked})
        return
    source = settings.path or "built-in defaults"
    click.echo(f"settings OK: {source}, environment {settings.env}")
    for item in checked:
        click.echo(f"  [{item}] ok")
