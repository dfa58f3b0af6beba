from __future__ import annotations

import threading

import pytest
from ibkr_fakes import FakeTime
from tradepipe.brokers.ibkr.pacing import Pacer
from tradepipe.errors import BrokerUnavailableError


def test_requests_are_spaced_by_the_global_rate() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep)
    for _ in range(5):
        pacer.acquire("GET", "/iserver/accounts")
    # The first goes at once, each later one 0.1 s after the previous.
    assert t.slept == pytest.approx([0.1] * 4)


def test_endpoint_limit_waits_for_its_turn() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep)
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
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep)
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
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep, max_wait=10)
    pacer.acquire("GET", "/iserver/scanner/params")
    with pytest.raises(BrokerUnavailableError, match="once every 900 s") as err:
        pacer.acquire("GET", "/iserver/scanner/params")
    assert err.value.context["maybe_sent"] is False
    assert err.value.context["retry_after"] == pytest.approx(900)
    t.now += 900
    pacer.acquire("GET", "/iserver/scanner/params")


def test_penalty_refuses_everything_until_it_ends() -> None:
    t = FakeTime()
    pacer = Pacer(10, monotonic=t.monotonic, sleep=t.sleep, penalty_seconds=600)
    pacer.penalize()
    with pytest.raises(BrokerUnavailableError, match="paused for another 600 s"):
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

    pacer = Pacer(10, monotonic=t.monotonic, sleep=sleep)
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
