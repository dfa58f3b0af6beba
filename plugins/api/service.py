"""What every REST API call shares: settings, plugins, the locks, a held broker connection.

Calls run concurrently, each on a thread of its own; :class:`Service` keeps
them apart only where they would otherwise collide:

* **the broker** (:attr:`Service.broker_lock`): one call at a time uses a
  broker connection. It owns the connection ``POST /broker/connect`` asks it
  to hold; while one is held, reads use it, otherwise each read connects and
  disconnects, as the CLI does. Two connections of one process may not
  coexist (the paper account's file takes one writer; an OAuth login's new
  session token can invalidate the older one), and an adapter is not made
  for concurrent use.
* **orders** (:attr:`Service.order_lock`): orders, decisions and cancels of
  the account are serialised. Each runs in a short run of its own
  (:func:`~tradepipe.direct.direct_run`), which connects its own broker, so it
  holds the broker lock too for as long as it runs: the held connection is
  released for that run and made again after it.
* **state files** (:attr:`Service.files`): the halt file's read-modify-write,
  and the rebuild of the ledger's derived tax-lot tables and its read.

Ledger reads take no lock: they share one engine, each on a session (a
pooled connection) of its own, and the ledger (SQLite in WAL mode, or
PostgreSQL) lets them read while a run writes. Reading the halt and status
files takes none either: they are replaced whole, never seen half-written.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from fastapi import HTTPException
from sqlalchemy import Engine
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.clock import Clock
from tradepipe.direct import Direct, Outcome, direct_run
from tradepipe.host import PluginHost
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.plugins.ledger.queries import Ledger, ledger_sink
from tradepipe.services.broker import broker_problem
from tradepipe.services.halt import halt_state_path
from tradepipe.settings import AppSettings

log = logging.getLogger(__name__)

ACCOUNT_KEYS = frozenset({"account_id", "account", "acct_id", "accounts"})

T = TypeVar("T")


#: Anything that might be an account number, or a key whose value is one: looser than
#: the masking itself, so an answer that matches nothing needs no walk.
_MAYBE_ACCOUNT = re.compile(r'(?:D[A-Z]{1,2}|U|F|I)\d{5}|"(?:account|acct_id)')


def masked(value: T, key: str = "") -> T:
    """``value`` with every account number masked, wherever it is.

    An answer whose JSON holds nothing that could be one is returned as it is
    (a list of orders, say): one scan of its text instead of a walk.
    """
    if not key and isinstance(value, dict | list):
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = None
        if text is not None and _MAYBE_ACCOUNT.search(text) is None:
            return value
    out: Any = value
    if isinstance(value, dict):
        out = {k: masked(v, str(k)) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        out = [masked(v, key) for v in value]
    elif isinstance(value, str):
        # A ledger account key (``replay:…``, ``paper:…``, ``account:U***4567``) is
        # not an account number: only what it may hold of one is masked.
        whole = key in ACCOUNT_KEYS and ":" not in value
        out = mask_account(value) if whole else redact_accounts(value)
    return cast(T, out)


class Service:
    """The settings and plugins calls use, the locks that keep them apart, the held broker."""

    def __init__(self, settings: AppSettings, host: PluginHost) -> None:
        self.settings = settings
        self.host = host
        #: Held by an order, a decision or a cancel: one at a time for the account.
        #: Taken before :attr:`broker_lock`, never after it.
        self.order_lock = threading.RLock()
        #: Held while a broker connection is used, made or released.
        self.broker_lock = threading.RLock()
        #: Held around a state file's read-modify-write and the tax lots' rebuild.
        self.files = threading.Lock()
        #: The connection ``POST /broker/connect`` asked to keep; ``None`` when none is held.
        self.held: Broker | None = None
        self._engine: tuple[Engine, str] | None = None
        self._engine_lock = threading.Lock()
        self._recent: dict[Any, tuple[float, Any]] = {}
        self._recent_locks: dict[Any, threading.Lock] = {}
        self._recent_lock = threading.Lock()

    #: How long a heavy read's answer is served again (seconds): the equity curve and
    #: the recent activity, which a dashboard polls and a replay changes constantly.
    FRESH_SECONDS = 1.0

    def fresh(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, or its answer for ``key`` if it is younger than
        :attr:`FRESH_SECONDS`. Calls for one key wait for one computation rather
        than each doing it again (on one Python interpreter, they would only
        queue behind each other)."""
        with self._recent_lock:
            lock = self._recent_locks.setdefault(key, threading.Lock())
        with lock:
            found = self._recent.get(key)
            now = time.monotonic()
            if found is not None and now - found[0] < self.FRESH_SECONDS:
                return cast(T, found[1])
            answer = compute()
            if len(self._recent) > 256:  # one entry per query seen; keep it small
                self._recent.clear()
            self._recent[key] = (time.monotonic(), answer)
            return answer

    # -- the broker ---------------------------------------------------------------

    def _connect(self) -> tuple[Broker, BrokerStatus]:
        adapter: Broker = make_component(
            self.host, self.settings, "broker", self.settings.run.broker
        )
        return adapter, connect_broker(adapter, self.settings)

    @contextmanager
    def broker(self, *, ready: bool = True) -> Iterator[tuple[Broker, BrokerStatus]]:
        """The held broker, else the configured one connected (live refused) for this call.

        With ``ready`` a broker that is not connected and logged in raises.
        """
        with self.broker_lock:
            if self.held is not None:
                adapter = self.held
                status = adapter.status()
                trouble = broker_problem(adapter, status)
                if ready and trouble is not None:
                    raise trouble
                yield adapter, status
                return
            adapter, status = self._connect()
            try:
                trouble = broker_problem(adapter, status)
                if ready and trouble is not None:
                    raise trouble
                yield adapter, status
            finally:
                adapter.disconnect()

    def hold(self) -> tuple[Broker, BrokerStatus]:
        """Connect the configured broker and keep it (idempotent).

        :raises ConfigError: a live account without ``[run] allow_live``.
        :raises BrokerError: the broker is not connected or not logged in; nothing is held.
        """
        with self.broker_lock:
            if self.held is not None:
                return self.held, self.held.status()
            adapter, status = self._connect()
            trouble = broker_problem(adapter, status)
            if trouble is not None:
                adapter.disconnect()
                raise trouble
            self.held = adapter
            log.info("API: holding a connection to broker %s", adapter.name)
            return adapter, status

    def release(self) -> bool:
        """Disconnect the held broker; whether one was held."""
        with self.broker_lock:
            adapter, self.held = self.held, None
            if adapter is None:
                return False
            try:
                adapter.disconnect()
            except Exception as exc:
                log.warning("could not disconnect from broker %s: %s", adapter.name, exc)
            log.info("API: released the connection to broker %s", adapter.name)
            return True

    @contextmanager
    def run(
        self, settings: AppSettings, *, source: str, dry_run: bool, clock: Clock
    ) -> Iterator[Direct]:
        """:func:`~tradepipe.direct.direct_run` under the order and broker locks.

        Any held connection is set aside for the run and made again after it.
        """
        with self.order_lock, self.broker_lock:
            was_held = self.release()
            try:
                with direct_run(
                    settings, self.host, source=source, dry_run=dry_run, clock=clock
                ) as run:
                    yield run
            finally:
                if was_held:
                    try:
                        self.hold()
                    except Exception as exc:
                        log.warning("could not connect the broker again after an order: %s", exc)

    # -- the ledger and the halt file ------------------------------------------------

    def _ledger_engine(self) -> tuple[Engine, str] | None:
        """The engine every ledger read shares (made once the ledger exists), and where it is."""
        with self._engine_lock:
            if self._engine is None:
                sink = ledger_sink(self.settings, self.host)
                if sink is None:
                    return None
                self._engine = sink.engine(), sink.where
            return self._engine

    @contextmanager
    def _ledger(self, required: bool) -> Iterator[Ledger | None]:
        found = self._ledger_engine()
        if found is None and required:
            raise HTTPException(404, "there is no ledger yet")
        yield None if found is None else Ledger(*found)

    def close(self) -> None:
        """Release the held broker and the ledger's connections (the server stops)."""
        self.release()
        with self._engine_lock:
            if self._engine is not None:
                self._engine[0].dispose()
                self._engine = None

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        """The ledger; 404 when there is none yet."""
        with self._ledger(required=True) as led:
            assert led is not None
            yield led

    @contextmanager
    def ledger_if_any(self) -> Iterator[Ledger | None]:
        """The ledger, or ``None`` when there is none yet."""
        with self._ledger(required=False) as led:
            yield led

    def run_id(self, ledger: Ledger, run_id: str | None) -> str:
        run = ledger.run(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}" if run_id else "the ledger has no runs")
        return run.run_id

    def outcome(self, outcome: Outcome, run_id: str | None) -> dict[str, Any]:
        order = outcome.order
        data = outcome.as_dict()
        data["run_id"] = run_id
        data["ok"] = order is not None and order.status.value not in ("denied", "rejected")
        return data

    def halt_file(self) -> Path:
        return halt_state_path(self.settings)
