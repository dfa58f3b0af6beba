"""A stand-in for the IBKR Client Portal Gateway (Web API 1.0), for integration tests.

Run it as a separate process, from the folder holding this package::

    python -m standin --cert CERT.pem --key KEY.pem [--host 127.0.0.1] [--port 0]
                      [--account DU1234567] [--behaviour JSON] [--verbose]

Once it listens on HTTPS it prints one line, ``PORT <n>``, to stdout. The server uses the
standard library, and ``websockets``' sans-I/O protocol to frame its WebSocket.
``python -m standin.oauth`` is the same stand-in behind IBKR's OAuth checks (see
:mod:`standin.oauth`); they also run in this process (below).

What it imitates
================

The REST side of the gateway under ``/v1/api``, with the shapes and quirks written down in
``/work/shared/reference/ibkr-web-api.md`` (sections 2, 4-9, 12). All state is in memory, behind
one lock. In short:

* **Session.** Three tiers of state: the SSO login (``logged_in``), the brokerage session
  (``authenticated``/``connected``) and ``competing``. Logged out: every endpoint except
  ``POST /iserver/auth/status`` answers 401 with the text body ``access denied``. Brokerage
  session down (or competing): ``/iserver/*`` answers 400
  ``{"error":"Bad Request: no bridge","statusCode":400}`` (auth endpoints excepted).
  ``POST /iserver/auth/ssodh/init`` needs ``"publish": true`` (else 500) and re-opens the
  brokerage session; ``compete: true`` takes it back from a competing login.
* **"Please query /accounts first".** Live orders, snapshots, modify and cancel answer 400 with
  that error until ``GET /iserver/accounts`` has been called since the last (re)authentication.
* **POST without a body** answers 411 (send ``{}``).
* **Orders.** ``{"orders":[...]}`` or a bare array; strict types; duplicate ``cOID`` answers 200
  ``{"error":"Order couldn't be submitted: Local order ID=... is already registered."}``;
  configurable question chains answered through ``POST /iserver/reply/{id}``; any other API
  request between a question and its reply makes the reply id unknown (400
  ``reply id not found``); ``/iserver/questions/suppress`` lasts until the next re-login.
  Place/modify/reply answer ``order_id`` as a numeric *string*; live orders use ``orderId`` (int)
  and string prices; order status is snake_case; cancel answers ``order_id`` as an int.
  A cancel only sets ``PendingCancel``: the next read of live orders or order status that
  includes the order still shows ``PendingCancel``, the read after that shows ``Cancelled``.
  ``GET /iserver/account/orders?force=true`` answers ``{"orders":[],"snapshot":false}``.
  Executions (``/iserver/account/trades``) carry ``order_ref`` (the cOID) but no order id.
* **Portfolio.** Positions are cached the way the gateway caches them: the first read after a
  seed/reset sees the current positions, later fills stay invisible until
  ``POST /portfolio/{acct}/positions/invalidate``. Pages hold 100 positions; past the end an
  empty list.
* **Contracts.** A small built-in table (AAPL 265598 plus non-US listings, MSFT 272093,
  SPY 756733, IBM 8314). ``secdef/strikes`` answers empty arrays unless ``secdef/search`` was
  called for that underlying first (without ``name=true``). Option conids are generated
  deterministically; the nearest month also has a weekly expiry (filter on ``maturityDate``).
* **Market data.** The first snapshot request for a conid is the pre-flight and answers only
  ``{"conid":N,"conidEx":"N"}``; later ones answer strings (``"1,300"``, ``"1.2M"``, and a
  ``C`` prefix on field 31 while the market is "closed"). Options (conids handed out by
  ``secdef/info``) also answer greeks: Black–Scholes at 30% volatility, no rates, from the
  underlying's default price: 7308 delta (a put's negative), 7309 gamma, 7310 theta (per
  day), 7311 vega (per volatility point) and 7633 implied volatility as a percentage
  (``"30.0%"``); ``/_standin/market`` overrides them like any field. History bars are
  deterministic.
* **The WebSocket** (``GET /v1/api/ws``, ``stream.py``, reference §11). The handshake needs the
  ``api`` cookie holding the session ``/tickle`` answers (bare or ``{"session":"..."}``; over
  OAuth ``?oauth_token=<access token>`` with a live session token instead), else 401. Then
  ``{"topic":"system","success":"<username>"}``, ``sts``, a heartbeat every 10 s (and
  ``{"message":"waiting for session"}`` while the brokerage session is down), ``sts`` when it
  comes or goes. ``smd+<conid>+{"fields":[...]}``: a partial first message, then only changed
  fields, driven by the snapshot values (``/_standin/market``, ``/_standin/ticks``);
  ``umd+<conid>+{}`` ends it; past the account's market-data lines (100, shared with snapshot
  streams) ``{"topic":"smd+<conid>","conid":N,"error":"Max number of tickers has been
  reached"}`` (IBKR's TWS wording; the Web API's is not documented). ``sor+{}``: the orders
  in full, then only changed fields plus ``orderId`` whenever one changes. ``tic``/``ech+hb``
  are keep-alives; 300 s without a client message closes the socket (IBKR gives no figure);
  a logout or new login closes it.
* **Also there:** ``/iserver/reauthenticate``, ``/iserver/questions/suppress/reset``,
  ``/iserver/marketdata/unsubscribe`` and ``unsubscribeall`` (the next snapshot of an
  unsubscribed conid is a pre-flight again), ``/iserver/scanner/params`` and ``run``.
* **IBKR's timing, on by default** (each can be changed with ``--behaviour`` or
  ``/_standin/behaviour``, see ``Behaviour`` in ``state.py``; a test that turns one off says
  why):

  - *Pacing measured at the gateway* (``pacing.py``): more than 10 requests in any second
    (50 over OAuth) or an endpoint called again sooner than its published interval (order
    list, executions and ``/portfolio/accounts`` 5 s, ``/sso/validate`` 60 s, ``/tickle`` and
    the scanner 1 s, scanner params 15 min…) answers 429 and opens a 10-minute penalty box in
    which every request answers 429 and extends it. Measured between arrivals with no
    tolerance: a client that spaces requests exactly at the limit can land a hair under it.
  - *Cold order lists*: the first order-list read of every new brokerage session (the start,
    a login, ``ssodh/init``) answers ``{"orders": [], "snapshot": false}``.
  - *A slow ssodh/init*: the brokerage session comes up 3 s after the call; until then the
    status says not authenticated and ``/iserver`` answers "no bridge".
  - *Idle drops*: 300 s without a request close the brokerage session while the SSO session
    lives on; ``/iserver`` then answers 401 ``access denied`` until ``ssodh/init``.
  - *The WebSocket's*: ``stream_heartbeat_seconds`` (10), ``stream_idle_seconds`` (300, 0 =
    never) and ``market_data_lines`` (100).

Control API (tests only, JSON, not under ``/v1/api``; never recorded or faulted)
=============================================================================

``POST /_standin/auth`` ``{"authenticated","connected","competing","logged_in"}`` (any subset)
    Set session flags. A change of ``logged_in`` to true is a fresh browser login: unless given,
    the brokerage session comes up too (authenticated, connected, not competing).
``POST /_standin/behaviour`` ``{"pacing": false, "idle_seconds": 0, ...}`` (any subset)
    Change IBKR's timing quirks (``Behaviour`` in ``state.py``).
``GET /_standin/pacing``
    ``{"violations": [{"at","method","path","reason"}], "penalty_until"}``: every request the
    pacing refused, and the end of the penalty box.
``POST /_standin/questions`` ``{"message_ids":["o163","o354"], "modify": false}``
    Question chain asked for every following order placement (and modification when
    ``modify`` is true); ``[]`` turns questions off.
``POST /_standin/fault`` ``{"method","path","kind","times":1,"after":false}``
    The next ``times`` requests with that method (omitted: any) and exact path (after
    ``/v1/api``, no query string) fail with ``kind``: ``drop`` (close the socket, no
    response), ``500``/``503``/``429``/``401`` (that status), ``timeout`` (answer after 3 s).
    ``after: true`` processes the request first (e.g. the order *is* registered) and then
    fails; ``after: false`` fails without processing (a ``timeout`` then drops the connection
    after the delay).
``POST /_standin/fill`` ``{"order_id":N,"quantity":x,"price":p}``
    Execute (part of) an order: a trade with a new ``execution_id``, fills, status ``Filled``
    when complete (``Submitted`` while partial), positions and cash updated.
``POST /_standin/fill_market_orders`` ``{"price": 101.5}`` (``null`` stops it)
    Every market order placed from now on fills completely at once at that price, as in a
    liquid market during trading hours.
``POST /_standin/order_status`` ``{"order_id":N,"status":"Inactive"}``
    Force an order's status (e.g. a rejection shown as ``Cancelled`` without fills).
``POST /_standin/positions`` ``{"positions":[{"conid":...,"position":...}, ...]}``
    Replace all positions; missing fields are filled in.
``POST /_standin/market`` ``{"<conid>":{"31":"101.5",...}, "closed":false}``
    Override snapshot field values, answered verbatim (``null`` removes an override; bid/ask
    follow an overridden last price), and the closed flag.
``POST /_standin/ticks`` ``{"ticks":[{"conid":N,"price":p,"size":s,"after":t}, ...]}``
    A price path: each trade, ``after`` seconds from now (0 = at once) on the stand-in's
    clock, sets the last price (bid/ask follow), the last size and adds to the day volume
    (``7762``/``87``): snapshots and the WebSocket's ``smd`` show it.
``POST /_standin/stream`` ``{"action": "drop" | "stall" | "refuse", ...}``
    What happens to open WebSockets: ``drop`` hangs up without a close frame; ``stall``
    stops market data and order updates (heartbeats go on) until the client subscribes
    again, or everything with ``"heartbeats": false`` until it reconnects; ``refuse`` answers
    the next ``times`` (1) handshakes with ``status`` (401). ``GET /_standin/stream``: the
    open sockets (what each received and subscribed), the conids holding market-data lines.
``POST /_standin/reset``
    Back to the start state (orders, trades, positions, faults, questions, request log...).
``GET /_standin/requests``
    Every API request received, in order: ``{"method","path","query","body","at","status"}``;
    ``path`` is relative to ``/v1/api``, ``query`` a dict, ``body`` the parsed JSON or null,
    ``at`` the arrival on the stand-in's monotonic clock (seconds), ``status`` the answer's
    status (or the fault's kind).
``GET /_standin/orders``
    The internal order book (one object per order, plain field names).


In this process
===============

``transport.py`` is an ``httpx`` transport that hands each request to a :class:`Standin` in
the test's own process: the same request log, gates, faults and control calls, with no
socket and no TLS; faults look as they would on the wire (a ``drop`` is
``httpx.RemoteProtocolError``, a ``timeout`` outlasting the client's read timeout is
``httpx.ReadTimeout``). The WebSocket has its in-process carrier too:
:class:`~standin.websocket.MemoryConnection` (``LocalDriver.ws_connect``) behaves as
``websockets``' client connection does, on the stand-in's clock. ``driver.py`` holds the
control calls as methods, one interface for the stand-in in this process
(:class:`~standin.driver.LocalDriver`) and in its own process (the ``gateway`` fixture). The
server modules use the standard library (and ``websockets`` for the socket's framing); these
two need ``httpx``.

IBKR's OAuth checks are one object, :class:`~standin.oauth.OAuthFront`: given a request's
method, URL (host included: it is signed), headers and body, it answers it (live session
token, request and access tokens, ``/authorize``, the OAuth 2.0 token and SSO session, the
``/_standin/oauth`` control call, a 401 or 410 refusal) or lets it through to the
:class:`Standin`. The OAuth HTTPS server and
:class:`~standin.transport.OAuthStandinTransport`, its in-process counterpart, both put it in
front of a stand-in; the OAuth side reads time from the stand-in's clock like the rest.

Time
====

Everything that reads time asks one clock object (``clock.py``): timestamps, expiry dates,
pacing intervals and the 3-second ``timeout`` fault. ``Standin(account, clock=...)`` takes a
:class:`~standin.clock.VirtualClock` in tests, so time moves only when the test (or the code
under test, sleeping on the same clock) moves it; the server process uses the wall
(:class:`~standin.clock.RealClock`).

Layout
======

One module per capability, each owning its endpoints:

``clock``        the real and the virtual clock
``wire``         requests, answers, refusals, parsing shared by every endpoint
``instruments``  the contracts table (stocks, spread conids, generated options, greeks)
``model``        tickets, orders and their views, pending questions, IBKR's string formats
``state``        the in-memory state, its reset, and the look-ups and checks all share
``session``      auth status, ssodh/init, reauthenticate, tickle, sso/validate, logout
``portfolio``    /iserver/accounts, /portfolio/* (summary, ledger, cached positions)
``contracts``    /trsrv/stocks, /iserver/secdef/*
``orders``       place, reply, suppress, whatif, modify, cancel
``executions``   live orders, order status, trades; the ``fill`` control call
``market``       snapshots, history, scanner; the ``market`` control call
``stream``       the WebSocket's behaviour, no I/O (sessions, ``smd``/``sor``, heartbeats,
                 line limits), the price path and the ``ticks``/``stream`` control calls
``websocket``    the WebSocket on a wire: the HTTPS upgrade, and the in-memory connection
``control``      the ``/_standin/*`` control API
``gateway``      :class:`Standin`, composing the above: routing, gates, faults, request log
``server``       the threaded HTTPS server, its handler, ``main()``
``transport``    the in-process ``httpx`` transports (plain, and behind the OAuth checks)
``driver``       the control calls as methods, for either transport
``oauth``        IBKR's OAuth checks in front of a stand-in (:class:`~standin.oauth.OAuthFront`),
                 and its HTTPS server (``python -m standin.oauth``)
``oauth_server`` IBKR's side of OAuth (signatures, tokens), also used behind respx
"""

from __future__ import annotations

from .clock import Clock, RealClock, VirtualClock
from .gateway import Standin

__all__ = ["Clock", "RealClock", "Standin", "VirtualClock"]
