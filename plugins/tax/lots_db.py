"""Tax lots in the ledger: rebuilt from every fill, read back, summed for a tax year."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.errors import PersistenceError
from tradepipe.lifecycle import underlying_of
from tradepipe.money import ZERO
from tradepipe.plugins.ledger.schema import (
    DecisionRow,
    FillRow,
    ImportedFillRow,
    LotRealizationRow,
    RunRow,
    TaxLotRow,
)
from tradepipe.plugins.ledger.summary import LedgerFill
from tradepipe.plugins.tax.imports_db import imported_fills, sale_reporting
from tradepipe.plugins.tax.lots import LotResult, Method, Named, Term, compute_lots
from tradepipe.plugins.tax.settlements import DELIVERING

# Any fixed number, not the migrations' key: serialises concurrent rebuilds on PostgreSQL.
_LOCK_KEY = 0x7470_6C6F


def _qualified(rows: list[FillRow]) -> dict[int, str]:
    """Each fill's execution id, qualified by its run where several runs have it."""
    runs: dict[str, set[str]] = {}
    for row in rows:
        runs.setdefault(row.execution_id, set()).add(row.run_id)
    return {
        id(r): r.execution_id if len(runs[r.execution_id]) == 1 else f"{r.run_id}/{r.execution_id}"
        for r in rows
    }


def _rank(row: FillRow | ImportedFillRow) -> int:
    """Shares an exercise or assignment delivers come after the option's fill of
    the same moment (1), everything else in its order (0)."""
    return int(row.kind in DELIVERING and underlying_of(row.symbol) is None)


def _fills(
    rows: list[FillRow], names: dict[int, str], imported: Sequence[ImportedFillRow] = ()
) -> list[LedgerFill]:
    """Fills in time order, under their :func:`_qualified` execution ids, with the
    imported ones the account's own fills do not hold."""
    own = {r.execution_id for r in rows}
    outside = [r for r in imported if r.execution_id not in own]
    keyed: list[tuple[tuple[dt.datetime, int, int, int], FillRow | ImportedFillRow]] = [
        ((r.ts, _rank(r), 0, r.id or 0), r) for r in rows
    ] + [((r.ts, _rank(r), 1, r.id or 0), r) for r in outside]
    keyed.sort(key=lambda pair: pair[0])
    return [
        LedgerFill(
            execution_id=names.get(id(r), r.execution_id),
            symbol=r.symbol,
            side=r.side,
            quantity=r.quantity,
            price=r.price,
            commission=r.commission,
            multiplier=r.multiplier,
            ts=r.ts,
            kind=r.kind,
        )
        for _, r in keyed
    ]


def _named_lots(
    session: Session, fills: list[FillRow], names: dict[int, str]
) -> dict[str, tuple[Named, ...]]:
    """Execution id → the lots its decision named (``Decision.lots``), for the fills
    whose decisions named any."""
    runs = {r.run_id for r in fills}
    named: dict[tuple[str, str], tuple[Named, ...]] = {}
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
    specific: dict[str, tuple[Named, ...]] = dict(_named_lots(session, fills, names))
    imported = imported_fills(session, account) if account else None
    ordered = _fills(fills, names, imported.fills if imported else ())
    if imported is not None:
        specific.update(_broker_lots(imported.closed_lots, ordered))
    return compute_lots(ordered, method, specific, wash_sale_options=wash_sale_options)


def _broker_lots(
    closed: dict[str, list[tuple[dt.datetime, Decimal]]], fills: list[LedgerFill]
) -> dict[str, tuple[Named, ...]]:
    """Sale execution id → the lots the broker says it relieved, each as the fill
    that opened it (the one of the sale's symbol, on the other side, at that
    second) and the quantity taken; a lot with no such fill is named by its
    opening time, which no lot has, so the rebuild notes it."""
    by_id = {f.execution_id: f for f in fills}
    named: dict[str, tuple[Named, ...]] = {}
    for sale_id, lots in closed.items():
        sale = by_id.get(sale_id)
        if sale is None:
            continue
        openings = [
            f for f in fills if f.symbol == sale.symbol and f.side != sale.side and f.ts < sale.ts
        ]
        entries: list[Named] = []
        for opened_at, quantity in lots:
            second = opened_at.replace(microsecond=0)
            match = [f for f in openings if f.ts.replace(microsecond=0) == second]
            if match:
                entries += [(f.execution_id, quantity) for f in match[:1]]
            else:
                entries.append((f"opened {opened_at.isoformat()}", quantity))
        named[sale_id] = tuple(entries)
    return named


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
    #: Each imported sale's reporting, by its execution id (:func:`sale_reporting`).
    reporting: dict[str, str] = {}  # noqa: RUF012 - a NamedTuple's default, never mutated


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
    return Rebuilt(*read_lots(engine, where), result.notes, sale_reporting(engine, account, where))


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
