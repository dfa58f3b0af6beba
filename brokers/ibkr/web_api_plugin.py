"""The ``web_api`` plugin: registers the OAuth Web API adapter and ``tradepipe auth``.

The adapter (:mod:`~tradepipe.brokers.ibkr.web_api`), httpx and the
cryptography it signs with are imported only when the adapter is used or the
command runs, not whenever brokers are looked up.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl
from tradepipe.host import LazyComponent


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    register(LazyComponent("web_api", "tradepipe.brokers.ibkr.web_api:WebApiOAuthBroker"))


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("auth", "tradepipe.brokers.ibkr.web_api_cli:auth"))
