"""Cards and tokens: finding OpenPGP cards across readers, and what a card says about itself.

:func:`list_cards` walks the PC/SC readers and names each OpenPGP card by its AID serial;
:func:`open_card` opens one (by serial, by reader name, or the only one present). A
:class:`Card` owns the connection, the applet and the explicit caches: the application related
data (6E) is read once per card session, every write through opcard invalidates it, and
:meth:`Card.refresh` re-reads it on request. Nothing here does I/O in a property or a repr.
"""

from __future__ import annotations

import contextlib
import threading

from apdu.channel import Channel
from apdu.errors import (
    ApduError,
    CardNotPresentError,
    CardRemovedError,
    CardStatusError,
    NoReaderError,
    SharingViolationError,
    TransportError,
    WrongLengthError,
)
from apdu.errors import CardNotAnsweringError as _SilentCard
from apdu.openpgp.commands import get_data, select
from apdu.openpgp.constants import (
    YUBICO,
    Do,
    ExtendedCapability,
    KeySlot,
    KeyStatus,
    Pw,
    Secret,
)
from apdu.openpgp.objects import (
    Aid,
    AlgorithmAttributes,
    AlgorithmInformation,
    ApplicationRelatedData,
    CardholderData,
    KdfDo,
    PublicKeyMaterial,
    PwStatus,
    Uif,
)
from apdu.record import Record, replace
from apdu.transport import ReaderStatus
from opcard import arguments
from opcard._translate import translated

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from typing import ClassVar

    from apdu.openpgp.applet import OpenPgpApplet
    from apdu.transport import Transport
    from opcard.algorithms import KeyAlgorithm
    from opcard.errors import CardInUseError, NoCardError, OpcardError
    from opcard.pkcs11 import TokenFlag
    from opcard.pkcs11.uri import Pkcs11Uri
    from opcard.publickeys import CardPublicKey
    from opcard.session import Session

# opcard.publickeys (and with it cryptography), opcard.algorithms, opcard.pkcs11.constants and
# opcard.pkcs11.uri are imported where they are used, so that reading a certificate (opcard cert
# export) does not pay for them.

__all__ = [
    "Card",
    "CardFeatures",
    "CardInfo",
    "CardScan",
    "TokenInfo",
    "list_cards",
    "open_card",
    "scan_cards",
    "scdaemon_running",
]

#: PKCS#11 limits: label 32, manufacturer 32, model 16, serial 16 characters.
_LABEL_LEN = 32


class CardInfo(Record):
    """An OpenPGP card found in a reader."""

    reader: str
    aid: Aid

    @property
    def serial(self) -> str:
        """Eight hex digits, as GnuPG prints the serial number."""
        return self.aid.serial_hex

    @property
    def manufacturer(self) -> str:
        return self.aid.manufacturer_name

    def __str__(self) -> str:
        return (
            f"{self.reader}: OpenPGP card {self.aid.version_text} by {self.manufacturer}, "
            f"serial {self.serial}"
        )


class TokenInfo(Record):
    """The token view of a card (CK_TOKEN_INFO, in Python terms)."""

    label: str
    manufacturer: str
    model: str
    serial: str
    #: The OpenPGP card specification version the card implements (its AID: ``(3, 4)``).
    spec_version: tuple[int, int]
    flags: TokenFlag
    pin_min_length: int
    pin_max_length: int
    #: The algorithms each slot takes, as the card lists them in its algorithm information
    #: (DO FA). None when the card does not publish that list (no FA: every card before spec
    #: 3.4 and many 3.4 cards): None is not "nothing" — opcard then asks the card itself, by
    #: writing the algorithm attributes when a key is generated or imported.
    algorithms: dict[KeySlot, tuple[KeyAlgorithm, ...]] | None
    #: The card's firmware version where the card tells it — ``(5, 7, 1)`` — else None. The
    #: OpenPGP card specification has no firmware version (:attr:`spec_version` is the
    #: specification's); a YubiKey answers Yubico's vendor command GET VERSION, which opcard
    #: sends to Yubico cards only, once per :class:`Card` (:meth:`Card.firmware_version`).
    firmware_version: tuple[int, ...] | None = None

    def supports(self, slot: KeySlot, algorithm: KeyAlgorithm) -> bool | None:
        """Whether the card lists ``algorithm`` for ``slot`` in its algorithm information:
        True or False when it publishes the list, None when it does not say."""
        if self.algorithms is None:
            return None
        return algorithm in self.algorithms.get(slot, ())

    def uri_attributes(self) -> dict[str, str]:
        """The token's RFC 7512 attributes (``token``, ``manufacturer``, ``model``,
        ``serial``), as :meth:`opcard.pkcs11.uri.Pkcs11Uri.matches_token` takes them."""
        return {
            "token": self.label,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
        }

    @property
    def uri(self) -> Pkcs11Uri:
        """The token's ``pkcs11:`` URI (RFC 7512: token, manufacturer, model, serial)."""
        from opcard.pkcs11.uri import Pkcs11Uri

        return Pkcs11Uri(
            token=self.label, manufacturer=self.manufacturer, model=self.model, serial=self.serial
        )


