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
    """The configured sinks, released on leaving.

    :raises UnknownComponentError: a sink in ``[run] sinks`` is not installed.
    :raises ConfigError: a sink's settings are invalid.
    """
    sinks: list[Sink] = []
    try:
        for name in settings.run.sinks:
            sinks.append(make_component(host, settings, "sink", name))
        yield sinks
    finally:
        for sink in sinks:
            sink.release()


def follow_records(settings: AppSettings, host: PluginHost, broker: Broker) -> None:
    """Tell ``broker`` of the orders the records hold open (:meth:`Sink.follow`)."""
    with record_sinks(settings, host) as sinks:
        for sink in sinks:
            sink.follow(broker)


def named_fills(
    settings: AppSettings, host: PluginHost, broker: Broker, since: dt.datetime | None
) -> list[Fill]:
    """The broker's fills, each under the client order id the records know it by.

    Executions that carry no client order id (a bracket's exits) are named from
    the records: by the exit orders still open there, which the broker is told
    to follow first, and by the fills already recorded.
    """
    with record_sinks(settings, host) as sinks:
        for sink in sinks:
            sink.follow(broker)
        fills = broker.fills(since)
        unnamed = [f.execution_id for f in fills if not f.client_order_id]
        names: dict[str, str] = {}
        if unnamed:
            for sink in sinks:
                names.update(sink.execution_orders(unnamed))
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

    Only once the broker confirmed the end. Records that cannot be written are
    reported in the log and left for ``tradepipe reconcile --fix``, never
    treated as a failed cancel (the broker already acted on it).

    :param final: the order's status as last seen, and ``known``: whether the broker
        said so (rather than the wait running out).
    :param requested: the broker's answer to the cancel the user asked for; the
        history then shows the request (``pending_cancel``) before the end.
    :returns: the run holding what was written, or ``None``.
    """
    if not (known and final.is_terminal):
        return None
    try:
        with record_sinks(settings, host) as sinks:
            written = [
                sink.record_end(broker, client_order_id, requested, settings.env) for sink in sinks
            ]
    except TradepipeError as exc:
        log.warning(
            "order %s ended %s but the ledger could not record it (%s); "
            "`tradepipe reconcile --fix` will",
            client_order_id,
            final,
            exc,
        )
        return None
    return next((run for run in written if run), None)
