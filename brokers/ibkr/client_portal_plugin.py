"""The ``client_portal`` plugin: registers the Client Portal Gateway adapter.

The adapter (:mod:`~tradepipe.brokers.ibkr.client_portal`) and httpx are
imported only when brokers are looked up, not whenever tradepipe starts.
"""

from __future__ import annotations

from typing import Any

from tradepipe import hookimpl


@hookimpl
def tradepipe_register_brokers(register: Any) -> None:
    from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker

    register(ClientPortalBroker)
