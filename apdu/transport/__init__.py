"""Transports move raw APDU bytes to a card and back; they know nothing of framing or OpenPGP.

Two implementations: :mod:`apdu.transport.pcsc` (PC/SC through pyscard, the only module that
imports it) and :mod:`apdu.transport.loopback` (an in-process card, for the emulator). Import
them from their modules; this package only defines the interface (:class:`Transport`, from
:mod:`apdu.transport.interface` on first use) and :class:`ReaderStatus`, so importing it never
loads pyscard.

Failure contract of every transport:

- :class:`~apdu.errors.CardRemovedError` when the connection to the card is lost: the card was
  removed, reset by another process, the reader vanished or the PC/SC service went away. The
  card may have executed the command or not. :meth:`Transport.reconnect` restores the
  connection (the card's volatile state — selected application, verified PINs — is gone).
- other :class:`~apdu.errors.TransportError` subclasses for everything else (no reader, no card,
  sharing violation, service not running).
"""

from __future__ import annotations

from apdu.record import Record

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from apdu.transport.interface import Transport

__all__ = ["ReaderStatus", "Transport"]

if not TYPE_CHECKING:  # type checkers see the import above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        # Transport is a typing.Protocol (runtime_checkable): its module imports typing, which
        # the transports and the commands do not otherwise need (PEP 562: loaded on first use).
        if name == "Transport":
            from apdu.transport.interface import Transport

            globals()["Transport"] = Transport
            return Transport
        raise AttributeError(f"module 'apdu.transport' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Transport"})


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
