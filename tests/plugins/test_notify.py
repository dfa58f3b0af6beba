"""Notifications through Apprise, to a local HTTP receiver on 127.0.0.1 (and one that fails)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from notify_receiver import SECRET, Receiver
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.notify.notifier import Notifier, Target, apprise_send, message, shown_url


def test_events_of_a_burst_go_as_one_message_and_a_failing_target_stops_nothing(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(
        [
            Target("ok", receiver.url("ok"), frozenset({"fill"})),
            Target("broken", receiver.url("broken"), frozenset({"*"})),
        ],
        batch_seconds=0.3,
        max_per_minute=6,
        timeout=5,
    )
    with caplog.at_level(logging.WARNING, logger="tradepipe.notify"):
        for n in range(30):
            notifier.event("fill", f"buy {n} AAPL at 100")
        notifier.event("denial", "order x denied by halt: halted")  # the broken target's only
        [sent] = receiver.wait(1)
        notifier.flush()
    # One message for the burst: 20 lines and a count of the rest.
    assert sent["title"] == "tradepipe: Fill"
    lines = sent["message"].splitlines()
    assert lines[0] == "buy 0 AAPL at 100" and lines[-1] == "… and 10 more"
    assert len(receiver.messages) == 1
    assert (notifier.sent, notifier.failed) == (1, 1)
    assert "notification to broken" in caplog.text and "failed" in caplog.text
    assert SECRET not in caplog.text  # the URL is masked


def test_a_target_gets_at_most_max_per_minute_messages(receiver: Receiver) -> None:
    notifier = Notifier(
        [Target("ok", receiver.url("ok"), frozenset({"*"}))], batch_seconds=0, max_per_minute=2
    )
    for n in range(5):
        notifier.event("fill", f"fill {n}")
        time.sleep(0.3)
    receiver.wait(2)
    time.sleep(0.5)
    assert len(receiver.messages) == 2  # the rest wait for the minute to pass
    notifier.flush()  # or for the run's end: all of it, batched
    assert len(receiver.messages) == 3
    assert receiver.messages[-1]["message"].splitlines() == ["fill 2", "fill 3", "fill 4"]


def test_messages_and_masked_urls() -> None:
    title, body = message([("halt", "daily loss"), ("fill", "buy 1 AAPL")])
    assert title == "tradepipe: 2 events" and body == "daily loss\nbuy 1 AAPL"
    assert SECRET not in shown_url(f"json://user:{SECRET}@127.0.0.1:9/x")
    assert shown_url(f"tgram://123456:{SECRET}/987").startswith("tgram://")
    assert SECRET not in shown_url(f"tgram://123456:{SECRET}/987")
    assert apprise_send("nonsense://what", "t", "b", 1) is False


def _settings(workdir: Path, receiver: Receiver, extra: str = "") -> None:
    (workdir / "settings.toml").write_text(
        f"""
