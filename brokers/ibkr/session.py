"""The session supervisor: is the IBKR session usable, and keeping it so.

IBKR has two layers of session (reference §2): the SSO ("read-only") session a
person opens by logging in (gateway) or that OAuth derives, and the brokerage
session under ``/iserver`` that orders and market data need. The supervisor

* checks ``/iserver/auth/status`` and turns each state into a message that
  says what to do (log in, stop the competing login, wait);
* opens the brokerage session with ``ssodh/init`` when only the SSO session is
  alive, and after every re-login re-sends the suppressed question ids;
* reads ``/iserver/accounts`` and ``/portfolio/accounts`` before anything that
  needs them, picks the account and tells paper from live;
* keeps the session alive from a background thread (``/tickle`` every
  ``keepalive_seconds``, ``/sso/validate`` at its own slower pace) and notices
  when it is lost, so orders stop until it is back;
* repairs a lost session once and retries a failed read once (:meth:`Session.read`).

A 401 does not by itself mean "log in again". IBKR drops an idle brokerage
session while the SSO session lives on, and then answers ``/iserver`` calls
with 401 (or "no bridge"). So every repair starts by asking
``/iserver/auth/status``: connected but not authenticated means the SSO session
is alive and the brokerage session is reopened (``ssodh/init``), which takes
IBKR a few seconds, so the status is polled (bounded by ``init_wait_seconds``)
rather than checked once; only a status that is itself refused (401) or not
connected means the SSO session is gone, and then a person must log in
(gateway) or the authenticator derives a new token (OAuth).

``/sso/validate`` is allowed once a minute per session, counted across every
process: it is called only when the shared pacer says its interval has
passed; otherwise the login type learnt by the last call (kept beside the
pacing budget, by a digest of the account id) stands in.

How the SSO session itself is renewed is the :class:`Authenticator`'s business:
a gateway needs a person at a browser, OAuth derives a new token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tradepipe.brokers.ibkr.authfile import fingerprint
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.errors import BrokerAuthError, BrokerError, ConfigError
from tradepipe.logs import mask_account

log = logging.getLogger("tradepipe.brokers.ibkr")
T = TypeVar("T")
#: How long a login type learnt from /sso/validate is trusted by other processes.
_LOGIN_TYPE_TTL = 24 * 3600.0


class Authenticator(Protocol):
    """How the SSO session is opened and renewed; the one thing adapters differ in."""

    #: What a person should do when the session is gone, e.g. where to log in.
    login_hint: str

    def open(self, client: WebApiClient) -> None:
        """Make sure an SSO session exists (OAuth derives its token here)."""

    def renew(self, client: WebApiClient) -> None:
        """The SSO session was refused (401): get a new one or raise ``BrokerAuthError``."""


@dataclass(frozen=True)
class AuthState:
    """``/iserver/auth/status`` (or the ``authStatus`` inside ``/tickle``)."""

    authenticated: bool = False
    connected: bool = False
    competing: bool = False
    message: str = ""
    fail: str = ""

    @classmethod
    def parse(cls, body: Any) -> AuthState:
        if not isinstance(body, dict):
            return cls(message="unreadable auth status")
        return cls(
            authenticated=bool(body.get("authenticated")),
            connected=bool(body.get("connected")),
            competing=bool(body.get("competing")),
            message=str(body.get("message") or ""),
            fail=str(body.get("fail") or ""),
        )

    @property
    def healthy(self) -> bool:
        return self.authenticated and self.connected and not self.competing


@dataclass
class AccountInfo:
    """The account this session trades, and whether it is a paper account."""

    account_id: str
    is_paper: bool
    accounts: list[str] = field(default_factory=list)


def is_paper_account(account_id: str, flag: Any) -> bool:
    """Paper only when IBKR's ``isPaper`` (when present) and the id agree.

    IBKR's paper accounts start with ``D`` (``DU1234567``); live ones with
    ``U`` and other letters. The reference warns against trusting the prefix
    alone, so an account counts as paper only if nothing says it is live.
    """
    by_prefix = account_id.upper().startswith("D")
    return by_prefix if flag is None else bool(flag) and by_prefix


class Session:
    """Supervises one IBKR session for one adapter (see the module docstring)."""

    def __init__(
        self,
        client: WebApiClient,
        authenticator: Authenticator,
        *,
        account_id: str = "",
        compete: bool = False,
        suppress: tuple[str, ...] = (),
        keepalive_seconds: float = 60.0,
        validate_seconds: float = 300.0,
        init_wait_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.authenticator = authenticator
        self.wanted_account = account_id
        self.compete = compete
        self.suppress = suppress
        self.keepalive_seconds = keepalive_seconds
        self.validate_seconds = validate_seconds
        self.init_wait_seconds = init_wait_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        #: Held for a whole order submission (question chain included), and by
        #: the keep-alive, because any request in between invalidates a pending
        #: reply id.
        self.lock = threading.RLock()
        self.state = AuthState()
        self.account: AccountInfo | None = None
        self._pinned: AccountInfo | None = None
        self.login_type: int | None = None
        self._ready = False
        #: Why the session is lost, as the keep-alive found it (``None``: it is not).
        self.lost: BrokerAuthError | None = None
        self._portfolio_ready = False
        self._last_validate: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    # -- establishing --------------------------------------------------------

    def establish(self) -> AccountInfo:
        """Bring the session to a usable state and return the account it trades.

        :raises BrokerAuthError: the session cannot be used; the message says why
            and what to do.
        :raises ConfigError: ``account_id`` is not an account of this login.
        """
        with self.lock:
            self._ready = False
            self.authenticator.open(self.client)
            opens = bool(getattr(self.authenticator, "opens_brokerage_session", False))
            try:
                state = self.check()
            except BrokerAuthError as exc:
                reason = exc.context.get("reason")
                if reason == "no_bridge" and opens:
                    state = AuthState(connected=False)
                elif reason == "unauthenticated":
                    # Refused at once: a token kept from an earlier run may have been
                    # revoked. The authenticator renews it, or says what a person must do.
                    self.authenticator.renew(self.client)
                    state = self.check()
                else:
                    raise
            # OAuth: nothing opens the brokerage session but us, and IBKR may report
            # it as not connected (or "no bridge") until we do. A gateway opens it
            # itself after the login; we only reopen one that dropped.
            if not state.healthy and (opens or state.connected):
                state = self._init_brokerage()
            if not state.healthy:
                raise BrokerAuthError(
                    self.explain(state),
                    broker=self.client.broker,
                    # Not connected: the SSO session itself is gone, a person must log in.
                    reason="session" if state.connected else "login",
                )
            account = self._read_accounts()
            if self._pinned is None:
                self._learn_login_type(account.account_id)
            if self.login_type == 1:
                account.is_paper = False
            pinned = self._pinned
            if pinned is not None and (
                account.account_id != pinned.account_id
                or (pinned.is_paper and not account.is_paper)
            ):
                # A new login mid-run (after the nightly reset, say) can be another
                # account, even a live one: never carry on trading it unnoticed.
                kind = "paper" if account.is_paper else "live"
                raise BrokerAuthError(
                    f"{self.client.broker}: the session now trades "
                    f"{mask_account(account.account_id)} ({kind}) instead of "
                    f"{mask_account(pinned.account_id)}; orders stopped. Log in to the "
                    "account this run started with, or start the run again",
                    broker=self.client.broker,
                    reason="account_changed",
                )
            self._pinned = self.account = account
            self._portfolio_ready = False
            if self.suppress:
                # Suppression lasts for one brokerage session: re-sent after every login.
                self.client.post("/iserver/questions/suppress", {"messageIds": list(self.suppress)})
            self._ready = True
            self.lost = None
            return self.account

    def _init_brokerage(self) -> AuthState:
        """``ssodh/init``, then the status until the session is up (or the wait is over).

        IBKR answers the init at once but authenticates the brokerage session
        some seconds later, so one status check right after it would call a
        session that is coming up a failure.
        """
        log.info("%s: opening the brokerage session (ssodh/init)", self.client.broker)
        self.client.post("/iserver/auth/ssodh/init", {"publish": True, "compete": self.compete})
        deadline = self._monotonic() + self.init_wait_seconds
        while True:
            state = self.check()
            if state.healthy or (state.competing and not self.compete):
                return state
            left = deadline - self._monotonic()
            if left <= 0:
                log.warning(
                    "%s: the brokerage session did not come up within %.0f s of ssodh/init",
                    self.client.broker,
                    self.init_wait_seconds,
                )
                return state
            self._sleep(min(1.0, left))

    def _learn_login_type(self, account_id: str) -> None:
        """LOGIN_TYPE tells a live login from a paper one, whatever the id says."""
        fact = f"login_type:{fingerprint(account_id)}"
        pacer = self.client.pacer
        if not pacer.due("GET", "/sso/validate"):
            known = pacer.recall(fact)
            self.login_type = known if isinstance(known, int) else None
            return
        try:
            self._last_validate = self._monotonic()
            self._validate()
        except BrokerError as exc:
            log.warning("%s: /sso/validate failed: %s", self.client.broker, exc)
            return
        if self.login_type is not None:
            pacer.remember(fact, self.login_type, ttl=_LOGIN_TYPE_TTL)

    def check(self) -> AuthState:
        self.state = AuthState.parse(self.client.post("/iserver/auth/status"))
        return self.state

    def explain(self, state: AuthState) -> str:
        """What ``state`` means and what a person should do about it."""
        broker = self.client.broker
        detail = "; ".join(x for x in (state.message, state.fail) if x)
        detail = f" (IBKR: {detail})" if detail else ""
        if state.competing:
            return (
                f"{broker}: another login with this username (TWS, IBKR Mobile, Client Portal or "
                "another gateway) holds the brokerage session; log out there, or set "
                f"compete = true to take the session over{detail}"
            )
        if not state.connected:
            return (
                f"{broker}: the session is not connected to IBKR{detail}; "
                f"{self.authenticator.login_hint}"
            )
        if not state.authenticated:
            return (
                f"{broker}: the brokerage session could not be opened{detail}; "
                f"{self.authenticator.login_hint}"
            )
        return f"{broker}: session is healthy"

    def _read_accounts(self) -> AccountInfo:
        body = self.client.get("/iserver/accounts")
        if not isinstance(body, dict):
            raise BrokerError(f"{self.client.broker}: unreadable /iserver/accounts answer")
        accounts = [str(a) for a in body.get("accounts") or [] if str(a) != "All"]
        wanted = self.wanted_account
        if wanted:
            if wanted not in accounts:
                shown = ", ".join(mask_account(a) for a in accounts) or "none"
                raise ConfigError(
                    f"account {mask_account(wanted)} is not an account of this login "
                    f"(it has: {shown})",
                    key=f"brokers.{self.client.broker}.account_id",
                )
            account = wanted
        elif len(accounts) == 1:
            account = accounts[0]
        else:
            shown = ", ".join(mask_account(a) for a in accounts) or "none"
            raise ConfigError(
                f"this login has {len(accounts)} accounts ({shown}); set account_id to the "
                "one to trade",
                key=f"brokers.{self.client.broker}.account_id",
            )
        if len(accounts) > 1 and body.get("selectedAccount") != account:
            self.client.post("/iserver/account", {"acctId": account})
        return AccountInfo(account, is_paper_account(account, body.get("isPaper")), accounts)

    def portfolio_ready(self) -> None:
        """IBKR wants ``/portfolio/accounts`` read before other ``/portfolio`` calls."""
        if not self._portfolio_ready:
            self.client.get("/portfolio/accounts")
            self._portfolio_ready = True

    # -- using ---------------------------------------------------------------

    def mark_lost(self) -> None:
        """Something failed in a way that says the session is gone: check it before the next use."""
        self._ready = False

    def ensure(self) -> AccountInfo:
        if not self._ready or self.account is None:
            return self.establish()
        return self.account

    def require_trading(self) -> AccountInfo:
        """The account, if orders may be sent now; else ``BrokerAuthError``."""
        if not self._ready or self.account is None:
            try:
                return self.establish()
            except BrokerError as exc:
                raise BrokerAuthError(
                    f"not sending orders while the session is not authenticated: {exc}",
                    broker=self.client.broker,
                    reason="session",
                ) from exc
        return self.account

    def read(self, call: Callable[[], T]) -> T:
        """Run ``call``; if the session was lost, repair it and run it once more."""
        self.ensure()
        try:
            return call()
        except BrokerAuthError as exc:
            self.recover(exc)
            return call()

    def recover(self, exc: BrokerAuthError) -> None:
        """Repair what ``exc`` says is broken; raise if it cannot be repaired."""
        reason = exc.context.get("reason")
        log.warning("%s: %s; re-establishing the session", self.client.broker, exc)
        if reason == "accounts_first":
            self._read_accounts()
            return
        self._ready = False
        # Whatever failed, the status decides: a 401 while the SSO session lives on
        # is a dropped brokerage session, reopened without anyone logging in.
        self.establish()

    def wait_for_login(
        self,
        timeout: float,
        every: float = 10.0,
        on_wait: Callable[[], bool] | None = None,
    ) -> AccountInfo:
        """Re-establish the session, waiting up to ``timeout`` s for a person to log in.

        :param on_wait: called between attempts; answering ``False`` ends the wait
            (the run is stopping).
        :raises BrokerAuthError: still not possible when the wait is over (or ended).
        """
        deadline = self._monotonic() + timeout
        told = False
        while True:
            try:
                return self.establish()
            except BrokerAuthError as exc:
                left = deadline - self._monotonic()
                if left <= 0 or (on_wait is not None and not on_wait()):
                    raise
                if not told:
                    log.error(
                        "%s; waiting up to %.0f min for the session to come back",
                        exc,
                        timeout / 60,
                    )
                    told = True
                self._sleep(min(every, left))

    # -- keep-alive ----------------------------------------------------------

    def keepalive(self) -> None:
        """One keep-alive round: tickle, validate when due, repair if lost."""
        with self.lock:
            try:
                body = self.client.post("/tickle")
                auth = body.get("iserver", {}).get("authStatus") if isinstance(body, dict) else None
                if auth is not None:
                    self.state = AuthState.parse(auth)
                now = self._monotonic()
                if (
                    self._last_validate is None
                    or now - self._last_validate >= self.validate_seconds
                ) and self.client.pacer.due("GET", "/sso/validate"):
                    self._last_validate = now
                    self._validate()
                if self.state.healthy:
                    return
                log.warning("%s", self.explain(self.state))
                self._ready = False
                self.establish()
                log.info("%s: session re-established", self.client.broker)
            except BrokerAuthError as exc:
                self._ready = False
                try:
                    self.recover(exc)
                except BrokerError as again:
                    log.error("%s: session lost; orders stopped: %s", self.client.broker, again)
                    self.lost = (
                        again
                        if isinstance(again, BrokerAuthError)
                        else BrokerAuthError(str(again), broker=self.client.broker)
                    )
            except BrokerError as exc:
                log.warning("%s: keep-alive failed: %s", self.client.broker, exc)
            except Exception as exc:  # the thread must go on, and say why it could not
                self._ready = False
                log.error("%s: keep-alive failed; orders stopped: %s", self.client.broker, exc)

    def _validate(self) -> None:
        body = self.client.get("/sso/validate")
        if isinstance(body, dict):
            kind = body.get("LOGIN_TYPE", body.get("loginType"))
            self.login_type = (
                int(kind) if isinstance(kind, int | str) and str(kind).isdigit() else None
            )
            if body.get("RESULT") is False:
                self.state = AuthState(message="SSO session is no longer valid")

    def start(self) -> None:
        """Start the keep-alive thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"{self.client.broker}-keepalive", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the keep-alive thread and wait for it (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.keepalive_seconds + 30)

    def _run(self) -> None:
        while not self._stop.wait(self.keepalive_seconds):
            self.keepalive()
