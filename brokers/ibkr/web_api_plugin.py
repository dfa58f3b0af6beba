"""The ``web_api`` plugin: registers the OAuth Web API adapter and ``tradepipe auth``.

The adapter (:mod:`~tradepipe.brokers.ibkr.web_api`), httpx and the
cryptography it signs with are imported only when brokers are looked up or
the command runs, not whenever tradepipe starts.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    from tradepipe.brokers.ibkr.web_api import WebApiOAuthBroker

    register(WebApiOAuthBroker)


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("auth", "tradepipe.brokers.ibkr.web_api_cli:auth"))
