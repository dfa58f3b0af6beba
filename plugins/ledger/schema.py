"""The ledger's tables.

Money and quantities are exact: ``NUMERIC`` on PostgreSQL, decimal text on
SQLite (whose own numeric type is a binary float). Timestamps keep their UTC
offset: ``timestamptz`` on PostgreSQL, ISO-8601 text on SQLite. Rows are never
updated to show progress: an order's history is its ``status_changes`` rows
(read with the order's ids through the ``order_events`` view).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel, col

metadata = MetaData()


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal stored without loss on every backend."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            # Unconstrained NUMERIC keeps each value's own scale: 100.10 stays 100.10.
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(48))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp that comes back aware."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(String(40))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger only stores timezone-aware timestamps")
        return value if dialect.name == "postgresql" else value.isoformat()

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None or isinstance(value, dt.datetime):
            return value
        # Empty: a status change's time left to its order (StatusChangeRow).
        return dt.datetime.fromisoformat(value) if value else None


class _Declared(sqlite.DATETIME):
    """``DATETIME`` on SQLite, its values passed as they are either way."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class UTCSeconds(UTCDateTime):
    """The time of a run's row (a decision, judging, order, fill or status change).

    On SQLite the sink writes a time in UTC to the second as the text of its
    seconds since 1970 (migration 0025), and the column is declared ``DATETIME``
    (numeric affinity), so SQLite keeps that text as the integer it spells, five
    bytes where the text took eleven (migration 0031). Read such a time through
    its view, which gives the ISO text; read here, either form comes back aware.
    """

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _Declared()  # type: ignore[no-untyped-call]
        return super().load_dialect_impl(dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            return dt.datetime.fromtimestamp(int(value), dt.UTC)
        return super().process_result_value(value, dialect)


#: Each order status's number in ``status_changes`` (migration 0023): a change
#: stored its status and the one before as text, about 18 of its 48 bytes. Fixed
#: for good: a status added later takes the next number, with a migration that
#: makes the ``order_events`` view name it.
STATUS_CODES: dict[str, int] = {
    "initialized": 0,
    "denied": 1,
    "submitted": 2,
    "unknown": 3,
    "accepted": 4,
    "rejected": 5,
    "partially_filled": 6,
    "filled": 7,
    "pending_cancel": 8,
    "canceled": 9,
    "expired": 10,
}
STATUS_NAMES: dict[int, str] = {code: name for name, code in STATUS_CODES.items()}


class StatusCode(TypeDecorator[str]):
    """An order status, stored as its number (:data:`STATUS_CODES`)."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            return STATUS_CODES[value]
        except KeyError:
            raise ValueError(f"{value!r} is not an order status") from None

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        # A number no status has (none is written so) reads as its digits.
        return None if value is None else STATUS_NAMES.get(value, str(value))


class _Rows(SQLModel):
    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The row's fields in the order the table declares them.

        A row loaded from the database dumps in the order its attributes were
        loaded, which varies from one process to the next: ``explain --json`` and
        the API would print the same record with its keys in another order.
        """
        data = super().model_dump(*args, **kwargs)
        return {name: data[name] for name in type(self).model_fields if name in data}


class _Ledger(_Rows):
    metadata = metadata


def _money(**kw: Any) -> Any:
    return Field(sa_type=ExactDecimal, **kw)


def _ts(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _seconds(**kw: Any) -> Any:
    return Field(sa_type=UTCSeconds, **kw)


#: Views over the tables: read through models, never created from them (the
#: migrations make them), so they are kept out of ``metadata``.
views = MetaData()


class _View(_Rows):
    metadata = views


class RunRow(_Ledger, table=True):
    __tablename__ = "runs"
    __table_args__ = (Index("uq_runs_run_no", "run_no", unique=True),)

    run_id: str = Field(primary_key=True, max_length=64)
    namespace: str = Field(max_length=128)
    started_at: dt.datetime = _ts()
    finished_at: dt.datetime | None = _ts(default=None)
    env: str
    broker: str
    feed: str
    strategies: str = Field(sa_type=Text)
    account_id: str | None = None
    bars: int = 0
    status: str = "running"
    #: The process that ran it, so a later start can tell a killed run (status
    #: "killed") from one still going.
    host: str | None = None
    pid: int | None = None
    pid_started: int | None = Field(default=None, sa_type=BigInteger)
    #: What the run traded against (:func:`tradepipe.sink.run_account`): ledger
    #: reads, tax lots and the equity curve take one account at a time.
    account: str | None = Field(default=None, index=True)
    #: The settings it ran with as JSON, secrets masked (``RunInfo.settings``).
    settings: str | None = Field(default=None, sa_type=Text)
    #: The run's number inside the database: the tables behind the ``decisions``,
    #: ``judgements``, ``orders`` and ``fills`` views name their run by it
    #: (migration 0022). The database gives it as the row goes in (a sequence on
    #: PostgreSQL, a trigger on SQLite). Never shown: users know a run by ``run_id``.
    run_no: int | None = Field(default=None, exclude=True)


class DecisionRow(_View, table=True):
    """A decision: the ``decisions`` view of :data:`DECISION_ROWS`."""

    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128)
    created_at: dt.datetime = _ts()
    source: str
    symbol: str
    action: str
    confidence: float
    quantity: Decimal | None = _money(default=None)
    order_type: str
    limit_price: Decimal | None = _money(default=None)
    stop_price: Decimal | None = _money(default=None)
    stop_loss: Decimal | None = _money(default=None)
    take_profit: Decimal | None = _money(default=None)
    tif: str
    rationale: str = Field(sa_type=Text)
    #: The rest of the decision (sizing hints, instrument, expiry …) as JSON.
    extra: str | None = Field(default=None, sa_type=Text)


class RejectedDecisionRow(_Ledger, table=True):
    __tablename__ = "rejected_decisions"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    ts: dt.datetime = _ts()
    source: str
    raw: str | None = Field(default=None, sa_type=Text)
    error: str = Field(sa_type=Text)


#: The judgings in the partial index ``ix_judgements_denied``: those that denied.
_DENIED = text("denied_by IS NOT NULL")


class VerdictHeadRow(_Ledger, table=True):
    """What a run's verdicts repeat: a filter's place and name, the outcome and the
    reason, numbered from 0 within the run. A judging's verdicts name theirs by its
    number (migration 0020). A head may hold the names of its verdicts' figures
    too, as a JSON list (migration 0024): its verdicts then write only the values.
    """

    __tablename__ = "verdict_heads"

    run_id: str = Field(primary_key=True, max_length=64)
    n: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    filter: str
    outcome: str
    reason: str = Field(sa_type=Text)
    figures: str | None = Field(default=None, sa_type=Text)


class JudgementRow(_View, table=True):
    """One judging of an order by the guards and risk filters: its verdicts, in order.

    A chain of four filters made four rows of the same run, ids and time before;
    one row holds them now, as a JSON list, and ``denied_by`` names the filter that
    denied, if one did (a denial ends a chain). Each verdict in the list is one of:

    * ``[head, figures]``: its place, filter, outcome and reason are the run's
      :class:`VerdictHeadRow` numbered ``head``, and it left the judging's
      ``quantity`` as it was; ``figures`` is an object, or, where the head names
      the figures, a list of their values (a decimal or plain text a string, an
      integer a number, ``true``, ``false``, ``null``, anything else a list of
      one string, its JSON text);
    * ``[head, figures, quantity before, quantity after]``: the same, with its
      own quantities (decimal text);
    * ``[seq, filter, outcome, reason, quantity before, quantity after, figures]``:
      everything written out, as every verdict was before migration 0020 (and is
      still once a run has ``sink.MOST_HEADS`` heads).

    The ``verdicts`` view (:class:`VerdictRow`) gives one row per verdict, as before.
    This is the ``judgements`` view of :data:`JUDGEMENT_ROWS`.
    """

    __tablename__ = "judgements"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128)
    client_order_id: str = Field(max_length=64)
    ts: dt.datetime = _ts()
    denied_by: str | None = Field(default=None)
    verdicts: str = Field(sa_type=Text)
    #: The quantity the judging began with: its verdicts of two elements kept it.
    quantity: Decimal | None = _money(default=None)


