"""The equity curve the ledger's account snapshots make, on SQLite."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session
from tradepipe.plugins.ledger.db import open_engine
from tradepipe.plugins.ledger.queries import Ledger
from tradepipe.plugins.ledger.schema import AccountRow, RunRow

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def snapshot(run_id: str, minutes: int, equity: str, account: str = "DU1234567") -> AccountRow:
    return AccountRow(
        run_id=run_id,
        ts=T0 + dt.timedelta(minutes=minutes),
        account_id=account,
        currency="USD",
        cash=Decimal(equity) - 100,
        equity=Decimal(equity),
        buying_power=Decimal(equity),
        gross_position_value=Decimal(100),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal(0),
    )


def test_the_latest_accounts_snapshots_oldest_first(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger = Ledger(engine, "test")
        assert ledger.equity_curve() == []
        with Session(engine) as s:
            # Written out of time order, and another account's in between.
            s.add_all(
                [
                    snapshot("r2", 20, "100200.5"),
                    snapshot("r1", 0, "100000"),
                    snapshot("r9", 10, "5000", account="DU7654321"),
                    snapshot("r3", 30, "99950.25"),
                ]
            )
            s.commit()
        curve = ledger.equity_curve()
        assert [(r.run_id, r.equity) for r in curve] == [
            ("r1", Decimal("100000")),
            ("r2", Decimal("100200.5")),
            ("r3", Decimal("99950.25")),
        ]
        assert curve[0].ts == T0
        assert [r.run_id for r in ledger.equity_curve(limit=2)] == ["r2", "r3"]
    finally:
        engine.dispose()


def test_overlapping_replays_do_not_interleave(tmp_path: Path) -> None:
    """In-memory paper replays all cover the same dates from the same cash."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with Session(engine) as s:
            s.add_all(
                [
                    *(snapshot("replay-1", m, str(100_000 + m)) for m in range(0, 40, 10)),
                    *(snapshot("replay-2", m, str(100_000 - m)) for m in range(0, 40, 10)),
                    # A later order on the account, after the replays' dates.
                    snapshot("order", 60, "99900"),
                ]
            )
            s.commit()
        curve = Ledger(engine, "test").equity_curve()
        assert [(r.run_id, r.equity) for r in curve] == [
            ("replay-2", Decimal(100_000)),
            ("replay-2", Decimal(99_990)),
            ("replay-2", Decimal(99_980)),
            ("replay-2", Decimal(99_970)),
            ("order", Decimal(99_900)),
        ]
        times = [r.ts for r in curve]
        assert times == sorted(times)
        assert [r.run_id for r in Ledger(engine, "test").equity_curve(limit=2)] == [
            "replay-2",
            "order",
        ]
        # A limit inside a run keeps that run's latest points, still oldest first.
        assert [(r.run_id, r.equity) for r in Ledger(engine, "test").equity_curve(limit=3)] == [
            ("replay-2", Decimal(99_980)),
            ("replay-2", Decimal(99_970)),
            ("order", Decimal(99_900)),
        ]
    finally:
        engine.dispose()


def test_one_accounts_curve_and_which_account_is_the_default(tmp_path: Path) -> None:
    """Replays on the simulator share the account id PAPER; their runs tell them apart."""
    engine = open_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger = Ledger(engine, "test")
        assert ledger.account() == ""  # no run yet
        with Session(engine) as s:
            for n, (run_id, account) in enumerate(
                [("r1", "paper:/x/acct.json"), ("rA", "replay:rA"), ("r2", "paper:/x/acct.json")]
            ):
                s.add(
                    RunRow(
                        run_id=run_id,
                        namespace=run_id,
                        started_at=T0 + dt.timedelta(minutes=10 * n),
                        env="test",
                        broker="paper",
                        feed="list",
                        strategies="[]",
                        account=account,
                    )
                )
            s.add_all(
                [
                    snapshot("r1", 0, "100000", account="PAPER"),
                    snapshot("rA", 10, "50", account="PAPER"),
                    snapshot("r2", 20, "100300", account="PAPER"),
                ]
            )
            s.commit()
        assert ledger.account() == "paper:/x/acct.json"  # the latest run's
        assert ledger.account(run_id="rA") == "replay:rA"
        assert ledger.account("acct.json") == ledger.account("paper:/x/acct.json")
        assert [r.run_id for r in ledger.equity_curve(account="paper:/x/acct.json")] == [
            "r1",
            "r2",
        ]
        assert [r.equity for r in ledger.equity_curve(account="replay:rA")] == [Decimal(50)]
        assert [a["account"] for a in ledger.accounts()] == ["paper:/x/acct.json", "replay:rA"]
    finally:
        engine.dispose()
