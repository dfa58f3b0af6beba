"""``tradepipe tax …``: tax lots and the year's realized gains as Form 8949 rows.

The lots are rebuilt from every fill in the ledger each time (see
:mod:`tradepipe.plugins.tax.lots_db`), as ``[tax]`` says. ``tradepipe ledger
lots`` and ``ledger tax-report`` show the same figures (without
``[tax] wash_sale_options``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, print_json, table
from tradepipe.errors import ConfigError
from tradepipe.plugins.ledger.cli import (
    account_lots,
    account_options,
    command_ledger,
    method_option,
    print_open_lots,
)
from tradepipe.plugins.tax.documents import (
    ALL_YEARS,
    FORM_8949,
    Reporting,
    description,
    form_money,
    lots_document,
    report_document,
    reporting,
    write_csv,
)
from tradepipe.plugins.tax.outside import FORMATS
from tradepipe.sink import account_key_shown, account_label

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
@click.option("--year", type=click.IntRange(1900, 2200), metavar="YYYY", help="The tax year.")
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
    reported = reporting(app.settings.tax.basis_reported, found.reporting)
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


#: ``--reporting``'s choices → what the ledger records (:class:`Reporting`).
_REPORTING = {
    "basis-reported": Reporting.BASIS_REPORTED,
    "basis-not-reported": Reporting.BASIS_NOT_REPORTED,
    "no-1099b": Reporting.NO_1099B,
}


@tax.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="ibkr-xml / ibkr-csv: IBKR's Flex Query trade report; csv: one trade per row.",
)
@click.option(
    "--account",
    metavar="ACCOUNT",
    help="The broker account id (U1234567) or ledger account the trades are for "
    "(default: the one the file names).",
)
@click.option(
    "--reporting",
    type=click.Choice(list(_REPORTING)),
    help="How the broker's Form 1099-B reports these sales, which picks their Form 8949 "
    "box (default: as [tax] basis_reported says).",
)
@click.option(
    "--timezone",
    "zone_name",
    default="America/New_York",
    show_default=True,
    metavar="ZONE",
    help="The time zone of the file's times that carry no offset.",
)
@click.option("--dry-run", is_flag=True, help="Read and check the file; import nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def import_trades(
    app: AppContext,
    file: Path,
    fmt: str,
    account: str | None,
    reporting: str | None,
    zone_name: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Add trades made outside tradepipe (TWS, the mobile app, another tool) to an
    account's tax lots, from FILE: IBKR's Flex Query trade report (XML or CSV) or
    a CSV with one trade per row.

    Each execution is added once: importing the same or an overlapping report
    again, or one holding trades tradepipe recorded itself, adds only what is
    new. Rows that are not trades of stocks or options in US dollars are left
    out and listed with why.
    """
    from tradepipe.pipeline import make_component
    from tradepipe.plugins.tax.imports_db import account_key, store_import
    from tradepipe.plugins.tax.outside import read_trades

    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(
            f"unknown time zone {zone_name!r}", param_hint="--timezone"
        ) from None
    parsed = read_trades(file, fmt, zone)
    if not parsed.trades and not parsed.cancels and parsed.skipped:
        first = parsed.skipped[0]
        raise ConfigError(
            f"no trade could be read from {file.name}: {len(parsed.skipped)} row(s) left out, "
            f"the first (line {first.line}) as {first.reason}",
            key="file",
        )
    key, others = account_key(account, parsed)
    parsed.skipped.extend(others)
    how = (
        _REPORTING[reporting]
        if reporting
        else Reporting.BASIS_REPORTED
        if app.settings.tax.basis_reported
        else Reporting.BASIS_NOT_REPORTED
    )
    sink = make_component(app.host, app.settings, "sink", "sql")
    engine = sink.engine()
    try:
        result = store_import(
            engine,
            parsed,
            account=key,
            source=file.name,
            data=file.read_bytes(),
            reporting=how.value,
            dry_run=dry_run,
            where=sink.where,
        )
    finally:
        engine.dispose()
    data = result.document()
    data["account"] = account_key_shown(key)
    if as_json:
        print_json(data)
        return
    _print_import(result, key)


def _print_import(result: Any, key: str) -> None:
    out = console()
    if result.same_file is not None:
        out.print(
            f"{result.source} was imported before, as {result.same_file.import_id}: "
            "only what it did not add is added now"
        )
    verb = "Would add" if result.dry_run else "Added"
    out.print(
        f"{verb} {len(result.added)} of {result.read} trade(s) from {result.source} "
        f"({result.format}) to {account_label(key)} ({account_key_shown(key)}), "
        f"reported as {result.reporting.replace('_', ' ')}"
        + ("" if result.dry_run or not result.added else f": import {result.import_id}")
    )
    if result.imported_before:
        out.print(f"{result.imported_before} already imported earlier")
    if result.in_ledger:
        out.print(f"{result.in_ledger} already in the ledger from tradepipe's own runs")
    if result.cancelled:
        out.print(f"cancelled earlier imported trade(s): {', '.join(result.cancelled)}")
    if result.summaries:
        out.print(f"{result.summaries} order or summary row(s) passed over")
    if result.skipped:
        out.print(
            table(
                f"Left out ({len(result.skipped)})",
                ["line", "why"],
                [(s.line, s.reason) for s in result.skipped],
            )
        )


@tax.command("imports")
@click.option("--account", metavar="ACCOUNT", help="Only this account's imports.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def imports(app: AppContext, account: str | None, as_json: bool) -> None:
    """The files imported with `tradepipe tax import`, the latest first."""
    from tradepipe.plugins.tax.imports_db import list_imports

    led = command_ledger(app)
    key = led.account(account) if account else None
    rows = list_imports(led.engine, key, led.where)
    data = [
        {
            **r.model_dump(mode="json", exclude={"id", "sha256"}),
            "account": account_key_shown(r.account),
        }
        for r in rows
    ]
    if as_json:
        print_json(data)
        return
    console().print(
        table(
            "Imports",
            ["import", "file", "format", "account", "imported", "added", "left out", "reporting"],
            [
                (
                    Id(r.import_id),
                    r.source,
                    r.format,
                    account_label(r.account),
                    f"{r.imported_at:%Y-%m-%d %H:%M}",
                    r.added,
                    r.skipped,
                    r.reporting.replace("_", " "),
                )
                for r in rows
            ],
        )
    )
