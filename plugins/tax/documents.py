"""Tax lots and Form 8949 rows as plain data: what ``tradepipe tax`` prints and the API returns.

Money on the form is in cents, always two places (the README's "Money and rounding").
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradepipe.money import ZERO, fmt, money_text
from tradepipe.plugins.ledger.schema import LotRealizationRow, TaxLotRow
from tradepipe.plugins.tax.lots import Term

#: Form 8949 columns (a)-(h), and the term (Part I short-term, Part II long-term).
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
)


def description(row: LotRealizationRow) -> str:
    """Column (a): quantity and security; an option lot says its contracts."""
    quantity = fmt(row.quantity)
    if row.multiplier != 1:
        return f"{quantity} {row.symbol} (x{fmt(row.multiplier)})"
    side = " (short sale)" if row.side == "short" else ""
    return f"{quantity} sh. {row.symbol}{side}"


def form_8949_rows(closed: Sequence[LotRealizationRow], year: int) -> list[dict[str, str]]:
    """The pieces sold in ``year`` as Form 8949 rows, short-term first, each by date sold."""
    rows = []
    for row in sorted(closed, key=lambda r: (r.term != Term.SHORT.value, r.sold, r.id or 0)):
        if row.sold.year != year:
            continue
        rows.append(
            {
                "description": description(row),
                "date_acquired": row.acquired.strftime("%m/%d/%Y"),
                "date_sold": row.sold.strftime("%m/%d/%Y"),
                "proceeds": form_money(row.proceeds),
                "cost_basis": form_money(row.basis),
                "adjustment_code": "W" if row.adjustment else "",
                "adjustment_amount": form_money(row.adjustment) if row.adjustment else "",
                "gain_or_loss": form_money(row.gain),
                "term": row.term,
            }
        )
    return rows


def form_money(value: Decimal) -> str:
    """Money on the form: in cents, always two places (see Money and rounding)."""
    return money_text(value) or "0.00"


def term_totals(rows: Sequence[dict[str, str]]) -> dict[str, dict[str, str]]:
    """Totals of proceeds, basis, adjustments and gain per term (the form's line 2 and 9)."""
    sums: dict[str, list[Decimal]] = {t.value: [ZERO, ZERO, ZERO, ZERO] for t in Term}
    for row in rows:
        figures = sums[row["term"]]
        for i, key in enumerate(("proceeds", "cost_basis", "adjustment_amount", "gain_or_loss")):
            figures[i] += Decimal(row[key] or "0")
    return {
        term: {
            "proceeds": form_money(p),
            "cost_basis": form_money(b),
            "adjustment_amount": form_money(a),
            "gain_or_loss": form_money(g),
        }
        for term, (p, b, a, g) in sums.items()
    }


def write_csv(
    path: Path, rows: Sequence[dict[str, str]], totals: dict[str, dict[str, str]]
) -> None:
    """The rows, then one total row per term (description ``Total short``/``Total long``)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, fieldnames=FORM_8949)
        out.writeheader()
        out.writerows(rows)
        for term, figures in totals.items():
            out.writerow({"description": f"Total {term}", "term": term, **figures})


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
