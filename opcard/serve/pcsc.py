"""Cards coming and going in PC/SC readers: a monitor that attaches and detaches them.

Every ``interval`` seconds (and at once when a client operation found a card gone) the
monitor asks pcscd for the readers and the presence of their cards (SCardGetStatusChange
through :func:`apdu.transport.pcsc.list_cards`: no APDU is sent). A card that appeared is
opened (SELECT + GET DATA 6E) and attached to its slot (:class:`~opcard.serve.slots.Registry`)
when it is an OpenPGP card wanted by ``--reader`` / ``--serial``; a card that left is
detached: its token is gone, its sessions end, its login ends.

A card pulled out and put back between two looks is not seen as removed: the next operation
finds the connection reset, reconnects and re-verifies the PIN the daemon holds (as
:class:`opcard.Session` does after any card reset).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from apdu.errors import ApduError, TransportError
from apdu.transport import pcsc
from opcard.card import Card
from opcard.errors import OpcardError
from opcard.serve.slots import Registry

__all__ = ["PcscMonitor", "parse_serial"]

logger = logging.getLogger("opcard.serve")


def parse_serial(text: str) -> int:
    """A card serial as ``opcard list`` prints it (8 hex digits), or a whole AID."""
    value = text.strip().replace(" ", "")
    if len(value) == 32:
        value = value[20:28]
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"{text!r} is not a card serial (8 hex digits)") from None


class PcscMonitor:
    """Keeps ``registry`` in step with the OpenPGP cards in the PC/SC readers."""

    def __init__(
        self,
        registry: Registry,
        *,
        readers: Sequence[str] = (),
        serials: Sequence[str] = (),
        interval: float = 0.5,
    ) -> None:
        self.registry = registry
        self.readers = [r.lower() for r in readers]
        self.serials = {parse_serial(s) for s in serials}
        self.interval = interval
        #: reader → slot id of the card attached from it
        self._attached: dict[str, int] = {}
        #: reader → ATR of a card that is not served (not OpenPGP, not wanted, unusable)
        self._ignored: dict[str, bytes] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._scan_lock = threading.Lock()
        registry.on_card_lost = self.wake

    def _wanted_reader(self, name: str) -> bool:
        if not self.readers:
            return True
        low = name.lower()
        return any(low == r or r in low for r in self.readers)

    def scan(self) -> None:
        """Look at the readers once: attach new cards, detach the ones that left."""
        with self._scan_lock:
            try:
                statuses = pcsc.list_cards()
            except TransportError as e:
                logger.debug("no readers: %s", e)
                statuses = []
            present = {
                s.reader: s.atr
                for s in statuses
                if s.atr is not None and self._wanted_reader(s.reader)
            }
            for reader, slot_id in list(self._attached.items()):
                if reader not in present:
                    del self._attached[reader]
                    self.registry.detach(slot_id)
            for reader, atr in list(self._ignored.items()):
                if present.get(reader) != atr:
                    del self._ignored[reader]
            for reader, atr in present.items():
                if reader in self._attached or reader in self._ignored:
                    continue
                self._open(reader, atr)

    def _open(self, reader: str, atr: bytes) -> None:
        try:
            transport = pcsc.PcscTransport.open(reader)
        except TransportError as e:
            logger.info("cannot connect to the card in %r: %s", reader, e)
            self._ignored[reader] = atr
            return
        try:
            card = Card(transport)
        except (OpcardError, ApduError) as e:
            transport.close()
            logger.debug("the card in %r is not served: %s", reader, e)
            self._ignored[reader] = atr
            return
        if self.serials and card.aid.serial not in self.serials:
            card.close()
            logger.info("card %s in %r is not one of --serial", card.serial, reader)
            self._ignored[reader] = atr
            return
        slot = self.registry.attach(card, reader)
        self._attached[reader] = slot.slot_id

    # -- background ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the readers now (a client found a card gone)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opcard-serve-pcsc", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.scan()
