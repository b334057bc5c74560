"""An in-process transport: APDUs go straight to a Python callable (the emulated card).

It behaves like a PC/SC connection in the ways the session layer cares about: a re-entrant
transaction lock, and card removal or reset that invalidates the connection until
:meth:`LoopbackTransport.reconnect`::

    t = LoopbackTransport(card.transmit, card.atr)
    t.remove()        # card pulled: transmit raises CardRemovedError, reconnect CardNotPresentError
    t.insert()        # card back: transmit still raises CardRemovedError (stale handle)
    t.reconnect()     # connected again: transmit works
    t.reset()         # another process reset the card: CardRemovedError until reconnect()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apdu.errors import CardNotPresentError, CardRemovedError, TransportError

__all__ = ["LoopbackTransport"]


class LoopbackTransport:
    """Transport to an in-process card: ``card(apdu) -> response`` (status word included)."""

    def __init__(
        self,
        card: Callable[[bytes], bytes],
        atr: bytes,
        name: str = "loopback",
        *,
        on_power: Callable[[], None] | None = None,
    ) -> None:
        """``on_power`` is called when the simulated card is reset or re-inserted (e.g. the
        emulator's ``reset``), so that its volatile state is lost as on a real card."""
        self._card = card
        self._atr = bytes(atr)
        self.name = name
        self._on_power = on_power
        self._lock = threading.RLock()
        self._present = True
        self._connected = True
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self._atr

    def _check(self) -> None:
        if self._closed:
            raise TransportError(f"transport to {self.name!r} is closed")
        if not self._present:
            raise CardRemovedError(f"the card was removed from {self.name!r}")
        if not self._connected:
            raise CardRemovedError(f"the card in {self.name!r} was reset or re-inserted")

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            self._check()
            return bytes(self._card(bytes(apdu)))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._check()
            yield

    def reconnect(self) -> None:
        with self._lock:
            if self._closed:
                raise TransportError(f"transport to {self.name!r} is closed")
            if not self._present:
                raise CardNotPresentError(f"no card in {self.name!r}")
            self._connected = True

    def close(self) -> None:
        self._closed = True

    # -- simulation -------------------------------------------------------------------------

    def remove(self) -> None:
        """Simulate pulling the card out of the reader."""
        with self._lock:
            self._present = False
            self._connected = False

    def insert(
        self, card: Callable[[bytes], bytes] | None = None, atr: bytes | None = None
    ) -> None:
        """Simulate inserting a card (the same one, or another). The connection stays stale
        until :meth:`reconnect`, as a PC/SC handle does."""
        with self._lock:
            if card is not None:
                self._card = card
            if atr is not None:
                self._atr = bytes(atr)
            self._present = True
            if self._on_power is not None:
                self._on_power()

    def reset(self) -> None:
        """Simulate another process resetting the card."""
        with self._lock:
            self._connected = False
            if self._on_power is not None:
                self._on_power()

    def __enter__(self) -> LoopbackTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LoopbackTransport({self.name!r})"
