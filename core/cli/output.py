"""Printing for people (rich tables) and for programs (JSON)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from tradepipe.services.figures import jsonable


def console() -> Console:
    # Built per call, on the current sys.stdout, so captured output works.
    return Console(file=sys.stdout, soft_wrap=True)


def err_console() -> Console:
    return Console(file=sys.stderr)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=jsonable))


class Id(str):
    """An id a person copies (into ``tradepipe explain``, ``broker cancel``): a table
    never wraps it across lines; the other columns shrink instead."""


def as_id(value: Any) -> Id | None:
    """``value`` as an :class:`Id` (``None`` stays ``None``: an empty cell)."""
    return None if value is None or value == "" else Id(value)


#: The narrowest a column of text is squeezed to (shorter words keep their width).
_FLOOR = 8


class _Table(Table):
    """A table never squeezed below its columns' ``min_width``: on a console too
    narrow for that it is printed wider (and the terminal wraps the lines), rather
    than folding an id or dropping a column, which rich does when it runs out of room."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        least = self._extra_width + sum(
            (column.min_width or 0) + self._get_padding_width(column._index)
            for column in self.columns
        )
        if options.max_width < least:
            options = options.update_width(least)
        return super().__rich_console__(console, options)


def add_column(out: Table, header: str, cells: Sequence[Any] = ()) -> None:
    """Add a column for ``cells`` to ``out``, never narrower than its longest :class:`Id`.

    A column of ids only is also kept out of rich's shrinking (``no_wrap``), so
    the other columns give way first; a column holding ids among other text (the
    values of a two-column table) wraps that text, never narrower than its ids.
    Other columns shrink, down to their longest word or 8 characters.
    """
    ids = [cell_len(c) for c in cells if isinstance(c, Id)]
    only_ids = bool(ids) and all(isinstance(c, Id) or c in (None, "") for c in cells)
    words = [
        cell_len(word)
        for cell in (header, *cells)
        if cell is not None and not isinstance(cell, Id)
        for word in str(cell).split()
    ]
    least = max([*ids, min(max(words, default=1), _FLOOR)])
    out.add_column(header, overflow="fold", no_wrap=only_ids, min_width=least)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table of plain text: square brackets in values are shown, not read as markup.

    Cells that are :class:`Id` are never wrapped (see :func:`add_column`).
    """
    body = [[_as_symbol(v) for v in row] for row in rows]
    out = _Table(title=escape(title), title_justify="left", show_header=any(columns))
    for i, column in enumerate(columns):
        add_column(out, escape(column), [row[i] for row in body if i < len(row)])
    for row in body:
        out.add_row(*("" if v is None else escape(str(v)) for v in row))
    return out


#: An option's OCC symbol (``SPY   261218C00590000``) or a combo's ticker
#: (``SPY X49bdc49e``): copied into commands like an id, so never wrapped either.
_CONTRACT = re.compile(r"[A-Z0-9.]{1,6} *\d{6}[CP]\d{8}|[A-Z0-9.]{1,10} X[0-9A-Fa-f]{8}")


def _as_symbol(value: Any) -> Any:
    if type(value) is str and len(value) >= 12 and _CONTRACT.fullmatch(value):
        return Id(value)
    return value


class ProgressBar:
    """A rich progress bar on stderr for a run (implements the pipeline's Progress)."""

    def __init__(self, description: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console(),
            transient=True,
        )
        self._description = description
        self._task: Any = None

    def start(self, total: int | None) -> None:
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total)

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)

    def stop(self) -> None:
        self._progress.stop()
