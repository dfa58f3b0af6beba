"""Tax lots in the ledger: rebuilt from every fill, read back, summed for a tax year."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.errors import PersistenceError
from tradepipe.money import ZERO
from tradepipe.plugins.ledger.schema import FillRow, LotRealizationRow, RunRow, TaxLotRow
from tradepipe.plugins.tax.lots import LotResult, Method, Term, compute_lots

# Any fixed number, not the migrations' key: serialises concurrent rebuilds on PostgreSQL.
_LOCK_KEY = 0x7470_6C6F


@dataclass(frozen=True)
class _LedgerFill:
    execution_id: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    multiplier: Decimal
    ts: dt.datetime
    kind: str


def _fills(rows: list[FillRow]) -> list[_LedgerFill]:
    """Fills in time order; an execution id seen in several runs is qualified by its run."""
    runs: dict[str, set[str]] = {}
    for row in rows:
        runs.setdefault(row.execution_id, set()).add(row.run_id)
    ordered = sorted(rows, key=lambda r: (r.ts, r.id or 0))
    return [
        _LedgerFill(
            execution_id=(
                r.execution_id if len(runs[r.execution_id]) == 1 else f"{r.run_id}/{r.execution_id}"
            ),
            symbol=r.symbol,
            side=r.side,
            quantity=r.quantity,
            price=r.price,
            commission=r.commission,
            multiplier=r.multiplier,
            ts=r.ts,
            kind=r.kind,
        )
        for r in ordered
    ]


def _rows(result: LotResult, method: Method) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lots = [
        {
            "id": i,
            "method": method.value,
            "lot_id": lot.lot_id,
            "origin": lot.origin,
            "symbol": lot.symbol,
            "side": "short" if lot.short else "long",
            "quantity": lot.quantity,
            "multiplier": lot.multiplier,
            "opened_at": lot.opened_at,
            "purchased": lot.purchased,
            "acquired": lot.acquired,
            "basis": lot.basis,
            "wash_adjustment": lot.wash_adjustment,
        }
        for i, lot in enumerate(result.open, 1)
    ]
    closed = [
        {
            "id": i,
            "method": method.value,
            "lot_id": r.lot_id,
            "origin": r.origin,
            "symbol": r.symbol,
            "side": "short" if r.short else "long",
            "quantity": r.quantity,
            "multiplier": r.multiplier,
            "opened_at": r.opened_at,
            "closed_at": r.closed_at,
            "close_execution_id": r.close_execution_id,
            "acquired": r.acquired,
            "sold": r.sold,
            "proceeds": r.proceeds,
            "basis": r.basis,
            "adjustment": r.adjustment,
            "gain": r.gain,
            "term": r.term.value,
        }
        for i, r in enumerate(result.closed, 1)
    ]
    return lots, closed


def rebuild_lots(
    engine: Engine,
    method: Method = Method.FIFO,
    where: str = "",
    account: str = "",
    *,
    wash_sale_options: bool = False,
) -> LotResult:
    """Recompute the lots from the fills of ``account``'s runs (a key of
    :meth:`~tradepipe.plugins.ledger.queries.Ledger.accounts`; empty: every fill) and
    rewrite both lot tables, which then hold that account's lots.

    One transaction: readers see the old lots or the new, never a mixture.
    Running it twice gives the same rows (ids included). ``wash_sale_options``:
    see :func:`compute_lots`.

    :raises PersistenceError: the ledger could not be read or written.
    :raises LotError: the fills cannot be matched (see :func:`compute_lots`).
    """
    try:
        with Session(engine) as session, session.begin():
            if engine.dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            # Writing first takes SQLite's write lock before the read, so no upgrade can fail.
            session.execute(delete(LotRealizationRow))
            session.execute(delete(TaxLotRow))
            chosen = select(FillRow).where(~col(FillRow.is_combo))  # a combo's legs only
            if account:
                runs = select(col(RunRow.run_id)).where(col(RunRow.account) == account)
                chosen = chosen.where(col(FillRow.run_id).in_(runs))
            fills = list(session.scalars(chosen))
            result = compute_lots(_fills(fills), method, wash_sale_options=wash_sale_options)
            lots, closed = _rows(result, method)
            if lots:
                session.execute(insert(TaxLotRow), lots)
            if closed:
                session.execute(insert(LotRealizationRow), closed)
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not rebuild the tax lots in the ledger at {where}") from exc
    return result


def rebuilt_lots(
    engine: Engine,
    method: Method = Method.FIFO,
    where: str = "",
    account: str = "",
    *,
    wash_sale_options: bool = False,
) -> tuple[list[TaxLotRow], list[LotRealizationRow]]:
    """:func:`rebuild_lots`, then :func:`read_lots`: ``account``'s lots as of its fills now."""
    rebuild_lots(engine, method, where, account, wash_sale_options=wash_sale_options)
    return read_lots(engine, where)


def read_lots(engine: Engine, where: str = "") -> tuple[list[TaxLotRow], list[LotRealizationRow]]:
    """The open lots and the realizations the last rebuild wrote."""
    try:
        with Session(engine) as session:
            lots = list(session.scalars(select(TaxLotRow).order_by(col(TaxLotRow.id))))
            closed = list(
                session.scalars(select(LotRealizationRow).order_by(col(LotRealizationRow.id)))
            )
            return lots, closed
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read the tax lots from the ledger at {where}") from exc


@dataclass
class Totals:
    """Realized gains of one symbol (or all) in a tax year, wash-sale adjustments included."""

    proceeds: Decimal = ZERO
    basis: Decimal = ZERO
    short_term: Decimal = ZERO
    long_term: Decimal = ZERO
    disallowed: Decimal = ZERO

    def add(self, row: LotRealizationRow) -> None:
        self.proceeds += row.proceeds
        self.basis += row.basis
        self.disallowed += row.adjustment
        if row.term == Term.LONG.value:
            self.long_term += row.gain
        else:
            self.short_term += row.gain

    @property
    def total(self) -> Decimal:
        return self.short_term + self.long_term


def tax_report(closed: list[LotRealizationRow], year: int) -> tuple[dict[str, Totals], Totals]:
    """Totals per symbol and overall of the pieces sold in ``year``."""
    per_symbol: dict[str, Totals] = {}
    overall = Totals()
    for row in closed:
        if row.sold.year == year:
            per_symbol.setdefault(row.symbol, Totals()).add(row)
            overall.add(row)
    return dict(sorted(per_symbol.items())), overall
