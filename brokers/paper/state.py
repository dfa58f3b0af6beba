"""The paper account's state file: its format, its lock, atomic saves, and loading it.

The file is JSON (format :data:`FORMAT`, version :data:`VERSION`; decimals as
strings), rewritten atomically: a temporary file (mode 0600), fsync,
``os.replace``. A process that uses it holds an advisory lock on
``<file>.lock``; another that finds it taken gets a read-only view, so two
writers never overwrite each other's changes. The file keeps the latest
:data:`KEPT` finished orders and fills (as IBKR forgets old executions);
pending cancel confirmations and all but the last bar of each symbol are not
kept. A file that cannot be read, is not an account or is damaged is a
:class:`~tradepipe.errors.ConfigError` naming it; a failed save is a
:class:`~tradepipe.errors.BrokerUnavailableError`. A save never writes a file
that would not load: every record it encodes anew is first read back as a load
reads it, and one that does not load fails the save with the file unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tradepipe import Bar, Fill, OrderIntent, OrderStatus, Position
from tradepipe.brokers.paper import account as paper_account
from tradepipe.brokers.paper.account import PaperAccount, SimOrder
from tradepipe.errors import BrokerUnavailableError, ConfigError
from tradepipe.money import fmt

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per file is up to the user.
    fcntl = None  # type: ignore[assignment]

#: What the state file says it is, and the one version of it this code reads.
FORMAT = "tradepipe-paper-account"
VERSION = 1
#: Finished orders and fills a state file keeps (the newest).
KEPT = paper_account.KEPT
_KEY = "brokers.paper.state_file"


class StateFile:
    """One account's file at ``path``: its lock, and what a save can reuse."""

    def __init__(self, path: Path, broker: str) -> None:
        self.path = path
        self.broker = broker
        self._fd: int | None = None
        self.forget()

    def forget(self) -> None:
        """Drop what the saves so far remembered, for a new or reloaded account."""
        # The JSON of records that can no longer change, so a save encodes only
        # news; ``_fill_json`` holds the fills from the account's
        # ``fills_forgotten``-th, as it was at the last save.
        self._order_json: dict[str, str] = {}
        self._fill_json: list[str] = []
        self._fills_forgotten = 0

    def lock(self) -> bool:
        """Take the file's lock; True when another process has it (read-only)."""
        self._fd, read_only = _lock(self.path)
        return read_only

    def unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def read(self) -> dict[str, Any] | None:
        """The file's JSON, checked to be an account of this version; None when absent."""
        return _read(self.path)

    def save(self, account: PaperAccount, account_id: str, now: dt.datetime) -> None:
        """Replace the file with ``account``; both forget all but :data:`KEPT` finished records.

        What a save writes must load again: each record it encodes anew is read
        back as :meth:`load` reads it first, and one that does not load fails
        the save, leaving the file as it was.
        """
        path = self.path
        self._trim(account)
        try:
            text = self._encode(account, account_id, now)
        except _UNREADABLE as exc:
            raise BrokerUnavailableError(
                f"could not save the paper account to {path}: it would not load again "
                f"({_detail(exc)}); the file is unchanged",
                broker=self.broker,
                path=str(path),
            ) from exc
        try:
            _write(path, text)
        except OSError as exc:
            raise BrokerUnavailableError(
                f"could not save the paper account to {path}: {exc.strerror or exc}",
                broker=self.broker,
                path=str(path),
            ) from exc

    def _trim(self, account: PaperAccount) -> None:
        account.forget(KEPT)
        orders, encoded = account.orders, self._order_json
        for cid in [cid for cid in encoded if cid not in orders]:
            del encoded[cid]
        # The account may also have forgotten fills between saves.
        gone = account.fills_forgotten - self._fills_forgotten
        if gone > 0:
            del self._fill_json[:gone]
            self._fills_forgotten = account.fills_forgotten

    def _encode(self, account: PaperAccount, account_id: str, now: dt.datetime) -> str:
        book = account.book
        holdings = book.positions(include_flat=True)
        head = {
            "format": FORMAT,
            "version": VERSION,
            "account_id": account_id,
            "currency": book.currency,
            "saved_at": now.isoformat(),
            "next_id": account.next_id,
            "cash": fmt(book.cash),
            "realized_pnl": fmt(book.realized_pnl),
            "commissions": fmt(book.commissions),
            "positions": [
                {
                    "symbol": p.symbol,
                    "quantity": fmt(p.quantity),
                    "avg_cost": fmt(p.avg_cost),
                    "multiplier": fmt(p.multiplier),
                    "realized_pnl": fmt(p.realized_pnl),
                }
                for p in holdings
            ],
            "last": [
                [b.symbol, b.ts.isoformat(), b.open, b.high, b.low, b.close, b.volume]
                for b in account.last.values()
            ],
        }
        head_json = json.dumps(head)
        _load_book(json.loads(head_json), book.currency)
        encoded = self._order_json
        orders = []
        for cid, sim in account.orders.items():
            text = encoded.get(cid)
            if text is None:
                text = json.dumps(_order_state(sim))
                _load_order(json.loads(text))
                if sim.status.is_terminal:
                    encoded[cid] = text
            orders.append(text)
        fill_json = self._fill_json
        news = [f.model_dump_json() for f in account.fills[len(fill_json) :]]
        for text in news:
            Fill.model_validate_json(text)
        fill_json.extend(news)
        # Orders and fills that can no longer change are encoded once and
        # reused, so a save costs what changed, not the size of the history.
        return "".join(
            (
                head_json[:-1],
                ',\n"orders": [\n',
                ",\n".join(orders),
                '\n],\n"fills": [\n',
                ",\n".join(fill_json),
                "\n]}\n",
            )
        )

    def load(self, data: dict[str, Any], account_id: str, currency: str) -> PaperAccount:
        """The account in ``data`` (from :meth:`read`), which must be ``account_id``'s."""
        path = self.path
        for key, mine in (("account_id", account_id), ("currency", currency)):
            if data.get(key) != mine:
                raise ConfigError(
                    f"[brokers.paper] state_file: {path} holds {key} {data.get(key)!r}, the "
                    f"settings say {mine!r}; set {key} to match or use another state_file",
                    key=_KEY,
                    path=str(path),
                )
        try:
            account = _load_book(data, currency)
            finished: list[str] = []
            for item in data["orders"]:
                sim = _load_order(item)
                cid = sim.intent.client_order_id
                account.orders[cid] = sim
                if sim.status.is_terminal:
                    finished.append(cid)
                else:
                    account.working.setdefault(sim.key, []).append(sim)
            account.fills = [Fill.model_validate(f) for f in data["fills"]]
            account.next_id = int(data["next_id"])
        except _UNREADABLE as exc:
            raise ConfigError(
                f"[brokers.paper] state_file: {path} is damaged ({_detail(exc)}); restore it from "
                "a backup or move it away to start a new account",
                key=_KEY,
                path=str(path),
            ) from exc
        account.finished.extend(finished)
        return account


