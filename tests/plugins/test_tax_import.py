"""``tradepipe tax import``: a year of IBKR trades beside tradepipe's own, to a Form 8949
whose totals match the broker's Form 1099-B (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.plugins.ledger.db import open_engine

ACCOUNT = "U7654321"

#: What tradepipe traded itself through IBKR: its fills carry IBKR's execution ids.
OWN_FILLS = [
    ("0000e1.01", "AAPL", "buy", "100", "150", "1", "2025-01-10T15:00:00+00:00"),
    ("0000e1.02", "AAPL", "sell", "100", "140", "1", "2025-02-03T15:00:00+00:00"),
]


def trade(
    tx: str,
    symbol: str,
    when: str,
    quantity: str,
    price: str,
    commission: str,
    exec_id: str = "",
    *,
    asset: str = "STK",
    kind: str = "ExchTrade",
    notes: str = "",
    multiplier: str = "1",
    orig: str = "",
) -> str:
    side = "BUY" if not quantity.startswith("-") else "SELL"
    if kind == "TradeCancel":
        side += " (Ca.)"
    return (
        f'<Trade accountId="{ACCOUNT}" currency="USD" assetCategory="{asset}" '
        f'symbol="{symbol}" dateTime="{when}" transactionType="{kind}" quantity="{quantity}" '
        f'tradePrice="{price}" ibCommission="{commission}" ibCommissionCurrency="USD" '
        f'buySell="{side}" transactionID="{tx}" ibExecID="{exec_id}" multiplier="{multiplier}" '
        f'origTransactionID="{orig}" notes="{notes}" levelOfDetail="EXECUTION"/>'
    )


CALL = "MSFT  250620C00400000"
PUT = "SPY   250620P00550000"
OPT: dict[str, Any] = {"asset": "OPT", "multiplier": "100"}
BOOKED: dict[str, Any] = {"kind": "BookTrade"}

#: The account's 2025 Flex report, and an NVDA lot bought in 2023 (from last year's).
YEAR = [
    # tradepipe's own two fills, as IBKR reports them: already in the ledger.
    trade("1", "AAPL", "20250110;100000", "100", "150", "-1", "0000e1.01"),
    trade("2", "AAPL", "20250203;100000", "-100", "140", "-1", "0000e1.02"),
    # Bought in the mobile app 17 days after the loss: 50 of the 100 shares are replaced.
    trade("3", "AAPL", "20250220;100000", "50", "145", "-1", "0000e2.01"),
    trade("4", "AAPL", "20250602;100000", "-50", "160", "-1", "0000e2.02"),
    # A call bought, exercised (IBKR books both rows at 16:20), the shares sold.
    trade("5", CALL, "20250303;100000", "1", "5", "-0.65", "0000e3.01", **OPT),
    trade("6", CALL, "20250620;162000", "-1", "0", "0", **OPT, **BOOKED, notes="Ex"),
    trade("7", "MSFT", "20250620;162000", "100", "400", "0", **BOOKED, notes="Ex"),
    trade("8", "MSFT", "20250701;100000", "-100", "450", "-1", "0000e3.02"),
    # Two puts that expired.
    trade("9", PUT, "20250501;100000", "2", "3", "-1.30", "0000e4.01", **OPT),
    trade("10", PUT, "20250620;162000", "-2", "0", "0", **OPT, **BOOKED, notes="Ep"),
    # NVDA held two years; a sale the broker cancelled.
    trade("11", "NVDA", "20230501;100000", "10", "100", "-1", "0000e5.01"),
    trade("12", "NVDA", "20250502;100000", "-10", "150", "-1", "0000e5.02"),
    trade("13", "NVDA", "20250505;100000", "-5", "151", "-1", "0000e5.03"),
    trade("14", "NVDA", "20250506;090000", "5", "151", "1", kind="TradeCancel", orig="13"),
]  # fmt: skip


def flex(*trades: str) -> str:
    body = "\n".join(trades)
    return (
        '<FlexQueryResponse queryName="year" type="AF"><FlexStatements count="1">'
        f'<FlexStatement accountId="{ACCOUNT}" fromDate="20250101" toDate="20251231">'
        f"<Trades>\n{body}\n</Trades></FlexStatement></FlexStatements></FlexQueryResponse>"
    )


@pytest.fixture
def tp(ledger_url: str, workdir: Path) -> Any:
    (workdir / "settings.toml").write_text(
        f'[default.sinks.sql]\nurl = "{ledger_url}"\n[default.logging]\nfile = false\n'
    )

    def run(*args: str) -> Result:
        app = AppContext(settings_path="settings.toml")
        return CliRunner().invoke(cli, list(args), obj=app, catch_exceptions=False)

    return run


def own_run(ledger_url: str) -> None:
    """tradepipe's run on the account, with its two fills."""
    engine = open_engine(ledger_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, namespace, started_at, env, broker, feed, strategies, "
                "bars, status, account) VALUES ('r1', 'r1', '2025-01-10T14:00:00+00:00', 'live', "
                "'client_portal', 'ibkr', '[]', 0, 'completed', :account)"
            ),
            {"account": f"account:{ACCOUNT}"},
        )
        for eid, symbol, side, qty, price, fee, ts in OWN_FILLS:
            conn.execute(
                text(
                    "INSERT INTO fill_rows (run_no, execution_id, client_order_id, decision_id, "
                    "symbol, side, quantity, price, commission, multiplier, ts) VALUES "
                    "((SELECT run_no FROM runs WHERE run_id = 'r1'), "
                    ":eid, 'tp-1', 'd1', :symbol, :side, :qty, :price, :fee, '1', :ts)"
                ),
                {"eid": eid, "symbol": symbol, "side": side, "qty": qty, "price": price,
                 "fee": fee, "ts": ts},
            )  # fmt: skip
    engine.dispose()


