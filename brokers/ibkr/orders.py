"""Orders on the IBKR Web API: tickets, the question chain, statuses, executions.

**Tickets.** An :class:`~tradepipe.OrderIntent` becomes IBKR's order object
(reference §6.1): numbers as JSON numbers, ``cOID`` = our client order id.
With a stop-loss and/or take-profit the intent becomes a bracket: the parent
keeps the ``cOID``; each child carries ``parentId`` = that ``cOID`` and no
``cOID`` of its own, as IBKR requires.

**Questions.** IBKR may answer a placement with a question ("price exceeds
the 3% constraint — are you sure?") identified by message ids such as
``o163``. :func:`submit` answers the chain in a loop: a question whose ids are
all in the :class:`ReplyPolicy` is confirmed; one its ``ask`` leaves to a
person is declined and the order waits in the approval queue (approved, it is
sent again with those ids confirmed); any other question is declined and the
order refused (fail closed) with the question's text in the error, so it
reaches the ledger and the user. The caller holds the session lock for the
whole chain, because any other request in between invalidates the reply id.

**Statuses.** IBKR's names map onto our state machine by :data:`STATUS_MAP`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from tradepipe.adapter import OrderReport, question_declined, question_parked
from tradepipe.decisions import OrderType
from tradepipe.errors import BrokerError, BrokerRejectedError, BrokerUnavailableError
from tradepipe.orders import Fill, OrderIntent, OrderStatus, Side

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.client import WebApiClient

_ORDER_TYPES = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STOP_LIMIT",
}
# Live orders name types in several ways ("Market", "MARKET", "Stop Limit", "LMT").
_TYPE_NAMES = {
    "mkt": OrderType.MARKET,
    "market": OrderType.MARKET,
    "lmt": OrderType.LIMIT,
    "limit": OrderType.LIMIT,
    "stp": OrderType.STOP,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
    "stop limit": OrderType.STOP_LIMIT,
    "stp lmt": OrderType.STOP_LIMIT,
}

#: IBKR order status → ours. ``Inactive`` means "not working": the reference
#: (§13) advises treating it as rejected. ``WarnState`` is still working.
STATUS_MAP: dict[str, OrderStatus] = {
    "PendingSubmit": OrderStatus.ACCEPTED,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "WarnState": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "Cancelled": OrderStatus.CANCELED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.REJECTED,
}

#: The USD spread conid IBKR uses for US option combos (reference §6.7).
USD_SPREAD_CONID = 28812380
#: Legs we accept in one combo. IBKR's own maximum depends on the exchange; four
#: covers every strategy tradepipe builds (iron condor) and is widely accepted.
MAX_COMBO_LEGS = 4


def number(value: Decimal) -> int | float:
    """A JSON number for IBKR: integral values as ints ("types matter")."""
    return int(value) if value == value.to_integral_value() else float(value)


def ticket(intent: OrderIntent, contract: int | str, account: str) -> dict[str, Any]:
    """IBKR's order object for ``intent``.

    :param contract: the conid, or a combo's ``conidex`` string.
    """
    order: dict[str, Any] = {
        "acctId": account,
        **({"conidex": contract} if isinstance(contract, str) else {"conid": contract}),
        "cOID": intent.client_order_id,
        "orderType": _ORDER_TYPES[intent.order_type],
        "side": intent.side.value.upper(),
        "tif": intent.tif.value.upper(),
        "quantity": number(intent.quantity),
        "outsideRTH": intent.outside_rth,
    }
    if intent.instrument is None:
        order["ticker"] = intent.symbol
    _prices(order, intent.order_type, intent.limit_price, intent.stop_price)
    return order


def _prices(
    order: dict[str, Any], kind: OrderType, limit: Decimal | None, stop: Decimal | None
) -> None:
    # IBKR: `price` is the limit for LMT and STOP_LIMIT but the stop for STP;
    # `auxPrice` is the stop of a STOP_LIMIT.
    if kind is OrderType.LIMIT and limit is not None:
        order["price"] = number(limit)
    elif kind is OrderType.STOP and stop is not None:
        order["price"] = number(stop)
    elif kind is OrderType.STOP_LIMIT and limit is not None and stop is not None:
        order["price"] = number(limit)
        order["auxPrice"] = number(stop)


def bracket(intent: OrderIntent, conid: int, account: str) -> list[dict[str, Any]]:
    """The parent ticket plus a take-profit and/or stop-loss child."""
    parent = ticket(intent, conid, account)
    exit_side = "SELL" if intent.side is Side.BUY else "BUY"
    children = []
    for kind, price in ((OrderType.LIMIT, intent.take_profit), (OrderType.STOP, intent.stop_loss)):
        if price is None:
            continue
        child = {
            "acctId": account,
            "conid": conid,
            "orderType": _ORDER_TYPES[kind],
            "side": exit_side,
            "tif": intent.tif.value.upper(),
            "quantity": parent["quantity"],
            "parentId": intent.client_order_id,
        }
        if "ticker" in parent:
            child["ticker"] = parent["ticker"]
        _prices(child, kind, price if kind is OrderType.LIMIT else None, price)
        children.append(child)
    return [parent, *children]


def modified_ticket(
    item: dict[str, Any],
    account: str,
    *,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
) -> dict[str, Any]:
    """A modify body rebuilt from a live order: every original field, the changes applied.

    For orders this process did not place (IBKR wants the whole ticket repeated
    and keeps no copy we could fetch in that form). The change is the order
    rules' to judge first (:mod:`tradepipe.order_rules`).
    """
    kind = _TYPE_NAMES.get(str(item.get("origOrderType") or item.get("orderType") or "").lower())
    if kind is None or item.get("conid") is None:
        raise BrokerRejectedError(
            f"cannot rebuild order {item.get('orderId')} (type {item.get('orderType')!r}) "
            "to modify it"
        )
    limit = decimal(item.get("price")) if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    stop = (
        decimal(item.get("price"))
        if kind is OrderType.STOP
        else decimal(item.get("auxPrice"))
        if kind is OrderType.STOP_LIMIT
        else None
    )
    body: dict[str, Any] = {
        "acctId": account,
        "conid": int(item["conid"]),
        "orderType": _ORDER_TYPES[kind],
        "side": "BUY" if str(item.get("side", "")).upper().startswith("B") else "SELL",
        "tif": str(item.get("timeInForce") or "DAY").upper(),
        "quantity": number(
            quantity
            or decimal(item.get("totalSize"))
            or (decimal(item.get("filledQuantity"), Decimal(0)) or Decimal(0))
            + (decimal(item.get("remainingQuantity"), Decimal(0)) or Decimal(0))
        ),
    }
    if item.get("order_ref"):
        body["cOID"] = str(item["order_ref"])
    _prices(body, kind, limit_price or limit, stop_price or stop)
    return body


def combo_conidex(legs: list[tuple[int, int]]) -> str:
    """IBKR's ``conidex`` for a US option combo of ``(conid, ratio)`` legs.

    Checked first, as IBKR would reject them: 2–4 legs, distinct contracts,
    non-zero ratios in lowest terms (the order quantity carries any common
    multiple).
    """
    if not 2 <= len(legs) <= MAX_COMBO_LEGS:
        raise BrokerRejectedError(f"a combo needs 2 to {MAX_COMBO_LEGS} legs, not {len(legs)}")
    conids = [c for c, _ in legs]
    if len(set(conids)) != len(conids):
        raise BrokerRejectedError("a combo cannot hold the same contract twice")
    ratios = [r for _, r in legs]
    if any(r == 0 for r in ratios):
        raise BrokerRejectedError("a combo leg's ratio cannot be 0")
    common = 0
    for r in ratios:
        common = _gcd(common, abs(r))
    if common != 1:
        raise BrokerRejectedError(
            f"combo ratios {ratios} share the factor {common}; divide them and multiply "
            "the order quantity instead"
        )
    body = ",".join(f"{c}/{r}" for c, r in legs)
    return f"{USD_SPREAD_CONID};;;{body}"


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def check_message_ids(value: list[str], *, wildcard: bool = False) -> list[str]:
    """Settings' IBKR question ids, as IBKR names them (``o163``, ``p12``); with
    ``wildcard``, ``"*"`` (every question) too.

    :raises ValueError: an id of another shape.
    """
    bad = [
        v
        for v in value
        if not (wildcard and v == "*") and (not v or not v[0].isalpha() or not v[1:].isdigit())
    ]
    if bad:
        raise ValueError(f"IBKR message ids look like 'o163' or 'p12', not {bad}")
    return value


@dataclass(frozen=True)
class ReplyPolicy:
    """How IBKR's order questions are answered: confirmed, left to a person, or refused.

    :param confirm: question ids confirmed automatically.
    :param ask: question ids that wait for a person (``"*"``: every question not
        confirmed). The question is declined at IBKR at once (its reply id would not
        outlive the wait) and the order waits in the approval queue.
    :param answered: ids a person accepted for the order at hand (an approved question).
    """

    confirm: frozenset[str] = frozenset()
    confirm_all: bool = False
    max_rounds: int = 10
    ask: frozenset[str] = frozenset()
    answered: frozenset[str] = frozenset()

    def allows(self, message_ids: list[str]) -> bool:
        return self.answer(message_ids) == "confirm"

    def answer(self, message_ids: list[str]) -> str:
        """``confirm``, ``ask`` (a person decides) or ``refuse``: the answer to a
        question of ``message_ids``."""
        if self.confirm_all:
            return "confirm"
        if not message_ids:
            return "refuse"  # a question without an id cannot be named in any rule
        accepted = self.confirm | self.answered
        if all(m in accepted for m in message_ids):
            return "confirm"
        if "*" in self.ask or all(m in accepted or m in self.ask for m in message_ids):
            return "ask"
        return "refuse"

    def for_order(self, answered: tuple[str, ...]) -> ReplyPolicy:
        """This policy, with the ids a person accepted for one order confirmed."""
        return replace(self, answered=frozenset(answered)) if answered else self

    def without_ask(self) -> ReplyPolicy:
        """This policy where questions are not left to a person (a change to a working
        order is not a decision the approval queue can send again)."""
        return replace(self, ask=frozenset()) if self.ask else self


@dataclass(frozen=True)
class Placed:
    """IBKR accepted the order(s): broker ids in the order sent, and the status."""

    order_ids: list[str]
    status: str


def submit(
    client: WebApiClient,
    path: str,
    body: Any,
    policy: ReplyPolicy,
    *,
    on_question: Callable[[str, list[str], bool], None] | None = None,
) -> Placed:
    """Send an order (or a modification) and answer IBKR's questions.

    :param on_question: told of each question (text, ids, confirmed?).
    :raises BrokerRejectedError: IBKR refused, or asked a question the policy
        does not allow (the question's text is in the message and
        ``context["question"]``).
    :raises BrokerUnavailableError: transport trouble; ``maybe_sent`` tells
        whether the order may have reached IBKR.
    """
    # Here rather than at the top: the paper broker shares ReplyPolicy without httpx.
    from tradepipe.brokers.ibkr.client import describe, error_text

    answer = client.post(path, body, error_ok=True)
    for _ in range(policy.max_rounds):
        text = error_text(answer)
        if text is not None:
            raise BrokerRejectedError(
                f"{client.broker}: IBKR refused the order: {describe(text)}",
                broker=client.broker,
                ibkr_error=text,
            )
        if isinstance(answer, dict) and answer.get("prompt"):
            # An "advanced" prompt with options (e.g. p12, the price management
            # algo). Nothing chooses among its options for the user: refuse.
            question = str(answer.get("text") or "")
            ids = [str(answer.get("messageId") or "")]
            if on_question:
                on_question(question, ids, False)
            raise _declined(client, question, ids)
        items = answer if isinstance(answer, list) else [answer]
        if items and all(isinstance(i, dict) and "order_id" in i for i in items):
            return Placed(
                [str(i["order_id"]) for i in items], str(items[0].get("order_status") or "")
            )
        first = items[0] if items and isinstance(items[0], dict) else None
        if first is None or "id" not in first:
            raise BrokerUnavailableError(
                f"{client.broker}: IBKR answered the order in an unknown shape",
                broker=client.broker,
                maybe_sent=True,
            )
        messages = first.get("message") or []
        question = (
            " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        )
        ids = [str(m) for m in first.get("messageIds") or []]
        verdict = policy.answer(ids)
        if on_question:
            on_question(question, ids, verdict == "confirm")
        if verdict != "confirm":
            # Decline explicitly so the question does not linger at IBKR. A question
            # for a person is declined too: IBKR voids its reply id at the next
            # request of the session (reference §6.3), long before anyone answers.
            with contextlib.suppress(BrokerError):
                client.post(f"/iserver/reply/{first['id']}", {"confirmed": False}, error_ok=True)
            if verdict == "ask":
                raise question_parked(client.broker, question, ids)
            raise _declined(client, question, ids)
        answer = client.post(f"/iserver/reply/{first['id']}", {"confirmed": True}, error_ok=True)
    raise BrokerUnavailableError(
        f"{client.broker}: IBKR kept asking questions after {policy.max_rounds} answers",
        broker=client.broker,
        maybe_sent=True,
    )


def _declined(client: WebApiClient, question: str, ids: list[str]) -> BrokerRejectedError:
    return question_declined(client.broker, question, ids)


# -- reading what IBKR reports -----------------------------------------------


def decimal(value: Any, default: Decimal | None = None) -> Decimal | None:
    """A number from IBKR's strings (``"1,300"``, ``"192.26"``) or numbers."""
    if value is None or value == "":
        return default
    try:
        number = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return default
    if not number.is_finite():
        return default
    # IBKR sends 10.0 for ten shares; keep whole numbers whole.
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number


