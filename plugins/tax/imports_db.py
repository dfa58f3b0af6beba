"""Imported trades in the ledger: stored once per execution, with the file they came from.

:func:`store_import` writes what :func:`~tradepipe.plugins.tax.outside.read_trades`
read, in one transaction: a file is imported whole or not at all. An
execution the account already has (from an earlier import, or a fill
tradepipe itself recorded, as its IBKR fills carry IBKR's execution ids) is
not added again, so importing overlapping reports, or one report twice, adds
each trade once. :func:`imported_fills` gives the rebuild of the tax lots
what the imports hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from tradepipe.errors import ConfigError, PersistenceError
from tradepipe.logs import mask_account
from tradepipe.plugins.ledger.schema import (
    FillRow,
    ImportedFillRow,
    ImportedLotRow,
    ImportRow,
    RunRow,
)
from tradepipe.plugins.tax.outside import OutsideTrade, Parsed, Skipped


@dataclass
class ImportResult:
    """What an import did (or, dry, would do)."""

    import_id: str
    account: str
    source: str
    format: str
    reporting: str
    read: int
    added: list[OutsideTrade] = field(default_factory=list)
    #: Executions an earlier import already holds.
    imported_before: int = 0
    #: Executions tradepipe recorded itself (the same execution id in the account's runs).
    in_ledger: int = 0
    #: Earlier imported trades this file's cancellations undid: their execution ids.
    cancelled: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    summaries: int = 0
    #: The import that already read this very file for this account, if one did.
    same_file: ImportRow | None = None
    dry_run: bool = False

    def document(self) -> dict[str, Any]:
        """As ``tradepipe tax import --json`` prints it."""
        return {
            "import_id": self.import_id,
            "account": self.account,
            "source": self.source,
            "format": self.format,
            "reporting": self.reporting,
            "dry_run": self.dry_run,
            "read": self.read,
            "added": len(self.added),
            "imported_before": self.imported_before,
            "in_ledger": self.in_ledger,
            "cancelled": self.cancelled,
            "summary_rows": self.summaries,
            "skipped": [{"line": s.line, "reason": s.reason} for s in self.skipped],
            "same_file": self.same_file.import_id if self.same_file else None,
        }


def account_key(given: str | None, parsed: Parsed) -> tuple[str, list[Skipped]]:
    """The ledger account the file's trades go to, and the trades of other accounts
    left out.

    ``given`` is a ledger account key (``account:U1234567``) or a broker account
    id (``U1234567``, or masked as printed, ``U***4567``, when it is one of the
    file's); without it the file must name exactly one account.

    :raises ConfigError: no account to be had, or one that contradicts the file.
    """
    named = sorted(
        {t.account for t in parsed.trades if t.account}
        | {c.account for c in parsed.cancels if c.account}
    )
    if not given:
        if len(named) == 1:
            return f"account:{named[0]}", []
        if named:
            raise ConfigError(
                f"the file holds the trades of {len(named)} accounts "
                f"({', '.join(mask_account(n) for n in named)}); give --account to import "
                "one of them",
                key="account",
            )
        raise ConfigError(
            "the file names no account: give --account (a broker account id, or an "
            "account from `tradepipe ledger accounts`)",
            key="account",
        )
    wanted = given.strip().removeprefix("account:")
    own = next((n for n in named if wanted in (n, mask_account(n))), None)
    if own is None and named:
        raise ConfigError(
            f"--account {given} is not the account the file's trades are for "
            f"({', '.join(mask_account(n) for n in named)})",
            key="account",
        )
    if own is None and "*" in wanted:
        raise ConfigError(
            f"--account {given} is masked and the file names no account: give the whole account id",
            key="account",
        )
    own = own or wanted
    key = given.strip() if ":" in given and not given.startswith("account:") else f"account:{own}"
    others = [t for t in parsed.trades if t.account and t.account != own]
    parsed.trades[:] = [t for t in parsed.trades if t not in others]
    parsed.cancels[:] = [c for c in parsed.cancels if not c.account or c.account == own]
    return key, [Skipped(t.line, "another account's trade") for t in others]


def store_import(
    engine: Engine,
    parsed: Parsed,
    *,
    account: str,
    source: str,
    data: bytes,
    reporting: str,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    where: str = "",
) -> ImportResult:
    """Add ``parsed``'s trades to ``account``'s imported fills, in one transaction.

    :param data: the file's bytes: its hash tells an import of the same file.
    :param dry_run: work out what would be added, change nothing.
    :raises PersistenceError: the ledger could not be read or written.
    """
    now = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(data).hexdigest()
    result = ImportResult(
        import_id=f"imp-{now:%Y%m%dT%H%M%S}-{digest[:8]}",
        account=account,
        source=source,
        format=parsed.format,
        reporting=reporting,
        read=len(parsed.trades),
        skipped=list(parsed.skipped),
        summaries=parsed.summaries,
        dry_run=dry_run,
    )
    try:
        # One transaction: reads, then writes, then commit; any failure rolls it all back.
        with Session(engine) as session:
            result.same_file = session.scalars(
                select(ImportRow).where(
                    col(ImportRow.sha256) == digest, col(ImportRow.account) == account
                )
            ).first()
            known = _known_executions(session, account)
            for trade in parsed.trades:
                origin = known.get(trade.execution_id)
                if origin == "import":
                    result.imported_before += 1
                elif origin == "ledger":
                    result.in_ledger += 1
                else:
                    result.added.append(trade)
                    known[trade.execution_id] = "import"
            undone = _cancelled(session, parsed, result)
            if dry_run or (not result.added and not undone):
                return result
            _write(session, parsed, result, digest, now)
            if undone:
                session.execute(
                    update(ImportedFillRow)
                    .where(col(ImportedFillRow.id).in_(undone))
                    .values(cancelled_by=result.import_id)
                )
            session.commit()
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not import into the ledger at {where}") from exc
    return result


def _known_executions(session: Session, account: str) -> dict[str, str]:
    """Execution id → ``import`` or ``ledger`` for what ``account`` already holds."""
    known = {
        eid: "import"
        for eid in session.scalars(
            select(col(ImportedFillRow.execution_id)).where(col(ImportedFillRow.account) == account)
        )
    }
    runs = select(col(RunRow.run_id)).where(col(RunRow.account) == account)
    for eid in session.scalars(
        select(col(FillRow.execution_id)).where(col(FillRow.run_id).in_(runs))
    ):
        known[eid] = "ledger"
    return known


def _cancelled(session: Session, parsed: Parsed, result: ImportResult) -> list[int]:
    """The rows of the earlier imported trades this file's cancellations undo."""
    undone: list[int] = []
    for cancel in parsed.cancels:
        chosen = select(ImportedFillRow).where(
            col(ImportedFillRow.account) == result.account,
            col(ImportedFillRow.cancelled_by).is_(None),
        )
        if cancel.transaction_id:
            chosen = chosen.where(col(ImportedFillRow.transaction_id) == cancel.transaction_id)
        else:
            chosen = chosen.where(col(ImportedFillRow.trade_id) == cancel.trade_id)
        row = session.scalars(chosen).first()
        if row is None or row.id in undone:
            result.skipped.append(
                Skipped(cancel.line, "cancels a trade that is in neither this file nor an import")
            )
            continue
        assert row.id is not None
        undone.append(row.id)
        result.cancelled.append(row.execution_id)
    return undone


def _write(
    session: Session, parsed: Parsed, result: ImportResult, digest: str, now: dt.datetime
) -> None:
    session.execute(
        insert(ImportRow),
        [
            {
                "import_id": result.import_id,
                "account": result.account,
                "source": result.source,
                "format": result.format,
                "sha256": digest,
                "imported_at": now,
                "reporting": result.reporting,
                "added": len(result.added),
                "skipped": len(result.skipped),
            }
        ],
    )
    if result.added:
        session.execute(
            insert(ImportedFillRow),
            [
                {
                    "import_id": result.import_id,
                    "account": result.account,
                    "execution_id": t.execution_id,
                    "transaction_id": t.transaction_id,
                    "trade_id": t.trade_id,
                    "symbol": t.symbol,
                    "side": t.side,
                    "quantity": t.quantity,
                    "price": t.price,
                    "commission": t.commission,
                    "multiplier": t.multiplier,
                    "ts": t.ts,
                    "kind": t.kind,
                    "line": t.line,
                }
                for t in result.added
            ],
        )
    added = {t.execution_id for t in result.added}
    lots = [lot for lot in parsed.closed_lots if lot.execution_id in added]
    if lots:
        session.execute(
            insert(ImportedLotRow),
            [
                {
                    "import_id": result.import_id,
                    "account": result.account,
                    "execution_id": lot.execution_id,
                    "symbol": lot.symbol,
                    "quantity": lot.quantity,
                    "opened_at": lot.opened_at,
                }
                for lot in lots
            ],
        )


def list_imports(engine: Engine, account: str | None = None, where: str = "") -> list[ImportRow]:
    """The imports, the latest first (``account``'s only, when given)."""
    try:
        with Session(engine) as session:
            chosen = select(ImportRow).order_by(col(ImportRow.imported_at).desc())
            if account:
                chosen = chosen.where(col(ImportRow.account) == account)
            return list(session.scalars(chosen))
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read the imports from the ledger at {where}") from exc


@dataclass(frozen=True)
class Imported:
    """What the imports give the rebuild of one account's lots."""

    fills: Sequence[ImportedFillRow]
    #: Sale execution id → (opened at, quantity) of each lot the broker says it relieved.
    closed_lots: dict[str, list[tuple[dt.datetime, Decimal]]]


def imported_fills(session: Session, account: str) -> Imported:
    """``account``'s imported fills that still count (not cancelled), and their
    closed lots (each sale's reporting: :func:`sale_reporting`)."""
    fills = list(
        session.scalars(
            select(ImportedFillRow).where(
                col(ImportedFillRow.account) == account,
                col(ImportedFillRow.cancelled_by).is_(None),
            )
        )
    )
    lots: dict[str, list[tuple[dt.datetime, Decimal]]] = {}
    for row in session.scalars(
        select(ImportedLotRow)
        .where(col(ImportedLotRow.account) == account)
        .order_by(col(ImportedLotRow.id))
    ):
        lots.setdefault(row.execution_id, []).append((row.opened_at, row.quantity))
    return Imported(fills, lots)


def sale_reporting(engine: Engine, account: str, where: str = "") -> dict[str, str]:
    """Execution id of each of ``account``'s imported trades that still counts → how
    its import says the broker reported it (a
    :class:`~tradepipe.plugins.tax.documents.Reporting` value)."""
    if not account:
        return {}
    try:
        with Session(engine) as session:
            return _reporting(session, account)
    except SQLAlchemyError as exc:
        raise PersistenceError(f"could not read the imports from the ledger at {where}") from exc


def _reporting(session: Session, account: str) -> dict[str, str]:
    chosen = (
        select(col(ImportedFillRow.execution_id), col(ImportRow.reporting))
        .join(ImportRow, col(ImportRow.import_id) == col(ImportedFillRow.import_id))
        .where(
            col(ImportedFillRow.account) == account,
            col(ImportedFillRow.cancelled_by).is_(None),
        )
    )
    return {execution: how for execution, how in session.execute(chosen).all()}
