"""The :class:`Backend` interface (a :class:`typing.Protocol`), exported by
:mod:`opcard.cli.backend`.

In a module of its own because a protocol class needs :mod:`typing` at run time (and typing
brings :mod:`re`: about 3.5 ms together) while only annotations use it: ``from
opcard.cli.backend import Backend`` loads this module on first use (PEP 562), and the commands,
which import :mod:`opcard.cli.backend` for :func:`~opcard.cli.backend.current`, do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from opcard.card import Card
    from opcard.cli.backend import ReaderEntry

__all__ = ["Backend"]


class Backend(Protocol):
    """What the commands need: open one card, list the readers."""

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        """The card chosen by serial and/or reader (or the only one); raises
        :class:`~opcard.errors.NoCardError` / :class:`~opcard.errors.SeveralCardsError`."""
        ...

    def readers(self) -> list[ReaderEntry]:
        """Every reader with what it holds."""
        ...


# Its public home (where it was defined before it moved here): repr, pickle, documentation.
Backend.__module__ = "opcard.cli.backend"
