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


def test_duplicate_component_names_are_an_error() -> None:
    class Again:
        __name__ = "again"

        @hookimpl
        def tradepipe_register_strategies(self, register: Any) -> None:
            register(Dummy)

    host = load_host(None, [DummyPlugin(), Again()])
    with pytest.raises(PluginError, match="strategy 'dummy' is registered twice"):
        host.collect()


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
