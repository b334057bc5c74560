"""Where the command line gets its cards from: PC/SC by default, anything else in tests.

The commands never call :func:`opcard.open_card` themselves; they ask :func:`current` for the
backend. :class:`PcscBackend` is the real one. Tests (and embedders) install another backend
for the duration of a block with :func:`use_backend`, for instance one that opens an
in-process emulated card over :class:`apdu.transport.loopback.LoopbackTransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from apdu.record import Record

if TYPE_CHECKING:
    from opcard.card import Card, CardInfo

__all__ = ["Backend", "PcscBackend", "ReaderEntry", "current", "use_backend"]


class ReaderEntry(Record):
    """A reader, and what is in it."""

    reader: str
    #: The card's ATR; None when the reader is empty.
    atr: bytes | None
    #: The OpenPGP card in the reader; None when empty or when the card has no OpenPGP
    #: application.
    card: CardInfo | None = None
    #: Another program holds the card exclusively (it could not be asked for its AID; PC/SC
    #: answered SCARD_E_SHARING_VIOLATION, or reports the reader in exclusive use).
    exclusive: bool = False
    #: The card did not answer when asked what it is (a stuck card or reader).
    silent: bool = False


class Backend(Protocol):
    """What the commands need: open one card, list the readers."""

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        """The card chosen by serial and/or reader (or the only one); raises
        :class:`~opcard.errors.NoCardError` / :class:`~opcard.errors.SeveralCardsError`."""
        ...

    def readers(self) -> list[ReaderEntry]:
        """Every reader with what it holds."""
        ...


class PcscBackend:
    """Cards in PC/SC readers (pcscd)."""

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        from opcard.card import open_card

        return open_card(serial=serial, reader=reader)

    def readers(self) -> list[ReaderEntry]:
        from opcard.card import scan_cards

        scan = scan_cards()
        cards = {info.reader: info for info in scan.cards}
        held = set(scan.held)
        return [
            ReaderEntry(
                s.reader,
                s.atr,
                cards.get(s.reader),
                s.reader in held or (s.exclusive and s.reader not in cards),
                s.reader in scan.silent,
            )
            for s in scan.readers
        ]


_override: Backend | None = None


def current() -> Backend:
    """The backend in use: the installed one, else PC/SC."""
    return _override if _override is not None else PcscBackend()


@contextlib.contextmanager
def use_backend(backend: Backend) -> Iterator[Backend]:
    """Use ``backend`` for every command run inside the block (restored afterwards)."""
    global _override
    previous = _override
    _override = backend
    try:
        yield backend
    finally:
        _override = previous
