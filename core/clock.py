"""Where business code gets the time.

Nothing in tradepipe's business code calls ``datetime.now()``: the executor hands
components a :class:`Clock`. Live runs use :class:`SystemClock`; replays use a
:class:`ManualClock` that the executor moves to each bar's time, so a replay
decides exactly as it would have at the time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current time (always timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; replays and tests use it."""

    __slots__ = ("_now",)

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        self._now = when