def order_status(raw: Any, filled: Decimal) -> OrderStatus | None:
    status = STATUS_MAP.get(str(raw or ""))
    if status is OrderStatus.ACCEPTED and filled > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def report(item: dict[str, Any]) -> OrderReport | None:
    """One live order (``/iserver/account/orders``) as an :class:`OrderReport`."""
    filled = decimal(item.get("filledQuantity"), Decimal(0)) or Decimal(0)
    remaining = decimal(item.get("remainingQuantity"), Decimal(0)) or Decimal(0)
    status = order_status(item.get("status"), filled)
    if status is None:
        return None
    side = str(item.get("side") or "").lower()
    kind = _TYPE_NAMES.get(str(item.get("origOrderType") or item.get("orderType") or "").lower())
    price = decimal(item.get("price"))
    aux = decimal(item.get("auxPrice"))
    total = decimal(item.get("totalSize")) or filled + remaining
    return OrderReport(
        client_order_id=str(item["order_ref"]) if item.get("order_ref") else None,
        broker_order_id=str(item.get("orderId")),
        symbol=str(item.get("ticker") or item.get("conid") or ""),
        side="buy" if side.startswith("b") else "sell",
        quantity=total,
        filled_quantity=filled,
        status=status,
        order_type=(kind or OrderType.MARKET).value,
        limit_price=price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=(
            price if kind is OrderType.STOP else aux if kind is OrderType.STOP_LIMIT else None
        ),
    )


