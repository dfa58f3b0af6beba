"""``tradepipe broker …`` against a fake broker and the paper simulator, through CliRunner."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from tradepipe import (
    AccountSummary,
    Bar,
    Broker,
    BrokerRejectedError,
    BrokerStatus,
    ComponentSettings,
    Fill,
    OrderReport,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    hookimpl,
)
from tradepipe.bar_csv import read_csv
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.feeds.csv_files import CsvFeed
from tradepipe.services import broker as services_broker
from tradepipe.testing import bar, test_host
from tradepipe.testing import write_settings as settings_file

REPO_SETTINGS = Path(__file__).resolve().parents[2] / "settings.toml"
ACCOUNT = "U1234567"
MASKED = "U***4567"
T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)

POSITIONS = [
    Position(
        symbol="AAPL", quantity=Decimal(10), avg_cost=Decimal(150), mark_price=Decimal("155.5")
    ),
    Position(symbol="MSFT", quantity=Decimal(-5), avg_cost=Decimal(400)),
]
ORDERS = [
    OrderReport(
        client_order_id="tp-1",
        broker_order_id="B1",
        symbol="AAPL",
        side="buy",
        quantity=Decimal(10),
        filled_quantity=Decimal(4),
        status=OrderStatus.PARTIALLY_FILLED,
        order_type="limit",
        limit_price=Decimal("149.50"),
    )
]
FILLS = [
    Fill(
        execution_id=f"E{day}",
        client_order_id="tp-1",
        decision_id="d-1",
        symbol="AAPL",
        side="buy",
        quantity=Decimal(2),
        price=Decimal("149.50"),
        commission=Decimal("1.00"),
        ts=T0 + dt.timedelta(days=day),
    )
    for day in (0, 1)
]
QUOTES = {
    "AAPL": Quote(symbol="AAPL", ts=T0, bid=Decimal("155.4"), ask=Decimal("155.6")),
    "MSFT": Quote(symbol="MSFT", ts=T0, last=Decimal("401.25"), volume=Decimal(1200)),
}
# Awkward floats on purpose: the CSV must give back exactly these.
BARS = [bar("AAPL", day, open=100 + day / 3, close=100.1 + day / 7) for day in range(5)]


class FakeBroker(Broker):
    """A broker that answers every read with the data above and records what it was asked."""

    name = "fake"
    description = "answers from constants (tests)"

    class Settings(ComponentSettings):
        connected: bool = True
        authenticated: bool = True
        paper: bool = True
        message: str = f"logged in to {ACCOUNT}"
        #: Status reports of an order before the cancel shows as final.
        confirm_after: int = 2
        cancel_outcome: OrderStatus = OrderStatus.CANCELED

    settings: Settings
    calls: ClassVar[list[Any]] = []

    def connect(self) -> BrokerStatus:
        self.calls.append("connect")
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
            message=s.message,
        )

    def account(self) -> AccountSummary:
        return AccountSummary(
            account_id=ACCOUNT,
            cash=Decimal("1234.50"),
            equity=Decimal("2000"),
            buying_power=Decimal("2469.00"),
            ts=T0,
        )

    def positions(self) -> list[Position]:
        return list(POSITIONS)

    def open_orders(self) -> list[OrderReport]:
        return list(ORDERS)

    def order(self, client_order_id: str) -> OrderReport | None:
        self.calls.append(("order", client_order_id))
        if client_order_id != "tp-1":
            return None
        asked = sum(1 for c in self.calls if c == ("order", client_order_id))
        final = asked >= self.settings.confirm_after
        status = self.settings.cancel_outcome if final else OrderStatus.PENDING_CANCEL
        return ORDERS[0].model_copy(update={"status": status})

    def cancel(self, client_order_id: str) -> OrderUpdate:
        self.calls.append(("cancel", client_order_id))
        if client_order_id != "tp-1":
            raise BrokerRejectedError(f"no order {client_order_id}", broker=self.name)
        return OrderUpdate(
            client_order_id=client_order_id, status=OrderStatus.PENDING_CANCEL, ts=T0
        )

    def fills(self, since: dt.datetime | None = None) -> list[Fill]:
        self.calls.append(("fills", since))
        return [f for f in FILLS if since is None or f.ts >= since]

    def quotes(self, symbols: Sequence[str]) -> list[Quote]:
        self.calls.append(("quotes", list(symbols)))
        return [QUOTES[s] for s in symbols if s in QUOTES]

    def history(self, symbol: str, *, bars: int = 100, bar_size: str = "1d") -> list[Bar]:
        self.calls.append(("history", symbol, bars, bar_size))
        return [b for b in BARS if b.symbol == symbol][-bars:]

    def scan(self, **params: Any) -> list[dict[str, Any]]:
        self.calls.append(("scan", params))
        return [
            {"rank": 1, "symbol": "AAPL", "value": "5.1%", "price": Decimal("155.50")},
            {"rank": 2, "symbol": "MSFT", "value": "3.2%", "price": None},
        ]


class BareBroker(FakeBroker):
    """Offers no market data: quotes, history and scan fall back to the base class."""

    name = "bare"
    quotes = Broker.quotes  # type: ignore[assignment]
    history = Broker.history  # type: ignore[assignment]
    scan = Broker.scan  # type: ignore[assignment]


class FakeBrokers:
    __name__ = "fake_brokers"

    @hookimpl
    def tradepipe_register_brokers(self, register: Any) -> None:
        register(FakeBroker)
        register(BareBroker)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TRADEPIPE_"):
            monkeypatch.delenv(name)
    # Wide enough that rich does not fold the cells the tests look for.
    monkeypatch.setenv("COLUMNS", "200")
    FakeBroker.calls = []
    write_settings(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``cancel`` waits on this instead of the wall clock; returns the sleeps taken."""
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(services_broker, "sleep", sleep)
    monkeypatch.setattr(services_broker, "monotonic", lambda: now[0])
    return sleeps


