"""Fixtures of the broker tests: the gateway stand-in and the OAuth stand-in.

They are defined in :mod:`gateway_support` and :mod:`oauth_fixtures`.
"""

from gateway_support import gateway, gateway_certs, live_gateway, start_gateway
from oauth_fixtures import fast_oauth_pacing, oauth_gateway, oauth_keys, start_oauth_gateway

__all__ = [
    "fast_oauth_pacing",
    "gateway",
    "gateway_certs",
    "live_gateway",
    "oauth_gateway",
    "oauth_keys",
    "start_gateway",
    "start_oauth_gateway",
]
