"""Sessions: login state, objects, private key operations, writes, and the fast signature path.

A :class:`Session` is a context manager over a :class:`~opcard.card.Card`. ``login(pin)``
verifies the user PIN once (PW1 as 82, which INTERNAL AUTHENTICATE, PSO:DECIPHER and the
private DOs need); the signature key's PW1-as-81 verification is made when first needed and
again only when the card's C4 policy says PW1 is valid for one signature. The session keeps the
PIN to do that — and only that: it never sends a PIN again after a failed attempt, and it
forgets it at logout or when the session ends.

The fast path (:meth:`Session.digest_signer`) costs one APDU per signature after login: no
SELECT, no GET DATA, no re-reading of the application data.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from apdu import errors as apdu_errors
from apdu.command import Command
from apdu.openpgp import commands as cmds
from apdu.openpgp.constants import Do, ExtendedCapability, KeySlot, Pw, Secret, UifMode
from apdu.openpgp.kdf import kdf_off, new_kdf_do
from apdu.openpgp.keys import ec_import_template, rsa_import_template
from apdu.openpgp.objects import AlgorithmAttributes, EcAttributes, RsaAttributes, Uif
from opcard.errors import (
    AlgorithmRefusedError,
    CardError,
    CardOperationError,
    CertificateTooLargeError,
    DataLengthError,
    NotLoggedInError,
    NotSupportedByCardError,
    ObjectNotFoundError,
    OpcardError,
    PinBlockedError,
    PinFormatError,
    UnsupportedMechanismError,
    WrongPinError,
)
from opcard.objects import CardObject, PrivateKey, card_objects
from opcard.pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, ReturnValue, UserType
from opcard.pkcs11.mechanisms import (
    CardOperation,
    KeyInfo,
    SignatureFormat,
    SignInput,
    ecdsa_raw_to_der,
    prepare_digest_sign_input,
    prepare_sign_input,
)
from opcard.pkcs11.template import matches_template, normalise_template
from opcard.pkcs11.uri import Pkcs11Uri
from opcard.publickeys import (
    CardPublicKey,
    KeyAlgorithm,
    UnsupportedKeyError,
    attributes_for,
    parse_algorithm,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from opcard.card import Card, CardFeatures, TokenInfo

__all__ = [
    "CertificateFormatError",
    "DigestSigner",
    "Session",
    "algorithm_attributes",
    "require_feature",
    "translate_error",
]

_SW_SECURITY = 0x6982


class CertificateFormatError(OpcardError, ValueError):
    """The bytes given as a certificate are no X.509 certificate (nothing was written)."""

    default_return_value = ReturnValue.DATA_INVALID


class _Pin:
    """A PIN held in memory for re-verification. Never printed."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<PIN redacted>"

    __str__ = __repr__


def _pin_bytes(pin: str | bytes, secret: Secret, what: str) -> bytes:
    value = pin.encode("utf-8") if isinstance(pin, str) else bytes(pin)
    if len(value) < secret.minimum_length:
        raise PinFormatError(
            f"the {what} must be at least {secret.minimum_length} characters; nothing was sent "
            "to the card"
        )
    if len(value) > 127:
        raise PinFormatError(f"the {what} is too long; nothing was sent to the card")
    return value


_PIN_NAMES = {Secret.PW1: "user PIN", Secret.PW3: "admin PIN", Secret.RESET_CODE: "reset code"}


def translate_error(err: apdu_errors.ApduError, what: str) -> OpcardError:
    """The opcard exception for an apdu-layer exception (the original stays as __cause__)."""
    if isinstance(err, apdu_errors.WrongPinError):
        return WrongPinError(what, err.retries)
    if isinstance(err, apdu_errors.PinBlockedError):
        return PinBlockedError(
            f"{what}: blocked — unblock it with the reset code or the admin PIN "
            "(opcard pin unblock)"
        )
    if isinstance(err, apdu_errors.SecurityStatusNotSatisfiedError):
        return NotLoggedInError(f"{what}: the card wants a PIN first (log in)")
    if isinstance(err, apdu_errors.CardStatusError):
        return CardOperationError(f"{what}: {err}", err.sw)
    if isinstance(err, apdu_errors.TransportError):
        return CardError(f"{what}: {err}")
    return CardError(f"{what}: the card's answer is malformed: {err}")


#: Feature (a :class:`~opcard.card.CardFeatures` field) → what messages call it.
_FEATURE_TEXT = {
    "kdf": "the PIN KDF (KDF-DO)",
    "reset_code": "the reset code",
    "private_dos": "private DOs (0101-0104)",
    "attestation": "attestation",
    "signature_counter": "the signature counter",
    "key_import": "key import",
}


def require_feature(card: Card, feature: str, what: str | None = None) -> None:
    """Raise :class:`NotSupportedByCardError` ("… is not supported by this card") when the card
    does not declare ``feature`` (a :class:`~opcard.card.CardFeatures` field). Reads only what
    the card declares (:meth:`~opcard.card.Card.supports`: the cached 6E, except for the
    signature counter and FA): call it before asking for a PIN."""
    if not card.supports(feature):
        text = what or _FEATURE_TEXT.get(feature, feature)
        raise NotSupportedByCardError(f"{text} is not supported by this card", feature)


