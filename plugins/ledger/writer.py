"""A separate process that writes ledger batches to SQLite or PostgreSQL.

CPython runs one thread of Python at a time, and SQLite's ``executemany`` (or
psycopg's COPY) needs that thread for every row it binds, so a writer *thread*
only adds contention. A writer *process* takes the whole cost of writing off
the pipeline's core: the pipeline serialises each batch (a fraction of a
microsecond per row) and goes on while the child commits it, and while a
database on another machine answers.

This file is both the parent's client (:class:`WriterProcess`) and the child
(run as a script). It imports only the standard library (and psycopg, for
PostgreSQL), so the child starts in a fraction of a second without loading
tradepipe.

Protocol, over the child's stdin and stdout: frames of a 4-byte little-endian
length, a codec byte and the message. Rows hold only str, int, float, bool and
None, which :mod:`marshal` encodes three times faster than :mod:`pickle`; a
message marshal cannot encode goes as a pickle instead. Both ends are the same
interpreter, so marshal's version-specific format is no concern.

Parent to child: ``("open", path, pragmas)`` (SQLite) or ``("open", keywords,
None)`` (PostgreSQL: psycopg's connection keywords, the password among them,
which go over the pipe, never on a command line), ``("write", seq, [(sql,
rows), ...], ack)``, ``("close",)``. On
PostgreSQL a statement's ``sql`` may be a :data:`Bulk` instead. Child to parent:
``("ack", seq)`` when asked, ``("error", seq, message)`` after which the child
exits, and ``("closed",)``. Each ``write`` is one transaction: it is committed
whole or not at all. If the parent dies, the child sees end of input and stops;
a frame cut short is discarded, never half applied.

The child runs in its own session and ignores SIGINT: Ctrl-C in a terminal
interrupts the pipeline, which then flushes and closes the ledger itself.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from typing import IO, Any

_HEADER = struct.Struct("<IB")
_MARSHAL, _PICKLE = 0, 1
#: How long the parent waits for the child to commit one batch.
ACK_TIMEOUT = 300.0
#: How PostgreSQL takes a large batch of one table's rows: ``("copy", COPY …)``,
#: or ``("columns", sql)``, one statement taking each column as an array.
Bulk = tuple[str, str]
Statements = list[tuple[str | Bulk, list[tuple[Any, ...]]]]


class WriterError(Exception):
    """The writer process failed or is gone; the message says why."""


def _send(stream: IO[bytes], message: Any) -> None:
    try:
        codec, payload = _MARSHAL, marshal.dumps(message)
    except ValueError:  # a type marshal does not know
        codec, payload = _PICKLE, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload), codec))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size, codec = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return marshal.loads(payload) if codec == _MARSHAL else pickle.loads(payload)


class WriterProcess:
    """The parent's handle on one writer child."""

    def __init__(self, path: str | dict[str, str | int], pragmas: list[str] | None) -> None:
        """Start a child writing to the SQLite file ``path`` with ``pragmas``, or with
        ``pragmas`` None to the PostgreSQL database psycopg reaches with the
        keywords ``path``."""
        command = [sys.executable, os.path.abspath(__file__)]
        if pragmas is not None:
            command.insert(1, "-S")  # SQLite needs nothing from site-packages
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise WriterError(f"could not start the ledger writer: {exc}") from exc
        self._seq = 0
        self._failed: str | None = None
        try:
            self._call(("open", path, pragmas))
        except BaseException:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._close_streams()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def write(self, statements: Statements, *, wait: bool) -> None:
        """Hand a batch to the child; with ``wait``, return once it is committed.

        :raises WriterError: this or an earlier batch failed, or the child is gone.
        """
        self._check()
        self._seq += 1
        self._call(("write", self._seq, statements, wait), wait=wait)

    def close(self, timeout: float = 60.0) -> None:
        """Wait for everything sent to be committed, then stop the child."""
        if self._proc.poll() is None and self._failed is None:
            with contextlib.suppress(WriterError):  # the failure is kept in _failed
                self._call(("close",), wait=True, until="closed")
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            self._fail("the ledger writer did not stop in time and was killed")
        self._close_streams()
        if self._failed:
            raise WriterError(self._failed)
        if self._proc.returncode:
            raise WriterError(f"the ledger writer exited with status {self._proc.returncode}")

    def _close_streams(self) -> None:
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def _call(self, message: Any, wait: bool = True, until: str = "ack") -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # A Ctrl-C arriving while a frame is sent is held back until the frame is
        # out (it surfaces in ``finally``), so the child never waits for the rest of
        # a cut frame and the run's last records can still be written after it.
        previous = _hold_sigint()
        try:
            _send(self._proc.stdin, message)
        except (BrokenPipeError, OSError):
            self._fail(self._death())
        except BaseException:
            # Interrupted mid-frame anyway: the child would wait for the rest of it
            # for ever. Stop it; what it committed before stays committed.
            self._abandon("the ledger writer was interrupted while receiving a batch")
            raise
        finally:
            _release_sigint(previous)
        if not wait:
            return
        stdout = self._proc.stdout
        while True:
            ready, _, _ = select.select([stdout], [], [], ACK_TIMEOUT)
            if not ready:
                self._abandon(f"the ledger writer did not answer within {ACK_TIMEOUT:.0f} s")
                raise WriterError(self._failed or "")
            reply = _receive(stdout)
            if reply is None:
                self._fail(self._death())
            if reply[0] == "error":
                self._fail(reply[2])
            if reply[0] == until and (until != "ack" or reply[1] == self._seq):
                return

    def _abandon(self, reason: str) -> None:
        self._failed = self._failed or reason
        if self._proc.poll() is None:
            self._proc.kill()

    def _check(self) -> None:
        """Surface a failure of an earlier, unacknowledged batch without blocking."""
        if self._failed:
            raise WriterError(self._failed)
        stdout = self._proc.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], 0)
        if readable:
            reply = _receive(stdout)
            if reply is None:
                self._fail(self._death())
            if reply[0] == "error":
                self._fail(reply[2])

    def _death(self) -> str:
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        detail = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
        last = detail.strip().splitlines()[-1] if detail.strip() else ""
        status = self._proc.returncode
        return f"the ledger writer stopped (status {status}){': ' + last if last else ''}"

    def _fail(self, message: str) -> None:
        self._failed = self._failed or message
        raise WriterError(self._failed)


