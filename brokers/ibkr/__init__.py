"""The IBKR Web API client shared by the Client Portal and OAuth adapters.

The two IBKR adapters speak the same REST API and differ only in how a request
is authenticated and how a lost session is re-established. Everything else
lives here, once:

* :mod:`~tradepipe.brokers.ibkr.pacing` — IBKR's request limits, so normal use
  never draws a 429, and the penalty pause when one is drawn anyway;
* :mod:`~tradepipe.brokers.ibkr.client` — HTTP, with every httpx error and IBKR
  error body translated into the :mod:`tradepipe.errors` tree;
* :mod:`~tradepipe.brokers.ibkr.session` — the session supervisor: status
  checks, re-opening the brokerage session, keep-alive thread;
* :mod:`~tradepipe.brokers.ibkr.contracts` — symbols to conids, option chains;
* :mod:`~tradepipe.brokers.ibkr.orders` — order tickets, the reply-question
  loop, status mapping, executions;
* :mod:`~tradepipe.brokers.ibkr.market` — snapshots, history bars, scanner;
* :mod:`~tradepipe.brokers.ibkr.stream` — the WebSocket: a background thread
  streaming quotes and order updates, with tic keep-alives, stall and silence
  detection, jittered backoff, and state events a feed reports;
* :mod:`~tradepipe.brokers.ibkr.topics` — the WebSocket's partial and
  changed-field messages (``smd``, ``sor``) merged into whole quotes and orders;
* :mod:`~tradepipe.brokers.ibkr.bars` — trades into clock-aligned bars (none
  made up for a quiet interval), and the bars a reconnect missed, from history;
* :mod:`~tradepipe.brokers.ibkr.broker` — the :class:`~tradepipe.Broker`
  implementation the adapters build on.
"""
