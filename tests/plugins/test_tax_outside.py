"""Reading trades made outside tradepipe: IBKR Flex reports (XML, CSV) and a plain CSV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tradepipe.clock import NEW_YORK
from tradepipe.errors import ConfigError
from tradepipe.plugins.tax.outside import Parsed, read_trades

#: One statement: two buys, a sale with the two lots IBKR says it closed, an order row
#: and a symbol summary (not executions), a trade in euros and a currency conversion.
FLEX_XML = """<?xml version="1.0" encoding="UTF-8"?>
<FlexQueryResponse queryName="year" type="AF">
<FlexStatements count="1">
<FlexStatement accountId="U7654321" fromDate="20250101" toDate="20251231" period="LastYear">
<Trades>
<Trade accountId="U7654321" currency="USD" assetCategory="STK" symbol="MSFT"
  dateTime="20250303;100000" tradeDate="20250303" transactionType="ExchTrade" quantity="20"
  tradePrice="400" ibCommission="-1" ibCommissionCurrency="USD" buySell="BUY"
  transactionID="1001" tradeID="2001" ibExecID="0001.01" levelOfDetail="EXECUTION"/>
<Trade accountId="U7654321" currency="USD" assetCategory="STK" symbol="MSFT"
  dateTime="2025-03-04 10:00:00" transactionType="ExchTrade" quantity="10" tradePrice="390"
  ibCommission="-1" buySell="BUY" transactionID="1002" ibExecID="0001.02"
  levelOfDetail="EXECUTION"/>
<Order accountId="U7654321" currency="USD" assetCategory="STK" symbol="MSFT"
  levelOfDetail="ORDER" quantity="10"/>
<Trade accountId="U7654321" currency="USD" assetCategory="STK" symbol="MSFT"
  dateTime="20250601;143000" transactionType="ExchTrade" quantity="-15" tradePrice="450"
  ibCommission="-1.5" buySell="SELL" transactionID="1003" ibExecID="0001.03"
  levelOfDetail="EXECUTION" notes="C;P"/>
<Lot accountId="U7654321" assetCategory="STK" symbol="MSFT" quantity="10" buySell="SELL"
  openDateTime="20250304;100000" levelOfDetail="CLOSED_LOT" notes="ST"/>
<Lot accountId="U7654321" assetCategory="STK" symbol="MSFT" quantity="5" buySell="SELL"
  openDateTime="20250303;100000" levelOfDetail="CLOSED_LOT" notes="ST"/>
<SymbolSummary accountId="U7654321" symbol="MSFT" levelOfDetail="SYMBOL_SUMMARY"
  settleDateTarget="MULTI"/>
<Trade accountId="U7654321" currency="EUR" assetCategory="STK" symbol="SAP"
  dateTime="20250601;143000" quantity="5" tradePrice="200" buySell="BUY" transactionID="1004"
  ibExecID="0001.04" levelOfDetail="EXECUTION"/>
<Trade accountId="U7654321" currency="USD" assetCategory="CASH" symbol="EUR.USD"
  dateTime="20250601;143000" quantity="1000" tradePrice="1.1" buySell="BUY"
  transactionID="1005" ibExecID="0001.05" levelOfDetail="EXECUTION"/>
</Trades>
</FlexStatement>
</FlexStatements>
</FlexQueryResponse>
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def brief(parsed: Parsed) -> list[tuple[str, str, str, str, str, str, str]]:
    return [
        (t.execution_id, t.symbol, t.side, str(t.quantity), str(t.price), str(t.commission), t.kind)
        for t in parsed.trades
    ]


