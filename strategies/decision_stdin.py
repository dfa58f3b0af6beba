"""``decision_stdin``: decision documents as JSON lines on standard input.

``my-signal-bot | tradepipe run-pipeline`` with ``[run] strategies =
["decision_stdin"]``: a background thread reads lines as they come, and each
bar hands over what arrived (a decision at the next bar of its symbol). A bad
line is rejected and recorded; the lines after it go on. With ``wait_for_eof``
the whole input is read before the first bar, for a finished file piped in
(``cat decisions.jsonl | tradepipe run-pipeline``). Standard input has no
memory: across restarts, only stable ids and a fixed ``[run] session`` keep a
decision sent again from executing twice.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Hashable, Iterator
from typing import IO, Any

from tradepipe import StrategyContext, hookimpl
from tradepipe.strategies.external import ExternalSettings, ExternalSource, Item

log = logging.getLogger(__name__)


class DecisionStdin(ExternalSource):
    """Decisions read line by line from standard input."""

    name = "decision_stdin"
    description = "decision documents as JSON lines on standard input"

    class Settings(ExternalSettings):
        #: Read all of stdin before the first bar (a finished file piped in);
        #: otherwise lines are picked up as they arrive.
        wait_for_eof: bool = False

    settings: Settings

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._line_no = 0
        self._eof = False

    def start(self, stream: IO[str] | None = None) -> None:
        """Start reading ``stream`` (default: ``sys.stdin`` as it is now)."""
        source = stream if stream is not None else sys.stdin
        self._reader = threading.Thread(
            target=_pump, args=(source, self._lines), name="decision_stdin", daemon=True
        )
        self._reader.start()

    def collect(self, ctx: StrategyContext) -> Iterator[tuple[Hashable, Item]]:
        if self._reader is None:
            self.start()
        if self._eof:
            return
        if self.settings.wait_for_eof and self._reader is not None:
            self._reader.join()
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._eof = True
                log.info("decision_stdin: end of input after %d lines", self._line_no)
                return
            self._line_no += 1
            if line.strip():
                yield self._line_no, self.parse(line)


def _pump(stream: IO[str], lines: queue.SimpleQueue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.error("decision_stdin: stopped reading standard input: %s", exc)
    finally:
        lines.put(None)  # end of input


@hookimpl
def tradepipe_register_strategies(register: Any) -> None:
    register(DecisionStdin)
