"""The SQL ledger sink (SQLite by default, any SQLAlchemy URL).

Records are buffered as plain tuples and written in one transaction per batch
(``[run] batch_size``) through the driver's ``executemany``: building ORM
objects or SQLAlchemy Core parameter dicts per record would cost more than the
whole rest of a replay. Before an order goes to a broker that requires durable
intents, the executor calls :meth:`SqlSink.flush`, which commits everything
buffered so far.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Collection, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from tradepipe import (
    AccountSummary,
    ComponentSettings,
    Decision,
    Fill,
    Order,
    OrderEvent,
    PersistenceError,
    Position,
    RiskVerdict,
    RunInfo,
    Sink,
)
from tradepipe.clock import Clock, ManualClock, SystemClock
from tradepipe.lifecycle import Opening
from tradepipe.orders import Side
from tradepipe.plugins.ledger import schema
from tradepipe.plugins.ledger.db import open_engine, reason, shown, sqlite_pragmas
from tradepipe.plugins.ledger.running import runs_here
from tradepipe.plugins.ledger.tally import RunTally
from tradepipe.plugins.ledger.writer import (
    Bulk,
    Statements,
    WriterError,
    WriterProcess,
    write_bulk,
)
from tradepipe.process import this_process
from tradepipe.risk import Outcome
from tradepipe.sink import Unsettled, account_of

if TYPE_CHECKING:
    from tradepipe.adapter import Broker, OrderUpdate

log = logging.getLogger(__name__)


_dumps = json.dumps
_isfinite = math.isfinite
#: A string as JSON (C code, where ``json.dumps`` goes through Python first).
_text: Callable[[str], str] = json.encoder.encode_basestring_ascii
_EMPTY = _text("")
#: Each outcome as JSON.
_OUTCOMES = {outcome: _text(outcome.value) for outcome in Outcome}
#: Names as JSON (filters, the keys of figures), as they come: a run has a handful.
_names: dict[str, str] = {}
#: The most verdicts in one judging: the ``verdicts`` view numbers a judging's
#: verdicts by its id times 1,000 plus their place.
MOST_VERDICTS = 1000
#: The most verdict heads (place, filter, outcome, reason) a run numbers: past
#: them (reasons that quote figures, each its own head) verdicts are written out.
MOST_HEADS = 10_000


#: A verdict head: place, filter, outcome, reason and its figures' names (None
#: for a head whose verdicts write their figures as an object).
_HeadKey = tuple[int, str, Outcome, str, tuple[str, ...] | None]
#: What a run past :data:`MOST_HEADS` gets for a new head: none.
_NO_HEAD: tuple[str | None, bool] = (None, False)


def _clean(text: str) -> str:
    """``text`` with NUL and lone surrogates as U+FFFD: SQLite's JSON functions cut
    a string at a NUL, and neither database's JSON takes a lone surrogate."""
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _storable(text: str) -> str:
    """``text`` as the ledger keeps it, and gives it back (see :func:`_clean`)."""
    return text if text.isascii() and "\x00" not in text else _clean(text)


def _string_json(text: str) -> str:
    """``text`` as a JSON string the databases read back as it was: :func:`_storable`'s
    text, its test written out here because it runs for nearly every verdict."""
    if text.isascii() and "\x00" not in text:
        return _text(text)
    return _text(_clean(text))


def _name_json(name: str) -> str:
    found = _names.get(name)
    if found is None:
        found = _names[name] = _string_json(name)
    return found


def _figures(figures: dict[str, Any]) -> tuple[str, bool]:
    """JSON of a verdict's figures, decimals as strings so they stay exact, and
    whether the text is plain JSON that the databases' JSON functions read back
    as it is: not with ``NaN`` or ``Infinity`` (a float that is not finite, which
    JSON lacks) or an escaped character (NUL and lone surrogates do not survive).
    A judging's list holds plain figures as the object, others as a JSON string
    of their text, which both databases give back exactly as it was written.

    Hand-rolled for the common value types because it runs for every verdict.
    """
    if not figures:
        return "{}", True
    finite = True
    parts = []
    names = _names
    for key, value in figures.items():
        name = names.get(key) or _name_json(key)
        kind = type(value)
        if kind is Decimal:
            parts.append(f'{name}:"{value!s}"')  # str(): format() takes a slower path
        elif kind is int:
            parts.append(f"{name}:{value}")
        elif kind is float:
            # A finite float's JSON is its repr; json.dumps costs three times as much.
            if _isfinite(value):
                parts.append(f"{name}:{value!r}")
            else:
                finite = False
                parts.append(f"{name}:{_dumps(value)}")
        else:
            text = _dumps(value if kind is str or value is None or kind is bool else str(value))
            parts.append(f"{name}:{text}")
    text = "{" + ",".join(parts) + "}"
    return text, finite and "\\u" not in text


#: Integers a values list holds as numbers: SQLite reads larger ones as floats.
_BIG = 2**63


def _values(figures: dict[str, Any]) -> str | None:
    """JSON of a verdict's figures as a list of their values, for a head that names
    them (migration 0024), or None where a value needs the object (a float that is
    not finite, text with an escaped character, a type without a JSON form).

    A decimal or plain text is a JSON string, an integer (within 64 bits) a number,
    true, false and null themselves; anything else a list of one string, its JSON
    text as the object would hold it: SQLite reads a float's number back through a
    double, and prints it with 15 digits.
    """
    parts = []
    for value in figures.values():
        kind = type(value)
        if kind is Decimal:
            parts.append(f'"{value!s}"')
        elif kind is float:
            if not _isfinite(value):
                return None
            parts.append(f'["{value!r}"]')
        elif kind is int:
            parts.append(f"{value}" if -_BIG < value < _BIG else f'["{value}"]')
        elif kind is str:
            text = _text(value)
            if "\\" in text:
                return None
            parts.append(text)
        elif value is None:
            parts.append("null")
        elif kind is bool:
            parts.append("true" if value else "false")
        else:
            return None
    return "[" + ",".join(parts) + "]"


