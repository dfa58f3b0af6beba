from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from ibkr_fakes import FakeTime
from tradepipe.brokers.ibkr.pacing import FileState, Pacer
from tradepipe.errors import BrokerUnavailableError


def exact(t: FakeTime, **kw: Any) -> Pacer:
    """A pacer at IBKR's published limits with no headroom."""
    return Pacer(
        10, monotonic=t.monotonic, sleep=t.sleep, wall=t.wall, margin=0, margin_seconds=0, **kw
    )


def test_requests_are_spaced_by_the_global_rate() -> None:
    t = FakeTime()
    pacer = exact(t)
    for _ in range(5):
        pacer.acquire("GET", "/iserver/accounts")
    # The first goes at once, each later one 0.1 s after the previous.
    assert t.slept == pytest.approx([0.1] * 4)


def test_endpoint_limit_waits_for_its_turn() -> None:
    t = FakeTime()
    pacer = exact(t)
    pacer.acquire("GET", "/iserver/account/orders")
    pacer.acquire("GET", "/iserver/account/orders")
    assert sum(t.slept) == pytest.approx(5.0)
    # Another endpoint is not held back by the order list's limit.
    t.slept.clear()
    t.now += 1
    pacer.acquire("GET", "/iserver/account/trades")
    assert t.slept == []


def test_method_matters_and_paths_match_whole() -> None:
    t = FakeTime()
    pacer = exact(t)
    pacer.acquire("POST", "/iserver/scanner/run")
    t.now += 0.2
    pacer.acquire("GET", "/iserver/scanner/params")
    t.now += 0.2
    # /iserver/account/orders/whatif is not the order list.
    pacer.acquire("POST", "/iserver/account/DU1/orders/whatif")
    pacer.acquire("POST", "/iserver/account/DU1/orders/whatif")
    assert max(t.slept) == pytest.approx(0.1)


def test_a_long_wait_is_refused_with_when_to_retry() -> None:
    t = FakeTime()
    pacer = exact(t, max_wait=10)
    pacer.acquire("GET", "/iserver/scanner/params")
    with pytest.raises(BrokerUnavailableError, match="once every 900 s") as err:
        pacer.acquire("GET", "/iserver/scanner/params")
    assert err.value.context["maybe_sent"] is False
    assert err.value.context["retry_after"] == pytest.approx(900)
    t.now += 900
    pacer.acquire("GET", "/iserver/scanner/params")


def test_penalty_refuses_everything_until_it_ends() -> None:
    t = FakeTime()
    pacer = exact(t, penalty_seconds=600)
    pacer.penalize()
    with pytest.raises(
        BrokerUnavailableError, match=r"paused until 22:40:00 UTC \(another 600 s\)"
    ):
        pacer.acquire("GET", "/iserver/accounts")
    t.now += 599
    with pytest.raises(BrokerUnavailableError):
        pacer.acquire("POST", "/tickle")
    assert t.slept == []  # refused at once, never waited
    t.now += 1
    pacer.acquire("GET", "/iserver/accounts")
    assert pacer.penalty_remaining == 0


def test_concurrent_callers_each_get_their_own_slot() -> None:
    t = FakeTime()
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            t.slept.append(seconds)

    pacer = Pacer(10, monotonic=t.monotonic, sleep=sleep, margin=0)
    threads = [
        threading.Thread(target=pacer.acquire, args=("GET", "/iserver/accounts")) for _ in range(8)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Time stood still, so the 8 reservations are 0, 0.1, ..., 0.7 s away.
    assert sorted(t.slept) == pytest.approx([0.1 * i for i in range(1, 8)])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)


