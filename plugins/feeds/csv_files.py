"""Bars from CSV files (the format is :mod:`tradepipe.bar_csv`).

Several files (or a directory of them) are merged into one time-ordered stream.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from tradepipe import ComponentSettings, Feed, FeedError, hookimpl
from tradepipe.bar_csv import read_csv
from tradepipe.market import BarColumns


class CsvFeed(Feed):
    """Historical bars from one or more CSV files."""

    name = "csv"
    description = "bars from CSV files (timestamp,open,high,low,close,volume[,symbol])"

    class Settings(ComponentSettings):
        #: Files or directories (every ``*.csv`` inside) to read.
        paths: list[str] = Field(min_length=1)
        #: Symbol for files without a symbol column (default: the file name).
        symbol: str | None = None
        #: Timezone for timestamps written without an offset (IANA name).
        timezone: str | None = None

    settings: Settings

    def files(self) -> list[Path]:
        found: list[Path] = []
        for entry in self.settings.paths:
            path = Path(entry).expanduser()
            if path.is_dir():
                found.extend(sorted(path.glob("*.csv")))
            else:
                found.append(path)
        if not found:
            raise FeedError(f"no CSV files in {', '.join(self.settings.paths)}")
        return found

    def load(self) -> None:
        tz = ZoneInfo(self.settings.timezone) if self.settings.timezone else None
        per_file = [read_csv(path, self.settings.symbol, tz) for path in self.files()]
        if len(per_file) == 1:
            self._bars = per_file[0]
        else:
            self._bars = BarColumns(heapq.merge(*per_file, key=lambda b: (b.ts, b.symbol)))

    def symbols(self) -> list[str]:
        if self._bars is None:
            self.load()
        assert self._bars is not None
        return sorted({bar.symbol for bar in self._bars})


@hookimpl
def tradepipe_register_feeds(register: Any) -> None:
    register(CsvFeed)
