"""Integer enumerations that cost less than half a class statement to create (issue #15).

The protocol layer names about two hundred numbers (instructions, data object tags, status
words, …) as :class:`~enum.IntEnum` and :class:`~enum.IntFlag` members, and every command of
the command line imports them: on Python 3.11 a class statement spends about 7 µs per member
and 40 µs per class in :class:`~enum.EnumType`'s checks, some 3 ms of a start-up budget of a
few tens. The standard library builds its own large enumerations (``re.RegexFlag``,
``http.HTTPStatus``) with ``enum._simple_enum``, which turns an ordinary class into the same
enumeration without those checks; this module does the same, checked the same way
(tests/unit/test_enums.py and test_enums_opcard.py compare each enumeration built here with the
one a class statement builds, with ``enum._test_simple_enum`` and by behaviour: members,
values, repr, str, format, pickling, lookups, flag arithmetic, where the members are kept).

Usage — the body is an ordinary enumeration's; type checkers see an ``IntEnum``::

    @fast_enum
    class Pw(IntEnumBody):
        PW1 = 0x81
        PW1_OTHER = 0x82

The result is a real ``IntEnum`` (``IntFlag`` for :class:`IntFlagBody`): same members, values,
methods, properties and docstring (None without one, as a class statement leaves it). Values
must be unique (what ``@enum.unique`` checks: an alias raises ValueError). Without
``enum._simple_enum`` (another Python), the class is built by :class:`~enum.EnumType` itself, as
a class statement would.
"""

from __future__ import annotations

import enum
from enum import EnumType, IntEnum, IntFlag

TYPE_CHECKING = False  # typing is not imported at run time

#: The standard library's builder (private: every CPython from 3.11 to 3.14 has it; without it
#: the enumerations are built by a class statement's route).
_simple_enum: Any = getattr(enum, "_simple_enum", None)

__all__ = ["IntEnumBody", "IntFlagBody", "fast_enum"]

if TYPE_CHECKING:
    from enum import IntEnum as IntEnumBody
    from enum import IntFlag as IntFlagBody
    from typing import Any, TypeVar

    _C = TypeVar("_C", bound=type)

    def fast_enum(cls: _C) -> _C:
        """The enumeration of ``cls``'s body (see the module's documentation)."""
        return cls

else:

    class IntEnumBody:
        """Base of a class body that :func:`fast_enum` makes an ``IntEnum``."""

        _enum_type_ = IntEnum

    class IntFlagBody:
        """Base of a class body that :func:`fast_enum` makes an ``IntFlag``."""

        _enum_type_ = IntFlag

    #: The names the bases of each kind of enumeration define (IntEnum's: int, Enum, …).
    _TAKEN: dict[type, set[str]] = {}

    def fast_enum(cls: type) -> type:
        """The enumeration of ``cls``'s body (see the module's documentation)."""
        (body,) = cls.__bases__
        etype = body._enum_type_
        if _simple_enum is not None:
            enum_class = _simple_enum(etype)(cls)
        else:
            enum_class = _by_class_statement(cls, etype)
        if cls.__dict__.get("__doc__") is None:  # _simple_enum writes 'An enumeration.'
            type.__setattr__(enum_class, "__doc__", None)  # a class statement leaves none
        members: Any = enum_class.__members__
        if len(members) != len(enum_class._value2member_map_):
            aliases = ", ".join(f"{n} -> {m.name}" for n, m in members.items() if n != m.name)
            raise ValueError(f"duplicate values found in {enum_class!r}: {aliases}")
        # Each member in the class's namespace, where a class statement puts it (unless a base
        # defines that name): _simple_enum leaves a property there that looks the member up,
        # and reading Do.URL through it takes 200 ns instead of 80 (a 6E parse 10 % longer).
        taken = _TAKEN.get(etype)
        if taken is None:
            taken = _TAKEN[etype] = {name for base in etype.__mro__ for name in vars(base)}
        for name, member in members.items():
            if name not in taken:
                type.__setattr__(enum_class, name, member)
        return enum_class


def _by_class_statement(cls: type, etype: type) -> type:
    """What ``class Name(etype): <cls's body>`` creates (the slow way; the tests' reference)."""
    namespace: Any = EnumType.__prepare__(cls.__name__, (etype,))
    for name, value in cls.__dict__.items():
        if name not in ("__dict__", "__weakref__"):
            namespace[name] = value
    return EnumType(cls.__name__, (etype,), namespace)
