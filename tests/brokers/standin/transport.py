"""An httpx transport that hands each request straight to a :class:`Standin`: no socket, no TLS.

``httpx.Client(base_url=..., transport=StandinTransport(standin))`` talks to the stand-in the
way the HTTPS server lets a client talk to it, request for request: the same request log,
gates, faults and control API, only without the network and without wall time when the
stand-in runs on a :class:`~standin.clock.VirtualClock`. Faults look the way they look on the
wire:

* ``drop``: :class:`httpx.RemoteProtocolError` (the server hung up without an answer); with
  ``after`` the request was processed first.
* ``timeout``: the server answers 3 s late (``after``) or hangs up after 3 s (not ``after``).
  A client whose read timeout is shorter gives up first: the clock moves on by that timeout
  and :class:`httpx.ReadTimeout` is raised (with ``after``, the request was processed). A
  longer or no read timeout sees the 3 s pass, then the answer or the hang-up.
* a status (``500``, ``503``, ``429``, ``401``): that answer.

:class:`OAuthStandinTransport` puts IBKR's OAuth checks (:class:`~standin.oauth.OAuthFront`) in
front: what they answer is answered, the rest goes on to the stand-in as above.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx

from .gateway import Standin
from .oauth import OAuthFront, Redirect
from .state import FAULT_DELAY, Fault
from .wire import API_PREFIX, CONTROL_PREFIX, Answer, json_answer, text_answer

#: The methods the HTTPS server's handler answers; it refuses others with 501.
METHODS = frozenset({"GET", "POST", "DELETE", "PUT"})


class StandinTransport(httpx.BaseTransport):
    """Answers requests from ``standin`` in this thread."""

    def __init__(self, standin: Standin) -> None:
        self.standin = standin

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method
        raw = request.read()
        # Undecoded, as the server reads it from the request line.
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        if method not in METHODS:
            return _response(text_answer(f"Unsupported method ({method!r})", 501), request)
        standin = self.standin
        if path.startswith(CONTROL_PREFIX + "/"):
            return _response(standin.control(method, path[len(CONTROL_PREFIX) :], raw), request)
        if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
            return _response(json_answer({"error": "not found"}, 404), request)
        path = path[len(API_PREFIX) :] or "/"
        pairs = parse_qs(request.url.query.decode("ascii"), keep_blank_values=True)
        query = {k: v[0] for k, v in pairs.items()}
        fault = standin.receive(method, path, query, raw)
        if fault is not None and not fault.after:
            return self._fail(fault, None, request)
        answer = standin.api(method, path, query, raw)
        if fault is not None:
            return self._fail(fault, answer, request)
        return _response(answer, request)

    def _fail(self, fault: Fault, answer: Answer | None, request: httpx.Request) -> httpx.Response:
        if fault.kind == "drop":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if fault.kind == "timeout":
            read = request.extensions.get("timeout", {}).get("read")
            if read is not None and read < FAULT_DELAY:
                self.standin.clock.sleep(read)  # the client's wait, then it gives up
                raise httpx.ReadTimeout("The read operation timed out", request=request)
            self.standin.clock.sleep(FAULT_DELAY)
            if answer is None:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            return _response(answer, request)
        if fault.kind == "401":
            return _response(text_answer("access denied", 401), request)
        status = int(fault.kind)
        text = fault.reason or f"stand-in fault {status}"
        return _response(json_answer({"error": text}, status), request)


class OAuthStandinTransport(StandinTransport):
    """Answers requests as IBKR over OAuth: ``front``'s checks, then ``standin``."""

    def __init__(self, standin: Standin, front: OAuthFront) -> None:
        super().__init__(standin)
        self.front = front

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in METHODS:
            return super().handle_request(request)
        # What the HTTPS server sees: the Host header and the undecoded request target.
        url = f"https://{request.headers['Host']}{request.url.raw_path.decode('ascii')}"
        answer = self.front.answer(request.method, url, request.headers, request.read())
        if answer is None:
            return super().handle_request(request)
        response = _response(answer, request)
        if isinstance(answer, Redirect):
            response.headers["Location"] = answer.location
        return response


def _response(answer: Answer, request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        answer.status,
        headers={"Content-Type": answer.content_type},
        content=answer.body,
        request=request,
    )
