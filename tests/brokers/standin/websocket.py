"""The WebSocket's two carriers: a real socket behind HTTPS, and a connection in this process.

Both put a :class:`~standin.stream.StreamSession` (IBKR's behaviour, no I/O) on a wire:

* :func:`serve_websocket` upgrades a request the HTTPS server has read (``GET /v1/api/ws``)
  and runs the socket in that connection's thread. Framing, the opening handshake, pings and
  the closing handshake are ``websockets``' sans-I/O :class:`~websockets.server.ServerProtocol`;
  this module only moves bytes and time.
* :class:`MemoryConnection` is the client's end of a socket in the test's own process, on the
  stand-in's clock: it has the methods of ``websockets.sync.client.ClientConnection`` a
  client uses (``send``, ``recv(timeout)``, ``close``) and fails as one does
  (``TimeoutError``; ``ConnectionClosedOK`` after a close frame, ``ConnectionClosedError``
  when the server hangs up without one; ``InvalidStatus`` for a refused handshake, from
  :func:`memory_connect`). ``recv``'s timeout is in seconds of the stand-in's clock (a test
  moves it); it also returns early, empty-handed, after a few wall milliseconds, so a client
  loop waiting on a virtual clock never hangs.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from .stream import StreamSession

if TYPE_CHECKING:
    from .gateway import Standin

#: The path of IBKR's WebSocket, after the host.
WS_PATH = "/v1/api/ws"
#: How long a socket loop waits for the client's bytes before looking at the clock again.
POLL_SECONDS = 0.05
#: How long the server waits for the client's close frame after sending its own.
CLOSE_SECONDS = 5.0
#: Whether ``oauth_token`` (or a bearer ``Authorization``) names a live OAuth session.
TokenCheck = Callable[[str | None, str | None], bool]


def api_cookie(header: str | None) -> str | None:
    """The ``api`` cookie's value in a ``Cookie`` header (it may be JSON: split by hand)."""
    for part in (header or "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == "api":
            return value.strip()
    return None


def refusal(
    standin: Standin, headers: Mapping[str, str], query: str, token_check: TokenCheck | None
) -> tuple[int, str] | None:
    """The status and text a handshake is refused with, or ``None`` to accept it."""
    forced = standin.forced_refusal()
    if forced is not None:
        return forced, "handshake refused (stand-in control)"
    token_ok = None
    if token_check is not None:
        token = (parse_qs(query).get("oauth_token") or [None])[0]
        token_ok = token_check(token, headers.get("Authorization"))
    why = standin.stream_refusal(api_cookie(headers.get("Cookie")), token_ok=token_ok)
    return None if why is None else (401, why)


# ----- in this process --------------------------------------------------------------------------


class MemoryConnection:
    """The client's end of a socket to a stand-in in this process (see the module docstring)."""

    WALL_WAIT = 0.02

    def __init__(self, standin: Standin, session: StreamSession) -> None:
        self.standin = standin
        self.session = session
        self._pending: list[str] = []
        self._closed_by_client = False

    def send(self, message: str) -> None:
        self._check_open()
        with self.standin.lock:
            self.session.receive(message)

    def recv(self, timeout: float | None = None) -> str:
        clock = self.standin.clock
        start, wall_end = clock.monotonic(), time.monotonic() + self.WALL_WAIT
        while True:
            if not self._pending:
                with self.standin.lock:
                    self.session.tick()
                    self._pending.extend(self.session.take())
            if self._pending:
                return self._pending.pop(0)
            self._check_open()
            if timeout is not None and clock.monotonic() - start >= timeout:
                raise TimeoutError("timed out while waiting for a message")
            if time.monotonic() >= wall_end:
                raise TimeoutError("no message yet (the stand-in's clock has not moved)")
            time.sleep(0.002)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._closed_by_client and self.session.ending is None:
            self._closed_by_client = True
        self.standin.close_stream(self.session)

    def _check_open(self) -> None:
        if self._closed_by_client:
            raise ConnectionClosedOK(None, Close(1000, ""))
        ending = self.session.ending
        if ending is None:
            return
        if ending.code is None:
            raise ConnectionClosedError(None, None)
        frame = Close(ending.code, ending.reason)
        raise ConnectionClosedOK(frame, frame, True)


def memory_connect(
    standin: Standin,
    url: str,
    headers: Mapping[str, str],
    *,
    token_check: TokenCheck | None = None,
) -> MemoryConnection:
    """Open a socket to ``standin`` the way ``websockets.sync.client.connect`` opens one.

    :raises InvalidStatus: the handshake was refused (wrong or missing cookie or token,
        a ``refuse`` control call).
    """
    split = urlsplit(url)
    if split.path != WS_PATH:
        raise InvalidStatus(Response(404, "Not Found", Headers(), b"not found"))
    refused = refusal(standin, headers, split.query, token_check)
    if refused is not None:
        status, text = refused
        raise InvalidStatus(Response(status, "Unauthorized", Headers(), text.encode()))
    return MemoryConnection(standin, standin.open_stream())


# ----- over HTTPS ---------------------------------------------------------------------------------


def serve_websocket(
    connection: socket.socket,
    request_line: str,
    headers: list[tuple[str, str]],
    standin: Standin,
    token_check: TokenCheck | None = None,
) -> None:
    """Answer an upgrade request the HTTP server has read, then run the socket until it ends.

    :param connection: the (TLS) socket; the request line and headers were read from it,
        and nothing else (a WebSocket client waits for the 101 before it sends).
    """
    protocol = ServerProtocol()
    raw = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    protocol.receive_data(raw.encode("latin-1"))
    request = next(e for e in protocol.events_received() if isinstance(e, Request))
    refused = refusal(standin, Headers(headers), urlsplit(request.path).query, token_check)
    if refused is not None:
        response = protocol.reject(refused[0], refused[1] + "\n")
    else:
        response = protocol.accept(request)
    protocol.send_response(response)
    if not _flush(connection, protocol) or response.status_code != 101:
        return
    session = standin.open_stream()
    connection.settimeout(POLL_SECONDS)
    try:
        _run(connection, protocol, session, standin)
    finally:
        standin.close_stream(session)


def _run(
    sock: socket.socket, protocol: ServerProtocol, session: StreamSession, standin: Standin
) -> None:
    closing: float | None = None  # since when the closing handshake has been under way
    while protocol.state is not State.CLOSED:
        if closing is not None and time.monotonic() - closing > CLOSE_SECONDS:
            return
        if closing is None:
            with standin.lock:
                session.tick()
                out, ending = session.take(), session.ending
            for text in out:
                protocol.send_text(text.encode())
            if ending is not None:
                if ending.code is None:  # hang up without a close frame
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    return
                protocol.send_close(ending.code, ending.reason)
                closing = time.monotonic()
        if not _flush(sock, protocol):
            return
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        for event in protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT and closing is None:
                with standin.lock:
                    session.receive(event.data.decode("utf-8", errors="replace"))
        if protocol.close_expected() and closing is None:
            closing = time.monotonic()
    _flush(sock, protocol)


def _flush(sock: socket.socket, protocol: ServerProtocol) -> bool:
    """Send what the protocol has to send; ``False`` once the connection is over."""
    for chunk in protocol.data_to_send():
        try:
            if chunk:
                sock.sendall(chunk)
            else:  # the protocol's end of stream: no more bytes from this side
                sock.shutdown(socket.SHUT_WR)
                return False
        except OSError:
            return False
    return True
