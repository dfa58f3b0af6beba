"""The plugin host: entry-point loading, registration, duplicates, observers."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import click
import pytest
from tradepipe import Broker, PluginError, Strategy, UnknownComponentError, hookimpl, hookspecs
from tradepipe.host import PluginHost, load_host
from tradepipe.settings import PluginSettings

BUILTINS = {
    "paper",
    "client_portal",
    "sma_cross",
    "risk_filters",
    "sql_sink",
    "synthetic_feed",
    "csv_feed",
}


class Dummy(Strategy):
    name = "dummy"


class DummyPlugin:
    __name__ = "dummy_plugin"

    @hookimpl
    def tradepipe_register_strategies(self, register: Any) -> None:
        register(Dummy)


def test_builtins_load_through_entry_points() -> None:
    host = load_host()
    assert set(host.plugins) >= BUILTINS
    assert all(host.plugins[name].builtin for name in BUILTINS)
    assert host.plugins["paper"].distribution == "tradepipe"
    assert set(host.components("broker")) == {"paper", "client_portal", "web_api"}
    assert {"sma_cross"} <= set(host.components("strategy"))
    assert {"min_confidence", "max_position_value", "max_risk_per_trade", "buying_power"} <= set(
        host.components("risk_filter")
    )
    assert {"sql"} <= set(host.components("sink"))
    assert {"synthetic", "csv"} <= set(host.components("feed"))
    assert {"ledger", "auth"} <= set(host.commands())
    assert host.plugins["sma_cross"].components == ["strategy:sma_cross"]


def test_disabled_plugin_is_not_loaded() -> None:
    host = load_host(PluginSettings(disabled=["csv_feed"]))
    assert "csv_feed" not in host.plugins
    assert "csv" not in host.components("feed")


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, extra: list[EntryPoint]) -> None:
    import tradepipe.host as host_module

    real = host_module.entry_points

    def fake(group: str) -> list[EntryPoint]:
        return list(real(group=group)) + extra

    monkeypatch.setattr(host_module, "entry_points", fake)


def test_autoload_off_still_loads_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    third = EntryPoint("outsider", "tradepipe.testing", "tradepipe")
    _fake_entry_points(monkeypatch, [third])
    assert "outsider" in load_host(PluginSettings(autoload=True)).plugins
    host = load_host(PluginSettings(autoload=False))
    assert "outsider" not in host.plugins
    assert set(host.plugins) >= BUILTINS


def test_two_entry_points_with_one_name_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    clash = EntryPoint("paper", "tradepipe.testing", "tradepipe")
    _fake_entry_points(monkeypatch, [clash])
    with pytest.raises(PluginError, match="two plugins are named 'paper'"):
        load_host()


def test_plugin_that_fails_to_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("broken", "tradepipe_no_such_module_xyz", "tradepipe")
    _fake_entry_points(monkeypatch, [broken])
    with pytest.raises(PluginError, match="plugin 'broken'.*failed to import"):
        load_host()


def test_misspelt_hook_fails_loudly() -> None:
    class Typo:
        __name__ = "typo"

        @hookimpl
        def tradepipe_register_stratgies(self, register: Any) -> None:  # sic
            pass

    with pytest.raises(PluginError, match="tradepipe_register_stratgies"):
        load_host(None, [Typo()])


def test_each_kind_is_collected_when_first_looked_up() -> None:
    called: list[str] = []

    class Listed(Broker):
        name = "listed"

    class Both:
        __name__ = "both"

        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            called.append("strategies")
            register(Dummy)

        @hookimpl
        def tradepipe_register_brokers(self, register: Any) -> None:
            called.append("brokers")
            register(Listed)

        @hookimpl
        def tradepipe_register_commands(self, register: Any) -> None:
            called.append("commands")

    host = load_host(None, [Both()])
    host.commands()
    assert called == ["commands"]  # what tradepipe --help needs
    assert host.component("broker", "listed") is Listed
    assert called == ["commands", "brokers"]
    host.collect()
    assert sorted(called) == ["brokers", "commands", "strategies"]
    # Listed in the order of the kinds, whichever was looked up first.
    assert host.plugins["both"].components == ["strategy:dummy", "broker:listed"]


def test_a_lazy_component_s_module_is_imported_when_it_is_first_used() -> None:
    import sys

    from tradepipe.host import LazyComponent

    class Lazy:
        __name__ = "lazy"

        @hookimpl
        def tradepipe_register_brokers(self, register: Any) -> None:
            register(LazyComponent("lazy_ok", "tradepipe_lazy_broker:LazyBroker"))
            register(LazyComponent("lazy_missing", "tradepipe_no_such_module:Broker"))
            register(LazyComponent("lazy_misnamed", "tradepipe_lazy_broker:LazyBroker"))
            register(LazyComponent("lazy_not_broker", "tradepipe_lazy_broker:NotABroker"))
            register(LazyComponent("lazy_keyerror", "tradepipe_lazy_broker:NeedsAVariable"))

    module = type(sys)("tradepipe_lazy_broker")
    imported: list[str] = []

    def getattr_(name: str) -> Any:
        imported.append(name)
        if name == "LazyBroker":
            return type("LazyBroker", (Broker,), {"name": "lazy_ok"})
        if name == "NotABroker":
            return type("NotABroker", (), {"name": "lazy_not_broker"})
        if name == "NeedsAVariable":
            raise KeyError("BROKER_HOME")  # as os.environ["BROKER_HOME"] at import would
        raise AttributeError(name)

    module.__getattr__ = getattr_  # type: ignore[method-assign]
    sys.modules["tradepipe_lazy_broker"] = module
    try:
        host = load_host(None, [Lazy()])
        names = host.components("broker")
        assert {"lazy_ok", "lazy_missing", "lazy_misnamed", "lazy_not_broker"} <= set(names)
        assert imported == []  # looked up, not used: nothing imported
        broker = host.component("broker", "lazy_ok")
        assert issubclass(broker, Broker) and broker.name == "lazy_ok"
        assert host.component("broker", "lazy_ok") is broker  # imported once
        assert imported == ["LazyBroker"]
        with pytest.raises(PluginError, match="broker 'lazy_missing' could not be loaded from"):
            host.component("broker", "lazy_missing")
        with pytest.raises(PluginError, match="registered broker 'lazy_misnamed', but"):
            host.component("broker", "lazy_misnamed")
        with pytest.raises(
            PluginError,
            match=r"'lazy_not_broker' \(tradepipe_lazy_broker:NotABroker\) as a broker, but it "
            "is not a subclass of Broker",
        ):
            host.component("broker", "lazy_not_broker")
        # Its module's own error, named as such: never "unknown broker".
        with pytest.raises(PluginError, match="could not be loaded from .*KeyError: 'BROKER_HOME'"):
            host.component("broker", "lazy_keyerror")
    finally:
        del sys.modules["tradepipe_lazy_broker"]


def test_a_lazy_component_s_target_must_name_a_module_and_a_class() -> None:
    from tradepipe.host import LazyComponent

    for target in ("package.module.Class", "package.module:", ":Class"):
        with pytest.raises(PluginError, match="must be 'package.module:Class'"):
            LazyComponent("dotted", target)


def test_a_replay_on_the_paper_simulator_imports_no_ibkr_adapter(tmp_path: Any) -> None:
    """A replay's memory and start: the IBKR adapters, httpx and cryptography stay out."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from tradepipe.clock import ManualClock\n"
        "from tradepipe.host import load_host\n"
        "from tradepipe.pipeline import build_pipeline, run_pipeline\n"
        "from tradepipe.settings import validate_settings\n"
        "s = validate_settings({'run': {'broker': 'paper', 'feed': 'synthetic'},\n"
        "    'feeds': {'synthetic': {'bars': 50}},\n"
        f"    'sinks': {{'sql': {{'path': {str(tmp_path / 'l.db')!r}}}}},\n"
        "    'logging': {'file': False}}, source='test')\n"
        "host = load_host(s.plugins)\n"
        "run_pipeline(build_pipeline(s, host, clock=ManualClock()))\n"
        "print(sorted(m for m in ('httpx', 'jwt', 'cryptography', 'tradepipe.brokers.ibkr.broker')"
        " if m in sys.modules))\n"
        "print(sorted(host.components('broker')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    imported, brokers = done.stdout.strip().splitlines()[-2:]
    assert imported == "[]"
    assert "'client_portal'" in brokers and "'web_api'" in brokers  # registered all the same


