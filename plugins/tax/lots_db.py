"""Tax lots in the ledger: rebuilt from every fill, read back, summed for a tax year."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.errors import PersistenceError
from tradepipe.money import ZERO
from tradepipe.plugins.ledger.schema import (
    DecisionRow,
    FillRow,
    LotRealizationRow,
    RunRow,
    TaxLotRow,
)
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


def _qualified(rows: list[FillRow]) -> dict[int, str]:
    """Each fill's execution id, qualified by its run where several runs have it."""
    runs: dict[str, set[str]] = {}
    for row in rows:
        runs.setdefault(row.execution_id, set()).add(row.run_id)
    return {
        id(r): r.execution_id if len(runs[r.execution_id]) == 1 else f"{r.run_id}/{r.execution_id}"
        for r in rows
    }


def _fills(rows: list[FillRow], names: dict[int, str]) -> list[_LedgerFill]:
    """Fills in time order, under their :func:`_qualified` execution ids."""
    ordered = sorted(rows, key=lambda r: (r.ts, r.id or 0))
    return [
        _LedgerFill(
            execution_id=names[id(r)],
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


def _named_lots(
    session: Session, fills: list[FillRow], names: dict[int, str]
) -> dict[str, tuple[str, ...]]:
    """Execution id → the lots its decision named (``Decision.lots``), for the fills
    whose decisions named any."""
    runs = {r.run_id for r in fills}
    named: dict[tuple[str, str], tuple[str, ...]] = {}
    if runs:
        chosen = select(
            col(DecisionRow.run_id), col(DecisionRow.decision_id), col(DecisionRow.extra)
        ).where(col(DecisionRow.run_id).in_(runs), col(DecisionRow.extra).contains('"lots"'))
        for run_id, decision_id, extra in session.execute(chosen):
            lots = json.loads(extra or "{}").get("lots") or ()
            if lots:
                named[(run_id, decision_id)] = tuple(lots)
    return {
        names[id(r)]: named[(r.run_id, r.decision_id)]
        for r in fills
        if (r.run_id, r.decision_id) in named
    }


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
            "name": lot.name,
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
            "name": r.name,
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
            result = _compute(session, method, account, wash_sale_options)
            lots, closed = _rows(result, method)
            if lots:
                session.execute(insert(TaxLotRow), lots)
            if closed:
                session.execute(insert(LotRealizationRow), closed)
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not rebuild the tax lots in the ledger at {where}") from exc
    return result


def _compute(session: Session, method: Method, account: str, wash_sale_options: bool) -> LotResult:
    chosen = select(FillRow).where(~col(FillRow.is_combo))  # a combo's legs only
    if account:
        runs = select(col(RunRow.run_id)).where(col(RunRow.account) == account)
        chosen = chosen.where(col(FillRow.run_id).in_(runs))
    fills = list(session.scalars(chosen))
    names = _qualified(fills)
    return compute_lots(
        _fills(fills, names),
        method,
        _named_lots(session, fills, names),
        wash_sale_options=wash_sale_options,
    )


def current_lots(
    engine: Engine,
    account: str,
    where: str = "",
    method: Method = Method.FIFO,
    *,
    wash_sale_options: bool = False,
) -> LotResult:
    """``account``'s lots as of its fills now, computed without writing anything.

    :raises PersistenceError: the ledger could not be read.
    :raises LotError: as :func:`rebuild_lots`.
    """
    try:
        with Session(engine) as session:
            return _compute(session, method, account, wash_sale_options)
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read the fills from the ledger at {where}") from exc


class Rebuilt(NamedTuple):
    """An account's lots as rebuilt now: the rows written, and what could not be
    done as asked (:attr:`LotResult.notes`)."""

    open: list[TaxLotRow]
    closed: list[LotRealizationRow]
    notes: tuple[str, ...] = ()


def rebuilt_lots(
    engine: Engine,
    method: Method = Method.FIFO,
    where: str = "",
    account: str = "",
    *,
    wash_sale_options: bool = False,
) -> Rebuilt:
    """:func:`rebuild_lots`, then :func:`read_lots`: ``account``'s lots as of its fills now."""
    result = rebuild_lots(engine, method, where, account, wash_sale_options=wash_sale_options)
    return Rebuilt(*read_lots(engine, where), result.notes)


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
