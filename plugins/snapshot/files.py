"""Snapshots: an account and its market as JSON files, for dashboards and CI.

One snapshot reads the broker and writes four files into a directory,
readable by their owner only unless ``[snapshot] publish`` (see :func:`modes`),
each replaced atomically (temporary file in the same directory, fsync,
``os.replace``), so a reader sees the previous version or the new one, never
half of one:

* ``portfolio.json`` — the account summary and the positions;
* ``market-data.json`` — quotes for ``[snapshot] watchlist``;
* ``scanner-results.json`` — the ``[snapshot.scanner]`` scan (empty, with a
  ``note``, for a broker without a scanner);
* ``token-status.json`` — how the broker authenticates and whether that is
  valid now (see :class:`TokenReporter`); never a credential.

Every file starts with the same envelope (:func:`envelope`): ``schema_version``,
``generated_at`` (UTC), ``broker``, ``account`` (masked) and ``demo``. Decimals
are strings, so nothing is rounded. Before anything is written, every string in
a document is scrubbed of the settings' secret values and of account numbers.

Which broker is read — the configured one, or demo data when it cannot be
used — is :mod:`~tradepipe.plugins.snapshot.source`'s business; the files say
``demo: true`` and why when it is the demo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tradepipe import BrokerCapabilityError, BrokerError, TradepipeError, hookimpl
from tradepipe.logs import mask_account, redact_accounts
from tradepipe.services.figures import position_figures, shown
from tradepipe.services.files import write_atomic
from tradepipe.settings import SnapshotSettings

if TYPE_CHECKING:
    from tradepipe.plugins.snapshot.source import Source

log = logging.getLogger(__name__)

#: Version of the files' layout; raised when a key changes meaning or goes away.
SCHEMA_VERSION = 1
PORTFOLIO = "portfolio.json"
MARKET_DATA = "market-data.json"
SCANNER = "scanner-results.json"
TOKEN = "token-status.json"
FILES = (PORTFOLIO, MARKET_DATA, SCANNER, TOKEN)
HTML = "index.html"
#: The only keys of a broker's token status that reach ``token-status.json``.
TOKEN_KEYS = ("method", "valid", "expires_at", "last_refresh", "message")
#: The keys every file starts with (see :func:`envelope`).
ENVELOPE_KEYS = ("schema_version", "generated_at", "broker", "account", "demo", "demo_reason")
MASK = "[REDACTED]"
#: The keys holding free text, which may quote a broker's own words.
MESSAGES = ("note", "demo_reason", "message")


@runtime_checkable
class TokenReporter(Protocol):
    """A broker that can say how its credentials stand.

    ``token_status()`` returns a mapping with any of: ``method`` (e.g.
    ``"oauth1"``), ``valid`` (bool), ``expires_at`` and ``last_refresh``
    (aware datetimes or ISO text), ``message`` (one line for a person). Other
    keys are ignored, so a token can never reach a snapshot by this route. A
    broker without the method is reported as ``{"method": <its name>,
    "valid": <authenticated>}``.
    """

    def token_status(self) -> Mapping[str, Any]: ...


# -- the documents -------------------------------------------------------------------


#: JSON-ready values, as every view shows them (:func:`tradepipe.services.figures.shown`).
plain = shown


def envelope(source: Source, now: dt.datetime) -> dict[str, Any]:
    """The keys every file starts with."""
    head: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "broker": source.broker.name,
        "account": source.account,
        "demo": source.demo,
    }
    if source.demo:
        head["demo_reason"] = source.demo_reason
    return head


def portfolio(source: Source) -> dict[str, Any]:
    """``portfolio.json``'s body: the account summary (id masked) and the positions."""
    broker = source.broker
    summary = broker.account()
    positions = broker.positions()
    return {
        "summary": {**plain(summary.model_dump()), "account_id": mask_account(summary.account_id)},
        "positions": [{**plain(p.model_dump()), **position_figures(p)} for p in positions],
    }


def market_data(source: Source, watchlist: Sequence[str]) -> dict[str, Any]:
    """``market-data.json``'s body: quotes of the watchlist, and the symbols without one."""
    try:
        quotes = source.broker.quotes(list(watchlist)) if watchlist else []
    except BrokerCapabilityError as exc:
        return {"watchlist": list(watchlist), "quotes": [], "missing": [], "note": str(exc)}
    found = {q.symbol for q in quotes}
    return {
        "watchlist": list(watchlist),
        "quotes": [plain(q.model_dump()) for q in quotes],
        # IBKR answers nothing for a symbol it is still subscribing to.
        "missing": [s for s in watchlist if s not in found],
    }


def scanner_results(source: Source, snapshot: SnapshotSettings) -> dict[str, Any]:
    """``scanner-results.json``'s body: the configured scan and what it found."""
    params = snapshot.scanner.params()
    try:
        results = source.broker.scan(**params)
    except BrokerCapabilityError as exc:
        return {"scanner": plain(params), "results": [], "note": str(exc)}
    return {"scanner": plain(params), "results": plain(results)}


