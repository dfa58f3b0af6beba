"""Building a pipeline from settings and plugins, and running it.

This is the one place that reads ``[run]`` and turns names into component
instances; the :class:`~tradepipe.executor.Executor` then only moves events.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError
from tradepipe.adapter import Broker, BrokerStatus
from tradepipe.clock import Clock, ManualClock, SystemClock
from tradepipe.component import Component
from tradepipe.errors import ConfigError
from tradepipe.executor import Executor, RunResult
from tradepipe.feed import Feed
from tradepipe.host import KINDS, PluginHost
from tradepipe.live.feed import LiveFeed
from tradepipe.logs import FILE_ONLY, mask_account
from tradepipe.order_rules import OrderRules
from tradepipe.risk import RiskFilter
from tradepipe.settings import AppSettings, settings_error
from tradepipe.sink import RunInfo, Sink, run_account
from tradepipe.sizing import Sizer
from tradepipe.strategy import Strategy
from tradepipe.upkeep import Interrupts, snapshot

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a component may use besides its own settings.

    ``run`` is replaced when the broker has connected, by the run that says
    which account it trades (``run.account``); read it when it is needed.
    """

    settings: AppSettings
    clock: Clock
    run: RunInfo
    host: PluginHost | None = None


@dataclass
class Pipeline:
    settings: AppSettings
    host: PluginHost
    run: RunInfo
    clock: Clock
    feed: Feed
    strategies: list[Strategy]
    sizer: Sizer
    filters: list[RiskFilter]
    broker: Broker
    sinks: list[Sink]
    timings: dict[str, float] = field(default_factory=dict)
    #: The always-on filters ``[run] risk_filters`` does not list: they judge every
    #: order before the listed filters and are recorded only when they say something.
    guards: list[RiskFilter] = field(default_factory=list)
    #: What the components were given (:class:`Runtime`).
    runtime: Runtime | None = None


class Progress(Protocol):
    """Something that shows how far a run has come (a progress bar)."""

    def start(self, total: int | None) -> None: ...

    def update(self, done: int) -> None: ...

    def stop(self) -> None: ...


def make_component(
    host: PluginHost, settings: AppSettings, kind: str, name: str, runtime: Runtime | None = None
) -> Any:
    """Instantiate component ``name`` of ``kind`` with its validated settings table.

    :raises UnknownComponentError: no plugin provides ``name``.
    :raises ConfigError: its settings table has a bad key or value.
    """
    cls = host.component(kind, name)
    table = KINDS[kind][1]
    try:
        component_settings = cls.Settings.model_validate(settings.component_table(table, name))
    except ValidationError as exc:
        raise settings_error(
            exc,
            source=settings.path or "settings",
            prefix=(table, name),
            model=cls.Settings,
            secret_keys=settings.secret_keys,
            sources=settings.sources,
        ) from None
    component: Component = cls(component_settings)
    if isinstance(component, Broker):
        component.order_rules = OrderRules.of(settings)
    if runtime is not None:
        component.attach(runtime)
    return component


#: Risk filters every pipeline runs, whatever ``[run] risk_filters`` lists: the
#: live-account guard and the kill switch. A halt must never depend on a list someone
#: forgot to extend. Listed, one runs where the list puts it, as any filter.
ALWAYS_ON_FILTERS = ("live_account", "halt", "named_lots")


def guard_names(settings: AppSettings) -> list[str]:
    """The always-on filters ``[run] risk_filters`` leaves out (they run first)."""
    return [name for name in ALWAYS_ON_FILTERS if name not in settings.run.risk_filters]


def _wanted(settings: AppSettings) -> dict[str, list[str]]:
    """The components the run names, by kind."""
    run = settings.run
    return {
        "broker": [run.broker],
        "feed": [run.feed],
        "strategy": list(run.strategies),
        "risk_filter": guard_names(settings) + list(run.risk_filters),
        "sink": list(run.sinks),
    }


def refuse_unknown_tables(settings: AppSettings, host: PluginHost) -> None:
    """Refuse a settings table for a component that is not installed: a misspelt
    ``[risk.max_position_vaule]`` would otherwise leave the filter at its defaults.
    (A component the run names but that is not installed is refused where it is made.)

    :raises ConfigError: naming the table and what is installed.
    """
    for kind, names in _wanted(settings).items():
        table = KINDS[kind][1]
        known = host.components(kind)
        for name in getattr(settings, table):
            if name not in known and name not in names:
                raise ConfigError(
                    f"{settings.path or 'settings'}: [{table}.{name}] configures an unknown "
                    f"{kind.replace('_', ' ')}; installed: {', '.join(sorted(known)) or 'none'}",
                    key=f"{table}.{name}",
                )


