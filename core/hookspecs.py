"""Every hook tradepipe defines. A hook's docstring is its contract.

Plugins implement hooks with the :data:`hookimpl` marker::

    from tradepipe import hookimpl

    @hookimpl
    def tradepipe_register_strategies(register):
        register(MeanReversion)

There are three kinds of hook:

* **registration** (``tradepipe_register_*``): each called once, when its kind
  is first looked up (``tradepipe --help`` looks up the commands alone); each
  gets a ``register`` callable that takes a component class. Names must be
  unique per kind across all plugins. Import a heavy component's module inside
  the hook, not at the top of the plugin's module, which every start imports.
* **configure** (``tradepipe_configure``): historic, so a plugin registered late
  still receives the settings.
* **events** (``tradepipe_run_started`` … ``tradepipe_run_finished``): broadcast
  to every implementation, in the order things happen. They must be quick and
  must not raise; an observer that raises is logged and skipped. Return values
  are ignored. An observer with nothing to do in some runs says so with
  :func:`observes_when`, and costs those runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from tradepipe.adapter import Broker
    from tradepipe.decisions import Decision
    from tradepipe.feed import Feed
    from tradepipe.orders import Fill, Order, OrderEvent
    from tradepipe.risk import RiskFilter, RiskVerdict
    from tradepipe.settings import AppSettings
    from tradepipe.sink import RunInfo, Sink
    from tradepipe.strategy import Strategy

PROJECT = "tradepipe"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The attribute :func:`observes_when` sets on an event observer.
LISTENING = "tradepipe_listening"


def observes_when(predicate: Callable[[], bool]) -> Callable[[Callable[..., Any]], Any]:
    """Mark an event observer that listens only in some runs.

    ``predicate`` is asked once per run, after ``tradepipe_run_started``, when
    the run looks up who observes each event; while it answers ``False`` the
    observer is never called in that run (a replay's every order event, for
    one). Outside a run (a command's alert) it is asked for each event. A
    predicate that raises is logged and counts as ``True``: the observer is called.

    ::

        @hookimpl
        @observes_when(lambda: settings_say_notify())
        def tradepipe_order_filled(fill): ...
    """

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, LISTENING, predicate)
        return function

    return mark


@hookspec
def tradepipe_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    """Register decision sources.

    :param register: call it with each :class:`~tradepipe.Strategy` subclass the
        plugin provides. ``[run] strategies`` in the settings picks them by their
        ``name``; their settings come from ``[strategies.<name>]``.
    """


@hookspec
def tradepipe_register_risk_filters(register: Callable[[type[RiskFilter]], None]) -> None:
    """Register risk filters.

    :param register: call it with each :class:`~tradepipe.RiskFilter` subclass.
        ``[run] risk_filters`` lists the ones to use, in the order they run;
        their settings come from ``[risk.<name>]``.
    """


@hookspec
def tradepipe_register_brokers(register: Callable[[type[Broker]], None]) -> None:
    """Register broker adapters.

    :param register: call it with each :class:`~tradepipe.Broker` subclass.
        ``[run] broker`` (or ``--broker``) picks one; its settings come from
        ``[brokers.<name>]``.
    """


@hookspec
def tradepipe_register_sinks(register: Callable[[type[Sink]], None]) -> None:
    """Register persistence sinks.

    :param register: call it with each :class:`~tradepipe.Sink` subclass.
        ``[run] sinks`` lists the ones a run writes to; their settings come from
        ``[sinks.<name>]``.
    """


@hookspec
def tradepipe_register_feeds(register: Callable[[type[Feed]], None]) -> None:
    """Register market-data feeds.

    :param register: call it with each :class:`~tradepipe.Feed` subclass.
        ``[run] feed`` picks one; its settings come from ``[feeds.<name>]``.
    """


@hookspec
def tradepipe_register_commands(register: Callable[[click.Command], None]) -> None:
    """Add commands to the ``tradepipe`` CLI.

    :param register: call it with each :class:`click.Command` (or group). A
        name already taken by another command is an error. A
        :class:`tradepipe.cli.lazy.LazyCommand` stands for a command whose
        module is imported only when the command is used, not when
        ``tradepipe --help`` lists it.
    """


@hookspec(historic=True)
def tradepipe_configure(settings: AppSettings) -> None:
    """The validated settings are known.

    Historic: a plugin registered after this call still receives it on
    registration. Use it to read settings a plugin keeps outside its
    components.

    :param settings: the merged, validated settings of this invocation.
    """


@hookspec
def tradepipe_run_started(run: RunInfo) -> None:
    """A pipeline run is about to process its first event.

    :param run: the run's id, environment, broker, feed and strategies.
    """


@hookspec
def tradepipe_decision_made(decision: Decision) -> None:
    """A decision source produced a valid decision (recorded before sizing).

    :param decision: the decision, with its ``id`` and ``source`` filled in.
    """


@hookspec
def tradepipe_decision_rejected(raw: Any, source: str, error: str) -> None:
    """A decision source produced something that is not a valid decision.

    Nothing was sized or sent for it.

    :param raw: what the source returned, as far as it could be represented.
    :param source: the decision source's name.
    :param error: why it was rejected, naming the offending field.
    """


@hookspec
def tradepipe_risk_verdict(verdict: RiskVerdict) -> None:
    """A risk filter judged an order intent (pass, deny or reduce).

    :param verdict: the filter's name, outcome, reason and the figures it used.
    """


@hookspec
def tradepipe_order_event(order: Order, event: OrderEvent) -> None:
    """An order changed status (created, denied, submitted, accepted, filled, …).

    :param order: the order after the change.
    :param event: the change itself; ``event.name`` is its past-tense name,
        e.g. ``OrderDenied`` or ``OrderFilled``.
    """


@hookspec
def tradepipe_order_filled(fill: Fill) -> None:
    """Part or all of an order traded.

    :param fill: the execution, linked to its order by ``client_order_id`` and
        to its decision by ``decision_id``.
    """


@hookspec
def tradepipe_run_finished(run: RunInfo, status: str, summary: dict[str, Any]) -> None:
    """A pipeline run ended.

    :param run: the run.
    :param status: ``completed``, ``stopped`` (a live run asked to stop), ``failed``
        or ``interrupted``.
    :param summary: the run summary as the CLI prints it with ``--json``.
    """


@hookspec
def tradepipe_alert(kind: str, message: str) -> None:
    """Something a person should know at once, beside the records: a halt, a
    broker session lost or back, a live trading day's summary.

    :param kind: ``halt``, ``connection`` or ``daily_summary``.
    :param message: one or a few lines for a person, no secret and no account number.
    """
