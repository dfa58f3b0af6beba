"""The paper simulator's state file: one account shared by processes and restarts.

Two :class:`PaperBroker` instances on one file stand for two processes (a
``tradepipe broker`` command and a pipeline, say): the first disconnects before
the second connects, as one command ends before the next starts. Bars are
``tradepipe.testing.bar`` (an int ``ts`` is that many days after ``T0``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from paper_support import feed
from tradepipe import (
    Bar,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
    Fill,
    InvalidOrderError,
    ManualClock,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
)
from tradepipe.brokers.paper import account as paper_account
from tradepipe.brokers.paper import state as paper_state
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.testing import T0, MemorySink, bar, bars_from_closes, replay

_ids = itertools.count(1)


def open_account(path: Path, **settings: Any) -> PaperBroker:
    broker = PaperBroker(PaperBroker.Settings(state_file=str(path), **settings))
    broker.clock = ManualClock(T0)
    broker.connect()
    return broker


def intent(
    side: str = "buy",
    quantity: int = 10,
    order_type: str = "market",
    *,
    limit: str | None = None,
    stop: str | None = None,
    tif: str = "day",
    cid: str | None = None,
) -> OrderIntent:
    return OrderIntent(
        client_order_id=cid or f"s{next(_ids)}",
        decision_id="d1",
        source="test",
        symbol="AAPL",
        side=side,
        quantity=D(quantity),
        order_type=order_type,
        limit_price=None if limit is None else D(limit),
        stop_price=None if stop is None else D(stop),
        tif=tif,
        created_at=T0,
    )


def everything(broker: PaperBroker) -> tuple[Any, ...]:
    """All a caller can read from the account."""
    return (
        broker.account(),
        broker.positions(),
        broker.open_orders(),
        broker.fills(),
        broker.quotes(["AAPL"]),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "paper-account.json"


# -- one account across instances ------------------------------------------------------------


def test_a_second_instance_continues_the_account_where_the_first_left_it(path: Path) -> None:
    first = open_account(path)
    feed(first, bar(ts=0, open=100))
    first.place(intent("buy", 10))
    feed(first, bar(ts=1, open=101))  # bought 10 @ 101, commission 1.00
    first.place(intent("sell", 4))
    feed(first, bar(ts=2, open=111))  # sold 4 @ 111: realized (111 - 101) x 4 = 40
    working = first.place(intent("buy", 5, "limit", limit="90", tif="gtc"))
    seen = everything(first)
    first.disconnect()

    second = open_account(path)
    second.clock = first.clock  # the same moment, so the account summaries compare

    assert everything(second) == seen
    [position] = second.positions()
    assert (position.quantity, position.avg_cost, position.realized_pnl) == (6, 101, 40)
    assert second.account().realized_pnl == 40
    assert second.account().cash == D(100_000) - 1010 - 1 + 444 - 1
    assert second.order(working.client_order_id) == first.order(working.client_order_id)
    # broker ids go on from where the first instance stopped
    assert second.place(intent("sell", 1, "limit", limit="200")).broker_order_id == "P4"


def test_an_order_placed_in_one_instance_is_canceled_in_another(path: Path) -> None:
    placer = open_account(path)
    feed(placer, bar(ts=0, open=100))
    placed = placer.place(intent("buy", 10, "limit", limit="95", tif="gtc"))
    placer.disconnect()

    canceler = open_account(path)
    [seen] = canceler.open_orders()
    assert (seen.client_order_id, seen.limit_price) == (placed.client_order_id, 95)
    assert canceler.cancel(placed.client_order_id).status is OrderStatus.PENDING_CANCEL
    canceler.disconnect()

    third = open_account(path)
    assert third.open_orders() == []
    report = third.order(placed.client_order_id)
    assert report is not None and report.status is OrderStatus.CANCELED
    assert feed(third, bar(ts=1, open=94)) == []  # would have filled
    assert third.positions() == []


def test_working_orders_keep_matching_after_a_reload(path: Path) -> None:
    first = open_account(path, commission="none", allow_short=True)
    feed(first, bar(ts=0, open=100))
    gtc = first.place(intent("buy", 10, "limit", limit="95", tif="gtc"))
    day = first.place(intent("buy", 10, "limit", limit="90"))
    # stop 98 under a limit of 99: triggered inside a bar it must wait a bar
    stop_limit = first.place(intent("sell", 5, "stop_limit", limit="99", stop="98", tif="gtc"))
    first.place(intent("buy", 5))
    assert len(first.open_orders()) == 4
    feed(first, bar(ts=1, open=100, high=100.5, low=97.5, close=99))
    # bought 5 at the open; the DAY order's trading date is day 1; the stop-limit triggered
    first.disconnect()

    second = open_account(path, commission="none", allow_short=True)
    events = feed(second, bar(ts=2, open=98.5, high=99.5, low=94, close=95))

    fills = {e.client_order_id: e.price for e in events if isinstance(e, Fill)}
    # a stop-limit that had to trigger again here would wait (98 < 99) instead
    assert fills == {gtc.client_order_id: 95, stop_limit.client_order_id: 99}
    expired = [e for e in events if isinstance(e, OrderUpdate)]
    assert [(e.client_order_id, e.status) for e in expired] == [
        (day.client_order_id, OrderStatus.EXPIRED)
    ]
    assert {p.symbol: p.quantity for p in second.positions()} == {"AAPL": 10}


def test_fills_and_finished_orders_beyond_the_kept_number_are_forgotten(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paper_state, "KEPT", 3)
    broker = open_account(path, commission="none")
    cids = []
    for day in range(5):
        feed(broker, bar(ts=day, open=100))
        cids.append(broker.place(intent("buy", 1)).client_order_id)
    feed(broker, bar(ts=5, open=100))
    assert [f.client_order_id for f in broker.fills()] == cids[2:]
    broker.disconnect()

    again = open_account(path, commission="none")
    assert [f.client_order_id for f in again.fills()] == cids[2:]
    assert [again.order(c) is not None for c in cids] == [False, False, True, True, True]
    assert again.positions()[0].quantity == 5  # the account itself forgets nothing


def test_an_account_without_a_file_forgets_old_records_in_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paper_account, "KEPT", 2)
    broker = PaperBroker(PaperBroker.Settings(commission="none"))
    broker.clock = ManualClock(T0)
    broker.connect()
    cids, held = [], []
    for day in range(9):
        feed(broker, bar(ts=day, open=100))
        cids.append(broker.place(intent("buy", 1)).client_order_id)
        held.append(len(broker.fills()))
    feed(broker, bar(ts=9, open=100))
    # Twice the kept number at most, then back to it: memory stays flat.
    assert max(held) == 4 and held[-1] <= 4
    assert [f.client_order_id for f in broker.fills()] == cids[-len(broker.fills()) :]
    assert broker.order(cids[0]) is None and broker.order(cids[-1]) is not None
    assert broker.positions()[0].quantity == 9  # the account itself forgets nothing


def test_records_forgotten_between_saves_leave_the_file_in_step(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The account forgets (down to 1, past 2) more eagerly than the file trims
    # (to 10): each save must write exactly the fills the account still holds.
    monkeypatch.setattr(paper_account, "KEPT", 1)
    monkeypatch.setattr(paper_state, "KEPT", 10)
    broker = open_account(path, commission="none")
    cids = []
    for day in range(7):
        feed(broker, bar(ts=day, open=100))
        cids.append(broker.place(intent("buy", 1)).client_order_id)
        saved = json.loads(path.read_text())["fills"]
        assert [f["client_order_id"] for f in saved] == [f.client_order_id for f in broker.fills()]
    feed(broker, bar(ts=7, open=100))
    kept = [f.client_order_id for f in broker.fills()]
    assert kept and kept == cids[-len(kept) :]
    broker.disconnect()

    again = open_account(path, commission="none")
    assert [f.client_order_id for f in again.fills()] == kept
    assert again.positions()[0].quantity == 7


def _sma_on_file(path: Path) -> tuple[list[Bar], dict[str, Any]]:
    """Twenty bars on which SMA(2)/SMA(4) decides a sale on bar 9, and the settings
    of a replay of them onto the paper account in ``path``."""
    closes = [10, 10, 10, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9, 10, 11, 12, 13, 14, 15, 14]
    tables: dict[str, Any] = {
        "run": {"strategies": ["sma_cross"], "risk_filters": []},
        "strategies": {"sma_cross": {"fast": 2, "slow": 4, "quantity": 10}},
        "brokers": {"paper": {"state_file": str(path)}},
    }
    return bars_from_closes(closes), tables


def test_a_pipeline_run_continues_the_account_of_the_run_before(tmp_path: Path) -> None:
    # SMA(2)/SMA(4) on these closes decides a sale on bar 9: the first run ends
    # holding 10 with that sell order working, and the second run fills it.
    bars, tables = _sma_on_file(tmp_path / "acct.json")
    first, _, _ = replay(bars[:10], **tables)
    held = {p.symbol: p.quantity for p in first.broker.positions()}
    [working] = first.broker.open_orders()
    cash = first.broker.account().cash
    assert (held, working.side) == ({"AAPL": 10}, "sell")

    second, _, _ = replay(bars[10:], **tables)
    sink = MemorySink.last
    assert sink is not None

    fills = sink.fills
    assert fills[0].client_order_id == working.client_order_id
    assert fills[0].price == D(str(bars[10].open))
    for f in fills:
        held[f.symbol] = held.get(f.symbol, D(0)) + f.side.sign * f.quantity
        cash -= f.side.sign * f.notional + f.commission
    assert {p.symbol: p.quantity for p in second.broker.positions()} == {
        s: q for s, q in held.items() if q
    }
    assert second.broker.account().cash == cash


def test_a_replay_that_goes_back_into_the_accounts_past_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A replay of older bars onto a kept account fills its orders in the account's
    past: a stopped replay run again does that by design (the exactly-once recovery
    plays its bars again), a replay of other bars mixes its trades into the
    account's later history. It is said, once, with both times; a replay that
    carries on from the account's last bar says nothing."""
    bars, tables = _sma_on_file(tmp_path / "acct.json")
    replay(bars[10:14], **tables)
    caplog.clear()
    replay(bars[13:], **tables)  # from its last bar on: carries on
    assert "in the account's past" not in caplog.text
    caplog.clear()
    replay(bars[:10], **tables)
    [said] = [r for r in caplog.records if "in the account's past" in r.getMessage()]
    assert said.levelname == "WARNING"
    assert bars[19].ts.isoformat() in said.getMessage()
    assert bars[0].ts.isoformat() in said.getMessage()


