"""Where the command line gets its cards from: PC/SC by default, anything else in tests.

The commands never call :func:`opcard.open_card` themselves; they ask :func:`current` for the
backend. :class:`PcscBackend` is the real one. Tests (and embedders) install another backend
for the duration of a block with :func:`use_backend`, for instance one that opens an
in-process emulated card over :class:`apdu.transport.loopback.LoopbackTransport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from apdu.record import Record

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from opcard.card import Card, CardInfo
    from opcard.cli.backend_interface import Backend

__all__ = ["Backend", "PcscBackend", "ReaderEntry", "current", "use_backend"]

if not TYPE_CHECKING:  # type checkers see the import above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        # Backend is a typing.Protocol: its module imports typing, which the commands do not
        # otherwise need (PEP 562: loaded on first use).
        if name == "Backend":
            from opcard.cli.backend_interface import Backend

            globals()["Backend"] = Backend
            return Backend
        raise AttributeError(f"module 'opcard.cli.backend' has no attribute {name!r}")


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
