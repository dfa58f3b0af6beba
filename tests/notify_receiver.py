"""A notification receiver on 127.0.0.1 for the tests: what Apprise's ``json://`` and
``ntfy://`` targets post is kept; ``/broken`` answers 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "s3cret-pass"


@contextmanager
def in_thread(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """``server`` answering from a thread of its own until the block ends, then closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps what is posted to ``/ok`` and answers
    500 to ``/broken``."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/broken"):
                    self.send_response(500)
                else:
                    received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"json://user:{SECRET}@127.0.0.1:{self.port}/{path}"

    def ntfy_url(self, topic: str) -> str:
        """An ntfy server's URL (ntfy.sh's protocol, served here over plain HTTP)."""
        return f"ntfy://user:{SECRET}@127.0.0.1:{self.port}/{topic}"

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages
