"""The tradepipe error tree.

Every error tradepipe raises derives from :class:`TradepipeError`. Each subclass
is named for what the caller should do next, not for where it happened::

    TradepipeError
    ├── ConfigError                 fix the settings and start again (CLI exit 2)
    ├── PluginError                 a plugin is broken or missing; fix the install
    │   └── UnknownComponentError   a name in the settings matches no component
    ├── StrategyError               a decision source failed; skip it this round
    ├── InvalidOrderTransition      a bug: an order was moved along an illegal edge
    ├── InvalidOrderError           the order or change breaks an order rule; fix it (nothing sent)
    ├── SizingError                 the decision cannot be turned into a quantity
    ├── BrokerError                 anything that went wrong talking to a broker
    │   ├── BrokerUnavailableError  transient: retry later (timeouts, 5xx, pacing)
    │   ├── BrokerAuthError         stop trading and re-authenticate
    │   ├── BrokerRejectedError     the broker refused this order; do not resend
    │   └── BrokerCapabilityError   this broker cannot do that at all
    ├── FeedError                   market data could not be read
    ├── PersistenceError            the ledger could not be read or written
    └── LotError                    fills cannot be matched into tax lots as asked

Errors carry the context a person needs (settings key, broker, client order id)
and are chained with ``raise ... from exc`` so the original cause survives for
``--debug``. Exceptions of the libraries underneath (httpx, SQLAlchemy, pydantic)
are translated at the boundary of the component that uses them and never escape
it.
"""

from __future__ import annotations

from typing import Any


class TradepipeError(Exception):
    """Root of every error tradepipe raises.

    :param message: one line a person can act on.
    :param context: named facts that explain the error (never secrets).
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigError(TradepipeError):
    """The settings are wrong; nothing was started.

    :param key: dotted settings key, e.g. ``risk.min_confidence.threshold``.
    """

    def __init__(self, message: str, *, key: str | None = None, **context: Any) -> None:
        super().__init__(message, key=key, **context)
        self.key = key


class PluginError(TradepipeError):
    """A plugin could not be loaded or registered."""


class UnknownComponentError(PluginError, ConfigError):
    """The settings name a component that no loaded plugin provides."""

    def __init__(self, kind: str, name: str, choices: list[str], *, key: str | None = None) -> None:
        listed = ", ".join(sorted(choices)) or "none are installed"
        ConfigError.__init__(
            self, f"unknown {kind} {name!r}; choose one of: {listed}", key=key, name=name
        )
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)


class StrategyError(TradepipeError):
    """A decision source raised; its output for this event is dropped."""


class InvalidOrderTransition(TradepipeError):
    """An order was asked to move between two states that are not connected."""


class InvalidOrderError(TradepipeError):
    """An order, or a change to one, breaks a rule every order keeps
    (:mod:`tradepipe.order_rules`); nothing was sent or saved. Fix it and ask again.

    Not :class:`BrokerRejectedError`: no broker was asked.
    """


class SizingError(TradepipeError):
    """A decision could not be sized into an order quantity."""


class BrokerError(TradepipeError):
    """Something went wrong talking to a broker."""


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached or asked us to slow down; retry later."""


class BrokerAuthError(BrokerError):
    """The broker session is not authenticated; stop and re-authenticate."""


class BrokerRejectedError(BrokerError):
    """The broker refused the order. It must not be resent unchanged."""


class BrokerQuestionError(BrokerRejectedError):
    """The broker asked a question about the order that waits for a person (reply
    policy ``ask``): the order was not sent; approving the question sends it again."""


class BrokerCapabilityError(BrokerError):
    """The broker does not offer this operation."""


class FeedError(TradepipeError):
    """Market data could not be read or is malformed."""


class PersistenceError(TradepipeError):
    """The ledger could not be read or written."""


class LotError(TradepipeError):
    """Fills cannot be turned into tax lots as asked (out of order, duplicate, unknown lot)."""
