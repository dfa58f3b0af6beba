"""The base class of persistence sinks.

A sink receives every record of a run: the decisions, each risk verdict, each
order and every status change, each fill, and snapshots of positions and the
account. Sinks may buffer; :meth:`Sink.flush` must make everything received so
far durable, and the executor calls it before any order reaches a broker that
requires durable intents.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, Field
from tradepipe.component import Component
from tradepipe.decisions import Decision
from tradepipe.lifecycle import Opening
from tradepipe.logs import mask_account
from tradepipe.orders import Fill, Order, OrderEvent, OrderIntent, OrderStatus, Side
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.record import Record
from tradepipe.risk import Outcome, RiskVerdict, verdict_of

if TYPE_CHECKING:
    from tradepipe.adapter import Broker, OrderUpdate
    from tradepipe.approval import ApprovalRequest, Approved


@dataclass(frozen=True)
class Unsettled:
    """An order an earlier run sent whose ledger history has no final status.

    :param executions: execution ids already recorded for it.
    :param filled: the quantity those executions add up to.
    """

    run_id: str
    intent: OrderIntent
    status: OrderStatus
    seq: int
    filled: Decimal
    executions: frozenset[str]
    broker_order_id: str | None = None
    #: When its latest status was recorded (``None``: unknown, e.g. older ledgers).
    updated_at: datetime | None = None


class RunInfo(Record):
    """One execution of a pipeline."""

    run_id: str
    namespace: str
    started_at: AwareDatetime
    env: str
    broker: str
    feed: str
    strategies: tuple[str, ...]
    account_id: str | None = None
    #: What the run traded against, as the ledger files it (:func:`run_account`).
    account: str = ""
    #: The settings it ran with, secrets masked (what a report shows and a sweep varies).
    settings: dict[str, Any] = Field(default_factory=dict)


def run_account(broker: Any, account_id: str | None, run_id: str) -> str:
    """The ledger's key for the account a run trades: ``replay:<run id>`` for a
    simulator's in-memory account (every replay its own), ``paper:<file>`` for a
    paper account file, ``account:<id>`` for a broker's account. Ledger reads,
    tax lots and the equity curve take one such account at a time.
    """
    key: str = broker.ledger_account(account_id)
    return key or f"replay:{run_id}"


def account_of(run: Any) -> str:
    """The account key a run (its :class:`RunInfo`, or its row in the ledger) is filed
    under; a run recorded before runs said what they traded is an account of its own."""
    key: str = run.account or f"run:{run.run_id}"
    return key


def account_fields(key: str) -> dict[str, str]:
    """``{"account", "account_label"}``: an account key as answered and for a person."""
    return {"account": account_key_shown(key), "account_label": account_label(key)}


def account_key_shown(key: str) -> str:
    """The key as printed and answered: a broker account's id masked."""
    kind, _, rest = key.partition(":")
    return f"account:{mask_account(rest)}" if kind == "account" else key


def account_label(key: str) -> str:
    """The key for a person, in a word or two: an account id masked, a paper
    account file by its name, a replay's account as simulated."""
    kind, _, rest = key.partition(":")
    if kind == "account":
        return mask_account(rest)
    if kind == "paper":
        return f"paper {Path(rest).name}"
    if kind == "replay":
        return "simulated"
    return "unrecorded" if kind == "run" else key