class VerdictRow(_View, table=True):
    """A verdict: the ``verdicts`` view, one row per element of a judging's list.

    Its ``id`` is the judging's times 1,000 plus the verdict's place in it, so
    ordering by it gives the order verdicts were given in.
    """

    __tablename__ = "verdicts"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str
    decision_id: str
    client_order_id: str
    seq: int
    filter: str
    outcome: str
    reason: str
    quantity_before: Decimal = _money()
    quantity_after: Decimal = _money()
    figures: str
    ts: dt.datetime = _ts()
    #: The judging's ``id``: a condition on it finds the judgings by their own key
    #: (since migration 0029; see :func:`judgings_of_decisions`). Never shown.
    judging: int | None = Field(default=None, exclude=True)


class OrderRow(_View, table=True):
    """An order as it was placed: the ``orders`` view of :data:`ORDER_ROWS`."""

    # The order_events view joins status changes to this view: a migration that
    # rebuilds its table drops that view first and makes it again, as the latest
    # migration that made it has it (0021 on SQLite, 0019 on PostgreSQL).
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    client_order_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128)
    source: str
    symbol: str
    side: str
    quantity: Decimal = _money()
    order_type: str
    limit_price: Decimal | None = _money(default=None)
    stop_price: Decimal | None = _money(default=None)
    tif: str
    outside_rth: bool = False
    stop_loss: Decimal | None = _money(default=None)
    take_profit: Decimal | None = _money(default=None)
    reference_price: Decimal | None = _money(default=None)
    created_at: dt.datetime = _ts()
    #: The option or combo traded, as JSON, when it is not the stock ``symbol``.
    instrument: str | None = Field(default=None, sa_type=Text)
    #: An option strategy's max loss, max gain and breakevens, as JSON.
    option_risk: str | None = Field(default=None, sa_type=Text)