def write_settings(where: Path, run: dict[str, object] | None = None, **fake: object) -> None:
    """settings.toml choosing the fake broker, with keys for [run] and [brokers.fake]."""
    settings_file(where, run={"broker": "fake", **(run or {})}, brokers={"fake": fake})


def invoke(*args: str, debug: bool = False) -> Result:
    app = AppContext(debug=debug, _host=test_host(FakeBrokers()))
    return CliRunner().invoke(cli, ["broker", *args], obj=app, catch_exceptions=False)


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert ACCOUNT not in result.output
    return result


def data(*args: str) -> Any:
    return json.loads(ok(*args, "--json").stdout)


def one_error(result: Result, code: int, message: str) -> None:
    """Exit ``code`` with one line on stderr, ``error: message``, and no traceback."""
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == [f"error: {message}"]
    assert "Traceback" not in result.output


def connected_then_disconnected() -> bool:
    names = [c for c in FakeBroker.calls if isinstance(c, str)]
    return names[0] == "connect" and names[-1] == "disconnect"


# -- every command, table and JSON ------------------------------------------------


def test_status_shows_the_account_masked_and_the_broker_message_redacted() -> None:
    table = ok("status").stdout
    for fragment in ("fake", "yes", MASKED, "paper", f"logged in to {MASKED}"):
        assert fragment in table
    assert data("status") == {
        "broker": "fake",
        "connected": True,
        "authenticated": True,
        "account_id": MASKED,
        "paper": True,
        "message": f"logged in to {MASKED}",
    }
    assert FakeBroker.calls == ["connect", "disconnect"] * 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"connected": False, "message": "start the gateway"},
            "broker 'fake' is not connected: start the gateway; then try again",
        ),
        (
            {"connected": False, "message": ""},
            "broker 'fake' is not connected: check that it is running and reachable and that "
            "[brokers.fake] points at it; then try again",
        ),
        (
            {"authenticated": False, "message": "log in at https://localhost:5000"},
            "broker 'fake' is not authenticated: log in at https://localhost:5000; then try again",
        ),
        (
            {"authenticated": False, "message": ""},
            "broker 'fake' is not authenticated: log in again, or renew the credentials in "
            "[brokers.fake]; then try again",
        ),
    ],
)
def test_status_exits_1_when_not_ready_and_says_what_to_do(
    workdir: Path, settings: dict[str, object], message: str
) -> None:
    write_settings(workdir, **settings)
    result = invoke("status")
    one_error(result, 1, message)
    assert "no" in result.stdout.split()
    result = invoke("status", "--json")
    one_error(result, 1, message)
    shown = json.loads(result.stdout)
    assert (shown["connected"], shown["authenticated"]) == (
        settings.get("connected", True),
        settings.get("authenticated", True),
    )
    # Every other command refuses to go on, and still disconnects.
    FakeBroker.calls = []
    one_error(invoke("positions"), 1, message)
    assert connected_then_disconnected()


