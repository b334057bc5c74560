"""Transports move raw APDU bytes to a card and back; they know nothing of framing or OpenPGP.

Two implementations: :mod:`apdu.transport.pcsc` (PC/SC through pyscard, the only module that
imports it) and :mod:`apdu.transport.loopback` (an in-process card, for the emulator). Import
them from their modules; this package only defines the interface, so importing it never loads
pyscard.

Failure contract of every transport:

- :class:`~apdu.errors.CardRemovedError` when the connection to the card is lost: the card was
  removed, reset by another process, the reader vanished or the PC/SC service went away. The
  card may have executed the command or not. :meth:`Transport.reconnect` restores the
  connection (the card's volatile state — selected application, verified PINs — is gone).
- other :class:`~apdu.errors.TransportError` subclasses for everything else (no reader, no card,
  sharing violation, service not running).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from apdu.record import Record

__all__ = ["ReaderStatus", "Transport"]


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


class ReaderStatus(Record):
    """A reader and the card in it, as seen when listing."""

    reader: str
    #: The card's ATR, or None when the reader is empty (or the card is mute).
    atr: bytes | None
    #: Another process holds the card in exclusive mode.
    exclusive: bool = False

    @property
    def present(self) -> bool:
        return self.atr is not None
