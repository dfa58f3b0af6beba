"""The OAuth tokens tradepipe obtained, in one JSON file only its owner can read.

It holds what a run would otherwise have to ask IBKR for again: the access
token of a third-party ``tradepipe auth login``, the current live session
token (OAuth 1.0a) or bearer tokens (OAuth 2.0), each with its expiry and the
fingerprint of the credentials it belongs to, so a token of other credentials
is never used. The file is created mode 0600 in a 0700 folder and replaced
atomically (temporary file, fsync, rename); its contents are never printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading

try:  # POSIX; elsewhere the in-process lock is all there is
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tradepipe.errors import ConfigError

log = logging.getLogger("tradepipe.brokers.ibkr")

FORMAT = 1


def fingerprint(*parts: str) -> str:
    """A short one-way digest naming a set of credentials (safe to store)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class AuthFile:
    """Sections of token data in ``path`` (``None``: kept in memory only)."""

    def __init__(self, path: str | Path | None, key: str = "auth_file") -> None:
        self.path = Path(path).expanduser() if path else None
        self.key = key
        self._lock = threading.Lock()
        self._memory: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        """Every section; an absent file is empty."""
        with self._lock:
            return self._read()

    def section(self, name: str) -> dict[str, Any] | None:
        value = self.read().get(name)
        return value if isinstance(value, dict) else None

    def put(self, name: str, value: dict[str, Any] | None) -> None:
        """Replace section ``name`` (``None`` removes it).

        The read-change-write is locked across processes too (an ``flock`` on a
        ``.lock`` file beside the token file), so two commands writing different
        sections at once cannot drop one of them.
        """
        with self._lock, self._file_lock():
            data = self._read()
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
            self._write(data)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.path is None or fcntl is None:
            yield
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clear(self) -> bool:
        """Forget everything; whether there was a file to delete."""
        with self._lock:
            self._memory = {}
            if self.path is None or not self.path.exists():
                return False
            self.path.unlink()
            return True

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return dict(self._memory)
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(
                f"{self.key}: cannot read the token file: {exc.strerror}", key=self.key
            ) from None
        if mode & 0o077:
            log.warning("%s was readable by others; made it owner-only (0600)", self.path)
            self.path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{self.key}: the token file {self.path} is unreadable ({type(exc).__name__}); "
                "delete it or run `tradepipe auth logout`",
                key=self.key,
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f"{self.key}: {self.path} is not a tradepipe token file of format {FORMAT}",
                key=self.key,
            )
        sections = data.get("sections")
        return dict(sections) if isinstance(sections, dict) else {}

    def _write(self, sections: dict[str, Any]) -> None:
        if self.path is None:
            self._memory = sections
            return
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        except OSError as exc:
            raise ConfigError(
                f"{self.key}: cannot write the token file in {folder}: {exc.strerror}",
                key=self.key,
            ) from None
        try:
            # mkstemp creates the file 0600 already; say so rather than rely on it.
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": FORMAT, "sections": sections}, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