class StatusChangeRow(_Ledger, table=True):
    """A change of an order's status, keyed by the order's row (``orders.id``).

    The run, the client order id and the decision are the order's: an order's
    three or so changes repeated them, and the index over them was a third of
    what an order cost on disk. The ``order_events`` view (:class:`OrderEventRow`)
    gives each change with those columns, as before.

    On SQLite the sink may leave ``ts`` empty: it does for a change it writes right
    after its order, at the very time the order was placed (submitted, and often
    accepted, at once), and the view gives the order's ``created_at`` for it
    (migration 0021). Read here, such a ``ts`` is ``None``; read a change's time
    through the view.

    ``status`` and ``previous`` are stored as numbers (:class:`StatusCode`) and
    read here, and through the view, as names.

    A change has no id of its own: its order's row and its place (``seq``) are
    its key, and the view makes its ``id`` of them (migration 0030).
    """

    __tablename__ = "status_changes"
    __table_args__ = (
        # Keyed by its order's row and place: no id of its own, nor an index over
        # the key beside the table; on SQLite the rows sit in the key's order
        # (migration 0030).
        PrimaryKeyConstraint("order_id", "seq", name="pk_status_changes"),
        {"sqlite_with_rowid": False},
    )

    order_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    status: str = Field(sa_type=StatusCode)
    previous: str | None = Field(default=None, sa_type=StatusCode)
    ts: dt.datetime | None = _seconds(nullable=False)
    reason: str = Field(default="", sa_type=Text)
    broker_order_id: str | None = None


