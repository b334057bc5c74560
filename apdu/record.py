"""Immutable value classes (records) that cost next to nothing to define.

``class Aid(Record): version: tuple[int, int]; serial: int; rfu: bytes = b"\\x00\\x00"``
behaves as ``@dataclass(frozen=True, slots=True)`` would: an ``__init__`` taking the fields in
order (positional or by keyword, defaults from the class body), ``__post_init__`` called after
it, equality between instances of the same class and a hash over the compared fields, the
dataclass ``repr`` (``Aid(version=(3, 4), serial=1, rfu=b'\\x00\\x00')``), assignment refused
with :class:`FrozenInstanceError` (an :class:`AttributeError`), ``__match_args__``, ``copy``
and ``pickle``. :func:`field` takes ``default``, ``default_factory``, ``init``, ``compare`` and
``repr`` as :func:`dataclasses.field` does; :func:`replace` is :func:`dataclasses.replace`.
Type checkers see records as frozen dataclasses (:func:`typing.dataclass_transform`).

Why not :mod:`dataclasses`: the decorator writes and compiles the source of every method of
every class when the module defining it is imported — about 0.6 ms per class, 20 ms for the
data objects of :mod:`apdu.openpgp.objects` alone, and the ``dataclasses`` module brings
``inspect`` — while the command line's whole budget is a few tens of milliseconds (issue #15).
A record's methods are shared, written once here; the class statement only lists the fields.
A class that builds many instances on a hot path (:class:`apdu.command.Command`) may define its
own ``__init__`` (setting the fields with ``object.__setattr__``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time (typing and its re: ~3.5 ms)

if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    # For the type checker only: at run time a bound given as a string becomes a
    # typing.ForwardRef, which compiles it, and a process's first compile() costs about 1 ms
    # (the compiler's start-up): a tenth of what the command line may spend on its imports.
    _R = TypeVar("_R", bound="Record")

__all__ = ["FrozenInstanceError", "Record", "field", "replace"]

_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """An assignment to (or deletion of) a field of a record."""


class _Field:
    __slots__ = ("compare", "default", "factory", "init", "repr")

    def __init__(
        self,
        default: Any,
        init: bool,
        compare: bool,
        repr: bool,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        self.default = default
        self.factory = factory
        self.init = init
        self.compare = compare
        self.repr = repr


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | None = None,
    init: bool = True,
    compare: bool = True,
    repr: bool = True,
) -> Any:
    """A field's options (as :func:`dataclasses.field`): ``default_factory`` is called for
    each instance that gets no value (a mutable default: a set, a lock); ``init=False`` fields
    are set by ``__post_init__`` (unless they have a default); ``compare=False`` leaves the
    field out of equality and hash, ``repr=False`` out of the repr."""
    if default is not _MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, init, compare, repr, default_factory)


def _is_classvar(annotation: object) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    # An annotation evaluated at run time (a module without ``from __future__ import
    # annotations``) that is ClassVar was made by typing, so typing is loaded already: asking
    # sys.modules keeps this module from importing it.
    typing = sys.modules.get("typing")
    if typing is None:
        return False
    classvar = typing.ClassVar
    return annotation is classvar or getattr(annotation, "__origin__", None) is classvar


class _RecordMeta(type):
    """Collects the fields from the annotations of the class body (after those of the base
    records), takes their defaults out of the namespace and makes them the ``__slots__``."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _RecordMeta:
        fields: dict[str, _Field] = {}
        for base in reversed(bases):
            fields.update(getattr(base, "__record_fields__", {}))
        slots: list[str] = []
        for attr, annotation in namespace.get("__annotations__", {}).items():
            if _is_classvar(annotation):
                continue
            value = namespace.pop(attr, _MISSING)
            spec = value if isinstance(value, _Field) else _Field(value, True, True, True)
            if attr not in fields:
                slots.append(attr)
            fields[attr] = spec
        namespace.setdefault("__slots__", tuple(slots))
        cls: Any = super().__new__(mcls, name, bases, namespace, **kwargs)
        init = tuple(n for n, f in fields.items() if f.init)
        seen_default = False
        for n in init:
            if fields[n].default is not _MISSING or fields[n].factory is not None:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{name}: field {n!r} without a default follows one with a default")
        cls.__record_fields__ = fields
        setattr(cls, "__match_args__", init)  # noqa: B010 - mypy refuses the plain assignment
        cls._record_init = init
        cls._record_defaults = {
            n: f.default for n, f in fields.items() if f.default is not _MISSING
        }
        cls._record_factories = {
            n: f.factory for n, f in fields.items() if f.init and f.factory is not None
        }
        cls._record_late = tuple(
            (n, f.default, f.factory)
            for n, f in fields.items()
            if not f.init and (f.default is not _MISSING or f.factory is not None)
        )
        cls._record_compare = tuple(n for n, f in fields.items() if f.compare)
        cls._record_repr = tuple(n for n, f in fields.items() if f.repr)
        cls._record_post_init = getattr(cls, "__post_init__", None)
        result: _RecordMeta = cls
        return result


