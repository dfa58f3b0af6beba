"""Figures as every view shows them: summaries, tables, snapshot files, the API.

One set of rules (see :mod:`tradepipe.money`) for every place a person or a
program reads an account or a position, so ``tradepipe run-pipeline``,
``tradepipe broker accounts|positions``, the snapshot files, the HTTP API and
the dashboard agree to the cent. Money is shown in cents, average costs and
marks to at most :data:`~tradepipe.money.COST_PLACES` places, quantities and
the prices of orders and fills exactly as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel
from tradepipe.money import fmt, money_text, price_text
from tradepipe.portfolio import unrealized_of, value_of

#: Keys whose decimals are money: shown in cents.
MONEY_KEYS = frozenset(
    {
        "cash",
        "equity",
        "buying_power",
        "gross_position_value",
        "realized_pnl",
        "unrealized_pnl",
        "market_value",
        "commissions",
        "start_equity",
        "pnl",
    }
)
#: Keys whose decimals are computed or marked prices: at most COST_PLACES places.
COST_KEYS = frozenset({"avg_cost", "avg_price", "mark_price", "mark"})


def shown(value: Any, key: str | None = None) -> Any:
    """``value`` ready for JSON and for tables, by the rules above.

    Decimals become strings (money in cents under a money key, costs and marks
    rounded under a cost key, anything else exact), times ISO-8601, enums their
    value; mappings and lists are followed, each value by its own key.
    """
    if isinstance(value, Decimal):
        if key in MONEY_KEYS:
            return money_text(value)
        if key in COST_KEYS:
            return price_text(value)
        return fmt(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Enum):
        return shown(value.value, key)
    if isinstance(value, Mapping):
        return {str(k): shown(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [shown(v, key) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def model_figures(model: BaseModel) -> dict[str, Any]:
    """A model's fields as :func:`shown` gives them."""
    figures: dict[str, Any] = shown(model.model_dump())
    return figures


def position_figures(p: Any) -> dict[str, Any]:
    """One position — a broker's or the ledger's — as every view shows it.

    ``p`` has ``symbol``, ``quantity``, ``avg_cost``, ``mark_price``,
    ``multiplier`` and ``realized_pnl``. Market value and unrealized P&L are
    each rounded to the cent, as the book values them.
    """
    mark: Decimal | None = p.mark_price
    value = unrealized = None
    if mark is not None:
        value = value_of(p.quantity, mark, p.multiplier)
        unrealized = unrealized_of(p.quantity, mark, p.avg_cost, p.multiplier)
    return {
        "symbol": p.symbol,
        "quantity": fmt(p.quantity),
        "avg_cost": price_text(p.avg_cost),
        "mark_price": price_text(mark),
        "market_value": money_text(value),
        "unrealized_pnl": money_text(unrealized),
        "realized_pnl": money_text(p.realized_pnl),
    }


def jsonable(value: Any) -> Any:
    """What JSON output shows for a value :mod:`json` cannot write itself.

    The one conversion every JSON answer uses (``--json`` on the command line, the
    API, the files): a Decimal as its exact text, a time or date in ISO 8601, a
    model as its JSON fields, anything else as its text.
    """
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)
