"""Records read their fields through CPython's plain lookup, and behave as pydantic's models do.

What must hold for a user: every record reads, fails and copies as the same
model without the change would; records that need pydantic's ``__getattr__``
(private attributes, extra fields, a lookup of their own) keep it; and where
the interpreter is not laid out as expected nothing is touched.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
import types
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError
from tradepipe import attribute_lookup
from tradepipe.attribute_lookup import available, has_plain_lookup, needs_hook, use_plain_lookup
from tradepipe.record import Record

REGULAR_CPYTHON = (
    sys.implementation.name == "cpython"
    and not hasattr(sys, "gettotalrefcount")
    and not attribute_lookup.sysconfig.get_config_var("Py_GIL_DISABLED")
)


class Trade(Record):
    symbol: str
    quantity: Decimal
    note: str = ""

    @property
    def shouted(self) -> str:
        return self.symbol.upper()

    @property
    def broken(self) -> str:
        raise AttributeError("broken inside")

    def double(self) -> Decimal:
        return self.quantity * 2


class TradeAsPydantic(BaseModel):
    """The same model on pydantic's own lookup, to compare with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal
    note: str = ""

    @property
    def broken(self) -> str:
        raise AttributeError("broken inside")


def _record_classes() -> list[type[Record]]:
    # The records the core, the brokers and the plugins define.
    import tradepipe.brokers.paper.broker  # noqa: F401
    import tradepipe.pipeline  # noqa: F401
    import tradepipe.plugins.ledger.sink  # noqa: F401

    found: list[type[Record]] = []
    todo = list(Record.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("tradepipe."):
            found.append(cls)
    return found


def test_this_interpreter_allows_the_plain_lookup() -> None:
    # The development and CI interpreters are regular CPython builds: if a new
    # CPython moved the slot, this fails rather than the speed quietly going.
    assert available() is REGULAR_CPYTHON


@pytest.mark.skipif(not REGULAR_CPYTHON, reason="the plain lookup needs a regular CPython build")
def test_every_record_of_tradepipe_has_the_plain_lookup() -> None:
    classes = _record_classes()
    names = {cls.__name__ for cls in classes}
    assert {"Decision", "Order", "OrderIntent", "OrderEvent", "Fill", "RiskVerdict"} <= names
    assert [cls.__name__ for cls in classes if not has_plain_lookup(cls)] == []
    assert has_plain_lookup(Trade)
    assert not has_plain_lookup(TradeAsPydantic)


def test_reads_and_failures_are_those_of_a_pydantic_model() -> None:
    trade = Trade(symbol="abc", quantity=Decimal("2"))
    twin = TradeAsPydantic(symbol="abc", quantity=Decimal("2"))
    assert (trade.symbol, trade.quantity, trade.note) == (twin.symbol, twin.quantity, twin.note)
    assert trade.shouted == "ABC"
    assert trade.double() == Decimal(4)
    assert getattr(trade, "missing", "default") == "default"
    assert not hasattr(trade, "missing")
    assert Trade.model_fields.keys() == TradeAsPydantic.model_fields.keys()
    with pytest.raises(AttributeError) as ours:
        trade.missing  # noqa: B018
    with pytest.raises(AttributeError) as theirs:
        twin.missing  # noqa: B018
    assert str(ours.value) == "'Trade' object has no attribute 'missing'"
    assert str(theirs.value) == "'TradeAsPydantic' object has no attribute 'missing'"
    # A property that raises AttributeError says what it said, as under pydantic.
    with pytest.raises(AttributeError, match="broken inside"):
        trade.broken  # noqa: B018
    with pytest.raises(AttributeError, match="broken inside"):
        twin.broken  # noqa: B018
    with pytest.raises(ValidationError):
        trade.symbol = "other"  # type: ignore[misc]  # still frozen


def test_records_copy_dump_and_pickle_as_before() -> None:
    trade = Trade(symbol="abc", quantity=Decimal("2"), note="n")
    made = Trade.maker("symbol", "quantity")("abc", Decimal("2"))
    for other in (
        copy.copy(trade),
        copy.deepcopy(trade),
        pickle.loads(pickle.dumps(trade)),
        trade.model_copy(),
        Trade.model_validate_json(trade.model_dump_json()),
    ):
        assert other == trade
        assert other.note == "n"
    assert made.model_dump() == {"symbol": "abc", "quantity": Decimal("2"), "note": ""}
    assert made.model_fields_set == {"symbol", "quantity"}
    assert trade.model_copy(update={"note": "m"}).note == "m"


def test_a_record_subclass_made_later_gets_the_plain_lookup_too() -> None:
    class Tagged(Trade):  # as a plugin would extend a record
        tag: str = "t"

    tagged = Tagged(symbol="x", quantity=Decimal(1))
    assert (tagged.tag, tagged.shouted) == ("t", "X")
    assert has_plain_lookup(Tagged) is REGULAR_CPYTHON
    with pytest.raises(AttributeError):
        tagged.missing  # noqa: B018


def test_records_that_need_pydantics_hook_keep_it() -> None:
    class WithPrivate(Record):
        value: int
        _cache: int = PrivateAttr(default=7)

    class WithExtra(Record):
        model_config = ConfigDict(extra="allow")
        value: int

    class WithOwnLookup(Record):
        value: int

        def __getattr__(self, name: str) -> Any:
            if name == "answer":
                return 42
            return super().__getattr__(name)  # type: ignore[misc]

    private = WithPrivate(value=1)
    assert private._cache == 7
    extra = WithExtra(value=1, colour="red")  # type: ignore[call-arg]
    assert extra.colour == "red"  # type: ignore[attr-defined]
    own = WithOwnLookup(value=1)
    assert own.answer == 42  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        own.missing  # noqa: B018
    for cls in (WithPrivate, WithExtra, WithOwnLookup):
        assert needs_hook(cls)
        assert not has_plain_lookup(cls)
        assert use_plain_lookup(cls) is False


def test_nothing_is_touched_where_the_interpreter_is_not_as_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wrong slot position (the word before: tp_str) is caught by the probe.
    monkeypatch.setattr(attribute_lookup, "_GETATTRO_WORD", 17)
    assert attribute_lookup._slot_access() is None
    monkeypatch.undo()
    # Another implementation is not probed at all.
    monkeypatch.setattr(sys, "implementation", types.SimpleNamespace(name="pypy"))
    assert attribute_lookup._slot_access() is None
    monkeypatch.undo()
    # Without access, a new record keeps pydantic's lookup and works.
    monkeypatch.setattr(attribute_lookup, "_ACCESS", None)

    class Unchanged(Record):
        value: int

    assert use_plain_lookup(Unchanged) is False
    monkeypatch.undo()
    assert not has_plain_lookup(Unchanged)  # read with the real access: the hook is there
    assert Unchanged(value=3).value == 3
    with pytest.raises(AttributeError):
        Unchanged(value=3).missing  # noqa: B018


@pytest.mark.skipif(not REGULAR_CPYTHON, reason="the plain lookup needs a regular CPython build")
def test_extra_fields_asked_for_at_validation_are_refused() -> None:
    # pydantic takes extra="allow" for one validation; a record could not read them.
    data = {"symbol": "a", "quantity": "1", "colour": "red"}
    with pytest.raises(TypeError, match="takes no extra fields"):
        Trade.model_validate(data, extra="allow")
    with pytest.raises(TypeError, match="takes no extra fields"):
        Trade.model_validate_json(json.dumps(data), extra="allow")
    with pytest.raises(TypeError, match="takes no extra fields"):
        Trade.model_validate_strings(data, extra="allow")
    # Refused or ignored as the record's own setting says, as before.
    with pytest.raises(ValidationError):
        Trade.model_validate(data)
    assert Trade.model_validate(data, extra="ignore").symbol == "a"
    assert Trade.model_validate_json(json.dumps({"symbol": "a", "quantity": "1"})).symbol == "a"