def test_a_flex_xml_report_gives_its_executions_and_leaves_out_the_rest(tmp_path: Path) -> None:
    parsed = read_trades(write(tmp_path, "year.xml", FLEX_XML))
    assert parsed.format == "ibkr-xml"
    assert brief(parsed) == [
        ("0001.01", "MSFT", "buy", "20", "400", "1", "trade"),
        ("0001.02", "MSFT", "buy", "10", "390", "1", "trade"),
        # Quantity -15 is a sale of 15; the commission of -1.5 was paid.
        ("0001.03", "MSFT", "sell", "15", "450", "1.5", "trade"),
    ]
    assert {t.account for t in parsed.trades} == {"U7654321"}
    # Times without an offset are New York's; both of IBKR's spellings are read.
    assert [t.ts for t in parsed.trades[:2]] == [
        dt.datetime(2025, 3, 3, 10, tzinfo=NEW_YORK),
        dt.datetime(2025, 3, 4, 10, tzinfo=NEW_YORK),
    ]
    assert parsed.summaries == 2  # the order row and the symbol summary
    lines = FLEX_XML.splitlines()
    starts = [i + 1 for i, text in enumerate(lines) if 'symbol="SAP"' in text]
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        # Each row is reported at the line its element starts on.
        (starts[0], "EUR: tradepipe's lots are in US dollars"),
        (starts[0] + 3, "asset class CASH: only stocks (STK) and options (OPT) are lots"),
    ]
    # The closed lots belong to the sale before them, in IBKR's order.
    assert [(c.execution_id, str(c.quantity), c.opened_at.day) for c in parsed.closed_lots] == [
        ("0001.03", "10", 4),
        ("0001.03", "5", 3),
    ]


#: The same trades as the report's CSV, with each of IBKR's layouts.
_HEADER = (
    "ClientAccountID,CurrencyPrimary,AssetClass,Symbol,DateTime,Quantity,TradePrice,"
    "IBCommission,Buy/Sell,TransactionID,IBExecID,LevelOfDetail,TransactionType,Notes/Codes"
)
_ROWS = [
    "U7654321,USD,STK,MSFT,20250303;100000,20,400,-1,BUY,1001,0001.01,EXECUTION,ExchTrade,O",
    '"U7654321","USD","STK","MSFT","20250601;143000","-1,000","450","-1.5","SELL","1003",'
    '"0001.03","EXECUTION","ExchTrade","C"',
]


@pytest.mark.parametrize("layout", ["plain", "records", "tagged"])
def test_each_layout_of_a_flex_csv_report_reads_the_same(tmp_path: Path, layout: str) -> None:
    cash = "ClientAccountID,CurrencyPrimary,Amount,Type\nU7654321,USD,5.00,Dividends"
    if layout == "plain":
        text = "\n".join([_HEADER, *_ROWS, cash])
    elif layout == "records":
        text = "\n".join(
            [
                '"BOF","U7654321","year","4","20250101","20251231","20260105;101010"',
                '"BOA","U7654321"',
                '"BOS","TRNT","Trades; trade date basis"',
                _HEADER,
                *_ROWS,
                '"EOS","TRNT","2"',
                '"EOA","U7654321"',
                '"EOF","U7654321"',
            ]
        )
    else:
        text = "\n".join(
            [
                '"MSG","Realized P/L is not ready yet"',
                f'"HEADER","TRNT",{_HEADER}',
                *(f'"DATA","TRNT",{row}' for row in _ROWS),
                '"HEADER","CTRN","ClientAccountID","Amount"',
                '"DATA","CTRN","U7654321","5.00"',
            ]
        )
    parsed = read_trades(write(tmp_path, "year.csv", text))
    assert parsed.format == "ibkr-csv"
    # "-1,000": IBKR writes thousands with a comma inside quotes.
    assert brief(parsed) == [
        ("0001.01", "MSFT", "buy", "20", "400", "1", "trade"),
        ("0001.03", "MSFT", "sell", "1000", "450", "1.5", "trade"),
    ]
    assert parsed.skipped == []


