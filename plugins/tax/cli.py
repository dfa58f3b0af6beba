"""``tradepipe tax …``: tax lots and the year's realized gains as Form 8949 rows.

The lots are rebuilt from every fill in the ledger each time (see
:mod:`tradepipe.plugins.tax.lots_db`). ``tradepipe ledger lots`` and
``ledger tax-report`` show the same figures.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.money import ZERO, fmt, money_text
from tradepipe.plugins.ledger.cli import (
    _rebuilt,
    account_options,
    lots_document,
    method_option,
    print_open_lots,
)
from tradepipe.plugins.ledger.schema import LotRealizationRow
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
                "proceeds": _m(row.proceeds),
                "cost_basis": _m(row.basis),
                "adjustment_code": "W" if row.adjustment else "",
                "adjustment_amount": _m(row.adjustment) if row.adjustment else "",
                "gain_or_loss": _m(row.gain),
                "term": row.term,
            }
        )
    return rows


def _m(value: Decimal) -> str:
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
            "proceeds": _m(p),
            "cost_basis": _m(b),
            "adjustment_amount": _m(a),
            "gain_or_loss": _m(g),
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


@click.group()
def tax() -> None:
    """Tax lots and realized gains from the ledger's fills."""


@tax.command("lots")
@method_option
@click.option("--open", "which", flag_value="open", help="Only the open lots.")
@click.option("--closed", "which", flag_value="closed", help="Only the closed (realized) lots.")
@click.option("--symbol", help="Only this symbol's lots.")
@account_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def lots(
    app: AppContext,
    method: str,
    which: str | None,
    symbol: str | None,
    account: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """Open lots and closed (realized) lots of one account, rebuilt from its fills."""
    found = _rebuilt(app, method, account, run_id, as_json)
    open_rows, closed_rows = found.open, found.closed
    if symbol:
        open_rows = [r for r in open_rows if r.symbol == symbol.upper()]
        closed_rows = [r for r in closed_rows if r.symbol == symbol.upper()]
    data = {**found.head(), **lots_document(method, open_rows, closed_rows, which)}
    if as_json:
        print_json(data)
        return
    if "open" in data:
        print_open_lots(method, open_rows)
    if "closed" in data:
        console().print(
            table(
                f"Closed lots ({method})",
                [
                    "lot",
                    "description",
                    "acquired",
                    "sold",
                    "proceeds",
                    "basis",
                    "W",
                    "gain",
                    "term",
                ],
                [
                    (
                        Id(r.lot_id),
                        description(r),
                        r.acquired.isoformat(),
                        r.sold.isoformat(),
                        _m(r.proceeds),
                        _m(r.basis),
                        _m(r.adjustment) if r.adjustment else "",
                        _m(r.gain),
                        r.term,
                    )
                    for r in closed_rows
                ],
            )
        )


@tax.command("report")
@click.option("--year", type=int, required=True, metavar="YYYY", help="The tax year.")
@method_option
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the Form 8949 rows and the totals by term to this CSV file.",
)
@account_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def report(
    app: AppContext,
    year: int,
    method: str,
    csv_path: Path | None,
    account: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """One account's sales in a year as Form 8949 rows (code W for wash sales), totals by term."""
    found = _rebuilt(app, method, account, run_id, as_json)
    rows = form_8949_rows(found.closed, year)
    totals = term_totals(rows)
    if csv_path is not None:
        write_csv(csv_path, rows, totals)
    if as_json:
        print_json({**found.head(), "year": year, "method": method, "rows": rows, "totals": totals})
        return
    out = console()
    out.print(
        table(
            f"Form 8949 rows for {year} ({method})",
            [
                "description",
                "acquired",
                "sold",
                "proceeds",
                "basis",
                "code",
                "adj.",
                "gain",
                "term",
            ],
            [tuple(r.values()) for r in rows],
        )
    )
    out.print(
        table(
            "Totals by term",
            ["term", "proceeds", "basis", "adjustments", "gain or loss"],
            [(term, *figures.values()) for term, figures in totals.items()],
        )
    )
    if csv_path is not None:
        out.print(f"Wrote {len(rows)} row(s) and the totals to {csv_path}")