def _plain_names(names: tuple[str, ...]) -> bool:
    """Whether a head may hold ``names``: some, each its own JSON text between
    quotes (the ``verdicts`` view quotes them so)."""
    return bool(names) and all(_text(name) == f'"{name}"' for name in names)


def _figures_json(figures: dict[str, Any]) -> str:
    """JSON of a verdict's figures (see :func:`_figures`)."""
    return _figures(figures)[0]


#: The writer process's page cache (8 MiB, taken as pages are used): index
#: entries keyed by hashed ids land on random pages, which a small cache would
#: read and write again for every batch. Measured on the churn replay (100,000
#: orders): 64, 16, 8 and 4 MiB cost the writer 7.45, 7.51, 7.65 and 7.88 s of
#: CPU (on the other core: the run takes as long), and it peaks at 109, 52, 42
#: and 37 MB.
WRITER_CACHE = "PRAGMA cache_size=-8192"


_ZERO = dt.timedelta(0)
#: What :class:`_Timestamps` remembers before its first time.
_NOT_YET = object()


class _Timestamps:
    """ISO text of a timestamp, remembering the last one: records come in runs
    sharing the time of the bar that caused them.

    ``short``: a time in UTC to the second as the text of its seconds since 1970
    (SQLite's decisions, judgings, orders, fills and status changes, whose views
    give it back as ISO text: migration 0025).
    """

    __slots__ = ("_last", "_short", "_text")

    def __init__(self, short: bool = False) -> None:
        self._last: Any = _NOT_YET  # not None: a missing time fails as it always did
        self._text = ""
        self._short = short

    def __call__(self, ts: Any) -> str:
        if ts is not self._last:
            self._last = ts
            if self._short and not ts.microsecond and ts.utcoffset() == _ZERO:
                self._text = str(int(ts.timestamp()))
            else:
                self._text = ts.isoformat()
        return self._text


