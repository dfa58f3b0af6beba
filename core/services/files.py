"""Files replaced atomically (small JSON state files, readable by their owner only;
any text), and how a file's path is shown to a person."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tradepipe.errors import TradepipeError


def write_private_json(path: Path, data: Any, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` as JSON: a temporary file in the same folder,
    mode 0600, (``sync``: flushed to disk), then renamed over the old one, so a
    reader sees the old version or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True, default=str)
            out.flush()
            if sync:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text``: a reader sees the old file or the new, never half.

    :param mode: the file's permissions.
    :raises TradepipeError: the file cannot be written; the old one is left as it was.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TradepipeError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise TradepipeError(
                f"cannot write {path}: {exc.strerror or exc}", path=str(path)
            ) from exc
        raise
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); best effort elsewhere."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def shown_path(path: Path) -> str:
    """``path`` as a person reads it in a message: relative to the working directory
    when it is under it, ``~/…`` under the home folder, else in full (a bare name
    could mean a file anywhere)."""
    full = Path(os.path.abspath(path.expanduser()))
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            return prefix + str(full.relative_to(os.path.abspath(base)))
        except ValueError:
            continue
    return str(full)