class OrderEventRow(_View, table=True):
    """A change of an order's status: the ``order_events`` view, a
    :class:`StatusChangeRow` with its order's run, client order id and decision.

    Its ``id`` is its order's row times 2**20 plus its place, ``seq`` (the negated
    id of one kept in ``order_events_unmatched``): unique, and an order's changes
    in order (migration 0030)."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str
    client_order_id: str
    decision_id: str
    seq: int
    status: str
    previous: str | None = None
    ts: dt.datetime | None = _ts(nullable=False)
    reason: str = Field(default="", sa_type=Text)
    broker_order_id: str | None = None


class UnmatchedOrderEventRow(_Ledger, table=True):
    """A status change from before migration 0019 whose order has no row in the
    ledger, kept as it was; the ``order_events`` view lists these too. Nothing
    writes here."""

    __tablename__ = "order_events_unmatched"
    __table_args__ = (
        UniqueConstraint("run_id", "client_order_id", "seq", name="uq_order_events_unmatched_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    client_order_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128)
    seq: int
    status: str
    previous: str | None = None
    ts: dt.datetime | None = _ts(nullable=False)
    reason: str = Field(default="", sa_type=Text)
    broker_order_id: str | None = None


class FillRow(_View, table=True):
    """An execution, or a leg of one: the ``fills`` view of :data:`FILL_ROWS`."""

    __tablename__ = "fills"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    execution_id: str = Field(max_length=128)
    client_order_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128)
    broker_order_id: str | None = None
    symbol: str
    side: str
    quantity: Decimal = _money()
    price: Decimal = _money()
    commission: Decimal = _money()
    multiplier: Decimal = _money()
    ts: dt.datetime = _ts()
    #: ``trade``, or how an option position ended: ``expired``, ``exercised``,
    #: ``assigned`` (then the ids are those of the order that opened it).
    kind: str = Field(default="trade", max_length=16)
    #: A combo's fill is one row for the order (``is_combo``: the combo's ticker,
    #: quantity and net price) and one per leg (``combo_execution_id`` names the
    #: combo's row). Positions, cash and tax lots take the legs; an order's filled
    #: quantity takes the combo's row.
    is_combo: bool = False
    combo_execution_id: str | None = Field(default=None, max_length=128)


class PositionRow(_Ledger, table=True):
    __tablename__ = "position_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    ts: dt.datetime = _ts()
    symbol: str
    quantity: Decimal = _money()
    avg_cost: Decimal = _money()
    multiplier: Decimal = _money()
    mark_price: Decimal | None = _money(default=None)
    realized_pnl: Decimal = _money()


class AccountRow(_Ledger, table=True):
    __tablename__ = "account_snapshots"
    # The equity curve finds the latest snapshot by time, then each run's span
    # and points of one account.
    __table_args__ = (
        Index("ix_account_snapshots_ts", "ts"),
        Index("ix_account_snapshots_account_run_ts", "account_id", "run_id", "ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    ts: dt.datetime = _ts()
    account_id: str
    currency: str
    cash: Decimal = _money()
    equity: Decimal = _money()
    buying_power: Decimal = _money()
    gross_position_value: Decimal = _money()
    realized_pnl: Decimal = _money()
    unrealized_pnl: Decimal = _money()


class AuditRow(_Ledger, table=True):
    """A difference between the ledger and the broker, and what was done about it."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64, index=True)
    ts: dt.datetime = _ts()
    kind: str
    subject: str
    ledger_value: str | None = Field(default=None, sa_type=Text)
    broker_value: str | None = Field(default=None, sa_type=Text)
    action: str
    detail: str = Field(default="", sa_type=Text)