def test_options_expiry_exercise_and_assignment_are_read_from_their_codes(tmp_path: Path) -> None:
    # A long call exercised (the option's row and the shares' at the strike), a short
    # call assigned, a long put expired; IBKR books them with no execution id.
    rows = [
        "U1,USD,OPT,AAPL  250620C00200000,AAPL,20250620;162000,-1,0,0,SELL,7001,,BookTrade,Ex",
        "U1,USD,STK,AAPL,,20250620;162000,100,200,0,BUY,7002,,BookTrade,Ex",
        "U1,USD,OPT,MSFT  250620C00500000,MSFT,20250620;162000,1,0,0,BUY,7003,,BookTrade,A",
        "U1,USD,STK,MSFT,,20250620;162000,-100,500,0,SELL,7004,,BookTrade,A",
        "U1,USD,OPT,SPY,SPY,20250620;162000,-2,0,0,SELL,7005,,BookTrade,Ep",
    ]
    header = (
        "ClientAccountID,CurrencyPrimary,AssetClass,Symbol,UnderlyingSymbol,DateTime,Quantity,"
        "TradePrice,IBCommission,Buy/Sell,TransactionID,IBExecID,TransactionType,Notes/Codes,"
        "Put/Call,Strike,Expiry,Multiplier"
    )
    terms = [",C,200,20250620,100", ",,,,1", ",C,500,20250620,100", ",,,,1", ",P,550,20250620,100"]
    text = "\n".join([header, *(row + extra for row, extra in zip(rows, terms, strict=True))])
    parsed = read_trades(write(tmp_path, "eae.csv", text))
    assert brief(parsed) == [
        ("tx7001", "AAPL  250620C00200000", "sell", "1", "0", "0", "exercised"),
        ("tx7002", "AAPL", "buy", "100", "200", "0", "exercised"),
        ("tx7003", "MSFT  250620C00500000", "buy", "1", "0", "0", "assigned"),
        ("tx7004", "MSFT", "sell", "100", "500", "0", "assigned"),
        # "SPY" is no OCC symbol: built from the option's terms.
        ("tx7005", "SPY   250620P00550000", "sell", "2", "0", "0", "expired"),
    ]
    assert [str(t.multiplier) for t in parsed.trades] == ["100", "1", "100", "1", "100"]


def test_a_cancellation_drops_its_trade_or_is_kept_for_an_earlier_import(tmp_path: Path) -> None:
    header = (
        "ClientAccountID,CurrencyPrimary,AssetClass,Symbol,DateTime,Quantity,TradePrice,"
        "IBCommission,Buy/Sell,TransactionID,TradeID,OrigTransactionID,OrigTradeID,IBExecID,"
        "TransactionType"
    )
    rows = [
        "U1,USD,STK,AAPL,20250303;100000,-100,162,-1,SELL,11,21,,,e1,ExchTrade",
        # Cancels the sale above (by its transaction id): both go.
        "U1,USD,STK,AAPL,20250305;100000,100,162,1,SELL (Ca.),12,,11,21,,TradeCancel",
        "U1,USD,STK,AAPL,20250306;100000,-50,163,-1,SELL,13,23,,,e3,ExchTrade",
        # Cancels a trade of another file: kept, for the ledger to apply.
        "U1,USD,STK,AAPL,20250307;100000,10,150,1,BUY (Ca.),14,,9,19,,TradeCancel",
    ]
    parsed = read_trades(write(tmp_path, "c.csv", "\n".join([header, *rows])))
    assert [t.execution_id for t in parsed.trades] == ["e3"]
    assert [s.line for s in parsed.skipped] == [3]
    assert "cancels the trade of line 2" in parsed.skipped[0].reason
    assert [(c.transaction_id, c.trade_id, c.line) for c in parsed.cancels] == [("9", "19", 5)]


