"""The IBKR Client Portal Gateway adapter (``[run] broker = "client_portal"``).

The gateway is a small Java program IBKR ships; a person starts it and logs in
at ``https://localhost:5000`` in a browser (username, password, second
factor). After that the gateway holds the session and this adapter sends no
credentials at all. What it adds to the shared Web API broker is only that:
how to reach the gateway, whether to trust its certificate, and what to tell
the user when the login is gone (IBKR does not allow automating it).

TLS: the gateway ships a self-signed certificate. ``verify`` is ``true``
(system trust), a path to the gateway's certificate or a CA file (best), or
``false``, which is accepted only for a gateway on this machine (loopback) and
logs a warning.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator
from tradepipe.brokers.ibkr.broker import WebApiBroker, WebApiSettings
from tradepipe.brokers.ibkr.client import WebApiClient
from tradepipe.brokers.ibkr.pacing import GATEWAY_RATE
from tradepipe.errors import BrokerAuthError, ConfigError

log = logging.getLogger("tradepipe.brokers.ibkr.client_portal")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GatewayLogin:
    """A gateway's session is opened by a person; all we can do is say where."""

    def __init__(self, login_url: str) -> None:
        self.login_hint = f"log in at {login_url} in a browser (the paper username for paper)"

    def open(self, client: WebApiClient) -> None:
        """Nothing to open: the gateway holds the SSO session."""

    def renew(self, client: WebApiClient) -> None:
        raise BrokerAuthError(
            f"{client.broker}: the gateway is not logged in; {self.login_hint}",
            broker=client.broker,
            reason="login",
        )


class ClientPortalBroker(WebApiBroker):
    """An IBKR account through a logged-in Client Portal Gateway."""

    name = "client_portal"
    description = "IBKR through a logged-in Client Portal Gateway (REST)"

    class Settings(WebApiSettings):
        base_url: str = "https://localhost:5000/v1/api"
        #: true, false (loopback gateways only) or a path to a certificate/CA file.
        verify: bool | str = True
        requests_per_second: float = Field(default=GATEWAY_RATE, gt=0, le=GATEWAY_RATE)

        @field_validator("base_url")
        @classmethod
        def _url(cls, value: str) -> str:
            parts = urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("must be a URL like https://localhost:5000/v1/api")
            return value.rstrip("/")

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._verify: bool | str = self._check_verify(self.settings)

    @staticmethod
    def _check_verify(s: ClientPortalBroker.Settings) -> bool | str:
        host = urlsplit(s.base_url).hostname or ""
        verify = s.verify
        if isinstance(verify, str):
            lowered = verify.strip().lower()
            if lowered in ("true", "false"):
                verify = lowered == "true"
            elif not Path(verify).expanduser().is_file():
                raise ConfigError(
                    f"[brokers.client_portal] verify: no certificate file at {verify!r}",
                    key="brokers.client_portal.verify",
                )
            else:
                return str(Path(verify).expanduser())
        if urlsplit(s.base_url).scheme != "https" and not is_loopback(host):
            raise ConfigError(
                f"[brokers.client_portal] base_url must use https for a gateway on another "
                f"machine ({host!r}): orders and account data would cross the network in clear",
                key="brokers.client_portal.base_url",
            )
        if verify is False:
            if not is_loopback(host):
                raise ConfigError(
                    f"[brokers.client_portal] verify = false is allowed only for a gateway on "
                    f"this machine, not {host!r}; set verify to the gateway's certificate file",
                    key="brokers.client_portal.verify",
                )
            log.warning(
                "client_portal: TLS certificate checks are off for the gateway at %s (loopback)",
                host,
            )
        return verify

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def tls_verify(self) -> bool | str:
        return self._verify

    @property
    def login_url(self) -> str:
        parts = urlsplit(self.settings.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def make_http(self) -> httpx.Client:
        verify: bool | ssl.SSLContext = (
            self._verify
            if isinstance(self._verify, bool)
            else (ssl.create_default_context(cafile=self._verify))
        )
        return httpx.Client(verify=verify, timeout=self.settings.timeout_seconds)

    def make_authenticator(self) -> GatewayLogin:
        return GatewayLogin(self.login_url)
