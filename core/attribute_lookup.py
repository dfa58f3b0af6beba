"""Plain attribute lookup for records: what makes reading a record's field cheap.

A pydantic model class defines ``__getattr__`` (for private attributes and
extra fields). On CPython that alone makes every attribute read of every
instance go through the slower of the two lookups: the interpreter cannot
specialise reads of a type whose lookup is hooked, so a field costs about
24 ns to read instead of 7. A replay reads about 300 fields of records per
order.

A record class that has neither private attributes nor extra fields never
needs the hook: for it, pydantic's ``__getattr__`` only raises the
``AttributeError`` that the plain lookup raises (with the same message). Such
a class refuses ``extra="allow"`` when it validates (pydantic takes it for one
call), since the extra fields kept would need the hook to be read.
:func:`use_plain_lookup` gives such a class CPython's plain lookup back, by
setting the type's ``tp_getattro`` slot to ``PyObject_GenericGetAttr``, which is
what CPython itself puts there for a class without ``__getattr__``.

This touches the type object's memory, so it is done only where a check at
import proves the slot is where this module expects it: on CPython, with the
type layout of a regular (not debug, not free-threaded) build, seen on two
probe classes. Anywhere else nothing is changed and records read their fields
through pydantic's hook, as every model does; only speed differs.
"""

from __future__ import annotations

import sys
import sysconfig
from typing import Any, Self

from pydantic import BaseModel

#: The word index of ``tp_getattro`` in ``PyTypeObject`` (after the variable
#: object header's three words and fifteen fields), as in CPython's
#: ``Include/cpython/object.h`` from 3.8 on.
_GETATTRO_WORD = 18


def _slot_access() -> tuple[Any, int, int, Any] | None:
    """What :func:`use_plain_lookup` needs (ctypes, the offset of ``tp_getattro``,
    the address of ``PyObject_GenericGetAttr`` and ``PyType_Modified``), or ``None``
    when this interpreter's type objects are not laid out as expected."""
    if sys.implementation.name != "cpython" or hasattr(sys, "gettotalrefcount"):
        return None  # another implementation, or a debug build (a longer object header)
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None  # a free-threaded build: another object header
    try:
        import ctypes
    except ImportError:
        return None
    word = ctypes.sizeof(ctypes.c_void_p)
    offset = _GETATTRO_WORD * word
    type_size: int = vars(type)["__basicsize__"].__get__(type)  # a type object's size
    if type_size < offset + word:
        return None
    generic = ctypes.cast(ctypes.pythonapi.PyObject_GenericGetAttr, ctypes.c_void_p).value

    class Plain:
        pass

    class Hooked:
        def __getattr__(self, name: str) -> Any:
            raise AttributeError(name)

    def slot(cls: type) -> Any:
        return ctypes.c_void_p.from_address(id(cls) + offset).value

    # The plain class must hold the generic lookup there, the hooked one another.
    if generic is None or slot(Plain) != generic or slot(Hooked) in (generic, None):
        return None
    modified = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("PyType_Modified", ctypes.pythonapi))
    return ctypes, offset, generic, modified


_ACCESS = _slot_access()


def available() -> bool:
    """Whether this interpreter lets :func:`use_plain_lookup` change anything."""
    return _ACCESS is not None


def _own_lookup(cls: type) -> bool:
    """Whether a class in ``cls``'s ancestry, other than pydantic's ``BaseModel``, defines
    a lookup of its own (``__getattr__`` or ``__getattribute__``), which must be kept."""
    for klass in cls.__mro__:
        if klass is BaseModel or klass is object:
            continue
        if "__getattr__" in vars(klass) or "__getattribute__" in vars(klass):
            return True
    return False


def needs_hook(cls: Any) -> bool:
    """Whether pydantic's ``__getattr__`` does anything for the model class ``cls``:
    it has private attributes, allows extra fields, or has a lookup of its own."""
    return bool(
        cls.__private_attributes__ or cls.model_config.get("extra") == "allow" or _own_lookup(cls)
    )


def use_plain_lookup(cls: Any) -> bool:
    """Give the model class ``cls`` CPython's plain attribute lookup, if it does not
    need pydantic's hook and the interpreter allows it; whether it now has it.

    Called as each record class is made; a subclass made later is made with the
    hook again (CPython works the slot out from the ancestry) and is called for
    itself.
    """
    if _ACCESS is None or needs_hook(cls):
        return False
    ctypes, offset, generic, modified = _ACCESS
    ctypes.c_void_p.from_address(id(cls) + offset).value = generic
    modified(cls)  # forget what was cached about the type's lookup
    return True


def has_plain_lookup(cls: type) -> bool:
    """Whether ``cls`` reads attributes through CPython's plain lookup."""
    if _ACCESS is None:
        return False
    ctypes, offset, generic, _modified = _ACCESS
    return bool(ctypes.c_void_p.from_address(id(cls) + offset).value == generic)


def _refuse_extra(cls: Any, options: dict[str, Any]) -> None:
    # pydantic's validators take ``extra="allow"`` for one call, which would keep
    # fields the plain lookup cannot read (pydantic's hook reads them).
    if options.get("extra") == "allow" and has_plain_lookup(cls):
        raise TypeError(
            f"{cls.__name__} takes no extra fields: it declares every field it has "
            "(validate without extra='allow')"
        )


class Model(BaseModel):
    """A pydantic model whose classes get the plain lookup where they can
    (:func:`use_plain_lookup`), the base of tradepipe's records. It behaves as
    ``BaseModel`` in every other way, but for refusing ``extra="allow"`` when it
    validates (a class with the plain lookup could not read the extra fields).

    Settings and instruments stay plain ``BaseModel``: giving them the plain
    lookup too changed the churn replay's instructions by 0.04%."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        use_plain_lookup(cls)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        _refuse_extra(cls, options)
        return super().model_validate(obj, **options)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        _refuse_extra(cls, options)
        return super().model_validate_json(json_data, **options)

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Self:
        _refuse_extra(cls, options)
        return super().model_validate_strings(obj, **options)