def _hold_sigint() -> tuple[Any, list[int]] | None:
    """Hold Ctrl-C back: note it instead of raising, until :func:`_release_sigint`.

    A handler, not a signal mask: the mask is per thread, and with other threads
    alive (a broker's keep-alive) the signal would reach one of them and
    interrupt the send all the same. Python runs signal handlers in the main
    thread only, so elsewhere there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    return previous, caught


def _release_sigint(held: tuple[Any, list[int]] | None) -> None:
    """Put the previous handler back and deliver a Ctrl-C that arrived meanwhile."""
    if held is None:
        return
    previous, caught = held
    signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


def main() -> int:
    """The child: apply batches until told to close or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source = sys.stdin.buffer
    sink = sys.stdout.buffer
    conn: Any = None
    write: Any = None
    while True:
        message = _receive(source)
        if message is None:
            return 0
        kind = message[0]
        if kind == "open":
            try:
                conn, write = _open(message[1], message[2])
            except Exception as exc:  # the driver's own errors, whichever driver
                _send(sink, ("error", 0, f"{type(exc).__name__}: {exc}"))
                return 1
            _send(sink, ("ack", 0))
        elif kind == "write":
            _seq, statements, ack = message[1], message[2], message[3]
            try:
                write(conn, statements)
            except Exception as exc:  # nothing of the batch was committed
                _send(sink, ("error", _seq, f"{type(exc).__name__}: {exc}"))
                return 1
            if ack:
                _send(sink, ("ack", _seq))
        elif kind == "close":
            if conn is not None:
                conn.close()
            _send(sink, ("closed",))
            return 0


def _open(where: Any, pragmas: list[str] | None) -> tuple[Any, Any]:
    """The connection, and the function that commits one batch on it."""
    if pragmas is None:
        import psycopg  # only a PostgreSQL writer has it, or needs it

        return psycopg.connect(**where), _write_postgres
    conn = sqlite3.connect(where, isolation_level=None)
    for pragma in pragmas:
        conn.execute(pragma)
    return conn, _write_sqlite


def _write_sqlite(conn: sqlite3.Connection, statements: Statements) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        for sql, rows in statements:
            assert isinstance(sql, str)
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _write_postgres(conn: Any, statements: Statements) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        for sql, rows in statements:
            if isinstance(sql, str):
                cursor.executemany(sql, rows)
            else:
                write_bulk(cursor, sql, rows)


def write_bulk(cursor: Any, plan: Bulk, rows: list[tuple[Any, ...]]) -> None:
    """Write ``rows`` by ``plan`` with a psycopg ``cursor`` (see :data:`Bulk`)."""
    kind, sql = plan
    if kind == "columns":
        cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
        return
    with cursor.copy(sql) as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)


if __name__ == "__main__":
    sys.exit(main())
