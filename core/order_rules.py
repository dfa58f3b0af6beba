"""The rules every order keeps, whoever sends it, checked before any broker is asked.

One place for what makes an order, or a change to one, well-formed, so the
executor, ``tradepipe order``, the REST API and every broker adapter's
``modify`` refuse the same things in the same words:

* **prices** match the order type: a limit price for limit and stop-limit
  orders only, a stop price for stop and stop-limit orders only;
* **quantities** are positive; shares are whole unless ``[sizing] fractional``
  is on (then in steps of 0.0001, as sizing rounds them); option contracts and
  combos are always whole;
* **contracts**: an option, or any option leg of a combo, expires on or after
  the run's date (its clock's, so a replay of history judges by the replayed
  day) and at most :data:`MAX_EXPIRY_MONTHS` after it;
* **changes** (``modify``) apply to a working order that is not being
  canceled, change something, keep the price rule, and leave a quantity that
  keeps the quantity rule and is more than what has already filled.

A new order that breaks them is denied before the risk filters (recorded with
the reason, never sent); a change that breaks them raises
:class:`~tradepipe.errors.InvalidOrderError` before anything is saved or sent.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tradepipe.clock import NEW_YORK
from tradepipe.errors import InvalidOrderError
from tradepipe.instruments import Combo, Option, Stock
from tradepipe.money import floor_quantity

if TYPE_CHECKING:
    from tradepipe.decisions import Decision
    from tradepipe.orders import OrderIntent, OrderStatus
    from tradepipe.settings import AppSettings

#: How far after the run's date an option may expire. LEAPS, the longest listed
#: US equity options, are listed up to 39 months out (IBKR shows them about three
#: years ahead); a later expiry is a typo (9999-12-31), not a contract.
MAX_EXPIRY_MONTHS = 39
#: Where an option's expiry date is a date: US equity options expire in New York.

_LIMIT_TYPES = frozenset({"limit", "stop_limit"})
_STOP_TYPES = frozenset({"stop", "stop_limit"})


def price_problem(order_type: str, limit_price: Decimal | None, stop_price: Decimal | None) -> str:
    """Why these prices do not fit an order of ``order_type``, or ``""``."""
    needs_limit = order_type in _LIMIT_TYPES
    needs_stop = order_type in _STOP_TYPES
    for name, needed, given in (
        ("limit_price", needs_limit, limit_price),
        ("stop_price", needs_stop, stop_price),
    ):
        if needed and given is None:
            return f"{name} is required for a {order_type} order"
        if not needed and given is not None:
            return f"{name} makes no sense for a {order_type} order"
    return ""


@dataclass(frozen=True)
class Change:
    """What a ``modify`` asks of a working order; ``None`` leaves a field as it is."""

    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def fields(self) -> dict[str, Decimal]:
        """The fields that change, by name."""
        return {
            name: value
            for name, value in (
                ("quantity", self.quantity),
                ("limit_price", self.limit_price),
                ("stop_price", self.stop_price),
            )
            if value is not None
        }


@dataclass(frozen=True)
class OrderRules:
    """The rules, as the settings set them (see the module docstring).

    :param fractional: fractional shares are allowed (``[sizing] fractional``).
    """

    fractional: bool = False

    @classmethod
    def of(cls, settings: AppSettings) -> OrderRules:
        return cls(fractional=settings.sizing.fractional)

    # -- new orders ----------------------------------------------------------------

    def check(self, intent: OrderIntent, now: dt.datetime) -> str:
        """Why ``intent`` may not be sent at ``now`` (the run's clock), or ``""``."""
        return _joined(
            price_problem(intent.order_type, intent.limit_price, intent.stop_price),
            self.quantity_problem(intent.quantity, _kind(intent.instrument)),
            contract_problem(intent.instrument, now),
        )

    def check_decision(self, decision: Decision, now: dt.datetime) -> str:
        """Why ``decision`` cannot become an order at ``now``, as far as it is known, or ``""``.

        Its prices were checked when it was made; its quantity is checked when it
        gives one (sizing gives the others, and :meth:`check` judges them).
        """
        quantity = decision.quantity
        return _joined(
            "" if quantity is None else self.quantity_problem(quantity, _kind(decision.instrument)),
            contract_problem(decision.instrument, now),
        )

    def require_decision(self, decision: Decision, now: dt.datetime) -> None:
        """:meth:`check_decision`, raising.

        :raises InvalidOrderError: naming what is wrong.
        """
        problem = self.check_decision(decision, now)
        if problem:
            raise InvalidOrderError(problem)

    def quantity_problem(self, quantity: Decimal, kind: str | None = "stock") -> str:
        """Why ``quantity`` of an instrument of ``kind`` cannot be ordered, or ``""``.

        :param kind: ``stock``, ``option`` or ``combo``; ``None`` when not known
            (judged as shares: the broker that knows the contract judges again).
        """
        if not quantity.is_finite() or quantity <= 0:
            return f"quantity must be positive, got {quantity:f}"
        if quantity == quantity.to_integral_value():
            return ""
        if kind in ("option", "combo"):
            unit = "option contracts" if kind == "option" else "combos"
            return f"quantity {quantity:f} is not a whole number of {unit}"
        if not self.fractional:
            return (
                f"quantity {quantity:f} is not a whole number of shares "
                "(fractional shares need [sizing] fractional = true)"
            )
        if quantity != floor_quantity(quantity, whole=False):
            return f"quantity {quantity:f}: fractional shares trade in steps of 0.0001"
        return ""

    # -- changes -------------------------------------------------------------------

    def request_problem(self, change: Change) -> str:
        """Why ``change`` changes nothing, or a value to one that is not positive; or ``""``."""
        fields = change.fields()
        if not fields:
            return "nothing to change: give a quantity, a limit price or a stop price"
        for name, value in fields.items():
            if not value.is_finite() or value <= 0:
                return f"{name} must be positive, got {value:f}"
        return ""

    def require_request(self, client_order_id: str, change: Change) -> None:
        """:meth:`request_problem`, raising; what can be judged before the order is known.

        :raises InvalidOrderError: ``cannot modify <id>: <why>``.
        """
        _refuse(client_order_id, self.request_problem(change))

    def change_problem(
        self,
        change: Change,
        *,
        order_type: str,
        status: OrderStatus,
        filled: Decimal,
        kind: str | None = "stock",
    ) -> str:
        """Why ``change`` cannot be made to an order of these facts, or ``""``."""
        if not status.is_working:
            return f"the order is {status.value}, not working; there is nothing to change"
        if status.value == "pending_cancel":
            return "the order is being canceled; there is nothing to change"
        problem = self.request_problem(change)
        if problem:
            return problem
        if change.limit_price is not None and order_type not in _LIMIT_TYPES:
            return f"a {order_type} order has no limit price to change"
        if change.stop_price is not None and order_type not in _STOP_TYPES:
            return f"a {order_type} order has no stop price to change"
        quantity = change.quantity
        if quantity is None:
            return ""
        problem = self.quantity_problem(quantity, kind)
        if problem:
            return problem
        if quantity <= filled:
            return (
                f"quantity {quantity:f} is not more than the {filled:f} "
                "already filled (to stop the rest, cancel the order)"
            )
        return ""

    def require_change(
        self,
        client_order_id: str,
        change: Change,
        *,
        order_type: str,
        status: OrderStatus,
        filled: Decimal,
        kind: str | None = "stock",
    ) -> None:
        """:meth:`change_problem`, raising.

        :raises InvalidOrderError: ``cannot modify <id>: <why>``.
        """
        _refuse(
            client_order_id,
            self.change_problem(
                change, order_type=order_type, status=status, filled=filled, kind=kind
            ),
        )

    def modified(
        self, intent: OrderIntent, change: Change, *, status: OrderStatus, filled: Decimal
    ) -> OrderIntent:
        """``intent`` with ``change`` made: checked by these rules and validated as a new one.

        :raises InvalidOrderError: ``cannot modify <id>: <why>``; nothing changed.
        """
        cid = intent.client_order_id
        self.require_change(
            cid,
            change,
            order_type=intent.order_type,
            status=status,
            filled=filled,
            kind=_kind(intent.instrument),
        )
        data: dict[str, Any] = {**intent.model_dump(), **change.fields()}
        try:
            # Validated as a new order is: a copy with the fields set would skip it.
            changed = type(intent).model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            detail = first["msg"].removeprefix("Value error, ")
            raise InvalidOrderError(
                f"cannot modify {cid}: {where + ': ' if where else ''}{detail}",
                client_order_id=cid,
            ) from exc
        if change.quantity is not None and changed.option_risk is not None:
            changed = changed.with_quantity(change.quantity)
        return changed


def contract_problem(instrument: Stock | Option | Combo | None, now: dt.datetime) -> str:
    """Why ``instrument`` cannot be traded at ``now`` (the run's clock), or ``""``.

    Every option, alone or a combo's leg, must expire on or after the run's date
    in New York and at most :data:`MAX_EXPIRY_MONTHS` after it.
    """
    if isinstance(instrument, Option):
        options = [instrument]
    elif isinstance(instrument, Combo):
        options = [leg.instrument for leg in instrument.legs if isinstance(leg.instrument, Option)]
    else:
        return ""
    return _joined(*(expiry_problem(o.expiry, now, f"option {o.symbol}") for o in options))


def expiry_problem(expiry: dt.date, now: dt.datetime, what: str = "the option") -> str:
    """Why an option of ``what`` expiring on ``expiry`` cannot be traded at ``now``, or ``""``."""
    today = now.astimezone(NEW_YORK).date()
    if expiry < today:
        return f"{what} expired on {expiry} (the run's date is {today})"
    if expiry > months_after(today, MAX_EXPIRY_MONTHS):
        return (
            f"{what} expires on {expiry}, more than {MAX_EXPIRY_MONTHS} months after {today} "
            "(the run's date); no option is listed that far out"
        )
    return ""


def months_after(day: dt.date, months: int) -> dt.date:
    """``day`` moved ``months`` calendar months on (the month's last day where it is shorter)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year = day.year + years
    if year > dt.MAXYEAR:
        return dt.date.max
    month = month0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _refuse(client_order_id: str, problem: str) -> None:
    if problem:
        raise InvalidOrderError(
            f"cannot modify {client_order_id}: {problem}", client_order_id=client_order_id
        )


def _kind(instrument: Stock | Option | Combo | None) -> str:
    return "stock" if instrument is None else instrument.kind


def _joined(*problems: str) -> str:
    return "; ".join(p for p in problems if p)