@pytest.mark.parametrize(
    ("method", "path", "spacing"),
    [
        ("GET", "/iserver/accounts", 0.11),  # the global 10/s, plus 10%
        ("GET", "/iserver/marketdata/snapshot", 0.11),  # sub-second: 10% only
        ("POST", "/tickle", 1.25),  # 1 s: the 250 ms floor is larger than 10%
        ("GET", "/iserver/account/orders", 5.5),  # 5 s: 10% is larger
        ("GET", "/sso/validate", 66.0),
    ],
)
def test_every_limit_gets_headroom(method: str, path: str, spacing: float) -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep, max_wait=100)
    pacer.acquire(method, path)
    pacer.acquire(method, path)
    assert sum(t.slept) == pytest.approx(spacing)
    assert pacer.interval(method, path) in (None, pytest.approx(spacing))


def test_headroom_is_a_setting() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep, margin=0.2, margin_seconds=2)
    assert pacer.interval("GET", "/iserver/account/orders") == pytest.approx(7.0)
    assert pacer.interval("POST", "/tickle") == pytest.approx(3.0)
    with pytest.raises(ValueError):
        Pacer(10, margin=-0.1)


def test_due_asks_without_reserving() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep)
    assert pacer.due("GET", "/sso/validate")
    assert pacer.due("GET", "/sso/validate")  # asking twice reserved nothing
    pacer.acquire("GET", "/sso/validate")
    assert not pacer.due("GET", "/sso/validate")
    t.now += 65.9
    assert not pacer.due("GET", "/sso/validate")
    t.now += 0.2
    assert pacer.due("GET", "/sso/validate")
    assert pacer.due("GET", "/iserver/accounts")  # no limit of its own


def test_facts_expire() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep)
    assert pacer.recall("login") is None
    pacer.remember("login", 2, ttl=60)
    assert pacer.recall("login") == 2
    t.now += 61
    assert pacer.recall("login") is None


def two_processes(path: Path, t: FakeTime) -> tuple[Pacer, Pacer]:
    """Two pacers sharing one state file, as two tradepipe processes would."""
    return tuple(  # type: ignore[return-value]
        Pacer(10, monotonic=t.monotonic, sleep=t.sleep, wall=t.wall, state=FileState(path))
        for _ in range(2)
    )


def test_a_state_file_shares_the_budget_between_processes(tmp_path: Path) -> None:
    t = FakeTime()
    path = tmp_path / "state" / "pacing.json"
    first, second = two_processes(path, t)
    first.acquire("GET", "/iserver/account/orders")
    second.acquire("GET", "/iserver/account/orders")
    # The second "process" waited for the first one's slot, headroom included.
    assert t.slept == [pytest.approx(5.5)]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    # A penalty drawn by one holds the other back too, and says until when.
    first.penalize()
    with pytest.raises(BrokerUnavailableError, match=r"paused until .* UTC \(another 900 s\)"):
        second.acquire("POST", "/tickle")
    # The login type one process learnt is known to the other.
    first.remember("login_type", 2, ttl=60)
    assert second.recall("login_type") == 2


def test_a_state_file_of_another_boot_or_damaged_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    t = FakeTime()
    path = tmp_path / "pacing.json"
    first, _ = two_processes(path, t)
    first.penalize()
    data = json.loads(path.read_text())
    data["boot"] = "another-boot"
    path.write_text(json.dumps(data))
    fresh = Pacer(10, monotonic=t.monotonic, sleep=t.sleep, state=FileState(path))
    fresh.acquire("GET", "/iserver/accounts")  # the old boot's penalty means nothing now
    path.write_text("{not json")
    with caplog.at_level("WARNING"):
        fresh.acquire("GET", "/iserver/accounts")
    assert "unreadable" in caplog.text
    assert json.loads(path.read_text())["format"] == 1


def test_a_slot_far_beyond_any_limit_is_not_waited_for(tmp_path: Path) -> None:
    t = FakeTime()
    path = tmp_path / "pacing.json"
    first, second = two_processes(path, t)
    first.acquire("GET", "/iserver/accounts")
    data = json.loads(path.read_text())
    data["next"] = {key: t.now + 10_000 for key in data["next"]}
    path.write_text(json.dumps(data))
    t.slept.clear()
    second.acquire("GET", "/iserver/accounts")
    assert t.slept == []