def token_status(source: Source) -> dict[str, Any]:
    """``token-status.json``'s body: only the :data:`TOKEN_KEYS` of the broker's report."""
    broker = source.broker
    reported: Mapping[str, Any] = {}
    if isinstance(broker, TokenReporter):
        reported = broker.token_status()
    if not reported:
        return {"method": broker.name, "valid": source.status.authenticated}
    return {key: plain(reported[key]) for key in TOKEN_KEYS if key in reported}


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Every string in ``value`` without secret values or full account numbers."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return redact_accounts(value)
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


# -- writing -------------------------------------------------------------------------


def modes(publish: bool) -> tuple[int, int]:
    """The modes of the files and of the folders a snapshot makes: its owner's only
    (0600, 0700), or, published, everyone's to read (0644, 0755)."""
    return (0o644, 0o755) if publish else (0o600, 0o700)


def make_folder(out: Path, mode: int) -> None:
    """Create ``out`` and its missing parents with ``mode`` (whatever the umask);
    folders that exist keep theirs: they are the user's.

    :raises TradepipeError: a folder cannot be made.
    """
    missing = []
    folder = out
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    try:
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, mode)
    except OSError as exc:
        raise TradepipeError(f"cannot create {out}: {exc.strerror or exc}", path=str(out)) from exc


@dataclass
class Outcome:
    """What one snapshot did."""

    generated_at: dt.datetime
    out: Path
    broker: str
    account: str | None
    demo_reason: str
    written: list[str] = field(default_factory=list)
    #: File name → why it was not written this time (the previous one stays).
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "out": str(self.out),
            "broker": self.broker,
            "account": self.account,
            "demo": bool(self.demo_reason),
            "demo_reason": self.demo_reason or None,
            "written": self.written,
            "failed": self.failed,
        }


def take_snapshot(
    source: Source,
    snapshot: SnapshotSettings,
    out: Path,
    now: dt.datetime,
    *,
    secrets: Sequence[str] = (),
    redact: Callable[[str], str] | None = None,
    html: bool = False,
) -> Outcome:
    """Read the broker and write the files into ``out``.

    A broker error while reading one file's data leaves that file as it was
    and is reported in :attr:`Outcome.failed`; the other files are still written.

    :param secrets: values that must not appear in any file (the settings' secrets).
    :param redact: applied to the free-text messages (notes, reasons), which may
        quote a broker's words: the log redaction, which also knows the
        secrets an adapter obtained while running.

    :raises TradepipeError: a file cannot be written.
    """
    file_mode, folder_mode = modes(snapshot.publish)
    make_folder(out, folder_mode)
    # Longest first, so a secret containing another is masked whole.
    hidden = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
    tell = redact or _same
    head = envelope(source, now)
    outcome = Outcome(now, out, source.broker.name, source.account, source.demo_reason)
    readers: dict[str, Callable[[], dict[str, Any]]] = {
        PORTFOLIO: lambda: portfolio(source),
        MARKET_DATA: lambda: market_data(source, snapshot.watchlist),
        SCANNER: lambda: scanner_results(source, snapshot),
        TOKEN: lambda: token_status(source),
    }
    for name, read in readers.items():
        try:
            body = read()
        except BrokerError as exc:
            log.warning("snapshot: %s not written: %s", name, exc)
            outcome.failed[name] = scrub(tell(str(exc)), hidden)
            continue
        document = scrub({**head, **body}, hidden)
        for key in MESSAGES:
            if isinstance(document.get(key), str):
                document[key] = tell(document[key])
        write_atomic(out / name, json.dumps(document, indent=2) + "\n", file_mode)
        outcome.written.append(name)
    if html:
        write_atomic(out / HTML, render(read_documents(out)), file_mode)
        outcome.written.append(HTML)
    return outcome


def render(documents: dict[str, Any]) -> str:
    """``index.html``: the dashboard page showing ``documents`` (file name → parsed JSON).

    It is the page ``tradepipe serve`` shows at ``/`` in its snapshot mode (see
    :mod:`tradepipe.plugins.dashboard.page`): the script, the styles and the
    files' contents are inside it, so opening it from disk works offline; served
    over HTTP it fetches the JSON files again on load, so a page published once
    keeps showing the latest files. Every value is inserted as text, never as
    HTML (scanner names and broker messages come from outside).
    """
    from tradepipe.plugins.dashboard.page import page

    return page("snapshot", {name: documents.get(name) for name in FILES})


def _same(text: str) -> str:
    return text


def read_documents(out: Path) -> dict[str, Any]:
    """The snapshot files now in ``out``, by name (missing or unreadable ones left out)."""
    found: dict[str, Any] = {}
    for name in FILES:
        with contextlib.suppress(OSError, ValueError):
            found[name] = json.loads((out / name).read_text(encoding="utf-8"))
    return found


@hookimpl
def tradepipe_register_commands(register: Any) -> None:
    from tradepipe.cli.lazy import LazyCommand

    register(LazyCommand("snapshot", "tradepipe.plugins.snapshot.cli:snapshot"))
