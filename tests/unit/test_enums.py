"""The enumerations :func:`apdu._enums.fast_enum` builds are the ones a class statement builds.

Each module that uses it (``apdu.errors``, ``apdu.channel``, ``apdu.openpgp.constants``) is
loaded a second time, under another name, with ``fast_enum`` taking the class statement's
route (``EnumType`` itself, as ``class Do(IntEnum): …`` would); every enumeration of the real
module is then compared with its twin: ``enum._test_simple_enum`` (the standard library's own
check of its ``_simple_enum`` enumerations: class attributes, members' attributes, the
inherited methods) and by behaviour — members in order, values, names, ``repr``/``str``/
``format``, hashing, pickling, lookup by value and name, the error for an unknown value, and
for flags the arithmetic and the pseudo-members it makes.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import pickle
import sys
from collections.abc import Iterator
from enum import Enum, IntEnum, IntFlag
from types import ModuleType
from typing import Any

import pytest

import apdu._enums
from apdu._enums import IntEnumBody, IntFlagBody, fast_enum

MODULES = ("apdu.errors", "apdu.channel", "apdu.openpgp.constants")


def reference_module(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``name`` loaded again as ``reference_<name>``, its enumerations made by EnumType."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None and spec.origin is not None
    copy = importlib.util.spec_from_file_location(f"reference_{name}", spec.origin)
    assert copy is not None and copy.loader is not None
    module = importlib.util.module_from_spec(copy)
    with monkeypatch.context() as m:
        m.setattr(apdu._enums, "_simple_enum", None)
        copy.loader.exec_module(module)
    return module


def fast_enums(module: ModuleType) -> Iterator[tuple[str, type[Enum]]]:
    for name, value in vars(module).items():
        if (
            isinstance(value, enum.EnumType)
            and value.__module__ == module.__name__
            and issubclass(value, IntEnum | IntFlag)
        ):
            yield name, value


PAIRS = [
    pytest.param(module, name, id=f"{module}.{name}")
    for module in MODULES
    for name, _ in fast_enums(importlib.import_module(module))
]


def test_every_integer_enumeration_of_the_protocol_layer_is_compared() -> None:
    names = {p.values[1] for p in PAIRS}
    assert {"Sw", "Sw1", "IsoIns", "Do", "Ins", "KeySlot", "ExtendedCapability"} <= names
    assert len(PAIRS) == 2 + 1 + 21


@pytest.mark.parametrize(("module_name", "name"), PAIRS)
def test_fast_enum_equals_the_class_statement(
    module_name: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast: type[IntEnum] = getattr(importlib.import_module(module_name), name)
    ref: type[IntEnum] = getattr(reference_module(module_name, monkeypatch), name)
    assert type(ref) is enum.EnumType and ref is not fast
    # _test_simple_enum compares the class attributes that are not callable by equality, and a
    # classmethod object (one per load of the module) is not callable: same code is the test
    for attr, value in list(vars(ref).items()):
        if isinstance(value, classmethod):
            assert vars(fast)[attr].__func__.__code__ == value.__func__.__code__
            setattr(ref, attr, vars(fast)[attr])
    enum._test_simple_enum(ref, fast)  # type: ignore[attr-defined]

    base = IntFlag if issubclass(ref, IntFlag) else IntEnum
    assert issubclass(fast, base) and isinstance(fast, enum.EnumType)
    assert fast.__doc__ == ref.__doc__ and fast.__qualname__ == ref.__qualname__
    assert [(m.name, m.value) for m in fast] == [(m.name, m.value) for m in ref]
    assert list(fast.__members__) == list(ref.__members__)
    assert len(fast) == len(ref)
    for member, twin in zip(fast, ref, strict=True):
        assert repr(member) == repr(twin).replace("reference_", "")
        assert (str(member), format(member), f"{member:04X}", int(member)) == (
            str(twin),
            format(twin),
            f"{twin:04X}",
            int(twin),
        )
        assert member == twin.value and hash(member) == hash(twin.value)
        assert fast(member.value) is member and fast[member.name] is member
        assert getattr(fast, member.name) is member and member in fast
        # where the class statement keeps it: the member itself in the namespace (read at the
        # speed of a class attribute), not a property that looks it up
        assert isinstance(vars(fast)[member.name], fast) == isinstance(vars(ref)[twin.name], ref)
        assert type(member) is fast and member.__class__.__name__ == name
        assert pickle.loads(pickle.dumps(member)) is member
        # what each class defines beyond its members (properties such as KeySlot.crt)
        for attr, value in vars(ref).items():
            if isinstance(value, property) and attr not in ("name", "value"):
                assert _same(getattr(member, attr), getattr(twin, attr)), attr
    unknown = max(m.value for m in ref) * 2 + 1
    if base is IntEnum:
        with pytest.raises(ValueError) as fast_error:
            fast(unknown)
        with pytest.raises(ValueError) as ref_error:
            ref(unknown)
        assert str(fast_error.value) == str(ref_error.value).replace("reference_", "")
    else:  # flags: pseudo-members and arithmetic
        every = 0
        for member in fast:
            every |= member.value
        flags: Any = fast
        twins: Any = ref
        for value in (0, every, every | 0x100, 0x81 & every or 1):
            a, b = flags(value), twins(value)
            assert repr(a) == repr(b).replace("reference_", "")
            assert [m.name for m in a] == [m.name for m in b] and int(a) == int(b)
            assert int(~a) == int(~b) and bool(a) == bool(b)
        first, second, *_ = list(fast)
        assert repr(first | second) == repr(ref[first.name] | ref[second.name]).replace(
            "reference_", ""
        )


def _same(a: object, b: object) -> bool:
    """Equal, an enumeration member being equal to its twin (same class name and value)."""
    if isinstance(a, Enum) and isinstance(b, Enum):
        return type(a).__name__ == type(b).__name__ and a.value == b.value
    return a == b


def test_the_methods_of_an_enumeration_still_work() -> None:
    from apdu.errors import Sw
    from apdu.openpgp.constants import Do, KeySlot, Pw, Secret

    assert KeySlot.parse("aut") is KeySlot.AUT and KeySlot.parse(2) is KeySlot.DEC
    assert KeySlot.AUT.attributes_tag is Do.ALGORITHM_ATTRIBUTES_AUT
    assert KeySlot.from_attributes_tag(0xC1) is KeySlot.SIG
    assert Secret.for_pw(Pw.PW3) is Secret.PW3 and Secret.PW1.minimum_length == 6
    assert repr(Sw(0x6982)) == "<Sw.SECURITY_STATUS_NOT_SATISFIED: 27010>"
    assert f"{Do.URL:04X}" == "5F50" and str(Do.URL) == "24400"
    assert sys.modules["apdu.openpgp.constants"].Do is Do


def test_fast_enum_refuses_duplicate_values_as_unique_does() -> None:
    with pytest.raises(ValueError, match=r"duplicate values found in <enum 'Twice'>: B -> A"):

        @fast_enum
        class Twice(IntEnumBody):
            A = 1
            B = 1


def test_fast_enum_without_a_docstring_has_none_as_a_class_statement() -> None:
    @fast_enum
    class Bare(IntEnumBody):
        A = 1

    class Statement(IntEnum):
        A = 1

    assert Bare.__doc__ is None and Statement.__doc__ is None
    assert repr(Bare.A) == "<Bare.A: 1>"


def test_fast_enum_makes_flags() -> None:
    @fast_enum
    class Bits(IntFlagBody):
        """Two bits."""

        ONE = 1
        TWO = 2

    assert isinstance(Bits, enum.EnumType) and issubclass(Bits, IntFlag)
    assert Bits(3) == Bits.ONE | Bits.TWO and Bits.__doc__ == "Two bits."
    assert repr(Bits(5)) == "<Bits.ONE|4: 5>"
