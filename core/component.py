"""What every named, pluggable component has in common.

A component class has a ``name`` (how settings refer to it) and a nested
``Settings`` model (the keys its settings table accepts). The host builds the
``Settings`` from the component's table, e.g. ``[risk.min_confidence]``, and
passes it to the constructor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tradepipe.pipeline import Runtime


class ComponentSettings(BaseModel):
    """Base for a component's settings table; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """Base class of strategies, risk filters, brokers, sinks and feeds."""

    #: The name settings use to pick this component.
    name: ClassVar[str] = ""
    #: One line shown by ``tradepipe plugins``.
    description: ClassVar[str] = ""

    class Settings(ComponentSettings):
        pass

    def __init__(self, settings: ComponentSettings | None = None) -> None:
        self.settings = settings if settings is not None else type(self).Settings()

    def attach(self, runtime: Runtime) -> None:
        """Take what the run offers besides this component's settings; nothing by default.

        Called once, right after the constructor, when a pipeline is built:
        ``runtime`` holds the whole settings, the run's clock and its run.
        """
