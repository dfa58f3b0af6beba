"""The plugin host: loads plugins, collects their components, calls their hooks.

One :class:`PluginHost` per invocation (never a global). Loading goes through
our own reader of the ``tradepipe`` entry-point group rather than pluggy's
``load_setuptools_entrypoints``, because pluggy silently keeps the first of two
entry points with one name, cannot tell built-ins from third-party plugins, and
cannot block by name.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy
from tradepipe import hookspecs
from tradepipe.adapter import Broker
from tradepipe.component import Component
from tradepipe.errors import PluginError, UnknownComponentError
from tradepipe.feed import Feed
from tradepipe.risk import RiskFilter
from tradepipe.sink import Sink
from tradepipe.strategy import Strategy

if TYPE_CHECKING:
    import click
    from tradepipe.settings import AppSettings, PluginSettings

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tradepipe"
BUILTIN_DISTRIBUTION = "tradepipe"

#: kind -> (base class, settings table, registration hook, the [run] key naming it)
KINDS: dict[str, tuple[type[Component], str, str, str]] = {
    "strategy": (Strategy, "strategies", "tradepipe_register_strategies", "strategies"),
    "risk_filter": (RiskFilter, "risk", "tradepipe_register_risk_filters", "risk_filters"),
    "broker": (Broker, "brokers", "tradepipe_register_brokers", "broker"),
    "sink": (Sink, "sinks", "tradepipe_register_sinks", "sinks"),
    "feed": (Feed, "feeds", "tradepipe_register_feeds", "feed"),
}
#: Commands are collected like a kind of component, under this name.
COMMANDS = "command"


@dataclass
class PluginInfo:
    """What ``tradepipe plugins`` shows about one loaded plugin."""

    name: str
    distribution: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LazyComponent:
    """A component registered by its name and where its class lives (``module:Class``).

    Its module is imported when the component is first used, not when its kind
    is looked up: a replay on the paper simulator never imports the IBKR
    adapters, httpx and the cryptography they sign with. The class must be a
    component of the registered kind, named ``name``.
    """

    name: str
    target: str

    def __post_init__(self) -> None:
        module, colon, attribute = self.target.partition(":")
        if not (module and colon and attribute):
            raise PluginError(
                f"component {self.name!r}: its target {self.target!r} must be "
                "'package.module:Class'"
            )

    def load(self) -> type[Component]:
        module, _, attribute = self.target.partition(":")
        found: type[Component] = getattr(importlib.import_module(module), attribute)
        return found


class Registration:
    """One registered component: its class, made ready on first use when lazy."""

    __slots__ = ("_base", "_cls", "_lazy", "kind", "name", "plugin")

    def __init__(
        self,
        kind: str,
        name: str,
        cls: type[Component] | LazyComponent,
        plugin: str,
        base: type[Component] = Component,
    ) -> None:
        self.kind, self.name, self.plugin, self._base = kind, name, plugin, base
        self._cls = None if isinstance(cls, LazyComponent) else cls
        self._lazy = cls if isinstance(cls, LazyComponent) else None

    @property
    def cls(self) -> type[Component]:
        """The component's class (a lazy one imported now, once, and checked).

        :raises PluginError: it cannot be imported, or is not what was registered.
        """
        if self._cls is None:
            assert self._lazy is not None
            try:
                found = self._lazy.load()
            except Exception as exc:  # whatever its module raised while it was imported
                raise PluginError(
                    f"plugin {self.plugin!r}: {self.kind} {self.name!r} could not be loaded "
                    f"from {self._lazy.target}: {type(exc).__name__}: {exc}",
                    plugin=self.plugin,
                ) from exc
            _check_component(
                found, self.kind, self._base, self.plugin, f"{self.name!r} ({self._lazy.target})"
            )
            if found.name != self.name:
                raise PluginError(
                    f"plugin {self.plugin!r} registered {self.kind} {self.name!r}, but "
                    f"{self._lazy.target} is named {found.name!r}",
                    plugin=self.plugin,
                )
            self._cls = found
        return self._cls


class PluginHost:
    """Loaded plugins and the components they registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self._commands: dict[str, tuple[click.Command, str]] = {}
        self._collected: set[str] = set()

    # -- loading ---------------------------------------------------------------

    def load_entry_points(self, settings: PluginSettings | None = None) -> None:
        """Import and register the plugins of the ``tradepipe`` entry-point group.

        :raises PluginError: two entry points share a name, a plugin fails to
            import, or a plugin implements a hook that does not exist.
        """
        disabled = set(settings.disabled) if settings else set()
        autoload = settings.autoload if settings else True
        seen: dict[str, EntryPoint] = {}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:
                raise PluginError(
                    f"two plugins are named {ep.name!r}: {_origin(seen[ep.name])} and "
                    f"{_origin(ep)}; uninstall one or disable it in [plugins] disabled",
                    plugin=ep.name,
                )
            seen[ep.name] = ep
        # A distribution's METADATA (with its whole README) is parsed once, not per plugin.
        read: dict[Distribution | None, tuple[str, str]] = {}
        for name, ep in seen.items():
            if ep.dist not in read:
                read[ep.dist] = _distribution(ep.dist)
            dist, version = read[ep.dist]
            builtin = dist == BUILTIN_DISTRIBUTION
            if name in disabled:
                log.info("plugin %s disabled by [plugins] disabled", name)
                continue
            if not builtin and not autoload:
                log.info("plugin %s not loaded: [plugins] autoload is off", name)
                continue
            try:
                module = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} ({ep.value}) failed to import: {exc}", plugin=name
                ) from exc
            self.register(module, name, distribution=dist, version=version, builtin=builtin)
        self.check()

    def register(
        self,
        plugin: Any,
        name: str,
        *,
        distribution: str = "",
        version: str = "",
        builtin: bool = False,
    ) -> None:
        """Register a plugin object (a module or an instance with hook methods)."""
        if name in self.plugins:
            raise PluginError(f"a plugin named {name!r} is already registered", plugin=name)
        if self._collected:
            raise PluginError(f"plugin {name!r} registered after components were collected")
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}", plugin=name) from exc
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
        self.plugins[name] = PluginInfo(name, distribution, version, builtin, hooks)

    def check(self) -> None:
        """Fail loudly on hook implementations that match no hook (e.g. a typo)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"{exc}; check the hook name against tradepipe.hookspecs") from exc

    # -- components ------------------------------------------------------------

    def collect(self) -> None:
        """Call every registration hook once and build the component registry."""
        for kind in KINDS:
            self._collect(kind)
        self._collect(COMMANDS)
        # Listed in the order of KINDS, whichever kind was looked up first.
        order = {kind: i for i, kind in enumerate(KINDS)}
        for info in self.plugins.values():
            info.components.sort(key=lambda c: order[c.partition(":")[0]])

    def _collect(self, kind: str) -> None:
        """Call the registration hooks of one kind (or of commands), once.

        A kind is collected when it is first looked up, so a plugin whose hook
        imports its component's module pays for it only when that kind is used
        (``tradepipe --help`` collects the commands alone).
        """
        if kind in self._collected:
            return
        self._collected.add(kind)
        if kind == COMMANDS:
            for impl in self.pm.hook.tradepipe_register_commands.get_hookimpls():
                impl.function(register=self._command_registrar(impl.plugin_name))
            return
        base, _table, hook_name, _key = KINDS[kind]
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            impl.function(register=self._registrar(kind, base, impl.plugin_name))

    def _registrar(
        self, kind: str, base: type[Component], plugin: str
    ) -> Callable[[type[Component] | LazyComponent], None]:
        def register(cls: type[Component] | LazyComponent) -> None:
            if not isinstance(cls, LazyComponent):
                _check_component(cls, kind, base, plugin)
            if not cls.name:
                what = getattr(cls, "__name__", repr(cls))
                raise PluginError(f"plugin {plugin!r}: {what} has no name", plugin=plugin)
            taken = self._registry[kind].get(cls.name)
            if taken is not None:
                raise PluginError(
                    f"{kind} {cls.name!r} is registered twice: by plugin {taken.plugin!r} and "
                    f"by plugin {plugin!r}; {_KEEP_ONE.format(plugin=plugin)}",
                    plugin=plugin,
                )
            self._registry[kind][cls.name] = Registration(kind, cls.name, cls, plugin, base)
            self.plugins[plugin].components.append(f"{kind}:{cls.name}")

        return register

    def _command_registrar(self, plugin: str) -> Callable[[click.Command], None]:
        def register(command: click.Command) -> None:
            name = command.name or ""
            if name in self._commands:
                other = self._commands[name][1]
                raise PluginError(
                    f"command {name!r} is registered twice: by {other!r} and by {plugin!r}; "
                    f"{_KEEP_ONE.format(plugin=plugin)}",
                    plugin=plugin,
                )
            self._commands[name] = (command, plugin)
            self.plugins[plugin].commands.append(name)

        return register

    def components(self, kind: str) -> dict[str, Registration]:
        self._collect(kind)
        return dict(self._registry[kind])

    def component(self, kind: str, name: str) -> type[Component]:
        """The component class ``name`` of ``kind``.

        :raises UnknownComponentError: no loaded plugin provides it; the error
            lists the names that would work.
        :raises PluginError: a lazy one could not be loaded.
        """
        registry = self.components(kind)
        registration = registry.get(name)
        if registration is None:
            raise UnknownComponentError(
                kind.replace("_", " "), name, list(registry), key=f"run.{KINDS[kind][3]}"
            )
        return registration.cls  # a lazy one's import errors are its own, never "unknown"

    def commands(self) -> dict[str, click.Command]:
        self._collect(COMMANDS)
        return {name: cmd for name, (cmd, _plugin) in self._commands.items()}

    # -- the typed facade over hooks --------------------------------------------

    def configure(self, settings: AppSettings) -> None:
        self.pm.hook.tradepipe_configure.call_historic(kwargs={"settings": settings})

    def observers(self, hook_name: str) -> Broadcast | None:
        """A caller of event hook ``hook_name``, or ``None`` when nobody listens.

        The executor asks once per run so an event nobody observes costs nothing;
        an observer that says it does not listen in this run
        (:func:`~tradepipe.hookspecs.observes_when`) is left out.
        """
        impls = [i for i in getattr(self.pm.hook, hook_name).get_hookimpls() if _listens(i)]
        return Broadcast(hook_name, impls) if impls else None


class Broadcast:
    """Calls every implementation of an event hook, isolating their failures.

    pluggy stops at the first implementation that raises; an observer's bug
    must neither stop a run nor hide the event from the other observers, so
    each one is called on its own (in pluggy's order) and its error logged.
    """

    __slots__ = ("_calls", "hook_name")

    def __init__(self, hook_name: str, impls: list[Any]) -> None:
        self.hook_name = hook_name
        self._calls = [(i.plugin_name, i.function, tuple(i.argnames)) for i in reversed(impls)]

    def __call__(self, **kwargs: Any) -> None:
        for plugin, function, argnames in self._calls:
            try:
                function(*[kwargs[name] for name in argnames])
            except Exception as exc:
                log.error(
                    "plugin %s failed in %s: %s: %s (ignored)",
                    plugin,
                    self.hook_name,
                    type(exc).__name__,
                    exc,
                )


#: How to get going again when two plugins register one name: keep one of them.
_KEEP_ONE = (
    "keep one: uninstall the other, or name it in settings.toml's "
    '[plugins] disabled = ["{plugin}"] (or TRADEPIPE_PLUGINS__DISABLED=\'["{plugin}"]\')'
)


def _check_component(
    cls: Any, kind: str, base: type[Component], plugin: str, what: str = ""
) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"plugin {plugin!r} registered {what or repr(cls)} as a {kind}, but it is not a "
            f"subclass of {base.__name__}",
            plugin=plugin,
        )


def _listens(impl: Any) -> bool:
    """Whether an event observer listens in the run starting now (see ``observes_when``)."""
    predicate = getattr(impl.function, hookspecs.LISTENING, None)
    if predicate is None:
        return True
    try:
        return bool(predicate())
    except Exception as exc:
        log.error(
            "plugin %s could not say whether it observes this run: %s: %s (it does)",
            impl.plugin_name,
            type(exc).__name__,
            exc,
        )
        return True


def _distribution(dist: Distribution | None) -> tuple[str, str]:
    if dist is None:
        return "", ""
    metadata = dist.metadata  # parsed anew on each access
    return metadata["Name"] or "", metadata["Version"] or ""


def _origin(ep: EntryPoint) -> str:
    dist, version = _distribution(ep.dist)
    return f"{ep.value} from {dist or 'an unknown distribution'} {version}".rstrip()


def load_host(settings: PluginSettings | None = None, extra: Iterable[Any] = ()) -> PluginHost:
    """A host with the entry-point plugins loaded and ``extra`` plugin objects added."""
    host = PluginHost()
    host.load_entry_points(settings)
    for plugin in extra:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        host.register(plugin, name)
    host.check()
    return host
