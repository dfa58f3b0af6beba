"""max_daily_loss and the manual halt: state that survives restarts, and the commands."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time
from risk_fakes import D, FakeContext, decision, intent
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.clock import ManualClock, SystemClock
from tradepipe.plugins.risk import halt as halt_module
from tradepipe.plugins.risk.halt import Halt, MaxDailyLoss
from tradepipe.risk import Outcome
from tradepipe.services.halt import read_state, write_state
from tradepipe.settings import AppSettings
from tradepipe.testing import write_settings

# 15:00 UTC = 10:00 New York (EST), on a Monday.
MONDAY = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def daily(path: Path, **values: object) -> MaxDailyLoss:
    return MaxDailyLoss(MaxDailyLoss.Settings.model_validate({"state_file": path, **values}))


def test_the_first_equity_of_the_day_is_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "halt.json"
    flt = daily(path, max_loss=1000)
    check = flt.check(intent(), decision(), FakeContext(when=MONDAY, equity_=D(50_000)))
    assert check.outcome is Outcome.PASS
    assert check.figures == {
        "day": "2026-03-02",
        "start_equity": D("50000.00"),
        "equity": D("50000.00"),
        "loss": D("0.00"),
        "limit": D("1000.00"),
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_state(path)["daily"] == {
        "paper:test": {"day": "2026-03-02", "start_equity": "50000", "halted": None}
    }


def test_each_account_measures_its_own_day(tmp_path: Path) -> None:
    # The same folder trades a paper account and an IBKR account: neither's loss is
    # measured against the other's equity (once a 900,000 "loss" halted the smaller one,
    # and the other way round the larger one could have lost 900,000 before a halt).
    path = tmp_path / "halt.json"
    flt = daily(path, max_loss=1000)
    small = FakeContext(when=MONDAY, equity_=D(100_000), account="paper:aaa")
    large = FakeContext(when=MONDAY, equity_=D(1_000_000), account="client_portal:bbb")
    assert flt.check(intent(), decision(), small).outcome is Outcome.PASS
    assert flt.check(intent(), decision(), large).outcome is Outcome.PASS
    assert flt.check(intent(), decision(), small).outcome is Outcome.PASS
    large.equity_ = D(998_500)  # its own loss of 1,500 halts it …
    assert flt.check(intent(), decision(), large).outcome is Outcome.DENY
    assert flt.check(intent(), decision(), small).outcome is Outcome.PASS  # … not the other
    state = read_state(path)["daily"]
    assert state["paper:aaa"]["start_equity"] == "100000"
    assert state["client_portal:bbb"]["start_equity"] == "1000000"


def test_a_loss_over_the_limit_halts_the_day_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "halt.json"
    ctx = FakeContext(when=MONDAY, equity_=D(100_000))
    flt = daily(path, max_loss_fraction="0.02")
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.PASS
    ctx.equity_ = D(97_999)
    check = flt.check(intent(), decision(), ctx)
    assert check.outcome is Outcome.DENY
    assert check.figures["loss"] == D("2001.00") and check.figures["limit"] == D("2000.00")
    # A new process: equity has recovered, yet the day stays halted.
    restarted = daily(path, max_loss_fraction="0.02")
    ctx.equity_ = D(101_000)
    ctx.when = MONDAY + dt.timedelta(hours=5)
    again = restarted.check(intent(), decision(), ctx)
    assert again.outcome is Outcome.DENY
    assert "halted until the next New York day" in again.reason


def test_reducing_orders_pass_while_halted_unless_configured(tmp_path: Path) -> None:
    path = tmp_path / "halt.json"
    ctx = FakeContext(when=MONDAY, equity_=D(100_000), positions={"AAPL": D(50)})
    daily(path, max_loss=10).check(intent(), decision(), ctx)
    ctx.equity_ = D(99_000)
    flt = daily(path, max_loss=10)
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
    sell = flt.check(intent("sell", "50"), decision(), ctx)
    assert sell.outcome is Outcome.PASS and "only reduces" in sell.reason
    strict = daily(path, max_loss=10, allow_reducing=False)
    assert strict.check(intent("sell", "50"), decision(), ctx).outcome is Outcome.DENY


def test_the_halt_resets_on_the_next_new_york_day(tmp_path: Path) -> None:
    path = tmp_path / "halt.json"
    ctx = FakeContext(when=MONDAY, equity_=D(100_000))
    flt = daily(path, max_loss=100)
    flt.check(intent(), decision(), ctx)
    ctx.equity_ = D(99_000)
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
    # 04:59 UTC Tuesday is still Monday 23:59 in New York.
    ctx.when = dt.datetime(2026, 3, 3, 4, 59, tzinfo=dt.UTC)
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
    ctx.when = dt.datetime(2026, 3, 3, 5, 0, tzinfo=dt.UTC)
    check = flt.check(intent(), decision(), ctx)
    assert check.outcome is Outcome.PASS
    assert check.figures["day"] == "2026-03-03" and check.figures["start_equity"] == D("99000.00")


def test_the_daily_reset_follows_the_wall_clock(tmp_path: Path) -> None:
    from tradepipe.clock import SystemClock

    path = tmp_path / "halt.json"
    clock = SystemClock()
    ctx = FakeContext(equity_=D(100_000))
    flt = daily(path, max_loss=100)
    with freeze_time("2026-07-01 23:30:00-04:00") as frozen:  # EDT
        ctx.when = clock.now()
        flt.check(intent(), decision(), ctx)
        ctx.equity_ = D(90_000)
        assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
        frozen.tick(dt.timedelta(minutes=31))
        ctx.when = clock.now()
        assert flt.check(intent(), decision(), ctx).outcome is Outcome.PASS


def test_a_corrupt_state_file_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "halt.json"
    path.write_text("{not json")
    with pytest.raises(Exception, match="not valid JSON"):
        daily(path, max_loss=1).check(intent(), decision(), FakeContext(when=MONDAY))
    with pytest.raises(Exception, match="not valid JSON"):
        Halt(Halt.Settings(state_file=path)).check(intent(), decision(), FakeContext())


def test_the_halt_filter_sees_every_change_of_its_file(tmp_path: Path) -> None:
    """It reads the file only when it changed, and never misses a change: set,
    lifted, set again with another reason, damaged and mended, in quick succession."""
    path = tmp_path / "halt.json"
    flt = Halt(Halt.Settings(state_file=path, allow_reducing=False))

    def judged() -> tuple[Outcome, str]:
        check = flt.check(intent(), decision(), FakeContext())
        return check.outcome, check.reason

    assert judged()[0] is Outcome.PASS
    write_state(path, {"manual": {"reason": "fomc", "at": "now"}})
    assert judged() == (Outcome.DENY, "trading halted by hand: fomc")
    assert judged() == (Outcome.DENY, "trading halted by hand: fomc")
    write_state(path, {})
    assert judged()[0] is Outcome.PASS
    write_state(path, {"manual": {"reason": "cpi", "at": "now"}})
    assert judged() == (Outcome.DENY, "trading halted by hand: cpi")
    path.write_text("{not json")
    for _ in range(2):
        with pytest.raises(Exception, match="not valid JSON"):
            judged()
    write_state(path, {"manual": {"reason": "fed", "at": "now"}})
    assert judged() == (Outcome.DENY, "trading halted by hand: fed")
    path.unlink()
    assert judged()[0] is Outcome.PASS


@pytest.mark.parametrize("replay", [False, True])
def test_a_replay_looks_at_the_halt_file_every_20_ms_a_live_run_for_every_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replay: bool
) -> None:
    path = tmp_path / "halt.json"
    now = [1000.0]
    monkeypatch.setattr(halt_module, "_monotonic", lambda: now[0])
    flt = Halt(Halt.Settings(state_file=path, allow_reducing=False))
    clock = ManualClock() if replay else SystemClock()
    flt.attach(SimpleNamespace(settings=AppSettings(), clock=clock))

    def outcome() -> Outcome:
        return flt.check(intent(), decision(), FakeContext()).outcome

    assert outcome() is Outcome.PASS
    write_state(path, {"manual": {"reason": "fomc", "at": "now"}})
    now[0] += 0.019
    # A replay trusts its last look for 20 ms of wall time; a live run looks again.
    assert outcome() is (Outcome.PASS if replay else Outcome.DENY)
    now[0] += 0.002
    assert outcome() is Outcome.DENY
    # A damaged file is looked at (and denies) every time, in a replay too.
    path.write_text("{not json")
    now[0] += 0.021
    for _ in range(2):
        with pytest.raises(Exception, match="not valid JSON"):
            outcome()
    path.unlink()
    assert outcome() is Outcome.PASS


def test_settings_need_a_limit() -> None:
    with pytest.raises(ValueError, match="set max_loss or max_loss_fraction"):
        MaxDailyLoss.Settings(max_loss=None, max_loss_fraction=None)


# -- tradepipe halt / resume --------------------------------------------------------------


@pytest.fixture
def workdir(workdir: Path) -> Path:
    write_settings(
        workdir,
        """