class CardFeatures(Record):
    """What a card can do, as the card itself declares it — never guessed from its maker.

    Read by :meth:`Card.features`. Each field names its source: the extended capabilities C0
    (bits GnuPG reads the same way), the spec version in the AID where only the version tells,
    the DOs the card puts into 6E, or the card's answer to GET DATA. A feature that is False
    is "not supported by this card": opcard reports it so and refuses the commands that need
    it (:class:`~opcard.errors.NotSupportedByCardError`) before any PIN is asked.
    """

    #: Spec version from the AID (3.4 = ``(3, 4)``).
    version: tuple[int, int]
    #: The card lists the algorithms each slot takes (DO FA): spec 3.4 or later, C0 says the
    #: algorithm attributes are changeable, and GET DATA FA answers a list.
    algorithm_information: bool
    #: C0 bit 04: PUT DATA C1/C2/C3 may change a slot's algorithm.
    algorithm_attributes_changeable: bool
    #: C0 bit 20: private keys can be imported.
    key_import: bool
    #: C0 bit 01: the KDF-DO (F9): PINs stored and sent as salted hashes.
    kdf: bool
    #: The slots with a touch policy (user interaction flag D6/D7/D8): those in 6E, or all
    #: three when 7F74 declares a button and the card keeps D6-D8 out of 6E
    #: (:meth:`Card.touch_slots`).
    touch: tuple[KeySlot, ...]
    #: Yubico's attestation key: its algorithm attributes (DA) or UIF (D9) are in 6E.
    attestation: bool
    #: The reset code (DO D3; RESET RETRY COUNTER with it): spec 2.0 or later.
    reset_code: bool
    #: Private-use DOs 0101-0104: C0 bit 08 (without C0: spec 2.0 or later).
    private_dos: bool
    #: The digital signature counter: GET DATA 7A answers it (93).
    signature_counter: bool
    #: The key slots that have a cardholder certificate (7F21): all three on spec 3 cards
    #: (SELECT DATA chooses one), only AUT on spec 2 (one 7F21, as GnuPG and OpenSC read it),
    #: none before.
    certificate_slots: tuple[KeySlot, ...]

    #: Field name → how status output names the feature.
    NAMES: ClassVar[dict[str, str]] = {
        "algorithm_information": "algorithm information (FA)",
        "algorithm_attributes_changeable": "changing a slot's algorithm",
        "key_import": "key import",
        "kdf": "PIN KDF (KDF-DO)",
        "touch": "touch (UIF)",
        "attestation": "attestation",
        "reset_code": "reset code",
        "private_dos": "private DOs (0101-0104)",
        "signature_counter": "signature counter",
        "certificate_slots": "certificates",
    }

    def supported(self, feature: str) -> bool:
        """Whether the card has ``feature`` (a field name; touch: any slot; certificates:
        at least one)."""
        value = getattr(self, feature)
        return bool(value) if not isinstance(value, bool) else value

    @property
    def missing(self) -> tuple[str, ...]:
        """The field names of the features the card does not have, in field order."""
        return tuple(name for name in self.NAMES if not self.supported(name))


def _read_aid(transport: Transport) -> Aid | None:
    """SELECT + GET DATA 4F on a fresh transport; None when it is no OpenPGP card.

    A card reset by another program between our connect and our SELECT (SCARD_W_RESET_CARD)
    is reconnected and asked once more; a card that another program took exclusively meanwhile
    raises :class:`~apdu.errors.SharingViolationError`, one that does not answer
    :class:`~apdu.errors.CardNotAnsweringError`."""
    channel = Channel(transport)
    for attempt in (1, 2):
        try:
            with channel.transaction():
                channel.send(select())
                return Aid.parse(channel.send(get_data(Do.AID)))
        except (SharingViolationError, _SilentCard):
            raise
        except CardRemovedError:
            if attempt == 2:
                return None
        except ApduError:  # not an OpenPGP card, or one that cannot be read now
            return None
    return None  # pragma: no cover - the loop returns


class CardScan(Record):
    """One look at the readers: the OpenPGP cards opcard can use, and the readers whose card
    another program holds exclusively (their card cannot be asked what it is)."""

    cards: tuple[CardInfo, ...]
    #: Readers whose card another program holds exclusively (SCARD_E_SHARING_VIOLATION).
    held: tuple[str, ...] = ()
    #: Every reader as PC/SC saw it (name, ATR or None, held exclusively), in PC/SC's order.
    readers: tuple[ReaderStatus, ...] = ()
    #: Readers whose card did not answer within :data:`SCAN_TIMEOUT` (a stuck card or reader:
    #: it answers again once removed and inserted).
    silent: tuple[str, ...] = ()

    def in_use_error(self, wanted: str | None = None) -> CardInUseError:
        """The :class:`CardInUseError` naming :attr:`held` (which must not be empty)."""
        return _in_use(list(self.held), wanted)


def scdaemon_running() -> bool | None:
    """Whether a process named ``scdaemon`` of this user runs (a cheap look at /proc; None
    where there is no /proc). PC/SC cannot tell who holds a card: this is only a hint."""
    import os

    uid = os.getuid()
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/comm", "rb") as f:
                    if f.read().strip() == b"scdaemon":
                        return True
            except OSError:  # the process ended meanwhile
                continue
    return False


#: Seconds each card may take to say what it is while the readers are scanned (a card answers
#: SELECT and GET DATA 4F in milliseconds; $OPCARD_CARD_TIMEOUT, when shorter, wins).
SCAN_TIMEOUT = 5.0


