"""The threaded HTTPS server around a :class:`~standin.gateway.Standin`, and ``main()``.

Each connection does its TLS handshake in its own thread. Faults are applied the way a
network shows them: ``drop`` shuts the socket without an answer, ``timeout`` answers (or
drops) after 3 s. ``GET /v1/api/ws`` is upgraded to IBKR's WebSocket (``websocket.py``),
which then keeps that connection's thread until the socket ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from .gateway import Standin
from .state import FAULT_DELAY, Behaviour, Fault
from .websocket import WS_PATH, TokenCheck, serve_websocket
from .wire import API_PREFIX, CONTROL_PREFIX, Answer, json_answer, text_answer

HANDSHAKE_TIMEOUT = 10.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StandinGateway/1"
    timeout = 60  # idle keep-alive connections are closed after this
    server: StandinServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        if self._upgrade(None):
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        self._dispatch(urlsplit(self.path), raw)

    def _upgrade(self, token_check: TokenCheck | None) -> bool:
        """Run IBKR's WebSocket if this is its upgrade request; whether it was."""
        if self.command != "GET" or urlsplit(self.path).path != WS_PATH:
            return False
        self.close_connection = True  # the socket is the WebSocket's now, then closed
        serve_websocket(
            self.connection,
            self.requestline,
            list(self.headers.items()),
            self.server.standin,
            token_check,
        )
        return True

    def _dispatch(self, split: SplitResult, raw: bytes) -> None:
        """Answer a request whose body ``raw`` has been read."""
        standin = self.server.standin
        if split.path.startswith(CONTROL_PREFIX + "/"):
            self._send(standin.control(self.command, split.path[len(CONTROL_PREFIX) :], raw))
            return
        if split.path != API_PREFIX and not split.path.startswith(API_PREFIX + "/"):
            self._send(json_answer({"error": "not found"}, 404))
            return
        path = split.path[len(API_PREFIX) :] or "/"
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        fault = standin.receive(self.command, path, query, raw)
        if fault is not None and not fault.after:
            self._fail(fault, None)
            return
        answer = standin.api(self.command, path, query, raw)
        if fault is not None:
            self._fail(fault, answer)
        else:
            self._send(answer)

    def _fail(self, fault: Fault, answer: Answer | None) -> None:
        if fault.kind == "drop":
            self._drop()
        elif fault.kind == "timeout":
            self.server.standin.clock.sleep(FAULT_DELAY)
            if answer is None:
                self._drop()
            else:
                self._send(answer)
        elif fault.kind == "401":
            self._send(text_answer("access denied", 401))
        else:
            status = int(fault.kind)
            self._send(json_answer({"error": fault.reason or f"stand-in fault {status}"}, status))

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True  # the client went away (e.g. it timed out)


class StandinServer(ThreadingHTTPServer):
    """A threading HTTP server doing the TLS handshake in each connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        standin: Standin,
        context: ssl.SSLContext,
        verbose: bool = False,
    ) -> None:
        self.standin = standin
        self.tls = context
        self.verbose = verbose
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except OSError:  # includes ssl.SSLError: an untrusting client hangs up mid-handshake
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.verbose:
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="IBKR Client Portal Gateway stand-in")
    parser.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account", default="DU1234567", help="U... simulates a live account")
    parser.add_argument(
        "--behaviour",
        default="{}",
        help="JSON changing quirks from IBKR's defaults, e.g. '{\"pacing\": false}'",
    )
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    behaviour = Behaviour()
    behaviour.update(json.loads(args.behaviour))
    standin = Standin(args.account, behaviour)
    server = StandinServer((args.host, args.port), standin, context, verbose=args.verbose)
    return serve(server)


def serve(server: StandinServer) -> int:
    """Say the port, then answer until SIGTERM or Ctrl-C."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
