"""What a sweep tries: parameter values, their combinations, periods and walk-forward windows.

Pure functions, no I/O: :func:`parse_param` reads ``--param KEY=VALUES``,
:func:`combinations` makes the grid (or a seeded random sample of it),
:func:`parse_period` and :func:`walk_forward_windows` cut time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradepipe.errors import ConfigError

#: The settings tables a sweep may vary (a strategy's, sizing, a risk filter's).
VARIABLE = re.compile(r"^(strategies\.[a-z0-9_]+|risk\.[a-z0-9_]+|sizing)\.[a-z0-9_]+$")
#: The most combinations one sweep runs: beyond it, sample (``--random``).
MAX_COMBINATIONS = 100_000

Params = dict[str, Any]


def _value(text: str) -> Any:
    """``5`` → 5, ``0.5`` → Decimal('0.5'), ``true`` → True, anything else stays text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return text.strip()
    return int(number) if number == number.to_integral_value() and "." not in text else number


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``KEY=A:B:STEP`` (from A to B inclusive) or ``KEY=V1,V2,…`` → (key, values).

    :raises ConfigError: a key outside ``[strategies.*]``, ``[sizing]``,
        ``[risk.*]``, or values that cannot be read.
    """
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not values.strip():
        raise ConfigError(f"--param {text!r}: write KEY=START:STOP:STEP or KEY=V1,V2", key="param")
    if not VARIABLE.match(key):
        raise ConfigError(
            f"--param {key!r}: a sweep varies [strategies.NAME], [sizing] or [risk.NAME] "
            "keys (strategies.sma_cross.fast)",
            key="param",
        )
    if ":" in values:
        parts = values.split(":")
        if len(parts) != 3:
            raise ConfigError(f"--param {text!r}: a range is START:STOP:STEP", key="param")
        try:
            start, stop, step = (Decimal(p.strip()) for p in parts)
        except InvalidOperation:
            raise ConfigError(
                f"--param {text!r}: a range's bounds are numbers", key="param"
            ) from None
        if step <= 0 or stop < start:
            raise ConfigError(
                f"--param {text!r}: STEP must be more than 0 and STOP at least START", key="param"
            )
        count = int((stop - start) / step) + 1
        if count > MAX_COMBINATIONS:
            raise ConfigError(f"--param {text!r}: {count} values are too many", key="param")
        whole = all(p.strip().lstrip("-").isdigit() for p in parts)
        found = [start + i * step for i in range(count)]
        return key, [int(v) for v in found] if whole else found
    found = [_value(v) for v in values.split(",") if v.strip()]
    if len(set(map(str, found))) != len(found):
        raise ConfigError(f"--param {text!r}: a value is given twice", key="param")
    return key, found


def params_text(params: Params | None) -> str:
    """``fast=10, slow=100``: a combination as a person reads it (``-``: none)."""
    if not params:
        return "-"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())


def combinations(
    params: list[tuple[str, list[Any]]], sample: int | None = None, seed: int = 0
) -> list[Params]:
    """Every combination of ``params`` in order (the last key varying fastest), or
    ``sample`` of them drawn without replacement with ``seed``.

    :raises ConfigError: a key given twice, or too many combinations.
    """
    keys = [key for key, _ in params]
    if len(set(keys)) != len(keys):
        raise ConfigError("--param: a key is given twice", key="param")
    total = 1
    for _, values in params:
        total *= len(values)
    if sample is None and total > MAX_COMBINATIONS:
        raise ConfigError(
            f"{total} combinations are more than {MAX_COMBINATIONS}: sample them (--random N)",
            key="param",
        )
    if sample is not None and sample < total:
        chosen = sorted(random.Random(seed).sample(range(total), sample))
        sizes = [len(values) for _, values in params]
        out = []
        for number in chosen:
            picked: Params = {}
            for (key, values), size in zip(reversed(params), reversed(sizes), strict=True):
                number, at = divmod(number, size)
                picked[key] = values[at]
            out.append({key: picked[key] for key in keys})
        return out
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(values for _, values in params))
    ]


@dataclass(frozen=True, order=True)
class Period:
    """From ``start`` (inclusive) to ``end`` (exclusive); ``None``: open-ended."""

    start: dt.date | None
    end: dt.date | None

    def label(self) -> str:
        return f"{self.start or '…'}:{self.end or '…'}"


def parse_period(text: str) -> Period:
    """``2022-01-01:2023-01-01`` (either side may be empty)."""
    left, sep, right = text.partition(":")
    if not sep:
        raise ConfigError(f"--period {text!r}: write START:END (dates, either may be empty)")
    try:
        start = dt.date.fromisoformat(left) if left.strip() else None
        end = dt.date.fromisoformat(right) if right.strip() else None
    except ValueError:
        raise ConfigError(f"--period {text!r}: dates are YYYY-MM-DD", key="period") from None
    if start and end and end <= start:
        raise ConfigError(f"--period {text!r}: the end must be after the start", key="period")
    return Period(start, end)


_SPAN = re.compile(r"^(\d+)([dwmy])$")


def _add(day: dt.date, span: str) -> dt.date:
    match = _SPAN.match(span)
    if match is None:
        raise ConfigError(f"{span!r} is no span: write 30d, 8w, 6m or 2y", key="walk_forward")
    count, unit = int(match[1]), match[2]
    if unit == "d":
        return day + dt.timedelta(days=count)
    if unit == "w":
        return day + dt.timedelta(weeks=count)
    months = count * (12 if unit == "y" else 1)
    years, month = divmod(day.month - 1 + months, 12)
    year = day.year + years
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class Window:
    """One walk-forward step: parameters are chosen on ``train`` and traded on ``test``."""

    number: int
    train: Period
    test: Period


def parse_walk_forward(text: str) -> dict[str, str]:
    """``train=2y,test=6m,step=6m`` (step defaults to test)."""
    parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    unknown = set(parts) - {"train", "test", "step"}
    if unknown or not {"train", "test"} <= set(parts):
        raise ConfigError(
            f"--walk-forward {text!r}: write train=2y,test=6m[,step=6m]", key="walk_forward"
        )
    for name, span in parts.items():
        if _add(dt.date(2000, 1, 1), span) == dt.date(2000, 1, 1):  # checks it, too
            raise ConfigError(
                f"--walk-forward {name}={span}: a span must be longer than nothing",
                key="walk_forward",
            )
    parts.setdefault("step", parts["test"])
    return parts


def walk_forward_windows(first: dt.date, last: dt.date, spans: dict[str, str]) -> list[Window]:
    """The windows from ``first`` to ``last`` (the data's dates): each test period
    starts where its training period ends, and the next window starts a step on.
    Only windows whose test period ends by ``last`` (plus a day) are made.

    :raises ConfigError: the data is too short for one window.
    """
    windows: list[Window] = []
    start = first
    if _add(start, spans["step"]) <= start or _add(start, spans["test"]) <= start:
        raise ConfigError("a walk-forward's test and step must be longer than nothing")
    while True:
        train_end = _add(start, spans["train"])
        test_end = _add(train_end, spans["test"])
        if test_end > last + dt.timedelta(days=1):
            break
        windows.append(
            Window(len(windows) + 1, Period(start, train_end), Period(train_end, test_end))
        )
        start = _add(start, spans["step"])
    if not windows:
        raise ConfigError(
            f"the data runs from {first} to {last}: too short for one window of "
            f"train={spans['train']} and test={spans['test']}",
            key="walk_forward",
        )
    return windows
