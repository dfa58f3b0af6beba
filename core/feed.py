"""The base class of market-data feeds."""

from __future__ import annotations

from collections.abc import Iterator

from tradepipe.component import Component
from tradepipe.market import Bar


class Feed(Component):
    """A source of bars, in time order across its symbols.

    :meth:`load` does the expensive part (reading files, generating data) so it
    can be timed and reported apart from the run; :meth:`bars` then yields.
    """

    def load(self) -> None:
        """Prepare the data. Called once before :meth:`bars`."""

    def bars(self) -> Iterator[Bar]:
        raise NotImplementedError

    def symbols(self) -> list[str]:
        raise NotImplementedError

    def total(self) -> int | None:
        """How many bars :meth:`bars` will yield, if known (for progress)."""
        return None