class Sink(Component):
    """Override the ``record_*`` methods for the records you keep."""

    def open(self, run: RunInfo) -> None:
        """A run starts."""

    def record_decision(self, decision: Decision) -> None:
        pass

    def record_decision_rejected(self, raw: Any, source: str, error: str) -> None:
        """A source produced something that is not a valid decision."""

    def record_verdict(self, verdict: RiskVerdict) -> None:
        pass

    def record_verdict_values(  # noqa: PLR0917 (RiskVerdict's fields, in its order)
        self,
        decision_id: str,
        client_order_id: str,
        filter: str,
        seq: int,
        outcome: Outcome,
        reason: str,
        quantity_before: Decimal,
        quantity_after: Decimal,
        figures: dict[str, Any],
        ts: datetime,
    ) -> None:
        """A verdict of the risk chain as its values (:class:`RiskVerdict`'s fields, in
        order). Hands :meth:`record_verdict` the record; a sink that keeps verdicts
        without it overrides this too, and skips making four records an order."""
        self.record_verdict(
            verdict_of(
                decision_id,
                client_order_id,
                filter,
                seq,
                outcome,
                reason,
                quantity_before,
                quantity_after,
                figures,
                ts,
            )
        )

    def record_order(self, order: Order) -> None:
        """A new order was created from an intent (before any status change)."""

    def record_order_event(self, event: OrderEvent) -> None:
        pass

    def record_fill(self, fill: Fill) -> None:
        pass

    def record_snapshot(self, positions: Sequence[Position], account: AccountSummary) -> None:
        pass

    def sent_client_ids(self, namespace: str) -> set[str]:
        """Client order ids of orders created by earlier runs of ``namespace``.

        A restarted run with a fixed ``[run] session`` derives the same client
        order ids; the executor refuses to send one of these again. A sink
        that keeps no orders answers with an empty set.
        """
        return set()

    def opening_order(self, namespace: str, symbol: str, side: Side) -> Opening | None:
        """The order of an earlier run of ``namespace`` that opened a position in ``symbol``.

        That is the latest recorded fill (a trade, not a settlement) of
        ``symbol`` on ``side``, the side that opened the position. The
        executor asks when an option expires, is exercised or assigned and no
        order of its own run opened the position; a sink that keeps no fills
        answers ``None``.
        """
        return None

    def unsettled_orders(self, namespace: str) -> list[Unsettled]:
        """Orders earlier runs of ``namespace`` sent that have no final status yet.

        At start-up the executor asks the broker what became of them and hands
        what it learns back through :meth:`record_reconciled`.
        """
        return []

    def running_elsewhere(self) -> set[str]:
        """Runs other than this one that are still going on this host.

        Their orders are theirs to record: at start-up a run leaves them
        unsettled and follows the ones working at the broker without writing
        anything of them (a one-off ``tradepipe execute`` or API order in the
        session of a live pipeline, or a second pipeline, would otherwise
        write their ends and fills into a history that run is still writing).
        A sink that keeps no runs answers with an empty set.
        """
        return set()

    def held_orders(self, client_ids: Collection[str]) -> list[Unsettled]:
        """Of ``client_ids`` (orders working at the broker), those this sink already
        holds without a final status, in any run of any namespace; one each.

        A run adopts an order working at the broker into its own records only
        when no sink holds it yet: what becomes of one held elsewhere is written
        to the run that holds it (:meth:`record_reconciled`), so an order is
        recorded once however many runs see it working. A sink that keeps no
        orders answers with an empty list.
        """
        return []

    def record_reconciled(
        self, run_id: str, events: Sequence[OrderEvent], fills: Sequence[Fill]
    ) -> None:
        """Status changes and fills of an earlier run's order, learnt at start-up.

        They belong to the run that sent the order (``run_id``), not to this one.
        """

    def record_audit(
        self,
        kind: str,
        subject: str,
        *,
        ledger_value: str | None,
        broker_value: str | None,
        action: str,
        detail: str,
        ts: datetime,
    ) -> None:
        """A difference between the records and the broker, and what was done about it."""

    def record_approval(self, request: ApprovalRequest) -> None:
        """A sized order now waits for a person (:mod:`tradepipe.approval`); make it
        durable before returning: the order is sent only if it is found again."""

    def take_approved(self, namespace: str, run_id: str, now: datetime) -> list[Approved]:
        """The requests of ``namespace`` a person approved and no one sent yet, each
        taken for ``run_id`` once (of two runs asking at once, one gets it); those
        past their time are expired instead. A sink that keeps no requests: none."""
        return []

    def approval_done(
        self, approval_id: str, status: str, note: str, client_order_id: str | None
    ) -> None:
        """How a request taken by :meth:`take_approved` ended (``sent``, ``denied``,
        ``failed``), and the order it sent."""

    def flush(self) -> None:
        """Make everything received so far durable."""

    def close(self, run: RunInfo, bars: int, status: str) -> None:
        """The run ended as ``status``: completed, stopped, failed or interrupted."""

    # -- outside a run: what commands and the API ask of the records -----------

    def follow(self, broker: Broker, account: str | None = None) -> None:
        """Tell ``broker`` of the orders these records hold open (:meth:`Broker.track`).

        A command then knows them as a run would: by the broker ids kept, and a
        bracket's exits by name. A sink that keeps no orders does nothing.

        :param account: the key of the account the broker is connected to
            (:func:`run_account`): only the runs filed under it, and runs
            recorded before runs said what they traded, can have orders open
            there. ``None``: every run's.
        """

    def execution_orders(self, execution_ids: Collection[str]) -> dict[str, str]:
        """The client order id of each of ``execution_ids`` these records know."""
        return {}

    def record_end(
        self, broker: Broker, client_order_id: str, requested: OrderUpdate | None, env: str
    ) -> str | None:
        """Write how an order these records left open ended, once the broker confirmed it.

        :param requested: the broker's answer to a cancel the user asked for; the
            history then shows the request before the end.
        :param env: the settings environment, recorded with the run that holds it.
        :returns: the id of the run holding what was written, or ``None`` when
            nothing was (no records yet, the order is unknown or already ended).
        """
        return None

    def release(self) -> None:
        """Let go of connections opened to answer the questions above."""
