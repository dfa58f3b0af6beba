"""Shared doubles for the IBKR unit tests: a fake clock and a respx-backed client."""

from __future__ import annotations

import httpx
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.pacing import Pacer

BASE = "https://gw.test/v1/api"


class FakeTime:
    """Monotonic time that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        """Seconds since the epoch: 2023-11-14 22:13:20 UTC when ``now`` is 0."""
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_client(time: FakeTime | None = None, **pacer: float) -> WebApiClient:
    time = time or FakeTime()
    return WebApiClient(
        BASE,
        http=httpx.Client(),
        pacer=Pacer(monotonic=time.monotonic, sleep=time.sleep, **pacer),
        broker="client_portal",
        login_hint="log in at https://localhost:5000",
    )
