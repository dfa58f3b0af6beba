"""Logging: a readable console, daily-rotated files, and redaction everywhere.

Every handler tradepipe installs carries a :class:`RedactionFilter`, which
rewrites each record before it is written: secret values from the settings,
bearer tokens, OAuth parameters, cookies, ``password=``-style pairs and IBKR
account numbers (``U1234567`` → ``U***4567``) never reach a console or a file.

A record whose message the person is told another way — the error raised with
it, which the command prints — is logged with ``extra=FILE_ONLY``: it goes to
the log file, never to the console, so the console says it once.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = "tradepipe"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MASK = "[REDACTED]"

_PATTERNS = [
    # Authorization headers and bearer tokens.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    (re.compile(r'(?i)(authorization["\']?\s*[:=]\s*["\']?)[^"\',\n]+'), r"\1" + MASK),
    # Cookies.
    (re.compile(r"(?i)((?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)[^\"'\n]+"), r"\1" + MASK),
    # key=value and "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"(?i)([\"']?\b[\w-]*(?:token|secret|password|passwd|api[_-]?key|signature|"
            r"verifier|session|cookie|credential|consumer_key)[\w-]*[\"']?\s*[:=]\s*[\"']?)"
            r"([^\"'&\s,;}]+)"
        ),
        r"\1" + MASK,
    ),
]
# IBKR account ids: U…, DU…, DF…, F…, I… followed by five or more digits.
_ACCOUNT = re.compile(r"\b(D[A-Z]{1,2}|U|F|I)(\d+)(\d{4})\b")
# Secrets learnt while running (OAuth tokens): masked by every handler, present and future.
_RUNTIME_SECRETS: set[str] = set()
#: ``extra=`` for a record the console must not repeat: its message travels with an
#: error (or an answer) that whoever handles it tells the person.
FILE_ONLY = {"tradepipe_file_only": True}


def redact_accounts(text: str) -> str:
    """Mask every IBKR-style account number in ``text``."""
    return _ACCOUNT.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)


def mask_account(account_id: str | None) -> str:
    """``U1234567`` → ``U***4567``: enough to recognise, not enough to use.

    Short names that are not account numbers (``PAPER``) are shown as they are.
    """
    if not account_id:
        return "unknown account"
    masked = redact_accounts(account_id)
    if masked != account_id or not any(c.isdigit() for c in account_id):
        return masked
    return f"***{account_id[-4:]}" if len(account_id) > 4 else "***"


class RedactionFilter(logging.Filter):
    """Masks secrets and account numbers in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Mask these exact values from now on (values under 4 characters are ignored)."""
        merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return redact_accounts(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def add_secrets(values: Iterable[str]) -> None:
    """Mask these values from now on in every tradepipe handler, and in ones set up later.

    For secrets that are not in the settings: tokens an adapter obtains or
    derives while it runs.
    """
    fresh = {v for v in values if v and len(v) >= 4} - _RUNTIME_SECRETS
    if not fresh:
        return
    _RUNTIME_SECRETS.update(fresh)
    for handler in logging.getLogger(ROOT).handlers:
        for installed in handler.filters:
            if isinstance(installed, RedactionFilter):
                installed.add_secrets(fresh)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console handler: writes to whatever ``sys.stderr`` is when a record comes.

    A live run's console view redirects stderr while it draws, so messages print
    above it instead of over it; a handler holding the stream it was made with
    would write past the redirection.
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "tradepipe_file_only", False)


class _PrivateFileHandler(logging.handlers.TimedRotatingFileHandler):
    """A daily-rotated log file readable by its owner only."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


def setup_logging(
    *,
    level: str = "INFO",
    console_level: str = "WARNING",
    directory: str | Path | None = "logs",
    keep_days: int = 14,
    secrets: Iterable[str] = (),
) -> RedactionFilter:
    """Install tradepipe's handlers (replacing earlier ones); return the shared filter."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if getattr(handler, "_tradepipe", False):
            logger.removeHandler(handler)
            handler.close()
    redaction = RedactionFilter([*secrets, *_RUNTIME_SECRETS])
    console = _StderrHandler()
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    console.addFilter(_not_file_only)
    handlers: list[logging.Handler] = [console]
    if directory is not None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        file_handler = _PrivateFileHandler(
            path / "tradepipe.log",
            when="midnight",
            backupCount=keep_days,
            utc=True,
            encoding="utf-8",
        )
        file_handler.setLevel(level)
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        handlers.append(file_handler)
    for handler in handlers:
        handler.addFilter(redaction)
        handler._tradepipe = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    lowest = min(logging.getLevelName(level), logging.getLevelName(console_level))
    logger.setLevel(lowest)
    logger.propagate = False
    return redaction


class _Forward(logging.Handler):
    """Hands a record to tradepipe's handlers, each of which redacts it."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(ROOT).handle(record)


def adopt(name: str) -> None:
    """Write what library logger ``name`` (and its children) logs where tradepipe's records go.

    For a library that logs what passes through it, as uvicorn does (request
    paths with their query strings, tracebacks): otherwise its records reach
    whatever handler the root logger has, or Python's last resort on stderr,
    unredacted. Call after :func:`setup_logging`.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(h, _Forward) for h in logger.handlers):
        logger.addHandler(_Forward())
    logger.setLevel(logging.getLogger(ROOT).level)
    logger.propagate = False


def shutdown_logging() -> None:
    """Close tradepipe's handlers (files are flushed)."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if getattr(handler, "_tradepipe", False):
            logger.removeHandler(handler)
            handler.close()
