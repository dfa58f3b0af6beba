"""``tradepipe tax …``: tax lots and the year's realized gains as Form 8949 rows.

The lots are rebuilt from every fill in the ledger each time (see
:mod:`tradepipe.plugins.tax.lots_db`), as ``[tax]`` says. ``tradepipe ledger
lots`` and ``ledger tax-report`` show the same figures (without
``[tax] wash_sale_options``).
"""

from __future__ import annotations

from pathlib import Path

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.plugins.ledger.cli import (
    account_lots,
    account_options,
    method_option,
    print_open_lots,
)
from tradepipe.plugins.tax.documents import (
    ALL_YEARS,
    FORM_8949,
    description,
    form_money,
    lots_document,
    report_document,
    reporting,
    write_csv,
)

#: The table's headings for the columns of :data:`FORM_8949`.
_COLUMNS = [
    "description",
    "acquired",
    "sold",
    "proceeds",
    "basis",
    "code",
    "adj.",
    "gain",
    "term",
    "box",
]


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
    found = account_lots(app, method, account, run_id, as_json)
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
                        Id(r.name or r.lot_id),
                        description(r),
                        r.acquired.isoformat(),
                        r.sold.isoformat(),
                        form_money(r.proceeds),
                        form_money(r.basis),
                        form_money(r.adjustment) if r.adjustment else "",
                        form_money(r.gain),
                        r.term,
                    )
                    for r in closed_rows
                ],
            )
        )


@tax.command("report")
@click.option("--year", type=int, metavar="YYYY", help="The tax year.")
@click.option(
    "--all", "all_years", is_flag=True, help="Every year's sales instead (not one year's form)."
)
@click.option(
    "--combine",
    is_flag=True,
    help="One row per sale: its lots of one term and box summed, acquired VARIOUS if they differ.",
)
@method_option
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the Form 8949 rows and the totals by box and by term to this CSV file.",
)
@account_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def report(
    app: AppContext,
    year: int | None,
    all_years: bool,
    combine: bool,
    method: str,
    csv_path: Path | None,
    account: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """One account's sales in a year (or every year) as Form 8949 rows: box A-F,
    code W for wash sales, totals by box and by term."""
    if (year is not None) == all_years:
        raise click.UsageError("give --year YYYY or --all")
    found = account_lots(app, method, account, run_id, as_json)
    reported = reporting(app.settings.tax.basis_reported)
    data = {**found.head(), **report_document(found.closed, year, method, reported, combine)}
    rows, totals, boxes = data["rows"], data["totals"], data["box_totals"]
    if csv_path is not None:
        write_csv(csv_path, rows, totals, boxes)
    if as_json:
        print_json(data)
        return
    out = console()
    period = f"{ALL_YEARS}, not one tax year's form" if year is None else str(year)
    out.print(
        table(
            f"Form 8949 rows for {period} ({method})",
            _COLUMNS,
            [tuple(r[key] for key in FORM_8949) for r in rows],
        )
    )
    figures = ["proceeds", "basis", "adjustments", "gain or loss"]
    out.print(
        table(
            "Totals by box",
            ["box", *figures],
            [(box, *sums.values()) for box, sums in boxes.items()],
        )
    )
    out.print(
        table(
            "Totals by term",
            ["term", *figures],
            [(term, *sums.values()) for term, sums in totals.items()],
        )
    )
    if csv_path is not None:
        out.print(f"Wrote {len(rows)} row(s) and the totals to {csv_path}")
