"""What every CLI command shares: settings, plugins, logging, set up on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
from click.core import ParameterSource
from tradepipe.host import PluginHost, load_host
from tradepipe.logs import RedactionFilter, setup_logging
from tradepipe.settings import AppSettings, load_settings


@dataclass
class AppContext:
    settings_path: str | None = None
    env: str | None = None
    debug: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    _settings: AppSettings | None = None
    _host: PluginHost | None = None
    redaction: RedactionFilter | None = None

    def override(self, table: str, **values: Any) -> None:
        """Replace settings keys for this invocation (e.g. ``--broker``); call before use."""
        if self._settings is not None:
            raise RuntimeError("settings were already loaded")
        self.overrides.setdefault(table, {}).update(values)

    @property
    def settings(self) -> AppSettings:
        if self._settings is None:
            self._settings = load_settings(self.settings_path, self.env, self.overrides)
        return self._settings

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            if self.redaction is None:
                # Commands that do not run a pipeline log to the console only,
                # through the same redaction as everything else.
                self.setup_logging(file=False)
            self._host = load_host(self.settings.plugins)
            self._host.configure(self.settings)
        return self._host

    def setup_logging(self, *, console_level: str | None = None, file: bool = True) -> None:
        log = self.settings.logging
        self.redaction = setup_logging(
            level="DEBUG" if self.debug else log.level,
            console_level=console_level or ("DEBUG" if self.debug else log.console_level),
            directory=log.dir if log.file and file else None,
            keep_days=log.keep_days,
            secrets=self.settings.secret_values(),
        )


def app_context(ctx: click.Context) -> AppContext:
    """The invocation's :class:`AppContext`, made from the root command's options."""
    root = ctx.find_root()
    params = root.params
    if root.obj is None:
        root.obj = AppContext(
            settings_path=params.get("settings_path"),
            env=params.get("env"),
            debug=bool(params.get("debug")),
        )
    obj: AppContext = root.obj
    # A context made beforehand (an embedding program, a test) still takes the
    # options given on the command line itself (not TRADEPIPE_SETTINGS, which
    # only stands in for a missing option), as long as no settings were read yet.
    given = {
        name
        for name in ("settings_path", "env", "debug")
        if root.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    if obj._settings is None:
        # The command line wins; TRADEPIPE_SETTINGS only fills a path not set.
        if "settings_path" in given or obj.settings_path is None:
            obj.settings_path = params.get("settings_path") or obj.settings_path
        if "env" in given or obj.env is None:
            obj.env = params.get("env") or obj.env
    if "debug" in given:
        obj.debug = obj.debug or bool(params["debug"])
    return obj


pass_app = click.make_pass_decorator(AppContext)