[default.run]
risk_filters = ["halt", "min_confidence"]
[default.risk.halt]
state_file = "state/halt.json"
[default.logging]
dir = "logs"
""",
    )
    return workdir


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=AppContext(settings_path="settings.toml"))


def test_halt_and_resume_through_the_cli(workdir: Path) -> None:
    flt = Halt(Halt.Settings(state_file=workdir / "state" / "halt.json"))
    assert flt.check(intent(), decision(), FakeContext()).outcome is Outcome.PASS
    result = invoke("halt", "--reason", "news pending")
    assert result.exit_code == 0, result.output
    assert "trading halted (news pending)" in result.stdout
    check = flt.check(intent(), decision(), FakeContext())
    assert (check.outcome, check.reason) == (Outcome.DENY, "trading halted by hand: news pending")
    assert check.figures["halted_at"]
    # Only reductions pass while halted.
    held = FakeContext(positions={"AAPL": D(10)})
    assert flt.check(intent("sell", "10"), decision(), held).outcome is Outcome.PASS
    result = invoke("resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "halted": False,
        "was_halted": True,
        "daily_loss_lifted": False,
    }
    assert flt.check(intent(), decision(), FakeContext()).outcome is Outcome.PASS
    assert invoke("resume").stdout.strip() == "trading was not halted"


def test_resume_daily_loss_lifts_the_day(workdir: Path) -> None:
    path = workdir / "state" / "halt.json"
    ctx = FakeContext(when=MONDAY, equity_=D(100_000))
    flt = daily(path, max_loss=100)
    flt.check(intent(), decision(), ctx)
    ctx.equity_ = D(99_000)
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
    assert invoke("resume").stdout.strip() == "trading was not halted"
    assert flt.check(intent(), decision(), ctx).outcome is Outcome.DENY
    assert invoke("resume", "--daily-loss").stdout.strip() == "trading resumed"
    check = flt.check(intent(), decision(), ctx)
    assert check.outcome is Outcome.PASS and check.figures["start_equity"] == D("99000.00")


def test_resume_leaves_the_days_alone_unless_asked_and_copes_with_a_damaged_day(
    tmp_path: Path,
) -> None:
    from tradepipe.services.halt import lift_halt, read_state

    path = tmp_path / "halt.json"
    write_state(path, {"manual": {"reason": "x"}})
    assert lift_halt(path) == (True, False)
    assert read_state(path) == {}  # the API's resume: nothing but the manual halt changes
    write_state(path, {"manual": {"reason": "x"}, "daily": {"acct": "damaged"}})
    assert lift_halt(path) == (True, False)
    assert read_state(path) == {"daily": {"acct": "damaged"}}
    assert lift_halt(path, daily_loss=True) == (False, True)
    assert read_state(path) == {"daily": {}}
