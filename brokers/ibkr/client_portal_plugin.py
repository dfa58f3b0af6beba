"""The ``client_portal`` plugin: registers the Client Portal Gateway adapter.

The adapter (:mod:`~tradepipe.brokers.ibkr.client_portal`) and httpx are
imported only when the adapter is used, not whenever brokers are looked up (a
replay on the paper simulator never imports them).
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl
from tradepipe.host import LazyComponent


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    register(
        LazyComponent("client_portal", "tradepipe.brokers.ibkr.client_portal:ClientPortalBroker")
    )