def test_brackets_in_a_broker_message_survive_the_table(workdir: Path) -> None:
    write_settings(workdir, message="see [brokers.fake]")
    assert "see [brokers.fake]" in ok("status").stdout


def test_accounts_masks_every_account_id() -> None:
    table = ok("accounts").stdout
    for fragment in (MASKED, "1234.50", "2000", "2469.00", "buying power", "paper"):
        assert fragment in table
    shown = data("accounts")
    assert shown["accounts"] == [MASKED]
    assert shown["summary"]["account_id"] == MASKED
    assert (shown["summary"]["cash"], shown["summary"]["buying_power"]) == ("1234.50", "2469.00")
    assert shown["paper"] is True


@pytest.mark.slow
def test_positions_all_one_and_none() -> None:
    table = ok("positions").stdout
    for fragment in ("AAPL", "MSFT", "155.50", "1555.00", "55.00", "-5"):
        assert fragment in table
    shown = data("positions")
    assert [p["symbol"] for p in shown] == ["AAPL", "MSFT"]
    assert shown[0] == {
        "symbol": "AAPL",
        "quantity": "10",
        "avg_cost": "150.00",
        "mark_price": "155.50",
        "market_value": "1555.00",
        "unrealized_pnl": "55.00",
        "realized_pnl": "0.00",
    }
    assert shown[1]["mark_price"] is None
    assert [p["symbol"] for p in data("positions", "msft")] == ["MSFT"]
    assert "MSFT" in ok("positions", "msft").stdout
    assert "AAPL" not in ok("positions", "msft").stdout
    assert ok("positions", "TSLA").stdout.strip() == "No position in TSLA."
    assert data("positions", "TSLA") == []


def test_orders() -> None:
    table = ok("orders").stdout
    for fragment in ("tp-1", "B1", "AAPL", "buy", "limit", "149.50", "partially_filled"):
        assert fragment in table
    assert data("orders") == [
        {
            "client_order_id": "tp-1",
            "broker_order_id": "B1",
            "symbol": "AAPL",
            "side": "buy",
            "quantity": "10",
            "filled_quantity": "4",
            "status": "partially_filled",
            "order_type": "limit",
            "limit_price": "149.50",
            "stop_price": None,
        }
    ]


@pytest.mark.slow
def test_trades_and_since() -> None:
    table = ok("trades").stdout
    for fragment in ("E0", "E1", "tp-1", "149.50", "1.00", "2026-03-02T14:30:00+00:00"):
        assert fragment in table
    assert [f["execution_id"] for f in data("trades")] == ["E0", "E1"]
    since = data("trades", "--since", "2026-03-03T09:30:00-05:00")
    assert [f["execution_id"] for f in since] == ["E1"]
    assert since[0]["price"] == "149.50" and since[0]["side"] == "buy"
    asked = FakeBroker.calls[-2]
    assert asked == ("fills", dt.datetime(2026, 3, 3, 14, 30, tzinfo=dt.UTC))
    assert ok("trades", "--since", "2027-01-01T00:00:00Z").stdout.strip() == (
        "No fills since 2027-01-01T00:00:00+00:00."
    )


