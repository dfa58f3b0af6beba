"""``tradepipe snapshot`` through CliRunner: fake brokers, the demo fallback, schedules."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from tradepipe import (
    AccountSummary,
    Broker,
    BrokerAuthError,
    BrokerStatus,
    BrokerUnavailableError,
    ComponentSettings,
    ConfigError,
    Position,
    Quote,
    hookimpl,
)
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.cli.lazy import LazyCommand
from tradepipe.plugins.snapshot import cli as snapshot_cli
from tradepipe.plugins.snapshot import files as snapshot_module
from tradepipe.testing import test_host

ACCOUNT = "U1234567"
MASKED = "U***4567"
SECRET = "hunter2-correct-horse"
TOKEN_VALUE = "lst-0123456789abcdef"
T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)
NY = ZoneInfo("America/New_York")
FILES = ["portfolio.json", "market-data.json", "scanner-results.json", "token-status.json"]
ENVELOPE = {"schema_version", "generated_at", "broker", "account", "demo"}


class FakeBroker(Broker):
    """Answers from constants, and records what it was asked."""

    name = "fake"
    description = "answers from constants (tests)"

    class Settings(ComponentSettings):
        connected: bool = True
        authenticated: bool = True
        paper: bool = True
        fail_connect: Literal["", "unavailable", "credentials"] = ""
        fail_quotes: bool = False
        #: A secret by its name: it must never reach a snapshot file.
        password: str = ""
        #: Something a careless broker might repeat back (to prove scrubbing).
        echo: str = ""

    settings: Settings
    calls: ClassVar[list[Any]] = []

    def connect(self) -> BrokerStatus:
        self.calls.append("connect")
        if self.settings.fail_connect == "credentials":
            raise BrokerAuthError("IBKR refused the consumer key", reason="credentials")
        if self.settings.fail_connect:
            raise BrokerUnavailableError("gateway at https://localhost:5000 refused the connection")
        return self.status()

    def disconnect(self) -> None:
        self.calls.append("disconnect")

    def status(self) -> BrokerStatus:
        s = self.settings
        return BrokerStatus(
            broker=self.name,
            connected=s.connected,
            authenticated=s.authenticated,
            account_id=ACCOUNT,
            is_paper=s.paper,
            message="" if s.connected and s.authenticated else "log in at the gateway",
        )

    def account(self) -> AccountSummary:
        self.calls.append("account")
        return AccountSummary(
            account_id=ACCOUNT,
            cash=Decimal("1234.50"),
            equity=Decimal("2000"),
            buying_power=Decimal("2469.00"),
            ts=T0,
        )

    def positions(self) -> list[Position]:
        self.calls.append("positions")
        return [
            Position(
                symbol="AAPL",
                quantity=Decimal(10),
                avg_cost=Decimal(150),
                mark_price=Decimal("155.5"),
            )
        ]

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        self.calls.append(("quotes", list(symbols)))
        if self.settings.fail_quotes:
            raise BrokerUnavailableError(f"market data for {ACCOUNT} timed out")
        return [Quote(symbol="AAPL", ts=T0, bid=Decimal("155.4"), ask=Decimal("155.6"))]

    def scan(self, **params: Any) -> list[dict[str, Any]]:
        self.calls.append(("scan", params))
        return [
            {"rank": 1, "symbol": "AAPL", "name": "Apple </script><b>", "price": Decimal("155.50")},
            {"rank": 2, "symbol": "MSFT", "name": self.settings.echo, "price": None},
        ]


class BareBroker(FakeBroker):
    """Offers no market data and no scanner."""

    name = "bare"
    quotes = Broker.quotes  # type: ignore[assignment]
    scan = Broker.scan  # type: ignore[assignment]


class TokenBroker(FakeBroker):
    """Knows its token, and says too much about it."""

    name = "tokened"

    def token_status(self) -> dict[str, Any]:
        return {
            "method": "oauth1",
            "valid": True,
            "expires_at": dt.datetime(2026, 3, 3, 14, 30, tzinfo=dt.UTC),
            "last_refresh": "2026-03-02T14:30:00+00:00",
            "live_session_token": TOKEN_VALUE,
            "access_token_secret": SECRET,
        }


class NeedsHostBroker(FakeBroker):
    """A broker with a required key: absent, it is simply not set up."""

    name = "needs_host"

    class Settings(FakeBroker.Settings):
        host: str


class KeyedBroker(FakeBroker):
    """Refuses to start without its API key, as the OAuth adapter does."""

    name = "keyed"

    class Settings(FakeBroker.Settings):
        api_key: str = ""
        region: str = "us"

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        if not self.settings.api_key or self.settings.region != "us":
            raise ConfigError("[brokers.keyed] needs api_key and region us", key="brokers.keyed")


class FakeBrokers:
    __name__ = "fake_brokers"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        for cls in (FakeBroker, BareBroker, TokenBroker, NeedsHostBroker, KeyedBroker):
            register(cls)


class FakeTime:
    """The command's clock and sleep: sleeping moves the clock; Ctrl-C at ``stop``."""

    def __init__(self, start: dt.datetime, stop: dt.datetime | None = None) -> None:
        self.now_ = start
        self.stop = stop
        self.sleeps: list[float] = []

    def now(self) -> dt.datetime:
        return self.now_

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ += dt.timedelta(seconds=seconds)
        if self.stop is not None and self.now_ >= self.stop:
            raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    FakeBroker.calls = []
    write_settings(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime(T0)
    monkeypatch.setattr(snapshot_cli, "clock", fake)
    monkeypatch.setattr(snapshot_cli, "sleep", fake.sleep)
    return fake


def write_settings(
    where: Path,
    broker: str = "fake",
    snapshot: dict[str, Any] | None = None,
    **tables: dict[str, Any],
) -> None:
    """settings.toml with ``[run] broker`` and any other tables (``brokers.fake`` …)."""
    all_tables = {"run": {"broker": broker}, "snapshot": snapshot or {}, **tables}
    lines = []
    for table, values in all_tables.items():
        lines.append(f"[default.{table}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    (where / "settings.toml").write_text("\n".join(lines) + "\n")


def invoke(*args: str, preload: bool = True) -> Result:
    app = AppContext(_host=test_host(FakeBrokers()))
    if preload:
        # As in a real run, where finding a plugin's command loads the settings first.
        assert app.settings is not None
    return CliRunner().invoke(cli, ["snapshot", *args], obj=app, catch_exceptions=False)


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def read(where: Path, name: str) -> Any:
    return json.loads((where / name).read_text())


def every_file_text(where: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(where.rglob("*")) if p.is_file())


# -- one snapshot ---------------------------------------------------------------------


def test_one_snapshot_writes_the_four_files(workdir: Path) -> None:
    result = ok("--out", "site/data")
    out = workdir / "site" / "data"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    for name in FILES:
        doc = read(out, name)
        assert set(doc) >= ENVELOPE, name
        assert doc["schema_version"] == 1
        assert doc["generated_at"] == "2026-03-02T14:30:00+00:00"
        assert (doc["broker"], doc["account"], doc["demo"]) == ("fake", MASKED, False)
        assert "demo_reason" not in doc
    portfolio = read(out, "portfolio.json")
    assert portfolio["summary"]["cash"] == "1234.50"  # money as strings, in cents
    assert portfolio["summary"]["account_id"] == MASKED
    assert portfolio["positions"] == [
        {
            "symbol": "AAPL",
            "quantity": "10",
            "avg_cost": "150.00",
            "multiplier": "1",
            "mark_price": "155.50",
            "realized_pnl": "0.00",
            "market_value": "1555.00",
            "unrealized_pnl": "55.00",
        }
    ]
    market = read(out, "market-data.json")
    assert market["watchlist"] == ["AAPL", "MSFT", "SPY"]
    assert [(q["symbol"], q["bid"], q["ask"]) for q in market["quotes"]] == [
        ("AAPL", "155.4", "155.6")
    ]
    assert market["missing"] == ["MSFT", "SPY"]
    scanner = read(out, "scanner-results.json")
    assert scanner["scanner"] == {
        "type": "TOP_PERC_GAIN",
        "location": "STK.US.MAJOR",
        "instrument": "STK",
        "filters": {},
    }
    assert [r["symbol"] for r in scanner["results"]] == ["AAPL", "MSFT"]
    assert scanner["results"][0]["price"] == "155.50"
    token = read(out, "token-status.json")
    assert {k: v for k, v in token.items() if k not in ENVELOPE} == {
        "method": "fake",
        "valid": True,
    }
    assert "wrote portfolio.json, market-data.json, scanner-results.json, token-status.json" in (
        result.stdout
    )
    assert f"to site/data (fake, {MASKED})" in result.stdout
    names = [c for c in FakeBroker.calls if isinstance(c, str)]
    assert names[0] == "connect" and names[-1] == "disconnect"


def test_settings_choose_the_watchlist_scanner_and_directory(workdir: Path) -> None:
    write_settings(workdir, snapshot={"watchlist": ["msft", "aapl"], "out": "snaps"})
    (workdir / "settings.toml").write_text(
        (workdir / "settings.toml").read_text()
        + '[default.snapshot.scanner]\ntype = "HOT_BY_VOLUME"\nfilters = ["priceAbove=5"]\n'
    )
    ok()
    assert read(workdir / "snaps", "market-data.json")["watchlist"] == ["MSFT", "AAPL"]
    assert ("quotes", ["MSFT", "AAPL"]) in FakeBroker.calls
    scan = next(c for c in FakeBroker.calls if c[0] == "scan")
    assert scan[1]["type"] == "HOT_BY_VOLUME" and scan[1]["filters"] == {"priceAbove": "5"}


def test_json_output_for_programs(workdir: Path) -> None:
    lines = [json.loads(line) for line in ok("--json").stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "written" and lines[0]["account"] == MASKED
    assert lines[0]["written"] == FILES and lines[0]["demo"] is False


def test_a_broker_without_scanner_or_quotes_writes_empty_lists_with_notes(workdir: Path) -> None:
    ok("--broker", "bare")
    market = read(workdir / "snapshots", "market-data.json")
    assert market["quotes"] == [] and market["note"] == "bare has no quotes"
    scanner = read(workdir / "snapshots", "scanner-results.json")
    assert scanner["results"] == [] and scanner["note"] == "bare has no scanner"


def test_token_status_keeps_only_what_is_not_secret(workdir: Path) -> None:
    ok("--broker", "tokened")
    token = read(workdir / "snapshots", "token-status.json")
    assert {k: v for k, v in token.items() if k not in ENVELOPE} == {
        "method": "oauth1",
        "valid": True,
        "expires_at": "2026-03-03T14:30:00+00:00",
        "last_refresh": "2026-03-02T14:30:00+00:00",
    }
    assert TOKEN_VALUE not in every_file_text(workdir / "snapshots")


def test_no_account_number_or_secret_in_any_file(workdir: Path) -> None:
    # The broker repeats the secret and the account number back in a scanner row.
    write_settings(
        workdir, **{"brokers.fake": {"password": SECRET, "echo": f"{SECRET} for {ACCOUNT}"}}
    )
    result = ok("--html")
    text = every_file_text(workdir / "snapshots")
    assert "index.html" in result.stdout
    assert ACCOUNT not in text and SECRET not in text
    assert ACCOUNT not in result.output and SECRET not in result.output
    row = read(workdir / "snapshots", "scanner-results.json")["results"][1]
    assert row["name"] == f"[REDACTED] for {MASKED}"


def test_the_html_page_is_self_contained(workdir: Path) -> None:
    ok("--html")
    page = (workdir / "snapshots" / "index.html").read_text()
    # Nothing is loaded from anywhere: no file, no server, no CDN.
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,"]
    assert "https://" not in page
    assert 'data-mode="snapshot"' in page
    # Data from the broker cannot close the script element it is embedded in.
    assert "Apple \\u003c/script>\\u003cb>" in page
    embedded = page.split('type="application/json">', 1)[1].split("</script>", 1)[0]
    data = json.loads(embedded)
    assert sorted(data) == sorted(FILES)
    assert data["portfolio.json"]["summary"]["cash"] == "1234.50"
    assert data["scanner-results.json"]["results"][0]["name"] == "Apple </script><b>"


# -- permissions ------------------------------------------------------------------------


def modes_under(top: Path) -> dict[str, int]:
    return {str(p.relative_to(top)): stat.S_IMODE(p.stat().st_mode) for p in sorted(top.rglob("*"))}


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Sets the process umask for one test: the modes must not depend on it."""
    old = os.umask(0o022)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(old)


def test_files_and_folders_are_private_by_default(
    workdir: Path, umask: Callable[[int], None]
) -> None:
    umask(0o022)  # a usual umask would leave them readable by everyone
    ok("--out", "site/data", "--html")
    assert modes_under(workdir / "site") == {
        "data": 0o700,
        **{f"data/{name}": 0o600 for name in [*FILES, "index.html"]},
    }
    assert stat.S_IMODE((workdir / "site").stat().st_mode) == 0o700


def test_published_files_and_folders_are_readable_by_everyone(
    workdir: Path, umask: Callable[[int], None]
) -> None:
    umask(0o077)  # publishing is asked for: a strict umask does not undo it
    write_settings(workdir, snapshot={"publish": True})
    ok("--out", "site/data", "--html")
    assert modes_under(workdir / "site") == {
        "data": 0o755,
        **{f"data/{name}": 0o644 for name in [*FILES, "index.html"]},
    }
    assert stat.S_IMODE((workdir / "site").stat().st_mode) == 0o755
    # Published no more: the next files are private again.
    write_settings(workdir)
    ok("--out", "site/data")
    assert {stat.S_IMODE((workdir / "site/data" / n).stat().st_mode) for n in FILES} == {0o600}


def test_a_folder_that_exists_keeps_its_mode(workdir: Path) -> None:
    (workdir / "mine").mkdir(mode=0o750)
    (workdir / "mine").chmod(0o750)
    ok("--out", "mine")
    found = modes_under(workdir)
    assert (found["mine"], found["mine/portfolio.json"]) == (0o750, 0o600)


# -- writing atomically -----------------------------------------------------------------


def test_a_failed_replace_leaves_the_previous_file_intact(
    workdir: Path, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok()
    out = workdir / "snapshots"
    before = {name: (out / name).read_text() for name in FILES}
    clock.now_ += dt.timedelta(minutes=5)

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot_module.os, "replace", crash)
    result = invoke()
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot write {Path('snapshots') / 'portfolio.json'}: No space left on device"
    )
    assert {name: (out / name).read_text() for name in FILES} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary file left
    assert FakeBroker.calls[-1] == "disconnect"


def test_a_failed_read_keeps_that_file_and_writes_the_others(
    workdir: Path, clock: FakeTime
) -> None:
    ok()
    out = workdir / "snapshots"
    old_market = (out / "market-data.json").read_text()
    clock.now_ += dt.timedelta(minutes=5)
    write_settings(workdir, **{"brokers.fake": {"fail_quotes": True}})
    result = invoke()
    assert result.exit_code == 1
    assert (out / "market-data.json").read_text() == old_market
    assert read(out, "portfolio.json")["generated_at"] == "2026-03-02T14:35:00+00:00"
    assert f"market-data.json: market data for {MASKED} timed out" in result.stderr
    assert ACCOUNT not in result.output
    assert result.stderr.splitlines()[-1].startswith("error: 1 of the files could not be read")


# -- the demo fallback -------------------------------------------------------------------


def demo_files(where: Path) -> dict[str, Any]:
    docs = {name: read(where, name) for name in FILES}
    for doc in docs.values():
        assert (doc["broker"], doc["account"], doc["demo"]) == ("paper", "DEMO", True)
        assert doc["demo_reason"]
    return docs


def test_an_unreachable_broker_falls_back_to_demo_data(workdir: Path) -> None:
    # A live account that cannot be reached: the demo must not touch it again.
    write_settings(workdir, **{"brokers.fake": {"fail_connect": "unavailable", "paper": False}})
    result = ok("--out", "site/data")
    docs = demo_files(workdir / "site" / "data")
    reason = "gateway at https://localhost:5000 refused the connection"
    assert docs["portfolio.json"]["demo_reason"] == reason
    assert f"demo data from the paper simulator: {reason}" in result.stdout
    assert "(paper, DEMO, demo data)" in result.stdout
    # The configured broker was asked to connect, released, and never read.
    assert FakeBroker.calls == ["connect", "disconnect"]
    # Seeded: quotes for the whole watchlist, and positions bought along the way.
    market = docs["market-data.json"]
    assert [q["symbol"] for q in market["quotes"]] == ["AAPL", "MSFT", "SPY"]
    assert market["missing"] == []
    last_bar = dt.datetime.fromisoformat(market["quotes"][0]["ts"])
    assert dt.timedelta(0) < T0 - last_bar <= dt.timedelta(days=4)
    positions = docs["portfolio.json"]["positions"]
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("AAPL", "100"), ("MSFT", "100")]
    assert docs["scanner-results.json"]["note"] == "paper has no scanner"
    token = docs["token-status.json"]
    assert (token["method"], token["valid"]) == ("paper", True)


def test_a_logged_out_broker_falls_back_to_demo_data(workdir: Path) -> None:
    write_settings(workdir, **{"brokers.fake": {"authenticated": False}})
    ok()
    docs = demo_files(workdir / "snapshots")
    assert docs["token-status.json"]["demo_reason"] == (
        "broker 'fake' is not logged in: log in at the gateway"
    )
    assert "account" not in FakeBroker.calls


def test_missing_settings_fall_back_to_demo_data(workdir: Path) -> None:
    ok("--broker", "needs_host")
    docs = demo_files(workdir / "snapshots")
    assert docs["portfolio.json"]["demo_reason"] == (
        "broker 'needs_host' is not configured: [brokers.needs_host] lacks host"
    )


def test_absent_credentials_fall_back_to_demo_data(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unset repository secret arrives as an empty variable.
    monkeypatch.setenv("TRADEPIPE_BROKERS__KEYED__API_KEY", "")
    ok("--broker", "keyed")
    docs = demo_files(workdir / "snapshots")
    assert docs["portfolio.json"]["demo_reason"] == (
        "broker 'keyed' is not configured: no credentials in [brokers.keyed] (password, api_key)"
    )


@pytest.mark.parametrize(
    ("tables", "broker"),
    [
        ({"brokers.fake": {"connected": "maybe"}}, "fake"),  # a wrong value
        ({"brokers.keyed": {"api_key": "abcd1234", "region": "mars"}}, "keyed"),  # wrong, keyed
    ],
)
def test_wrong_settings_are_reported_not_covered_by_demo_data(
    workdir: Path, tables: dict[str, Any], broker: str
) -> None:
    write_settings(workdir, broker=broker, **tables)
    result = invoke()
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")
    assert not (workdir / "snapshots").exists()


def test_the_paper_simulator_without_an_account_file_gives_demo_data(workdir: Path) -> None:
    write_settings(workdir, broker="paper", **{"brokers.paper": {"initial_cash": 5000}})
    ok()
    docs = demo_files(workdir / "snapshots")
    assert "has no state_file" in docs["portfolio.json"]["demo_reason"]
    # The demo is built from defaults, not from [brokers.paper].
    assert docs["portfolio.json"]["summary"]["cash"] != "5000.00"


def test_the_paper_simulator_with_an_account_file_is_real(workdir: Path) -> None:
    write_settings(workdir, broker="paper", **{"brokers.paper": {"state_file": "account.json"}})
    ok()
    doc = read(workdir / "snapshots", "portfolio.json")
    assert (doc["broker"], doc["account"], doc["demo"]) == ("paper", "PAPER", False)
    assert doc["summary"]["cash"] == "100000.00"


def test_the_demo_never_uses_the_configured_paper_account(workdir: Path) -> None:
    write_settings(
        workdir,
        **{"brokers.fake": {"fail_connect": "unavailable"}},
        **{"brokers.paper": {"state_file": "account.json"}},
    )
    ok()
    demo_files(workdir / "snapshots")
    assert not (workdir / "account.json").exists()


def test_without_demo_fallback_an_unreachable_broker_exits_1(workdir: Path) -> None:
    write_settings(
        workdir,
        snapshot={"demo_fallback": False},
        **{"brokers.fake": {"fail_connect": "unavailable"}},
    )
    result = invoke()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: gateway at https://localhost:5000 refused the connection"
    ]
    assert not (workdir / "snapshots").exists()


def test_without_demo_fallback_missing_settings_exit_2(workdir: Path) -> None:
    write_settings(workdir, broker="needs_host", snapshot={"demo_fallback": False})
    result = invoke()
    assert result.exit_code == 2
    assert "[brokers.needs_host] lacks host" in result.stderr
    assert not (workdir / "snapshots").exists()


# -- schedules ---------------------------------------------------------------------------


def ny(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=NY)


def record_cycles(monkeypatch: pytest.MonkeyPatch, clock: FakeTime) -> list[dt.datetime]:
    """The times at which snapshots are written."""
    taken: list[dt.datetime] = []
    real: Callable[..., Any] = snapshot_cli.take_snapshot

    def spy(*args: Any, **kwargs: Any) -> Any:
        taken.append(clock.now())
        return real(*args, **kwargs)

    monkeypatch.setattr(snapshot_cli, "take_snapshot", spy)
    return taken


@pytest.mark.parametrize(
    ("start", "stop", "expected", "closed"),
    [
        # The day before Thanksgiving: closed at 16:00, Thanksgiving skipped.
        (
            ny(11, 25, 15, 50),
            ny(11, 27, 9, 40),
            [ny(11, 25, 15, 50), ny(11, 25, 15, 55), ny(11, 27, 9, 30), ny(11, 27, 9, 35)],
            "market closed, next open at 2026-11-27 14:30 UTC (09:30 America/New_York)",
        ),
        # The early close after it (13:00), then the weekend.
        (
            ny(11, 27, 12, 52),
            ny(11, 30, 9, 36),
            [ny(11, 27, 12, 52), ny(11, 27, 12, 57), ny(11, 30, 9, 30), ny(11, 30, 9, 35)],
            "market closed, next open at 2026-11-30 14:30 UTC (09:30 America/New_York)",
        ),
    ],
)
def test_every_writes_only_while_the_exchange_is_open(
    workdir: Path,
    clock: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    start: dt.datetime,
    stop: dt.datetime,
    expected: list[dt.datetime],
    closed: str,
) -> None:
    clock.now_, clock.stop = start.astimezone(dt.UTC), stop.astimezone(dt.UTC)
    taken = record_cycles(monkeypatch, clock)
    result = invoke("--every", "5m")
    assert result.exit_code == 130  # Ctrl-C
    assert taken == expected
    lines = result.stdout.splitlines()
    assert sum("wrote portfolio.json" in line for line in lines) == 4
    assert lines.count(closed) == 1
    assert lines[-1] == "stopped after 4 snapshot(s)"
    assert result.stderr.strip() == "interrupted"
    # One connection for the whole run, released at the end.
    assert FakeBroker.calls.count("connect") == 1 and FakeBroker.calls[-1] == "disconnect"
    portfolio = read(workdir / "snapshots", "portfolio.json")
    assert portfolio["generated_at"] == expected[-1].astimezone(dt.UTC).isoformat()


def test_always_ignores_market_hours(
    workdir: Path, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    saturday = ny(11, 28, 12, 0)
    clock.now_, clock.stop = saturday, saturday + dt.timedelta(minutes=25)
    taken = record_cycles(monkeypatch, clock)
    result = invoke("--every", "10m", "--always")
    assert result.exit_code == 130
    assert taken == [saturday + dt.timedelta(minutes=m) for m in (0, 10, 20)]
    assert "market closed" not in result.stdout


@pytest.mark.slow
def test_every_from_the_settings_and_once_to_override_it(
    workdir: Path, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_settings(workdir, snapshot={"every": "15m"})
    clock.now_, clock.stop = T0, T0 + dt.timedelta(minutes=20)
    taken = record_cycles(monkeypatch, clock)
    assert invoke().exit_code == 130
    assert taken == [T0, T0 + dt.timedelta(minutes=15)]
    taken.clear()
    ok("--once")
    assert taken == [clock.now()]


def test_a_failed_cycle_is_reported_and_the_next_one_reconnects(
    workdir: Path, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.stop = T0 + dt.timedelta(minutes=12)
    write_settings(workdir, **{"brokers.fake": {"fail_quotes": True}})
    result = invoke("--every", "5m")
    assert result.exit_code == 130
    assert result.stderr.count("not written: market-data.json") == 3
    assert FakeBroker.calls.count("connect") == 3  # a fresh connection after each failure
    assert not (workdir / "snapshots" / "market-data.json").exists()
    assert read(workdir / "snapshots", "portfolio.json")["demo"] is False


@pytest.mark.slow
def test_a_demo_schedule_switches_to_the_broker_once_it_answers(
    workdir: Path, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.stop = T0 + dt.timedelta(minutes=12)
    write_settings(workdir, **{"brokers.fake": {"fail_connect": "unavailable"}})
    original = FakeBroker.connect

    def second_try_works(self: FakeBroker) -> BrokerStatus:
        if "connect" in FakeBroker.calls:
            FakeBroker.calls.append("connect")
            return self.status()
        return original(self)

    monkeypatch.setattr(FakeBroker, "connect", second_try_works)
    taken = record_cycles(monkeypatch, clock)
    result = invoke("--every", "5m", "--json")
    assert result.exit_code == 130
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [(e["event"], e.get("broker"), e.get("demo")) for e in events]
    assert kinds == [
        ("demo", None, None),
        ("written", "paper", True),
        ("broker", "fake", None),
        ("written", "fake", False),
        ("written", "fake", False),
        ("stopped", None, None),
    ]
    assert len(taken) == 3
    assert read(workdir / "snapshots", "portfolio.json")["demo"] is False


@pytest.mark.slow
def test_if_open_writes_only_in_market_hours(workdir: Path, clock: FakeTime) -> None:
    clock.now_ = ny(11, 26, 11, 0)  # Thanksgiving
    result = ok("--if-open")
    assert result.stdout.strip() == (
        "market closed, next open at 2026-11-27 14:30 UTC (09:30 America/New_York)"
    )
    assert not (workdir / "snapshots").exists() and FakeBroker.calls == []
    clock.now_ = ny(11, 27, 11, 0)
    ok("--if-open")
    assert read(workdir / "snapshots", "portfolio.json")["generated_at"] == (
        "2026-11-27T16:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "5s"], "'5s' is too often; the shortest interval is 10s"),
        (["--every", "soon"], "'soon' is not a duration; expected e.g. 30s, 5m or 1h"),
        (["--every", "5m", "--once"], "--every keeps running"),
        (["--every", "5m", "--if-open"], "--every keeps running"),
    ],
)
def test_bad_schedules_are_usage_errors(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert FakeBroker.calls == []


@pytest.mark.slow
def test_a_bad_exchange_or_interval_in_the_settings_exits_2(workdir: Path) -> None:
    write_settings(workdir, snapshot={"exchange": "NOPE", "every": "5m"})
    result = invoke()
    assert result.exit_code == 2
    assert "[snapshot] exchange: unknown exchange 'NOPE'" in result.stderr
    write_settings(workdir, snapshot={"every": "2s"})
    result = invoke(preload=False)
    assert result.exit_code == 2
    assert "[snapshot] every = '2s'" in result.stderr
    write_settings(workdir, **{"snapshot.scanner": {"filters": ["priceAbove"]}})
    result = invoke(preload=False)
    assert result.exit_code == 2
    assert "expected CODE=VALUE items such as 'priceAbove=5'" in result.stderr


def test_the_command_is_registered_by_its_plugin() -> None:
    command = test_host().commands()["snapshot"]
    # Listed without importing it, it stands for the real command.
    assert isinstance(command, LazyCommand)
    assert command.load() is snapshot_cli.snapshot


def test_the_installed_command_end_to_end(workdir: Path) -> None:
    # No test host: the command and the broker come through the entry points.
    result = CliRunner().invoke(cli, ["snapshot", "--broker", "paper", "--html"])
    assert result.exit_code == 0, result.output
    assert "demo data from the paper simulator" in result.stdout
    assert sorted(p.name for p in (workdir / "snapshots").iterdir()) == sorted(
        [*FILES, "index.html"]
    )


def test_credentials_the_broker_refuses_are_an_error_not_demo_data(workdir: Path) -> None:
    # A rotated or revoked secret must turn a scheduled job red, not green with demo data.
    write_settings(workdir, **{"brokers.fake": {"fail_connect": "credentials"}})
    result = invoke()
    assert result.exit_code == 1, result.output
    assert "refused the consumer key" in result.stderr
    assert not (workdir / "snapshots").exists()


def test_oauth2_settings_with_credentials_are_not_taken_for_an_unset_broker() -> None:
    from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker
    from tradepipe.plugins.snapshot.source import unconfigured
    from tradepipe.testing import settings

    oauth2 = {"auth": "oauth2", "client_key_file": "/nonexistent/key.pem", "client_id": "c1"}
    app = settings(brokers={"web_api": oauth2})
    assert unconfigured(WebApiOAuthBroker, app, "web_api") is None  # wrong, not absent
    empty = settings(brokers={"web_api": {"auth": "oauth2"}})
    assert "no credentials" in (unconfigured(WebApiOAuthBroker, empty, "web_api") or "")
