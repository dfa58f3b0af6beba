"""Where a snapshot's data comes from: the configured broker, or demo data.

:func:`open_source` connects the broker ``[run] broker`` names. When it cannot
be used — it has not been set up (:func:`unconfigured`), it is the paper
simulator without a ``state_file`` (a fresh, empty account every time, nothing
to show), or it is unreachable or logged out — and the caller allows it,
:func:`open_demo` builds a paper simulator directly, never through ``[run]
broker``, and feeds it synthetic bars, so the demo files have quotes and
positions. A demo can therefore never reach a live adapter.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from pydantic import ValidationError
from tradepipe import (
    Broker,
    BrokerAuthError,
    BrokerError,
    BrokerStatus,
    BrokerUnavailableError,
    ConfigError,
    OrderIntent,
)
from tradepipe.clock import Clock, ManualClock
from tradepipe.component import Component
from tradepipe.host import PluginHost
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.pipeline import connect_broker, make_component
from tradepipe.settings import AppSettings, SnapshotSettings

log = logging.getLogger(__name__)

# The demo account: daily bars up to yesterday, and what it bought along the way.
DEMO_ACCOUNT = "DEMO"
DEMO_BARS = 30  # weekdays: six calendar weeks, so the last bar is the latest weekday
DEMO_BUY_AFTER = 20
DEMO_QUANTITY = Decimal(100)


class BrokerNotConfigured(ConfigError):
    """The configured broker has no usable settings: a reason for demo data."""


@dataclass
class Source:
    """The connected broker a snapshot reads, and why it is the demo if it is."""

    broker: Broker
    status: BrokerStatus
    #: Why demo data stands in for the configured broker; empty when it does not.
    demo_reason: str = ""

    @property
    def demo(self) -> bool:
        return bool(self.demo_reason)

    @property
    def account(self) -> str | None:
        return mask_account(self.status.account_id) if self.status.account_id else None

    def close(self) -> None:
        try:
            self.broker.disconnect()
        except Exception as exc:  # the snapshot is written; a failed goodbye must not undo it
            log.warning("could not disconnect from broker %s: %s", self.broker.name, exc)


# -- opening the broker -------------------------------------------------------------

FALLBACK = (BrokerNotConfigured, BrokerUnavailableError, BrokerAuthError)


def open_configured(host: PluginHost, settings: AppSettings) -> Source:
    """The broker ``[run] broker`` names, connected and logged in.

    :raises BrokerNotConfigured: it has not been set up (see :func:`unconfigured`),
        or it is the paper simulator without a state file.
    :raises BrokerUnavailableError: it is not reachable or not connected.
    :raises BrokerAuthError: it is not logged in.
    :raises ConfigError: its settings are wrong, or it is live without ``allow_live``.
    """
    from tradepipe.brokers.paper.broker import PaperBroker

    name = settings.run.broker
    cls = host.component("broker", name)
    try:
        adapter: Broker = make_component(host, settings, "broker", name)
    except ConfigError as exc:
        why = unconfigured(cls, settings, name)
        if why is None:
            raise
        raise BrokerNotConfigured(
            f"broker {name!r} is not configured: {why}", key=f"brokers.{name}"
        ) from exc
    if isinstance(adapter, PaperBroker) and not adapter.settings.state_file:
        raise BrokerNotConfigured(
            f"broker {name!r} keeps no account between runs ([brokers.{name}] has no "
            "state_file), so it has nothing to show",
            key=f"brokers.{name}.state_file",
        )
    status = connect_broker(adapter, settings)
    problem: BrokerError | None = None
    if not status.connected:
        problem = BrokerUnavailableError(
            f"broker {name!r} is not connected: {status.message or 'is it running?'}", broker=name
        )
    elif not status.authenticated:
        problem = BrokerAuthError(
            f"broker {name!r} is not logged in: {status.message or 'log in again'}", broker=name
        )
    if problem is not None:
        Source(adapter, status).close()
        raise problem
    return Source(adapter, status)


def unconfigured(cls: type[Component], settings: AppSettings, name: str) -> str | None:
    """Why broker ``name``, which refused its settings, has simply not been set up;
    ``None`` when its settings are wrong instead (a mistake to report, not to cover up).

    Not set up means: the only problems are required keys that are absent, or
    the table is valid but the broker, which takes credentials, was given none
    and refused to start (an unset ``TRADEPIPE_BROKERS__…`` secret in CI
    arrives as an empty string).
    """
    table = settings.component_table("brokers", name)
    try:
        cls.Settings.model_validate(table)
    except ValidationError as exc:
        problems = exc.errors()
        missing = [".".join(map(str, e["loc"])) for e in problems if e["type"] == "missing"]
        if len(missing) == len(problems):
            return f"[brokers.{name}] lacks {', '.join(missing)}"
        return None
    declared = getattr(cls, "credential_fields", None)
    if callable(declared):
        secret = list(declared(table))
    else:
        secret = [k for k in cls.Settings.model_fields if settings.is_secret(f"brokers.{name}.{k}")]
    if secret and not any(str(table.get(k) or "").strip() for k in secret):
        return f"no credentials in [brokers.{name}] ({', '.join(secret)})"
    return None


def open_demo(snapshot: SnapshotSettings, clock: Clock, reason: str) -> Source:
    """A paper simulator with synthetic prices and a few positions, connected.

    Built here from defaults, never from ``[run] broker`` or ``[brokers.paper]``
    (whose state file must not be touched), so demo data can come from nothing else.
    """
    from tradepipe.brokers.paper.broker import PaperBroker
    from tradepipe.plugins.feeds.synthetic import SyntheticFeed

    symbols = list(snapshot.watchlist) or ["AAPL", "MSFT", "SPY"]
    today = clock.now().astimezone(dt.UTC).date()
    feed = SyntheticFeed(
        SyntheticFeed.Settings(
            symbols=symbols, bars=DEMO_BARS, start=today - dt.timedelta(weeks=6), seed=7
        )
    )
    broker = PaperBroker(PaperBroker.Settings(account_id=DEMO_ACCOUNT, symbols=symbols))
    # The simulator fills orders against bars after the time they were placed,
    # so the seeding runs on the bars' own clock.
    seeding = ManualClock(clock.now())
    broker.clock = seeding
    broker.connect()
    for n, bar in enumerate(feed.bars()):
        seeding.set(bar.ts)
        broker.on_bar(bar)
        if n // len(symbols) == DEMO_BUY_AFTER and n % len(symbols) < 2:
            broker.place(
                OrderIntent(
                    client_order_id=f"demo-{bar.symbol}",
                    decision_id="demo",
                    source="demo",
                    symbol=bar.symbol,
                    side="buy",
                    quantity=DEMO_QUANTITY,
                    created_at=bar.ts,
                )
            )
    broker.clock = clock
    return Source(broker, broker.status(), demo_reason=reason or "demo data")


def open_source(host: PluginHost, settings: AppSettings, clock: Clock, *, fallback: bool) -> Source:
    """The configured broker, or (``fallback``) the demo when it cannot be used."""
    try:
        return open_configured(host, settings)
    except FALLBACK as exc:
        if not fallback or (
            isinstance(exc, BrokerAuthError) and exc.context.get("reason") == "credentials"
        ):
            # Credentials the broker refuses are a mistake to report, never to
            # paper over with demo data (a rotated secret must turn CI red).
            raise
        log.info("snapshot: demo data, because %s", exc)
        return open_demo(settings.snapshot, clock, redact_accounts(str(exc)))
