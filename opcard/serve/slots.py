"""The cards the server serves: one PKCS#11 slot per card, shared by every client.

A :class:`Slot` holds the card (an :class:`opcard.Card`), the daemon's one
:class:`opcard.Session` on it — its login is shared by all clients: the PIN is given once —
and the lock that serialises card access across connections. Slot ids are stable per card:
``manufacturer << 32 | serial`` from the AID, so a card keeps its slot when it is pulled out
and plugged in again (in any reader). A card that goes away leaves its slot without a token
(:attr:`Slot.present` false); its sessions become invalid (the slot's ``generation`` changes)
and its login ends: the PIN is forgotten.

:class:`Registry` is the set of slots; who attaches and detaches cards is up to the caller
(:class:`opcard.serve.pcsc.PcscMonitor` for PC/SC readers, tests for in-process cards).

A card that another program holds exclusively (GnuPG's scdaemon, by default) cannot be asked
for its serial: :meth:`Registry.hold` gives its reader a slot without a token (its id derived
from the reader name, :func:`held_slot_id`), and the card, once free, is attached into that
same slot (the registry remembers the card's slot from then on).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from opcard.errors import NoCardError, OpcardError
from opcard.serve.log import logger

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from opcard.card import Card
    from opcard.session import Session


__all__ = [
    "CLOSE_GRACE",
    "Registry",
    "Slot",
    "SlotEvents",
    "abort_card_io",
    "held_slot_id",
    "slot_id_of",
]


def slot_id_of(card: Card) -> int:
    """The card's slot id: ``manufacturer << 32 | serial`` (stable for the card)."""
    aid = card.aid
    return (aid.manufacturer << 32) | aid.serial


#: Slot ids of readers whose card is held by another program: above every
#: ``manufacturer << 32 | serial`` (manufacturer ids are 16 bits).
_HELD_SLOT_BASE = 1 << 48
#: Added to a held reader's slot description (C_GetSlotInfo shows it).
_HELD_SUFFIX = " (card in use by another program)"


#: Seconds :meth:`Registry.close` waits for a card's operation in progress before aborting it.
CLOSE_GRACE = 2.0


def abort_card_io(card: Card) -> bool:
    """Abort the card's PC/SC call in progress, from any thread (:meth:`Card.abort_io`): the
    waiting operation fails at once with a TransportError and the card's connection is
    closed. False when the transport cannot (an in-process transport)."""
    return card.abort_io()


def held_slot_id(reader: str) -> int:
    """The slot id for ``reader`` while its card is held by another program (stable for the
    reader name; never equal to a card's :func:`slot_id_of`)."""
    return _HELD_SLOT_BASE | _crc32(reader.encode("utf-8", "surrogateescape"))


def _crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, IEEE 802.3: what ``zlib.crc32`` computes) of a reader's name: a few
    bytes, bit by bit, where loading zlib would cost the on-demand server 0.4 ms of start-up
    (tests/unit/test_lazy_imports_serve.py compares the two)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


class Slot:
    """One card's slot. Touch ``card`` and ``session`` only while holding ``lock``."""

    __slots__ = (
        "_session",
        "card",
        "description",
        "generation",
        "held",
        "lock",
        "number",
        "operator_login",
        "slot_id",
        "version",
    )

    def __init__(
        self,
        slot_id: int,
        number: int,
        description: str,
        lock: threading.RLock | None = None,
        card: Card | None = None,
        session: Session | None = None,
        generation: int = 0,
        operator_login: bool = False,
        version: tuple[int, int] = (0, 0),
        held: bool = False,
    ) -> None:
        self.slot_id = slot_id
        #: Small number (1, 2, …) in attach order: the top byte of the slot's object handles.
        self.number = number
        #: The reader (or transport) name, shown as the slot description.
        self.description = description
        self.lock = threading.RLock() if lock is None else lock
        self.card = card
        self._session = session
        #: Changes whenever the token goes or comes: sessions opened before are stale.
        self.generation = generation
        #: The login was given to the daemon (``opcard serve --login``): C_Logout keeps it.
        self.operator_login = operator_login
        #: The card's version (from its AID), kept while the card is away.
        self.version = version
        #: The reader's card is held exclusively by another program (no token until it is
        #: free).
        self.held = held

    @property
    def present(self) -> bool:
        return self.card is not None

    @property
    def session(self) -> Session | None:
        """The daemon's one session on the card (None without a card). Made when first used,
        not when the card is attached: opening the session loads :mod:`opcard.session` and
        the signing rules (3 ms), which the first C_GetSlotList of an on-demand server does
        not need (issue #15). Making it sends nothing to the card."""
        session = self._session
        if session is None and self.card is not None:
            session = self._session = self.card.session()
        return session

    @session.setter
    def session(self, session: Session | None) -> None:
        self._session = session

    @property
    def made_session(self) -> Session | None:
        """The session if it was made (:attr:`session` makes it)."""
        return self._session

    @property
    def logged_in(self) -> bool:
        session = self.made_session  # a session not made yet has no login
        return session is not None and session.user_logged_in

    def login_operator(self, pin: str | bytes) -> None:
        """Log in with the PIN given to the daemon (``opcard serve --login``): clients'
        C_Logout leaves this login in place. Raises opcard's PIN errors."""
        with self.lock:
            if self.session is None:
                raise NoCardError(f"no card in slot {self.slot_id:#x}")
            self.session.login(pin)
            self.operator_login = True

    def __repr__(self) -> str:
        state = "present" if self.present else "held" if self.held else "absent"
        return f"<Slot {self.slot_id:#x} {self.description!r} {state}>"


