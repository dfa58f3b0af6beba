"""What the command line and the API ask of a run's records outside a run.

The configured sinks (``[run] sinks``) answer: which orders they hold open (so a
broker command names them as a run would), which order an execution belongs to,
and, once the broker confirmed an order's end, writing that end where the order
was recorded. Plain functions over :class:`~tradepipe.Sink`, so ``tradepipe
broker …``, ``tradepipe order cancel`` and the API share them and none of them
knows which ledger is installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

from tradepipe.adapter import Broker, OrderUpdate
from tradepipe.errors import TradepipeError
from tradepipe.host import PluginHost
from tradepipe.orders import Fill, OrderStatus
from tradepipe.pipeline import make_component
from tradepipe.settings import AppSettings
from tradepipe.sink import Sink

log = logging.getLogger(__name__)


@contextlib.contextmanager
def record_sinks(settings: AppSettings, host: PluginHost) -> Iterator[list[Sink]]:
    """The configured sinks that can be built, released on leaving.

    A sink that cannot be built (not installed, bad settings) is reported in the
    log and left out: the records are a help to a broker command, never a
    reason for it to fail (a cancel must still reach the broker).
    """
    sinks: list[Sink] = []
    for name in settings.run.sinks:
        try:
            sinks.append(make_component(host, settings, "sink", name))
        except TradepipeError as exc:
            log.warning("sink %r left out: %s", name, exc)
    try:
        yield sinks
    finally:
        for sink in sinks:
            try:
                sink.release()
            except Exception:
                log.exception("sink %r: releasing its connections failed", sink.name)


def follow_records(
    settings: AppSettings, host: PluginHost, broker: Broker, account_id: str | None
) -> None:
    """Tell ``broker`` of the orders the records hold open there (:meth:`Sink.follow`):
    those of the runs that traded the account it is connected to (``account_id``)."""
    with record_sinks(settings, host) as sinks:
        for sink in sinks:
            _follow(sink, broker, account_id)


def _follow(sink: Sink, broker: Broker, account_id: str | None) -> None:
    account = broker.ledger_account(account_id)
    if not account:
        return  # a simulator's account of this process alone: nothing was sent to it before
    try:
        sink.follow(broker, account)
    except Exception:
        log.exception("sink %r: could not tell the broker of its open orders", sink.name)


def named_fills(
    settings: AppSettings,
    host: PluginHost,
    broker: Broker,
    account_id: str | None,
    since: dt.datetime | None,
) -> list[Fill]:
    """The broker's fills, each under the client order id the records know it by.

    Executions that carry no client order id (a bracket's exits) are named from
    the records: by the exit orders still open there, which the broker is told
    to follow first, and by the fills already recorded.
    """
    with record_sinks(settings, host) as sinks:
        for sink in sinks:
            _follow(sink, broker, account_id)
        fills = broker.fills(since)
        unnamed = [f.execution_id for f in fills if not f.client_order_id]
        names: dict[str, str] = {}
        for sink in sinks if unnamed else ():
            try:
                names.update(sink.execution_orders(unnamed))
            except Exception:
                log.exception("sink %r: could not name the broker's executions", sink.name)
    return [
        f.model_copy(update={"client_order_id": names[f.execution_id]})
        if f.execution_id in names
        else f
        for f in fills
    ]


def record_end(
    settings: AppSettings,
    host: PluginHost,
    broker: Broker,
    client_order_id: str,
    *,
    final: OrderStatus,
    known: bool,
    requested: OrderUpdate | None = None,
) -> str | None:
    """Write a cancelled (or otherwise ended) order's end where it was recorded.

    Only once the broker confirmed the end. Each sink is asked on its own: one
    that cannot be written is reported in the log and left for ``tradepipe
    reconcile --fix``, never treated as a failed cancel (the broker already
    acted on it), and never keeps the others from recording it.

    :param final: the order's status as last seen, and ``known``: whether the broker
        said so (rather than the wait running out).
    :param requested: the broker's answer to the cancel the user asked for; the
        history then shows the request (``pending_cancel``) before the end.
    :returns: the run holding what the first sink that wrote it wrote, or ``None``.
    """
    if not (known and final.is_terminal):
        return None
    written: str | None = None
    with record_sinks(settings, host) as sinks:
        for sink in sinks:
            try:
                run = sink.record_end(broker, client_order_id, requested, settings.env)
            except Exception as exc:
                log.warning(
                    "order %s ended %s but sink %r could not record it (%s); "
                    "`tradepipe reconcile --fix` will",
                    client_order_id,
                    final,
                    sink.name,
                    exc,
                )
                continue
            written = written or run
    return written
