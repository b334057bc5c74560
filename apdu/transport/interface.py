"""The :class:`Transport` interface (a :class:`typing.Protocol`), exported by
:mod:`apdu.transport`.

In a module of its own because a protocol class needs :mod:`typing` at run time (and typing
brings :mod:`re`: about 3.5 ms together), while only its users' annotations and an
``isinstance`` check need it: ``from apdu.transport import Transport`` loads this module on
first use (PEP 562), and importing :mod:`apdu.transport` (every transport does) does not.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

__all__ = ["Transport"]


@runtime_checkable
class Transport(Protocol):
    """What :class:`apdu.channel.Channel` needs of a connection to a card."""

    #: The reader name (or "loopback").
    name: str

    @property
    def atr(self) -> bytes:
        """The answer-to-reset of the connected card (cached: no I/O)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU; return the whole response including the status word."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Exclusive access to the card for the duration of the block (re-entrant)."""
        ...

    def reconnect(self) -> None:
        """Restore the connection after :class:`~apdu.errors.CardRemovedError`."""
        ...

    def close(self) -> None:
        """Release the card and the reader (idempotent)."""
        ...


# Its public home (where it was defined before it moved here): repr, pickle, documentation.
Transport.__module__ = "apdu.transport"
