"""Base class for the domain records tradepipe builds itself.

Records entering from outside (settings, decision JSON, broker replies, HTTP
bodies) are validated by pydantic as usual. Records that tradepipe's own code
derives from already-validated data (an order from a sized intent, a fill from
the simulator) are built with :meth:`Record.trusted`, which skips re-validation:
in a replay these are created per order and validation would dominate the cost.
Both paths yield ordinary pydantic models that compare, dump and serialise the
same way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

_new = object.__new__
_set = object.__setattr__


class Record(BaseModel):
    """A pydantic model with a fast constructor for trusted data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    _static_defaults: ClassVar[dict[str, Any] | None] = None
    _factories: ClassVar[tuple[tuple[str, Any], ...]] = ()

    @classmethod
    def _prepare_defaults(cls) -> dict[str, Any]:
        static: dict[str, Any] = {}
        factories = []
        for name, field in cls.model_fields.items():
            if field.default_factory is not None:
                factories.append((name, field.default_factory))
            elif field.default is not PydanticUndefined:
                static[name] = field.default
        cls._static_defaults = static
        cls._factories = tuple(factories)
        return static

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build an instance from values already known to be valid.

        Missing fields take their defaults. Only for data tradepipe produced from
        validated inputs; anything from outside goes through the normal
        constructor.
        """
        static = cls.__dict__.get("_static_defaults")
        if static is None:
            static = cls._prepare_defaults()
        data = dict(static)
        for name, factory in cls._factories:
            if name not in values:
                data[name] = factory()
        data.update(values)
        obj = _new(cls)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj
