"""Base class for the domain records tradepipe builds itself.

Records entering from outside (settings, decision JSON, broker replies, HTTP
bodies) are validated by pydantic as usual. Records that tradepipe's own code
derives from already-validated data (an order from a sized intent, a fill from
the simulator) are built with :meth:`Record.trusted`, which skips re-validation:
in a replay these are created per order and validation would dominate the cost.
Both paths yield ordinary pydantic models that compare, dump and serialise the
same way. Where one kind of record is built for every order of a replay,
:meth:`Record.maker` gives a constructor for it that takes the values by
position: half the cost of :meth:`~Record.trusted`.

Every record class that needs nothing of pydantic's ``__getattr__`` (no private
attributes, no extra fields) reads its fields through CPython's plain lookup
(:mod:`tradepipe.attribute_lookup`): a field costs about 7 ns to read instead of
24, and a replay reads hundreds per order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined
from tradepipe.attribute_lookup import Model

_new = object.__new__
_set = object.__setattr__


# BaseModel's own slots, set through their descriptors: cheaper than setattr.
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
#: Shared defaults from which :meth:`Record.maker` builds a record's fields from a
#: template's copy rather than a literal of every field (measured: a copy and six
#: fields set take 0.28 microseconds where a literal of twenty takes 0.69).
_COPY_FROM = 4
#: Each record class's template and factories, by class (see :meth:`Record._prepare`).
_prepared: dict[type[Any], tuple[dict[str, Any], tuple[tuple[str, Any], ...]]] = {}


class Record(Model):
    """A pydantic model with a fast constructor for trusted data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    _template: ClassVar[dict[str, Any] | None] = None
    _factories: ClassVar[tuple[tuple[str, Any], ...]] = ()

    @classmethod
    def _check_plain(cls, how: str) -> None:
        """Refuse a model the fast constructors would build wrong: they leave its
        private attributes unset and never call ``model_post_init``."""
        if cls.__private_attributes__ or cls.__pydantic_post_init__:
            raise TypeError(
                f"{cls.__name__}.{how}: a record with private attributes or model_post_init "
                "cannot be built without validation; use its constructor"
            )

    @classmethod
    def _defaults(cls) -> Iterator[tuple[str, str, Any]]:
        """Each field in declaration order with how a fast constructor fills it when not
        given: ``("required", None)``, a ``"factory"`` to call for each record, or a
        ``"value"`` to share."""
        for name, field in cls.model_fields.items():
            if field.default_factory is not None:
                yield name, "factory", field.default_factory
            elif field.default is PydanticUndefined:
                yield name, "required", None
            elif isinstance(field.default, (dict, list, set, bytearray)):
                # A mutable default must not be shared between instances
                # (pydantic copies it for validated ones too).
                yield name, "factory", partial(copy.deepcopy, field.default)
            else:
                yield name, "value", field.default

    @classmethod
    def _prepare(cls) -> dict[str, Any]:
        cls._check_plain("trusted")
        # Every field in declaration order, so trusted instances dump and
        # print exactly like validated ones; required fields hold a placeholder
        # until the caller's values overwrite them in place.
        template: dict[str, Any] = {}
        factories = []
        for name, kind, default in cls._defaults():
            template[name] = default if kind == "value" else None
            if kind == "factory":
                factories.append((name, default))
        cls._template = template
        cls._factories = tuple(factories)
        return template

    @classmethod
    def trusted(cls, **values: Any) -> Self:
        """Build an instance from values already known to be valid.

        Missing fields take their defaults. Only for data tradepipe produced from
        validated inputs; anything from outside goes through the normal
        constructor.
        """
        try:
            template, factories = _prepared[cls]
        except KeyError:
            template, factories = _prepared[cls] = (cls._prepare(), cls._factories)
        data = {**template, **values}
        if factories:
            for name, factory in factories:
                if name not in values:
                    data[name] = factory()
        obj = _new(cls)
        _set(obj, "__dict__", data)
        _set_fields_set(obj, set(values))
        _set_extra(obj, None)
        _set_private(obj, None)
        return obj

    @classmethod
    def maker(cls, *names: str) -> Callable[..., Self]:
        """A constructor for trusted data taking the values of ``names``, in that order.

        What it builds is what ``trusted(**dict(zip(names, values)))`` builds
        (fields in declaration order, the others at their defaults, ``names`` as
        the fields set), without the keyword arguments and the merging: made once
        per call site, it is called for every order. The function is generated,
        as :mod:`dataclasses` generates ``__init__``.

        :raises ValueError: a name that is no field, a field named twice, or a
            required field not named.
        :raises TypeError: the record has private attributes or ``model_post_init``.
        """
        cls._check_plain("maker")
        fields = cls.model_fields
        unknown = [name for name in names if name not in fields]
        if unknown or len(set(names)) != len(names):
            raise ValueError(
                f"{cls.__name__}.maker: {', '.join(unknown) or 'a field named twice'} "
                f"(fields: {', '.join(fields)})"
            )
        scope: dict[str, Any] = {
            "_cls": cls,
            "_new": _new,
            "_set": _set,
            "_set_fields_set": _set_fields_set,
            "_set_extra": _set_extra,
            "_set_private": _set_private,
        }
        items = []
        #: Fields a copy of the template holds as they must be: their shared defaults.
        shared: dict[str, Any] = {}
        for name, kind, default in cls._defaults():
            if name in names:
                value = f"v{names.index(name)}"
            elif kind == "required":
                raise ValueError(f"{cls.__name__}.maker: required field {name} not named")
            else:
                scope[f"d_{name}"] = default
                value = f"d_{name}()" if kind == "factory" else f"d_{name}"
                if kind == "value":
                    shared[name] = default
            items.append((name, value))
        arguments = ", ".join(f"v{i}" for i in range(len(names)))
        given = "{" + ", ".join(map(repr, names)) + "}" if names else "set()"
        if len(shared) >= _COPY_FROM:
            # Most fields at their defaults: a copy of a template in declaration
            # order, then the rest set in place, costs less than a literal of all.
            scope["_template"] = {name: shared.get(name) for name, _value in items}
            fill = "".join(
                f"    data[{name!r}] = {value}\n" for name, value in items if name not in shared
            )
            build = f"    data = _template.copy()\n{fill}    _set(obj, '__dict__', data)\n"
        else:
            literal = ", ".join(f"{name!r}: {value}" for name, value in items)
            build = f"    _set(obj, '__dict__', {{{literal}}})\n"
        source = (
            f"def make({arguments}):\n"
            "    obj = _new(_cls)\n"
            f"{build}"
            f"    _set_fields_set(obj, {given})\n"
            "    _set_extra(obj, None)\n"
            "    _set_private(obj, None)\n"
            "    return obj\n"
        )
        exec(source, scope)  # built from field names, which are identifiers
        make: Callable[..., Self] = scope["make"]
        make.__qualname__ = f"{cls.__qualname__}.make"
        make.__doc__ = f"A trusted {cls.__name__} from ({', '.join(names)})."
        return make
