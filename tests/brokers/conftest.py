"""Fixtures of the broker tests: the gateway stand-in and the OAuth stand-in, each in its own
process over HTTPS or in this process on a virtual clock.

They are defined in :mod:`gateway_support`, :mod:`inprocess_support` and :mod:`oauth_fixtures`.
"""

from gateway_support import gateway, gateway_certs, live_gateway, start_gateway
from inprocess_support import any_gateway, inprocess_gateway, start_inprocess_gateway
from oauth_fixtures import (
    inprocess_oauth_gateway,
    oauth_gateway,
    oauth_keys,
    start_inprocess_oauth_gateway,
    start_oauth_gateway,
)

__all__ = [
    "any_gateway",
    "gateway",
    "gateway_certs",
    "inprocess_gateway",
    "inprocess_oauth_gateway",
    "live_gateway",
    "oauth_gateway",
    "oauth_keys",
    "start_gateway",
    "start_inprocess_gateway",
    "start_inprocess_oauth_gateway",
    "start_oauth_gateway",
]
