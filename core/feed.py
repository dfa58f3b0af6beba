"""The base class of market-data feeds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tradepipe.component import Component
from tradepipe.market import Bar


class Feed(Component):
    """A source of bars, in time order across its symbols.

    :meth:`load` does the expensive part (reading files, generating data) so it
    can be timed and reported apart from the run; :meth:`bars` then yields.
    A feed that loads everything into memory sets ``self._bars`` in
    :meth:`load` (a :class:`~tradepipe.market.BarColumns` for many bars) and
    inherits :meth:`bars` and :meth:`total`; a streaming feed overrides them.
    """

    _bars: Sequence[Bar] | None = None

    def load(self) -> None:
        """Prepare the data. Called once before :meth:`bars`."""

    def bars(self) -> Iterator[Bar]:
        if self._bars is None:
            self.load()
        if self._bars is None:
            raise NotImplementedError(f"{type(self).__name__} neither loads bars nor yields them")
        return iter(self._bars)

    def symbols(self) -> list[str]:
        raise NotImplementedError

    def total(self) -> int | None:
        """How many bars :meth:`bars` will yield, if known (for progress)."""
        return len(self._bars) if self._bars is not None else None
