"""The CSV and synthetic feeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tradepipe import FeedError
from tradepipe.market import check_bar
from tradepipe.plugins.feeds.csv_files import CsvFeed
from tradepipe.plugins.feeds.synthetic import SyntheticFeed, session_times

HEADER = "timestamp,open,high,low,close,volume\n"


def write(path: Path, body: str, header: str = HEADER) -> Path:
    path.write_text(header + body)
    return path


def load(paths: list[Path], **kw: object) -> list:
    feed = CsvFeed(CsvFeed.Settings(paths=[str(p) for p in paths], **kw))
    feed.load()
    return list(feed.bars())


def test_reads_bars_with_offsets_into_utc(tmp_path: Path) -> None:
    f = write(
        tmp_path / "aapl.csv",
        "2026-03-02T09:30:00-05:00,10,11,9.5,10.5,100\n2026-03-02T14:31:00Z,10.5,10.7,10.4,10.6,50\n",
    )
    bars = load([f])
    assert [b.symbol for b in bars] == ["AAPL", "AAPL"]  # from the file name
    assert bars[0].ts == dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
    assert bars[0].ts.tzinfo is dt.UTC
    assert (bars[1].open, bars[1].high, bars[1].low, bars[1].close, bars[1].volume) == (
        10.5,
        10.7,
        10.4,
        10.6,
        50.0,
    )


def test_symbol_column_and_setting(tmp_path: Path) -> None:
    f = write(
        tmp_path / "x.csv",
        "2026-03-02T14:30:00Z,1,1,1,1,0,msft\n",
        header="timestamp,open,high,low,close,volume,symbol\n",
    )
    assert load([f])[0].symbol == "MSFT"
    g = write(tmp_path / "y.csv", "2026-03-02T14:30:00Z,1,1,1,1,0\n")
    assert load([g], symbol="spy")[0].symbol == "SPY"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2026-03-02T14:30:00,1,1,1,1,0", "no UTC offset"),
        ("not-a-time,1,1,1,1,0", "Invalid isoformat"),
        ("2026-03-02T14:30:00Z,1,0.5,0.9,1,0", "high/low do not bracket"),
        ("2026-03-02T14:30:00Z,-1,1,-1,1,0", "finite and positive"),
        ("2026-03-02T14:30:00Z,1,1,1,1,-5", "volume"),
        ("2026-03-02T14:30:00Z,1,1,1,abc,0", "could not convert"),
        ("2026-03-02T14:30:00Z,1,1,1", "list index out of range"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    f = write(tmp_path / "bad.csv", "2026-03-02T14:29:00Z,1,1,1,1,0\n" + row + "\n")
    with pytest.raises(FeedError) as info:
        load([f])
    assert f"{f}, line 3" in str(info.value)
    assert message in str(info.value)


def test_time_must_increase_per_symbol(tmp_path: Path) -> None:
    row = "2026-03-02T14:31:00Z,1,1,1,1,0\n"
    f = write(tmp_path / "a.csv", row + row)
    with pytest.raises(FeedError, match="line 3: timestamp .* is not after"):
        load([f])


def test_naive_times_need_a_timezone(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "2026-03-02 09:30:00,1,1,1,1,0\n")
    bars = load([f], timezone="America/New_York")
    assert bars[0].ts == dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


def test_missing_columns_and_files(tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "2026-03-02T14:30:00Z,1,1\n", header="timestamp,open,close\n")
    with pytest.raises(FeedError, match="missing column.*high, low, volume"):
        load([f])
    with pytest.raises(FeedError, match="cannot read"):
        load([tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeedError, match="no CSV files"):
        load([tmp_path / "empty"])
    with pytest.raises(FeedError, match="is empty"):
        load([write(tmp_path / "e.csv", "", header="")])


def test_directory_of_files_merges_in_time_order(tmp_path: Path) -> None:
    write(tmp_path / "aaa.csv", "2026-03-02T14:30:00Z,1,1,1,1,0\n2026-03-02T14:32:00Z,1,1,1,1,0\n")
    write(tmp_path / "bbb.csv", "2026-03-02T14:31:00Z,2,2,2,2,0\n2026-03-02T14:32:00Z,2,2,2,2,0\n")
    feed = CsvFeed(CsvFeed.Settings(paths=[str(tmp_path)]))
    feed.load()
    order = [(b.ts.minute, b.symbol) for b in feed.bars()]
    assert order == [(30, "AAA"), (31, "BBB"), (32, "AAA"), (32, "BBB")]
    assert feed.symbols() == ["AAA", "BBB"]
    assert feed.total() == 4


def test_synthetic_is_deterministic_and_plausible() -> None:
    settings = SyntheticFeed.Settings(symbols=["A", "B"], bars=300, interval="5m", seed=3)
    one, two = SyntheticFeed(settings), SyntheticFeed(settings)
    one.load()
    two.load()
    bars = list(one.bars())
    assert bars == list(two.bars())
    assert len(bars) == 600 and one.total() == 600
    assert [b.symbol for b in bars[:4]] == ["A", "B", "A", "B"]
    assert all(check_bar(b) is None for b in bars)
    times = [b.ts for b in bars if b.symbol == "A"]
    assert times == sorted(times) and len(set(times)) == 300
    other = SyntheticFeed(settings.model_copy(update={"seed": 4}))
    other.load()
    assert [b.close for b in other.bars()] != [b.close for b in bars]


def test_session_times_skip_weekends_and_stay_in_hours() -> None:
    friday = dt.date(2026, 3, 6)
    times = list(session_times(friday, "1h", 12))
    ny = [t.astimezone(ZoneInfo("America/New_York")) for t in times]  # DST starts 2026-03-08
    assert {t.weekday() for t in ny} == {4, 0}  # Friday, then Monday
    assert all(dt.time(9, 30) <= t.time() < dt.time(16, 0) for t in ny)
    daily = list(session_times(friday, "1d", 3))
    assert [t.date().isoformat() for t in daily] == ["2026-03-06", "2026-03-09", "2026-03-10"]


@pytest.mark.slow
def test_one_minute_bars_stay_plausible_over_a_long_run() -> None:
    feed = SyntheticFeed(SyntheticFeed.Settings(symbols=["X"], bars=100_000, interval="1m"))
    feed.load()
    closes = [b.close for b in feed.bars()]
    assert min(closes) > 10 and max(closes) < 1000