def test_a_plain_csv_with_the_documented_columns(tmp_path: Path) -> None:
    text = (
        "execution_id,time,symbol,side,quantity,price,commission,multiplier,kind,account\n"
        "m-1,2025-02-03T10:15:00-05:00,aapl,buy,10,150.25,1.00,,,U1\n"
        "m-2,2025-02-04,AAPL,SELL,4,155,,,,U1\n"
        "m-3,2025-02-05 09:31:00,AAPL  250321C00150000,buy,1,3.2,0.65,100,trade,U1\n"
        "m-4,2025-02-06,AAPL,short,1,1,,,,U1\n"
        "m-5,2025-02-06,AAPL,buy,-1,1,,,,U1\n"
        "m-6,2025-02-06,AAPL,buy,1,1,,,,U1,extra\n"
    )
    parsed = read_trades(write(tmp_path, "mine.csv", text))
    assert parsed.format == "csv"
    assert brief(parsed) == [
        ("m-1", "AAPL", "buy", "10", "150.25", "1.00", "trade"),
        ("m-2", "AAPL", "sell", "4", "155", "0", "trade"),
        ("m-3", "AAPL  250321C00150000", "buy", "1", "3.2", "0.65", "trade"),
        ("m-6", "AAPL", "buy", "1", "1", "0", "trade"),
    ]
    first, second, third = parsed.trades[:3]
    assert first.ts == dt.datetime(2025, 2, 3, 15, 15, tzinfo=dt.UTC)
    assert second.ts == dt.datetime(2025, 2, 4, 12, tzinfo=NEW_YORK)  # a date alone: noon
    assert third.ts == dt.datetime(2025, 2, 5, 9, 31, tzinfo=NEW_YORK)
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (5, "side 'short': buy or sell"),
        (6, "quantity -1: more than 0"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("symbol,side\nAAPL,buy\n", "neither an IBKR Flex Query report"),
        ("execution_id,symbol,side\ne1,AAPL,buy\n", "no column time, quantity, price"),
        ("<html><body>not flex</body></html>", "not an IBKR Flex Query report"),
        ("<FlexQueryResponse><FlexStatements>", "not well-formed XML"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><FlexQueryResponse>&b;</FlexQueryResponse>',
            "declares XML entities or a DTD, which a Flex report never does: refused",
        ),
        ("ClientAccountID,Symbol,Amount\nU1,AAPL,5\n", "has no trades section"),
    ],
    ids=["unknown", "columns", "other-xml", "broken-xml", "entities", "no-trades"],
)
def test_a_file_that_cannot_be_read_is_a_clear_error(
    tmp_path: Path, text: str, problem: str
) -> None:
    name = "f.xml" if text.startswith("<") else "f.csv"
    with pytest.raises(ConfigError, match=problem):
        read_trades(write(tmp_path, name, text))


def test_rows_that_cannot_be_read_are_listed_with_why(tmp_path: Path) -> None:
    rows = [
        "U1,USD,STK,AAPL,03/04/2025;100000,10,150,-1,BUY,1,e1",  # dd/MM or MM/dd?
        "U1,USD,STK,AAPL,20250304;100000,10,abc,-1,BUY,2,e2",
        "U1,USD,STK,AAPL,20250304;100000,10,150,-1,SELL,3,e3",  # sign against Buy/Sell
        "U1,USD,STK,AAPL,20250304;100000,10,150,-1,BUY,,",  # no id at all
        "U1,USD,STK,AAPL,20250304;100000,10",  # short row
        "U1,USD,STK,AAPL,20250304;100000 AEST,10,150,-1,BUY,6,e6",
        "U1,USD,STK,AAPL,20250304;100000 EST,10,150,-1,BUY,7,e7",
    ]
    header = (
        "ClientAccountID,CurrencyPrimary,AssetClass,Symbol,DateTime,Quantity,TradePrice,"
        "IBCommission,Buy/Sell,TransactionID,IBExecID"
    )
    parsed = read_trades(write(tmp_path, "bad.csv", "\n".join([header, *rows])))
    assert [t.execution_id for t in parsed.trades] == ["e7"]
    reasons = [s.reason for s in parsed.skipped]
    assert reasons[0].startswith("date '03/04/2025' is ambiguous (MM/dd or dd/MM)")
    assert reasons[1:] == [
        "tradePrice 'abc' is not a number",
        "Buy/Sell SELL but quantity 10",
        "no IBExecID and no TransactionID to know it by",
        "6 cells, but its header has 11",
        "time '20250304;100000 AEST': unknown time zone AEST",
    ]