@pytest.mark.parametrize("since", ["2026-03-02", "yesterday"])
def test_trades_since_needs_a_time_with_an_offset(since: str) -> None:
    result = invoke("trades", "--since", since)
    assert result.exit_code == 2
    assert "--since" in result.stderr and "Traceback" not in result.output
    assert FakeBroker.calls == []


def test_quote_several_symbols_says_which_have_none() -> None:
    result = ok("quote", "aapl", "MSFT", "zzzz")
    assert ("quotes", ["AAPL", "MSFT", "ZZZZ"]) in FakeBroker.calls
    for fragment in ("155.4", "155.6", "401.25", "1200"):
        assert fragment in result.stdout
    assert result.stdout.strip().endswith("No quote for ZZZZ.")
    shown = data("quote", "AAPL", "MSFT", "ZZZZ")
    assert [q["symbol"] for q in shown] == ["AAPL", "MSFT"]
    assert (shown[0]["bid"], shown[0]["ask"], shown[0]["last"]) == ("155.4", "155.6", None)
    assert shown[0]["ts"] == "2026-03-02T14:30:00+00:00"


@pytest.mark.slow
def test_history_table_json_and_options() -> None:
    table = ok("history", "aapl", "--bars", "3", "--bar-size", "1h").stdout
    assert ("history", "AAPL", 3, "1h") in FakeBroker.calls
    assert str(BARS[-1].close) in table and "2026-03-06T14:30:00+00:00" in table
    shown = data("history", "AAPL", "--bars", "2")
    assert [row["close"] for row in shown] == [b.close for b in BARS[-2:]]
    assert shown[0]["symbol"] == "AAPL" and shown[0]["ts"] == BARS[-2].ts.isoformat()
    assert ok("history", "TSLA").stdout.strip() == "No bars for TSLA."


@pytest.mark.slow
def test_history_csv_reads_back_through_the_csv_feed(workdir: Path) -> None:
    path = workdir / "aapl.csv"
    result = ok("history", "AAPL", "--csv", str(path))
    assert result.stdout.strip() == f"Wrote 5 bars of AAPL to {path}."
    assert read_csv(path) == BARS
    feed = CsvFeed(CsvFeed.Settings(paths=[str(path)]))
    assert list(feed.bars()) == BARS
    assert data("history", "AAPL", "--csv", str(path)) == {
        "symbol": "AAPL",
        "bars": 5,
        "path": str(path),
    }
    missing = workdir / "none.csv"
    assert ok("history", "TSLA", "--csv", str(missing)).stdout.strip() == (
        f"No bars for TSLA; {missing} not written."
    )
    assert not missing.exists()
    unwritable = workdir / "no-such-dir" / "x.csv"
    result = invoke("history", "AAPL", "--csv", str(unwritable))
    one_error(result, 1, f"cannot write {unwritable}: No such file or directory")


def test_scan_passes_only_the_options_given() -> None:
    result = ok(
        "scan",
        "--type",
        "TOP_PERC_GAIN",
        "--location",
        "STK.US.MAJOR",
        "--filter",
        "priceAbove=5",
        "--filter",
        "volumeAbove = 1000",
    )
    assert FakeBroker.calls[1] == (
        "scan",
        {
            "type": "TOP_PERC_GAIN",
            "location": "STK.US.MAJOR",
            "filters": {"priceAbove": "5", "volumeAbove": "1000"},
        },
    )
    for fragment in ("rank", "symbol", "value", "AAPL", "5.1%", "155.50"):
        assert fragment in result.stdout
    assert data("scan", "--instrument", "STK")[0] == {
        "rank": 1,
        "symbol": "AAPL",
        "value": "5.1%",
        "price": "155.50",
    }
    assert ("scan", {"instrument": "STK"}) in FakeBroker.calls


