"""The live-account guard, the kill switch and the daily loss limit hold in live runs too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tradepipe import BrokerStatus, ConfigError, hookimpl
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.plugins.feeds.synthetic import SyntheticFeed
from tradepipe.testing import MemorySink, live, test_host

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def market(count: int = 60) -> list[Any]:
    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["AAPL"], bars=count, interval="1m", seed=9, volatility=0.05)
    )
    feed.load()
    return list(feed.bars())


SMA = {"sma_cross": {"fast": 2, "slow": 3, "quantity": 10, "counter_trend_confidence": 90}}


class LiveSim(PaperBroker):
    """The simulator, claiming to be a live account."""

    name = "live_sim"

    def status(self) -> BrokerStatus:
        return super().status().model_copy(update={"is_paper": False, "account_id": "U1234567"})


class Plugin:
    __name__ = "live-sim"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(LiveSim)


def sink_of(pipeline: Any) -> MemorySink:
    sink = pipeline.sinks[0]
    assert isinstance(sink, MemorySink)
    return sink


def test_a_live_account_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match=r"live account \(U\*\*\*4567\); refusing to trade it"):
        live(market(), host=test_host(Plugin()), run={"broker": "live_sim"}, strategies=SMA)
    # Allowed by [run] allow_live, the always-on guard lets orders through and records
    # nothing: it had nothing to say.
    pipeline, result, _s, _r = live(
        market(),
        host=test_host(Plugin()),
        run={"broker": "live_sim", "allow_live": True, "risk_filters": []},
        strategies=SMA,
    )
    assert result.orders > 0 and result.fills == result.orders
    assert sink_of(pipeline).verdicts == []


@pytest.mark.parametrize("listed", [[], ["live_account"]], ids=["always-on", "listed"])
def test_the_live_account_guard_can_lock_a_live_run(listed: list[str]) -> None:
    pipeline, result, _s, _r = live(
        market(),
        host=test_host(Plugin()),
        run={"broker": "live_sim", "allow_live": True, "risk_filters": listed},
        strategies=SMA,
        risk={"live_account": {"allow_live": False}},
    )
    sink = sink_of(pipeline)
    assert result.orders > 0 and result.fills == 0
    assert {v.filter for v in sink.verdicts} == {"live_account"}
    assert {v.reason for v in sink.verdicts} == {
        "live account, and [risk.live_account] allow_live is false"
    }


@pytest.mark.parametrize("listed", [[], ["halt"]], ids=["always-on", "listed"])
def test_the_kill_switch_denies_every_order_of_a_live_run(workdir: Path, listed: list[str]) -> None:
    (workdir / "halt.json").write_text(json.dumps({"manual": {"reason": "FOMC", "at": "now"}}))
    pipeline, result, _s, _r = live(
        market(),
        run={"risk_filters": listed},
        strategies=SMA,
        risk={"halt": {"state_file": "halt.json", "allow_reducing": False}},
    )
    sink = sink_of(pipeline)
    assert result.orders > 0 and result.fills == 0
    assert {v.reason for v in sink.verdicts} == {"trading halted by hand: FOMC"}


def test_the_halt_filter_reads_the_file_tradepipe_halt_writes(workdir: Path) -> None:
    """``[risk.max_daily_loss] state_file`` alone moves the halt file for both filters."""
    (workdir / "state.json").write_text(json.dumps({"manual": {"reason": "news", "at": "now"}}))
    pipeline, result, _s, _r = live(
        market(),
        run={"risk_filters": ["max_daily_loss"]},
        strategies=SMA,
        risk={"max_daily_loss": {"state_file": "state.json", "max_loss": 1_000_000}},
    )
    assert result.orders > 0 and result.fills == 0
    assert {v.reason for v in sink_of(pipeline).verdicts if v.outcome.value == "deny"} == {
        "trading halted by hand: news"
    }


def test_the_daily_loss_limit_halts_a_live_run_and_a_restart_the_same_day(workdir: Path) -> None:
    risk = {"max_daily_loss": {"state_file": "halt.json", "max_loss": 0.5, "allow_reducing": False}}
    run = {"risk_filters": ["max_daily_loss"], "session": "day-1"}
    first, result, _s, _r = live(market(), run=run, strategies=SMA, risk=risk)
    sink = sink_of(first)
    denied = [v for v in sink.verdicts if v.outcome.value == "deny"]
    assert result.fills >= 1 and denied, "the commissions alone lose more than 0.50"
    assert "daily loss limit hit" in denied[0].reason
    state = json.loads((workdir / "halt.json").read_text())
    [(_account, day)] = state["daily"].items()
    assert day["halted"]
    # The restarted run (same New York day on its clock) is halted from its first order.
    second, again, _s, _r = live(market(), run=run, strategies=SMA, risk=risk)
    assert again.orders > 0 and again.fills == 0
    assert all("daily loss limit hit" in v.reason for v in sink_of(second).verdicts)