def test_duplicate_component_names_are_an_error() -> None:
    class Again:
        __name__ = "again"

        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            register(Dummy)

    host = load_host(None, [DummyPlugin(), Again()])
    with pytest.raises(PluginError, match="strategy 'dummy' is registered twice") as raised:
        host.collect()
    # What to do about it, where the person will look.
    assert '[plugins] disabled = ["again"]' in str(raised.value)


def test_registering_the_wrong_kind_is_an_error() -> None:
    class Wrong:
        __name__ = "wrong"

        @hookimpl
        def tradepipe_register_brokers(self, register: Any) -> None:
            register(Dummy)  # a strategy, not a broker

    with pytest.raises(PluginError, match="not a subclass of Broker"):
        load_host(None, [Wrong()]).collect()


def test_unknown_component_lists_the_choices() -> None:
    host = load_host()
    with pytest.raises(UnknownComponentError) as info:
        host.component("strategy", "nope")
    assert "unknown strategy 'nope'" in str(info.value)
    assert "sma_cross" in str(info.value)
    assert info.value.choices == sorted(host.components("strategy"))


def test_duplicate_command_names_are_an_error() -> None:
    class Cmd:
        __name__ = "cmd"

        @hookimpl
        def tradepipe_register_commands(self, register: Any) -> None:
            register(click.Command("ledger"))

    with pytest.raises(PluginError, match="command 'ledger' is registered twice"):
        load_host(None, [Cmd()]).collect()