def scan_cards() -> CardScan:
    """Every OpenPGP card in every reader, the readers whose card is held exclusively by
    another program (GnuPG's scdaemon, by default), and those whose card does not answer.
    Readers holding other cards are left out."""
    from apdu.transport.pcsc import PcscTransport, default_timeout, reader_states

    bound = default_timeout()
    timeout = SCAN_TIMEOUT if bound is None else min(bound, SCAN_TIMEOUT)
    found: list[CardInfo] = []
    held: list[str] = []
    silent: list[str] = []
    with translated("listing the PC/SC readers"):
        states = reader_states()
    for status in states:
        if not status.present:
            continue
        try:
            transport = PcscTransport.open(status.reader, timeout=timeout)
        except SharingViolationError:
            held.append(status.reader)
            continue
        except _SilentCard:
            silent.append(status.reader)
            continue
        except TransportError:
            continue
        try:
            aid = _read_aid(transport)
        except SharingViolationError:
            held.append(status.reader)
            continue
        except _SilentCard:
            silent.append(status.reader)
            continue
        finally:
            transport.close()
        if aid is not None:
            found.append(CardInfo(status.reader, aid))
    return CardScan(tuple(found), tuple(held), tuple(states), tuple(silent))


def list_cards() -> list[CardInfo]:
    """Every OpenPGP card opcard can use, in every reader (readers holding other cards, and
    readers whose card another program holds exclusively, are left out: :func:`scan_cards`
    names the latter)."""
    return list(scan_cards().cards)


def _normalise_serial(serial: str | int) -> int:
    if isinstance(serial, int):
        return serial
    text = serial.strip().replace(" ", "")
    if len(text) == 32:  # a whole AID
        text = text[20:28]
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"{serial!r} is not a card serial (8 hex digits)") from None


def _reader_name(wanted: str) -> str:
    """The full name of the reader ``wanted`` names (exactly or as the only match), for
    messages; ``wanted`` itself when the readers cannot be listed or it is ambiguous."""
    from apdu.transport.pcsc import list_readers

    try:
        readers = list_readers()
    except TransportError:
        return wanted
    if wanted in readers:
        return wanted
    matches = [r for r in readers if wanted.lower() in r.lower()]
    return matches[0] if len(matches) == 1 else wanted


def _in_use(readers: list[str], wanted: str | None = None) -> CardInUseError:
    from opcard.errors import CardInUseError

    return CardInUseError(readers, scdaemon_running=scdaemon_running(), wanted=wanted)


# opcard.errors (its classes and the CK_RV table, about 2 ms) is imported when an error is
# raised, so that a command that meets none (cert export, list) does without it.
def _no_card(message: str) -> NoCardError:
    from opcard.errors import NoCardError

    return NoCardError(message)


def _translate_error(err: ApduError, what: str) -> OpcardError:
    from opcard.errors import translate_error

    return translate_error(err, what)


def open_card(
    *, serial: str | int | None = None, reader: str | None = None, timeout: float | None = None
) -> Card:
    """Open an OpenPGP card through PC/SC.

    With ``reader``: the card in that reader. With ``serial``: the card with that AID serial,
    wherever it is. With neither: the only OpenPGP card present. Raises :class:`NoCardError`
    when there is none, :class:`SeveralCardsError` (listing them) when the choice is ambiguous,
    and :class:`CardInUseError` (a :class:`NoCardError`) when the card asked for — or, without
    a choice, every card there is — is held exclusively by another program (GnuPG's scdaemon
    by default). A usable card is opened even when another reader's card is held.

    ``timeout``: seconds the card may take to answer one command before
    :class:`~opcard.errors.CardNotAnsweringError` (a :class:`CardError`: "the card in READER
    does not answer"); ``math.inf`` waits for ever; None takes ``$OPCARD_CARD_TIMEOUT``,
    else 30 s. Key generation has its own, longer bound (``$OPCARD_GENERATE_TIMEOUT``, 300 s).
    The card's transport keeps it as ``timeout`` (see :mod:`apdu.transport.pcsc`).
    """
    from apdu.transport.pcsc import PcscTransport

    if reader is not None:
        try:
            transport = PcscTransport.open(reader, timeout=timeout)
        except SharingViolationError as e:
            raise _in_use([_reader_name(reader)]) from e
        except (CardNotPresentError, NoReaderError) as e:
            raise _no_card(str(e)) from e
        except ApduError as e:
            raise _translate_error(e, f"opening the reader {reader!r}") from e
        try:
            card = Card(transport)
        except Exception as e:
            from opcard.errors import CardError  # loaded already: it made e

            if isinstance(e, CardError) and isinstance(e.__cause__, SharingViolationError):
                raise _in_use([transport.name]) from e
            raise
        if serial is not None and card.aid.serial != _normalise_serial(serial):
            card.close()
            raise _no_card(f"the card in {reader!r} has serial {card.aid.serial_hex}, not {serial}")
        return card
    scan = scan_cards()
    cards = list(scan.cards)
    if serial is not None:
        wanted = _normalise_serial(serial)
        cards = [c for c in cards if c.aid.serial == wanted]
        if not cards:
            if scan.held:
                raise scan.in_use_error(f"the card with serial {wanted:08X}")
            raise _no_card(f"no OpenPGP card with serial {wanted:08X} is present")
    if not cards:
        if scan.held:
            raise scan.in_use_error()
        raise _no_card("no OpenPGP card is present (is the card inserted and pcscd running?)")
    if len(cards) > 1:
        from opcard.errors import SeveralCardsError

        raise SeveralCardsError(cards)
    try:
        transport = PcscTransport.open(cards[0].reader, timeout=timeout)
    except SharingViolationError as e:  # taken between the look and the connect
        raise _in_use([cards[0].reader]) from e
    except ApduError as e:
        raise _translate_error(e, f"opening the reader {cards[0].reader!r}") from e
    return Card(transport, roaming=True)


