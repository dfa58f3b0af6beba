"""Tax lots and Form 8949 rows as plain data: what ``tradepipe tax`` prints and the API returns.

Money on the form is in cents, always two places (the README's "Money and
rounding"): each row's proceeds, basis and adjustment are rounded to the cent,
half to even, its gain is the rounded proceeds less the rounded basis plus the
rounded adjustment, and every total is a sum of rounded rows, so the form adds
up row by row and in its totals.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from tradepipe.money import ZERO, cents, fmt, money_text
from tradepipe.plugins.ledger.schema import LotRealizationRow, TaxLotRow
from tradepipe.plugins.tax.lots import Term

#: Form 8949 columns (a)-(h), the term (Part I short-term, Part II long-term) and the box.
FORM_8949 = (
    "description",
    "date_acquired",
    "date_sold",
    "proceeds",
    "cost_basis",
    "adjustment_code",
    "adjustment_amount",
    "gain_or_loss",
    "term",
    "box",
)
#: How a report that covers every year says so, where a year would be.
ALL_YEARS = "all years"
#: Column (b) of a row combining lots acquired on different dates.
VARIOUS = "VARIOUS"
_AMOUNTS = ("proceeds", "cost_basis", "adjustment_amount", "gain_or_loss")


class Reporting(StrEnum):
    """What the broker's Form 1099-B says of a sale, which picks its Form 8949 box."""

    BASIS_REPORTED = "basis_reported"
    BASIS_NOT_REPORTED = "basis_not_reported"
    NO_1099B = "no_1099b"


#: Box per term and reporting: A-C in Part I (short-term), D-F in Part II (long-term).
BOXES = {
    (Term.SHORT.value, Reporting.BASIS_REPORTED): "A",
    (Term.SHORT.value, Reporting.BASIS_NOT_REPORTED): "B",
    (Term.SHORT.value, Reporting.NO_1099B): "C",
    (Term.LONG.value, Reporting.BASIS_REPORTED): "D",
    (Term.LONG.value, Reporting.BASIS_NOT_REPORTED): "E",
    (Term.LONG.value, Reporting.NO_1099B): "F",
}

#: How each sale was reported; the seam for reporting known per import or per lot.
ReportingOf = Callable[[LotRealizationRow], Reporting]


def reporting(basis_reported: bool, by_sale: Mapping[str, str] | None = None) -> ReportingOf:
    """How each sale was reported: as its import says (``by_sale``: the sale's
    execution id → a :class:`Reporting` value), else as ``[tax] basis_reported`` says."""
    answer = Reporting.BASIS_REPORTED if basis_reported else Reporting.BASIS_NOT_REPORTED
    known = {sale: Reporting(how) for sale, how in (by_sale or {}).items()}
    return lambda row: known.get(row.close_execution_id, answer)


def description(row: LotRealizationRow) -> str:
    """Column (a): quantity and security; an option lot says its contracts."""
    return _described(row, row.quantity)


def _described(row: LotRealizationRow, quantity: Decimal) -> str:
    shown = fmt(quantity)
    if row.multiplier != 1:
        return f"{shown} {row.symbol} (x{fmt(row.multiplier)})"
    side = " (short sale)" if row.side == "short" else ""
    return f"{shown} sh. {row.symbol}{side}"


def form_8949_rows(
    closed: Sequence[LotRealizationRow],
    year: int | None,
    reporting_of: ReportingOf | None = None,
    combine: bool = False,
) -> list[dict[str, str]]:
    """The pieces sold in ``year`` (``None``: every year) as Form 8949 rows,
    short-term first, each by date sold.

    :param reporting_of: how each sale was reported (default: its basis was).
    :param combine: one row per sale (closing fill), term and box, with date
        acquired ``VARIOUS`` when its lots were acquired on different dates.
    """
    reported = reporting_of or reporting(True)
    chosen = [r for r in closed if year is None or r.sold.year == year]
    groups: dict[tuple[object, ...], list[LotRealizationRow]] = {}
    for at, row in enumerate(
        sorted(chosen, key=lambda r: (r.term != Term.SHORT.value, r.sold, r.id or 0))
    ):
        box = BOXES[(row.term, reported(row))]
        key = (row.close_execution_id, row.term, box) if combine else (at, box)
        groups.setdefault(key, []).append(row)
    return [_row(lots, BOXES[(lots[0].term, reported(lots[0]))]) for lots in groups.values()]