def _stored(
    view: type[SQLModel],
    name: str,
    *extra: Any,
    keys: tuple[Column[Any], ...] = (),
    optional: frozenset[str] = frozenset(),
) -> Table:
    """The table behind ``view``: its columns, but the run named by its number
    (``runs.run_no``) rather than its id, which took 22 bytes in every row and
    index entry (migration 0022), then ``keys``; the columns named ``optional``
    may be NULL. Only the sink writes these tables."""
    columns = []
    for c in view.__table__.columns:  # type: ignore[attr-defined]
        if c.name not in ("id", "run_id"):
            column = c._copy()
            if c.name in optional:
                column.nullable = True
            if isinstance(column.type, UTCDateTime):  # its time (migration 0031)
                column.type = UTCSeconds()
            columns.append(column)
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("run_no", Integer, nullable=False),
        *keys,
        *columns,
        *extra,
    )


#: The orders and judgings that keep their own decision id, whose ids are indexed.
_OWN_DECISION = text("decision_id IS NOT NULL")

DECISION_ROWS = _stored(
    DecisionRow,
    "decision_rows",
    # By its id, and by its run's and its id (explain); by the run alone.
    Index("ix_decisions_decision", "decision_id", "run_no"),
    Index("ix_decisions_run", "run_no"),
)
JUDGEMENT_ROWS = _stored(
    JudgementRow,
    "judgement_rows",
    # A decision's judgings by its row; those of decisions the run lacks by their id.
    Index("ix_judgements_decision_row", "decision_row"),
    Index(
        "ix_judgements_decision",
        "decision_id",
        sqlite_where=_OWN_DECISION,
        postgresql_where=_OWN_DECISION,
    ),
    # Only the denials, which a run's summary counts by filter.
    Index(
        "ix_judgements_denied",
        "run_no",
        "denied_by",
        sqlite_where=_DENIED,
        postgresql_where=_DENIED,
    ),
    # A judging of an order its run holds names the order's row and leaves the
    # client order id to it (migration 0028); of a decision its run recorded, the
    # decision's row, and leaves the decision id to it (0029).
    keys=(
        Column("order_id", Integer, nullable=True),
        Column("decision_row", Integer, nullable=True),
    ),
    optional=frozenset({"client_order_id", "decision_id"}),
)

ORDER_ROWS = _stored(
    OrderRow,
    "order_rows",
    # Serves lookups by the client order id alone too; a run's orders by its number.
    UniqueConstraint("client_order_id", "run_no", name="uq_orders_cid_run"),
    Index("ix_orders_run", "run_no"),
    # A decision's orders by its row; those of decisions the run lacks by their id.
    Index("ix_orders_decision_row", "decision_row"),
    Index(
        "ix_orders_decision",
        "decision_id",
        sqlite_where=_OWN_DECISION,
        postgresql_where=_OWN_DECISION,
    ),
    # An order of a decision its run recorded names the decision's row and leaves
    # the decision id to it (migration 0027).
    keys=(Column("decision_row", Integer, nullable=True),),
    optional=frozenset({"decision_id"}),
)
#: The fills that keep their own client order id, whose ids are indexed.
_OWN_ID = text("client_order_id IS NOT NULL")

FILL_ROWS = _stored(
    FillRow,
    "fill_rows",
    UniqueConstraint("run_no", "execution_id", name="uq_fills_run_exec"),
    # An order's fills by its row; the fills of orders the ledger lacks by their id.
    Index("ix_fills_order", "order_id"),
    Index(
        "ix_fills_client_order_id",
        "client_order_id",
        sqlite_where=_OWN_ID,
        postgresql_where=_OWN_ID,
    ),
    # A fill of an order the ledger holds names the order's row and leaves its ids
    # to it: its decision id is NULL too unless it differs (migration 0026).
    keys=(Column("order_id", Integer, nullable=True),),
    optional=frozenset({"client_order_id", "decision_id"}),
)