def check_components(settings: AppSettings, host: PluginHost) -> list[str]:
    """Validate every component the settings name or configure; return what was checked.

    :raises ConfigError: an unknown name or a bad settings table.
    """
    refuse_unknown_tables(settings, host)
    checked = []
    for kind, names in _wanted(settings).items():
        table = KINDS[kind][1]
        for name in dict.fromkeys(names + list(getattr(settings, table))):
            make_component(host, settings, kind, name)
            checked.append(f"{table}.{name}")
    return checked


def build_pipeline(
    settings: AppSettings,
    host: PluginHost,
    *,
    clock: Clock | None = None,
    wall: Clock | None = None,
) -> Pipeline:
    """Turn the settings into component instances, ready to run."""
    run_cfg = settings.run
    wall = wall or SystemClock()
    started = wall.now()
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run = RunInfo(
        run_id=run_id,
        namespace=run_cfg.session or run_id,
        started_at=started,
        env=settings.env,
        broker=run_cfg.broker,
        feed=run_cfg.feed,
        strategies=tuple(run_cfg.strategies),
        settings=settings.masked(),
    )
    clock = clock or ManualClock(started)
    runtime = Runtime(settings, clock, run, host)
    if len(set(run_cfg.strategies)) != len(run_cfg.strategies):
        raise ConfigError("[run] strategies lists a strategy twice", key="run.strategies")
    refuse_unknown_tables(settings, host)

    def make(kind: str, name: str) -> Any:
        return make_component(host, settings, kind, name, runtime)

    return Pipeline(
        settings=settings,
        host=host,
        run=run,
        clock=clock,
        feed=make("feed", run_cfg.feed),
        strategies=[make("strategy", n) for n in run_cfg.strategies],
        sizer=Sizer(settings.sizing),
        filters=[make("risk_filter", n) for n in run_cfg.risk_filters],
        broker=make("broker", run_cfg.broker),
        sinks=[make("sink", n) for n in run_cfg.sinks],
        guards=[make("risk_filter", n) for n in guard_names(settings)],
        runtime=runtime,
    )


def connect_broker(broker: Broker, settings: AppSettings) -> BrokerStatus:
    """Connect and refuse a live account unless the settings opt in.

    :raises ConfigError: the account is live and ``[run] allow_live`` is false.
    """
    try:
        status = broker.connect()
    except BaseException:
        # A failed connect may have opened connections or started threads.
        broker.disconnect()
        raise
    if not status.is_paper and not settings.run.allow_live:
        broker.disconnect()
        raise ConfigError(
            f"broker {broker.name!r} is connected to a live account "
            f"({mask_account(status.account_id)}); refusing to trade it. Set "
            "[run] allow_live = true in the environment meant for live trading to allow it.",
            key="run.allow_live",
        )
    return status


@contextmanager
def open_run(
    pipeline: Pipeline,
    progress: Progress | None = None,
    progress_every: int = 1000,
    *,
    log_events: bool = True,
) -> Iterator[Executor]:
    """Connect the broker, open the sinks and yield a started :class:`Executor`.

    Whatever happens inside (an error, Ctrl-C), every sink that was opened is
    flushed and closed with the run's status, and the broker is disconnected;
    an error while finishing is logged rather than allowed to hide the run's
    own error. :func:`run_pipeline` drives the executor over a feed; the
    one-off commands (``tradepipe order``) hand it single decisions. With
    ``log_events`` false, records go to the sinks but not to the event log (a replay).
    """
    connected = connect_broker(pipeline.broker, pipeline.settings)
    account = run_account(pipeline.broker, connected.account_id, pipeline.run.run_id)
    run = pipeline.run = pipeline.run.model_copy(
        update={"account_id": connected.account_id, "account": account}
    )
    if pipeline.runtime is not None:
        pipeline.runtime.run = run
    opened: list[Sink] = []
    executor: Executor | None = None
    status = "failed"
    ended = False  # normally: the caller reads the summary and announces the end
    try:
        for sink in pipeline.sinks:
            sink.open(run)
            opened.append(sink)
        log.info(
            "run %s started: env %s, broker %s, feed %s, strategies %s, namespace %s",
            run.run_id,
            run.env,
            run.broker,
            run.feed or "none",
            ",".join(run.strategies),
            run.namespace,
        )
        started = pipeline.host.observers("tradepipe_run_started")
        if started is not None:
            started(run=run)
        executor = Executor(
            pipeline,
            progress=progress.update if progress else None,
            progress_every=progress_every,
            log_events=log_events,
        )
        executor.start()
        yield executor
        status = executor.end_status
        ended = True
    except KeyboardInterrupt:
        status = "interrupted"
        # In the log file; the person hears it from whoever stops (the CLI: "interrupted").
        log.error("run %s interrupted", run.run_id, extra=FILE_ONLY)
        raise
    except BaseException as exc:
        # Raised on: whoever catches it tells the person, once.
        log.error("run %s failed: %s", run.run_id, exc, extra=FILE_ONLY)
        raise
    finally:
        bars = executor.bars if executor is not None else 0
        try:
            _finish(pipeline, opened, bars, status)
        except BaseException as exc:
            if ended:
                raise
            log.error("while finishing run %s after it %s: %s", run.run_id, status, exc)
        if not ended:
            announce_end(pipeline, status, {})


