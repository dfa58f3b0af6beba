"""Settings: ``settings.toml`` + ``.secrets.toml`` + ``TRADEPIPE_*`` variables.

This is the only module that touches dynaconf. The merged result goes straight
into the pydantic :class:`AppSettings`, so a wrong key or value stops tradepipe
at start with a :class:`~tradepipe.errors.ConfigError` that names the table, the
key, the value and what was expected.

Precedence, lowest first: the ``[default]`` tables of ``settings.toml``, the
tables of the selected environment (``[development]``, ``[paper]``, ``[live]``,
…), ``.secrets.toml`` beside the settings file (same layout), then environment
variables such as ``TRADEPIPE_RUN__BROKER=client_portal`` (``__`` separates
tables). The environment is chosen with ``--env``, else ``TRADEPIPE_ENV``, else
``development``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Collection, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tradepipe.errors import ConfigError
from tradepipe.logs import mask_account

DEFAULT_ENV = "development"
SETTINGS_FILE = "settings.toml"
SECRETS_FILE = ".secrets.toml"
MASK = "********"

# Key names whose values are secret wherever they appear.
_SECRET_KEY = re.compile(
    r"(secret|token|password|passwd|passphrase|cookie|credential|api_key|private_key|"
    r"consumer_key|client_assertion|bearer|apprise)",
    re.IGNORECASE,
)
# The password in a URL's user part (``postgresql://user:pw@host/db``), as written.
# Up to the last "@" before the path: a password with "@" left unencoded is masked whole.
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/?#]*)@")
# Keys holding an account number: shown masked (U***4567), like in the logs.
_ACCOUNT_KEY = re.compile(r"(^|_)account(_id)?$", re.IGNORECASE)
# dynaconf's own options come back from as_dict(); they are not ours.
_DYNACONF_KEYS = {"load_dotenv", "environments", "envvar_prefix", "env_switcher", "merge_enabled"}
_KINDS = ("brokers", "strategies", "risk", "sinks", "feeds")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSettings(_Table):
    """``[run]``: which components a pipeline is made of."""

    broker: str = "paper"
    feed: str = "synthetic"
    strategies: list[str] = Field(default_factory=lambda: ["sma_cross"])
    risk_filters: list[str] = Field(
        default_factory=lambda: [
            "min_confidence",
            "max_position_value",
            "max_risk_per_trade",
            "buying_power",
        ]
    )
    sinks: list[str] = Field(default_factory=lambda: ["sql"])
    #: What a raising strategy does to the run: ``skip`` the event, or ``stop`` the run.
    on_strategy_error: Literal["skip", "stop"] = "skip"
    #: Namespace of client order ids. Empty: a fresh one per run (replays).
    #: Set it for a live pipeline so a restart recognises orders it already sent.
    session: str = ""
    #: Live (non-paper) accounts are refused unless this is true.
    allow_live: bool = False
    #: A replay (past bars) may send its orders to a broker that is not a simulator
    #: (e.g. an IBKR paper account used for testing): real orders at old prices.
    replay_to_broker: bool = False
    #: A pipeline whose broker session is lost (a person must log in again)
    #: waits this long for it to come back before it stops; 0 stops at once.
    session_wait_seconds: float = Field(default=1800.0, ge=0, le=86_400)
    #: At the end of a run, how long to go on asking the broker about orders
    #: that are not final yet, so the summary shows their real state.
    final_poll_seconds: float = Field(default=15.0, ge=0, le=600)
    #: How many records a sink may buffer before writing them (a replay's batches; a
    #: live run also writes every few seconds, and before each order it sends to a
    #: broker that needs its intent durable first). 20,000: measured on churn.
    batch_size: int = Field(default=20_000, ge=1, le=1_000_000)
    #: Snapshot the account and positions into the sinks at the end of every
    #: day of the feed (New York time), not only at the end of the run: the
    #: equity curve of a replay.
    daily_snapshots: bool = True
    #: ``replay`` a finished feed, or run ``live`` on a live feed until stopped.
    mode: Literal["replay", "live"] = "replay"
    #: Live: on a stop, how long orders whose sending is unclear are asked about.
    stop_timeout_seconds: float = Field(default=10.0, ge=0, le=600)
    #: Live: the exchange calendar whose hours the run trades (an
    #: ``exchange_calendars`` code such as ``XNYS``), or ``always``. Empty: the
    #: feed's default (``synthetic_live`` trades around the clock), else ``XNYS``.
    calendar: str = ""
    #: Live: the feed of a live run when ``feed`` replays history (empty: the broker's
    #: own live feed, ``ibkr_stream`` for IBKR and ``synthetic_live`` on paper).
    live_feed: str = ""
    #: Live: a decision while the market is closed is denied (``deny``), kept
    #: until the open (``queue``), or sent at once marked ``outside_rth``.
    when_closed: Literal["deny", "queue", "outside_rth"] = "deny"
    #: Live: a queued decision without ``expires_at`` expires this long after it
    #: was made (0: it waits for the next session, however far away).
    queue_max_age_seconds: float = Field(default=0.0, ge=0)
    #: Live: a sleeping run wakes this long before the open.
    wake_before_open_seconds: float = Field(default=120.0, ge=0, le=86_400)
    #: Live: the broker's daily maintenance window, when nothing is sent:
    #: ``broker`` (the broker's own; none for the paper simulator), ``""`` (none),
    #: or ``"23:45-00:45"`` with an optional time zone (default New York).
    maintenance_window: str = "broker"
    #: Live: how often strategies are asked between bars (``on_tick``: decision
    #: files and standard input, a model asked on a schedule), in seconds.
    tick_seconds: float = Field(default=1.0, ge=0.05, le=3600)
    #: Live: a price older than this (seconds) is never used to size or price an
    #: order: the decision is denied. 0: twice the feed's bar length plus 10 s
    #: (60 s for a feed without fixed bars).
    max_quote_age_seconds: float = Field(default=0.0, ge=0)
    #: Live: the status file a live run rewrites (relative to the working
    #: directory, like the halt and paper account files); empty: none.
    status_file: str = "tradepipe-status.json"
    #: Live: how often the status file is rewritten (and the console view redrawn).
    status_seconds: float = Field(default=2.0, ge=0.2, le=300)

    @field_validator("maintenance_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip() not in ("", "broker"):
            from tradepipe.schedule import Maintenance

            Maintenance.parse(value)
        return value.strip()


class SizingSettings(_Table):
    """``[sizing]``: how a decision without a quantity gets one."""

    method: Literal["fixed_quantity", "fixed_notional", "risk"] = "risk"
    quantity: Decimal = Field(default=Decimal(100), gt=0)
    notional: Decimal = Field(default=Decimal(10_000), gt=0)
    #: Fraction of equity risked per trade for ``risk`` sizing (0.01 = 1%).
    risk_fraction: Decimal = Field(default=Decimal("0.01"), gt=0, le=1)
    #: Cap on the value of one position, whatever the method says.
    max_position_value: Decimal = Field(default=Decimal(10_000), gt=0)
    #: Allow fractional quantities; otherwise sizes are rounded down to whole units.
    fractional: bool = False


class LoggingSettings(_Table):
    """``[logging]``: console output and daily log files."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    console_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    dir: str = "logs"
    file: bool = True
    keep_days: int = Field(default=14, ge=1)
    #: Log a replay's decisions, order events and fills a line each, as a live run's
    #: are. Off, a replay logs its start, its end and what went wrong: its ledger holds
    #: every record, and at ``INFO`` the lines cost three times the replay itself.
    replay_events: bool = False