class SqlSink(Sink):
    """Writes every record of a run to the SQL ledger."""

    name = "sql"
    description = "the ledger: decisions, verdicts, orders and their history, fills, snapshots"

    class Settings(ComponentSettings):
        #: SQLite file of the ledger (relative to the working directory).
        path: str = "tradepipe.db"
        #: A SQLAlchemy URL instead of ``path``, e.g. ``postgresql+psycopg://…``.
        url: str | None = None
        #: SQLite fsync policy: ``full`` survives power loss, ``normal`` only crashes.
        synchronous: Literal["full", "normal"] = "full"
        #: Who writes to the ledger: a separate ``process`` (the pipeline goes on
        #: while a batch is committed; SQLite, and PostgreSQL through psycopg) or
        #: the pipeline itself (``inline``, and with other PostgreSQL drivers).
        #: Unset: a process for SQLite, and for a replay's PostgreSQL ledger; a live
        #: or one-off run's PostgreSQL writes are few, each waited for, and a
        #: process would only add its start (about 0.1 s) and a hop to each.
        writer: Literal["process", "inline"] | None = None
        batch_size: int | None = Field(default=None, ge=1)

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._engine: Engine | None = None
        self._run_id = ""
        #: The run's number in the ledger (``runs.run_no``), which its decisions,
        #: judgings, orders and fills are written with.
        self._run_no = 0
        self._batch_size = self.settings.batch_size or 20_000
        self._pending: dict[type[Any], list[tuple[Any, ...]]] = {t: [] for t in schema.TABLES}
        self._count = 0
        self._sql: dict[type[Any], str] = {}
        self._dec: Callable[[Any], Any] = str
        self._ts: Callable[[Any], Any] = _Timestamps()
        #: The times of decisions, judgings, orders, fills and status changes.
        self._at: Callable[[Any], Any] = _Timestamps(short=True)
        self._clock: Clock = SystemClock()
        self._writer: WriterProcess | None = None
        #: PostgreSQL through psycopg: the INSERTs whose rows go by COPY (see _copy_plans).
        self._copy: dict[str, Bulk] = {}
        self._broken = ""
        self._unacked = False
        self._mark = "?"
        #: The verdicts of the judging still going on, as JSON, and its decision,
        #: order and time, and the place of its last verdict (see record_verdict).
        self._judging: list[str] = []
        self._judged: tuple[str, str, Any] = ("", "", None)
        self._judged_at: Any = None
        self._judged_seq = 0
        #: The quantity the open judging began with, and as text.
        self._quantity: Decimal = Decimal(0)
        self._quantity_text = "0"
        #: The verdict heads this run has numbered, and their numbers (as text).
        self._heads: dict[_HeadKey, tuple[str | None, bool]] = {}
        #: The heads this run has numbered (a key may give another key's head).
        self._head_count = 0
        #: Whether a head may name its verdicts' figures (migration 0024).
        self._lists = False
        #: The order recorded last (run, client order id, time as written), and whether
        #: its changes at that time are written without it (SQLite: see
        #: record_order_event).
        self._placed: tuple[str, str, Any] = ("", "", None)
        self._same_time_blank = False
        #: A replay's summary figures, counted as its rows go by (see .tally).
        self._replay = False
        self._tally: RunTally | None = None
        #: The run close() ended, once it has.
        self._closed = ""

    def attach(self, runtime: Any) -> None:
        self._clock = runtime.clock
        self._replay = isinstance(runtime.clock, ManualClock)
        if self.settings.batch_size is None:
            self._batch_size = runtime.settings.run.batch_size

    # -- connection ------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.settings.url or f"sqlite:///{self.settings.path}"

    def engine(self) -> Engine:
        """The ledger's engine, created (with its tables) on first use."""
        if self._engine is None:
            self._engine = open_engine(self.url, self.settings.synchronous)
            sqlite = self._engine.dialect.name == "sqlite"
            mark = self._mark = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
            for table in schema.TABLES:
                cols = schema.insert_columns(table)
                self._sql[table] = (
                    f"INSERT INTO {schema.table_of(table).name} ({', '.join(cols)}) "
                    f"VALUES ({', '.join([mark] * len(cols))})"
                )
            # A status change is keyed by its order's row, found by the run and the
            # client order id (the orders' unique index); the order's row is always
            # written first (the tables go in TABLES' order). Had it not been, the key
            # is NULL and the batch fails: a change is never written without its order.
            self._sql[schema.StatusChangeRow] = (
                "INSERT INTO status_changes (order_id, seq, status, previous, ts, reason, "
                f"broker_order_id) VALUES ((SELECT id FROM order_rows WHERE run_no = {mark} "
                f"AND client_order_id = {mark}), {', '.join([mark] * 6)})"
            )
            # A fill takes its order's row where the ledger holds it (migration 0026),
            # an order its decision's where its run recorded the decision (0027), a
            # judging its order's and its decision's (0028, 0029); a batch writes
            # decisions, then orders, first.
            for table, insert, typed in (
                (schema.FillRow, _fill_insert, _FILL),
                (schema.OrderRow, _order_insert, _ORDER),
                (schema.JudgementRow, _judging_insert, _JUDGING),
            ):
                values = ", ".join(
                    f"{mark}{'' if sqlite else '::' + kind} AS {name}" for name, kind in typed
                )
                self._sql[table] = insert(f"(SELECT {values}) AS s", sqlite=sqlite)
            if not sqlite:
                self._dec = _identity
                self._ts = self._at = _identity
            if self._engine.dialect.driver == "psycopg":
                self._copy = _copy_plans(self._sql)
            self._same_time_blank = sqlite
            # Figures as lists of values on SQLite only: PostgreSQL's verdicts view
            # would join names and values for every row it reads, several times
            # slower to scan (1.8 s against 0.3 for 200,000 verdicts).
            self._lists = sqlite
        return self._engine

    # -- records ---------------------------------------------------------------

    def open(self, run: RunInfo) -> None:
        engine = self.engine()
        self._close_killed_runs(engine)
        writer = self.settings.writer
        if writer is None:
            writer = "process" if self._replay or engine.dialect.name == "sqlite" else "inline"
        if writer == "process":
            self._start_writer(engine)
        if self._judging:
            # Still open from a run before (a sink opened again without its close):
            # that run's row, naming that run's heads.
            self._pending[schema.JudgementRow].append(self._judging_row(None))
        self._run_id = run.run_id
        self._heads = {}
        self._head_count = 0
        self._tally = RunTally(run.run_id) if self._replay else None
        me = this_process()
        self._add(
            schema.RunRow,
            (
                run.run_id,
                run.namespace,
                self._ts(run.started_at),
                None,
                run.env,
                run.broker,
                run.feed,
                json.dumps(list(run.strategies)),
                run.account_id,
                0,
                "running",
                me.host,
                me.pid,
                me.started,
                account_of(run),
                json.dumps(run.settings, default=str) if run.settings else None,
            ),
        )
        self.flush()
        self._run_no = self._number_of(run.run_id)

    def _number_of(self, run_id: str) -> int:
        """The number the ledger gave run ``run_id`` (``runs.run_no``)."""
        runs = schema.RunRow.__table__  # type: ignore[attr-defined]
        try:
            with self.engine().connect() as conn:
                number = conn.execute(select(runs.c.run_no).where(runs.c.run_id == run_id)).scalar()
        except SQLAlchemyError as exc:
            raise PersistenceError(f"the ledger at {self.where}: {reason(exc)}") from exc
        if number is None:
            raise PersistenceError(f"the ledger at {self.where} has no run {run_id}")
        return int(number)

    def _start_writer(self, engine: Engine) -> None:
        """Hand the writing to a child process: a SQLite file's, or PostgreSQL's
        through psycopg (the driver the child can use; others write inline)."""
        url = engine.url
        where: str | dict[str, str | int]
        if engine.dialect.name == "sqlite":
            if not url.database or url.database == ":memory:":
                return
            where = url.database
            pragmas = [*sqlite_pragmas(self.settings.synchronous), WRITER_CACHE]
        elif engine.dialect.driver == "psycopg":
            # The connection's keywords as SQLAlchemy hands them to psycopg (the URL's
            # query too); the password goes to the child over its pipe.
            _args, params = engine.dialect.create_connect_args(url)
            where = {k: v for k, v in params.items() if isinstance(v, str | int)}
            pragmas = None
            # Rows the child can be sent as they are (marshal): decimals and times
            # as text, which PostgreSQL reads into its NUMERIC and timestamptz.
            self._dec = str
            self._ts = self._at = _Timestamps()
        else:
            return
        try:
            self._writer = WriterProcess(where, pragmas)
        except WriterError as exc:
            message = str(exc)
            if url.password:  # should a driver's message ever quote it
                message = message.replace(str(url.password), "***")
            raise PersistenceError(f"the ledger at {self.where}: {message}") from None

    def _mark_failed(self, run: RunInfo, bars: int) -> None:
        """After a write failed: the run's row says so (``failed``), if the ledger can
        still be reached; else the next start finds it ``killed``. Its rows up to the
        failure stay; nothing after it was written."""
        runs = schema.RunRow.__table__  # type: ignore[attr-defined]
        for attempt in (1, 2):  # a connection the failure broke is replaced once
            try:
                with self.engine().begin() as conn:
                    conn.execute(
                        update(runs)
                        .where(runs.c.run_id == run.run_id)
                        .values(status="failed", bars=bars, finished_at=SystemClock().now())
                    )
                return
            except SQLAlchemyError as exc:
                if attempt == 2:
                    log.warning(
                        "run %s could not be marked failed in the ledger: %s",
                        run.run_id,
                        reason(exc),
                    )

    def _close_killed_runs(self, engine: Engine) -> None:
        """Mark runs of this host whose process is gone as ``killed``.

        A run closes itself however it ends, short of its process being
        killed outright (SIGKILL, a power cut); then only a later start can
        tell, by finding the recorded process gone.
        """
        runs = schema.RunRow.__table__  # type: ignore[attr-defined]
        try:
            with engine.begin() as conn:
                dead = [run_id for run_id, alive in runs_here(conn).items() if alive is None]
                if dead:
                    conn.execute(
                        update(runs).where(runs.c.run_id.in_(dead)).values(status="killed")
                    )
        except SQLAlchemyError as exc:
            raise PersistenceError(f"the ledger at {self.where}: {reason(exc)}") from exc
        for run_id in dead:
            log.warning("run %s was killed (its process is gone); marked as such", run_id)

    def _add(self, table: type[Any], row: tuple[Any, ...]) -> None:
        self._pending[table].append(row)
        self._count += 1
        if self._count >= self._batch_size:
            # A full batch goes to the writer without waiting for its commit;
            # flush() is what waits.
            self._write(self._take(), wait=False)

    def record_decision(self, d: Decision) -> None:
        dec = self._dec
        extra = None
        if (
            d.sizing
            or d.instrument
            or d.expires_at
            or d.inputs_hash
            or d.outside_rth
            or d.raw
            or d.lots
        ):
            extra = d.model_dump_json(
                include={
                    "sizing",
                    "instrument",
                    "option_risk",
                    "expires_at",
                    "inputs_hash",
                    "outside_rth",
                    "raw",
                    "lots",
                },
                exclude_none=True,
            )
        self._add(
            schema.DecisionRow,
            (
                self._run_no,
                d.id,
                self._at(d.created_at),
                d.source,
                d.symbol,
                _s(d.action),
                d.confidence,
                None if d.quantity is None else dec(d.quantity),
                _s(d.order_type),
                None if d.limit_price is None else dec(d.limit_price),
                None if d.stop_price is None else dec(d.stop_price),
                None if d.stop_loss is None else dec(d.stop_loss),
                None if d.take_profit is None else dec(d.take_profit),
                _s(d.tif),
                d.rationale,
                extra,
            ),
        )
        if self._tally is not None:
            self._tally.decision(d.action)

    def record_decision_rejected(self, raw: Any, source: str, error: str) -> None:
        try:
            text = json.dumps(raw, default=str) if raw is not None else None
        except (TypeError, ValueError):
            text = repr(raw)
        self._add(
            schema.RejectedDecisionRow,
            (self._run_id, self._ts(self._clock.now()), source, text, error),
        )
        if self._tally is not None:
            self._tally.rejected += 1

    def record_verdict(self, v: RiskVerdict) -> None:
        """Add ``v`` to the judging it belongs to (see :meth:`record_verdict_values`)."""
        self.record_verdict_values(
            v.decision_id,
            v.client_order_id,
            v.filter,
            v.seq,
            v.outcome,
            v.reason,
            v.quantity_before,
            v.quantity_after,
            v.figures,
            v.ts,
        )

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
        ts: dt.datetime,
    ) -> None:
        """Add a verdict to the judging it belongs to: one ledger row holds a chain's
        verdicts (:class:`~tradepipe.plugins.ledger.schema.JudgementRow`).

        A verdict continues the open judging when it is about the same decision
        and order, at the same time, and comes later in the chain (the guards all
        share place 0); otherwise it starts one. A denial ends its judging.
        """
        judging = self._judging
        if not (
            judging
            and len(judging) < MOST_VERDICTS
            and decision_id == self._judged[0]
            and client_order_id == self._judged[1]
            and ts == self._judged[2]
            and (seq > self._judged_seq or seq == 0 == self._judged_seq)
        ):
            if judging:
                self._close_judging(None)
            self._judged = (decision_id, client_order_id, ts)
            # Its time as text now, in step with the other records' times
            # (_Timestamps keeps the last one).
            self._judged_at = self._at(ts)
            judging = self._judging = []
            self._quantity = quantity_before
            self._quantity_text = str(quantity_before)
        self._judged_seq = seq
        key: _HeadKey = (seq, filter, outcome, reason, tuple(figures))
        found = self._heads.get(key) or self._first_head(key, figures)
        text = _values(figures) if found[1] else None
        if text is None:
            text, plain = _figures(figures)
            if not plain:
                text = _text(text)
            if found[1]:  # values a list cannot carry: the head without the names
                key = (seq, filter, outcome, reason, None)
                found = self._heads.get(key) or self._new_head(key)
        head = found[0]
        if head is None:
            judging.append(
                f"[{seq},{_names.get(filter) or _name_json(filter)},{_OUTCOMES[outcome]},"
                f"{_string_json(reason) if reason else _EMPTY},"
                f'"{quantity_before!s}","{quantity_after!s}",{text}]'
            )
        elif (quantity_before is (q := self._quantity) and quantity_after is q) or (
            str(quantity_before) == str(quantity_after) == self._quantity_text
        ):
            judging.append(f"[{head},{text}]")
        else:
            judging.append(f'[{head},{text},"{quantity_before!s}","{quantity_after!s}"]')
        if outcome == "deny":
            self._close_judging(filter)
            if self._tally is not None:
                self._tally.denial(filter, _storable(reason))  # as it is read back

    def _first_head(self, key: _HeadKey, figures: dict[str, Any]) -> tuple[str | None, bool]:
        """The head of a verdict whose head with its figures' names is new to this
        run: that head, if the names and these values can be written so; else the
        head without names, which the names' key then gives too (a filter whose
        figures hold a time, say, never makes a head it cannot use)."""
        names = key[4]
        if self._lists and names and _plain_names(names) and _values(figures) is not None:
            return self._new_head(key)
        plain: _HeadKey = (*key[:4], None)
        found = self._heads.get(plain) or self._new_head(plain)
        if found[0] is not None:
            self._heads[key] = found
        return found

    def _new_head(self, key: _HeadKey) -> tuple[str | None, bool]:
        """Number a head (place, filter, outcome, reason, figure names) new to this
        run and buffer its row: its number as text, and whether its verdicts write
        their figures' values only (it names them). No number once the run has
        :data:`MOST_HEADS` (its verdicts are then written out in full)."""
        number = self._head_count
        if number >= MOST_HEADS:
            return _NO_HEAD
        self._head_count += 1
        seq, filter, outcome, reason, names = key
        compact = names is not None and _plain_names(names)
        found = self._heads[key] = (str(number), compact)
        # Buffered without starting a batch: a batch now would cut the judging in two.
        # (Values as the full form takes them too: a reason may be None, an outcome
        # its text.)
        self._pending[schema.VerdictHeadRow].append(
            (
                self._run_id,
                number,
                seq,
                _storable(filter),
                Outcome(outcome).value,
                _storable(reason or ""),
                _dumps(list(names), separators=(",", ":")) if compact and names else None,
            )
        )
        self._count += 1
        return found

    def _close_judging(self, denied_by: str | None) -> None:
        """Buffer the open judging's row (``denied_by``: the filter that denied)."""
        self._add(schema.JudgementRow, self._judging_row(denied_by))

    def _judging_row(self, denied_by: str | None) -> tuple[Any, ...]:
        """The open judging's row, leaving none open."""
        decision_id, cid, _ts = self._judged
        items, self._judging = self._judging, []
        return (
            self._run_no,
            decision_id,
            cid,
            self._judged_at,
            denied_by,
            "[" + ",".join(items) + "]",
            self._dec(self._quantity),
        )

    def record_order(self, order: Order) -> None:
        i = order.intent
        dec = self._dec
        self._add(
            schema.OrderRow,
            (
                self._run_no,
                i.client_order_id,
                i.decision_id,
                i.source,
                i.symbol,
                _s(i.side),
                dec(i.quantity),
                _s(i.order_type),
                None if i.limit_price is None else dec(i.limit_price),
                None if i.stop_price is None else dec(i.stop_price),
                _s(i.tif),
                i.outside_rth,
                None if i.stop_loss is None else dec(i.stop_loss),
                None if i.take_profit is None else dec(i.take_profit),
                None if i.reference_price is None else dec(i.reference_price),
                created := self._at(i.created_at),
                None if i.instrument is None else i.instrument.model_dump_json(),
                None if i.option_risk is None else i.option_risk.model_dump_json(),
            ),
        )
        self._placed = (self._run_id, i.client_order_id, created)
        if self._tally is not None:
            self._tally.orders += 1

    def record_order_event(self, e: OrderEvent) -> None:
        ts = self._at(e.ts)
        placed = self._placed
        if (
            ts is placed[2]  # the same text (_Timestamps keeps it): no need to compare
            and e.client_order_id == placed[1]
            and self._run_id == placed[0]
            and self._same_time_blank
        ):
            # On SQLite the change of an order at the time it was placed (submitted,
            # accepted at once) leaves its time to the order's row (migration 0021).
            ts = ""
        self._add(
            schema.StatusChangeRow,
            (
                self._run_no,
                e.client_order_id,
                e.seq,
                _STATUS[e.status],
                None if e.previous is None else _STATUS[e.previous],
                ts,
                e.reason,
                e.broker_order_id,
            ),
        )
        tally = self._tally
        # (record_reconciled writes other runs' changes and fills through here too.)
        if tally is not None and tally.run_id == self._run_id:
            tally.change(e.client_order_id, e.seq, _s(e.status))

    def record_fill(self, f: Fill) -> None:
        self._fill_row(f, is_combo=bool(f.legs), combo=None)
        for leg in f.legs:
            self._fill_row(leg, is_combo=False, combo=f.execution_id)
        tally = self._tally
        if tally is not None and tally.run_id == self._run_id:
            tally.fill(f)

    def _fill_row(self, f: Fill, is_combo: bool, combo: str | None) -> None:
        dec = self._dec
        self._add(
            schema.FillRow,
            (
                self._run_no,
                f.execution_id,
                f.client_order_id,
                f.decision_id,
                f.broker_order_id,
                f.symbol,
                _s(f.side),
                dec(f.quantity),
                dec(f.price),
                dec(f.commission),
                dec(f.multiplier),
                self._at(f.ts),
                _s(f.kind),
                is_combo,
                combo,
            ),
        )

    def record_snapshot(self, positions: Sequence[Position], account: AccountSummary) -> None:
        dec = self._dec
        ts = self._ts(account.ts)
        for p in positions:
            self._add(
                schema.PositionRow,
                (
                    self._run_id,
                    ts,
                    p.symbol,
                    dec(p.quantity),
                    dec(p.avg_cost),
                    dec(p.multiplier),
                    None if p.mark_price is None else dec(p.mark_price),
                    dec(p.realized_pnl),
                ),
            )
        a = account
        self._add(
            schema.AccountRow,
            (
                self._run_id,
                ts,
                a.account_id,
                a.currency,
                dec(a.cash),
                dec(a.equity),
                dec(a.buying_power),
                dec(a.gross_position_value),
                dec(a.realized_pnl),
                dec(a.unrealized_pnl),
            ),
        )

    # -- durability --------------------------------------------------------------

    def _take(self) -> Statements:
        """Everything buffered, as statements, leaving the buffers empty.

        The open judging too: a batch holding an order must hold its verdicts,
        or a crash after that batch leaves an order without them. (A chain's
        verdicts all come before anything else is recorded, so this never
        cuts a chain in two.)
        """
        if self._judging:
            self._pending[schema.JudgementRow].append(self._judging_row(None))
        statements: Statements = []
        for table, rows in self._pending.items():
            if rows:
                statements.append((self._sql[table], rows))
                self._pending[table] = []
        self._count = 0
        return statements

    def _write(self, statements: Statements, wait: bool) -> None:
        """Commit ``statements`` as one transaction (``wait``: before returning)."""
        if self._broken:
            raise PersistenceError(
                f"the ledger at {self.where} refuses writes after an earlier failure "
                f"({self._broken}); nothing after it was recorded"
            )
        records = sum(len(rows) for _sql, rows in statements)
        try:
            if self._copy:  # PostgreSQL through psycopg: large batches in bulk
                statements = [(self._bulk(sql, rows), rows) for sql, rows in statements]
            if self._writer is not None:
                self._writer.write(statements, wait=wait)
                self._unacked = not wait
                return
            with self.engine().begin() as conn:
                for sql, rows in statements:
                    if isinstance(sql, str):
                        conn.exec_driver_sql(sql, rows)
                    else:
                        _copy_rows(conn, sql, rows)
        except WriterError as exc:
            self._broken = str(exc)
            raise PersistenceError(f"could not write to the ledger at {self.where}: {exc}") from exc
        except Exception as exc:
            # A later batch must not land on top of a missing one: fail closed. (Not
            # only the driver's errors: a value it cannot encode fails the batch too.)
            self._broken = f"{exc.__class__.__name__}: {getattr(exc, 'orig', exc)}"
            raise PersistenceError(
                f"could not write {records} records to the ledger at {self.where}: {self._broken}"
            ) from exc

    def _bulk(self, sql: str | Bulk, rows: list[tuple[Any, ...]]) -> str | Bulk:
        """How ``rows`` of the INSERT ``sql`` are written: by it, or in bulk (COPY)."""
        if isinstance(sql, str) and len(rows) >= COPY_FROM:
            return self._copy.get(sql, sql)
        return sql

    def flush(self) -> None:
        """Commit everything received so far; return once it is on disk.

        This includes full batches already handed to the writer without
        waiting: an empty write is acknowledged only after them, and a judging
        still open (a later verdict of it would start a row of its own).
        """
        if self._count or self._unacked or self._judging:
            self._write(self._take(), wait=True)

    def close(self, run: RunInfo, bars: int, status: str) -> None:
        statements = self._take()
        statements.append(
            (
                f"UPDATE runs SET bars = {self._mark}, status = {self._mark}, "
                f"finished_at = {self._mark} WHERE run_id = {self._mark}",
                [(bars, status, self._ts(SystemClock().now()), run.run_id)],
            )
        )
        try:
            self._write(statements, wait=True)
            self._closed = run.run_id
        except PersistenceError:
            self._mark_failed(run, bars)
            raise
        finally:
            writer, self._writer = self._writer, None
            try:
                if writer is not None:
                    writer.close()
            except WriterError as exc:
                raise PersistenceError(f"the ledger at {self.where}: {reason(exc)}") from exc
            finally:
                # Also after a failed writer: no connection is left to the collector.
                if self._engine is not None:
                    self._engine.dispose()
                    self._engine = None

    # -- reads -------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The ledger's location, safe to show (no password)."""
        return shown(self.url)

    def exists(self) -> bool:
        """Whether there is a ledger to read: a database URL counts as one; a file
        must be there (reading never makes one)."""
        return self.settings.url is not None or Path(self.settings.path).exists()

    def follow(self, broker: Broker, account: str | None = None) -> None:
        if not self.exists():
            return
        from tradepipe.plugins.ledger.queries import Ledger

        for u in Ledger(self.engine(), self.where).unsettled(None, account=account):
            broker.track(u.intent, u.broker_order_id)

    def execution_orders(self, execution_ids: Collection[str]) -> dict[str, str]:
        if not execution_ids or not self.exists():
            return {}
        from tradepipe.plugins.ledger.queries import Ledger

        return Ledger(self.engine(), self.where).orders_of_executions(execution_ids)

    def record_end(
        self, broker: Broker, client_order_id: str, requested: OrderUpdate | None, env: str
    ) -> str | None:
        if not self.exists():
            return None
        from tradepipe.plugins.ledger.reconcile import settle_order

        return settle_order(self, env, broker, client_order_id, requested)

    def release(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def unsettled_orders(self, namespace: str) -> list[Unsettled]:
        from tradepipe.plugins.ledger.queries import Ledger

        return Ledger(self.engine(), self.where).unsettled(namespace, exclude_run=self._run_id)

    def opening_order(self, namespace: str, symbol: str, side: Side) -> Opening | None:
        from tradepipe.plugins.ledger.queries import Ledger

        # What this run recorded so far is looked up too (the executor knows it
        # already, but a flush costs nothing next to an expiry).
        self.flush()
        return Ledger(self.engine(), self.where).opening(namespace, symbol, side.value)

    def running_elsewhere(self) -> set[str]:
        # Only this host's runs can be checked. One marked running on another host
        # may have died with it (a run moved to another machine must still settle
        # what it left), so its orders are settled as an ended run's are.
        try:
            with self.engine().connect() as conn:
                found = runs_here(conn)
        except SQLAlchemyError as exc:
            raise PersistenceError(f"the ledger at {self.where}: {reason(exc)}") from exc
        # This process runs one run at a time: another of its own that says it is
        # running ended without closing (a close that failed).
        me = this_process().pid
        return {
            run_id
            for run_id, alive in found.items()
            if alive is not None and alive.pid != me and run_id != self._run_id
        }

    def held_orders(self, client_ids: Collection[str]) -> list[Unsettled]:
        from tradepipe.plugins.ledger.queries import Ledger

        if not client_ids:
            return []
        return Ledger(self.engine(), self.where).unsettled_of(client_ids, exclude_run=self._run_id)

    def record_reconciled(
        self, run_id: str, events: Sequence[OrderEvent], fills: Sequence[Fill]
    ) -> None:
        # The rows belong to the run that sent the order: its history stays whole.
        # A judging still open is this run's: buffered now, under this run's id,
        # before a full batch could take it while the other run's id is set.
        if self._judging:
            self._pending[schema.JudgementRow].append(self._judging_row(None))
        current = self._run_id, self._run_no
        number = self._number_of(run_id)
        self._run_id, self._run_no = run_id, number
        try:
            for event in events:
                self.record_order_event(event)
            for fill in fills:
                self.record_fill(fill)
        finally:
            self._run_id, self._run_no = current
        self.flush()

    def record_audit(
        self,
        kind: str,
        subject: str,
        *,
        ledger_value: str | None,
        broker_value: str | None,
        action: str,
        detail: str,
        ts: dt.datetime,
    ) -> None:
        self._add(
            schema.AuditRow,
            (self._run_id, self._ts(ts), kind, subject, ledger_value, broker_value, action, detail),
        )

    def record_approval(self, request: Any) -> None:
        """Written at once, in a transaction of its own (not in the batches): the
        order is sent only if a person finds it. The same decision waits once."""
        from sqlalchemy import insert
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        decision, intent = request.decision, request.intent
        row = {
            "approval_id": request.approval_id,
            "namespace": request.namespace,
            "run_id": request.run_id,
            "decision_id": decision.id,
            "source": decision.source,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "quantity": intent.quantity,
            "notional": request.notional,
            "reason": request.reason,
            "decision": decision.model_dump_json(),
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "status": "pending",
            "note": "",
            "kind": request.kind,
            "attempt": request.attempt,
            "question": request.question,
            "message_ids": ",".join(request.message_ids),
            "answered": ",".join(request.answered),
            "asked_order_id": request.client_order_id or None,
        }
        try:
            with self.engine().begin() as conn:
                conn.execute(insert(schema.ApprovalRow), [row])
        except IntegrityError:
            return  # it waits already
        except SQLAlchemyError as exc:
            raise PersistenceError(
                f"could not record approval in the ledger at {self.where}"
            ) from exc

    def take_approved(self, namespace: str, run_id: str, now: dt.datetime) -> list[Any]:
        from tradepipe.plugins.approval.queue import Queue

        return Queue(self.engine(), self.where).take(namespace, run_id, now)

    def approval_done(
        self, approval_id: str, status: str, note: str, client_order_id: str | None
    ) -> None:
        from tradepipe.plugins.approval.queue import Queue

        Queue(self.engine(), self.where).close(
            approval_id, status, note, client_order_id=client_order_id
        )

    def sent_client_ids(self, namespace: str) -> set[str]:
        from tradepipe.plugins.ledger.queries import Ledger

        return Ledger(self.engine(), self.where).client_ids(namespace)

    def summary(self, run_id: str) -> dict[str, Any]:
        """The run's summary from the ledger. A replay this sink wrote whole gives
        the figures it counted on the way (see :mod:`.tally`) in place of reading
        every status change and fill back."""
        from tradepipe.plugins.ledger.queries import Ledger

        engine = open_engine(self.url, self.settings.synchronous, migrate=False)
        try:
            return Ledger(engine, self.where).summary(run_id, self.tally(run_id))
        finally:
            engine.dispose()

    def tally(self, run_id: str) -> RunTally | None:
        """What this sink counted of ``run_id`` as it wrote it: a replay's, closed
        without a failure (:meth:`Ledger.summary
        <tradepipe.plugins.ledger.queries.Ledger.summary>` checks it against the
        rows the ledger holds)."""
        tally = self._tally
        if tally is None or tally.run_id != run_id or self._broken or self._closed != run_id:
            return None
        return tally


# Enum members become plain strings: drivers bind those faster, and the writer
# process must be able to read rows without importing tradepipe.
_s = str


def _identity(value: Any) -> Any:
    return value


#: An order status's number in ``status_changes`` (migration 0023).
_STATUS = schema.STATUS_CODES

#: Rows of one statement in a batch from which PostgreSQL (through psycopg) takes
#: them by COPY rather than as one INSERT each: a replay's batches. Below it, as
#: in the small batches of a live run, the one round trip of an INSERT is quicker.
COPY_FROM = 64


#: Status changes go as one INSERT of the batch's columns, each an array: each
#: change is keyed by its order's row, which the INSERT looks up as the single-row
#: INSERT does (NULL when the order is missing, and the batch fails). ``n`` keeps
#: them in the order they came. (Not COPY into a temporary table: a role may not
#: be allowed one.)
_CHANGES_BY_COLUMNS = (
    "INSERT INTO status_changes (order_id, seq, status, previous, ts, reason, broker_order_id) "
    "SELECT (SELECT o.id FROM order_rows o WHERE o.run_no = s.run_no "
    "AND o.client_order_id = s.client_order_id), s.seq, s.status, s.previous, s.ts, s.reason, "
    "s.broker_order_id FROM unnest(%s::integer[], %s::varchar[], %s::integer[], "
    "%s::smallint[], %s::smallint[], %s::timestamptz[], %s::text[], %s::varchar[]) "
    "WITH ORDINALITY AS s(run_no, client_order_id, seq, status, previous, ts, reason, "
    "broker_order_id, n) ORDER BY s.n"
)


#: The values of a fill's row, as the sink gives them, and their PostgreSQL types.
_FILL = (
    ("run_no", "integer"),
    ("execution_id", "varchar"),
    ("client_order_id", "varchar"),
    ("decision_id", "varchar"),
    ("broker_order_id", "varchar"),
    ("symbol", "varchar"),
    ("side", "varchar"),
    ("quantity", "numeric"),
    ("price", "numeric"),
    ("commission", "numeric"),
    ("multiplier", "numeric"),
    ("ts", "timestamptz"),
    ("kind", "varchar"),
    ("is_combo", "boolean"),
    ("combo_execution_id", "varchar"),
)


def _joined(alias: str, sqlite: bool, sqlite_join: str, lateral: str) -> str:
    """The row a record takes from another table, as ``alias``: on SQLite by
    ``sqlite_join`` (a LEFT JOIN), on PostgreSQL by the ``lateral`` SELECT, one
    index lookup a record. Given a join of a batch of thousands, PostgreSQL read
    the whole other table into a hash for every batch (a review: 1,000 orders
    of a ledger of 201,000 decisions, 90 ms against 15 ms)."""
    if sqlite:
        return sqlite_join
    return f"LEFT JOIN LATERAL ({lateral}) AS {alias} ON true"


def _order_of(sqlite: bool, columns: str) -> str:
    """The run's order of a record's client order id, as ``o`` (its ``columns`` of
    ``order_rows AS k`` on PostgreSQL), by the orders' unique index (see _joined)."""
    return _joined(
        "o",
        sqlite,
        "LEFT JOIN order_rows AS o "
        "ON o.run_no = s.run_no AND o.client_order_id = s.client_order_id",
        f"SELECT {columns} FROM order_rows AS k "
        "WHERE k.run_no = s.run_no AND k.client_order_id = s.client_order_id",
    )


def _fill_insert(source: str, ordinality: str = "", *, sqlite: bool = False) -> str:
    """The INSERT of fills from ``source`` (one fill's values, or a table of them,
    named ``s``): each takes the row of its run's order of its client order id,
    where the ledger holds one, and then keeps its ids only where they are not the
    order's. ``ordinality``: the ORDER BY that keeps them in order."""
    rest = [name for name, _kind in _FILL[4:]]
    order = _order_of(sqlite, "k.id, k.decision_id, k.decision_row")
    return (
        f"INSERT INTO fill_rows (run_no, order_id, execution_id, client_order_id, decision_id, "
        f"{', '.join(rest)}) "
        "SELECT s.run_no, o.id, s.execution_id, "
        "CASE WHEN o.id IS NULL THEN s.client_order_id END, "
        "CASE WHEN o.id IS NULL OR COALESCE(o.decision_id, (SELECT d.decision_id "
        "FROM decision_rows AS d WHERE d.id = o.decision_row)) <> s.decision_id "
        "THEN s.decision_id END, "
        f"{', '.join('s.' + name for name in rest)} "
        f"FROM {source} {order}{ordinality}"
    )


#: The values of an order's row, as the sink gives them, and their PostgreSQL types.
_ORDER = (
    ("run_no", "integer"),
    ("client_order_id", "varchar"),
    ("decision_id", "varchar"),
    ("source", "varchar"),
    ("symbol", "varchar"),
    ("side", "varchar"),
    ("quantity", "numeric"),
    ("order_type", "varchar"),
    ("limit_price", "numeric"),
    ("stop_price", "numeric"),
    ("tif", "varchar"),
    ("outside_rth", "boolean"),
    ("stop_loss", "numeric"),
    ("take_profit", "numeric"),
    ("reference_price", "numeric"),
    ("created_at", "timestamptz"),
    ("instrument", "text"),
    ("option_risk", "text"),
)


def _order_insert(source: str, ordinality: str = "", *, sqlite: bool = False) -> str:
    """The INSERT of orders from ``source`` (one order's values, or a table of them,
    named ``s``): each takes the row of its run's decision of its decision id, where
    the run recorded one, and then leaves its decision id to it. ``ordinality``:
    the ORDER BY that keeps them in order."""
    rest = [name for name, _kind in _ORDER[3:]]
    return (
        "INSERT INTO order_rows (run_no, decision_row, client_order_id, decision_id, "
        f"{', '.join(rest)}) "
        "SELECT s.run_no, d.id, s.client_order_id, CASE WHEN d.id IS NULL THEN s.decision_id END, "
        f"{', '.join('s.' + name for name in rest)} "
        f"FROM {source} {_decision_of(sqlite)}{ordinality}"
    )


def _decision_of(sqlite: bool) -> str:
    """The row of a record's decision, as ``d``: its run's first decision of its
    decision id, by the decisions' index (see _joined)."""
    first = "FROM decision_rows AS k WHERE k.run_no = s.run_no AND k.decision_id = s.decision_id"
    return _joined(
        "d",
        sqlite,
        f"LEFT JOIN decision_rows AS d ON d.id = (SELECT MIN(k.id) {first})",
        f"SELECT MIN(k.id) AS id {first}",
    )


#: The values of a judging's row, as the sink gives them, and their PostgreSQL types.
_JUDGING = (
    ("run_no", "integer"),
    ("decision_id", "varchar"),
    ("client_order_id", "varchar"),
    ("ts", "timestamptz"),
    ("denied_by", "varchar"),
    ("verdicts", "text"),
    ("quantity", "numeric"),
)


def _judging_insert(source: str, ordinality: str = "", *, sqlite: bool = False) -> str:
    """The INSERT of judgings from ``source`` (one judging's values, or a table of
    them, named ``s``): each takes the row of its run's order of its client order
    id, where the run holds one (written before it, or earlier in its batch), and
    of its run's decision of its decision id, where the run recorded it, and then
    leaves those ids to them. ``ordinality``: the ORDER BY that keeps them in order."""
    rest = [name for name, _kind in _JUDGING[3:]]
    order = _order_of(sqlite, "k.id")
    return (
        "INSERT INTO judgement_rows (run_no, order_id, decision_row, decision_id, "
        f"client_order_id, {', '.join(rest)}) "
        "SELECT s.run_no, o.id, d.id, CASE WHEN d.id IS NULL THEN s.decision_id END, "
        "CASE WHEN o.id IS NULL THEN s.client_order_id END, "
        f"{', '.join('s.' + name for name in rest)} "
        f"FROM {source} {order} {_decision_of(sqlite)}{ordinality}"
    )


def _by_columns(insert: Any, typed: tuple[tuple[str, str], ...]) -> str:
    """``insert`` (a function of its source) of a batch's columns, each an array (as
    status changes go), in the order they came."""
    return str(
        insert(
            f"unnest({', '.join(f'%s::{kind}[]' for _name, kind in typed)}) WITH ORDINALITY "
            f"AS s({', '.join(name for name, _kind in typed)}, n)",
            " ORDER BY s.n",
        )
    )


#: Orders, fills and judgings go as one INSERT of the batch's columns each, keyed
#: as the single-row INSERT keys one.
_ORDERS_BY_COLUMNS = _by_columns(_order_insert, _ORDER)
_FILLS_BY_COLUMNS = _by_columns(_fill_insert, _FILL)
_JUDGINGS_BY_COLUMNS = _by_columns(_judging_insert, _JUDGING)


def _copy_plans(inserts: dict[type[Any], str]) -> dict[str, Bulk]:
    """How each table the sink writes takes a large batch, by the INSERT it stands for."""
    plans: dict[str, Bulk] = {}
    for table, sql in inserts.items():
        if table is schema.StatusChangeRow:
            plans[sql] = ("columns", _CHANGES_BY_COLUMNS)
        elif table is schema.FillRow:
            plans[sql] = ("columns", _FILLS_BY_COLUMNS)
        elif table is schema.OrderRow:
            plans[sql] = ("columns", _ORDERS_BY_COLUMNS)
        elif table is schema.JudgementRow:
            plans[sql] = ("columns", _JUDGINGS_BY_COLUMNS)
        elif table is not schema.RunRow:  # a run's number is the database's to give
            columns = ", ".join(schema.insert_columns(table))
            plans[sql] = ("copy", f"COPY {schema.table_of(table).name} ({columns}) FROM STDIN")
    return plans


def _copy_rows(conn: Any, plan: Bulk, rows: list[tuple[Any, ...]]) -> None:
    """Write ``rows`` by ``plan``, inside the transaction ``conn`` is in."""
    with conn.connection.driver_connection.cursor() as cursor:
        write_bulk(cursor, plan, rows)