class SlotEvents:
    """Slot events (a token came or went) not yet reported to one client.

    Blocking waits (:meth:`wait`) end with an event, or without one when the client finalizes
    (:meth:`interrupt`) or goes away (:meth:`close`)."""

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._cond = threading.Condition()
        self._epoch = 0
        self.closed = False

    @property
    def epoch(self) -> int:
        """Changes at every :meth:`interrupt`: give it to :meth:`wait` as ``since``."""
        with self._cond:
            return self._epoch

    def add(self, slot_id: int) -> None:
        with self._cond:
            if slot_id not in self._pending:
                self._pending.append(slot_id)
            self._cond.notify_all()

    def pop(self) -> int | None:
        """The oldest pending event's slot, or None."""
        with self._cond:
            return self._pending.pop(0) if self._pending else None

    def wait(self, timeout: float | None = None, *, since: int | None = None) -> int | None:
        """Block until an event (its slot), or None: :meth:`close`, ``timeout``, or — with
        ``since`` (an :attr:`epoch` read when the wait was asked for) — an :meth:`interrupt`
        after that epoch, even one that came before this call."""

        def done() -> bool:
            interrupted = since is not None and self._epoch != since
            return bool(self._pending) or self.closed or interrupted

        with self._cond:
            self._cond.wait_for(done, timeout)
            if since is not None and self._epoch != since:
                return None
            return self._pending.pop(0) if self._pending else None

    def interrupt(self) -> None:
        """End the waits in progress without an event (the client finalized); events stay
        pending for the next look."""
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Registry:
    """All slots. Thread-safe; ``attach`` and ``detach`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, Slot] = {}
        #: card slot id (slot_id_of) → the slot it was attached into, when that is a slot
        #: made for a held reader (see :meth:`hold`)
        self._moved: dict[int, int] = {}
        self._listeners: set[SlotEvents] = set()
        #: Called (without arguments) when a client operation finds the card gone, so that a
        #: monitor can look at the readers now instead of at its next poll.
        self.on_card_lost: Callable[[], None] | None = None

    # -- slots --------------------------------------------------------------------------------

    def slots(self, *, present_only: bool = False) -> list[Slot]:
        """The slots in attach order (only those with a token when ``present_only``)."""
        with self._lock:
            slots = list(self._slots.values())
        return [s for s in slots if s.present or not present_only]

    def get(self, slot_id: int) -> Slot | None:
        with self._lock:
            return self._slots.get(slot_id)

    def attach(
        self, card: Card, description: str | None = None, *, into: int | None = None
    ) -> Slot:
        """Serve ``card``: in its existing slot (same manufacturer and serial) or a new one.
        ``into``: the slot made by :meth:`hold` for the reader the card was held in; the card
        goes there unless it has a slot already, and keeps it from then on. The registry owns
        the card from now on (it closes it on detach)."""
        own_id = slot_id_of(card)
        name = description if description is not None else card.reader
        with self._lock:
            slot_id = self._moved.get(own_id, own_id)
            slot = self._slots.get(slot_id)
            if slot is None and into is not None:
                held = self._slots.get(into)
                if held is not None and held.held and held.card is None:
                    slot_id, slot = into, held
                    self._moved[own_id] = into
            if slot is None:
                slot = Slot(slot_id, len(self._slots) + 1, name)
                self._slots[slot_id] = slot
        with slot.lock:
            slot.held = False
            if slot.card is not None:
                if slot.card is not card:
                    card.close()
                    logger.warning("card %s is already served in slot %#x", card.serial, slot_id)
                return slot
            slot.card = card
            slot.session = None  # the card's session, made when first used (Slot.session)
            slot.description = name
            slot.version = card.aid.version
            slot.operator_login = False
            slot.generation += 1
        logger.info("token present: card %s in %r (slot %#x)", card.serial, name, slot_id)
        self._notify(slot_id)
        return slot

    def detach(self, slot_id: int, *, grace: float | None = None) -> None:
        """The card of ``slot_id`` is gone: its sessions end, its login ends (the PIN is
        forgotten), the connection to it is closed.

        ``grace``: when a client operation still holds the card after that many seconds (a
        card that does not answer), its connection is aborted (:func:`abort_card_io`): the
        operation fails at once and the card is detached. None waits as long as it takes."""
        slot = self.get(slot_id)
        if slot is None:
            return
        held = grace is not None and slot.lock.acquire(timeout=grace)
        if grace is not None and not held:
            card = slot.card
            if card is not None and abort_card_io(card):
                logger.warning(
                    "the card in %r does not answer: its operation in progress is aborted",
                    slot.description,
                )
        try:
            self._drop_card(slot)
        finally:
            if held:  # the acquisition above (it was left held: the slot stayed locked)
                slot.lock.release()

    def _drop_card(self, slot: Slot) -> None:
        """Detach ``slot``'s card (see :meth:`detach`)."""
        slot_id = slot.slot_id
        with slot.lock:
            card, session = slot.card, slot.made_session  # (never made: none to close)
            if card is None:
                return
            slot.card = slot.session = None
            slot.operator_login = False
            slot.generation += 1
            try:
                if session is not None:
                    session.close()  # logs out (best effort) and forgets the PIN
            finally:
                with contextlib.suppress(OpcardError):
                    card.close()
        logger.info("token removed from slot %#x (%s)", slot_id, slot.description)
        self._notify(slot_id)

    def hold(self, reader: str) -> Slot:
        """``reader``'s card is held exclusively by another program: a slot without a token
        for it (made once; :func:`held_slot_id`), so that clients see the reader before the
        card is free. :meth:`attach` with ``into=`` puts the card there later."""
        slot_id = held_slot_id(reader)
        with self._lock:
            slot = self._slots.get(slot_id)
            created = slot is None
            if slot is None:
                slot = Slot(slot_id, len(self._slots) + 1, reader)
                self._slots[slot_id] = slot
        with slot.lock:
            if slot.card is None:
                slot.held = True
                slot.description = reader + _HELD_SUFFIX
        if created:
            self._notify(slot_id)
        return slot

    def release_hold(self, slot_id: int) -> None:
        """The held reader's card went away, or turned out not to be one to serve: its slot
        goes too (unless a card was attached into it: then it stays that card's slot)."""
        with self._lock:
            slot = self._slots.get(slot_id)
            if slot is None or not slot.held or slot.card is not None:
                return
            if slot_id in self._moved.values():
                slot.held = False
                slot.description = slot.description.removesuffix(_HELD_SUFFIX)
                return
            del self._slots[slot_id]
        self._notify(slot_id)

    def card_lost(self) -> None:
        """A client operation found a card gone (see :attr:`on_card_lost`)."""
        callback = self.on_card_lost
        if callback is not None:
            callback()

    def close(self, grace: float | None = CLOSE_GRACE) -> None:
        """Detach every card (logging each out) and wake every waiting client. A card still
        busy after ``grace`` seconds (it does not answer) has its operation aborted, so that
        closing takes at most about ``grace`` seconds per such card."""
        for slot in self.slots():
            self.detach(slot.slot_id, grace=grace)
        with self._lock:
            listeners = list(self._listeners)
        for events in listeners:
            events.close()

    # -- events -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[SlotEvents]:
        """Slot events for one client, for the duration of the block."""
        events = SlotEvents()
        with self._lock:
            self._listeners.add(events)
        try:
            yield events
        finally:
            events.close()
            with self._lock:
                self._listeners.discard(events)

    def _notify(self, slot_id: int) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for events in listeners:
            events.add(slot_id)
