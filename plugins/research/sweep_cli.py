"""``tradepipe sweep``: the same pipeline over many parameters and periods, on Dask."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import click
from tradepipe.cli.context import AppContext, pass_app
from tradepipe.cli.output import Id, console, err_console, print_json, table
from tradepipe.errors import ConfigError
from tradepipe.plugins.research.grid import (
    Period,
    combinations,
    params_text,
    parse_param,
    parse_period,
    parse_walk_forward,
)
from tradepipe.plugins.research.report import shown
from tradepipe.plugins.research.summary import sweep_document
from tradepipe.plugins.research.sweep import METRICS
from tradepipe.services.halt import halts_now


class _Bar:
    """A progress bar: replays done, running, failed, and the time left."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("replays"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, done: int, failed: int, running: int, total: int) -> None:
        state = f"{running} at the workers, {failed} failed"
        if self._task is None:
            self._task = self._progress.add_task("sweep", total=total, state=state)
        self._progress.update(self._task, completed=done + failed, total=total, state=state)


@click.command("sweep")
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    metavar="KEY=VALUES",
    help="A [strategies.*], [sizing] or [risk.*] key and its values: START:STOP:STEP "
    "(inclusive) or V1,V2,... Repeat for each key.",
)
@click.option(
    "--random", "sample", type=click.IntRange(min=1), help="Sample this many combinations."
)
@click.option("--seed", type=int, default=0, show_default=True, help="The sample's seed.")
@click.option(
    "--period",
    "periods",
    multiple=True,
    metavar="START:END",
    help="Replay only these dates (YYYY-MM-DD, end excluded; repeat for several periods).",
)
@click.option(
    "--walk-forward",
    "walk_forward",
    metavar="train=2y,test=6m[,step=6m]",
    help="Choose on each training window, trade the choice on the test window after it.",
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    help="Rank (and choose) by this metric (default: [sweep] metric).",
)
@click.option("--scheduler", metavar="ADDRESS", help="A Dask scheduler ([sweep] scheduler).")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Worker processes of a local cluster; 1: every replay in this process; 0: the "
    "first replays here, then one worker per core if the rest would take long enough "
    "([sweep] workers).",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--fresh",
    is_flag=True,
    help="Forget this sweep's results in the ledger and run every replay again.",
)
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def sweep(
    app: AppContext,
    params: tuple[str, ...],
    sample: int | None,
    seed: int,
    periods: tuple[str, ...],
    walk_forward: str | None,
    metric: str | None,
    scheduler: str | None,
    workers: int | None,
    top: int,
    fresh: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Replay the configured pipeline for every combination of --param values (or a
    --random sample), over each --period or walk-forward, on Dask; rank by --metric.

    \b
      tradepipe sweep --param strategies.sma_cross.fast=5:50:5 \\
          --param strategies.sma_cross.slow=20,30,50

    Every result goes into the ledger as it comes in; the same command run
    again (after Ctrl-C, or a crash) runs only what is missing (--fresh: all).
    """
    from tradepipe.pipeline import make_component
    from tradepipe.plugins.research.store import SweepStore
    from tradepipe.plugins.research.sweep import (
        Sweep,
        plain_settings,
        sweep_id,
        windows_for,
    )

    settings = app.settings
    app.setup_logging(file=False)
    _check_runnable(app)
    parsed = [parse_param(p) for p in params]
    combos = combinations(parsed, sample, seed)
    chosen_metric = metric or settings.sweep.metric
    spans = parse_walk_forward(walk_forward) if walk_forward else None
    if spans and periods:
        raise click.UsageError("give --period or --walk-forward, not both")
    if scheduler is not None and workers is not None:
        raise click.UsageError(
            "--workers sizes a local cluster; the scheduler given has workers of its own"
        )
    plain = plain_settings(settings)
    spec = {
        "params": [[k, [str(v) for v in values]] for k, values in parsed],
        "sample": sample,
        "seed": seed if sample else None,
        "periods": list(periods),
        "walk_forward": spans,
        "metric": chosen_metric,
    }
    sid = sweep_id(spec, plain)
    windows = windows_for(settings, app.host, spans, sid) if spans else []
    if spans and not as_json:
        _say_uncovered(app, windows, spans, sid)
    job = Sweep(
        settings=plain,
        combos=combos,
        metric=chosen_metric,
        periods=[parse_period(p) for p in periods] or [Period(None, None)],
        windows=windows,
    )
    check_sweep(app, job, sid)
    sink = make_component(app.host, settings, "sink", "sql")
    engine = sink.engine()
    store = SweepStore(engine, sid, sink.where)
    if fresh:
        store.forget()
    have = len([r for r in store.results() if not r.error])
    address = scheduler if scheduler is not None else settings.sweep.scheduler
    count = workers if workers is not None else settings.sweep.workers
    if have >= job.total:
        count, address = 1, ""  # nothing left to run: no cluster to start
    started = time.monotonic()
    try:
        runner = _runner(address, count, "--scheduler" if scheduler is not None else "", as_json)
    except BaseException:
        engine.dispose()
        raise
    try:
        if not as_json:
            where = (
                f"on the Dask scheduler at {address} of {runner.workers} worker(s)"
                if address
                else "in this process"
                if count == 1
                else "here first, then on a local Dask cluster if they prove long enough"
                if count == 0
                else f"on a local Dask cluster of {runner.workers} worker(s)"
            )
            console().print(
                f"sweep {store.sweep_id}: {len(combos)} combination(s), {job.total} replay(s)"
                + (f" ({have} in the ledger from an earlier run: not run again)" if have else "")
                + f", {where}, ranked by {chosen_metric}"
            )
        if no_progress or as_json:
            outcome = job.run(store, runner, spec)
        else:
            with _Bar() as bar:
                outcome = job.run(store, runner, spec, bar)
    except KeyboardInterrupt:
        have = len([r for r in store.results() if not r.error])
        click.echo(
            f"interrupted: {have} of {job.total} replays are in the ledger; run the same "
            "command again to go on",
            err=True,
        )
        raise SystemExit(130) from None
    finally:
        runner.close()
        engine.dispose()
    document = sweep_document(outcome, top)
    document["seconds"] = round(time.monotonic() - started, 2)
    if as_json:
        print_json(document)
        return
    print_sweep(document)


def _check_runnable(app: AppContext) -> None:
    """Refuse a sweep of a pipeline that would not replay: a real broker, or a halt.

    :raises ConfigError: saying which.
    """
    from tradepipe.pipeline import make_component

    settings = app.settings
    broker = make_component(app.host, settings, "broker", settings.run.broker)
    if not broker.simulated:
        raise ConfigError(
            f"a sweep replays on a simulator, and broker {broker.name!r} is none: "
            'sweep with [run] broker = "paper" (or --env of such settings)',
            key="run.broker",
        )
    if halts_now(settings, dt.datetime.now(dt.UTC))["halted"]:
        raise ConfigError(
            "trading is halted (`tradepipe resume` lifts it): every replay of the sweep "
            "would be denied every order",
            key="risk.halt",
        )


def _runner(address: str, count: int, given_as: str, as_json: bool) -> Any:
    """Where the replays run: this process, a local cluster, or the scheduler given."""
    from tradepipe.plugins.research.sweep import AutoRunner, DaskRunner, SerialRunner

    if count == 1 and not address:
        return SerialRunner()  # one worker: this process, no cluster to start
    if count == 0 and not address:
        # Left to tradepipe: a local cluster only once the replays show it pays.
        return AutoRunner(
            os.cpu_count() or 1,
            lambda: DaskRunner("", 0),
            None if as_json else lambda text: console().print(text),
        )
    return DaskRunner(address, count, given_as)


def _say_uncovered(app: AppContext, windows: list[Any], spans: dict[str, str], group: str) -> None:
    """Say which of the data's last days no walk-forward test window covers."""
    from tradepipe.plugins.research.sweep import data_dates

    last = data_dates(app.settings, app.host, group)[1]
    tail = windows[-1].test.end if windows else None
    if tail is not None and tail <= last:
        console().print(
            f"the bars from {tail} to {last} are in no test window: too short for another "
            f"test of {spans['test']}"
        )


def _idle(settings: Any, key: str) -> bool:
    """Whether ``key`` sets a strategy or risk filter the pipeline does not run."""
    from tradepipe.pipeline import ALWAYS_ON_FILTERS

    kind, _, rest = key.partition(".")
    name = rest.partition(".")[0]
    if kind == "strategies":
        return name not in settings.run.strategies
    if kind == "risk":
        return name not in settings.run.risk_filters and name not in ALWAYS_ON_FILTERS
    return False


def check_sweep(app: AppContext, job: Any, group: str = "") -> None:
    """Refuse before anything runs what no replay could run: the first combination's
    settings (an unknown key, a value of the wrong type), a period with no bars.

    :raises ConfigError: naming the parameter or the period.
    """
    from tradepipe.pipeline import build_pipeline
    from tradepipe.plugins.research.sweep import data_dates
    from tradepipe.plugins.research.task import with_params
    from tradepipe.settings import validate_settings

    idle = sorted({k for combo in job.combos[:1] for k in combo if _idle(app.settings, k)})
    if idle:
        run = app.settings.run
        raise ConfigError(
            f"--param {idle[0]}: the pipeline has no such component, so the value would change "
            f"nothing ([run] strategies = {run.strategies}, risk_filters = {run.risk_filters})",
            key="param",
        )
    problem = None
    # Some combinations may be refused (a fast window not shorter than the slow):
    # those fail alone. If none of the first few can be built, none can.
    for combo in job.combos[:25]:
        try:
            build_pipeline(validate_settings(with_params(job.settings, combo), "--param"), app.host)
        except ConfigError as exc:
            problem = problem or exc
            continue
        problem = None
        break
    if problem is not None:
        # The value came from --param, whatever file the settings were read from.
        text = str(problem)
        if ": [" in text:
            text = text[text.index(": [") + 2 :]
        raise ConfigError(f"--param: {text}", key="param") from None
    if any(p.start or p.end for p in job.periods):
        start, end = data_dates(app.settings, app.host, group)
        for period in job.periods:
            if (period.start and period.start > end) or (period.end and period.end <= start):
                raise ConfigError(
                    f"--period {period.label()}: the feed's bars run from {start} to {end}",
                    key="period",
                )


def print_sweep(doc: dict[str, Any], *, hint: bool = True) -> None:
    """The sweep's tables and warnings, as ``tradepipe sweep`` and ``report --sweep`` print them."""
    out = console()
    metric = doc["metric"]
    keys = doc["keys"]
    rows = [
        (
            i,
            *(str(r["params"].get(k)) for k in keys),
            r["period"],
            _num(r["metrics"].get(metric)),
            shown(r["metrics"].get("total_return"), "pct"),
            shown(r["metrics"].get("max_drawdown"), "pct"),
            r["metrics"].get("trades"),
        )
        for i, r in enumerate(doc["top"], 1)
    ]
    title = f"Sweep {doc['sweep_id']}: best {len(rows)} of {doc['ran']} by {metric}"
    if doc.get("walk_forward"):
        title = (
            f"Training runs (in sample: what chose, not what to trust), best {len(rows)} "
            f"by {metric}"
        )
    out.print(
        table(
            title,
            [
                "#",
                *[k.rsplit(".", 1)[-1] for k in keys],
                "period",
                metric,
                "return",
                "max DD",
                "trades",
            ],
            rows,
        )
    )
    if doc["failed"]:
        out.print(
            table(
                f"Failed ({len(doc['failed'])})",
                ["parameters", "period", "error"],
                [(str(f["params"]), f["period"], f["error"]) for f in doc["failed"]],
            )
        )
    for line in doc["warnings"]:
        out.print(f"[bold yellow]![/] {line}")
    wf = doc.get("walk_forward")
    if wf:
        out.print(
            table(
                "Walk-forward: chosen on each training window, traded on the test window",
                [
                    "window",
                    "train",
                    "chosen",
                    f"in-sample {metric}",
                    "test",
                    f"out-of-sample {metric}",
                ],
                [
                    (
                        w["window"],
                        w["train"],
                        params_text(w["chosen"]),
                        _num(w["in_sample"]),
                        w["test"],
                        _num(w["out_of_sample"]),
                    )
                    for w in wf["windows"]
                ],
            )
        )
        oos = wf["stitched"]
        out.print(
            "Out of sample, the test windows stitched: "
            f"return {shown(oos.get('total_return'), 'pct')}, Sharpe {_num(oos.get('sharpe'))}, "
            f"max drawdown {shown(oos.get('max_drawdown'), 'pct')}"
        )
    if hint:
        sweep_id = doc["sweep_id"]
        out.print(
            f"Sweep {Id(sweep_id)} is in the ledger: "
            f"`tradepipe report --sweep {sweep_id} --html FILE` draws it"
        )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"