def _keys_through(
    s: Any, rows: Table, key: str, parent: Table, field: str, ids: list[str]
) -> list[int]:
    """The ids of ``rows`` whose ``field`` is among ``ids``: those that name a row of
    ``parent`` with one of them by ``key``, and those that keep their own. No
    database looks a view's merged id up through an index, so the keys are found
    here, in ``s`` (a session), each step by an index and a list of values: given
    a subquery instead, PostgreSQL without statistics of a new table scanned every
    row for each one it read."""
    named = list(s.scalars(select(parent.c.id).where(parent.c[field].in_(ids))))
    found = union_all(
        select(rows.c.id).where(rows.c[key].in_(named)),
        select(rows.c.id).where(rows.c[field].in_(ids)),
    )
    return list(s.scalars(found))


def _through(
    s: Any, view: Any, rows: Table, key: str, parent: Table, field: str, *, ids: list[str]
) -> Any:
    """The condition on ``view`` (over ``rows``) of the rows whose ``field`` is among
    ``ids`` (see :func:`_keys_through`)."""
    return view.__table__.c.id.in_(_keys_through(s, rows, key, parent, field, ids))


def fills_of_run(run_id: str) -> Any:
    """The condition on ``fill_rows`` of the run's fills, read in their table: a
    read that takes no id need not find each fill's order (migration 0026)."""
    runs = RunRow.__table__.c  # type: ignore[attr-defined]
    run_no = select(runs.run_no).where(runs.run_id == run_id)
    return FILL_ROWS.c.run_no == run_no.scalar_subquery()


def fills_of_orders(s: Any, client_order_ids: Iterable[str]) -> Any:
    """The condition on ``fills`` of the fills under any of ``client_order_ids``: a
    fill's client order id is its own or its order's (migration 0026)."""
    ids = list(client_order_ids)
    return _through(s, FillRow, FILL_ROWS, "order_id", ORDER_ROWS, "client_order_id", ids=ids)


def orders_of_decisions(s: Any, decision_ids: Iterable[str]) -> Any:
    """The condition on ``orders`` of the orders of any of ``decision_ids``: an
    order's decision id is its own or its decision row's (migration 0027)."""
    ids = list(decision_ids)
    return _through(s, OrderRow, ORDER_ROWS, "decision_row", DECISION_ROWS, "decision_id", ids=ids)


def judgings_of_decisions(s: Any, decision_ids: Iterable[str]) -> Any:
    """The condition on ``judgements`` of the judgings of any of ``decision_ids``: a
    judging's decision id is its own or its decision row's (migration 0029)."""
    ids = list(decision_ids)
    return _through(
        s, JudgementRow, JUDGEMENT_ROWS, "decision_row", DECISION_ROWS, "decision_id", ids=ids
    )


def verdicts_of_decisions(s: Any, decision_ids: Iterable[str]) -> Any:
    """The condition on ``verdicts`` of the verdicts of any of ``decision_ids``, by
    their judgings' ids (see :func:`judgings_of_decisions`)."""
    ids = list(decision_ids)
    rows = _keys_through(s, JUDGEMENT_ROWS, "decision_row", DECISION_ROWS, "decision_id", ids)
    return col(VerdictRow.judging).in_(rows)


#: The records whose rows name their run by number, and the tables they go to.
STORED: dict[type[SQLModel], Table] = {
    DecisionRow: DECISION_ROWS,
    JudgementRow: JUDGEMENT_ROWS,
    OrderRow: ORDER_ROWS,
    FillRow: FILL_ROWS,
}


def table_of(model: type[SQLModel]) -> Table:
    """The table a record of ``model`` is written to."""
    found = STORED.get(model)
    return found if found is not None else model.__table__  # type: ignore[attr-defined]


TABLES: list[type[SQLModel]] = [
    RunRow,
    DecisionRow,
    RejectedDecisionRow,
    VerdictHeadRow,
    # Orders before judgings: a judging finds its order's row in the same batch.
    OrderRow,
    JudgementRow,
    StatusChangeRow,
    FillRow,
    PositionRow,
    AccountRow,
    AuditRow,
]


def insert_columns(model: type[SQLModel]) -> list[str]:
    """The columns a record of ``model`` fills, in its row's order: all but the
    autoincrement id (and a run's number, which the database gives it)."""
    return [
        c.name
        for c in table_of(model).columns
        if c.name != "id" and not (model is RunRow and c.name == "run_no")
    ]