KILLED = """
import os, signal, sys
from decimal import Decimal
from tradepipe import ManualClock, OrderIntent
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.testing import T0, bar

broker = PaperBroker(PaperBroker.Settings(state_file=sys.argv[1], commission="none"))
broker.clock = ManualClock(T0)
broker.connect()

def order(cid, **kw):
    return OrderIntent(client_order_id=cid, decision_id="d", source="t", symbol="AAPL",
                       side="buy", quantity=Decimal(10), created_at=T0, **kw)

broker.on_bar(bar(ts=0, open=100))
broker.place(order("bought"))
broker.clock.set(bar(ts=1).ts)
broker.on_bar(bar(ts=1, open=101))
broker.place(order("working", order_type="limit", limit_price=Decimal(90), tif="gtc"))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_process_leaves_every_change_it_acknowledged(path: Path) -> None:
    script = path.parent / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    done = subprocess.run([sys.executable, str(script), str(path)], timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL

    restarted = open_account(path, commission="none")  # the dead process's lock is gone

    assert "read-only" not in restarted.status().message
    [position] = restarted.positions()
    assert (position.quantity, position.avg_cost) == (10, 101)
    assert [o.client_order_id for o in restarted.open_orders()] == ["working"]
    assert [f.client_order_id for f in restarted.fills()] == ["bought"]


# -- while another process has the account --------------------------------------------------


def test_while_one_instance_has_the_account_another_can_read_it_but_not_trade(
    path: Path,
) -> None:
    owner = open_account(path)
    feed(owner, bar(ts=0, open=100))
    placed = owner.place(intent("buy", 10, "limit", limit="95", tif="gtc"))

    reader = open_account(path)

    assert "read-only" in reader.status().message
    assert reader.open_orders() == owner.open_orders()
    with pytest.raises(BrokerRejectedError, match="not placed: .* in use by another process"):
        reader.place(intent("buy", 1))
    with pytest.raises(BrokerRejectedError, match="not canceled: .* in use by another process"):
        reader.cancel(placed.client_order_id)
    assert "in use by another process" in reader.preview(intent("buy", 1))["error"]
    assert feed(reader, bar(ts=1, open=90)) == []  # only the owner matches orders
    saved = path.read_bytes()
    reader.disconnect()
    assert path.read_bytes() == saved

    owner.disconnect()
    assert "read-only" not in open_account(path).status().message


# -- how the file is written -------------------------------------------------------------------


def _crash(*args: Any) -> None:
    raise OSError(5, "simulated crash before the rename")


def test_a_failed_save_leaves_the_previous_file_and_undoes_the_request(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    kept = broker.place(intent("buy", 10, "limit", limit="95", tif="gtc"))
    saved = path.read_bytes()

    monkeypatch.setattr(os, "replace", _crash)
    with pytest.raises(BrokerRejectedError, match="not placed: could not save the paper account"):
        broker.place(intent("buy", 1, cid="lost"))
    with pytest.raises(BrokerUnavailableError, match="simulated crash"):
        broker.cancel(kept.client_order_id)
    monkeypatch.undo()

    assert path.read_bytes() == saved
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}.lock"]
    assert broker.order("lost") is None
    assert [o.client_order_id for o in broker.open_orders()] == [kept.client_order_id]
    assert broker.place(intent("buy", 1)).broker_order_id == "P2"  # the lost one took no id


def test_a_failed_save_after_a_fill_stops_the_account_at_its_last_save(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 10))
    saved = path.read_bytes()

    monkeypatch.setattr(os, "replace", _crash)
    with pytest.raises(BrokerUnavailableError, match="could not save the paper account"):
        feed(broker, bar(ts=1, open=101))  # the fill is never reported...
    monkeypatch.undo()
    broker.disconnect()  # ...so it is not written later either

    assert path.read_bytes() == saved
    again = open_account(path)
    assert again.positions() == []
    assert [o.client_order_id for o in again.open_orders()] == [placed.client_order_id]


@pytest.mark.parametrize(
    ("order", "change", "reason"),
    [
        (("market",), {"limit_price": D(95)}, "a market order has no limit price to change"),
        (("limit", "95"), {"stop_price": D(90)}, "a limit order has no stop price to change"),
        (("market",), {"quantity": D("0.0000001")}, "not a whole number of shares"),
        (("market",), {"quantity": D(-5)}, "quantity must be positive"),
    ],
)
def test_a_bad_modify_changes_nothing_and_the_account_still_opens(
    path: Path, order: tuple[str, ...], change: dict[str, D], reason: str
) -> None:
    # Issue 15.6: a limit price on a market order was saved, and every command
    # after it failed with "state_file … is damaged".
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    kind, *limit = order
    placed = broker.place(intent("buy", 10, kind, limit=limit[0] if limit else None, tif="gtc"))
    saved = path.read_bytes()
    before = broker.order(placed.client_order_id)

    with pytest.raises(InvalidOrderError, match=f"cannot modify {placed.client_order_id}: "):
        broker.modify(placed.client_order_id, **change)
    with pytest.raises(InvalidOrderError, match=reason):
        broker.modify(placed.client_order_id, **change)
    broker.disconnect()

    assert path.read_bytes() == saved
    again = open_account(path)
    assert again.order(placed.client_order_id) == before


def test_a_save_that_would_not_load_again_fails_and_leaves_the_file(path: Path) -> None:
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    placed = broker.place(intent("buy", 10, tif="gtc"))
    saved = path.read_bytes()
    # An order the simulator holds but no file could (a bug elsewhere, say): a
    # copy skips the validation a model makes.
    sim = broker._account.orders[placed.client_order_id]
    sim.intent = sim.intent.model_copy(update={"limit_price": D(95)})

    with pytest.raises(BrokerRejectedError, match="would not load again .*file is unchanged"):
        broker.place(intent("buy", 1, cid="next"))
    broker.disconnect()

    assert path.read_bytes() == saved
    assert open_account(path).order(placed.client_order_id) is not None


def test_the_file_is_readable_and_writable_by_its_owner_only(path: Path) -> None:
    old = os.umask(0)  # even where new files would be world-writable
    try:
        broker = open_account(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        broker.disconnect()
        path.chmod(0o644)
        broker = open_account(path)
        feed(broker, bar(ts=0, open=100))
        broker.place(intent("buy", 1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_status_names_the_file_without_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("accounts", "elsewhere"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    file = tmp_path / "accounts" / "paper.json"

    def seen_from(folder: Path) -> str:
        monkeypatch.chdir(folder)
        broker = open_account(file)
        try:
            return broker.status().message
        finally:
            broker.disconnect()

    # Under the working directory: relative to it; elsewhere under home: ~/…
    assert seen_from(tmp_path) == "paper simulator, account file accounts/paper.json"
    assert seen_from(tmp_path / "accounts") == "paper simulator, account file paper.json"
    assert seen_from(tmp_path / "elsewhere") == (
        "paper simulator, account file ~/accounts/paper.json"
    )


def test_a_missing_file_is_a_new_account_from_the_settings_and_then_the_file_wins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts" / "new.json"
    broker = open_account(path, initial_cash=D(5_000))

    assert broker.account().cash == 5_000
    assert json.loads(path.read_text())["cash"] == "5000"
    broker.disconnect()
    assert open_account(path, initial_cash=D(9_999)).account().cash == 5_000


def test_decimals_are_strings_and_the_format_is_versioned(path: Path) -> None:
    broker = open_account(path, commission="none")
    feed(broker, bar(ts=0, open=100.25))
    broker.place(intent("buy", 3))
    feed(broker, bar(ts=1, open=100.5))
    broker.disconnect()

    data = json.loads(path.read_text())
    assert (
        (data["format"], data["version"])
        == (paper_state.FORMAT, paper_state.VERSION)
        == (
            "tradepipe-paper-account",
            1,
        )
    )
    assert data["cash"] == "99698.50"
    assert data["positions"][0]["avg_cost"] == "100.5"
    assert data["fills"][0]["price"] == "100.5"
    assert data["orders"][0]["intent"]["quantity"] == "3"


def test_only_changes_are_written_and_a_bar_that_changes_nothing_is_not(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    write = paper_state._write
    monkeypatch.setattr(
        paper_state, "_write", lambda p, text: (writes.append(text), write(p, text))
    )
    broker = open_account(path, commission="none")
    assert len(writes) == 1  # the new account's file

    feed(broker, *(bar(ts=day, open=100) for day in range(3)))  # no orders: nothing to save
    assert len(writes) == 1
    placed = broker.place(intent("buy", 10, "limit", limit="90", tif="gtc"))
    feed(broker, *(bar(ts=day, open=100) for day in range(3, 6)))  # the order does not fill
    assert len(writes) == 2
    feed(broker, bar(ts=6, open=89))  # it fills
    broker.cancel(broker.place(intent("buy", 1, "limit", limit="50", tif="gtc")).client_order_id)
    assert len(writes) == 5
    feed(broker, bar(ts=7, open=95))  # moves the price, changes no order: not written now...
    assert len(writes) == 5
    broker.disconnect()  # ...but on the way out
    assert len(writes) == 6
    assert json.loads(writes[1])["orders"][0]["intent"]["client_order_id"] == (
        placed.client_order_id
    )
    assert json.loads(writes[-1])["last"][0][5] == 95


def test_a_command_that_only_reads_does_not_rewrite_the_file(path: Path) -> None:
    open_account(path).disconnect()
    saved = path.stat().st_mtime_ns, path.read_bytes()
    reader = open_account(path)
    reader.positions()
    reader.open_orders()
    reader.disconnect()
    assert (path.stat().st_mtime_ns, path.read_bytes()) == saved


def test_a_preview_writes_nothing(path: Path) -> None:
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("buy", 10, "limit", limit="90", tif="gtc"))
    saved = path.stat().st_mtime_ns, path.read_bytes()

    assert broker.preview(intent("buy", 10))["error"] is None

    assert (path.stat().st_mtime_ns, path.read_bytes()) == saved


def test_without_a_state_file_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = PaperBroker(PaperBroker.Settings())
    broker.clock = ManualClock(T0)
    broker.connect()
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("buy", 10))
    working = broker.place(intent("buy", 10, "limit", limit="90", tif="gtc"))
    feed(broker, bar(ts=1, open=101))
    broker.cancel(working.client_order_id)
    broker.disconnect()
    broker.connect()

    assert list(tmp_path.iterdir()) == []
    assert broker.positions()[0].quantity == 10  # the in-memory account survives reconnects
    assert broker.requires_durable_intents is False
    assert open_account(tmp_path / "a.json").requires_durable_intents is True


# -- files that cannot be used -----------------------------------------------------------------


def _valid(path: Path) -> dict[str, Any]:
    broker = open_account(path)
    feed(broker, bar(ts=0, open=100))
    broker.place(intent("buy", 10))
    feed(broker, bar(ts=1, open=101))
    broker.disconnect()
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _damage(data: dict[str, Any], how: str) -> str:
    if how == "cash-as-a-number":
        data["cash"] = 98989.0
    elif how == "missing-key":
        del data["positions"]
    elif how == "bad-order":
        data["orders"][0]["intent"]["quantity"] = "-1"
    elif how == "bad-status":
        data["orders"][0]["status"] = "vanished"
    elif how == "naive-time":
        data["last"][0][1] = "2026-03-03T14:30:00"
    return json.dumps(data)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(lambda d: "{not json", "is not valid JSON", id="not-json"),
        pytest.param(lambda d: "", "is not valid JSON", id="empty"),
        pytest.param(lambda d: "[]", "is not a paper account file", id="a-list"),
        pytest.param(lambda d: '{"cash": "1"}', "is not a paper account file", id="no-format"),
        *(
            pytest.param(lambda d, how=how: _damage(d, how), "is damaged", id=how)
            for how in ("cash-as-a-number", "missing-key", "bad-order", "bad-status", "naive-time")
        ),
        pytest.param(
            lambda d: json.dumps({**d, "version": 2}),
            "has format version 2; this tradepipe reads version 1 only",
            id="unknown-version",
        ),
        pytest.param(
            lambda d: json.dumps({k: v for k, v in d.items() if k != "version"}),
            "has format version None",
            id="no-version",
        ),
    ],
)
def test_an_unusable_file_is_a_config_error_naming_it_and_is_left_alone(
    path: Path, content: Any, says: str
) -> None:
    path.write_text(content(_valid(path)))
    before = path.read_bytes()

    broker = PaperBroker(PaperBroker.Settings(state_file=str(path)))
    with pytest.raises(ConfigError) as caught:
        broker.connect()

    assert says in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.key == "brokers.paper.state_file"
    assert path.read_bytes() == before  # never silently reset
    assert not broker.status().connected
    # the failed connect let go of the lock: a good file opens for writing again
    _valid(path.with_name("other.json"))


def test_a_file_that_cannot_be_read_is_a_config_error(path: Path) -> None:
    path.mkdir()
    with pytest.raises(ConfigError, match=f"cannot read {path}"):
        PaperBroker(PaperBroker.Settings(state_file=str(path))).connect()


@pytest.mark.parametrize(
    ("setting", "value"), [("account_id", "DU123"), ("currency", "EUR")], ids=["account", "ccy"]
)
def test_a_file_of_another_account_is_a_config_error(path: Path, setting: str, value: str) -> None:
    _valid(path)
    with pytest.raises(ConfigError, match=f"holds {setting} .*; set {setting} to match"):
        PaperBroker(PaperBroker.Settings(state_file=str(path), **{setting: value})).connect()