def algorithm_attributes(
    card: Card, slot: KeySlot, algorithm: KeyAlgorithm
) -> AlgorithmAttributes | None:
    """The algorithm attributes to write into ``slot`` for ``algorithm``; None when the slot
    already declares it. Reads only (cached 6E, FA once): nothing is written, no PIN is asked.

    Where the card publishes its algorithm information (FA), an algorithm it does not list
    there is refused (:class:`~opcard.publickeys.UnsupportedKeyError`, naming what it lists)
    and the attributes are the card's own entry. Where it does not publish FA, nothing is
    refused on a guess: the attributes are built in the format the card uses in its current
    C1-C3 (:func:`apdu.openpgp.quirks.in_card_format`, as GnuPG) and the card is asked by
    writing them (:meth:`Session.set_algorithm`). A card whose C0 says the algorithm
    attributes cannot be changed refuses any other algorithm than the slot's
    (:class:`NotSupportedByCardError`), as GnuPG does.
    """
    from apdu.openpgp import quirks

    if algorithm.curve is None and algorithm.bits not in (2048, 3072, 4096):
        raise UnsupportedKeyError(
            f"RSA-{algorithm.bits}: OpenPGP cards take RSA 2048, 3072 or 4096 (nothing was written)"
        )
    wanted = attributes_for(algorithm, decryption=slot is KeySlot.DEC)
    ard = card.application_data()
    current = ard.attributes(slot)
    if _same_algorithm(current, wanted):
        return None
    caps = ard.extended_capabilities
    if caps is not None and not caps.flags & ExtendedCapability.ALGORITHM_ATTRIBUTES_CHANGEABLE:
        held = card.algorithm(slot)
        raise NotSupportedByCardError(
            f"this card cannot change the algorithm of a key slot (its extended capabilities "
            f"say so): the {slot.name} slot takes {held.name if held else 'its current one'}, "
            f"not {algorithm.name}",
            "algorithm_attributes_changeable",
        )
    listed = card.supported_algorithms()
    if listed is not None:
        names = ", ".join(dict.fromkeys(a.name for a in listed.get(slot, ()))) or "none"
        exact = card.listed_attributes(slot, algorithm)
        if exact is None:
            raise UnsupportedKeyError(
                f"this card does not support {algorithm.name} in the {slot.name} slot "
                f"(it supports: {names})"
            )
        return exact
    return quirks.in_card_format(wanted, current)


