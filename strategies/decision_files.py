"""``decision_files``: decisions from a JSON or JSONL file, or a folder of them.

Drop decision documents in a folder and every run picks up what is new: the
folder is scanned at most every ``scan_seconds`` (on a bar, and in a live run
between bars too), files already read
through are not read again, and a lines file that grows is read from where it
was left. Each decision executes once, even across restarts:

* its id is stable (the document's ``id``, else one derived from its content),
  so with a fixed ``[run] session`` its client order id is too, and the
  executor refuses one an earlier run already used;
* what was handled is recorded in a state file (see
  :mod:`tradepipe.strategies.file_state`) only after the executor handled it,
  so a restart reads only what is new and a crash loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Hashable, Iterator
from pathlib import Path
from typing import Any, cast

from pydantic import Field
from tradepipe import ConfigError, StrategyContext, hookimpl
from tradepipe.decision_schema import loads
from tradepipe.decisions import RejectedDecision
from tradepipe.strategies.external import ExternalSettings, ExternalSource, Item
from tradepipe.strategies.file_state import HEAD, FileMark, StateFile, fingerprint

log = logging.getLogger(__name__)
LINES = (".jsonl", ".ndjson")
SUFFIXES = (".json", *LINES)
#: Yields what was read; returns whether the file was read through (else: look again).
Reading = Generator[tuple[Hashable, Item], None, bool]


class DecisionFiles(ExternalSource):
    """Decisions read from files: ``.json`` (one object or an array), ``.jsonl`` lines."""

    name = "decision_files"
    description = "decision documents from a JSON/JSONL file or a folder, each executed once"

    class Settings(ExternalSettings):
        #: A ``.json``/``.jsonl`` file, or a folder of them (not its subfolders).
        path: str = Field(min_length=1)
        #: Look for new files and lines at most this often (seconds; 0: every bar).
        scan_seconds: float = Field(default=1.0, ge=0)
        #: A file that is not valid JSON yet may still be being written: wait this
        #: long after its last change before rejecting it.
        settle_seconds: float = Field(default=2.0, ge=0)
        #: Remember what was processed across restarts (in ``state_file``).
        remember: bool = True
        #: Where; default ``.tradepipe-state.json`` in the folder (``.<file>.state.json``
        #: beside a single file).
        state_file: str = ""

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        s = self.settings
        self.path = Path(s.path)
        if not self.path.exists():
            raise ConfigError(
                f"[strategies.decision_files] path = {s.path!r}: no such file or folder",
                key="strategies.decision_files.path",
            )
        self._folder = self.path.is_dir()
        if s.state_file:
            state_path = Path(s.state_file)
        elif self._folder:
            state_path = self.path / ".tradepipe-state.json"
        else:
            state_path = self.path.with_name(f".{self.path.name}.state.json")
        self.state = StateFile(state_path, self.path.resolve())
        self._marks: dict[str, FileMark] = self.state.load() if s.remember else {}
        self._dirty = False
        self._next_scan = 0.0
        self._monotonic = time.monotonic
        self._wall = time.time

    def attach(self, runtime: Any) -> None:
        if not runtime.settings.run.session:
            log.info(
                "decision_files: [run] session is empty; across restarts only the state file "
                "%s keeps a decision from executing twice",
                self.state.path,
            )

    # -- reading -------------------------------------------------------------------

    def collect(self, ctx: StrategyContext) -> Iterator[tuple[Hashable, Item]]:
        now = self._monotonic()
        if now < self._next_scan:
            return
        # A little early rather than a whole tick late: a live run asks about
        # once a second, and a scan due a moment after it would wait for the next.
        self._next_scan = now + self.settings.scan_seconds * 0.9
        present: set[str] = set()
        for path in self._files():
            present.add(path.name)
            try:
                yield from self._read(path)
            except OSError as exc:
                log.warning("decision_files: cannot read %s: %s", path, exc)
        for name in [n for n, m in self._marks.items() if n not in present and not m.outstanding]:
            del self._marks[name]  # moved away or deleted: forget it
            self._dirty = True

    def _files(self) -> list[Path]:
        if not self._folder:
            return [self.path]
        try:
            entries = sorted(self.path.iterdir())
        except OSError as exc:
            log.warning("decision_files: cannot list %s: %s", self.path, exc)
            return []
        return [
            p
            for p in entries
            if p.suffix in SUFFIXES and not p.name.startswith(".") and p.is_file()
        ]

    def _read(self, path: Path) -> Iterator[tuple[Hashable, Item]]:
        """Yield what is new in ``path``."""
        st = path.stat()
        stat = (st.st_size, st.st_mtime_ns)
        mark = self._marks.setdefault(path.name, FileMark())
        if mark.stat == stat:
            return
        settled = self._wall() - st.st_mtime >= self.settings.settle_seconds
        lines = path.suffix in LINES or (not self._folder and path.suffix != ".json")
        with path.open("rb") as fh:
            if lines:
                done = yield from self._read_lines(path.name, fh, mark, st.st_size, settled)
            else:
                done = yield from self._read_document(path.name, fh.read(), mark, settled)
        if done:
            mark.stat = stat

    def _read_lines(self, name: str, fh: Any, mark: FileMark, size: int, settled: bool) -> Reading:
        replaced = mark.head and fingerprint(fh.read(mark.head)) != mark.fingerprint
        if replaced or size < mark.read_pos:
            log.info("decision_files: %s was replaced; reading it from the start", name)
            mark.reset()
            self._dirty = True
        fh.seek(mark.read_pos)
        data = fh.read()
        pos = mark.read_pos
        *complete, last = data.split(b"\n")
        finished = True
        for line in complete:
            start, pos = pos, pos + len(line) + 1
            if line.strip() and start not in mark.done:
                yield self._take(name, mark, start, self._line(line))
        if last.strip():
            item = self._line(last)
            if isinstance(item, RejectedDecision) and not settled:
                finished = False  # may be a line still being written
            else:
                start, pos = pos, pos + len(last)
                if start not in mark.done:
                    yield self._take(name, mark, start, item)
        mark.read_pos = pos
        if mark.head < min(HEAD, pos):
            fh.seek(0)
            head = fh.read(min(HEAD, pos))
            mark.head, mark.fingerprint = len(head), fingerprint(head)
            self._dirty = True
        return finished

    def _line(self, line: bytes) -> Item:
        try:
            return self.parse(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return RejectedDecision(repr(line[:200]), f"not UTF-8 text: {exc}")

    def _read_document(self, name: str, data: bytes, mark: FileMark, settled: bool) -> Reading:
        digest = fingerprint(data)
        if digest != mark.fingerprint:
            if mark.fingerprint:
                log.info("decision_files: %s changed; reading it again", name)
            mark.reset()
        elif mark.offset == len(data) and not mark.outstanding:
            return True  # read through before a restart
        entries: list[tuple[int, Item]]
        try:
            raw = loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            if not settled:
                return False
            entries = [(0, RejectedDecision(_text(data), f"not valid JSON: {exc}"))]
        else:
            values = raw if isinstance(raw, list) else [raw]
            entries = [(i, self.read(value)) for i, value in enumerate(values)]
        mark.fingerprint, mark.head, mark.size = digest, len(data), len(data)
        self._dirty = True
        for key, item in entries:
            if key not in mark.done:
                yield self._take(name, mark, key, item)
        return True

    def _take(self, name: str, mark: FileMark, key: int, item: Item) -> tuple[Hashable, Item]:
        mark.outstanding.add(key)
        return (name, mark.generation, key), item

    # -- marking ---------------------------------------------------------------------

    def handled(self, token: Hashable) -> None:
        name, generation, key = cast(tuple[str, int, int], token)
        mark = self._marks.get(name)
        if mark is not None and mark.generation == generation:
            mark.outstanding.discard(key)
            mark.done.add(key)
            self._dirty = True

    def commit(self) -> None:
        if not (self._dirty and self.settings.remember):
            return
        lines = not self._folder and self.path.suffix != ".json"
        marks = {n: (m, lines or Path(n).suffix in LINES) for n, m in self._marks.items()}
        try:
            self.state.save(marks)
            self._dirty = False
        except OSError as exc:
            # Not fatal: a decision read again is still refused by its client order id.
            log.error("decision_files: cannot write the state file %s: %s", self.state.path, exc)


def _text(data: bytes) -> str:
    return data[:2000].decode("utf-8", errors="replace")


@hookimpl
def tradepipe_register_strategies(register: Any) -> None:
    register(DecisionFiles)