class _RoamingTransport:
    """A PC/SC transport that, when its reader lost the card, finds the card with the same
    serial in another reader and reconnects there (the same token, wherever it moved)."""

    def __init__(self, inner: Transport, serial: int) -> None:
        self.inner = inner
        self.serial = serial
        self.transmit = inner.transmit  # bound method: no overhead on the hot path
        self.transaction = inner.transaction

    @property
    def name(self) -> str:
        return self.inner.name

    @name.setter
    def name(self, value: str) -> None:
        self.inner.name = value

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def reconnect(self) -> None:
        from apdu.transport.pcsc import PcscTransport

        try:
            self.inner.reconnect()
        except (CardNotPresentError, NoReaderError) as e:
            assert isinstance(self.inner, PcscTransport)
            scan = scan_cards()
            for info in scan.cards:
                if info.aid.serial == self.serial:
                    self.inner.reconnect(reader=info.reader)
                    return
            if scan.held:  # it may be there, held by another program: say so
                readers = ", ".join(repr(r) for r in scan.held)
                raise SharingViolationError(
                    f"the card {self.serial:08X} is in no reader opcard can use; another "
                    f"program holds the card in {readers} exclusively"
                ) from e
            raise

    def close(self) -> None:
        self.inner.close()


class Card:
    """One OpenPGP card: connection, applet and caches. Open sessions with :meth:`session`."""

    def __init__(self, transport: Transport, *, roaming: bool = False) -> None:
        # here, not at import: listing the cards (scan_cards) needs no applet
        from apdu.openpgp.applet import OpenPgpApplet

        self.channel = Channel(transport)
        self.applet: OpenPgpApplet = OpenPgpApplet(self.channel)
        self.lock = threading.RLock()
        self._ard: ApplicationRelatedData | None = None
        self._public_keys: dict[KeySlot, CardPublicKey | None] = {}
        self._certificates: dict[KeySlot, bytes] | None = None
        self._certificate: dict[KeySlot, bytes] = {}  # read one by one
        self._cardholder: CardholderData | None = None
        self._data: dict[int, bytes] = {}
        self._kdf_known = False
        #: A PIN was refused (or accepted after a refusal) since C4 was read: read it again.
        self._pin_status_stale = False
        #: The PINs (Secret values) this Card saw refused since their counter was last reset.
        self._refused: set[int] = set()
        #: The card answered 6700 to an extended APDU its ATR promised: short APDUs only.
        self._short_only = False
        with translated(f"opening the OpenPGP application on {transport.name!r}"):
            self._ard = self._start(transport)
            #: The AID never changes: kept apart from the cache that writes invalidate.
            self._aid: Aid = self._ard.aid
            if roaming:
                self.channel.transport = _RoamingTransport(transport, self._aid.serial)

    def _start(self, transport: Transport) -> ApplicationRelatedData:
        """SELECT and read 6E, with the framing taken first from the ATR's historical bytes, so
        that the first read of 6E already uses extended lengths where the card has them (one
        GET RESPONSE saved per card session); 6E's own declarations then refine it. A card
        whose ATR promises extended lengths that it (or its reader) then refuses with 6700 is
        read again with short APDUs."""
        from apdu.atr import historical_bytes
        from apdu.channel import Framing
        from apdu.openpgp.objects import HistoricalBytes

        # An unusual ATR: short APDUs until 6E says more.
        with contextlib.suppress(ApduError):
            self.applet.configure_framing(HistoricalBytes.parse(historical_bytes(transport.atr)))
        if not self.channel.framing.extended:
            return self.applet.start()
        try:
            return self.applet.start()
        except WrongLengthError:
            self._short_only = True
            self.channel.framing = Framing()
            with self.channel.transaction():
                self.applet.select()
                return self.applet.get_application_related_data()

    def _configure(self, ard: ApplicationRelatedData) -> None:
        """Adopt the framing 6E declares, unless the card already refused extended APDUs."""
        if not self._short_only:
            self.applet.configure(ard)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self.channel.transport.close()

    def abort_io(self) -> bool:
        """Abort the PC/SC call in progress, from any thread: the waiting operation fails at
        once with a transport error and the connection is closed (``opcard serve`` stopping a
        card that hangs). False when the transport cannot abort (an in-process one)."""
        transport: object = self.channel.transport
        for _ in range(3):  # the transport, or the one a roaming transport wraps
            abort = getattr(transport, "abort", None)
            if callable(abort):
                abort()
                return True
            transport = getattr(transport, "inner", None)
            if transport is None:
                break
        return False

    @property
    def reader(self) -> str:
        """The name of the reader the card is in (the one it moved to, after a re-insertion
        elsewhere); no I/O."""
        return self.channel.transport.name

    @property
    def apdu_count(self) -> int:
        """APDUs sent to this card so far (chained blocks, GET RESPONSE and resends included):
        the figure behind "one APDU per signature"; no I/O."""
        return self.channel.apdu_count

    def signature_counter(self) -> int | None:
        """The digital signature counter (GET DATA 7A, read fresh: it changes with every
        PSO:CDS); None when the card has none (:meth:`features`: ``signature_counter``)."""
        from apdu.errors import TlvError
        from apdu.openpgp.errors import DataObjectError

        if not self.features().signature_counter:
            return None
        seen = self._counter_seen
        if seen is not None and seen[0] == self.channel.apdu_count:
            return seen[1]  # read by features() with no APDU since: no signature either
        with translated("reading the signature counter (7A)"):
            try:
                return self.applet.get_security_support_template().signature_counter
            except (CardStatusError, DataObjectError, TlvError):
                return None

    def __enter__(self) -> Card:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self) -> Session:
        """A new session (a context manager); log in with :meth:`Session.login`."""
        from opcard.session import Session

        return Session(self)

    # -- caches -------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget everything cached (called after every write)."""
        with self.lock:
            self._ard = None
            self._public_keys.clear()
            self._certificates = None
            self._certificate.clear()
            self._cardholder = None
            self._data.clear()
            self._pin_status_stale = False  # 6E is read again, C4 with it

    def pin_tried(self, pw: Pw, *, accepted: bool) -> None:
        """Tell the cache about a VERIFY of ``pw`` (no I/O): a PIN the card refused changed its
        retry counter, and one it accepted after a refusal reset it, so the PIN status (C4:
        tries left, :meth:`token_info` flags) is read again on its next use
        (:meth:`pw_status`). Called by the session after each VERIFY."""
        secret = int(Secret.for_pw(pw))
        with self.lock:
            if accepted:
                if secret not in self._refused:
                    return
                self._refused.discard(secret)
            else:
                self._refused.add(secret)
            self._pin_status_stale = True

    def pw_status(self) -> PwStatus | None:
        """The PW status bytes (C4: PW1 policy, maximum lengths, tries left) from the cached
        application data; after a PIN was refused (:meth:`pin_tried`) read again once (GET
        DATA C4), so that tries left and ``token_info().flags`` are current. None when the
        card's 6E holds no C4."""
        with self.lock:
            ard = self.application_data()
            if self._pin_status_stale and ard.pw_status is not None:
                with translated("reading the PIN status (C4)"):
                    status = self.applet.get_pw_status()
                ard = self._ard = replace(ard, pw_status=status)
            self._pin_status_stale = False
            return ard.pw_status

    def refresh(self) -> ApplicationRelatedData:
        """Re-read the application related data now (and the KDF-DO before the next PIN)."""
        with self.lock:
            self.invalidate()
            self._kdf_known = False
            return self.application_data()

    def prepare_pin(self) -> None:
        """Before the first PIN of the card session: adopt the card's KDF-DO (F9), so PINs are
        sent derived when KDF is on. Read once (cards without the KDF capability: never);
        writes through opcard keep it current, :meth:`refresh` reads it again."""
        with self.lock:
            if self._kdf_known:
                return
            caps = self.application_data().extended_capabilities
            if caps is not None and caps.flags & ExtendedCapability.KDF:
                with translated("reading the KDF-DO"):
                    try:
                        self.applet.get_kdf(adopt=True)
                    except CardStatusError:
                        self.applet.kdf = None
            else:
                self.applet.kdf = None
            self._kdf_known = True

    def kdf(self) -> KdfDo | None:
        """The card's KDF-DO when KDF is on (PINs are sent derived), else None."""
        self.prepare_pin()
        return self.applet.kdf

    def kdf_changed(self) -> None:
        """The KDF-DO was written or reset through this card's applet (which now knows it)."""
        self._kdf_known = True

    def application_data(self) -> ApplicationRelatedData:
        """6E, read once and cached until a write or :meth:`refresh`."""
        with self.lock:
            if self._ard is None:
                with translated("reading the application related data"):
                    self._ard = self.applet.get_application_related_data()
                    self._configure(self._ard)
            return self._ard

    @property
    def aid(self) -> Aid:
        """The AID (known since the card was opened: no I/O, valid after invalidations)."""
        return self._aid

    @property
    def serial(self) -> str:
        return self.aid.serial_hex

    def key_present(self, slot: KeySlot | str | int) -> bool:
        """A key is in ``slot``: the card's key information (DE) says it was generated or
        imported; on cards without DE, its fingerprint is set. (A fingerprint may outlive its
        key: changing the algorithm attributes deletes the key but not C5.)"""
        slot = arguments.key_slot(slot)
        ard = self.application_data()
        info = ard.key_information
        status = None if info is None else info.status(slot)
        if status is not None:
            return status is not KeyStatus.NONE
        return ard.fingerprint(slot) is not None

    def algorithm(self, slot: KeySlot | str | int) -> KeyAlgorithm | None:
        """The algorithm the slot declares (C1-C3), or None when opcard does not know it."""
        from opcard.algorithms import algorithm_of

        return algorithm_of(self.application_data().attributes(arguments.key_slot(slot)))

    def public_key(self, slot: KeySlot | str | int) -> CardPublicKey | None:
        """The slot's public key (READ PUBLIC KEY, cached); None when the slot is empty."""
        slot = arguments.key_slot(slot)
        with self.lock:
            if slot not in self._public_keys:
                key: CardPublicKey | None = None
                if self.key_present(slot):
                    material: PublicKeyMaterial | None
                    with translated(f"reading the {slot.name} public key"):
                        try:
                            material = self.applet.read_public_key(slot)
                        except CardStatusError:  # the card says the slot is empty
                            material = None
                    if material is not None:
                        from opcard.publickeys import CardPublicKey

                        key = CardPublicKey.from_card(
                            material, self.application_data().attributes(slot)
                        )
                self._public_keys[slot] = key
            return self._public_keys[slot]

    def certificate_slots(self) -> tuple[KeySlot, ...]:
        """The key slots that have a cardholder certificate (from the spec version, no I/O):
        SIG, DEC and AUT on spec 3 cards; on spec 2 cards only AUT — the one 7F21, read with
        plain GET DATA (no SELECT DATA, no GET NEXT DATA), which GnuPG (``OPENPGP.3``) and
        OpenSC's PKCS#15 layer (ID 03) both take for the authentication key; none before."""
        if self.aid.is_v3:
            return (KeySlot.SIG, KeySlot.DEC, KeySlot.AUT)
        if self.aid.version >= (2, 0):
            return (KeySlot.AUT,)
        return ()

    def check_certificate_slot(self, slot: KeySlot | str | int) -> None:
        """Raise :class:`NotSupportedByCardError` (before any I/O) when ``slot`` has no
        certificate on this card (spec 2 cards hold one certificate, for AUT)."""
        slot = arguments.key_slot(slot)
        slots = self.certificate_slots()
        if slot in slots:
            return
        from opcard.errors import NotSupportedByCardError

        what = f"this card (OpenPGP card {self.aid.version_text})"
        if not slots:
            message = f"{what} holds no certificate"
        else:
            message = (
                f"{what} holds one certificate, for the AUT key; it has no certificate slot "
                f"for {slot.name}"
            )
        raise NotSupportedByCardError(message, "certificate_slots")

    def certificates(self) -> dict[KeySlot, bytes]:
        """The cardholder certificates (b"" for an empty occurrence), read once, keyed by the
        slots the card has (:meth:`certificate_slots`: three on spec 3 cards, AUT on spec 2).

        On v3 cards SELECT DATA + GET DATA + two GET NEXT DATA read all three; the current
        occurrence is set back to AUT (0) as GnuPG expects. On v2 cards one GET DATA 7F21.
        """
        with self.lock:
            if self._certificates is None:
                with translated("reading the cardholder certificates"):
                    self._certificates = self._read_certificates()
            return self._certificates

    def certificate(self, slot: KeySlot | str | int) -> bytes:
        """One certificate (b"" when empty); only that one is read (and cached) when the three
        are not cached: SELECT DATA + GET DATA (+ SELECT DATA back to AUT for SIG and DEC).
        A slot the card has no certificate for (SIG and DEC on spec 2 cards) raises
        :class:`~opcard.errors.NotSupportedByCardError` without I/O."""
        slot = arguments.key_slot(slot)
        self.check_certificate_slot(slot)
        with self.lock:
            if self._certificates is not None:
                return self._certificates[slot]
            if slot not in self._certificate:
                with translated(f"reading the {slot.name} certificate"):
                    if not self.aid.is_v3:  # the one 7F21: plain GET DATA
                        der = self._get_current_certificate()
                    else:
                        der = self.applet.get_certificate(slot)
                self._certificate[slot] = der
            return self._certificate[slot]

    def _read_certificates(self) -> dict[KeySlot, bytes]:
        applet = self.applet
        slots = self.certificate_slots()
        if not slots:
            return {}
        if not self.aid.is_v3:  # one certificate, no SELECT DATA
            return {KeySlot.AUT: self._get_current_certificate()}
        out: dict[KeySlot, bytes] = {}
        with self.channel.transaction():
            applet.select_certificate(KeySlot.AUT)  # occurrence 0
            out[KeySlot.AUT] = self._get_current_certificate()
            try:
                out[KeySlot.DEC] = applet.get_next_certificate()
                out[KeySlot.SIG] = applet.get_next_certificate()
            except CardStatusError:
                # A card without GET NEXT DATA: select each occurrence.
                out[KeySlot.DEC] = applet.get_certificate(KeySlot.DEC)
                out[KeySlot.SIG] = applet.get_certificate(KeySlot.SIG)
            else:
                applet.select_certificate(KeySlot.AUT)
        return out

    def _get_current_certificate(self) -> bytes:
        from apdu.openpgp import quirks

        try:
            return self.channel.send(get_data(Do.CARDHOLDER_CERTIFICATE))
        except CardStatusError as e:
            if quirks.certificate_absent(e):
                return b""
            raise

    def cardholder(self) -> CardholderData:
        with self.lock:
            if self._cardholder is None:
                with translated("reading the cardholder data"):
                    self._cardholder = self.applet.get_cardholder_data()
            return self._cardholder

    def data_object(self, tag: Do | str | int) -> bytes:
        """GET DATA of a simple DO (URL, login data, private DOs: ``"url"``, ``Do.URL`` or
        ``0x5F50``), cached."""
        tag = arguments.data_object(tag)
        with self.lock:
            if tag not in self._data:
                with translated(f"reading DO {tag:04X}"):
                    self._data[tag] = self.applet.get_data(tag)
            return self._data[tag]

    # -- token view ---------------------------------------------------------------------------

    #: What the card declares about itself (:meth:`features`), read once per Card.
    _features: CardFeatures | None = None
    #: (apdu_count after the read, value) of the 7A that features() read last
    _counter_seen: tuple[int, int] | None = None
    #: The card's algorithm information (FA), parsed; read once per Card (None: the card
    #: does not publish it).
    _fa: AlgorithmInformation | None = None
    _fa_read = False

    #: Yubico's GET VERSION answer, asked once per Card (None: not asked yet).
    _firmware: tuple[tuple[int, ...] | None] | None = None

    def firmware_version(self) -> tuple[int, ...] | None:
        """The card's firmware version where the card tells it, else None.

        The OpenPGP card specification defines none (the AID's version is the
        specification's: :attr:`TokenInfo.spec_version`). A card whose AID names Yubico as its
        maker is asked once per Card with Yubico's vendor command GET VERSION (INS F1): its
        answer (``(5, 7, 1)``) is the firmware version. Nothing depends on it: any other
        answer — or any other maker — gives None, and no other card is sent a vendor
        command."""
        with self.lock:
            if self._firmware is None:
                self._firmware = (self._read_firmware_version(),)
            return self._firmware[0]

    def _read_firmware_version(self) -> tuple[int, ...] | None:
        if self.aid.manufacturer != YUBICO:  # the only maker asked for its firmware version
            return None
        from apdu.openpgp.commands import yubico_get_version

        try:
            answer = self.channel.send(yubico_get_version())
        except CardStatusError:  # 6D00 and the like: the card does not tell
            return None
        except ApduError as e:
            from opcard.errors import translate_error

            raise translate_error(e, "reading the firmware version (GET VERSION)") from e
        return tuple(answer[:3]) if len(answer) >= 3 else None

    def token_info(self) -> TokenInfo:
        ard = self.application_data()
        aid = ard.aid
        name = self.cardholder().name_text
        label = (name or f"OpenPGP card {aid.serial_hex}")[:_LABEL_LEN]
        from opcard.pkcs11 import TokenFlag

        flags = TokenFlag.RNG | TokenFlag.LOGIN_REQUIRED | TokenFlag.USER_PIN_INITIALIZED
        flags |= TokenFlag.TOKEN_INITIALIZED
        pw = self.pw_status()
        if pw is not None:
            flags |= _pin_flags(pw.retries_pw1, user=True) | _pin_flags(pw.retries_pw3, user=False)
        return TokenInfo(
            label=label,
            manufacturer=aid.manufacturer_name[:32],
            model=f"OpenPGP card {aid.version_text}"[:16],
            serial=aid.serial_hex,
            spec_version=aid.version,
            firmware_version=self.firmware_version(),
            flags=flags,
            pin_min_length=Secret.PW1.minimum_length,
            pin_max_length=pw.max_length(Secret.PW1)
            if pw is not None and pw.max_length_pw1
            else Secret.PW1.maximum_length,
            algorithms=self.supported_algorithms(),
        )

    def algorithm_information(self) -> AlgorithmInformation | None:
        """The card's algorithm information (DO FA), or None when the card does not publish
        it: before spec 3.4, when C0 says the algorithm attributes cannot be changed, or when
        GET DATA FA answers an error or nothing usable (many 3.4 cards). Read once per Card
        (never on a card below 3.4); YubiKey's X25519-as-EdDSA entries are read as X25519 in
        the DEC slot (:func:`apdu.openpgp.quirks.fix_x25519_under_eddsa`)."""
        with self.lock:
            if not self._fa_read:
                self._fa = self._read_algorithm_information()
                self._fa_read = True
            return self._fa

    def _read_algorithm_information(self) -> AlgorithmInformation | None:
        caps = self.application_data().extended_capabilities
        if (
            caps is None
            or self.aid.version < (3, 4)
            or not caps.flags & ExtendedCapability.ALGORITHM_ATTRIBUTES_CHANGEABLE
        ):
            return None
        from apdu.openpgp import quirks

        with translated("reading the algorithm information (FA)"):
            try:
                raw = self.applet.get_data(Do.ALGORITHM_INFORMATION)
            except CardStatusError:  # 6A88 and the like: the card does not publish it
                return None
        if not raw:
            return None
        try:
            parsed = quirks.fix_x25519_under_eddsa(AlgorithmInformation.parse(raw))
        except ApduError:  # unreadable: as if the card did not publish it
            return None
        if not any(KeySlot.from_attributes_tag(tag) is not None for tag, _ in parsed.entries):
            return None
        return parsed

    def supported_algorithms(self) -> dict[KeySlot, tuple[KeyAlgorithm, ...]] | None:
        """The algorithms each slot takes, as the card lists them in FA
        (:meth:`algorithm_information`); None when the card does not publish the list."""
        info = self.algorithm_information()
        if info is None:
            return None
        from opcard.algorithms import algorithm_of

        result: dict[KeySlot, list[KeyAlgorithm]] = {slot: [] for slot in KeySlot}
        for tag, attributes in info.entries:
            slot = KeySlot.from_attributes_tag(tag)
            algorithm = algorithm_of(attributes)
            if slot is not None and algorithm is not None and algorithm not in result[slot]:
                result[slot].append(algorithm)
        return {slot: tuple(algs) for slot, algs in result.items()}

    def listed_attributes(
        self, slot: KeySlot, algorithm: KeyAlgorithm
    ) -> AlgorithmAttributes | None:
        """The exact attributes the card lists in FA for ``algorithm`` in ``slot`` (the first
        such entry); None when it does not publish FA or does not list the algorithm there."""
        info = self.algorithm_information()
        if info is None:
            return None
        from opcard.algorithms import algorithm_of

        for tag, attributes in info.entries:
            if KeySlot.from_attributes_tag(tag) is slot and algorithm_of(attributes) == algorithm:
                return attributes
        return None

    #: Whether the card declares a button (7F74), read once per Card (None: not read yet).
    _button: bool | None = None

    def touch_slots(self) -> tuple[KeySlot, ...]:
        """The key slots with a touch policy (user interaction flag, D6/D7/D8): those whose
        UIF DO is in 6E; on a card that keeps them out of 6E but declares a button in its
        general feature management DO 7F74 (YubiKey 4, the Ledger app — GnuPG's
        ``has_button``), all three. 7F74 comes from 6E, or once from GET DATA 7F74."""
        ard = self.application_data()
        in_6e = tuple(slot for slot in KeySlot if ard.uif(slot) is not None)
        if in_6e:
            return in_6e
        return tuple(KeySlot) if self._has_button() else ()

    def _has_button(self) -> bool:
        from apdu.errors import TlvError
        from apdu.openpgp.constants import GeneralFeature
        from apdu.openpgp.errors import DataObjectError
        from apdu.openpgp.objects import GeneralFeatureManagement

        with self.lock:
            if self._button is None:
                gfm = self.application_data().general_feature_management
                if gfm is None:
                    with translated("reading the general feature management (7F74)"):
                        try:
                            raw = self.applet.get_data(Do.GENERAL_FEATURE_MANAGEMENT)
                        except CardStatusError:  # 6A88 and the like: no such DO
                            raw = b""
                    try:
                        gfm = GeneralFeatureManagement.parse(raw) if raw else None
                    except (DataObjectError, TlvError):
                        # the bare feature byte (the Ledger app answers 20)
                        if len(raw) == 1:
                            gfm = GeneralFeatureManagement(GeneralFeature(raw[0]))
                self._button = gfm is not None and bool(gfm.features & GeneralFeature.BUTTON)
            return self._button

    def uif(self, slot: KeySlot | str | int) -> Uif | None:
        """The slot's touch policy: from 6E, or (cards that keep D6-D8 out of 6E) GET DATA
        D6/D7/D8, cached like the other simple DOs; None when the slot has none."""
        slot = arguments.key_slot(slot)
        value = self.application_data().uif(slot)
        if value is not None or slot not in self.touch_slots():
            return value
        from apdu.errors import TlvError
        from apdu.openpgp.errors import DataObjectError
        from opcard.errors import CardError

        try:
            return Uif.parse(self.data_object(slot.uif_tag))
        except CardError:  # the card does not answer it after all
            return None
        except (DataObjectError, TlvError):
            return None

    def has_private_dos(self) -> bool:
        """Private-use DOs 0101-0104: C0 bit 08 (without C0: spec 2.0 or later). From the
        cached 6E (no I/O after the first read)."""
        caps = self.application_data().extended_capabilities
        if caps is None:
            return self.aid.version >= (2, 0)
        return bool(caps.flags & ExtendedCapability.PRIVATE_USE_DOS)

    def features(self) -> CardFeatures:
        """What the card declares it can do (:class:`CardFeatures`), read once per Card: from
        6E (cached), plus GET DATA 7A (signature counter) and, on 3.4 cards whose C0 allows
        algorithm changes, GET DATA FA."""
        with self.lock:
            if self._features is None:
                self._features = self._read_features()
            return self._features

    def supports(self, feature: str) -> bool:
        """Whether the card declares ``feature`` (a :class:`CardFeatures` field; touch: any
        slot; certificate_slots: at least one), reading only what that feature needs:
        ``signature_counter`` and ``algorithm_information`` a GET DATA (7A, FA, once),
        ``touch`` one of 7F74 when neither UIF nor 7F74 is in 6E; the others nothing but the
        cached 6E and the AID."""
        if feature in ("signature_counter", "algorithm_information"):
            return self.features().supported(feature)
        if feature == "touch":
            return bool(self.touch_slots())
        if feature == "certificate_slots":
            return bool(self.certificate_slots())
        flags = self._declared_flags()
        if feature not in flags:
            raise ValueError(f"unknown card feature {feature!r}")
        return flags[feature]

    def _declared_flags(self) -> dict[str, bool]:
        """The yes/no features 6E (cached) and the AID tell, without further I/O."""
        ard = self.application_data()
        caps = ard.extended_capabilities
        flags = caps.flags if caps is not None else ExtendedCapability(0)
        return {
            "algorithm_attributes_changeable": bool(
                flags & ExtendedCapability.ALGORITHM_ATTRIBUTES_CHANGEABLE
            ),
            "key_import": bool(flags & ExtendedCapability.KEY_IMPORT),
            "kdf": bool(flags & ExtendedCapability.KDF),
            "attestation": ard.attributes_att is not None or ard.uif_att is not None,
            "reset_code": self.aid.version >= (2, 0),
            "private_dos": self.has_private_dos(),
        }

    def _read_features(self) -> CardFeatures:
        from apdu.errors import TlvError
        from apdu.openpgp.errors import DataObjectError
        from apdu.openpgp.objects import SecuritySupportTemplate

        flags = self._declared_flags()
        algorithm_information = self.algorithm_information() is not None
        touch = self.touch_slots()
        certificate_slots = self.certificate_slots()
        # 7A last: signature_counter() reuses its value while no APDU followed it
        with translated("reading the signature counter (7A)"):
            try:
                template = SecuritySupportTemplate.parse(
                    self.applet.get_data(Do.SECURITY_SUPPORT_TEMPLATE)
                )
                counter = True
                self._counter_seen = (self.channel.apdu_count, template.signature_counter)
            except (CardStatusError, DataObjectError, TlvError):  # 6A88 …, or 7A without 93
                counter = False
        return CardFeatures(
            version=self.aid.version,
            algorithm_information=algorithm_information,
            algorithm_attributes_changeable=flags["algorithm_attributes_changeable"],
            key_import=flags["key_import"],
            kdf=flags["kdf"],
            touch=touch,
            attestation=flags["attestation"],
            reset_code=flags["reset_code"],
            private_dos=flags["private_dos"],
            signature_counter=counter,
            certificate_slots=certificate_slots,
        )

    def __repr__(self) -> str:
        return f"<Card serial={self._aid.serial_hex} reader={self.channel.transport.name!r}>"


def _pin_flags(retries: int, *, user: bool) -> TokenFlag:
    from opcard.pkcs11 import TokenFlag

    if retries == 0:
        return TokenFlag.USER_PIN_LOCKED if user else TokenFlag.SO_PIN_LOCKED
    if retries == 1:
        return TokenFlag.USER_PIN_FINAL_TRY if user else TokenFlag.SO_PIN_FINAL_TRY
    return TokenFlag(0)