def run_pipeline(
    pipeline: Pipeline, progress: Progress | None = None, progress_every: int = 1000
) -> tuple[RunResult, dict[str, Any]]:
    """Run ``pipeline`` to the end of its feed; return its result and summary.

    The summary comes from the first sink that can summarise (the ledger), so
    it shows what was recorded, not what the process remembers.
    """
    if isinstance(pipeline.feed, LiveFeed):
        raise ConfigError(
            f"feed {pipeline.feed.name!r} is live: run it with `tradepipe run-pipeline --live` "
            '([run] mode = "live")',
            key="run.mode",
        )
    broker = pipeline.broker
    if not broker.simulated and not pipeline.settings.run.replay_to_broker:
        raise ConfigError(
            f"a replay of feed {pipeline.feed.name!r} would send real orders to broker "
            f"{broker.name!r} at the prices of its bars, not the market's. Replay on the paper "
            "simulator (--broker paper), trade live (--live with a live feed such as "
            "ibkr_stream), or, for a test account, set [run] replay_to_broker = true",
            key="run.replay_to_broker",
        )
    # Ctrl-C and SIGTERM: at once while loading, between two bars while they run,
    # not at all while the ledger is closed (see Interrupts).
    interrupts = Interrupts()
    with interrupts.deferred():
        t0 = time.perf_counter()
        pipeline.feed.load()
        pipeline.timings["load_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            with open_run(
                pipeline,
                progress,
                progress_every,
                log_events=pipeline.settings.logging.replay_events,
            ) as executor:
                executor.interrupts = interrupts
                # A replay is history: nobody waits on it. [approval] rules are not
                # applied, and a broker question left to a person stays refused.
                executor.approval_rules = None
                executor.asks = False
                if progress is not None:
                    progress.start(pipeline.feed.total())
                try:
                    result = executor.run()
                finally:
                    interrupts.closing = True
                    if progress is not None:
                        progress.stop()
        finally:
            pipeline.timings["run_seconds"] = time.perf_counter() - t0
    summary = summarize(pipeline, result)
    run = pipeline.run
    log.info(
        "run %s %s: %d bars, %d decisions, %d orders, %d fills",
        run.run_id,
        result.status,
        result.bars,
        result.decisions,
        result.orders,
        result.fills,
    )
    announce_end(pipeline, result.status, summary)
    return result, summary


def announce_end(pipeline: Pipeline, status: str, summary: dict[str, Any]) -> None:
    """Tell the ``tradepipe_run_finished`` observers how the run ended."""
    finished = pipeline.host.observers("tradepipe_run_finished")
    if finished is not None:
        finished(run=pipeline.run, status=status, summary=summary)


def _finish(pipeline: Pipeline, sinks: list[Sink], bars: int, status: str) -> None:
    """Snapshot the account, flush and close ``sinks``, disconnect the broker.

    Each step is attempted even when an earlier one failed; the first error is
    raised at the end.
    """
    errors: list[BaseException] = []
    broker = pipeline.broker
    try:
        snapshot(broker, sinks)
    except Exception as exc:
        log.error("could not snapshot the account at the end of the run: %s", exc)
    for sink in sinks:
        for step in (sink.flush, lambda sink=sink: sink.close(pipeline.run, bars, status)):
            try:
                step()
            except BaseException as exc:
                errors.append(exc)
    try:
        broker.disconnect()
    except Exception as exc:
        errors.append(exc)
    if errors:
        raise errors[0]


def summarize(pipeline: Pipeline, result: RunResult) -> dict[str, Any]:
    for sink in pipeline.sinks:
        summary = getattr(sink, "summary", None)
        if summary is not None:
            data: dict[str, Any] = summary(pipeline.run.run_id)
            data["timings"] = {k: round(v, 3) for k, v in pipeline.timings.items()}
            return data
    # No ledger configured: say so, and report what the broker holds.
    account = pipeline.broker.account()
    return {
        "run_id": pipeline.run.run_id,
        "source": "memory (no ledger sink configured)",
        "status": result.status,
        "bars": result.bars,
        "decisions": result.decisions,
        "orders": {"total": result.orders},
        "fills": result.fills,
        "positions": [
            {"symbol": p.symbol, "quantity": str(p.quantity)} for p in pipeline.broker.positions()
        ],
        "cash": str(account.cash),
        "equity": str(account.equity),
        "timings": {k: round(v, 3) for k, v in pipeline.timings.items()},
    }