# Derived tables: rewritten whole by ``tax_lots_db.rebuild_lots`` from the fills,
# never written by the sink (hence not in ``TABLES``).


class TaxLotRow(_Ledger, table=True):
    """A lot open after every fill in the ledger, by the relief ``method`` of the last rebuild."""

    __tablename__ = "tax_lots"

    id: int | None = Field(default=None, primary_key=True)
    method: str = Field(max_length=8)
    lot_id: str = Field(max_length=200)
    origin: str = Field(max_length=200)
    symbol: str
    side: str = Field(max_length=8)
    quantity: Decimal = _money()
    multiplier: Decimal = _money()
    opened_at: dt.datetime = _ts()
    purchased: dt.date
    acquired: dt.date
    basis: Decimal = _money()
    wash_adjustment: Decimal = _money()
    #: What a person reads and names (``AAPL/2025-03-10/100@187.50``).
    name: str = Field(default="", max_length=240)


class LotRealizationRow(_Ledger, table=True):
    """A closed lot or part of one: proceeds, basis, wash-sale adjustment, gain and term."""

    __tablename__ = "lot_realizations"

    id: int | None = Field(default=None, primary_key=True)
    method: str = Field(max_length=8)
    lot_id: str = Field(max_length=200)
    origin: str = Field(max_length=200)
    symbol: str
    side: str = Field(max_length=8)
    quantity: Decimal = _money()
    multiplier: Decimal = _money()
    opened_at: dt.datetime = _ts()
    closed_at: dt.datetime = _ts()
    close_execution_id: str = Field(max_length=200)
    acquired: dt.date
    sold: dt.date = Field(index=True)
    proceeds: Decimal = _money()
    basis: Decimal = _money()
    adjustment: Decimal = _money()
    gain: Decimal = _money()
    term: str = Field(max_length=8)
    name: str = Field(default="", max_length=240)


# Trades made outside tradepipe, imported for the tax lots (``tradepipe tax import``);
# never written by the sink.


class ImportRow(_Ledger, table=True):
    """One file imported: where from, for which account, and what it added."""

    __tablename__ = "imports"

    id: int | None = Field(default=None, primary_key=True)
    import_id: str = Field(max_length=40, unique=True)
    account: str = Field(index=True)
    source: str = Field(sa_type=Text)
    format: str = Field(max_length=16)
    sha256: str = Field(max_length=64, index=True)
    imported_at: dt.datetime = _ts()
    #: How the broker's Form 1099-B reports these sales (the Form 8949 box).
    reporting: str = Field(max_length=24)
    added: int
    skipped: int


class ImportedFillRow(_Ledger, table=True):
    """An execution from an imported file: a fill for the tax lots, kept with its import."""

    __tablename__ = "imported_fills"
    __table_args__ = (
        UniqueConstraint("account", "execution_id", name="uq_imported_fills_account_exec"),
    )

    id: int | None = Field(default=None, primary_key=True)
    import_id: str = Field(max_length=40, index=True)
    account: str
    execution_id: str = Field(max_length=128)
    transaction_id: str = Field(default="", max_length=64)
    trade_id: str = Field(default="", max_length=64)
    symbol: str
    side: str = Field(max_length=8)
    quantity: Decimal = _money()
    price: Decimal = _money()
    commission: Decimal = _money()
    multiplier: Decimal = _money()
    ts: dt.datetime = _ts()
    kind: str = Field(default="trade", max_length=16)
    #: Where in the file (a line, or a Flex element's number).
    line: int
    #: The import whose cancellation undid it; it then counts for nothing.
    cancelled_by: str | None = Field(default=None, max_length=40)