class PluginSettings(_Table):
    """``[plugins]``: which installed plugins load."""

    #: Load third-party plugins found through the ``tradepipe`` entry-point group.
    autoload: bool = True
    #: Entry-point names that must not load, built-in or not.
    disabled: list[str] = Field(default_factory=list)


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
#: The shortest snapshot interval: brokers pace their market data and scanners.
MIN_EVERY = dt.timedelta(seconds=10)


def parse_duration(text: str) -> dt.timedelta:
    """``"30s"``, ``"5m"`` or ``"1h"`` as a timedelta.

    :raises ValueError: anything else, saying what is expected.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration; expected e.g. 30s, 5m or 1h")
    return dt.timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2].lower()])


class ScannerSettings(_Table):
    """``[snapshot.scanner]``: the market scanner a snapshot runs (IBKR's codes)."""

    type: str = "TOP_PERC_GAIN"
    location: str = "STK.US.MAJOR"
    instrument: str = "STK"
    #: Filters as ``CODE=VALUE``, e.g. ``["priceAbove=5"]`` (as ``broker scan --filter``).
    #: Not a table: keys of tables are read case-insensitively, IBKR's codes are not.
    filters: list[str] = Field(default_factory=list)

    @field_validator("filters")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        codes = [item.partition("=")[0].strip() for item in value]
        bad = [item for item, code in zip(value, codes, strict=True) if "=" not in item or not code]
        if bad:
            raise ValueError(f"expected CODE=VALUE items such as 'priceAbove=5', not {bad}")
        if len(set(codes)) != len(codes):
            raise ValueError("a filter code is given twice")
        return value

    def params(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`Broker.scan`."""
        filters: dict[str, str] = {}
        for item in self.filters:
            code, _, setting = item.partition("=")
            filters[code.strip()] = setting.strip()
        return {
            "type": self.type,
            "location": self.location,
            "instrument": self.instrument,
            "filters": filters,
        }


class SnapshotSettings(_Table):
    """``[snapshot]``: what ``tradepipe snapshot`` writes, where, and how often.

    A command's table rather than a component's: the snapshot is not a
    pipeline component, it reads whichever broker ``[run] broker`` names.
    """

    #: Symbols whose quotes go into ``market-data.json``.
    watchlist: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY"])
    scanner: ScannerSettings = Field(default_factory=ScannerSettings)
    #: Directory the files are written to (relative to the working directory).
    out: str = "snapshots"
    #: Keep running and write this often while the exchange is open, e.g. ``5m``;
    #: empty: write once and exit.
    every: str = ""
    #: Without a usable broker (not configured, unreachable, logged out), write
    #: the paper simulator's demo data instead, labelled ``demo: true``.
    demo_fallback: bool = True
    #: The exchange whose hours ``every`` follows (an ``exchange_calendars`` code).
    exchange: str = "XNYS"
    #: Files readable by everyone (0644, folders made 0755), for a web server to
    #: serve; false: by their owner only (0600, folders made 0700).
    publish: bool = False

    @field_validator("watchlist")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        symbols = [s.strip().upper() for s in value]
        if any(not s for s in symbols):
            raise ValueError("a watchlist symbol is empty")
        return list(dict.fromkeys(symbols))

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        if value.strip() and parse_duration(value) < MIN_EVERY:
            raise ValueError(f"{value!r} is too often; the shortest interval is 10s")
        return value.strip()

    @property
    def interval(self) -> dt.timedelta | None:
        """``every`` as a timedelta; ``None`` for one snapshot."""
        return parse_duration(self.every) if self.every else None


#: The shortest API token accepted (also ``tradepipe serve``'s check of its other sources).
MIN_API_TOKEN = 16


class ApiSettings(_Table):
    """``[api]``: ``tradepipe serve``, the REST API; its options override these.

    The token is a secret: keep it in ``.secrets.toml`` (or
    ``TRADEPIPE_API__TOKEN``), where ``tradepipe config show`` masks it.
    """

    #: The bearer token; empty: read (or create) ``token_file``.
    token: str = ""
    #: Where the token is kept; relative to the settings file's directory.
    #: Empty: ``tradepipe-api-token`` there.
    token_file: str = ""
    #: The address to bind; one other machines can reach also needs ``--allow-remote``.
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8700, ge=1, le=65535)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < MIN_API_TOKEN:
            raise ValueError(f"the token is shorter than {MIN_API_TOKEN} characters")
        return value


class TaxSettings(_Table):
    """``[tax]``: how ``tradepipe tax`` (and the API's tax routes) read the ledger's lots."""

    #: The broker reports the cost basis of these sales to the IRS (Form 1099-B
    #: box 12), as IBKR does for covered securities: Form 8949 box A or D;
    #: false: box B or E (reported on a 1099-B, basis not reported).
    basis_reported: bool = True
    #: Wash sales: a call bought on a stock replaces shares of it sold at a loss
    #: (one contract for its multiplier in shares); false: only the same symbol does.
    wash_sale_options: bool = False


class ResearchSettings(_Table):
    """``[research]``: how ``tradepipe report`` and ``tradepipe sweep`` judge runs."""

    #: A symbol of the feed to measure runs against (beta, alpha, excess return);
    #: empty: none.
    benchmark: str = ""


#: What a notification can be about (``[notify.targets.*] events``; ``*``: all).
NOTIFY_EVENTS = (
    "approval",
    "fill",
    "denial",
    "rejection",
    "unknown",
    "halt",
    "connection",
    "run",
    "daily_summary",
)


class NotifyTarget(_Table):
    """``[notify.targets.NAME]``: one place to send notifications."""

    #: The Apprise URL (``tgram://…``, ``ntfy://…``, ``mailtos://…``, ``json://…``):
    #: a secret, masked wherever it is shown; put it in ``.secrets.toml``.
    apprise: str = Field(min_length=3)
    #: Which events it gets (``*``: all of them).
    events: list[str] = Field(default_factory=lambda: ["*"])

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e != "*" and e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown event(s) {', '.join(unknown)}: one of *, {', '.join(NOTIFY_EVENTS)}"
            )
        return value


class NotifySettings(_Table):
    """``[notify]``: where notifications go, and how many."""

    targets: dict[str, NotifyTarget] = Field(default_factory=dict)
    #: Notify during replays too (off: a replay's thousands of fills reach no channel;
    #: live runs and one-off orders always notify).
    replays: bool = False
    #: Events within this many seconds of the first go out as one message.
    batch_seconds: float = Field(default=5.0, ge=0, le=3600)
    #: At most this many messages a minute to one target; the rest wait and are batched.
    max_per_minute: int = Field(default=6, ge=1, le=600)
    #: How long one send may take before it counts as failed.
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class ApprovalSettings(_Table):
    """``[approval]``: which decisions wait for a person before they are sent.

    A decision waits when any rule set here catches it (none is set by default).
    """

    #: Every decision.
    all: bool = False
    #: Rules apply on a live account only; on a paper account nothing waits.
    live_only: bool = False
    #: Orders worth more than this (quantity x price x multiplier).
    above_notional: Decimal | None = Field(default=None, gt=0)
    #: Orders of more than this many shares or contracts.
    above_quantity: Decimal | None = Field(default=None, gt=0)
    #: Decisions of these sources (strategies, ``api``, ``cli``; ``llm`` is every
    #: model it asks, ``llm:<model>`` one model).
    sources: list[str] = Field(default_factory=list)
    #: Every option or combo order.
    options: bool = False
    #: Decisions less sure than this (0-100).
    below_confidence: float | None = Field(default=None, gt=0, le=100)
    #: How long a decision waits before it expires (never past its own expires_at).
    expire_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)


class SweepSettings(_Table):
    """``[sweep]``: where ``tradepipe sweep`` runs its replays."""

    #: A Dask scheduler to run on (``tcp://host:8786``); empty: a local cluster.
    scheduler: str = ""
    #: The local cluster's worker processes; 0: one per core.
    workers: int = Field(default=0, ge=0, le=512)
    #: What a sweep ranks by and a walk-forward chooses by.
    metric: Literal[
        "sharpe",
        "sortino",
        "total_return",
        "annual_return",
        "calmar",
        "max_drawdown",
        "profit_factor",
        "win_rate",
    ] = "sharpe"


ComponentTables = dict[str, dict[str, Any]]


class AppSettings(_Table):
    """All settings of one invocation, after merging and validation."""

    env: str = DEFAULT_ENV
    path: str | None = None
    run: RunSettings = Field(default_factory=RunSettings)
    sizing: SizingSettings = Field(default_factory=SizingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    tax: TaxSettings = Field(default_factory=TaxSettings)
    research: ResearchSettings = Field(default_factory=ResearchSettings)
    sweep: SweepSettings = Field(default_factory=SweepSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    brokers: ComponentTables = Field(default_factory=dict)
    strategies: ComponentTables = Field(default_factory=dict)
    risk: ComponentTables = Field(default_factory=dict)
    sinks: ComponentTables = Field(default_factory=dict)
    feeds: ComponentTables = Field(default_factory=dict)
    #: Dotted keys whose values are secret (from ``.secrets.toml`` or by name).
    secret_keys: frozenset[str] = frozenset()
    #: Where each value set by the user came from (``run.broker`` → ``settings.toml
    #: [paper]``); what is not in it is a built-in default.
    sources: dict[str, str] = Field(default_factory=dict)

    def component_table(self, kind: str, name: str) -> dict[str, Any]:
        """The raw settings table of component ``name`` of ``kind`` (e.g. ``risk``)."""
        tables: ComponentTables = getattr(self, kind)
        return dict(tables.get(name, {}))

    def secret_values(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        found = []
        data = self.model_dump(mode="json", exclude={"secret_keys", "sources"})
        for key, value in _walk(data):
            if value not in (None, "") and not isinstance(value, bool) and self.is_secret(key):
                found.append(str(value))
            elif isinstance(value, str) and (password := _URL_PASSWORD.match(value)):
                # A URL's password, wherever the URL was set: as written and as meant.
                found += [password.group(1), unquote(password.group(1))]
        return found

    def is_secret(self, dotted: str) -> bool:
        return dotted in self.secret_keys or bool(_SECRET_KEY.search(dotted.rsplit(".", 1)[-1]))

    def masked(self) -> dict[str, Any]:
        """The merged settings as a dict, every secret value replaced by a mask."""
        data = self.model_dump(mode="json", exclude={"secret_keys", "sources"})
        return _mask(data, "", self)


def _walk(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _walk(value, dotted + ".")
        else:
            yield dotted, value


def _mask(data: Mapping[str, Any], prefix: str, settings: AppSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out[key] = _mask(value, dotted + ".", settings)
        elif value not in (None, "") and settings.is_secret(dotted):
            out[key] = MASK
        elif isinstance(value, str) and _ACCOUNT_KEY.search(key):
            out[key] = mask_account(value)
        elif isinstance(value, str) and (password := _URL_PASSWORD.match(value)):
            start, end = password.span(1)
            out[key] = value[:start] + MASK + value[end:]
        else:
            out[key] = value
    return out


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", key=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", key=str(path)) from exc


def _check_layout(declared: Mapping[str, Any], path: Path, *, secret: bool = False) -> None:
    """Refuse top-level keys and tables that dynaconf would silently ignore.

    :param secret: every value in this file is secret (``.secrets.toml``).
    """
    tables = set(AppSettings.model_fields) - {"env", "path", "secret_keys"}
    for name, value in declared.items():
        if not isinstance(value, Mapping):
            shown = MASK if secret or _SECRET_KEY.search(name) else repr(value)
            raise ConfigError(
                f"{path}: {name} = {shown}: "
                "is outside any table; expected it inside [default.<table>] or "
                "[<environment>.<table>]",
                key=name,
            )
        if name in tables:
            raise ConfigError(
                f"{path}: [{name}] is not inside an environment; expected [default.{name}] "
                f"(every environment) or [<environment>.{name}], e.g. [development.{name}]",
                key=name,
            )


def _secret_keys(secrets: dict[str, Any], env: str) -> set[str]:
    keys: set[str] = set()
    for section in ("default", env, "global"):
        table = secrets.get(section)
        if isinstance(table, Mapping):
            keys.update(k.lower() for k, _ in _walk(table))
    return keys


def load_settings(
    path: str | Path | None = None,
    env: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> AppSettings:
    """Read, merge and validate the settings.

    :param path: the settings file; ``./settings.toml`` when ``None`` (built-in
        defaults if that file does not exist). An explicit path must exist.
    :param env: the environment; ``TRADEPIPE_ENV`` or ``development`` when ``None``.
    :param overrides: tables whose keys replace the merged ones, e.g.
        ``{"run": {"broker": "paper"}}`` for ``--broker paper``.
    :raises ConfigError: for a missing file, bad TOML, an unknown environment,
        or any key or value the models refuse.
    """
    from dynaconf import Dynaconf  # imported here: this module is its only user

    explicit = path is not None
    settings_path = Path(path) if path is not None else Path(SETTINGS_FILE)
    env = (env or os.environ.get("TRADEPIPE_ENV") or DEFAULT_ENV).lower()
    files: list[str] = []
    if settings_path.exists():
        declared = _read_toml(settings_path)
        _check_layout(declared, settings_path)
        # Absolute, always: given a relative name, dynaconf searches upwards from
        # the running script's directory before the working directory, and
        # would read some other settings.toml found there.
        files.append(str(settings_path.resolve()))
    elif explicit:
        raise ConfigError(f"settings file {settings_path} does not exist", key=str(settings_path))
    else:
        declared = {}
    secrets_path = settings_path.parent / SECRETS_FILE
    secrets = _read_toml(secrets_path) if secrets_path.exists() else {}
    _check_layout(secrets, secrets_path, secret=True)
    # An environment may exist only for its secrets (e.g. [live] credentials).
    envs = sorted({*declared, *secrets} - {"default", "global"})
    if declared and env not in envs and env != DEFAULT_ENV:
        raise ConfigError(
            f"unknown environment {env!r}; {settings_path} defines: {', '.join(envs) or 'none'}",
            key="env",
        )

    # Layers, lowest first: the settings file's [default], then the environment's
    # table, then [global]; the same of .secrets.toml; environment variables;
    # the command line. Tables merge key by key; any other value (a list too)
    # replaces the one below unless the user asks to merge (dynaconf_merge).
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, data in ((settings_path.name, declared), (SECRETS_FILE, secrets)):
        for section in ("default", env, "global"):
            table = data.get(section)
            if isinstance(table, Mapping):
                _layer(raw, sources, _lower_keys(table), f"{name} [{section}]")
    variables = Dynaconf(
        settings_files=[],
        environments=False,
        envvar_prefix="TRADEPIPE",
        load_dotenv=False,
        core_loaders=[],
    )
    from_env = {
        k: v for k, v in _lower_keys(variables.as_dict()).items() if k not in _DYNACONF_KEYS
    }
    from_env.pop("env", None)  # TRADEPIPE_ENV is the switcher, not a setting
    from_env.pop("settings", None)  # TRADEPIPE_SETTINGS is the CLI's --settings
    _layer(raw, sources, from_env, "environment variable")
    _verbatim_secrets(raw)
    _layer(raw, sources, {t: dict(v) for t, v in (overrides or {}).items()}, "command line")
    raw["env"] = env
    raw["path"] = str(settings_path) if files else None
    secret_keys = _secret_keys(secrets, env)
    secret_keys.update(
        name[len("TRADEPIPE_") :].lower().replace("__", ".")
        for name in os.environ
        if name.startswith("TRADEPIPE_") and _SECRET_KEY.search(name)
    )
    raw["secret_keys"] = frozenset(secret_keys)
    raw["sources"] = sources
    return validate_settings(raw, source=str(settings_path) if files else "built-in defaults")


#: A list whose first item is this, or a table with ``dynaconf_merge = true``, adds to
#: what the layer below holds instead of replacing it (dynaconf's spelling).
MERGE = "dynaconf_merge"


def _layer(
    into: dict[str, Any],
    sources: dict[str, str],
    layer: Mapping[str, Any],
    source: str,
    prefix: str = "",
    merge_lists: bool = False,
) -> None:
    """Lay ``layer`` over ``into``: tables merge, other values replace (or, asked, merge)."""
    merge_lists = merge_lists or layer.get(MERGE) is True
    for key, value in layer.items():
        if key == MERGE:
            continue
        dotted = f"{prefix}{key}"
        below = into.get(key)
        if isinstance(value, Mapping):
            table = dict(below) if isinstance(below, Mapping) else {}
            into[key] = table
            _layer(table, sources, value, source, dotted + ".", merge_lists)
            continue
        if isinstance(value, list):
            asked = bool(value) and value[0] == MERGE
            items = value[1:] if asked else list(value)
            if (asked or merge_lists) and isinstance(below, list):
                items = [*below, *(v for v in items if v not in below)]
                source = f"{sources.get(dotted, 'built-in default')} + {source}"
            value = items
        into[key] = value
        sources[dotted] = source


def _verbatim_secrets(raw: dict[str, Any]) -> None:
    """Secrets from environment variables as they were written, never as TOML values.

    dynaconf reads a variable's value as TOML, so a hex token like ``12e45`` would
    arrive as a float and an all-digit one as an int. Secrets are strings.
    """
    for name, value in os.environ.items():
        if not name.startswith("TRADEPIPE_") or not _SECRET_KEY.search(name):
            continue
        *tables, key = name[len("TRADEPIPE_") :].lower().split("__")
        table: Any = raw
        for part in tables:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and key in table and not isinstance(table[key], str):
            table[key] = value


def validate_settings(raw: Mapping[str, Any], source: str = "settings") -> AppSettings:
    """Validate merged settings, turning the first problem into a :class:`ConfigError`."""
    try:
        return AppSettings.model_validate(raw)
    except ValidationError as exc:
        secret_keys = frozenset(raw.get("secret_keys") or ())
        raise settings_error(
            exc,
            source=source,
            model=AppSettings,
            secret_keys=secret_keys,
            sources=raw.get("sources") or {},
        ) from None


def _model_at(model: type[BaseModel], path: tuple[str, ...]) -> type[BaseModel] | None:
    for part in path:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def settings_error(
    exc: ValidationError,
    *,
    source: str,
    prefix: tuple[str, ...] = (),
    model: type[BaseModel] | None = None,
    secret_keys: Collection[str] = (),
    sources: Mapping[str, str] | None = None,
) -> ConfigError:
    """Describe a pydantic error as table, key, value and what was expected.

    The value is masked when its key is secret by name or listed in ``secret_keys``.
    ``sources`` (dotted key -> where its value came from) names an environment
    variable or the command line instead of ``source`` when the value came from one.
    """
    first = exc.errors(include_url=False)[0]
    loc = prefix + tuple(str(part) for part in first["loc"])
    if first["loc"] or not prefix:
        table = ".".join(loc[:-1])
        key = loc[-1] if loc else "?"
        where = f"[{table}] {key}" if table else key
    else:
        # A rule across several keys of one table (a model validator).
        table, key, where = ".".join(prefix), "", f"[{'.'.join(prefix)}]"
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        detail = "is not a known key"
        owner = _model_at(model, tuple(str(p) for p in first["loc"][:-1])) if model else None
        if owner is not None:
            detail += f"; expected one of: {', '.join(sorted(owner.model_fields))}"
    elif first["type"] == "missing":
        detail = "is required"
        value = None
    elif first["type"] == "value_error":
        detail = first["msg"].removeprefix("Value error, ")
    else:
        detail = f"expected {first['msg'][0].lower()}{first['msg'][1:]}"
    # A decimal as written (0.01), anything else as Python would (strings quoted).
    written = str(value) if isinstance(value, Decimal) else repr(value)
    shown = "" if value is None or isinstance(value, dict) else f" = {written}"
    dotted = ".".join(loc)
    from_secrets = any(dotted == k or dotted.startswith(k + ".") for k in secret_keys)
    if value is not None and dotted and (from_secrets or _SECRET_KEY.search(str(key))):
        shown = f" = {MASK}"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    origin = (sources or {}).get(dotted, "")
    if origin.endswith("environment variable"):
        source = "environment variable TRADEPIPE_" + "__".join(p.upper() for p in loc)
    elif origin.endswith("command line"):
        source = "command line"
    elif origin.startswith(SECRETS_FILE):
        source = str(Path(source).parent / SECRETS_FILE)
    return ConfigError(f"{source}: {where}{shown}: {detail}{tail}", key=dotted)
