"""``tradepipe order modify``: a change is judged as a new order is, before anything is saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tradepipe.cli import cli
from tradepipe.cli.context import AppContext
from tradepipe.testing import paper_account_seeing, write_settings

# Every test here starts processes, servers or a browser, or replays at length.
pytestmark = pytest.mark.slow

SETTINGS = """
[default.run]
broker = "paper"
risk_filters = ["min_confidence", "buying_power"]
sinks = ["sql"]
[default.brokers.paper]
state_file = "paper.json"
[default.sinks.sql]
path = "ledger.db"
writer = "inline"
[default.logging]
dir = "logs"
"""


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """A paper account that has seen SPY at 600, and a ledger."""
    write_settings(workdir, SETTINGS)
    paper_account_seeing("SPY", 600.0)
    return workdir


def tp(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=AppContext(settings_path="settings.toml"))


def placed(*args: str) -> str:
    result = tp("order", "stock", "SPY", "--side", "buy", "--quantity", "2", *args, "--json")
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["order"]["status"] == "accepted"  # no bar since: still working
    cid: str = out["order"]["client_order_id"]
    return cid


@pytest.mark.parametrize(
    ("order", "change", "reason"),
    [
        ((), ["--limit-price", "590"], "a market order has no limit price to change"),
        ((), ["--stop-price", "590"], "a market order has no stop price to change"),
        (
            ("--type", "limit", "--limit-price", "590"),
            ["--stop-price", "580"],
            "a limit order has no stop price to change",
        ),
        ((), ["--quantity", "1.5"], "quantity 1.5 is not a whole number of shares"),
    ],
)
def test_a_bad_modify_changes_nothing_and_every_command_still_works(
    workdir: Path, order: tuple[str, ...], change: list[str], reason: str
) -> None:
    # Issue 15.6: on paper this was accepted and saved, and every command after
    # it failed with "state_file … is damaged".
    cid = placed(*order)
    account = (workdir / "paper.json").read_bytes()

    refused = tp("order", "modify", cid, *change)

    assert refused.exit_code == 1
    assert f"error: cannot modify {cid}: {reason}" in refused.stderr
    assert (workdir / "paper.json").read_bytes() == account
    listed = tp("broker", "orders", "--json")
    assert listed.exit_code == 0, listed.output
    [working] = json.loads(listed.stdout)
    assert (working["client_order_id"], working["quantity"]) == (cid, "2")


def test_a_good_modify_is_saved(workdir: Path) -> None:
    cid = placed("--type", "limit", "--limit-price", "590")
    changed = tp("order", "modify", cid, "--limit-price", "595", "--quantity", "1", "--json")
    assert changed.exit_code == 0, changed.output
    [working] = json.loads(tp("broker", "orders", "--json").stdout)
    assert (working["quantity"], working["limit_price"]) == ("1", "595")


def test_an_order_that_is_not_working_cannot_be_modified(workdir: Path) -> None:
    cid = placed("--type", "limit", "--limit-price", "590")
    assert tp("broker", "cancel", cid).exit_code == 0
    account = (workdir / "paper.json").read_bytes()

    refused = tp("order", "modify", cid, "--limit-price", "595")

    assert refused.exit_code == 1
    assert "the order is canceled, not working" in refused.stderr
    assert (workdir / "paper.json").read_bytes() == account