class ImportedLotRow(_Ledger, table=True):
    """A lot an imported sale relieved, as the broker matched it (when it says so)."""

    __tablename__ = "imported_closed_lots"

    id: int | None = Field(default=None, primary_key=True)
    import_id: str = Field(max_length=40, index=True)
    account: str
    execution_id: str = Field(max_length=128)
    symbol: str
    quantity: Decimal = _money()
    opened_at: dt.datetime = _ts()


# Parameter sweeps (``tradepipe sweep``); never written by the sink.


class SweepRow(_Ledger, table=True):
    """One sweep: what it tries, over which periods, judged by which metric."""

    __tablename__ = "sweeps"

    sweep_id: str = Field(primary_key=True, max_length=40)
    created_at: dt.datetime = _ts()
    finished_at: dt.datetime | None = _ts(default=None)
    #: ``running``, ``completed`` (every task has a result) or ``interrupted``.
    status: str = Field(default="running", max_length=16)
    metric: str = Field(max_length=32)
    #: What it was asked: the parameters, periods, walk-forward, sample (JSON).
    spec: str = Field(sa_type=Text)
    tasks: int = 0


class SweepResultRow(_Ledger, table=True):
    """One replay of a sweep: its parameters, period, metrics and daily equity, or its error."""

    __tablename__ = "sweep_results"
    __table_args__ = (UniqueConstraint("sweep_id", "task_key", name="uq_sweep_results_task"),)

    id: int | None = Field(default=None, primary_key=True)
    sweep_id: str = Field(max_length=40, index=True)
    task_key: str = Field(max_length=200)
    #: ``grid``, or a walk-forward window's ``train`` or ``test`` run.
    kind: str = Field(max_length=8)
    window: int = 0
    params: str = Field(sa_type=Text)
    start: str = Field(default="", max_length=10)
    end: str = Field(default="", max_length=10)
    metrics: str = Field(default="{}", sa_type=Text)
    equity: str = Field(default="[]", sa_type=Text)
    error: str = Field(default="", sa_type=Text)
    seconds: float = 0.0
    ts: dt.datetime = _ts()


# Decisions waiting for a person (``[approval]``); written outside the sink's batches.


class ApprovalRow(_Ledger, table=True):
    """A sized order that waited for a person, and what became of it."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("namespace", "decision_id", "attempt", name="uq_approvals_attempt"),
    )

    approval_id: str = Field(primary_key=True, max_length=40)
    namespace: str = Field(max_length=128)
    run_id: str = Field(max_length=64)
    decision_id: str = Field(max_length=128, index=True)
    source: str
    symbol: str
    side: str = Field(max_length=8)
    quantity: Decimal = _money()
    notional: Decimal | None = _money(default=None)
    reason: str = Field(sa_type=Text)
    #: The decision as JSON: what an approval sends, judged again.
    decision: str = Field(sa_type=Text)
    created_at: dt.datetime = _ts()
    expires_at: dt.datetime = _ts()
    #: ``pending``; ``approved``, then ``sending`` (taken by the run that sends it,
    #: ``sent_run_id``), then ``sent`` or ``denied`` (judged again), or ``failed``;
    #: ``rejected``; ``expired``.
    status: str = Field(default="pending", max_length=16, index=True)
    decided_by: str | None = None
    decided_at: dt.datetime | None = _ts(default=None)
    note: str = Field(default="", sa_type=Text)
    #: The order an approval sent, and the run that sent it.
    client_order_id: str | None = Field(default=None, max_length=64)
    sent_run_id: str | None = Field(default=None, max_length=64)
    #: ``decision`` (an ``[approval]`` rule) or ``question`` (the broker asked).
    kind: str = Field(default="decision", max_length=16)
    #: 0 for a decision; for a question, the send of the order it approves.
    attempt: int = 0
    #: The broker's question, its ids, and every id confirmed when it is sent again
    #: (comma-separated).
    question: str = Field(default="", sa_type=Text)
    message_ids: str = ""
    answered: str = ""
    #: The order the broker asked about.
    asked_order_id: str | None = Field(default=None, max_length=64)