[default.run]
sinks = ["sql"]
[default.sinks.sql]
path = "ledger.db"
[default.risk.halt]
state_file = "halt.json"
[default.notify]
batch_seconds = 0
[default.notify.targets.phone]
events = ["*"]
[default.notify.targets.pager]
events = ["halt"]
[default.logging]
file = false
{extra}
"""
    )
    # The URLs are secrets: in .secrets.toml.
    (workdir / ".secrets.toml").write_text(
        f'[default.notify.targets.phone]\napprise = "{receiver.url("ok")}"\n'
        f'[default.notify.targets.pager]\napprise = "{receiver.url("broken")}"\n'
    )


def tp(*args: str) -> Result:
    app = AppContext(settings_path="settings.toml")
    return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)


@pytest.mark.slow
def test_notify_test_targets_and_a_halt_from_the_command_line(
    workdir: Path, receiver: Receiver
) -> None:
    _settings(workdir, receiver)
    listed = tp("notify", "targets", "--json")
    assert listed.exit_code == 0 and SECRET not in listed.output
    assert [t["name"] for t in json.loads(listed.stdout)] == ["pager", "phone"]
    tested = tp("notify", "test")
    assert tested.exit_code == 1  # the pager's receiver answers 500
    assert "phone (json://user:" in tested.output and "): sent" in tested.output
    assert "pager (" in tested.output and "FAILED" in tested.output
    assert SECRET not in tested.output
    assert receiver.wait(1)[0]["title"] == "tradepipe: Test"
    assert tp("notify", "test", "--target", "phone").exit_code == 0
    assert "no notification target 'nobody'" in tp("notify", "test", "--target", "nobody").output
    assert SECRET not in tp("config", "show").output

    halted = tp("halt", "--reason", "FOMC")
    assert halted.exit_code == 0
    messages = receiver.wait(3)
    assert messages[-1]["message"].startswith("trading halted by hand (FOMC)")


@pytest.mark.slow
def test_a_replay_notifies_nothing_unless_asked(workdir: Path, receiver: Receiver) -> None:
    _settings(workdir, receiver)
    assert tp("run-pipeline", "--no-progress").exit_code == 0
    time.sleep(0.3)
    assert receiver.messages == []
    # Asked: a replay's fills are batched (a minute here), the rest at the run's end.
    text = (
        (workdir / "settings.toml").read_text().replace("batch_seconds = 0", "batch_seconds = 60")
    )
    (workdir / "settings.toml").write_text(
        text.replace("[default.notify]", "[default.notify]\nreplays = true")
    )
    assert tp("run-pipeline", "--no-progress").exit_code == 0
    [sent] = receiver.wait(1)
    # One message: the replay's fills and denials, 20 lines and the count of the rest.
    assert sent["title"].endswith(" events") and sent["message"].endswith("more")
    assert " at " in sent["message"] and len(sent["message"].splitlines()) == 21


@pytest.mark.slow
def test_a_live_run_notifies_its_start_fills_and_end(workdir: Path, receiver: Receiver) -> None:
    from tradepipe.plugins.feeds.synthetic import SyntheticFeed
    from tradepipe.testing import live

    feed = SyntheticFeed(
        SyntheticFeed.Settings(symbols=["AAPL"], bars=60, interval="1m", seed=9, volatility=0.05)
    )
    feed.load()
    _, result, _, _ = live(
        list(feed.bars()),
        strategies={"sma_cross": {"fast": 2, "slow": 3, "quantity": 10}},
        notify={
            "batch_seconds": 0,
            "max_per_minute": 600,
            "targets": {"hook": {"apprise": receiver.url("ok"), "events": ["run", "fill"]}},
        },
    )
    assert result.fills > 0
    texts = [m["message"] for m in receiver.wait(3)]
    assert texts[0].startswith("live run ") and "started" in texts[0]
    assert any(" AAPL at " in t for t in texts)
    assert "fill(s)" in texts[-1] and "stopped" in texts[-1]


@pytest.mark.slow
def test_a_one_off_command_s_notification_goes_before_the_process_ends(
    workdir: Path, receiver: Receiver
) -> None:
    """The process exits right after the halt: its message must not be lost with it."""
    import subprocess
    import sys

    _settings(workdir, receiver)
    done = subprocess.run(
        [sys.executable, "-m", "tradepipe", "halt", "--reason", "earnings"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # The pager's receiver answers 500: logged, masked; the phone's message went.
    assert "notification to pager" in done.stderr and SECRET not in done.stderr
    assert "notification to phone" not in done.stderr
    [sent] = receiver.wait(1)
    assert sent["message"].startswith("trading halted by hand (earnings)")


@pytest.mark.parametrize(
    ("mode", "feed", "replays", "targets", "listens"),
    [
        ("replay", "synthetic", False, True, False),  # history: nothing to tell
        ("replay", "synthetic", True, True, True),  # asked for
        ("replay", "", False, True, True),  # a one-off order (no feed)
        ("live", "synthetic_live", False, True, True),
        ("live", "synthetic_live", False, False, False),  # nowhere to send
    ],
)
def test_a_run_s_order_events_reach_notify_only_when_they_can_become_messages(
    mode: str, feed: str, replays: bool, targets: bool, listens: bool
) -> None:
    """Asked once per run: in a replay that notifies nothing, the notify plugin's
    observers are never called for its orders, verdicts and fills."""
    from tradepipe.host import load_host
    from tradepipe.settings import validate_settings

    settings = validate_settings(
        {
            "run": {"mode": mode, "feed": feed or "synthetic"},
            "notify": {
                "replays": replays,
                "targets": {"hook": {"apprise": "json://127.0.0.1:9/"}} if targets else {},
            },
        },
        source="test",
    )
    host = load_host(settings.plugins)
    host.configure(settings)
    run = type("Run", (), {"run_id": "r1", "feed": feed, "broker": "paper"})()
    started = host.observers("tradepipe_run_started")
    assert started is not None
    started(run=run)
    for hook in ("tradepipe_order_event", "tradepipe_order_filled", "tradepipe_risk_verdict"):
        observer = host.observers(hook)
        plugins = [] if observer is None else [name for name, *_ in observer._calls]
        assert any("notify" in name for name in plugins) is listens, (hook, plugins)
    finished = host.observers("tradepipe_run_finished")
    assert finished is not None
    finished(run=run, status="completed", summary={})