def answer(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_year_at_ibkr_and_tradepipe_gives_the_1099b_figures(
    tp: Any, ledger_url: str, workdir: Path
) -> None:
    own_run(ledger_url)
    (workdir / "year.xml").write_text(flex(*YEAR))

    dry = answer(tp("tax", "import", "year.xml", "--dry-run", "--json"))
    assert (dry["dry_run"], dry["added"]) == (True, 10)
    assert answer(tp("tax", "imports", "--json")) == []  # a dry run writes nothing

    done = answer(tp("tax", "import", "year.xml", "--json"))
    assert (done["account"], done["format"], done["reporting"]) == (
        "account:U***4321",
        "ibkr-xml",
        "basis_reported",
    )
    # 14 rows: tradepipe's own 2 are in the ledger, the cancelled sale and its
    # cancellation are left out, 10 are added.
    assert (done["read"], done["added"], done["in_ledger"]) == (12, 10, 2)
    assert [s["reason"] for s in done["skipped"]] == ["cancels the trade of line 14: both left out"]
    again = answer(tp("tax", "import", "year.xml", "--json"))
    assert (again["added"], again["imported_before"], again["in_ledger"]) == (0, 10, 2)
    assert again["same_file"] == done["import_id"]
    [listed] = answer(tp("tax", "imports", "--json"))
    assert (listed["import_id"], listed["source"], listed["added"]) == (
        done["import_id"],
        "year.xml",
        10,
    )

    out = workdir / "8949.csv"
    report = answer(
        tp("tax", "report", "--year", "2025", "--account", ACCOUNT, "--csv", str(out), "--json")
    )
    assert report["notes"] == []
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    form = ["|".join(r.values()) for r in rows]
    # Columns: description, acquired, sold, proceeds, basis, code, adjustment, gain, term, box.
    assert form == [
        # tradepipe's sale: 100 x 140 - 1 = 13999 for 100 x 150 + 1 = 15001, a loss of
        # 1002, half of it (501) disallowed: the 50 shares bought on 02/20 replace 50.
        "100 sh. AAPL|01/10/2025|02/03/2025|13999.00|15001.00|W|501.00|-501.00|short|A",
        # The replacement shares: 50 x 145 + 1 = 7251 plus the 501 carried, held from
        # 01/27 (bought 02/20 less the 24 days the sold shares were held).
        "50 sh. AAPL|01/27/2025|06/02/2025|7999.00|7752.00|||247.00|short|A",
        # The put expired: nothing for 2 x 100 x 3 + 1.30.
        "2 SPY   250620P00550000 (x100)|05/01/2025|06/20/2025|0.00|601.30|||-601.30|short|A",
        # The exercised call's 500.65 goes into the shares' basis: 40000 + 500.65.
        "100 sh. MSFT|06/20/2025|07/01/2025|44999.00|40500.65|||4498.35|short|A",
        # Held two years: long-term.
        "10 sh. NVDA|05/01/2023|05/02/2025|1499.00|1001.00|||498.00|long|D",
        # What the 1099-B adds up per box, and per term.
        "Total box A|||66997.00|63854.95||501.00|3643.05|short|A",
        "Total box D|||1499.00|1001.00||0.00|498.00|long|D",
        "Total short|||66997.00|63854.95||501.00|3643.05|short|",
        "Total long|||1499.00|1001.00||0.00|498.00|long|",
    ]


@pytest.mark.slow
def test_a_later_cancellation_undoes_an_earlier_import_and_reporting_picks_the_box(
    tp: Any, workdir: Path
) -> None:
    (workdir / "jan.xml").write_text(flex(YEAR[10], YEAR[11]))
    assert answer(tp("tax", "import", "jan.xml", "--json"))["added"] == 2
    # The next report cancels the NVDA sale of the first.
    (workdir / "feb.xml").write_text(
        flex(
            trade("15", "NVDA", "20250602;090000", "10", "150", "1", kind="TradeCancel", orig="12")
        )
    )
    undone = answer(tp("tax", "import", "feb.xml", "--json"))
    assert (undone["added"], undone["cancelled"]) == (0, ["0000e5.02"])
    lots = answer(tp("tax", "lots", "--account", ACCOUNT, "--json"))
    assert [(r["symbol"], r["quantity"]) for r in lots["open"]] == [("NVDA", "10")]
    assert lots["closed"] == []

    # Shares moved in from another broker, basis not reported: box E for their sale.
    (workdir / "moved.csv").write_text(
        "execution_id,time,symbol,side,quantity,price,commission\n"
        "acats-1,2020-03-02,KO,buy,20,50,0\n"
        "acats-2,2025-08-01,KO,sell,20,70,1\n"
    )
    moved = answer(
        tp("tax", "import", "moved.csv", "--account", ACCOUNT, "--reporting",
           "basis-not-reported", "--json")
    )  # fmt: skip
    assert (moved["format"], moved["added"], moved["reporting"]) == (
        "csv",
        2,
        "basis_not_reported",
    )
    report = answer(tp("tax", "report", "--year", "2025", "--account", ACCOUNT, "--json"))
    assert [(r["description"], r["gain_or_loss"], r["box"]) for r in report["rows"]] == [
        ("20 sh. KO", "399.00", "E")
    ]


@pytest.mark.slow
def test_bad_input_is_a_clear_error_and_imports_nothing(tp: Any, workdir: Path) -> None:
    (workdir / "year.xml").write_text(flex(*YEAR[:4]))
    wrong = tp("tax", "import", "year.xml", "--account", "U1111111")
    assert wrong.exit_code != 0
    # Account ids are masked in what is printed.
    assert "--account U***1111 is not the account the file's trades are for" in wrong.output
    (workdir / "nobody.csv").write_text(
        "execution_id,time,symbol,side,quantity,price\ne1,2025-01-02,AAPL,buy,1,1\n"
    )
    nobody = tp("tax", "import", "nobody.csv")
    assert nobody.exit_code != 0 and "the file names no account" in nobody.output
    zone = tp("tax", "import", "year.xml", "--timezone", "Mars/Olympus")
    assert zone.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in zone.output
    missing = tp("tax", "import", "gone.xml")
    assert missing.exit_code != 0 and "cannot read gone.xml" in missing.output
    assert answer(tp("ledger", "accounts", "--json")) == []


@pytest.mark.slow
def test_the_account_may_be_named_masked_and_must_be_the_file_s(tp: Any, workdir: Path) -> None:
    other = trade("30", "KO", "20250303;100000", "5", "60", "-1", "0000e9.01").replace(
        ACCOUNT, "U2222222"
    )
    (workdir / "two.xml").write_text(flex(YEAR[2], other))
    both = tp("tax", "import", "two.xml")
    assert both.exit_code != 0
    assert "holds the trades of 2 accounts (U***2222, U***4321)" in both.output
    # As printed: masked. Only the named account's trade goes in, the other is listed.
    masked = answer(tp("tax", "import", "two.xml", "--account", "U***4321", "--json"))
    assert (masked["account"], masked["added"]) == ("account:U***4321", 1)
    assert [s["reason"] for s in masked["skipped"]] == ["another account's trade"]
    [account] = answer(tp("ledger", "accounts", "--json"))
    assert (account["account"], account["imports"]) == ("account:U***4321", 1)
    # A masked id cannot name an account the file does not.
    (workdir / "plain.csv").write_text(
        "execution_id,time,symbol,side,quantity,price\ne1,2025-01-02,AAPL,buy,1,1\n"
    )
    vague = tp("tax", "import", "plain.csv", "--account", "U***9999")
    assert vague.exit_code != 0 and "is masked and the file names no account" in vague.output


@pytest.mark.slow
def test_a_file_with_no_readable_trade_is_an_error(tp: Any, workdir: Path) -> None:
    (workdir / "slashes.csv").write_text(
        "execution_id,time,symbol,side,quantity,price,account\n"
        "e1,03/05/2025,AAPL,buy,1,1,U1\ne2,03/06/2025,AAPL,sell,1,2,U1\n"
    )
    result = tp("tax", "import", "slashes.csv")
    assert result.exit_code != 0
    assert "no trade could be read from slashes.csv: 2 row(s) left out, the first (line 2)" in (
        result.output
    )
    assert "date '03/05/2025' is ambiguous" in result.output
    year = tp("tax", "report", "--year", "25")
    assert year.exit_code == 2 and "25 is not in the range 1900<=x<=2200" in year.output