def test_observers_are_none_without_listeners_and_isolate_failures(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    class Broken:
        __name__ = "broken_observer"

        @hookimpl
        def tradepipe_decision_made(self, decision: Any) -> None:
            raise RuntimeError("observer bug")

    class Good:
        __name__ = "good_observer"

        @hookimpl
        def tradepipe_decision_made(self, decision: Any) -> None:
            seen.append(decision)

    assert PluginHost().observers("tradepipe_decision_made") is None
    host = load_host(None, [Good(), Broken()])
    observer = host.observers("tradepipe_decision_made")
    assert observer is not None
    import logging

    monkeypatch.setattr(logging.getLogger("tradepipe"), "propagate", True)
    observer(decision="d1")
    assert seen == ["d1"]  # the broken one did not stop the good one
    assert "broken_observer failed in tradepipe_decision_made" in caplog.text


def test_an_observer_that_does_not_listen_in_a_run_is_left_out_of_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradepipe import observes_when

    listening = {"now": False}
    seen: list[str] = []

    class Sometimes:
        __name__ = "sometimes"

        @hookimpl
        @observes_when(lambda: listening["now"])
        def tradepipe_order_filled(self, fill: Any) -> None:
            seen.append(fill)

    def unsure() -> bool:
        raise RuntimeError("cannot tell")

    class Unsure:
        __name__ = "unsure"

        @hookimpl
        @observes_when(unsure)
        def tradepipe_order_filled(self, fill: Any) -> None:
            seen.append(f"unsure {fill}")

    host = load_host(None, [Sometimes()])
    assert host.observers("tradepipe_order_filled") is None  # asked per run: not this one
    listening["now"] = True
    observer = host.observers("tradepipe_order_filled")
    assert observer is not None
    observer(fill="f1")
    assert seen == ["f1"]

    import logging

    monkeypatch.setattr(logging.getLogger("tradepipe"), "propagate", True)
    listening["now"] = False
    both = load_host(None, [Sometimes(), Unsure()]).observers("tradepipe_order_filled")
    assert both is not None
    both(fill="f2")
    assert seen == ["f1", "unsure f2"]  # a predicate that fails: the observer listens
    assert "plugin unsure could not say whether it observes this run" in caplog.text


def test_every_hookspec_is_documented_and_prefixed() -> None:
    specs = [getattr(hookspecs, n) for n in dir(hookspecs) if n.startswith("tradepipe_")]
    assert len(specs) >= 13
    for spec in specs:
        assert spec.__doc__ and len(spec.__doc__.strip()) > 40, spec.__name__
        assert spec.__annotations__.get("return") in ("None", None), spec.__name__


def test_every_hookspec_is_on_the_hooks_page() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "plugins" / "index.md").read_text()
    names = [n for n in dir(hookspecs) if n.startswith("tradepipe_")]
    missing = [n for n in names if f"`{n}" not in page]
    assert not missing, f"hooks not documented in docs/plugins/index.md: {missing}"