def status_report(body: dict[str, Any], client_order_id: str) -> OrderReport | None:
    """``/iserver/account/order/status/{id}`` (snake_case, numbers as strings) as a report."""
    filled = decimal(body.get("cum_fill"), Decimal(0)) or Decimal(0)
    status = order_status(body.get("order_status"), filled)
    total = decimal(body.get("total_size")) or decimal(body.get("size"))
    if status is None or total is None:
        return None
    kind = _TYPE_NAMES.get(str(body.get("order_type") or "").lower(), OrderType.MARKET)
    price = decimal(body.get("limit_price") or body.get("price"))
    stop = decimal(body.get("stop_price") or body.get("aux_price"))
    return OrderReport(
        client_order_id=client_order_id,
        broker_order_id=str(body.get("order_id")),
        symbol=str(body.get("symbol") or ""),
        side="buy" if str(body.get("side") or "").upper().startswith("B") else "sell",
        quantity=total,
        filled_quantity=filled,
        status=status,
        order_type=kind.value,
        limit_price=price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=stop if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
    )


def execution(item: dict[str, Any], intent: OrderIntent | None = None) -> Fill | None:
    """One execution (``/iserver/account/trades``) as a :class:`Fill`.

    With the ``intent`` it fills, the fill is keyed like the order (an
    option's OCC ticker, its multiplier) rather than by IBKR's symbol.
    """
    quantity = decimal(item.get("size"))
    price = decimal(item.get("price"))
    if not item.get("execution_id") or not quantity or not price or quantity <= 0:
        return None
    side = str(item.get("side") or "").upper()
    ts = _trade_time(item)
    if ts is None:
        return None
    return Fill(
        execution_id=str(item["execution_id"]),
        client_order_id=str(item.get("order_ref") or ""),
        decision_id=intent.decision_id if intent else "",
        broker_order_id=str(item["order_id"]) if item.get("order_id") else None,
        symbol=intent.symbol if intent else str(item.get("symbol") or ""),
        multiplier=intent.multiplier if intent else Decimal(1),
        side=Side.BUY if side in ("B", "BOT", "BUY") else Side.SELL,
        quantity=quantity,
        price=price,
        commission=decimal(item.get("commission"), Decimal(0)) or Decimal(0),
        ts=ts,
    )


