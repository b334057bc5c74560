"""apdu.record.Record behaves as ``@dataclass(frozen=True, slots=True)`` for everything the
project uses: the same classes written both ways give the same ``__init__`` behaviour, repr,
equality, hash, immutability, ``replace``, ``copy`` and ``pickle``."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest

from apdu.openpgp.objects import Aid, CaFingerprints, Fingerprints, HistoricalBytes
from apdu.record import FrozenInstanceError, Record, field, replace


class Point(Record):
    x: int
    y: bytes = b"\x00"
    note: str = field(default="", compare=False)
    secret: bytes = field(default=b"", repr=False)
    LIMIT: ClassVar[int] = 9


@dataclasses.dataclass(frozen=True, slots=True)
class DcPoint:
    x: int
    y: bytes = b"\x00"
    note: str = dataclasses.field(default="", compare=False)
    secret: bytes = dataclasses.field(default=b"", repr=False)
    LIMIT: ClassVar[int] = 9


class Derived(Record):
    raw: bytes
    length: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", len(self.raw))


CALLS = [
    ((1,), {}),
    ((1, b"a"), {}),
    ((1,), {"y": b"b", "note": "n"}),
    ((), {"x": 2, "secret": b"s"}),
    ((1, b"a", "n", b"s"), {}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_same_as_dataclass(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    r, d = Point(*args, **kwargs), DcPoint(*args, **kwargs)  # type: ignore[arg-type]
    assert repr(r) == repr(d).replace("DcPoint", "Point")
    assert [r.x, r.y, r.note, r.secret] == [d.x, d.y, d.note, d.secret]
    assert hash(r) == hash(d)
    assert r == Point(*args, **kwargs)  # type: ignore[arg-type]
    assert r == replace(r, note="other") and r != replace(r, y=b"other")
    assert r != d and r.__eq__(d) is NotImplemented
    assert Point.__match_args__ == DcPoint.__match_args__
    assert Point.LIMIT == 9 and "LIMIT" not in Point.__slots__


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, b"", "", b"", 5), {}), ((1,), {"x": 1}), ((1,), {"z": 1})],
)
def test_bad_calls_fail_as_for_a_dataclass(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        DcPoint(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Point(*args, **kwargs)  # type: ignore[arg-type]


def test_frozen_and_slotted() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'x'"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    with pytest.raises(AttributeError):
        p.other = 1
    assert not hasattr(p, "__dict__")


def test_copy_pickle_and_post_init() -> None:
    p = Point(1, b"a", "n", b"s")
    for clone in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert clone == p and clone.note == "n" and clone.secret == b"s"
    d = Derived(b"abc")
    assert d.length == 3 and repr(d) == "Derived(raw=b'abc', length=3)"
    assert replace(d, raw=b"ab").length == 2
    with pytest.raises(TypeError, match="cannot replace 'length'"):
        replace(d, length=1)


class Bag(Record):
    name: str
    items: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set, init=False, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class DcBag:
    name: str
    items: list[int] = dataclasses.field(default_factory=list)
    seen: set[int] = dataclasses.field(default_factory=set, init=False, repr=False, compare=False)


@pytest.mark.parametrize(
    ("args", "kwargs"), [(("a",), {}), (("a", [1]), {}), ((), {"name": "a", "items": [2]})]
)
def test_default_factory_as_dataclass(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    r, d = Bag(*args, **kwargs), DcBag(*args, **kwargs)  # type: ignore[arg-type]
    assert repr(r) == repr(d).replace("DcBag", "Bag")
    assert (r.name, r.items, r.seen) == (d.name, d.items, d.seen)
    other = Bag(*args, **kwargs)  # type: ignore[arg-type]
    assert r == other and r.seen is not other.seen  # a new set for each instance
    r.seen.add(1)
    assert r == other and other.seen == set()  # not compared, not shared
    assert Bag("a").items is not Bag("a").items
    assert replace(r, name="b").items is r.items  # replace passes the field on, as dataclasses
    assert Bag.__match_args__ == DcBag.__match_args__ == ("name", "items")
    with pytest.raises(TypeError):
        DcBag("a", [], set())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Bag("a", [], set())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="cannot replace 'seen'"):
        replace(r, seen=set())


def test_default_and_default_factory_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="both default and default_factory"):
        dataclasses.field(default=0, default_factory=int)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=0, default_factory=int)


def test_field_order_is_checked() -> None:
    with pytest.raises(TypeError, match="without a default"):

        class Bad(Record):
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="without a default"):

        class AlsoBad(Record):
            a: list[int] = field(default_factory=list)
            b: int  # type: ignore[misc]


def test_data_objects_are_records() -> None:
    aid = Aid.parse(bytes.fromhex("D2760001240103040006100000010000"))
    assert aid == Aid((3, 4), 6, 0x10000001, b"\x00\x00") and hash(aid) == hash(
        Aid.parse(bytes(aid))
    )
    assert repr(aid) == (
        "Aid(version=(3, 4), manufacturer=6, serial=268435457, rfu=b'\\x00\\x00', application=1)"
    )
    entries = (bytes(20),) * 3
    assert Fingerprints(entries) != CaFingerprints(entries)  # different classes, as dataclasses
    hb = HistoricalBytes(bytes.fromhex("0031c573c00140059000"))
    assert hb.well_formed and hb.card_capabilities is not None
    with pytest.raises(FrozenInstanceError):
        aid.serial = 1  # type: ignore[misc]
