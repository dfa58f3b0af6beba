"""tradepipe: run trading strategies against Interactive Brokers as a pipeline of plugins.

This module is the public facade; plugin authors import from here::

    from tradepipe import Decision, Strategy, hookimpl
"""

from __future__ import annotations

from tradepipe.adapter import Broker, BrokerStatus, OrderReport, OrderUpdate
from tradepipe.clock import Clock, ManualClock, SystemClock
from tradepipe.component import Component, ComponentSettings
from tradepipe.decision_schema import DecisionDocument
from tradepipe.decisions import (
    Action,
    Decision,
    OrderType,
    RejectedDecision,
    SizingHints,
    TimeInForce,
)
from tradepipe.errors import (
    BrokerAuthError,
    BrokerCapabilityError,
    BrokerError,
    BrokerQuestionError,
    BrokerRejectedError,
    BrokerUnavailableError,
    ConfigError,
    FeedError,
    InvalidOrderError,
    InvalidOrderTransition,
    PersistenceError,
    PluginError,
    SizingError,
    StrategyError,
    TradepipeError,
    UnknownComponentError,
)
from tradepipe.feed import Feed
from tradepipe.hookspecs import hookimpl, hookspec, observes_when
from tradepipe.indicators import SMA
from tradepipe.instruments import Combo, Instrument, Leg, Option, Stock
from tradepipe.market import Bar, Quote
from tradepipe.order_rules import OrderRules
from tradepipe.orders import Fill, FillKind, Order, OrderEvent, OrderIntent, OrderStatus, Side
from tradepipe.portfolio import AccountSummary, Position
from tradepipe.risk import Check, Outcome, RiskContext, RiskFilter, RiskVerdict
from tradepipe.sink import RunInfo, Sink
from tradepipe.strategy import Strategy, StrategyContext

__version__ = "0.1.0"

__all__ = [
    "SMA",
    "AccountSummary",
    "Action",
    "Bar",
    "Broker",
    "BrokerAuthError",
    "BrokerCapabilityError",
    "BrokerError",
    "BrokerQuestionError",
    "BrokerRejectedError",
    "BrokerStatus",
    "BrokerUnavailableError",
    "Check",
    "Clock",
    "Combo",
    "Component",
    "ComponentSettings",
    "ConfigError",
    "Decision",
    "DecisionDocument",
    "Feed",
    "FeedError",
    "Fill",
    "FillKind",
    "Instrument",
    "InvalidOrderError",
    "InvalidOrderTransition",
    "Leg",
    "ManualClock",
    "Option",
    "Order",
    "OrderEvent",
    "OrderIntent",
    "OrderReport",
    "OrderRules",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Outcome",
    "PersistenceError",
    "PluginError",
    "Position",
    "Quote",
    "RejectedDecision",
    "RiskContext",
    "RiskFilter",
    "RiskVerdict",
    "RunInfo",
    "Side",
    "Sink",
    "SizingError",
    "SizingHints",
    "Stock",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "SystemClock",
    "TimeInForce",
    "TradepipeError",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
    "hookspec",
    "observes_when",
]
