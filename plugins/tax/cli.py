"""``tradepipe tax …``: tax lots and the year's realized gains as Form 8949 rows.

The lots are rebuilt from every fill in the ledger each time (see
:mod:`tradepipe.plugins.tax.lots_db`). ``tradepipe ledger lots`` and
``ledger tax-report`` show the same figures.
"""

from __future__ import annotations

from pathlib import Path

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.plugins.ledger.cli import (
    _rebuilt,
    account_options,
    method_option,
    print_open_lots,
)
from tradepipe.plugins.tax.documents import (
    description,
    form_8949_rows,
    form_money,
    lots_document,
    term_totals,
    write_csv,
)


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