#: What reading a damaged account raises (a missing key, a bad value or type).
_UNREADABLE = (KeyError, TypeError, ValueError, InvalidOperation, ValidationError)


def _detail(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc) or type(exc).__name__


def _load_book(data: dict[str, Any], currency: str) -> PaperAccount:
    """A new account holding the cash, positions and last prices of ``data`` (no orders yet)."""
    account = PaperAccount(_decimal(data["cash"]), currency)
    book = account.book
    book.realized_pnl = _decimal(data["realized_pnl"])
    book.commissions = _decimal(data["commissions"])
    for p in data["positions"]:
        position = Position(
            symbol=p["symbol"],
            quantity=_decimal(p["quantity"]),
            avg_cost=_decimal(p["avg_cost"]),
            multiplier=_decimal(p["multiplier"]),
            realized_pnl=_decimal(p["realized_pnl"]),
        )
        book.seed(position)
    for symbol, ts, o, h, lo, c, v in data["last"]:
        bar = Bar(str(symbol), _time(ts), float(o), float(h), float(lo), float(c), float(v))
        account.last[bar.symbol] = bar
        account.history[bar.symbol].append(bar)
    return account


def _load_order(item: dict[str, Any]) -> SimOrder:
    """One order of the file (as :func:`_order_state` writes it)."""
    sim = SimOrder(
        OrderIntent.model_validate(item["intent"]), str(item["broker_id"]), _time(item["placed"])
    )
    sim.status = OrderStatus(item["status"])
    sim.session = None if item["session"] is None else dt.date.fromisoformat(item["session"])
    sim.triggered = bool(item["triggered"])
    return sim


def _order_state(sim: SimOrder) -> dict[str, Any]:
    return {
        "intent": sim.intent.model_dump(mode="json"),
        "broker_id": sim.broker_id,
        "placed": sim.placed.isoformat(),
        "status": sim.status.value,
        "session": None if sim.session is None else sim.session.isoformat(),
        "triggered": sim.triggered,
    }


def _decimal(value: Any) -> Decimal:
    number = Decimal(value) if isinstance(value, str) else None
    if number is None or not number.is_finite():
        raise ValueError(f"expected a decimal number as a string, got {value!r}")
    return number


def _time(value: Any) -> dt.datetime:
    ts = dt.datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise ValueError(f"time without a timezone: {value!r}")
    return ts


def _lock(path: Path) -> tuple[int | None, bool]:
    """Take the account's lock: (descriptor, read-only because another process has it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"[brokers.paper] state_file: cannot use {path}: {exc.strerror or exc}",
            key=_KEY,
            path=str(path),
        ) from exc
    if fcntl is None:
        return fd, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None, True
    return fd, False


def _read(path: Path) -> dict[str, Any] | None:
    """The state file's JSON, ``None`` when there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(
            f"[brokers.paper] state_file: cannot read {path}: {why}",
            key=_KEY,
            path=str(path),
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} is not valid JSON ({exc}); restore it from a "
            "backup or move it away to start a new account",
            key=_KEY,
            path=str(path),
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} is not a paper account file "
            f'(no "format": "{FORMAT}"); point state_file at another path',
            key=_KEY,
            path=str(path),
        )
    if data.get("version") != VERSION:
        raise ConfigError(
            f"[brokers.paper] state_file: {path} has format version {data.get('version')!r}; "
            f"this tradepipe reads version {VERSION} only (was it written by another release?)",
            key=_KEY,
            path=str(path),
        )
    return data


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: a reader sees the old file or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
