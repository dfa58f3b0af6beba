"""The IBKR WebSocket client against the gateway stand-in, in this process on its virtual clock.

Each test starts a :class:`~tradepipe.brokers.ibkr.stream.MarketStream` through the Client
Portal adapter (``inprocess_gateway.stream``): its socket is an in-memory connection to the
stand-in, and its tic, stall, silence and backoff timers read the stand-in's clock, which the
test moves. Two tests at the end run the real ``websockets`` client over TLS against the
stand-in in its own process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from gateway_support import Gateway
from inprocess_support import InProcessGateway
from oauth_fixtures import ACCESS_TOKEN, InProcessOAuthGateway
from stream_support import Watch, received, run_for
from tradepipe.brokers.ibkr.broker import WebApiBroker
from tradepipe.brokers.ibkr.client_portal import ClientPortalBroker
from tradepipe.brokers.ibkr.stream import (
    Handshake,
    MarketStream,
    StateChanged,
    StreamState,
    SubscriptionRefused,
    socket_url,
)
from tradepipe.brokers.ibkr.topics import OrderChanged, QuoteUpdate
from tradepipe.errors import ConfigError
from tradepipe.orders import OrderStatus
from websockets.exceptions import InvalidStatus

AAPL, MSFT = 265598, 272093


def started(
    gateway: InProcessGateway, symbols: list[str] | None = None, **options: object
) -> tuple[WebApiBroker, MarketStream, Watch]:
    broker = gateway.broker()
    broker.connect()
    options.setdefault("rng", random.Random(7))
    stream = gateway.stream(broker, symbols or ["AAPL"], **options)
    watch = Watch(stream)
    stream.start()
    watch.state(StreamState.CONNECTED)
    return broker, stream, watch


def socket(gateway: InProcessGateway, index: int = -1) -> dict[str, object]:
    sockets: list[dict[str, object]] = gateway.streams()["sockets"]
    return sockets[index]


def place_limit(gateway: InProcessGateway, coid: str, quantity: int = 5) -> int:
    order = {
        "acctId": gateway.account,
        "conid": AAPL,
        "orderType": "LMT",
        "price": 150,
        "side": "BUY",
        "quantity": quantity,
        "tif": "DAY",
        "cOID": coid,
    }
    client = gateway.client(paced=True)
    client.get("/iserver/accounts")
    answer = client.post(f"/iserver/account/{gateway.account}/orders", json={"orders": [order]})
    return int(answer.json()[0]["order_id"])


def test_the_first_quote_is_partial_and_the_next_completes_it(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, _, watch = started(inprocess_gateway)
    first = watch.next(QuoteUpdate)
    assert first.first and not first.traded
    assert first.changed == {"31", "6509"}
    assert first.quote.last == Decimal("190.25") and first.quote.bid is None
    second = watch.next(QuoteUpdate)
    assert not second.first and not second.traded  # fields arriving late are not a trade
    quote = second.quote
    assert (quote.bid, quote.ask, quote.last) == (
        Decimal("190.24"),
        Decimal("190.26"),
        Decimal("190.25"),
    )
    assert quote.bid_size == Decimal(1300) and quote.conid == AAPL and quote.symbol == "AAPL"


def test_later_messages_carry_only_changed_fields_merged_into_the_whole_quote(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, _, watch = started(inprocess_gateway)
    full = watch.next(QuoteUpdate, lambda u: u.quote.bid is not None)
    inprocess_gateway.ticks({"conid": AAPL, "price": 191.5, "size": 300})
    tick = watch.next(QuoteUpdate, lambda u: u.traded)
    assert tick.changed == {"31", "84", "86", "7059", "7762"}  # sizes did not change
    assert tick.quote.last == Decimal("191.50") and tick.quote.bid == Decimal("191.49")
    assert tick.quote.bid_size == full.quote.bid_size  # kept from earlier messages
    assert tick.trade_size == Decimal(300)
    assert full.quote.volume is not None and tick.quote.volume == full.quote.volume + 300
    # the same price again: only the day volume moves, and it is still a trade
    inprocess_gateway.ticks({"conid": AAPL, "price": 191.5, "size": 100})
    again = watch.next(QuoteUpdate, lambda u: u.traded)
    assert again.changed == {"7059", "7762"} and again.trade_size == Decimal(100)


def test_order_updates_carry_changed_fields_and_map_onto_the_adapters_statuses(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, _, watch = started(inprocess_gateway)
    order_id = place_limit(inprocess_gateway, "tp-coid-1")
    placed = watch.next(OrderChanged)
    assert placed.broker_order_id == str(order_id) and placed.client_order_id == "tp-coid-1"
    assert placed.report is not None and placed.report.status is OrderStatus.ACCEPTED
    assert placed.ibkr_status == "PreSubmitted"

    inprocess_gateway.fill(order_id, 2, 150.0)
    partial = watch.next(OrderChanged)
    assert partial.filled and "ticker" not in partial.changed  # only what changed
    assert partial.report is not None
    assert partial.report.status is OrderStatus.PARTIALLY_FILLED
    assert partial.report.filled_quantity == 2 and partial.report.symbol == "AAPL"

    client = inprocess_gateway.client(paced=True)
    client.delete(f"/iserver/account/{inprocess_gateway.account}/order/{order_id}")
    cancelling = watch.next(OrderChanged)
    assert cancelling.changed >= {"status"} and cancelling.report is not None
    assert cancelling.report.status is OrderStatus.PENDING_CANCEL
    cancelled = watch.next(OrderChanged)
    assert cancelled.report is not None and cancelled.report.status is OrderStatus.CANCELED
    assert cancelled.client_order_id == "tp-coid-1"  # kept from the first update


@pytest.mark.slow
def test_heartbeats_are_seen_and_tic_is_sent_once_a_minute(
    inprocess_gateway: InProcessGateway,
) -> None:
    # a quiet market sends nothing: no stall is called in these three minutes
    _, stream, _ = started(inprocess_gateway, stall_seconds=1000)
    assert stream.status().last_heartbeat is None
    run_for(inprocess_gateway.clock, 11, step=11)
    assert stream.status().last_heartbeat is not None
    run_for(inprocess_gateway.clock, 170, step=10)
    tics = received(socket(inprocess_gateway), "tic")
    assert len(tics) == 3  # at about 60, 120 and 180 s
    assert stream.status().state is StreamState.CONNECTED
    assert len(inprocess_gateway.streams()["sockets"]) == 1  # the idle limit never came


@pytest.mark.slow
def test_without_tic_the_server_closes_the_idle_socket_and_the_stream_reopens_it(
    start_inprocess_gateway: Callable[..., InProcessGateway],
) -> None:
    # More than 5 idle minutes pass with no keep-alive thread (see stream_support).
    gateway = start_inprocess_gateway(behaviour={"idle_seconds": 0})
    _, stream, watch = started(gateway, tic_seconds=10_000, stall_seconds=1000)
    run_for(gateway.clock, 310, step=10)
    lost = watch.state(StreamState.RECONNECTING)
    assert "idle" in lost.reason and lost.retry_in is not None
    back = watch.state(StreamState.CONNECTED)
    assert back.gap is not None and back.gap[0] < back.gap[1]
    assert stream.status().reconnects == 1


def test_a_dropped_socket_reconnects_with_jittered_capped_backoff(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, stream, watch = started(inprocess_gateway, backoff_cap_seconds=4.0)
    inprocess_gateway.refuse_streams(times=4, status=503)
    inprocess_gateway.drop_streams()
    dropped = watch.state(StreamState.RECONNECTING)
    assert "without closing" in dropped.reason
    refusals = [watch.state(StreamState.REFUSED) for _ in range(4)]
    assert all("HTTP 503" in r.reason for r in refusals)
    watch.state(StreamState.CONNECTED)
    # each wait is drawn between half and all of its limit: 1 s after a healthy socket,
    # doubling with every failure in a row, never past the cap
    limits = [1.0, 1.0, 2.0, 4.0, 4.0]
    waits = [e.retry_in for e in [dropped, *refusals]]
    assert all(w is not None and lim / 2 <= w <= lim for w, lim in zip(waits, limits, strict=True))
    assert len(set(waits)) == len(waits)  # jittered
    assert stream.status().reconnects == 5
    # the waits were slept on the stream's clock
    assert set(waits) <= set(inprocess_gateway.clock.slept)


def test_a_stalled_stream_is_subscribed_again(inprocess_gateway: InProcessGateway) -> None:
    _, stream, watch = started(inprocess_gateway, ["AAPL", "MSFT"])
    watch.next(QuoteUpdate, lambda u: u.symbol == "MSFT" and not u.first)
    inprocess_gateway.stall_streams()
    run_for(inprocess_gateway.clock, 31, step=5)
    stalled = watch.state(StreamState.STALLED)
    assert "no market data for 30 s" in stalled.reason
    info = socket(inprocess_gateway)
    again = received(info, "umd+") + received(info, "smd+")
    assert sorted(m.split("+")[0] + m.split("+")[1] for m in again) == [
        "smd265598",
        "smd265598",
        "smd272093",
        "smd272093",
        "umd265598",
        "umd272093",
    ]
    fresh = watch.next(QuoteUpdate)
    assert fresh.first  # a fresh subscription starts partial again
    flowing = watch.state(StreamState.CONNECTED)
    assert flowing.reason == "market data flows again"
    assert stream.status().stalls == 1 and len(inprocess_gateway.streams()["sockets"]) == 1


@pytest.mark.slow
def test_no_stall_is_called_while_the_feed_says_no_data_should_flow(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, stream, watch = started(inprocess_gateway, should_flow=lambda: False)
    run_for(inprocess_gateway.clock, 60, step=5)
    assert StreamState.STALLED not in watch.states() and stream.status().stalls == 0


@pytest.mark.slow
def test_a_silent_socket_is_closed_and_opened_again(inprocess_gateway: InProcessGateway) -> None:
    _, _, watch = started(inprocess_gateway)
    inprocess_gateway.stall_streams(heartbeats=False)
    run_for(inprocess_gateway.clock, 40, step=5)
    lost = watch.state(StreamState.RECONNECTING)
    assert "not even its heartbeat, for 35 s" in lost.reason
    watch.state(StreamState.CONNECTED)
    assert watch.next(QuoteUpdate).first


def test_a_refused_handshake_is_reported_and_retried(inprocess_gateway: InProcessGateway) -> None:
    broker = inprocess_gateway.broker()
    broker.connect()
    inprocess_gateway.refuse_streams(times=2)
    stream = inprocess_gateway.stream(broker, ["AAPL"], rng=random.Random(1))
    watch = Watch(stream)
    stream.start()
    refused = watch.state(StreamState.REFUSED)
    assert "HTTP 401" in refused.reason and "not accepted" in refused.reason
    assert refused.retry_in is not None
    assert stream.status().state in (StreamState.REFUSED, StreamState.CONNECTING)
    watch.state(StreamState.REFUSED)
    watch.state(StreamState.CONNECTED)


def test_a_new_login_closes_the_socket_and_the_new_session_opens_it_again(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, _, watch = started(inprocess_gateway)
    old = json.loads(socket(inprocess_gateway)["received"][0].split("+", 2)[2])
    assert old == {"fields": ["31", "84", "86", "88", "85", "7059", "7762", "6509"]}
    inprocess_gateway.set_auth(logged_in=False)
    inprocess_gateway.set_auth(logged_in=True)
    lost = watch.state(StreamState.RECONNECTING)
    assert "session ended" in lost.reason
    watch.state(StreamState.CONNECTED)


@pytest.mark.slow
def test_a_dropped_brokerage_session_waits_then_subscribes_again(
    inprocess_gateway: InProcessGateway,
) -> None:
    _, stream, watch = started(inprocess_gateway)
    watch.next(QuoteUpdate, lambda u: not u.first)
    inprocess_gateway.set_auth(authenticated=False)
    waiting = watch.state(StreamState.WAITING)
    assert "brokerage session is down" in waiting.reason
    run_for(inprocess_gateway.clock, 40, step=5)  # no stall is called while IBKR waits
    assert stream.status().stalls == 0
    inprocess_gateway.set_auth(authenticated=True)
    watch.state(StreamState.CONNECTED)
    assert watch.next(QuoteUpdate).first
    assert len(received(socket(inprocess_gateway), "smd+")) == 2


def test_past_the_market_data_lines_a_subscription_is_refused_naming_the_limit(
    start_inprocess_gateway: Callable[..., InProcessGateway],
) -> None:
    gateway = start_inprocess_gateway(behaviour={"market_data_lines": 1})
    _, stream, watch = started(gateway, ["AAPL", "MSFT"], max_lines=1 + 1)
    refused = watch.next(SubscriptionRefused)
    assert refused.symbol == "MSFT" and refused.conid == MSFT
    assert "all 2 of the account's market-data lines are in use" in refused.reason
    assert "Max number of tickers has been reached" in refused.reason
    assert stream.status().refused == {"MSFT": refused.reason}
    assert watch.next(QuoteUpdate).symbol == "AAPL"  # the line it has still works
    assert gateway.streams()["lines"] == [AAPL]


def test_more_symbols_than_the_accounts_lines_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="3 symbols need 3 market-data lines; the account has 2"):
        MarketStream(lambda: Handshake("wss://x/v1/api/ws"), {"A": 1, "B": 2, "C": 3}, max_lines=2)


def test_stop_closes_the_socket_and_joins_the_thread(inprocess_gateway: InProcessGateway) -> None:
    _, stream, watch = started(inprocess_gateway)
    assert stream.running
    stream.stop()
    assert not stream.running
    assert watch.state(StreamState.STOPPED).reason == "stopped"
    assert inprocess_gateway.streams()["sockets"] == []  # closed, so gone
    stream.stop()  # idempotent


def test_the_session_cookie_never_reaches_a_log(
    inprocess_gateway: InProcessGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, _, watch = started(inprocess_gateway)
    inprocess_gateway.refuse_streams()
    inprocess_gateway.drop_streams()
    watch.state(StreamState.REFUSED)
    watch.state(StreamState.CONNECTED)
    session = inprocess_gateway.standin.session
    assert session not in caplog.text
    assert all(session not in repr(e) for e in watch.seen)


@pytest.mark.slow
def test_over_oauth_the_socket_is_opened_with_the_access_token(
    inprocess_oauth_gateway: InProcessOAuthGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = inprocess_oauth_gateway.broker()
    broker.connect()
    handshake = broker.stream_handshake()
    assert f"oauth_token={ACCESS_TOKEN}" in handshake.url
    assert handshake.safe_url == socket_url(broker.base_url)
    assert ACCESS_TOKEN not in repr(handshake)
    stream = inprocess_oauth_gateway.stream(broker, ["AAPL"])
    watch = Watch(stream)
    stream.start()
    watch.state(StreamState.CONNECTED)
    assert watch.next(QuoteUpdate).symbol == "AAPL"
    # a revoked token: the adapter derives a new live session token and the socket reopens
    derived = inprocess_oauth_gateway.oauth()["lst"]
    inprocess_oauth_gateway.revoke()
    inprocess_oauth_gateway.drop_streams()
    watch.state(StreamState.RECONNECTING)
    watch.state(StreamState.CONNECTED)
    assert inprocess_oauth_gateway.oauth()["lst"] == derived + 1
    # a token the stand-in does not know is refused at the handshake
    handshake = broker.stream_handshake()
    bad = Handshake(handshake.url.replace(ACCESS_TOKEN, "0" * 20), handshake.headers)
    with pytest.raises(InvalidStatus) as refused:
        inprocess_oauth_gateway.stream_connect(bad)
    assert refused.value.response.status_code == 401
    assert ACCESS_TOKEN not in caplog.text


# ----- over TLS, against the stand-in in its own process ------------------------------------------


@contextlib.contextmanager
def tls_stream(gateway: Gateway, **options: object) -> Iterator[tuple[MarketStream, Watch]]:
    """A started stream through a Client Portal adapter on ``gateway``; all stopped after."""
    broker = ClientPortalBroker(ClientPortalBroker.Settings.model_validate(gateway.broker_table()))
    broker.connect()
    stream = MarketStream.for_broker(broker, ["AAPL"], rng=random.Random(3), **options)
    try:
        watch = Watch(stream)
        stream.start()
        try:
            yield stream, watch
        except AssertionError as exc:
            # A 429 the stream met is explained by what the stand-in measured.
            raise AssertionError(f"{exc}\npacing violations: {gateway.violations()}") from exc
    finally:
        stream.stop()
        broker.disconnect()


@pytest.mark.slow
def test_over_tls_the_websockets_client_streams_and_reconnects_after_a_drop(
    gateway: Gateway,
) -> None:
    with tls_stream(gateway, backoff_seconds=0.2) as (stream, watch):
        watch.state(StreamState.CONNECTED)
        assert watch.next(QuoteUpdate).first
        gateway.ticks({"conid": AAPL, "price": 192.0, "size": 50})
        tick = watch.next(QuoteUpdate, lambda u: u.traded)
        assert tick.quote.last == Decimal("192.00") and tick.trade_size == Decimal(50)
        gateway.drop_streams()
        assert "without closing" in watch.state(StreamState.RECONNECTING).reason
        back = watch.state(StreamState.CONNECTED)
        assert back.gap is not None
        assert watch.next(QuoteUpdate).quote.last == Decimal("192.00")
    assert not stream.running and stream.status().state is StreamState.STOPPED


@pytest.mark.slow
def test_retry_now_cuts_a_long_backoff_short(gateway: Gateway) -> None:
    # The feed calls retry_now when the login comes back: data resumes at once, not at the
    # end of a backoff that grew while nobody was logged in.
    with tls_stream(gateway, backoff_seconds=60.0) as (stream, watch):
        watch.state(StreamState.CONNECTED)
        gateway.drop_streams()
        waiting = watch.state(StreamState.RECONNECTING)
        assert waiting.retry_in is not None and waiting.retry_in >= 30
        t0 = time.monotonic()
        stream.retry_now()
        # Well within the 30 s the backoff had left, with room for a loaded machine.
        watch.state(StreamState.CONNECTED, timeout=20)
        assert time.monotonic() - t0 < 20


@pytest.mark.slow
def test_over_tls_a_stopped_gateway_is_reported_and_retried(
    start_gateway: Callable[..., Gateway],
) -> None:
    gateway = start_gateway()
    with tls_stream(gateway, backoff_seconds=0.2, backoff_cap_seconds=0.5) as (_, watch):
        watch.state(StreamState.CONNECTED)
        os.kill(gateway.pid, signal.SIGTERM)
        watch.state(StreamState.RECONNECTING)
        failed = watch.next(StateChanged, lambda e: "no session" in e.reason)
        assert "could not connect" in failed.reason and failed.retry_in is not None
        assert failed.retry_in <= 0.5
