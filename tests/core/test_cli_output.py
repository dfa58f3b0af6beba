"""Tables for people: ids stay whole on one line, however narrow the console."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from rich.console import Console
from tradepipe.cli.live_view import render
from tradepipe.cli.output import Id, as_id, table

ORDER = "tp-7e22409c26aac71791cb1a"
DECISION = "sma_cross-AAPL-2026-03-02T14:30:00Z"
RUN = "20261206T082812-bc316d"
REASON = "max_position_value: no price known for AAPL to value the position"


def printed(renderable: Any, width: int = 60) -> list[str]:
    out = io.StringIO()
    # As the commands print: soft wrap, so nothing is cut at the console's edge.
    Console(file=out, width=width, soft_wrap=True).print(renderable)
    return out.getvalue().splitlines()


def on_one_line(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


def test_id_columns_are_never_wrapped_and_the_other_columns_shrink() -> None:
    rows = [(Id(ORDER), Id(DECISION), "buy", "10", "AAPL", "denied", REASON)]
    columns = ["order", "decision", "side", "quantity", "symbol", "status", "reason"]
    lines = printed(table(f"Orders of {RUN}", columns, rows))
    assert on_one_line(lines, ORDER) and on_one_line(lines, DECISION)
    # No column is dropped for want of room: every short word is still there.
    for word in ("side", "quantity", "buy", "AAPL", "denied", "position"):
        assert on_one_line(lines, word), word


def test_an_id_among_long_text_keeps_its_width() -> None:
    rows = [("client order id", Id(ORDER)), ("reason", REASON), ("ledger run", as_id(RUN))]
    lines = printed(table("Order", ["", ""], rows), width=40)
    assert on_one_line(lines, ORDER) and on_one_line(lines, RUN)
    assert on_one_line(lines, "reason")
    # The text around it still wraps to the console.
    assert not on_one_line(lines, REASON)


def test_without_ids_a_table_still_fits_the_console() -> None:
    lines = printed(table("Risk verdicts", ["filter", "reason"], [("max_position_value", REASON)]))
    assert max(len(line) for line in lines) <= 60


def test_as_id_leaves_an_empty_cell_empty() -> None:
    assert as_id(None) is None and as_id("") is None
    assert isinstance(as_id("B1"), Id)


def test_the_live_panel_shows_whole_order_ids() -> None:
    status = {
        "run_id": RUN,
        "state": "running",
        "open_orders": [
            {
                "client_order_id": ORDER,
                "symbol": "AAPL",
                "side": "buy",
                "quantity": "5",
                "filled": "0",
                "status": "accepted",
            }
        ],
    }
    lines = printed(render(status), width=60)
    assert on_one_line(lines, ORDER)
    assert on_one_line(lines, "AAPL")


def test_option_symbols_and_combo_tickers_stay_whole_like_ids() -> None:
    occ, combo = "SPY   261218C00590000", "SPY X49bdc49e"
    rows = [(occ, "2", "5.10", REASON), (combo, "1", "3.20", REASON)]
    lines = printed(table("Positions", ["symbol", "quantity", "price", "note"], rows))
    assert on_one_line(lines, occ) and on_one_line(lines, combo)


def test_a_reader_that_goes_away_is_no_internal_error(tmp_path: Any) -> None:
    """``tradepipe … | head``: the command stops quietly when its reader closes the pipe."""
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    done = subprocess.run(
        [sys.executable, "-m", "tradepipe", "config", "show"],
        cwd=tmp_path,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write)
    assert done.returncode == 1
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_the_summary_says_whose_realized_pnl_it_shows(capsys: Any) -> None:
    """A replay's account is its own: its realized P&L is the run's. A kept account's
    (a paper account file, a broker's) is the account's figure, not the run's."""
    from tradepipe.cli.run import print_summary

    base = {
        "run_id": "r1",
        "status": "completed",
        "bars": 10,
        "decisions": 0,
        "orders": {},
        "fills": 0,
        "realized_pnl": "12.00",
    }
    print_summary({**base, "account": "replay:r1"})
    own = capsys.readouterr().out
    print_summary({**base, "account": "paper:/tmp/acct.json"})
    kept = capsys.readouterr().out
    assert "realized P&L" in own and "(account)" not in own
    assert "realized P&L (account)" in kept


@pytest.mark.parametrize(("held", "said"), [(1, "1 hold)"), (3, "3 holds)")])
def test_the_summary_counts_holds_in_words_that_agree(capsys: Any, held: int, said: str) -> None:
    from tradepipe.cli.run import print_summary

    summary = {"run_id": "r1", "status": "completed", "bars": 10, "decisions": 5}
    print_summary({**summary, "orders": {}, "fills": 0, "decisions_held": held})
    assert said in capsys.readouterr().out