@pytest.mark.parametrize("bad", ["priceAbove", "=5", "a=1 --filter a=2"])
def test_scan_filters_must_be_code_value(bad: str) -> None:
    result = invoke("scan", "--filter", *bad.split())
    assert result.exit_code == 2 and "--filter" in result.stderr
    assert FakeBroker.calls == []


# -- cancel ------------------------------------------------------------------------


def test_cancel_is_requested_then_confirmed(clock: list[float]) -> None:
    lines = ok("cancel", "tp-1").stdout.splitlines()
    assert lines[0] == (
        "Cancel of order tp-1 requested: pending_cancel. It is not final until the broker "
        "confirms it."
    )
    assert lines[-1] == "Order tp-1 is canceled."
    assert [c for c in FakeBroker.calls if c[0] == "order"] == [("order", "tp-1")] * 2
    assert clock == [services_broker.POLL_INTERVAL] * 2
    assert connected_then_disconnected()
    FakeBroker.calls = []
    assert data("cancel", "tp-1") == {
        "client_order_id": "tp-1",
        "broker": "fake",
        "requested": "pending_cancel",
        "status": "canceled",
        "final": True,
        "known": True,
        "reason": "",
        "ledger_run": None,
    }


def test_cancel_waits_a_bounded_time(workdir: Path, clock: list[float]) -> None:
    write_settings(workdir, confirm_after=1000)
    lines = ok("cancel", "tp-1", "--wait", "1.2").stdout.splitlines()
    assert lines[-1] == (
        "Order tp-1 is still pending_cancel: the cancel is not confirmed yet. "
        "Check again with `tradepipe broker orders`."
    )
    assert sum(clock) == pytest.approx(1.2)
    assert max(clock) <= services_broker.POLL_INTERVAL
    shown = data("cancel", "tp-1", "--wait", "0")
    assert (shown["status"], shown["final"]) == ("pending_cancel", False)
    assert ("order", "tp-1") not in FakeBroker.calls[-3:]


def test_cancel_that_came_too_late(workdir: Path) -> None:
    write_settings(workdir, cancel_outcome="filled")
    assert ok("cancel", "tp-1").stdout.splitlines()[-1] == (
        "Order tp-1 ended filled before the cancel took effect."
    )


def test_cancel_refused_by_the_broker_exits_1() -> None:
    one_error(invoke("cancel", "tp-9"), 1, "no order tp-9")
    assert connected_then_disconnected()


# -- choosing the broker, and errors -------------------------------------------


@pytest.mark.slow
def test_broker_option_overrides_the_settings() -> None:
    assert data("status", "--broker", "bare")["broker"] == "bare"
    assert data("status", "--broker", "paper")["broker"] == "paper"
    assert data("status")["broker"] == "fake"


def test_unknown_broker_exits_2_with_the_choices() -> None:
    result = invoke("orders", "--broker", "nope")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: unknown broker 'nope'; choose one of: ")
    assert {"bare", "fake", "paper"} <= set(line.split(": ")[-1].split(", "))
    assert FakeBroker.calls == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("quote", "AAPL"), "bare has no quotes"),
        (("history", "AAPL"), "bare has no history"),
        (("scan",), "bare has no scanner"),
    ],
)
def test_an_operation_the_broker_lacks_exits_1_in_one_line(
    args: tuple[str, ...], message: str
) -> None:
    one_error(invoke(*args, "--broker", "bare"), 1, message)
    assert connected_then_disconnected()
    debug = invoke(*args, "--broker", "bare", debug=True)
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "BrokerCapabilityError" in debug.stderr


@pytest.mark.slow
def test_a_live_account_is_refused_unless_allowed(workdir: Path) -> None:
    write_settings(workdir, paper=False)
    result = invoke("positions")
    assert result.exit_code == 2
    assert "live account (U***4567)" in result.stderr and "allow_live" in result.stderr
    assert ACCOUNT not in result.output
    assert connected_then_disconnected()
    write_settings(workdir, run={"allow_live": True}, paper=False)
    assert data("status")["paper"] is False
    assert "live" in ok("accounts").stdout


