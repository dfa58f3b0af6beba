"""Kill switches that survive restarts: ``max_daily_loss`` and the manual ``halt``.

Both keep their state in one small JSON file (``state_file``, default
``tradepipe-halt.json``, read and written by :mod:`tradepipe.services.halt`),
written atomically (a temporary file renamed over the old one) with mode
0600, so a restarted process finds the halt where the last one left it::

    {"manual": {"reason": "...", "at": "..."},
     "daily": {"<broker>:<account digest>": {"day": "2026-03-02", "start_equity": "100000",
               "halted": {...}}}}

``max_daily_loss`` remembers the first equity it sees on each New York date;
once equity has dropped by the limit it halts trading for the rest of that
date. ``tradepipe halt`` sets a manual halt that lasts until ``tradepipe
resume``, honoured by the ``halt`` filter. While halted, orders that only
reduce a position still pass (unless ``allow_reducing = false``): closing
lowers risk, and refusing it could trap a losing position.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from tradepipe import (
    Check,
    ComponentSettings,
    Decision,
    OrderIntent,
    RiskContext,
    RiskFilter,
    hookimpl,
)
from tradepipe.clock import ManualClock
from tradepipe.errors import PersistenceError
from tradepipe.money import cents
from tradepipe.plugins.risk.filters import reduces_only
from tradepipe.services.halt import (
    DEFAULT_STATE_FILE,
    daily_accounts,
    halt_state_path,
    read_state,
    trading_day,
    write_state,
)

__all__ = ["Halt", "MaxDailyLoss"]


class _HaltSettings(ComponentSettings):
    #: Where the halt state lives (shared by ``halt``, ``max_daily_loss`` and the commands).
    #: Unset: the file ``tradepipe halt`` writes (:func:`halt_state_path`).
    state_file: Path = Path(DEFAULT_STATE_FILE)
    #: Let orders that only shrink a position through while halted.
    allow_reducing: bool = True


#: In a replay, the ``halt`` filter looks at its state file at most this often
#: (wall seconds); a live run looks at it for every order.
REPLAY_LOOK_SECONDS = 0.02
_monotonic = time.monotonic


class _StateFile(RiskFilter):
    """A filter reading the halt state file: its own ``state_file`` when set, else the one
    ``tradepipe halt`` and ``resume`` use, so a halt set by hand is always the one read."""

    settings: Any

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self.state_file: Path = self.settings.state_file

    def attach(self, runtime: Any) -> None:
        if "state_file" not in self.settings.model_fields_set:
            self.state_file = halt_state_path(runtime.settings)


class Halt(_StateFile):
    """Deny every order while a manual halt (``tradepipe halt``) is set."""

    name = "halt"
    description = "deny orders while `tradepipe halt` is in force (until `tradepipe resume`)"

    class Settings(_HaltSettings):
        pass

    settings: Settings

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._seen: tuple[int, int, int] | None = None
        self._manual: Any = None
        #: Wall seconds a look at the file is trusted for: none in a live run, a
        #: little in a replay (see :meth:`attach`).
        self._trusted_for = 0.0
        self._looked_until = 0.0

    def attach(self, runtime: Any) -> None:
        super().attach(runtime)
        # A replay judges thousands of orders a second on a clock of its own: a
        # halt set meanwhile by hand lands at whichever bar it lands, and looking
        # at the file once every REPLAY_LOOK_SECONDS of wall time, not once per
        # order, changes nothing a person could tell. A live run looks every time.
        replay = isinstance(runtime.clock, ManualClock)
        self._trusted_for = REPLAY_LOOK_SECONDS if replay else 0.0

    def manual(self) -> Any:
        """The manual halt in the state file (``None`` when there is none).

        The file is read again only when it changed (another inode — the
        writers replace it — another size or modification time): this filter
        judges every order of every run, so an unchanged file costs one
        ``stat`` (in a replay, one every :data:`REPLAY_LOOK_SECONDS` of wall
        time). A damaged file raises every time (the executor then denies).
        """
        trusted_for = self._trusted_for
        if trusted_for:
            now = _monotonic()
            if now < self._looked_until:
                return self._manual
            manual = self._look()
            self._looked_until = now + trusted_for  # not reached when the file is damaged
            return manual
        return self._look()

    def _look(self) -> Any:
        try:
            st = os.stat(self.state_file)
        except FileNotFoundError:
            self._seen = self._manual = None
            return None
        except OSError:
            st = None  # read_state says what is wrong
        key = None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
        if key is None or key != self._seen:
            self._seen = None
            self._manual = read_state(self.state_file).get("manual")
            self._seen = key
        return self._manual

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        manual = self.manual()
        if not manual:
            return self.allow()
        reason = str(manual.get("reason") or "no reason given")
        since = manual.get("at")
        if self.settings.allow_reducing and reduces_only(intent, ctx.exposure(intent.symbol)):
            return self.allow("halted, but the order only reduces the position", halted_at=since)
        return self.deny(f"trading halted by hand: {reason}", halted_at=since)


class MaxDailyLoss(_StateFile):
    """Halt trading for the rest of the New York day once equity fell by the limit."""

    name = "max_daily_loss"
    description = "halt for the day once equity drops by the limit since the day's start"

    class Settings(_HaltSettings):
        #: Largest loss in money since the day's first equity seen.
        max_loss: Decimal | None = Field(default=None, gt=0)
        #: Largest loss as a fraction of that equity (0.03 = 3%).
        max_loss_fraction: Decimal | None = Field(default=Decimal("0.03"), gt=0, lt=1)

        @model_validator(mode="after")
        def _some_limit(self) -> MaxDailyLoss.Settings:
            if self.max_loss is None and self.max_loss_fraction is None:
                raise ValueError("set max_loss or max_loss_fraction")
            return self

    settings: Settings

    def check(self, intent: OrderIntent, decision: Decision, ctx: RiskContext) -> Check:
        path = self.state_file
        state = read_state(path)
        day = trading_day(ctx.now())
        equity = ctx.equity()
        # One day's start per account: a paper replay and an IBKR account traded from
        # the same folder must never measure their losses against each other's equity.
        accounts = daily_accounts(state)
        key = ctx.account_key()
        daily = accounts.get(key)
        if not isinstance(daily, dict) or daily.get("day") != day:
            daily = {"day": day, "start_equity": str(equity), "halted": None}
            accounts[key] = daily
            write_state(path, state)
        try:
            start = Decimal(str(daily["start_equity"]))
        except (KeyError, InvalidOperation) as exc:
            raise PersistenceError(f"the halt state file {path} has no valid start_equity") from exc
        limit = self._limit(start)
        loss = start - equity
        figures: dict[str, Any] = {
            "day": day,
            "start_equity": cents(start),
            "equity": cents(equity),
            "loss": cents(loss),
            "limit": cents(limit),
        }
        halted = daily.get("halted")
        if not halted and loss >= limit:
            halted = {"at": ctx.now().isoformat(), "loss": str(cents(loss)), "limit": str(limit)}
            daily["halted"] = halted
            write_state(path, state)
        if not halted:
            return self.allow(**figures)
        if self.settings.allow_reducing and reduces_only(intent, ctx.exposure(intent.symbol)):
            return self.allow(
                "halted for the day, but the order only reduces the position", **figures
            )
        return self.deny(
            f"daily loss limit hit at {halted.get('at')} (loss {halted.get('loss')} >= "
            f"{cents(Decimal(str(halted.get('limit'))))}); halted until the next New York day",
            **figures,
        )

    def _limit(self, start: Decimal) -> Decimal:
        limits = []
        if self.settings.max_loss is not None:
            limits.append(self.settings.max_loss)
        if self.settings.max_loss_fraction is not None:
            limits.append(start * self.settings.max_loss_fraction)
        return min(limits)


@hookimpl
def tradepipe_register_risk_filters(register: Any) -> None:
    register(Halt)
    register(MaxDailyLoss)


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("halt", "tradepipe.plugins.risk.halt_cli:halt"))
    register(LazyCommand("resume", "tradepipe.plugins.risk.halt_cli:resume"))