def combo_fills(
    items: list[dict[str, Any]],
    intent: OrderIntent,
    legs: dict[int, tuple[str, Decimal, Decimal]],
) -> tuple[list[Fill], list[str]]:
    """A combo order's executions as fills of the combo, each carrying its legs.

    IBKR reports a combo's execution as one execution per leg (the leg's conid,
    side, size and price) and one for the combo itself (``sec_type`` ``BAG``, the
    net price), all under the order's ``order_ref`` and stamped with one trade
    time (IBKR's own documentation of executions: "combo trades and legs of the
    combo"; our reference is silent). Executions of one trade time make one fill.
    Without the combo's own execution its fill is made from the legs (net =
    Σ leg price × ratio); without any leg, the combo's fill is reported alone and
    the trade time is named in the second list, to be said.

    :param legs: leg conid -> (the leg's ticker, its ratio, its multiplier).
    """
    groups: dict[dt.datetime, list[dict[str, Any]]] = {}
    for item in items:
        ts = _trade_time(item)
        if ts is not None:
            groups.setdefault(ts, []).append(item)
    fills: list[Fill] = []
    alone: list[str] = []
    for ts, group in sorted(groups.items()):
        bag = next((i for i in group if str(i.get("sec_type") or "").upper() == "BAG"), None)
        leg_fills = []
        for item in group:
            if item is bag:
                continue
            known = legs.get(_int(item.get("conid")))
            leg = execution(item)
            if leg is None or known is None:
                continue
            ticker, _ratio, multiplier = known
            leg_fills.append(
                leg.model_copy(
                    update={
                        "symbol": ticker,
                        "multiplier": multiplier,
                        "decision_id": intent.decision_id,
                        "client_order_id": intent.client_order_id,
                    }
                )
            )
        parent = execution(bag, intent) if bag is not None else None
        if parent is None and leg_fills:
            first = leg_fills[0]
            ratio = abs(_ratio_of(legs, first.symbol)) or Decimal(1)
            net = sum(
                (
                    f.price * abs(legs_ratio) * (1 if f.side is intent.side else -1)
                    for f in leg_fills
                    for legs_ratio in [_ratio_of(legs, f.symbol)]
                ),
                Decimal(0),
            )
            parent = Fill(
                execution_id=f"combo:{first.execution_id}",
                client_order_id=intent.client_order_id,
                decision_id=intent.decision_id,
                broker_order_id=first.broker_order_id,
                symbol=intent.symbol,
                side=intent.side,
                quantity=first.quantity / ratio,
                price=max(net, Decimal(0)),
                multiplier=intent.multiplier,
                ts=ts,
            )
        if parent is None:
            continue
        if not leg_fills:
            alone.append(ts.isoformat())
            fills.append(parent)
            continue
        commission = sum((f.commission for f in leg_fills), Decimal(0))
        fills.append(
            parent.model_copy(
                update={
                    "legs": tuple(leg_fills),
                    "commission": commission or parent.commission,
                }
            )
        )
    return fills, alone


def _ratio_of(legs: dict[int, tuple[str, Decimal, Decimal]], ticker: str) -> Decimal:
    return next((ratio for t, ratio, _m in legs.values() if t == ticker), Decimal(1))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _trade_time(item: dict[str, Any]) -> dt.datetime | None:
    millis = item.get("trade_time_r")
    if millis is not None:
        return dt.datetime.fromtimestamp(int(millis) / 1000, dt.UTC)
    text = item.get("trade_time")
    if text:
        # "20231211-18:00:49", in UTC.
        try:
            return dt.datetime.strptime(str(text), "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
        except ValueError:
            return None
    return None