class Session:
    """A session with the card: login state, objects, operations. Use it as a context manager;
    leaving it logs out (the card forgets the verified PINs) and forgets the PINs."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self._user_pin: _Pin | None = None
        self._so_pin: _Pin | None = None
        self.user_logged_in = False
        self.so_logged_in = False
        self._pw81 = False  # PW1 currently verified as 81 (for PSO:CDS)
        self._closed = False

    # -- lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out (best effort) and forget the PINs."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OpcardError):
            self.logout()

    def token_info(self) -> TokenInfo:
        return self.card.token_info()

    def features(self) -> CardFeatures:
        """What the card declares it can do (:meth:`opcard.card.Card.features`)."""
        return self.card.features()

    def __repr__(self) -> str:
        state = "user" if self.user_logged_in else "public"
        if self.so_logged_in:
            state += "+so"
        return f"<Session {state} on {self.card!r}>"

    # -- PINs ---------------------------------------------------------------------------------

    def login(self, pin: str | bytes, user_type: UserType = UserType.USER) -> None:
        """Verify the user PIN (``UserType.USER``, PW1) or the admin PIN (``UserType.SO``,
        PW3). A wrong PIN raises :class:`WrongPinError` with the tries left; exactly one try is
        used, and the PIN is not kept."""
        if user_type is UserType.SO:
            value = _pin_bytes(pin, Secret.PW3, "admin PIN")
            self._verify(Pw.PW3, value, "admin PIN")
            self._so_pin = _Pin(value)
            self.so_logged_in = True
            return
        value = _pin_bytes(pin, Secret.PW1, "user PIN")
        self._verify(Pw.PW1_OTHER, value, "user PIN")
        self._user_pin = _Pin(value)
        self.user_logged_in = True
        self._pw81 = False

    def login_admin(self, pin: str | bytes) -> None:
        """Verify the admin PIN (PW3): needed for every write."""
        self.login(pin, UserType.SO)

    def _verify(self, pw: Pw, value: bytes, what: str, *, held: bool = False) -> None:
        """VERIFY ``pw``. When the card refuses it, the session forgets the PIN (it is never
        sent again). ``held``: the PIN is one the card accepted before; when the card was reset
        or re-inserted the VERIFY did not reach it, and it is sent once more after the
        reconnect. Transport failures keep the login state (the PIN was not refused)."""
        self.card.prepare_pin()
        try:
            try:
                self.card.applet.verify(pw, value)
            except apdu_errors.CardRemovedError:
                if not held:
                    raise
                self.card.applet.verify(pw, value)  # the channel reconnects and re-selects
        except apdu_errors.CardStatusError as e:
            if pw is Pw.PW3:
                self._so_pin, self.so_logged_in = None, False
            else:
                self._user_pin, self.user_logged_in, self._pw81 = None, False, False
            raise translate_error(e, what) from e
        except apdu_errors.ApduError as e:
            raise translate_error(e, what) from e

    def logout(self) -> None:
        """The card forgets the verified PINs (VERIFY P1=FF) and the session forgets them."""
        was_user, was_so = self.user_logged_in or self._pw81, self.so_logged_in
        self._user_pin = self._so_pin = None
        self.user_logged_in = self.so_logged_in = self._pw81 = False
        try:
            with self.card.channel.transaction():
                if was_user:
                    self.card.applet.unverify(Pw.PW1)
                    self.card.applet.unverify(Pw.PW1_OTHER)
                if was_so:
                    self.card.applet.unverify(Pw.PW3)
        except apdu_errors.CardStatusError:
            pass  # cards without VERIFY P1=FF: the verification ends with the card session
        except apdu_errors.ApduError as e:
            raise translate_error(e, "logout") from e

    def pin_status(self) -> dict[str, int]:
        """Tries left for the user PIN, the reset code and the admin PIN (fresh from C4)."""
        try:
            status = self.card.applet.get_pw_status()
        except apdu_errors.ApduError as e:
            raise translate_error(e, "PIN status") from e
        return {
            "user": status.retries_pw1,
            "reset_code": status.retries_reset_code,
            "admin": status.retries_pw3,
        }

    def pw1_valid_for_several(self) -> bool:
        pw = self.card.application_data().pw_status
        return pw is None or pw.pw1_valid_for_several_signatures

    def _ensure(self, pw: Pw) -> None:
        """Make sure ``pw`` is verified on the card, re-verifying with the PIN we hold."""
        if pw is Pw.PW3:
            if not self.so_logged_in:
                raise NotLoggedInError("this needs the admin PIN: log in as security officer")
            return
        if not self.user_logged_in or self._user_pin is None:
            raise NotLoggedInError("this needs the user PIN: log in first")
        if pw is Pw.PW1 and not self._pw81:
            self._verify(Pw.PW1, self._user_pin.value, "user PIN", held=True)
            self._pw81 = True

    def _reverify(self, pw: Pw) -> bool:
        """After 6982 on an operation: verify again with the PIN we hold (it was right before:
        the card was reset or another process dropped the verification). False when we hold
        no PIN for it."""
        pin = self._so_pin if pw is Pw.PW3 else self._user_pin
        if pin is None:
            return False
        self._verify(pw, pin.value, "admin PIN" if pw is Pw.PW3 else "user PIN", held=True)
        if pw is Pw.PW1:
            self._pw81 = True
        return True

    def change_pin(self, old: str | bytes, new: str | bytes, *, admin: bool = False) -> None:
        secret = Secret.PW3 if admin else Secret.PW1
        name = _PIN_NAMES[secret]
        old_b, new_b = _pin_bytes(old, secret, name), _pin_bytes(new, secret, f"new {name}")
        self.card.prepare_pin()
        try:
            self.card.applet.change_pin(Pw.PW3 if admin else Pw.PW1, old_b, new_b)
        except apdu_errors.ApduError as e:
            raise translate_error(e, name) from e
        finally:
            self.card.invalidate()
        if admin:
            self._so_pin = None
            self.so_logged_in = False
        else:
            self._user_pin = None
            self.user_logged_in = self._pw81 = False

    def unblock_pin(self, new: str | bytes, *, reset_code: str | bytes | None = None) -> None:
        """A new user PIN with the reset code, or (without it) after the admin PIN."""
        new_b = _pin_bytes(new, Secret.PW1, "new user PIN")
        code = (
            None if reset_code is None else _pin_bytes(reset_code, Secret.RESET_CODE, "reset code")
        )
        if code is not None:
            require_feature(self.card, "reset_code")
        if code is None:
            self._ensure(Pw.PW3)
        self.card.prepare_pin()
        try:
            self.card.applet.reset_retry_counter(new_b, reset_code=code)
        except apdu_errors.ApduError as e:
            raise translate_error(e, "reset code" if code else "unblock user PIN") from e
        finally:
            self.card.invalidate()

    def set_reset_code(self, code: str | bytes | None) -> None:
        """Set the reset code (PUT DATA D3, admin PIN), or delete it with None. A card without
        a reset code raises :class:`NotSupportedByCardError` before anything is sent."""
        require_feature(self.card, "reset_code")
        value = None if code is None else _pin_bytes(code, Secret.RESET_CODE, "reset code")
        self.card.prepare_pin()
        self._write(lambda: self.card.applet.set_reset_code(value), "set reset code")

    # -- objects ------------------------------------------------------------------------------

    def objects(self) -> list[CardObject]:
        return list(card_objects(self))

    def find_objects(
        self, template: Mapping[int, object] | None = None, **kwargs: object
    ) -> Iterator[CardObject]:
        """Objects matching every attribute of ``template`` (``{Attribute.CLASS: …}``) and of
        the keyword shortcuts ``object_class=``, ``id=``, ``label=``."""
        wanted: dict[int, object] = dict(template or {})
        if "object_class" in kwargs:
            wanted[Attribute.CLASS] = kwargs.pop("object_class")
        if "id" in kwargs:
            wanted[Attribute.ID] = kwargs.pop("id")
        if "label" in kwargs:
            wanted[Attribute.LABEL] = kwargs.pop("label")
        if kwargs:
            raise TypeError(f"unknown keyword(s): {', '.join(kwargs)}")
        normalised = normalise_template(wanted)  # a value of the wrong type: TypeError
        object_class = normalised.get(Attribute.CLASS)
        classes = None if not isinstance(object_class, int) else frozenset({object_class})
        slots = None
        obj_id = normalised.get(Attribute.ID)
        if isinstance(obj_id, bytes) and len(obj_id) == 1:
            slots = frozenset({obj_id[0]})
        try:
            for obj in card_objects(self, classes, slots):
                if matches_template(normalised, obj.__getitem__):
                    yield obj
        except apdu_errors.ApduError as e:
            raise translate_error(e, "reading the card's objects") from e

    def find_uri(self, uri: Pkcs11Uri | str) -> list[CardObject]:
        """The objects a ``pkcs11:`` URI names (RFC 7512 matching): none when its token
        attributes do not match this card, else the objects matching its ``object``, ``type``
        and ``id`` (all objects when it names none). A malformed URI raises
        :class:`~opcard.errors.UriError`."""
        parsed = Pkcs11Uri.parse(uri) if isinstance(uri, str) else uri
        if parsed.vendor_path or not parsed.matches_token(self.token_info().uri_attributes()):
            return []
        return list(self.find_objects(parsed.object_template()))

    def get_key(
        self,
        slot: KeySlot | str | int | None = None,
        *,
        object_class: ObjectClass = ObjectClass.PRIVATE_KEY,
        label: str | None = None,
        id: bytes | None = None,
    ) -> CardObject:
        """Exactly one key (or certificate); :class:`ObjectNotFoundError` when none or several
        match."""
        template: dict[int, object] = {Attribute.CLASS: object_class}
        if slot is not None:
            template[Attribute.ID] = bytes((int(_slot(slot)),))
        if id is not None:
            template[Attribute.ID] = id
        if label is not None:
            template[Attribute.LABEL] = label
        found = list(self.find_objects(template))
        if len(found) != 1:
            what = ObjectClass(object_class).name.lower().replace("_", " ")
            detail = f"slot {_slot(slot).name}" if slot is not None else "the template"
            if not found:
                raise ObjectNotFoundError(f"no {what} matches {detail}")
            raise ObjectNotFoundError(
                f"{len(found)} objects match {detail}: {', '.join(o.label for o in found)}"
            )
        return found[0]

    def private_key(self, slot: KeySlot | str | int) -> PrivateKey:
        key = self.get_key(slot)
        assert isinstance(key, PrivateKey)
        return key

    # -- private key operations ---------------------------------------------------------------

    def _key_info(self, slot: KeySlot) -> KeyInfo:
        """Key type and size from the (cached) application data: no APDU."""
        algorithm = self.card.algorithm(slot) if self.card.key_present(slot) else None
        if algorithm is None:
            raise ObjectNotFoundError(f"there is no key in the {slot.name} slot")
        return KeyInfo(slot, algorithm.key_type, algorithm.bits)

    def sign(
        self, key: PrivateKey | KeySlot | str, data: bytes, mechanism: int | None = None
    ) -> bytes:
        """Sign ``data`` with a PKCS#11 mechanism; the default is the raw mechanism of the key
        type (CKM_RSA_PKCS with a DigestInfo, CKM_ECDSA with a hash, CKM_EDDSA with a
        message). ECDSA signatures are r‖s, as PKCS#11 returns them."""
        slot = key.slot if isinstance(key, PrivateKey) else _slot(key)
        info = self._key_info(slot)
        if mechanism is None:
            default = _DEFAULT_SIGN.get(info.key_type)
            if default is None:  # X25519: a key agreement key
                raise UnsupportedMechanismError(
                    f"the {slot.name} key ({info.key_type.name}) cannot sign",
                    return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
                )
            mechanism = default
        prepared = prepare_sign_input(mechanism, info, data)
        return self._card_sign(slot, prepared)

    def sign_digest(self, key: PrivateKey | KeySlot | str, digest: bytes, hash_name: str) -> bytes:
        """Sign a ``digest`` made with ``hash_name`` (explicit; never guessed)."""
        slot = key.slot if isinstance(key, PrivateKey) else _slot(key)
        return self._card_sign(
            slot, prepare_digest_sign_input(self._key_info(slot), hash_name, digest)
        )

    def _card_sign(self, slot: KeySlot, prepared: SignInput) -> bytes:
        if not prepared.data:  # EdDSA of b"": the card's command needs a data field
            raise DataLengthError("an OpenPGP card cannot sign an empty message")
        if prepared.operation is CardOperation.COMPUTE_DIGITAL_SIGNATURE:
            pw, cmd = Pw.PW1, cmds.pso_compute_digital_signature(prepared.data)
        else:
            pw, cmd = Pw.PW1_OTHER, cmds.internal_authenticate(prepared.data)
        return self._private_operation(pw, cmd, f"sign with the {slot.name} key")

    def _send_verified(self, send: Callable[[Command], bytes], pw: Pw, cmd: Command) -> bytes:
        """``send(cmd)``; when the card says 6982 (it was reset, or another process dropped
        the verification) verify again with the PIN we hold and resend once. When the card was
        reset or re-inserted (CardRemovedError), the channel reconnects and re-selects on the
        next send: the command is sent again, once, the same way."""
        try:
            return self._send_or_reverify(send, pw, cmd)
        except apdu_errors.CardRemovedError:
            if pw is Pw.PW1:
                self._pw81 = False
            return self._send_or_reverify(send, pw, cmd)

    def _send_or_reverify(self, send: Callable[[Command], bytes], pw: Pw, cmd: Command) -> bytes:
        try:
            return send(cmd)
        except apdu_errors.SecurityStatusNotSatisfiedError:
            if not self._reverify(pw):
                raise
            return send(cmd)

    def _private_operation(self, pw: Pw, cmd: Command, what: str) -> bytes:
        self._ensure(pw)
        try:
            result = self._send_verified(self.card.channel.send, pw, cmd)
        except apdu_errors.ApduError as e:
            if pw is Pw.PW1:
                self._pw81 = False
            raise translate_error(e, what) from e
        if pw is Pw.PW1 and not self.pw1_valid_for_several():
            self._pw81 = False
        return result

    def decrypt(
        self, key: PrivateKey | KeySlot | str, data: bytes, mechanism: int | None = None
    ) -> bytes:
        """Decrypt an RSA PKCS#1 v1.5 cryptogram with the DEC key."""
        slot = key.slot if isinstance(key, PrivateKey) else _slot(key)
        info = self._key_info(slot)
        if slot is not KeySlot.DEC or info.key_type is not KeyType.RSA:
            raise UnsupportedKeyError(
                f"the {slot.name} key cannot decrypt (only an RSA DEC key can)"
            )
        if mechanism not in (None, Mechanism.RSA_PKCS):
            raise UnsupportedKeyError("OpenPGP cards decrypt PKCS#1 v1.5 (CKM_RSA_PKCS) only")
        cmd = cmds.pso_decipher(cmds.decipher_input_rsa(data))
        return self._private_operation(Pw.PW1_OTHER, cmd, "decrypt with the DEC key")

    def derive(self, key: PrivateKey | KeySlot | str, peer_point: bytes) -> bytes:
        """ECDH with the DEC key: the shared secret with the peer's public point."""
        slot = key.slot if isinstance(key, PrivateKey) else _slot(key)
        info = self._key_info(slot)
        if slot is not KeySlot.DEC or info.key_type is KeyType.RSA:
            raise UnsupportedKeyError(
                f"the {slot.name} key cannot derive (only an ECC DEC key can)"
            )
        cmd = cmds.pso_decipher(cmds.decipher_input_ecdh(peer_point))
        return self._private_operation(Pw.PW1_OTHER, cmd, "ECDH with the DEC key")

    def generate_random(self, length: int) -> bytes:
        try:
            return self.card.applet.get_challenge(length)
        except apdu_errors.ApduError as e:
            raise translate_error(e, "GET CHALLENGE") from e

    def digest_signer(self, slot: KeySlot | str = KeySlot.AUT) -> DigestSigner:
        """The fast path: a signer of digests for TLS client authentication (one APDU each)."""
        return DigestSigner(self, _slot(slot))

    # -- writes -------------------------------------------------------------------------------

    def _write(self, action: object, what: str) -> None:
        self._ensure(Pw.PW3)
        assert callable(action)
        try:
            # One PC/SC transaction: no other program's command between the steps of a write.
            # A 6982 then means another program made the card forget the admin PIN before it
            # began (its SELECT, a reset), so nothing protected was written yet: verify again
            # with the PIN this session holds and run the write once more.
            with self.card.channel.transaction():
                try:
                    action()
                except apdu_errors.SecurityStatusNotSatisfiedError:
                    if not self._reverify(Pw.PW3):
                        raise
                    action()
        except apdu_errors.ApduError as e:
            raise translate_error(e, what) from e
        finally:
            self.card.invalidate()

    def store_certificate(self, slot: KeySlot | str, certificate: bytes) -> None:
        """Write a DER certificate into ``slot`` (checked against the card's size limit first;
        nothing is sent when it is too large). On a spec 2 card only the AUT slot has a
        certificate: another slot raises :class:`NotSupportedByCardError` before any I/O."""
        slot = _slot(slot)
        self.card.check_certificate_slot(slot)
        der = _certificate_der(certificate)
        caps = self.card.application_data().extended_capabilities
        limit = caps.max_certificate_length if caps is not None else 0
        if limit and len(der) > limit:
            raise CertificateTooLargeError(
                f"the certificate is {len(der)} bytes; this card stores at most {limit}"
            )
        self._write(
            lambda: self.card.applet.put_certificate(slot, der, select=self.card.aid.is_v3),
            f"store {slot.name} certificate",
        )

    def delete_certificate(self, slot: KeySlot | str) -> None:
        slot = _slot(slot)
        self.card.check_certificate_slot(slot)
        self._write(
            lambda: self.card.applet.put_certificate(slot, b"", select=self.card.aid.is_v3),
            f"delete {slot.name} certificate",
        )

    def set_algorithm(self, slot: KeySlot | str, algorithm: KeyAlgorithm | str) -> None:
        """Declare ``algorithm`` for ``slot`` (PUT DATA C1/C2/C3, needs the admin PIN); this
        deletes the key in the slot. Nothing happens when the slot already declares it.

        What the card lists in FA is checked first (:func:`algorithm_attributes`); a card
        that does not list its algorithms is asked: when it refuses the attributes,
        :class:`~opcard.errors.AlgorithmRefusedError` carries its status word, and nothing
        on the card changed (PUT DATA C1-C3 is the first write of a key generation or
        import)."""
        slot = _slot(slot)
        alg = parse_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        attrs = algorithm_attributes(self.card, slot, alg)
        if attrs is None:
            return
        self._ensure(Pw.PW3)
        what = f"set the {slot.name} algorithm to {alg}"
        try:
            with self.card.channel.transaction():  # as _write: 6982 → verify again, once
                try:
                    self.card.applet.set_algorithm_attributes(slot, attrs)
                except apdu_errors.SecurityStatusNotSatisfiedError:
                    if not self._reverify(Pw.PW3):
                        raise
                    self.card.applet.set_algorithm_attributes(slot, attrs)
        except (
            apdu_errors.SecurityStatusNotSatisfiedError,
            apdu_errors.WrongPinError,
            apdu_errors.PinBlockedError,
        ) as e:
            raise translate_error(e, what) from e
        except apdu_errors.CardStatusError as e:
            raise AlgorithmRefusedError(
                f"the card refused {alg.name} for the {slot.name} slot (SW {e.sw:04X}): it may "
                "not support this algorithm; nothing on the card was changed",
                e.sw,
            ) from e
        except apdu_errors.ApduError as e:
            raise translate_error(e, what) from e
        finally:
            self.card.invalidate()

    def generate_key(
        self,
        slot: KeySlot | str,
        algorithm: KeyAlgorithm | str | None = None,
        *,
        created: int | None = None,
    ) -> CardPublicKey:
        """Generate a key on the card in ``slot`` (optionally changing its algorithm first),
        then write its OpenPGP fingerprint and generation time."""
        slot = _slot(slot)
        if algorithm is not None:
            self.set_algorithm(slot, algorithm)
        attrs = self.card.application_data().attributes(slot)
        when = int(time.time()) if created is None else created
        result: list[CardPublicKey] = []

        def action() -> None:
            material = self.card.applet.generate_key(slot)
            key = CardPublicKey.from_card(material, attrs)
            self._write_key_metadata(slot, key, when)
            result.append(key)

        self._write(action, f"generate the {slot.name} key")
        return result[0]

    def import_key(
        self,
        slot: KeySlot | str,
        private_key: PrivateKeyTypes | bytes,
        *,
        created: int | None = None,
        password: bytes | None = None,
    ) -> CardPublicKey:
        """Import a software private key into ``slot`` (the slot's algorithm is set to match),
        then write fingerprint and generation time (``created``, default now).

        ``private_key`` is a ``cryptography`` private key, or its PEM or DER encoding (PKCS#8
        or the traditional RSA/EC forms; ``password`` for an encrypted one): RSA 2048-4096,
        the NIST/brainpool/secp256k1 curves, Ed25519 (SIG, AUT) or X25519 (DEC). An unsuitable
        key is refused before anything is written; a card whose C0 says it imports no keys
        raises :class:`NotSupportedByCardError` before any I/O."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

        slot = _slot(slot)
        require_feature(self.card, "key_import")
        if isinstance(private_key, bytes | bytearray | memoryview):
            private_key = _load_private_key(bytes(private_key), password)
        if not isinstance(
            private_key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | x25519.X25519PrivateKey,
        ):
            raise UnsupportedKeyError(
                f"{type(private_key).__name__} keys cannot go on an OpenPGP card"
            )
        public = private_key.public_key()
        key = CardPublicKey.from_cryptography(public)
        self.set_algorithm(slot, key.algorithm)
        attrs = self.card.application_data().attributes(slot)
        if isinstance(private_key, rsa.RSAPrivateKey):
            assert isinstance(attrs, RsaAttributes)
            numbers = private_key.private_numbers()
            template = rsa_import_template(
                slot, attrs, e=numbers.public_numbers.e, p=numbers.p, q=numbers.q
            )
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            assert isinstance(attrs, EcAttributes) and key.algorithm.curve is not None
            template = ec_import_template(
                slot,
                key.algorithm.curve,
                private_key.private_numbers().private_value,
                public=key.point,
                attributes=attrs,
            )
        elif isinstance(private_key, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey):
            assert key.algorithm.curve is not None
            raw = private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            template = ec_import_template(
                slot,
                key.algorithm.curve,
                raw,
                public=key.point,
                attributes=attrs if isinstance(attrs, EcAttributes) else None,
            )
        else:
            raise UnsupportedKeyError(
                f"{type(private_key).__name__} keys cannot go on an OpenPGP card"
            )
        when = int(time.time()) if created is None else created

        def action() -> None:
            self.card.applet.import_key(template)
            self._write_key_metadata(slot, key, when)

        self._write(action, f"import the {slot.name} key")
        return key

    def _write_key_metadata(self, slot: KeySlot, key: CardPublicKey, created: int) -> None:
        """Fingerprint and generation time of the key just written. If the card refuses them
        the key is in the slot without them (OpenSC then hides it): say so plainly."""
        from opcard.openpgp import fingerprint_v4

        fingerprint = fingerprint_v4(key.to_cryptography(), created, slot.name.lower())
        try:
            self.card.applet.set_fingerprint(slot, fingerprint)
            self.card.applet.set_generation_time(slot, created)
        except apdu_errors.ApduError as e:
            raise CardOperationError(
                f"the {slot.name} key is on the card, but writing its fingerprint and "
                f"generation time failed ({e}); GnuPG and OpenSC may not show it until they "
                "are written: run the command again",
                getattr(e, "sw", None),
            ) from e

    def set_name(self, name: str) -> None:
        """Cardholder name, given as "Given Surname" (stored as ``Surname<<Given``)."""
        given, _, surname = name.strip().rpartition(" ")
        value = f"{surname}<<{given}".replace(" ", "<") if given else surname
        try:
            encoded = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                "the cardholder name must be Latin-1 text (ISO/IEC 8859-1): nothing was written"
            ) from None
        self.set_data(Do.NAME, encoded)

    def set_data(self, tag: int, value: bytes) -> None:
        """PUT DATA of a simple DO (URL 5F50, login 5E, name 5B, language 5F2D, sex 5F35,
        private DOs 0101-0104). Private DOs 1 and 3 need the user PIN, the rest the admin PIN.
        A card without private DOs raises :class:`NotSupportedByCardError` before any PIN."""
        if tag in _PRIVATE_DOS:
            require_feature(self.card, "private_dos", f"private DO {tag - 0x0100}")
        if tag in (Do.PRIVATE_USE_1, Do.PRIVATE_USE_3):
            self._ensure(Pw.PW1_OTHER)
            try:
                self.card.applet.put_data(tag, value)
            except apdu_errors.ApduError as e:
                raise translate_error(e, f"write DO {tag:04X}") from e
            finally:
                self.card.invalidate()
            return
        self._write(lambda: self.card.applet.put_data(tag, value), f"write DO {tag:04X}")

    def set_pw1_policy(self, several_signatures: bool) -> None:
        self._write(lambda: self.card.applet.set_pw1_policy(several_signatures), "set PW1 policy")

    def set_touch(self, slot: KeySlot | str, mode: UifMode) -> None:
        """Set the slot's touch policy (UIF, PUT DATA D6/D7/D8). A slot without a UIF DO in 6E
        raises :class:`NotSupportedByCardError` before any PIN."""
        slot = _slot(slot)
        if slot not in self.card.touch_slots():
            raise NotSupportedByCardError(
                f"touch (UIF) is not supported by this card for the {slot.name} key", "touch"
            )
        self._write(
            lambda: self.card.applet.set_uif(slot, Uif(int(mode))), f"set {slot.name} touch policy"
        )

    def enable_kdf(self) -> None:
        """Switch KDF on. The card resets PW1 and PW3 to their factory values (123456 /
        12345678), as the spec requires: change them afterwards. A card without KDF raises
        :class:`NotSupportedByCardError` before any PIN."""
        require_feature(self.card, "kdf")
        self._write(lambda: self.card.applet.set_kdf(new_kdf_do()), "enable KDF")
        self.card.kdf_changed()
        self._so_pin = self._user_pin = None
        self.so_logged_in = self.user_logged_in = self._pw81 = False

    def disable_kdf(self) -> None:
        require_feature(self.card, "kdf")
        self._write(lambda: self.card.applet.set_kdf(kdf_off()), "disable KDF")
        self.card.kdf_changed()
        self._so_pin = self._user_pin = None
        self.so_logged_in = self.user_logged_in = self._pw81 = False

    def factory_reset(self, admin_pin: str | bytes | None = None) -> None:
        """Erase everything: keys, certificates, data; PINs back to 123456 / 12345678.

        With the admin PIN (given here, or held by this session after ``login_admin``) the card
        is terminated after VERIFY PW3, as the spec allows, and no try is used. Without it, or
        on a card that wants them blocked (YubiKey NEO), both PINs are deliberately blocked
        first — only where the card says it will then terminate (its life cycle status, as
        GnuPG checks). A card without TERMINATE DF (Gnuk) raises
        :class:`NotSupportedByCardError`, one that terminates only after the admin PIN (the
        Ledger app) :class:`NotLoggedInError` when it was not given: in both cases nothing on
        the card changed (:meth:`apdu.openpgp.applet.OpenPgpApplet.factory_reset`)."""
        pin: bytes | None = None
        if admin_pin is not None:
            pin = _pin_bytes(admin_pin, Secret.PW3, "admin PIN")
        elif self.so_logged_in and self._so_pin is not None:
            pin = self._so_pin.value
        hist = self.card.application_data().historical_bytes
        life_cycle = None if hist is None else hist.life_cycle
        self.card.prepare_pin()
        changed = True
        try:
            self.card.applet.factory_reset(admin_pin=pin, life_cycle=life_cycle)
        except (apdu_errors.InsNotSupportedError, apdu_errors.ClaNotSupportedError) as e:
            changed = False
            raise NotSupportedByCardError(
                "a factory reset (TERMINATE DF) is not supported by this card; nothing on the "
                "card was changed",
                "factory_reset",
            ) from e
        except apdu_errors.SecurityStatusNotSatisfiedError as e:
            changed = False
            raise NotLoggedInError(
                "this card is reset only after the admin PIN (it does not declare the "
                "specification's life cycle, so blocking the PINs might leave it unusable): "
                "give the admin PIN; nothing on the card was changed"
            ) from e
        except (apdu_errors.WrongPinError, apdu_errors.PinBlockedError) as e:
            raise translate_error(e, "admin PIN") from e
        except apdu_errors.ApduError as e:
            raise translate_error(e, "factory reset") from e
        else:
            self.card.kdf_changed()  # KDF is off after a factory reset
        finally:
            self.card.invalidate()
            if changed:
                self._so_pin = self._user_pin = None
                self.so_logged_in = self.user_logged_in = self._pw81 = False


class DigestSigner:
    """Signs digests with one slot's key in one APDU each (the TLS client path).

    Made by :meth:`Session.digest_signer` after login. The command is built here and sent
    without a PC/SC transaction when it fits one APDU (one SCardTransmit is atomic in pcscd);
    nothing else is read or sent. ``sign_digest`` returns the card's raw signature (RSA
    PKCS#1 v1.5 bytes, ECDSA r‖s); ``sign_digest_der`` the DER ECDSA form TLS and X.509 use.
    """

    def __init__(self, session: Session, slot: KeySlot) -> None:
        self.session = session
        self.slot = slot
        self.key = session._key_info(slot)
        if slot is KeySlot.DEC:
            raise UnsupportedKeyError("the DEC key cannot sign")
        self._pw = Pw.PW1 if slot is KeySlot.SIG else Pw.PW1_OTHER
        session._ensure(self._pw)
        self._channel = session.card.channel
        self._once = slot is KeySlot.SIG and not session.pw1_valid_for_several()

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        prepared = prepare_digest_sign_input(self.key, hash_name, digest)
        if prepared.operation is CardOperation.COMPUTE_DIGITAL_SIGNATURE:
            cmd = cmds.pso_compute_digital_signature(prepared.data)
        else:
            cmd = cmds.internal_authenticate(prepared.data)
        session = self.session
        if self._once:
            session._ensure(self._pw)
        elif not session.user_logged_in:  # logged out, or the held PIN was refused
            raise NotLoggedInError("this needs the user PIN: log in first")
        try:
            result = session._send_verified(self._channel.send_atomic, self._pw, cmd)
        except apdu_errors.ApduError as e:
            raise translate_error(e, f"sign with the {self.slot.name} key") from e
        if self._once:
            session._pw81 = False
        return result

    def sign_digest_der(self, digest: bytes, hash_name: str) -> bytes:
        raw = self.sign_digest(digest, hash_name)
        if self.key.key_type is KeyType.EC:
            return ecdsa_raw_to_der(raw)
        return raw

    @property
    def output_format(self) -> SignatureFormat:
        if self.key.key_type is KeyType.RSA:
            return SignatureFormat.PKCS1_V1_5
        return (
            SignatureFormat.ECDSA_RAW if self.key.key_type is KeyType.EC else SignatureFormat.EDDSA
        )


_PRIVATE_DOS = frozenset({Do.PRIVATE_USE_1, Do.PRIVATE_USE_2, Do.PRIVATE_USE_3, Do.PRIVATE_USE_4})

_DEFAULT_SIGN = {
    KeyType.RSA: Mechanism.RSA_PKCS,
    KeyType.EC: Mechanism.ECDSA,
    KeyType.EC_EDWARDS: Mechanism.EDDSA,
}


def _slot(value: KeySlot | str | int | None) -> KeySlot:
    if value is None:
        raise ValueError("a key slot is needed")
    return KeySlot.parse(value)


def _load_private_key(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise UnsupportedKeyError(
            f"not a private key this card can take (PEM or DER, PKCS#8 or traditional): {e}"
        ) from e


def _certificate_der(certificate: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    data = bytes(certificate)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise CertificateFormatError(f"not an X.509 certificate (PEM or DER): {e}") from e
    return data


def _same_algorithm(current: object, wanted: object) -> bool:
    if isinstance(current, RsaAttributes) and isinstance(wanted, RsaAttributes):
        return current.n_bits == wanted.n_bits
    if isinstance(current, EcAttributes) and isinstance(wanted, EcAttributes):
        return current.oid == wanted.oid and current.algorithm == wanted.algorithm
    return False
