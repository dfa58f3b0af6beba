"""``tradepipe serve``: the REST API (:mod:`tradepipe.plugins.api.app`) on uvicorn.

The ``[api]`` settings table gives the defaults of ``--host``, ``--port`` and
``--token-file``; the options override them. The bearer token comes from, in
order: the ``TP_API_TOKEN`` environment variable; the file ``--token-file``
names; ``[api] token`` (keep it in ``.secrets.toml``, or set
``TRADEPIPE_API__TOKEN``); the token file (``[api] token_file``, default
``tradepipe-api-token`` beside the settings file). When none exists a token is
generated, written to the file with mode 0600 and printed once; later starts
read it and never print it.

The server binds 127.0.0.1; any other address needs ``--allow-remote`` and is
announced with a warning, wherever the address came from. The socket is bound
before anything is announced: "serving on" is printed only once it is, and an
address that cannot be bound (a port in use) is one ``error:`` line, exit 1.
uvicorn's own records (its access log, the tracebacks it logs again) go to
tradepipe's log, redacted.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import Any

import click
from tradepipe import hookimpl
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.errors import ConfigError, TradepipeError
from tradepipe.logs import add_secrets, adopt
from tradepipe.settings import MIN_API_TOKEN

TOKEN_ENV = "TP_API_TOKEN"
TOKEN_FILE = "tradepipe-api-token"
MIN_TOKEN = MIN_API_TOKEN


def is_loopback(host: str) -> bool:
    """Whether ``host`` can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_file(app: AppContext, given: Path | None) -> Path:
    """``--token-file``, else ``[api] token_file``, else the default beside the settings file."""
    if given is not None:
        return given
    base = Path(app.settings.path).parent if app.settings.path else Path.cwd()
    configured = app.settings.api.token_file.strip()
    return base / Path(configured).expanduser() if configured else base / TOKEN_FILE


def load_token(path: Path, configured: str = "") -> tuple[str, bool]:
    """The API token and whether it was generated just now.

    :param configured: ``[api] token``, used when the environment has none.
    :raises ConfigError: a token that is too short, or a file others can read.
    """
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        if len(from_env) < MIN_TOKEN:
            raise ConfigError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN} characters", key=TOKEN_ENV)
        return from_env, False
    if configured:
        return configured, False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the token file {path} is readable by others (mode {mode:o}); "
                f"run `chmod 600 {path}`",
                key="token_file",
            ) from None
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < MIN_TOKEN:
            raise ConfigError(
                f"the token in {path} is shorter than {MIN_TOKEN} characters", key="token_file"
            ) from None
        return token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, True


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, for :func:`run_server` (a seam for tests).

    :raises TradepipeError: the address cannot be bound: the port is in use, the
        address is not this machine's, or the port needs privileges.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP, so asyncio turns Nagle's algorithm off on each connection (it checks
    # the protocol): otherwise an answer's body waits for the client's delayed ACK of
    # its headers, 40 ms on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn does: a restart need not wait for the last run's connections to time out.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = f"port {port} is in use (another tradepipe serve?); stop that or use --port"
        else:
            why = exc.strerror or str(exc)
        raise TradepipeError(f"cannot serve on {host}:{port}: {why}", host=host, port=port) from exc
    return sock


def run_server(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (a seam for tests)."""
    import uvicorn

    config = uvicorn.Config(app, server_header=False, log_config=None)
    # Everything loaded so far (the app, the plugins, the settings) lives as long as
    # the server: kept out of the cyclic collector, whose full passes would
    # otherwise walk it again and again and stall every answer while they run.
    gc.collect()
    gc.freeze()
    uvicorn.Server(config).run(sockets=[sock])


@click.command("serve")
@click.option("--host", help="Address to bind ([api] host, default 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port to listen on ([api] port, default 8700)."
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow binding an address other machines can reach (put TLS in front of it).",
)
@click.option(
    "--token-file",
    "token_file_opt",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Where the API token lives ([api] token_file, default {TOKEN_FILE} beside the "
    "settings file); read even when [api] token is set.",
)
@pass_app
def serve(
    app: AppContext,
    host: str | None,
    port: int | None,
    allow_remote: bool,
    token_file_opt: Path | None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs); every route but /health needs the token."""
    settings = app.settings.api
    host = host or settings.host
    port = port or settings.port
    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(
            f"host {host} can be reached from other machines; add --allow-remote to mean it"
        )
    from tradepipe.plugins.api.app import create_app

    app.setup_logging()
    # uvicorn logs request paths with their query strings, and every traceback again.
    adopt("uvicorn")
    # Bound before anything is printed: a port in use is then the only line, and a
    # token generated now is never shown by a start that could not serve.
    with listen(host, port) as sock:
        path = token_file(app, token_file_opt)
        configured = "" if token_file_opt is not None else settings.token
        token, new = load_token(path, configured)
        add_secrets([token])
        base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        if new:
            click.echo(f"API token (shown once; kept in {path}, mode 0600):\n{token}")
            # The fragment never leaves the browser: the page signs in with it.
            click.echo(f"dashboard, signed in: {base}/#token={token}")
        elif os.environ.get(TOKEN_ENV, "").strip():
            click.echo(f"API token: from {TOKEN_ENV}")
        elif configured:
            click.echo("API token: from [api] token")
            if "api.token" not in app.settings.secret_keys:
                click.echo(
                    "warning: [api] token is in the settings file; move it to .secrets.toml "
                    "beside it, or set TRADEPIPE_API__TOKEN",
                    err=True,
                )
        else:
            click.echo(f"API token: in {path}")
        if not is_loopback(host):
            click.echo(
                f"warning: serving on {host}:{port}, reachable from other machines, without TLS; "
                "anyone holding the token can trade. Put a TLS proxy in front of it.",
                err=True,
            )
        click.echo(f"serving on {base} (dashboard at /, docs at /docs); Ctrl-C stops")
        run_server(create_app(app.settings, app.host, token), sock)


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    register(serve)
