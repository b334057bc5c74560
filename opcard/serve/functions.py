"""The PKCS#11 functions as the server performs them for one client connection.

:class:`Client` holds what PKCS#11 keeps per application — initialised or not, its sessions,
their find and sign/decrypt operations, the session objects ECDH derivations create — and
answers one request at a time: :meth:`Client.handle` reads the arguments of a call from the
request body and returns the reply body (a result, or an error reply with the CK_RV).

What is shared by every client lives in :mod:`opcard.serve.slots`: the cards, the daemon's
one opcard session per card and its login, the lock around card access.

Rules worth knowing (docs/serve.md explains them):

- The login is per card, for every client: once a client has logged in (or the daemon was
  started with ``--login``), every session of every client is in the user state, and C_Login
  answers CKR_USER_ALREADY_LOGGED_IN without looking at the PIN (no PIN oracle).
- Private objects (CKA_PRIVATE: the private keys, private DOs 3 and 4) are invisible before
  login, as PKCS#11 wants.
- CKA_ALWAYS_AUTHENTICATE is served as false: the daemon re-verifies PW1 itself before each
  signature when the card's C4 policy asks for it (it holds the PIN), so clients must not ask
  the user again. A C_Login(CKU_CONTEXT_SPECIFIC) is accepted without a PIN check.
- Size queries of C_Sign are answered from the key size without touching the card; the
  operation stays open for the real call.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from enum import IntEnum, unique

from apdu.openpgp.constants import KeySlot
from opcard.errors import (
    CardInUseError,
    CardNotAnsweringError,
    CardRemovedError,
    NoCardError,
    NotLoggedInError,
    OpcardError,
)
from opcard.pkcs11.rv import ReturnValue
from opcard.serve.confirm import KeyUse
from opcard.serve.errors import Pkcs11Error
from opcard.serve.log import logger
from opcard.serve.slots import Registry, Slot, SlotEvents
from opcard.serve.wire import (
    HANDSHAKE,
    NO_MECHANISM,
    Call,
    EcdhParameters,
    Reader,
    WireAttribute,
    WireMechanism,
    WireType,
    Writer,
    encode_size,
    encode_value,
    takes_no_parameter,
    wire_type,
)

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    # The object layer, the PKCS#11 tables, the mechanism rules and cryptography are imported
    # by the functions that use them: the first C_GetSlotList loads none of them (issue #15).
    from cryptography.hazmat.primitives import hashes

    from opcard.objects import CardObject
    from opcard.pkcs11.constants import AttributeValue, MechanismFlag
    from opcard.pkcs11.mechanisms import KeyInfo
    from opcard.session import Session


__all__ = ["Client", "LIBRARY_VERSION", "MAX_WAITS", "SlotWait"]


RV = ReturnValue

#: CK_INFO.libraryVersion (opcard's version).
LIBRARY_VERSION = (0, 1)
_MANUFACTURER = "opcard"
_DESCRIPTION = "opcard serve: OpenPGP cards"
#: Object handles: the slot's number in the top byte, opcard's handle below; session objects
#: (derived keys) have the top bit set.
_SLOT_SHIFT = 24
_LOCAL_MASK = (1 << _SLOT_SHIFT) - 1
_SESSION_OBJECT = 0x80000000
#: Largest input kept for a multi-part operation without a hash (raw CKM_RSA_PKCS, CKM_ECDSA).
_MAX_RAW_INPUT = 64 * 1024
#: Largest C_GenerateRandom answered.
_MAX_RANDOM = 1024 * 1024
#: CKF_DONT_BLOCK (C_WaitForSlotEvent).
_DONT_BLOCK = 0x1
#: Blocking C_WaitForSlotEvent calls one client may have in progress at once.
MAX_WAITS = 8


@functools.cache
def _secret_attributes() -> frozenset[int]:
    """Attributes of a private key that are secret (CKR_ATTRIBUTE_SENSITIVE, never served)."""
    from opcard.pkcs11.constants import Attribute

    return frozenset(
        int(a)
        for a in (
            Attribute.VALUE,
            Attribute.PRIVATE_EXPONENT,
            Attribute.PRIME_1,
            Attribute.PRIME_2,
            Attribute.EXPONENT_1,
            Attribute.EXPONENT_2,
            Attribute.COEFFICIENT,
        )
    )


# The transport-level conditions that mean "the card is gone".
_GONE = (CardRemovedError, NoCardError)

_session_handles = itertools.count(1)
_object_handles = itertools.count(1)
_counter_lock = threading.Lock()


def _next(counter: Iterator[int]) -> int:
    with _counter_lock:
        return next(counter)


@unique
class OperationKind(IntEnum):
    SIGN = 1
    DECRYPT = 2


class Operation:
    """An active C_SignInit / C_DecryptInit."""

    __slots__ = (
        "buffer",
        "hasher",
        "info",
        "key",
        "kind",
        "mechanism",
        "multipart",
        "result",
        "result_input",
        "use",
    )

    def __init__(
        self,
        kind: OperationKind,
        mechanism: int,
        key: KeySlot,
        info: KeyInfo,
        hasher: hashes.Hash | None = None,
        buffer: bytearray | None = None,
        multipart: bool = False,
        result: bytes | None = None,
        result_input: bytes | None = None,
        use: KeyUse | None = None,
    ) -> None:
        self.kind = kind
        self.mechanism = mechanism
        self.key = key
        self.info = info
        self.hasher = hasher
        #: The data of a multi-part signature so far (C_SignUpdate without a hash to update).
        self.buffer = bytearray() if buffer is None else buffer
        self.multipart = multipart
        #: A decryption done on the card whose result did not fit the caller's buffer: kept
        #: for the call that comes back with a bigger one (with the same input).
        self.result = result
        self.result_input = result_input
        #: What a confirmation names (``opcard serve --confirm``); None when none is asked.
        self.use = use

    def __repr__(self) -> str:  # no data nor result: they may be secret
        return f"<Operation {self.kind.name} mechanism {self.mechanism:#x} key {self.key.name}>"


class ClientSession:
    """A client's open session on a slot (its handle is the client's)."""

    __slots__ = ("flags", "found", "generation", "handle", "operation", "slot")

    def __init__(
        self,
        handle: int,
        slot: Slot,
        generation: int,
        flags: int,
        found: list[int] | None = None,
        operation: Operation | None = None,
    ) -> None:
        self.handle = handle
        self.slot = slot
        #: The slot's generation at C_OpenSession: the session is stale once it changes.
        self.generation = generation
        self.flags = flags
        #: The handles C_FindObjectsInit found and C_FindObjects has not returned yet.
        self.found = found
        self.operation = operation

    def __repr__(self) -> str:
        return (
            f"<ClientSession {self.handle:#x} on slot {self.slot.slot_id:#x} "
            f"flags {self.flags:#x} operation {self.operation!r}>"
        )


class SessionObject:
    """A key made by C_DeriveKey: lives in the client's memory until destroyed or the client
    goes away."""

    __slots__ = ("attributes", "handle", "slot_id")

    def __init__(self, handle: int, slot_id: int, attributes: dict[int, AttributeValue]) -> None:
        self.handle = handle
        self.slot_id = slot_id
        self.attributes = attributes

    def __repr__(self) -> str:  # not the attributes: CKA_VALUE is a secret
        return f"<SessionObject {self.handle:#x} on slot {self.slot_id:#x}>"

    @property
    def secret(self) -> bool:
        """CKA_VALUE may not be read (sensitive, or not extractable)."""
        from opcard.pkcs11.constants import Attribute

        return bool(self.attributes.get(Attribute.SENSITIVE)) or not self.attributes.get(
            Attribute.EXTRACTABLE, True
        )


Handler = Callable[["Client", Reader], "Writer | SlotWait"]
_HANDLERS: dict[Call, Handler] = {}


def _handles(*calls: Call) -> Callable[[Handler], Handler]:
    def register(f: Handler) -> Handler:
        for call in calls:
            _HANDLERS[call] = f
        return f

    return register


def _card_gone(error: BaseException) -> bool:
    """A card pulled out, also during an operation in flight (opcard's CardRemovedError, or
    the NoCardError of a reconnect that found no card, also behind another opcard error):
    CKR_DEVICE_REMOVED. A card another program took meanwhile (CardInUseError) is not gone."""
    found = _in_chain(error, _GONE)
    return found is not None and not isinstance(found, CardInUseError)


def _in_chain(
    error: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first exception of ``kinds`` in ``error``'s chain of causes and contexts."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reply(call: Call, signature: str = "") -> Writer:
    return Writer(call, signature)


def error_reply(return_value: int) -> bytes:
    """The body of an error reply: call id 0, signature ``u``, the CK_RV."""
    return Writer(Call.ERROR, "u").ulong(return_value).getvalue()


class SlotWait:
    """A blocking C_WaitForSlotEvent in progress. :meth:`outcome` — called on a thread of its
    own, the connection goes on serving the client's other calls — blocks until a token
    comes or goes (the reply carries its slot id), or the client finalizes or goes away
    (CKR_CRYPTOKI_NOT_INITIALIZED, as PKCS#11 wants for a C_Finalize during a wait)."""

    def __init__(self, client: Client, epoch: int) -> None:
        self.client = client
        self.epoch = epoch

    def outcome(self) -> tuple[bytes, int]:
        """The reply body and the CK_RV (blocks)."""
        try:
            slot_id = self.client.events.wait(since=self.epoch)
        finally:
            self.client.wait_ended()
        if slot_id is None:
            return error_reply(RV.CRYPTOKI_NOT_INITIALIZED), RV.CRYPTOKI_NOT_INITIALIZED
        reply = _reply(Call.WAIT_FOR_SLOT_EVENT, "u").ulong(slot_id)
        return reply.getvalue(), reply.rv


class Client:
    """One client connection's PKCS#11 state; :meth:`handle` answers its requests.

    ``confirm``, when given, is asked before every use of a private key (a signature, a
    decryption, an ECDH derivation) and before the card is locked; False answers
    CKR_FUNCTION_REJECTED without an APDU (``opcard serve --confirm``,
    :mod:`opcard.serve.confirm`)."""

    def __init__(
        self,
        registry: Registry,
        version: int,
        events: SlotEvents,
        *,
        peer: str = "client",
        confirm: Callable[[KeyUse], bool] | None = None,
    ) -> None:
        self.registry = registry
        self.version = version
        self.events = events
        self.peer = peer
        self.confirm = confirm
        self.initialized = False
        self.sessions: dict[int, ClientSession] = {}
        self.objects: dict[int, SessionObject] = {}
        #: The call being answered (C_DeriveKey and C_DeriveKey2 share a handler).
        self._current = Call.ERROR
        #: Blocking C_WaitForSlotEvent calls in progress.
        self._waits = 0
        self._waits_lock = threading.Lock()

    # -- dispatch -----------------------------------------------------------------------------

    def handle(self, call: int, reader: Reader) -> tuple[bytes, int] | SlotWait:
        """The reply body for ``call`` (its arguments in ``reader``) and the CK_RV — or, for a
        blocking C_WaitForSlotEvent with no event pending, a :class:`SlotWait` whose
        :meth:`~SlotWait.outcome` gives them later.
        Raises :class:`~opcard.serve.errors.FrameError` when the arguments are malformed."""
        try:
            known = Call(call)
        except ValueError:
            return error_reply(RV.FUNCTION_NOT_SUPPORTED), RV.FUNCTION_NOT_SUPPORTED
        handler = _HANDLERS.get(known)
        if handler is None:
            return error_reply(RV.FUNCTION_NOT_SUPPORTED), RV.FUNCTION_NOT_SUPPORTED
        self._current = known
        try:
            if known is not Call.INITIALIZE and not self.initialized:
                raise Pkcs11Error(RV.CRYPTOKI_NOT_INITIALIZED)
            reply = handler(self, reader)
            if isinstance(reply, SlotWait):
                return reply
            return reply.getvalue(), reply.rv
        except Pkcs11Error as e:
            return error_reply(e.return_value), e.return_value

    def close(self) -> None:
        """C_Finalize, or the connection ended: forget its sessions and objects (the cards'
        logins stay) and end its blocking waits."""
        self.sessions.clear()
        self.objects.clear()
        self.initialized = False
        self.events.interrupt()

    def wait_ended(self) -> None:
        """A :class:`SlotWait` is over."""
        with self._waits_lock:
            self._waits -= 1

    # -- helpers ------------------------------------------------------------------------------

    def _slot(self, slot_id: int, *, present: bool = True) -> Slot:
        slot = self.registry.get(slot_id)
        if slot is None:
            raise Pkcs11Error(RV.SLOT_ID_INVALID)
        if present and not slot.present:
            raise Pkcs11Error(RV.TOKEN_NOT_PRESENT)
        return slot

    def _session(self, handle: int) -> ClientSession:
        session = self.sessions.get(handle)
        if session is None:
            raise Pkcs11Error(RV.SESSION_HANDLE_INVALID)
        if session.generation != session.slot.generation:
            del self.sessions[handle]  # the token went away: the session is closed
            raise Pkcs11Error(RV.DEVICE_REMOVED)
        return session

    @contextlib.contextmanager
    def _card(self, slot: Slot, generation: int | None = None) -> Iterator[Session]:
        """The daemon's opcard session on ``slot``'s card, with the card locked; opcard
        errors become the CK_RV they carry (a card gone: CKR_DEVICE_REMOVED)."""
        with slot.lock:
            session = slot.session
            if session is None or (generation is not None and generation != slot.generation):
                raise Pkcs11Error(
                    RV.DEVICE_REMOVED if generation is not None else RV.TOKEN_NOT_PRESENT
                )
            try:
                yield session
            except Pkcs11Error:
                raise
            except OpcardError as e:  # the library translates the protocol layer's errors
                if _card_gone(e):
                    self.registry.card_lost()
                    raise Pkcs11Error(RV.DEVICE_REMOVED, str(e)) from e
                silent = _in_chain(e, CardNotAnsweringError)
                if silent is not None:  # the reader stays blocked until the card is pulled
                    logger.warning("%s: CKR_DEVICE_ERROR", silent)
                    raise Pkcs11Error(RV.DEVICE_ERROR, str(e)) from e
                raise Pkcs11Error(e.return_value, str(e)) from e

    def _object(
        self, cs: ClientSession, session: Session, handle: int, *, private_ok: bool = False
    ) -> CardObject:
        """The card object ``handle`` names in ``cs``'s slot (card locked by the caller).
        Private objects need the login; with ``private_ok`` their use without it is
        CKR_USER_NOT_LOGGED_IN rather than an invalid handle."""
        from opcard.objects import card_objects
        from opcard.pkcs11.basic import ObjectClass

        if handle >> _SLOT_SHIFT != cs.slot.number or handle & _SESSION_OBJECT:
            raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)
        local = handle & _LOCAL_MASK
        class_value = (local >> 16) - 1
        try:
            object_class = ObjectClass(class_value)
        except ValueError:
            raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID) from None
        index = local & 0xFFFF
        if object_class is ObjectClass.DATA:
            slots = None
        elif index in (1, 2, 3):
            slots = frozenset({index})
        else:
            raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)
        for obj in card_objects(session, frozenset({int(object_class)}), slots):
            if obj.handle == local:
                if _is_private(obj) and not session.user_logged_in:
                    raise Pkcs11Error(
                        RV.USER_NOT_LOGGED_IN if private_ok else RV.OBJECT_HANDLE_INVALID
                    )
                return obj
        raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)

    def _key(
        self,
        cs: ClientSession,
        session: Session,
        handle: int,
        usage: MechanismFlag,
        mechanism: int,
    ) -> tuple[KeySlot, KeyInfo]:
        """The private key ``handle`` names, checked for ``mechanism`` and ``usage``."""
        from opcard.objects import PrivateKey
        from opcard.pkcs11.mechanisms import check_mechanism

        if handle & _SESSION_OBJECT:
            raise Pkcs11Error(RV.KEY_HANDLE_INVALID)
        try:
            obj = self._object(cs, session, handle, private_ok=True)
        except Pkcs11Error as e:
            if e.return_value == RV.OBJECT_HANDLE_INVALID:
                raise Pkcs11Error(RV.KEY_HANDLE_INVALID) from None
            raise
        if not isinstance(obj, PrivateKey):
            raise Pkcs11Error(
                RV.KEY_HANDLE_INVALID if not _is_key(obj) else RV.KEY_FUNCTION_NOT_PERMITTED
            )
        info = obj.key_info
        check_mechanism(mechanism, info, usage)
        return obj.slot, info

    def _key_use(self, operation: str, session: Session, key: KeySlot) -> KeyUse | None:
        """What a confirmation prompt names (card locked by the caller); None without
        confirmations (nothing read from the card then)."""
        from opcard.objects import SLOT_LABELS

        if self.confirm is None:
            return None
        card = session.card
        # the token's label (cardholder name, cached after its first read) without the rest
        # of token_info(), which re-reads the PIN status
        label = card.cardholder().name_text or f"OpenPGP card {card.serial}"
        return KeyUse(operation, key.name, SLOT_LABELS[key], label, card.serial)

    def _confirmed(self, use: KeyUse | None) -> None:
        """Ask for the confirmation of ``use`` (card NOT locked: other connections go on
        meanwhile); CKR_FUNCTION_REJECTED when it is refused."""
        if self.confirm is None or use is None:
            return
        if not self.confirm(use):
            raise Pkcs11Error(RV.FUNCTION_REJECTED, "refused by the confirmation command")

    def _server_handle(self, slot: Slot, local: int) -> int:
        return (slot.number << _SLOT_SHIFT) | local

    # -- general ------------------------------------------------------------------------------

    @_handles(Call.INITIALIZE)
    def c_initialize(self, r: Reader) -> Writer:
        handshake = r.array_of_bytes()
        r.byte()  # reserved present
        r.array_of_bytes()  # reserved
        r.end()
        if handshake != HANDSHAKE:
            raise Pkcs11Error(RV.GENERAL_ERROR, "wrong handshake")
        if self.initialized:
            raise Pkcs11Error(RV.CRYPTOKI_ALREADY_INITIALIZED)
        self.initialized = True
        return _reply(Call.INITIALIZE)

    @_handles(Call.FINALIZE)
    def c_finalize(self, r: Reader) -> Writer:
        r.end()
        self.close()
        return _reply(Call.FINALIZE)

    @_handles(Call.GET_INFO)
    def c_get_info(self, r: Reader) -> Writer:
        r.end()
        return (
            _reply(Call.GET_INFO, "vsusv")
            .version(2, 40)
            .space_string(_MANUFACTURER, 32)
            .ulong(0)
            .space_string(_DESCRIPTION, 32)
            .version(*LIBRARY_VERSION)
        )

    @_handles(Call.GET_SLOT_LIST)
    def c_get_slot_list(self, r: Reader) -> Writer:
        present_only = bool(r.byte())
        capacity = r.buffer_length()
        r.end()
        ids = [s.slot_id for s in self.registry.slots(present_only=present_only)]
        w = _reply(Call.GET_SLOT_LIST, "au")
        if capacity < len(ids) or capacity == 0:
            return w.array_of_ulongs(None, len(ids))
        return w.array_of_ulongs(ids)

    @_handles(Call.GET_SLOT_INFO)
    def c_get_slot_info(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import SlotFlag

        slot = self._slot(r.ulong(), present=False)
        r.end()
        flags = SlotFlag.REMOVABLE_DEVICE | SlotFlag.HW_SLOT
        if slot.present:
            flags |= SlotFlag.TOKEN_PRESENT
        return (
            _reply(Call.GET_SLOT_INFO, "ssuvv")
            .space_string(slot.description, 64)
            .space_string(_MANUFACTURER, 32)
            .ulong(flags)
            .version(*LIBRARY_VERSION)
            .version(*LIBRARY_VERSION)
        )

    @_handles(Call.GET_TOKEN_INFO)
    def c_get_token_info(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import UNAVAILABLE_INFORMATION, TokenFlag

        slot = self._slot(r.ulong())
        r.end()
        with self._card(slot) as session:
            info = session.card.token_info()
            version = slot.version
        w = _reply(Call.GET_TOKEN_INFO, "ssssuuuuuuuuuuuvvs")
        w.space_string(info.label, 32).space_string(info.manufacturer, 32)
        w.space_string(info.model, 16).space_string(info.serial, 16)
        flags = info.flags
        if slot.logged_in:
            # the daemon holds the PIN: the token authenticates by itself, as a reader with a
            # keypad does — clients log in without a PIN (C_Login with NULL) and ask nobody
            flags |= TokenFlag.PROTECTED_AUTHENTICATION_PATH
        w.ulong(int(flags))
        w.ulong(0).ulong(UNAVAILABLE_INFORMATION)  # sessions: max (no limit), current
        w.ulong(0).ulong(UNAVAILABLE_INFORMATION)  # read/write sessions
        w.ulong(info.pin_max_length).ulong(info.pin_min_length)
        for _ in range(4):  # public and private memory, total and free
            w.ulong(UNAVAILABLE_INFORMATION)
        # hardwareVersion: the OpenPGP application's spec version (the AID, as before);
        # firmwareVersion: the card's firmware where it tells it (a YubiKey), else 0.0
        firmware = info.firmware_version
        w.version(*version).version(*(firmware[:2] if firmware else (0, 0)))
        return w.space_string("", 16)  # no clock on the token

    def _mechanisms(self, session: Session) -> dict[int, tuple[int, int, MechanismFlag]]:
        from opcard.pkcs11.constants import MechanismFlag
        from opcard.pkcs11.mechanisms import KeyInfo, mechanism_flags, mechanisms_for

        card = session.card
        found: dict[int, tuple[int, int, MechanismFlag]] = {}
        for key_slot in KeySlot:
            if not card.key_present(key_slot):
                continue
            algorithm = card.algorithm(key_slot)
            if algorithm is None:
                continue
            info = KeyInfo(key_slot, algorithm.key_type, algorithm.bits)
            for mechanism in mechanisms_for(info):
                flags = mechanism_flags(mechanism, info)
                low, high, known = found.get(
                    int(mechanism), (info.bits, info.bits, MechanismFlag(0))
                )
                found[int(mechanism)] = (min(low, info.bits), max(high, info.bits), known | flags)
        return found

    @_handles(Call.GET_MECHANISM_LIST)
    def c_get_mechanism_list(self, r: Reader) -> Writer:
        slot = self._slot(r.ulong())
        capacity = r.buffer_length()
        r.end()
        with self._card(slot) as session:
            mechanisms = sorted(self._mechanisms(session))
        w = _reply(Call.GET_MECHANISM_LIST, "au")
        if capacity < len(mechanisms) or capacity == 0:
            return w.array_of_ulongs(None, len(mechanisms))
        return w.array_of_ulongs(mechanisms)

    @_handles(Call.GET_MECHANISM_INFO)
    def c_get_mechanism_info(self, r: Reader) -> Writer:
        slot = self._slot(r.ulong())
        mechanism = r.ulong()
        r.end()
        with self._card(slot) as session:
            entry = self._mechanisms(session).get(mechanism)
        if entry is None:
            raise Pkcs11Error(RV.MECHANISM_INVALID)
        low, high, flags = entry
        return _reply(Call.GET_MECHANISM_INFO, "uuu").ulong(low).ulong(high).ulong(int(flags))

    # -- sessions -----------------------------------------------------------------------------

    @_handles(Call.OPEN_SESSION)
    def c_open_session(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import SessionFlag

        slot = self._slot(r.ulong())
        flags = r.ulong()
        r.end()
        if not flags & SessionFlag.SERIAL_SESSION:
            raise Pkcs11Error(RV.SESSION_PARALLEL_NOT_SUPPORTED)
        handle = _next(_session_handles)
        self.sessions[handle] = ClientSession(handle, slot, slot.generation, flags)
        return _reply(Call.OPEN_SESSION, "u").ulong(handle)

    @_handles(Call.CLOSE_SESSION)
    def c_close_session(self, r: Reader) -> Writer:
        handle = r.ulong()
        r.end()
        if self.sessions.pop(handle, None) is None:
            raise Pkcs11Error(RV.SESSION_HANDLE_INVALID)
        return _reply(Call.CLOSE_SESSION)

    @_handles(Call.CLOSE_ALL_SESSIONS)
    def c_close_all_sessions(self, r: Reader) -> Writer:
        slot = self._slot(r.ulong(), present=False)
        r.end()
        for handle in [h for h, s in self.sessions.items() if s.slot is slot]:
            del self.sessions[handle]
        return _reply(Call.CLOSE_ALL_SESSIONS)

    @_handles(Call.GET_SESSION_INFO)
    def c_get_session_info(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import SessionFlag, SessionState

        cs = self._session(r.ulong())
        r.end()
        rw = bool(cs.flags & SessionFlag.RW_SESSION)
        if cs.slot.logged_in:
            state = SessionState.RW_USER_FUNCTIONS if rw else SessionState.RO_USER_FUNCTIONS
        else:
            state = SessionState.RW_PUBLIC_SESSION if rw else SessionState.RO_PUBLIC_SESSION
        flags = SessionFlag.SERIAL_SESSION | (SessionFlag.RW_SESSION if rw else 0)
        return (
            _reply(Call.GET_SESSION_INFO, "uuuu")
            .ulong(cs.slot.slot_id)
            .ulong(state)
            .ulong(flags)
            .ulong(0)
        )

    @_handles(Call.LOGIN)
    def c_login(self, r: Reader) -> Writer:
        from opcard.pkcs11.basic import UserType

        cs = self._session(r.ulong())
        user_type = r.ulong()
        pin = r.array_of_bytes()
        r.end()
        slot = cs.slot
        if user_type == UserType.CONTEXT_SPECIFIC:
            # The daemon holds the PIN and re-verifies before each signature the card's C4
            # policy restricts: nothing to check here (and no PIN oracle).
            if not slot.logged_in:
                raise Pkcs11Error(RV.USER_NOT_LOGGED_IN)
            if cs.operation is None:
                raise Pkcs11Error(RV.OPERATION_NOT_INITIALIZED)
            return _reply(Call.LOGIN)
        if user_type != UserType.USER:
            # No security-officer login through the daemon: administration is `opcard`'s job.
            raise Pkcs11Error(RV.USER_TYPE_INVALID)
        with self._card(slot, cs.generation) as session:
            if session.user_logged_in:
                if pin is None:  # the protected authentication path: the daemon's PIN
                    return _reply(Call.LOGIN)
                raise Pkcs11Error(RV.USER_ALREADY_LOGGED_IN)
            if pin is None:
                raise Pkcs11Error(RV.ARGUMENTS_BAD)
            session.login(pin)
        logger.info("%s logged in to slot %#x", self.peer, slot.slot_id)
        return _reply(Call.LOGIN)

    @_handles(Call.LOGOUT)
    def c_logout(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        r.end()
        slot = cs.slot
        with self._card(slot, cs.generation) as session:
            if not session.user_logged_in:
                raise Pkcs11Error(RV.USER_NOT_LOGGED_IN)
            if not slot.operator_login:
                session.logout()
                logger.info("%s logged out of slot %#x", self.peer, slot.slot_id)
        return _reply(Call.LOGOUT)

    # -- objects ------------------------------------------------------------------------------

    @_handles(Call.FIND_OBJECTS_INIT)
    def c_find_objects_init(self, r: Reader) -> Writer:
        from opcard.pkcs11.template import matches_template

        cs = self._session(r.ulong())
        template = r.attribute_array()
        r.end()
        if cs.found is not None:
            raise Pkcs11Error(RV.OPERATION_ACTIVE)
        wanted = _template(template)
        found: list[int] = []
        if wanted is not None:
            with self._card(cs.slot, cs.generation) as session:
                for obj in session.find_objects(wanted):
                    if _is_private(obj) and not session.user_logged_in:
                        continue
                    found.append(self._server_handle(cs.slot, obj.handle))
            for derived in self.objects.values():
                in_slot = derived.slot_id == cs.slot.slot_id
                if in_slot and matches_template(wanted, derived.attributes):
                    found.append(derived.handle)
        cs.found = found
        return _reply(Call.FIND_OBJECTS_INIT)

    @_handles(Call.FIND_OBJECTS)
    def c_find_objects(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        capacity = r.buffer_length()
        r.end()
        if cs.found is None:
            raise Pkcs11Error(RV.OPERATION_NOT_INITIALIZED)
        batch, cs.found = cs.found[:capacity], cs.found[capacity:]
        return _reply(Call.FIND_OBJECTS, "au").array_of_ulongs(batch)

    @_handles(Call.FIND_OBJECTS_FINAL)
    def c_find_objects_final(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        r.end()
        if cs.found is None:
            raise Pkcs11Error(RV.OPERATION_NOT_INITIALIZED)
        cs.found = None
        return _reply(Call.FIND_OBJECTS_FINAL)

    @_handles(Call.GET_ATTRIBUTE_VALUE)
    def c_get_attribute_value(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import Attribute

        cs = self._session(r.ulong())
        handle = r.ulong()
        requested = r.attribute_buffer()
        r.end()
        w = _reply(Call.GET_ATTRIBUTE_VALUE, "aAu")
        w.u32(len(requested))
        sensitive = invalid = too_small = False
        if handle & _SESSION_OBJECT:
            derived = self.objects.get(handle)
            if derived is None or derived.slot_id != cs.slot.slot_id:
                raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)

            def value_of(kind: int) -> AttributeValue:
                assert derived is not None
                if kind == Attribute.VALUE and derived.secret:
                    raise NotLoggedInError("sensitive")
                return derived.attributes[kind]

            values = _collect(value_of, requested)
        else:
            with self._card(cs.slot, cs.generation) as session:
                obj = self._object(cs, session, handle)
                values = _collect(lambda kind: _card_value(obj, kind), requested)
        for (kind, capacity), value in zip(requested, values, strict=True):
            if value is _SENSITIVE:
                sensitive = True
                w.attribute(kind, None)
                continue
            if value is _INVALID:
                invalid = True
                w.attribute(kind, None)
                continue
            assert not isinstance(value, _Marker)
            length, encoded = encode_value(kind, _to_wire(kind, value))
            if capacity == 0:
                w.attribute(kind, length, encode_size(kind, length))
            elif capacity < length:
                too_small = True
                w.attribute(kind, None)
            else:
                w.attribute(kind, length, encoded)
        if sensitive:
            rv = RV.ATTRIBUTE_SENSITIVE
        elif invalid:
            rv = RV.ATTRIBUTE_TYPE_INVALID
        elif too_small:
            rv = RV.BUFFER_TOO_SMALL
        else:
            rv = RV.OK
        w.rv = rv
        return w.ulong(rv)

    @_handles(Call.GET_OBJECT_SIZE)
    def c_get_object_size(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import UNAVAILABLE_INFORMATION

        cs = self._session(r.ulong())
        handle = r.ulong()
        r.end()
        if handle & _SESSION_OBJECT:
            if handle not in self.objects:
                raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)
        else:
            with self._card(cs.slot, cs.generation) as session:
                self._object(cs, session, handle)
        return _reply(Call.GET_OBJECT_SIZE, "u").ulong(UNAVAILABLE_INFORMATION)

    @_handles(Call.DESTROY_OBJECT)
    def c_destroy_object(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        handle = r.ulong()
        r.end()
        if handle & _SESSION_OBJECT:
            derived = self.objects.get(handle)
            if derived is None or derived.slot_id != cs.slot.slot_id:
                raise Pkcs11Error(RV.OBJECT_HANDLE_INVALID)
            del self.objects[handle]
            return _reply(Call.DESTROY_OBJECT)
        with self._card(cs.slot, cs.generation) as session:
            self._object(cs, session, handle)
        raise Pkcs11Error(RV.ACTION_PROHIBITED, "the card's objects are not destroyable")

    # -- signing ------------------------------------------------------------------------------

    def _mechanism(self, r: Reader) -> WireMechanism:
        return r.mechanism(self.version)

    def _start(
        self, r: Reader, kind: OperationKind, usage: MechanismFlag
    ) -> tuple[ClientSession, Operation | None]:
        from cryptography.hazmat.primitives import hashes

        from opcard.pkcs11.mechanisms import HASH_ALGORITHMS, signing_hash

        cs = self._session(r.ulong())
        mechanism = self._mechanism(r)
        handle = r.ulong()
        r.end()
        if mechanism.type == NO_MECHANISM:  # cancel the active operation (PKCS#11 3.0)
            if cs.operation is not None and cs.operation.kind is kind:
                cs.operation = None
            return cs, None
        if cs.operation is not None:
            raise Pkcs11Error(RV.OPERATION_ACTIVE)
        if mechanism.parameter not in (None, b""):
            with self._card(cs.slot, cs.generation) as session:
                self._key(cs, session, handle, usage, mechanism.type)
            raise Pkcs11Error(RV.MECHANISM_PARAM_INVALID)
        with self._card(cs.slot, cs.generation) as session:
            key, info = self._key(cs, session, handle, usage, mechanism.type)
            use = self._key_use("sign" if kind is OperationKind.SIGN else "decrypt", session, key)
        operation = Operation(kind, mechanism.type, key, info, use=use)
        hash_name = signing_hash(mechanism.type)
        if hash_name is not None:
            operation.hasher = hashes.Hash(HASH_ALGORITHMS[hash_name])
        cs.operation = operation
        return cs, operation

    def _operation(self, cs: ClientSession, kind: OperationKind) -> Operation:
        operation = cs.operation
        if operation is None or operation.kind is not kind:
            raise Pkcs11Error(RV.OPERATION_NOT_INITIALIZED)
        return operation

    @_handles(Call.SIGN_INIT)
    def c_sign_init(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import MechanismFlag

        self._start(r, OperationKind.SIGN, MechanismFlag.SIGN)
        return _reply(Call.SIGN_INIT)

    def _signature(
        self,
        call: Call,
        cs: ClientSession,
        operation: Operation,
        capacity: int,
        sign: Callable[[Session], bytes],
    ) -> Writer:
        from opcard.pkcs11.mechanisms import signature_length

        w = _reply(call, "ay")
        length = signature_length(operation.info)
        if capacity == 0 or capacity == 0xFFFFFFFF or capacity < length:
            # a size query, or a buffer too small: answered without the card, the operation
            # stays active for the real call
            return w.array_of_bytes(None, length)
        try:
            self._confirmed(operation.use)
            with self._card(cs.slot, cs.generation) as session:
                signature = sign(session)
        finally:
            cs.operation = None
        return w.array_of_bytes(signature)

    @_handles(Call.SIGN)
    def c_sign(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        data = r.array_of_bytes() or b""
        capacity = r.buffer_length()
        r.end()
        operation = self._operation(cs, OperationKind.SIGN)
        if operation.multipart:
            raise Pkcs11Error(RV.OPERATION_ACTIVE)
        return self._signature(
            Call.SIGN,
            cs,
            operation,
            capacity,
            lambda session: session.sign(operation.key, data, operation.mechanism),
        )

    @_handles(Call.SIGN_UPDATE)
    def c_sign_update(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        data = r.array_of_bytes() or b""
        r.end()
        operation = self._operation(cs, OperationKind.SIGN)
        operation.multipart = True
        if operation.hasher is not None:
            operation.hasher.update(data)
        else:
            if len(operation.buffer) + len(data) > _MAX_RAW_INPUT:
                cs.operation = None
                raise Pkcs11Error(RV.DATA_LEN_RANGE)
            operation.buffer += data
        return _reply(Call.SIGN_UPDATE)

    @_handles(Call.SIGN_FINAL)
    def c_sign_final(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        capacity = r.buffer_length()
        r.end()
        operation = self._operation(cs, OperationKind.SIGN)

        def sign(session: Session) -> bytes:
            if operation.hasher is not None:
                digest = operation.hasher.copy().finalize()
                return session.sign_digest(operation.key, digest, operation.hasher.algorithm.name)
            return session.sign(operation.key, bytes(operation.buffer), operation.mechanism)

        return self._signature(Call.SIGN_FINAL, cs, operation, capacity, sign)

    # -- decryption ---------------------------------------------------------------------------

    @_handles(Call.DECRYPT_INIT)
    def c_decrypt_init(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import MechanismFlag

        self._start(r, OperationKind.DECRYPT, MechanismFlag.DECRYPT)
        return _reply(Call.DECRYPT_INIT)

    @_handles(Call.DECRYPT)
    def c_decrypt(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        data = r.array_of_bytes() or b""
        capacity = r.buffer_length()
        r.end()
        operation = self._operation(cs, OperationKind.DECRYPT)
        w = _reply(Call.DECRYPT, "ay")
        if capacity == 0:  # size query: at most the modulus length
            return w.array_of_bytes(None, (operation.info.bits + 7) // 8)
        if operation.result is not None and operation.result_input == data:
            plain = operation.result
        else:
            try:
                self._confirmed(operation.use)
                with self._card(cs.slot, cs.generation) as session:
                    plain = session.decrypt(operation.key, data, operation.mechanism)
            except Pkcs11Error:
                cs.operation = None
                raise
        if capacity == 0xFFFFFFFF or capacity < len(plain):
            operation.result, operation.result_input = plain, data
            return w.array_of_bytes(None, len(plain))
        cs.operation = None
        return w.array_of_bytes(plain)

    # -- key derivation (ECDH) ----------------------------------------------------------------

    @_handles(Call.DERIVE_KEY, Call.DERIVE_KEY2)
    def c_derive_key(self, r: Reader) -> Writer:
        from opcard.pkcs11.constants import Attribute, EcKdf, Mechanism, MechanismFlag

        call = Call.DERIVE_KEY2 if self._current == Call.DERIVE_KEY2 else Call.DERIVE_KEY
        cs = self._session(r.ulong())
        mechanism = self._mechanism(r)
        base = r.ulong()
        template = r.attribute_array()
        r.end()
        if mechanism.type != Mechanism.ECDH1_DERIVE:
            raise Pkcs11Error(RV.MECHANISM_INVALID)
        params = mechanism.parameter
        if not isinstance(params, EcdhParameters) or not params.public_data:
            raise Pkcs11Error(RV.MECHANISM_PARAM_INVALID)
        if params.kdf != EcKdf.NULL or params.shared_data:
            raise Pkcs11Error(RV.MECHANISM_PARAM_INVALID, "only CKD_NULL without shared data")
        attributes = _derived_attributes(template)
        with self._card(cs.slot, cs.generation) as session:
            key, info = self._key(cs, session, base, MechanismFlag.DERIVE, mechanism.type)
            point = _peer_point(params.public_data, info)
            use = self._key_use("derive", session, key)
            if use is None:
                secret = session.derive(key, point)
        if use is not None:  # asked without the card locked, then the card again
            self._confirmed(use)
            with self._card(cs.slot, cs.generation) as session:
                secret = session.derive(key, point)
        wanted = attributes.get(Attribute.VALUE_LEN)
        if isinstance(wanted, int) and wanted:
            if wanted > len(secret):
                raise Pkcs11Error(RV.TEMPLATE_INCONSISTENT)
            secret = secret[:wanted]
        attributes[Attribute.VALUE] = secret
        attributes[Attribute.VALUE_LEN] = len(secret)
        handle = _SESSION_OBJECT | _next(_object_handles)
        self.objects[handle] = SessionObject(handle, cs.slot.slot_id, attributes)
        if call is Call.DERIVE_KEY2:
            w = _reply(call, "uPu").ulong(RV.OK)
            if not takes_no_parameter(mechanism.type):
                w.byte(1 if mechanism.parameter is not None else 0)
            return w.ulong(handle)
        return _reply(call, "u").ulong(handle)

    # -- random, events, unsupported ----------------------------------------------------------

    @_handles(Call.GENERATE_RANDOM)
    def c_generate_random(self, r: Reader) -> Writer:
        cs = self._session(r.ulong())
        length = r.buffer_length()
        r.end()
        if length == 0xFFFFFFFF:
            length = 0
        if length > _MAX_RANDOM:
            raise Pkcs11Error(RV.ARGUMENTS_BAD)
        out = bytearray()
        if length:
            with self._card(cs.slot, cs.generation) as session:
                caps = session.card.application_data().extended_capabilities
                step = caps.max_challenge_length if caps is not None else 0
                if not step:
                    raise Pkcs11Error(RV.RANDOM_NO_RNG)
                while len(out) < length:
                    out += session.generate_random(min(step, length - len(out)))
        return _reply(Call.GENERATE_RANDOM, "ay").array_of_bytes(bytes(out[:length]))

    @_handles(Call.SEED_RANDOM)
    def c_seed_random(self, r: Reader) -> Writer:
        self._session(r.ulong())
        r.array_of_bytes()
        r.end()
        raise Pkcs11Error(RV.RANDOM_SEED_NOT_SUPPORTED)

    @_handles(Call.WAIT_FOR_SLOT_EVENT)
    def c_wait_for_slot_event(self, r: Reader) -> Writer | SlotWait:
        flags = r.ulong()
        r.end()
        slot_id = self.events.pop()
        if slot_id is not None:
            return _reply(Call.WAIT_FOR_SLOT_EVENT, "u").ulong(slot_id)
        if flags & _DONT_BLOCK:
            raise Pkcs11Error(RV.NO_EVENT)
        # Blocking: the server waits on a thread of its own and keeps answering the
        # client's other threads, whose calls p11-kit multiplexes on this connection.
        with self._waits_lock:
            if self._waits >= MAX_WAITS:
                raise Pkcs11Error(RV.FUNCTION_FAILED, "too many waits in progress")
            self._waits += 1
        return SlotWait(self, self.events.epoch)


# -- attribute values ---------------------------------------------------------------------


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_SENSITIVE = _Marker("SENSITIVE")
_INVALID = _Marker("INVALID")


def _is_private(obj: CardObject) -> bool:
    from opcard.pkcs11.constants import Attribute

    try:
        return obj[Attribute.PRIVATE] is True
    except KeyError:
        return False


def _is_key(obj: CardObject) -> bool:
    from opcard.pkcs11.basic import ObjectClass

    return obj.object_class in (ObjectClass.PUBLIC_KEY, ObjectClass.PRIVATE_KEY)


def _card_value(obj: CardObject, kind: int) -> AttributeValue:
    from opcard.objects import PrivateKey
    from opcard.pkcs11.constants import Attribute

    if isinstance(obj, PrivateKey):
        if kind in _secret_attributes():
            raise NotLoggedInError("a private key's secret never leaves the card")
        if kind == Attribute.ALWAYS_AUTHENTICATE:
            return False  # the daemon re-verifies itself (see the module docstring)
    return obj[kind]


def _collect(
    value_of: Callable[[int], AttributeValue], requested: list[tuple[int, int]]
) -> list[AttributeValue | _Marker]:
    values: list[AttributeValue | _Marker] = []
    for kind, _capacity in requested:
        try:
            values.append(value_of(kind))
        except NotLoggedInError:
            values.append(_SENSITIVE)
        except OpcardError:
            raise
        except (KeyError, ValueError):  # not an attribute of the object, or unknown
            values.append(_INVALID)
    return values


def _to_wire(kind: int, value: AttributeValue) -> bytes | int | tuple[int, ...] | None:
    """An opcard attribute value in the form p11-kit carries ``kind``."""
    wt = wire_type(kind)
    if isinstance(value, bool):
        if wt is WireType.BYTE_ARRAY:  # CKA_DESTROYABLE and other unlisted booleans
            return bytes((int(value),))
        return int(value)
    if isinstance(value, int):
        if wt in (WireType.BYTE, WireType.ULONG):
            return value
        return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    import datetime  # loaded by whoever made a date: not at start-up

    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d").encode("ascii")
    if value is None:
        return b"" if wt is WireType.DATE else None
    if isinstance(value, tuple):
        return value
    raise ValueError(f"attribute {kind:#x}: value not served")


def _from_wire(attribute: WireAttribute) -> object:
    """A template value from the wire, in the Python form opcard compares (by opcard's
    attribute kinds); raises ValueError when it cannot be one."""
    from opcard.pkcs11.constants import AttributeKind, attribute_kind

    value = attribute.value
    if attribute.length is None or isinstance(value, list):
        raise ValueError("no value")
    kind = attribute_kind(attribute.type)
    if kind is AttributeKind.BOOL:
        if isinstance(value, int):
            return bool(value)
        if isinstance(value, bytes) and len(value) == 1:
            return bool(value[0])
        raise ValueError("not a boolean")
    if kind is AttributeKind.ULONG:
        if isinstance(value, int):
            return value
        raise ValueError("not a CK_ULONG")
    if kind is AttributeKind.MECHANISM_ARRAY:
        if isinstance(value, tuple):
            return value
        raise ValueError("not a mechanism array")
    if kind is AttributeKind.DATE:
        return value or b""
    if isinstance(value, int):
        return bytes((value,))
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    raise ValueError("not bytes")


def _template(attributes: list[WireAttribute]) -> dict[int, AttributeValue] | None:
    """A normalised template, or None when no object can match it (an unknown attribute,
    a value of the wrong type)."""
    from opcard.pkcs11.constants import Attribute, normalise_attribute_value

    wanted: dict[int, AttributeValue] = {}
    for attribute in attributes:
        try:
            Attribute(attribute.type)
            wanted[attribute.type] = normalise_attribute_value(
                attribute.type, _from_wire(attribute)
            )
        except (ValueError, TypeError):
            return None
    return wanted


def _derived_attributes(template: list[WireAttribute]) -> dict[int, AttributeValue]:
    """The attributes of a key C_DeriveKey makes from ``template`` (CKR_TEMPLATE_* errors)."""
    from opcard.pkcs11.basic import ObjectClass
    from opcard.pkcs11.constants import Attribute, Mechanism
    from opcard.pkcs11.keytype import KeyType

    given = _template(template)
    if given is None:
        raise Pkcs11Error(RV.ATTRIBUTE_VALUE_INVALID)
    if given.get(Attribute.CLASS, ObjectClass.SECRET_KEY) != ObjectClass.SECRET_KEY:
        raise Pkcs11Error(RV.TEMPLATE_INCONSISTENT)
    if given.get(Attribute.TOKEN, False):
        raise Pkcs11Error(RV.TEMPLATE_INCONSISTENT, "derived keys are session objects")
    attributes: dict[int, AttributeValue] = {
        Attribute.CLASS: int(ObjectClass.SECRET_KEY),
        Attribute.KEY_TYPE: int(KeyType.GENERIC_SECRET),
        Attribute.TOKEN: False,
        Attribute.PRIVATE: False,
        Attribute.LABEL: "",
        Attribute.ID: b"",
        Attribute.SENSITIVE: False,
        Attribute.EXTRACTABLE: True,
        Attribute.ENCRYPT: False,
        Attribute.DECRYPT: False,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
        Attribute.LOCAL: False,
        Attribute.MODIFIABLE: False,
        Attribute.DESTROYABLE: True,
        Attribute.KEY_GEN_MECHANISM: int(Mechanism.ECDH1_DERIVE),
    }
    attributes.update(given)
    attributes[Attribute.ALWAYS_SENSITIVE] = False
    attributes[Attribute.NEVER_EXTRACTABLE] = False
    return attributes


def _peer_point(data: bytes, info: KeyInfo) -> bytes:
    """The peer's public value as the card wants it: an uncompressed point (or the 32 bytes
    of an X25519 key); PKCS#11 also allows it wrapped in a DER OCTET STRING."""
    from opcard.pkcs11.keytype import KeyType

    montgomery = info.key_type is KeyType.EC_MONTGOMERY
    expected = 32 if montgomery else 2 * ((info.bits + 7) // 8) + 1
    if len(data) == expected:
        return data
    if data[:1] == b"\x04":
        if len(data) == expected + 2 and data[1] == expected:
            return data[2:]
        if len(data) == expected + 3 and data[1] == 0x81 and data[2] == expected:
            return data[3:]
    raise Pkcs11Error(RV.MECHANISM_PARAM_INVALID, "the peer's point has the wrong length")
