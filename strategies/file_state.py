"""What ``decision_files`` has processed, file by file, kept across restarts.

One small JSON file (mode 0600, replaced atomically) records for each decision
file: a fingerprint of its first bytes (a replaced file is read again from the
start), the byte ``offset`` before which every entry was handled (for a
``.json`` file: its size once all its decisions were), and the keys handled
beyond it. A restarted source reads only what comes after; whatever it reads
again (a state file lost, a file rewritten) is still refused by its client
order id when ``[run] session`` is fixed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradepipe.errors import ConfigError
from tradepipe.services.files import sync_dir

log = logging.getLogger(__name__)
VERSION = 1
#: Bytes of a lines file whose hash tells a file appended to from a replaced one.
HEAD = 4096


def fingerprint(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class FileMark:
    """The progress through one decision file (see :meth:`persisted` for what is kept)."""

    fingerprint: str = ""
    head: int = 0  # how many leading bytes ``fingerprint`` covers
    offset: int = 0
    done: set[int] = field(default_factory=set)
    stat: tuple[int, int] | None = None  # (size, mtime_ns) when last read through
    # Only in memory:
    read_pos: int = 0  # lines files: bytes parsed so far
    size: int = -1  # .json files: the size of the content read
    outstanding: set[int] = field(default_factory=set)  # read, not handled yet
    #: Bumped when the file is replaced: marks for entries of the old content are void.
    generation: int = 0

    def reset(self) -> None:
        self.fingerprint, self.head, self.offset, self.read_pos, self.size = "", 0, 0, 0, -1
        self.done, self.outstanding = set(), set()
        self.generation += 1

    def persisted(self, lines: bool) -> dict[str, Any]:
        if lines:
            offset = min(self.outstanding) if self.outstanding else self.read_pos
        else:
            offset = self.size if self.size >= 0 and not self.outstanding else 0
        # With nothing outstanding, an unchanged size and time mean nothing new:
        # a restart then skips the file without reading it.
        unchanged = list(self.stat) if self.stat is not None and not self.outstanding else None
        return {
            "fingerprint": self.fingerprint,
            "head": self.head,
            "offset": offset,
            "done": sorted(k for k in self.done if not lines or k >= offset),
            "stat": unchanged,
        }


class StateFile:
    """The state of one ``decision_files`` source, in ``path``."""

    def __init__(self, path: Path, source: Path) -> None:
        self.path = path
        self.source = str(source)

    def load(self) -> dict[str, FileMark]:
        """Read the marks; a missing file is a fresh start, a damaged one an error.

        :raises ConfigError: the file cannot be read or is not a state file of
            this source (never silently reset: it would re-read everything).
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise self._damaged(str(exc)) from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise self._damaged(f"not a version {VERSION} decision_files state file")
        if data.get("source") != self.source:
            raise self._damaged(f"it belongs to {data.get('source')!r}, not {self.source!r}")
        marks = {}
        try:
            for name, mark in data["files"].items():
                marks[name] = FileMark(
                    fingerprint=str(mark["fingerprint"]),
                    head=int(mark["head"]),
                    offset=int(mark["offset"]),
                    done={int(k) for k in mark["done"]},
                    stat=_stat(mark.get("stat")),
                    read_pos=int(mark["offset"]),
                    size=int(mark["offset"]),
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._damaged(f"unreadable entry: {exc!r}") from exc
        return marks

    def save(self, marks: dict[str, tuple[FileMark, bool]]) -> None:
        """Replace the state file with ``marks`` (name -> (mark, is a lines file))."""
        files = {name: mark.persisted(lines) for name, (mark, lines) in sorted(marks.items())}
        body = json.dumps({"version": VERSION, "source": self.source, "files": files}, indent=1)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        sync_dir(self.path.parent)

    def _damaged(self, why: str) -> ConfigError:
        return ConfigError(
            f"the decision_files state file {self.path} is damaged ({why}); move it away to "
            "read every decision file again (with a fixed [run] session, decisions already "
            "executed are still refused)",
            key="strategies.decision_files.state_file",
        )


def _stat(value: Any) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else None
