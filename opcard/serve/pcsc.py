"""Cards coming and going in PC/SC readers: a monitor that attaches and detaches them.

Every ``interval`` seconds (and at once when a client operation found a card gone) the
monitor asks pcscd for the readers and the presence of their cards (SCardGetStatusChange
through :func:`apdu.transport.pcsc.reader_states`: no APDU is sent). A card that appeared is
opened (SELECT + GET DATA 6E) and attached to its slot (:class:`~opcard.serve.slots.Registry`)
when it is an OpenPGP card wanted by ``--reader`` / ``--serial``; a card that left is
detached: its token is gone, its sessions end, its login ends.

A card pulled out and put back between two looks is not seen as removed: the next operation
finds the connection reset, reconnects and re-verifies the PIN the daemon holds (as
:class:`opcard.Session` does after any card reset).

A card that another program holds exclusively (SCARD_E_SHARING_VIOLATION: GnuPG's scdaemon
without ``pcsc-shared``) is logged once, with what to do, and its reader gets a slot without a
token (:meth:`~opcard.serve.slots.Registry.hold`). While pcscd reports the reader in exclusive
use nothing is tried; as soon as it does not (``gpgconf --kill scdaemon``), the next look
connects, and the card's token appears in that slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from apdu.errors import ApduError, CardNotAnsweringError, SharingViolationError, TransportError
from apdu.transport import ReaderStatus, pcsc
from opcard.card import Card, scdaemon_running
from opcard.errors import CARD_IN_USE_REMEDY, CardInUseError, OpcardError
from opcard.serve.log import logger
from opcard.serve.slots import Registry, held_slot_id

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from opcard.serve.server import Server


__all__ = ["HELD_RETRY", "OPEN_TIMEOUT", "PcscMonitor", "parse_serial"]


#: Seconds a new card may take to answer while it is looked at (connect, SELECT, 6E); its
#: operations then have the full card timeout ($OPCARD_CARD_TIMEOUT).
OPEN_TIMEOUT = 5.0

#: Seconds between connect attempts to a held card while pcscd still reports the reader in
#: exclusive use (a PC/SC service that does not report it is still looked at this often).
HELD_RETRY = 5.0


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
        #: reader → ATR of a card held exclusively by another program (tried again when pcscd
        #: no longer reports the reader in exclusive use)
        self._held: dict[str, bytes] = {}
        #: reader → when a held card was last tried (monotonic seconds)
        self._held_tried: dict[str, float] = {}
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
                statuses = pcsc.reader_states()
            except TransportError as e:
                logger.debug("no readers: %s", e)
                statuses = []
            present: dict[str, ReaderStatus] = {
                s.reader: s for s in statuses if s.atr is not None and self._wanted_reader(s.reader)
            }
            for reader, slot_id in list(self._attached.items()):
                if reader not in present:
                    del self._attached[reader]
                    self.registry.detach(slot_id)
            for reader, atr in list(self._ignored.items()):
                if reader not in present or present[reader].atr != atr:
                    del self._ignored[reader]
            for reader, atr in list(self._held.items()):
                if reader not in present or present[reader].atr != atr:
                    self._unhold(reader)
            for reader, status in present.items():
                if reader in self._attached or reader in self._ignored:
                    continue
                if reader in self._held and status.exclusive and not self._retry_due(reader):
                    continue  # still held: no connect attempt, no log line
                assert status.atr is not None
                self._open(reader, status.atr)

    def _retry_due(self, reader: str) -> bool:
        """Try a held card now and then even while pcscd says the reader is in exclusive use
        (in case a PC/SC service does not report it: pcsc-lite does)."""
        return time.monotonic() - self._held_tried.get(reader, 0.0) >= HELD_RETRY

    @property
    def held(self) -> list[str]:
        """The readers whose card another program holds exclusively (as of the last look)."""
        with self._scan_lock:
            return list(self._held)

    def in_use_error(self) -> CardInUseError | None:
        """The :class:`CardInUseError` for the held readers (None when there are none)."""
        held = self.held
        return CardInUseError(held, scdaemon_running=scdaemon_running()) if held else None

    def _hold(self, reader: str, atr: bytes, error: TransportError) -> None:
        self._held_tried[reader] = time.monotonic()
        if reader in self._held:
            return
        self._held[reader] = atr
        running = scdaemon_running()
        logger.warning(
            "the card in %r is in exclusive use by another program (GnuPG's scdaemon holds "
            "cards this way%s): %s; it is served as soon as it is free (%s)",
            reader,
            ", and one is running for this user" if running else "",
            CARD_IN_USE_REMEDY,
            error,
        )
        self.registry.hold(reader)

    def _unhold(self, reader: str) -> None:
        del self._held[reader]
        self._held_tried.pop(reader, None)
        self.registry.release_hold(held_slot_id(reader))

    def _open(self, reader: str, atr: bytes) -> None:
        # a short bound to look at a new card: a reader stuck on another program's command
        # must not keep the monitor (other readers' cards coming and going) waiting long
        bound = pcsc.default_timeout()
        look = OPEN_TIMEOUT if bound is None else min(OPEN_TIMEOUT, bound)
        try:
            transport = pcsc.PcscTransport.open(reader, timeout=look)
        except SharingViolationError as e:
            self._hold(reader, atr, e)
            return
        except CardNotAnsweringError as e:
            logger.warning("%s: not served until it is inserted again", e)
            self._ignored[reader] = atr
            return
        except TransportError as e:
            logger.info("cannot connect to the card in %r: %s", reader, e)
            self._ignored[reader] = atr
            return
        if reader in self._held:
            del self._held[reader]
            self._held_tried.pop(reader, None)
            logger.info("the card in %r is no longer held by another program", reader)
        try:
            card = Card(transport)
        except (OpcardError, ApduError) as e:
            transport.close()
            if isinstance(e, CardNotAnsweringError) or isinstance(
                e.__cause__, CardNotAnsweringError
            ):
                logger.warning("%s: not served until it is inserted again", e)
            else:
                logger.debug("the card in %r is not served: %s", reader, e)
            self._ignored[reader] = atr
            self.registry.release_hold(held_slot_id(reader))
            return
        if self.serials and card.aid.serial not in self.serials:
            card.close()
            logger.info("card %s in %r is not one of --serial", card.serial, reader)
            self._ignored[reader] = atr
            self.registry.release_hold(held_slot_id(reader))
            return
        transport.timeout = bound  # the card's operations: the full bound
        slot = self.registry.attach(card, reader, into=held_slot_id(reader))
        self.registry.release_hold(held_slot_id(reader))  # unless the card went into it
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


def stop_serving(monitor: PcscMonitor | None, registry: Registry, server: Server | None) -> None:
    """End serving (both entries, the daemon and ``--stdio``): the monitor, then the cards —
    an operation a card does not answer is aborted after a grace period, so that no connection
    is left waiting for it — then the server."""
    if monitor is not None:
        monitor.stop()
    registry.close()
    if server is not None:
        server.stop()