if not TYPE_CHECKING:
    # typing.dataclass_transform only marks the class for type checkers (it sets an attribute
    # that nothing reads at run time): an identity decorator here, so that defining records
    # does not import typing (and the re it brings) into every command.
    def dataclass_transform(**_: object) -> Callable[[type], type]:
        return lambda cls: cls


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record(metaclass=_RecordMeta):
    """Base of the immutable value classes (see the module's documentation)."""

    __slots__ = ()
    __record_fields__: ClassVar[dict[str, _Field]]
    _record_init: ClassVar[tuple[str, ...]]
    _record_defaults: ClassVar[dict[str, Any]]
    _record_factories: ClassVar[dict[str, Callable[[], Any]]]
    _record_late: ClassVar[tuple[tuple[str, Any, Callable[[], Any] | None], ...]]
    _record_compare: ClassVar[tuple[str, ...]]
    _record_repr: ClassVar[tuple[str, ...]]
    _record_post_init: ClassVar[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        names = cls._record_init
        if len(args) > len(names):
            raise TypeError(
                f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} "
                "were given"
            )
        set_field = object.__setattr__
        for name, value in zip(names, args, strict=False):
            set_field(self, name, value)
        if kwargs or len(args) < len(names):
            defaults = cls._record_defaults
            for name in names[len(args) :]:
                if name in kwargs:
                    value = kwargs.pop(name)
                else:
                    value = defaults.get(name, _MISSING)
                    if value is _MISSING:
                        factory = cls._record_factories.get(name)
                        if factory is not None:
                            set_field(self, name, factory())
                            continue
                        raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
                set_field(self, name, value)
            for name in kwargs:
                if name in names:
                    raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}")
        for name, value, factory in cls._record_late:
            set_field(self, name, value if factory is None else factory())
        post_init = cls._record_post_init
        if post_init is not None:
            post_init(self)

    def _record_values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._record_compare])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._record_values() == other._record_values()

    def __hash__(self) -> int:
        return hash(self._record_values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_repr)
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__record_fields__])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__record_fields__, state, strict=True):
            object.__setattr__(self, name, value)


def replace(record: _R, /, **changes: Any) -> _R:
    """A copy of ``record`` with the fields in ``changes`` replaced (as
    :func:`dataclasses.replace`: ``__post_init__`` runs again; ``init=False`` fields cannot be
    given)."""
    cls = type(record)
    for name in changes:
        spec = cls.__record_fields__.get(name)
        if spec is None or not spec.init:
            raise TypeError(f"{cls.__name__}: cannot replace {name!r}")
    values = {name: getattr(record, name) for name in cls._record_init}
    values.update(changes)
    return cls(**values)
