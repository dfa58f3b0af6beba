"""Manual options orders: legs with exact strikes and expiries, or a named strategy.

What ``tradepipe order options`` and the REST API's ``POST /orders/options``
both run. Legs make the decision's fields at once (:func:`option_fields`). A
named strategy is a decision document (:func:`strategy_document`, checked as
far as it can be without the broker) whose legs the broker's option chain
chooses (:func:`place_strategy`), as ``tradepipe execute`` chooses a
document's: read before a run that writes is opened, so a strategy the chain
cannot build leaves nothing in the ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from tradepipe.decision_schema import (
    SCHEMA_VERSION,
    STRATEGY_LEGS,
    OptionStrategySpec,
    problems,
    read_document,
)
from tradepipe.decisions import RejectedDecision
from tradepipe.direct import Outcome, RunOpener, execute_document
from tradepipe.instruments import Combo, Leg, Option
from tradepipe.order_rules import OrderRules, expiry_problem


def option_fields(legs: Sequence[tuple[str, int, Option]], side: str) -> dict[str, Any]:
    """The decision fields of an options order: ``symbol``, ``instrument``, ``action``.

    :param legs: ``(buy|sell, ratio, option)`` each. One leg trades that option
        on its own side; several make a combo (ratios signed by their side).
    :param side: a combo's side: ``buy`` it as written, or ``sell`` it.
    :raises ValueError: a single leg with a ratio other than 1.
    :raises ValidationError: legs that make no combo (one option twice …).
    """
    if len(legs) == 1:
        action, ratio, option = legs[0]
        if ratio != 1:
            raise ValueError("a single-leg order takes its size from the quantity, not a ratio")
        return dict(symbol=option.ticker, instrument=option, action=action)
    combo = Combo(legs=tuple(Leg(instrument=o, ratio=r if a == "buy" else -r) for a, r, o in legs))
    return dict(symbol=combo.ticker, instrument=combo, action=side)


def strategy_document(
    underlying: str,
    spec: OptionStrategySpec,
    *,
    side: str,
    quantity: Decimal,
    terms: Mapping[str, Any],
    source: str,
    created_at: dt.datetime,
) -> dict[str, Any]:
    """The decision document of a named options strategy on ``underlying``, as JSON values.

    It is checked as far as it can be before the broker's chain is read: as a
    document (see :mod:`~tradepipe.decision_schema`), and its order terms by
    a decision's rules. :func:`place_strategy` then chooses the legs.

    :param side: ``buy`` opens the strategy as named; ``sell`` takes its other side.
    :param terms: how it is to be executed: ``order_type``, ``limit_price``,
        ``stop_price``, ``tif``, ``outside_rth``, ``rationale``; ``None`` is left out.
    :param created_at: the time it is made. It is part of the content the
        document's id is derived from, so giving the same order twice is two orders.
    :raises ValueError: naming the field (``order_type: an options strategy is
        sent as a market or limit order``, ``limit_price is required …``, an
        expiry in the past or too far out, a quantity of part of a contract).
    """
    document = {
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "created_at": created_at.isoformat(),
        "symbol": underlying,
        "action": side,
        "confidence": 100,
        "quantity": str(quantity),
        "options": spec.model_dump(mode="json", exclude_defaults=True),
        **{
            name: str(value) if isinstance(value, Decimal) else value
            for name, value in terms.items()
            if value is not None
        },
    }
    checked = read_document(document)
    if isinstance(checked, RejectedDecision):
        raise ValueError(checked.error)
    # The order rules, as far as they are known before the chain chooses the
    # contracts: whole contracts or combos, and any expiry given a live one.
    kind = "option" if STRATEGY_LEGS[spec.strategy] == 1 else "combo"
    found = [OrderRules().quantity_problem(quantity, kind)]
    for where, day in _expiries(spec):
        why = expiry_problem(day, created_at, "an option")
        found.append(f"options.{where}: {why}" if why else "")
    if any(found):
        raise ValueError("; ".join(p for p in found if p))
    try:
        # Without its options the document is a decision on the stock: the same
        # rules judge its order terms (a limit order needs its limit price …).
        checked.model_copy(update={"options": None}).to_decision(source)
    except ValidationError as exc:
        raise ValueError(problems(exc)) from None
    return document


def _expiries(spec: OptionStrategySpec) -> list[tuple[str, dt.date]]:
    """The expiries ``spec`` gives (its own, its legs'), each with where it is given."""
    given = [("expiry", spec.expiry)] + [
        (f"legs.{i}.expiry", leg.expiry) for i, leg in enumerate(spec.legs)
    ]
    return [(where, day) for where, day in given if day is not None]


def place_strategy(
    open_run: RunOpener,
    document: Mapping[str, Any],
    *,
    source: str,
    dry_run: bool = False,
    what_if: bool = False,
    wait: float = 0.0,
) -> tuple[Outcome | RejectedDecision, str | None]:
    """A :func:`strategy_document`: legs from the broker's chain, then the pipeline.

    The legs are chosen and priced (see :meth:`~tradepipe.direct.Direct.read`)
    in a run that writes nothing; the decision is then sized, judged by every
    risk filter and, unless dry, sent in a run of its own, or with ``what_if``
    previewed (see :func:`~tradepipe.direct.execute_document`). A strategy the
    chain cannot build is returned and sent nowhere; the ledger is left as it
    was. Returns the ledger run's id too (``None`` when dry or refused).
    """
    return execute_document(
        dict(document), open_run, source=source, dry_run=dry_run, what_if=what_if, wait=wait
    )
