"""The bar CSV format: what the ``csv`` feed reads and ``broker history --csv`` writes.

Columns (a header row is required, extra columns are ignored):

``timestamp``
    ISO-8601 bar start time with a UTC offset (``2026-03-02T14:30:00Z`` or
    ``…+00:00``). Times without an offset are refused unless ``timezone`` says
    what they mean.
``open``, ``high``, ``low``, ``close``
    prices, positive, with high/low bracketing open and close.
``volume``
    zero or more.
``symbol``
    optional; without it the file's symbol is ``symbol`` from the settings, or
    the file name without ``.csv``.

Every row is checked; the first bad one stops loading with its file and line.
Within a symbol, timestamps must increase. Several files (or a directory of
them) are merged into one time-ordered stream.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from tradepipe.errors import FeedError
from tradepipe.market import Bar, BarColumns, check_bar

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")


def write_csv(path: Path, bars: Iterable[Bar]) -> int:
    """Write ``bars`` as :func:`read_csv` reads them, with a symbol column; return how many.

    Prices go through ``repr`` so every float reads back exactly.

    :raises OSError: the file cannot be written.
    """
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow((*REQUIRED, "symbol"))
        for bar in bars:
            writer.writerow(
                (
                    bar.ts.isoformat(),
                    repr(bar.open),
                    repr(bar.high),
                    repr(bar.low),
                    repr(bar.close),
                    repr(bar.volume),
                    bar.symbol,
                )
            )
            count += 1
    return count


def read_csv(path: Path, symbol: str | None = None, tz: dt.tzinfo | None = None) -> BarColumns:
    """Read and check one CSV file of bars (kept as columns: see :class:`BarColumns`).

    :raises FeedError: the file is missing, lacks a column, or has a bad row.
    """
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise FeedError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise FeedError(f"{path} is empty", path=str(path)) from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise FeedError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(REQUIRED)} (and optionally symbol)",
                path=str(path),
            )
        i_ts, i_o, i_h, i_l, i_c, i_v = (header.index(c) for c in REQUIRED)
        i_sym = header.index("symbol") if "symbol" in header else None
        default_symbol = (symbol or path.stem).upper()
        parse = dt.datetime.fromisoformat
        bars = BarColumns()
        last: dict[str, dt.datetime] = {}
        line = 1
        try:
            for line, row in enumerate(reader, start=2):  # noqa: B007 (used in the error)
                if not row:
                    continue
                ts = parse(row[i_ts])
                if ts.tzinfo is None:
                    if tz is None:
                        raise ValueError(
                            "timestamp has no UTC offset (add one, or set [feeds.csv] timezone)"
                        )
                    ts = ts.replace(tzinfo=tz)
                ts = ts.astimezone(dt.UTC)
                sym = row[i_sym].strip().upper() if i_sym is not None else default_symbol
                bar = Bar(
                    sym,
                    ts,
                    float(row[i_o]),
                    float(row[i_h]),
                    float(row[i_l]),
                    float(row[i_c]),
                    float(row[i_v]),
                )
                problem = check_bar(bar)
                if problem:
                    raise ValueError(problem)
                previous = last.get(sym)
                if previous is not None and ts <= previous:
                    raise ValueError(
                        f"timestamp {ts.isoformat()} is not after {previous.isoformat()}"
                    )
                last[sym] = ts
                bars.append(bar)
        except (ValueError, IndexError) as exc:
            raise FeedError(f"{path}, line {line}: {exc}", path=str(path), line=line) from exc
    return bars