# -- the paper simulator, through the real plugin host -----------------------------


@pytest.fixture
def paper(workdir: Path) -> Path:
    shutil.copy(REPO_SETTINGS, workdir / "settings.toml")
    return workdir


def run(*args: str) -> Result:
    """Without an injected host: exactly what a user runs."""
    return CliRunner().invoke(cli, ["broker", *args], catch_exceptions=False)


@pytest.mark.slow
def test_paper_shows_a_fresh_account(paper: Path) -> None:
    status = json.loads(run("status", "--json").stdout)
    assert status == {
        "broker": "paper",
        "connected": True,
        "authenticated": True,
        "account_id": "PAPER",
        "paper": True,
        "message": "paper simulator",
    }
    summary = json.loads(run("accounts", "--json").stdout)["summary"]
    assert (summary["cash"], summary["equity"]) == ("100000.00", "100000.00")
    expected = {
        ("positions",): "No open positions.",
        ("orders",): "No open orders.",
        ("trades",): "No fills.",
        ("quote", "AAPL"): "No quote for AAPL.",
        ("history", "AAPL"): "No bars for AAPL.",
    }
    for args, text in expected.items():
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == text
    for args in (("positions",), ("orders",), ("trades",), ("quote", "AAPL"), ("history", "X")):
        assert json.loads(run(*args, "--json").stdout) == []


@pytest.mark.slow
def test_paper_errors_are_one_line(paper: Path) -> None:
    one_error(run("scan"), 1, "paper has no scanner")
    one_error(run("logout", "--yes"), 1, "paper has no session to log out of")
    one_error(run("cancel", "tp-1"), 1, "no order tp-1 at the paper broker")


@pytest.mark.parametrize(
    "args",
    [
        ["broker", "positions"],
        ["order", "stock", "AAPL", "--side", "buy", "--quantity", "1", "--dry-run"],
    ],
)
def test_an_unreachable_gateway_is_said_once(
    paper: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    with socket.socket() as closed:  # bound, not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{closed.getsockname()[1]}/v1/api"
        monkeypatch.setenv("TRADEPIPE_RUN__BROKER", "client_portal")
        monkeypatch.setenv("TRADEPIPE_BROKERS__CLIENT_PORTAL__BASE_URL", url)
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: client_portal: POST /iserver/auth/status could not connect")
    assert result.output.count("could not connect") == 1
    assert "could not connect" in (paper / "logs" / "tradepipe.log").read_text()


def test_help_lists_the_broker_commands(paper: Path) -> None:
    result = CliRunner().invoke(cli, ["broker", "--help"])
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line}
    assert listed == {
        "accounts",
        "cancel",
        "logout",
        "history",
        "orders",
        "positions",
        "quote",
        "scan",
        "status",
        "trades",
    }


def test_logout_asks_first_and_a_no_changes_nothing(paper: Path) -> None:
    refused = CliRunner().invoke(cli, ["broker", "logout"], input="n\n")
    assert refused.exit_code == 1
    assert "error: not logged out (answer y, or pass --yes)" in refused.output
    assert "Aborted" not in refused.output


def test_a_sink_that_cannot_be_built_does_not_keep_a_cancel_from_the_broker(
    workdir: Path, clock: list[float]
) -> None:
    write_settings(workdir, run={"sinks": ["sql", "no_such_sink"]})
    result = ok("cancel", "tp-1")
    assert result.stdout.splitlines()[-1] == "Order tp-1 is canceled."
    assert ("cancel", "tp-1") in FakeBroker.calls
    assert "sink 'no_such_sink' left out: unknown sink 'no_such_sink'" in result.stderr
    assert [r["client_order_id"] for r in data("orders")] == ["tp-1"]