def _row(lots: list[LotRealizationRow], box: str) -> dict[str, str]:
    """One form row for ``lots`` (one, or the lots of one sale): amounts rounded per lot."""
    first = lots[0]
    proceeds = sum((cents(r.proceeds) for r in lots), ZERO)
    basis = sum((cents(r.basis) for r in lots), ZERO)
    adjustment = sum((cents(r.adjustment) for r in lots), ZERO)
    acquired = {r.acquired for r in lots}
    return {
        "description": _described(first, sum((r.quantity for r in lots), ZERO)),
        "date_acquired": first.acquired.strftime("%m/%d/%Y") if len(acquired) == 1 else VARIOUS,
        "date_sold": first.sold.strftime("%m/%d/%Y"),
        "proceeds": form_money(proceeds),
        "cost_basis": form_money(basis),
        "adjustment_code": "W" if adjustment else "",
        "adjustment_amount": form_money(adjustment) if adjustment else "",
        "gain_or_loss": form_money(proceeds - basis + adjustment),
        "term": first.term,
        "box": box,
    }


def form_money(value: Decimal) -> str:
    """Money on the form: in cents, always two places (see Money and rounding)."""
    return money_text(value) or "0.00"


def _sums(rows: Sequence[dict[str, str]]) -> dict[str, str]:
    return {key: form_money(sum((Decimal(r[key] or "0") for r in rows), ZERO)) for key in _AMOUNTS}


def term_totals(rows: Sequence[dict[str, str]]) -> dict[str, dict[str, str]]:
    """Totals of proceeds, basis, adjustments and gain per term, sums of the rounded rows."""
    return {t.value: _sums([r for r in rows if r["term"] == t.value]) for t in Term}


def box_totals(rows: Sequence[dict[str, str]]) -> dict[str, dict[str, str]]:
    """The same totals per box that has rows (a Form 8949 page's line 2), A to F."""
    boxes = sorted({r["box"] for r in rows})
    return {box: _sums([r for r in rows if r["box"] == box]) for box in boxes}


def write_csv(
    path: Path,
    rows: Sequence[dict[str, str]],
    totals: dict[str, dict[str, str]],
    boxes: dict[str, dict[str, str]],
) -> None:
    """The rows, one total row per box (``Total box A``), then one per term (``Total short``)."""
    terms = {box: term for (term, _), box in BOXES.items()}
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=FORM_8949)
        out.writeheader()
        out.writerows(rows)
        for box, figures in boxes.items():
            out.writerow(
                {"description": f"Total box {box}", "term": terms[box], "box": box, **figures}
            )
        for term, figures in totals.items():
            out.writerow({"description": f"Total {term}", "term": term, **figures})


def report_document(
    closed: Sequence[LotRealizationRow],
    year: int | None,
    method: str,
    reporting_of: ReportingOf | None = None,
    combine: bool = False,
) -> dict[str, Any]:
    """The report ``tradepipe tax report --json`` prints and the API returns, less the
    account: the rows of :func:`form_8949_rows` and their totals by box and by term."""
    rows = form_8949_rows(closed, year, reporting_of, combine)
    return {
        "year": year,
        "period": ALL_YEARS if year is None else str(year),
        "method": method,
        "combined": combine,
        "rows": rows,
        "box_totals": box_totals(rows),
        "totals": term_totals(rows),
    }


def lots_document(
    method: str,
    open_rows: list[TaxLotRow],
    closed_rows: list[LotRealizationRow],
    which: str | None = None,
) -> dict[str, Any]:
    """``{"method", "open", "closed"}`` as JSON; ``which`` (``open``/``closed``) keeps one."""
    data: dict[str, Any] = {"method": method}
    if which != "closed":
        data["open"] = [r.model_dump(mode="json", exclude={"id"}) for r in open_rows]
    if which != "open":
        data["closed"] = [r.model_dump(mode="json", exclude={"id"}) for r in closed_rows]
    return data
