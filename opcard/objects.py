"""The card's objects as PKCS#11 sees them: certificates, public keys, private keys, data.

Per key slot — SIG (CKA_ID 01), DEC (02), AUT (03) — a private key, a public key, and a
certificate when one is stored (a spec 2 card has one certificate, for AUT: SIG and DEC never
have one there); plus data objects for the URL, the login data and the four private DOs (when
the card has them: C0). Attribute values are computed on demand from the card's (cached) data,
so listing objects costs only the reads their attributes need.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar, TypeVar

from apdu.openpgp.constants import PRIVATE_DOS, Do, KeySlot, KeyStatus, Pw
from opcard.errors import NotLoggedInError
from opcard.pkcs11 import (
    Attribute,
    AttributeValue,
    CertificateCategory,
    CertificateType,
    KeyType,
    Mechanism,
    ObjectClass,
    normalise_template,
)
from opcard.pkcs11.mechanisms import KeyInfo
from opcard.pkcs11.template import matches_template
from opcard.publickeys import CardPublicKey, ec_params_der

if TYPE_CHECKING:
    from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped]
    from cryptography import x509

    from opcard.card import Card
    from opcard.keys import CardPrivateKey, CardSigningKey
    from opcard.pkcs11.uri import Pkcs11Uri
    from opcard.publickeys import CryptographyPublicKey
    from opcard.session import Session

__all__ = [
    "Certificate",
    "CardObject",
    "DataObject",
    "PrivateKey",
    "PublicKey",
    "SLOT_LABELS",
    "find_one",
]

#: Labels as OpenSC shows them, so users recognise the keys.
SLOT_LABELS = {
    KeySlot.SIG: "Signature key",
    KeySlot.DEC: "Encryption key",
    KeySlot.AUT: "Authentication key",
}
_CERT_LABELS = {
    KeySlot.SIG: "Signature certificate",
    KeySlot.DEC: "Encryption certificate",
    KeySlot.AUT: "Authentication certificate",
}

_PIN_KINDS = {Pw.PW1_OTHER: "user", Pw.PW3: "admin"}
# Data objects: tag → (label, PIN needed to read: None, "user" (PW1 82) or "admin" (PW3)).
DATA_OBJECTS: dict[int, tuple[str, str | None]] = {
    Do.URL: ("URL", None),
    Do.LOGIN_DATA: ("Login data", None),
    **{
        do: (f"Private DO {n}", None if read is None else _PIN_KINDS[read])
        for n, (do, (read, _)) in enumerate(PRIVATE_DOS.items(), 1)
    },
}
_APPLICATION = "OpenPGP card"


#: The attributes every object has (PKCS#11 storage objects).
_COMMON = (
    Attribute.CLASS,
    Attribute.TOKEN,
    Attribute.LABEL,
    Attribute.MODIFIABLE,
    Attribute.COPYABLE,
    Attribute.DESTROYABLE,
)


class CardObject:
    """An object on the card. ``obj[Attribute.LABEL]`` reads an attribute; :meth:`attributes`
    gives all of them. Reading an attribute may read the card once (then it is cached).

    Each class's :attr:`ATTRIBUTES` is the one table of the attributes it has: ``obj[a]``
    answers exactly those (an attribute outside it raises ``KeyError``), and
    :meth:`attributes` returns every one of them the object can show — all but those whose
    value this object lacks (the modulus of an EC key, the subject when no certificate is
    stored) or that need a PIN first."""

    object_class: ObjectClass
    #: The attributes this kind of object has, in a stable order.
    ATTRIBUTES: ClassVar[tuple[Attribute, ...]] = _COMMON
    _HAS: ClassVar[frozenset[Attribute]] = frozenset(_COMMON)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._HAS = frozenset(cls.ATTRIBUTES)

    def __init__(self, session: Session, handle: int) -> None:
        self.session = session
        self.handle = handle

    @property
    def card(self) -> Card:
        return self.session.card

    @property
    def label(self) -> str:
        raise NotImplementedError

    def _value(self, attribute: Attribute) -> AttributeValue:
        raise KeyError(attribute)

    def __getitem__(self, attribute: int) -> AttributeValue:
        attribute = Attribute(attribute)
        if attribute not in self._HAS:
            raise KeyError(attribute)
        if attribute is Attribute.CLASS:
            return int(self.object_class)
        if attribute is Attribute.TOKEN:
            return True
        if attribute is Attribute.LABEL:
            return self.label
        if attribute is Attribute.MODIFIABLE:
            return False
        if attribute is Attribute.COPYABLE or attribute is Attribute.DESTROYABLE:
            return False
        return self._value(attribute)

    def get(self, attribute: int, default: AttributeValue = None) -> AttributeValue:
        try:
            return self[attribute]
        except KeyError:
            return default

    def attributes(self) -> dict[Attribute, AttributeValue]:
        """Every attribute of the object (sensitive ones are not part of it)."""
        out: dict[Attribute, AttributeValue] = {}
        for attribute in self.ATTRIBUTES:
            try:
                out[attribute] = self[attribute]
            except (KeyError, NotLoggedInError):
                continue
        return out

    def matches(self, template: Mapping[int, object]) -> bool:
        """Whether this object matches a PKCS#11 ``template`` (:func:`opcard.pkcs11.template.
        matches_template`: an attribute it does not have, or cannot show before login, matches
        nothing). A value of the wrong type for its attribute raises ``TypeError``."""
        return matches_template(normalise_template(template), self.__getitem__)

    @property
    def uri(self) -> Pkcs11Uri:
        """The RFC 7512 URI of this object (token, object label, type, id)."""
        from opcard.pkcs11.uri import ObjectType, Pkcs11Uri  # not loaded to sign (2 ms)

        info = self.session.token_info()
        obj_id = self.get(Attribute.ID)
        return Pkcs11Uri(
            token=info.label,
            manufacturer=info.manufacturer,
            model=info.model,
            serial=info.serial,
            object_label=self.label,
            object_type=ObjectType.of(self.object_class),
            object_id=obj_id if isinstance(obj_id, bytes) else None,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r} handle={self.handle}>"


class _KeyObject(CardObject):
    def __init__(self, session: Session, handle: int, slot: KeySlot) -> None:
        super().__init__(session, handle)
        self.slot = slot

    @property
    def label(self) -> str:
        return SLOT_LABELS[self.slot]

    @property
    def id(self) -> bytes:
        return bytes((int(self.slot),))

    def public(self) -> CardPublicKey:
        key = self.card.public_key(self.slot)
        if key is None:
            raise KeyError(f"no key in the {self.slot.name} slot")
        return key

    @property
    def key_info(self) -> KeyInfo:
        key = self.public()
        return KeyInfo(self.slot, key.key_type, key.bits)

    def _key_value(self, attribute: Attribute) -> AttributeValue:
        key = self.public()
        if attribute is Attribute.ID:
            return self.id
        if attribute is Attribute.KEY_TYPE:
            return int(key.key_type)
        if attribute is Attribute.LOCAL:
            status = self.card.application_data().key_information
            return status is not None and status.status(self.slot) is KeyStatus.GENERATED
        if attribute is Attribute.PUBLIC_KEY_INFO:
            return key.spki_der()
        if attribute is Attribute.DERIVE:
            return self.slot is KeySlot.DEC and key.key_type is not KeyType.RSA
        if key.key_type is KeyType.RSA:
            if attribute is Attribute.MODULUS:
                return key.modulus
            if attribute is Attribute.PUBLIC_EXPONENT:
                return key.exponent
            if attribute is Attribute.MODULUS_BITS:
                return key.bits
        else:
            if attribute is Attribute.EC_PARAMS:
                assert key.algorithm.curve is not None
                return ec_params_der(key.algorithm.curve)
            if attribute is Attribute.EC_POINT:
                return key.ec_point_der()
        if attribute is Attribute.START_DATE or attribute is Attribute.END_DATE:
            return None
        if attribute is Attribute.SUBJECT:
            if self.slot not in self.card.certificate_slots():  # spec 2: AUT only
                raise KeyError(attribute)
            der = self.card.certificate(self.slot)
            if not der:
                raise KeyError(attribute)
            from asn1crypto import x509 as asn1_x509

            return bytes(asn1_x509.Certificate.load(der).subject.dump())
        raise KeyError(attribute)


class PublicKey(_KeyObject):
    """The public key of a slot (CKO_PUBLIC_KEY)."""

    object_class = ObjectClass.PUBLIC_KEY
    ATTRIBUTES = (
        *_COMMON,
        Attribute.PRIVATE,
        Attribute.ID,
        Attribute.KEY_TYPE,
        Attribute.LOCAL,
        Attribute.VERIFY,
        Attribute.ENCRYPT,
        Attribute.WRAP,
        Attribute.DERIVE,
        Attribute.MODULUS,
        Attribute.PUBLIC_EXPONENT,
        Attribute.MODULUS_BITS,
        Attribute.EC_PARAMS,
        Attribute.EC_POINT,
        Attribute.PUBLIC_KEY_INFO,
        Attribute.SUBJECT,
        Attribute.START_DATE,
        Attribute.END_DATE,
    )

    def _value(self, attribute: Attribute) -> AttributeValue:
        if attribute is Attribute.PRIVATE:
            return False
        if attribute is Attribute.VERIFY:
            return self.slot is not KeySlot.DEC
        if attribute is Attribute.ENCRYPT:
            return self.slot is KeySlot.DEC and self.public().key_type is KeyType.RSA
        if attribute is Attribute.WRAP:
            return False
        return self._key_value(attribute)

    def to_cryptography(self) -> CryptographyPublicKey:
        """This key as a ``cryptography`` public key."""
        return self.public().to_cryptography()


class PrivateKey(_KeyObject):
    """The private key of a slot (CKO_PRIVATE_KEY); it never leaves the card."""

    object_class = ObjectClass.PRIVATE_KEY
    ATTRIBUTES = (
        *_COMMON,
        Attribute.PRIVATE,
        Attribute.ID,
        Attribute.KEY_TYPE,
        Attribute.LOCAL,
        Attribute.SIGN,
        Attribute.SIGN_RECOVER,
        Attribute.DECRYPT,
        Attribute.UNWRAP,
        Attribute.DERIVE,
        Attribute.SENSITIVE,
        Attribute.ALWAYS_SENSITIVE,
        Attribute.EXTRACTABLE,
        Attribute.NEVER_EXTRACTABLE,
        Attribute.ALWAYS_AUTHENTICATE,
        Attribute.MODULUS,
        Attribute.PUBLIC_EXPONENT,
        Attribute.MODULUS_BITS,
        Attribute.EC_PARAMS,
        Attribute.EC_POINT,
        Attribute.PUBLIC_KEY_INFO,
        Attribute.SUBJECT,
        Attribute.START_DATE,
        Attribute.END_DATE,
    )

    def _value(self, attribute: Attribute) -> AttributeValue:
        if attribute in (Attribute.PRIVATE, Attribute.SENSITIVE, Attribute.ALWAYS_SENSITIVE):
            return True
        if attribute is Attribute.EXTRACTABLE:
            return False
        if attribute is Attribute.NEVER_EXTRACTABLE:
            return bool(self._key_value(Attribute.LOCAL))
        if attribute is Attribute.SIGN:
            return self.slot is not KeySlot.DEC
        if attribute is Attribute.SIGN_RECOVER or attribute is Attribute.UNWRAP:
            return False
        if attribute is Attribute.DECRYPT:
            return self.slot is KeySlot.DEC and self.public().key_type is KeyType.RSA
        if attribute is Attribute.ALWAYS_AUTHENTICATE:
            return self.slot is KeySlot.SIG and not self.session.pw1_valid_for_several()
        return self._key_value(attribute)

    # -- operations (delegated to the session) ----------------------------------------------

    def sign(self, data: bytes, mechanism: Mechanism | int | str | None = None) -> bytes:
        """Sign with a PKCS#11 mechanism (``Mechanism.ECDSA_SHA256`` or its name
        ``"ECDSA_SHA256"``; default: CKM_RSA_PKCS, CKM_ECDSA or CKM_EDDSA, with ``data`` in that
        mechanism's input format): :meth:`Session.sign <opcard.session.Session.sign>`."""
        return self.session.sign(self, data, mechanism)

    def decrypt(self, data: bytes, mechanism: Mechanism | int | str | None = None) -> bytes:
        """Decrypt a PKCS#1 v1.5 cryptogram (the RSA DEC key): :meth:`Session.decrypt
        <opcard.session.Session.decrypt>`."""
        return self.session.decrypt(self, data, mechanism)

    def derive(self, peer_point: bytes) -> bytes:
        """ECDH with the peer's public point (an ECC DEC key): :meth:`Session.derive
        <opcard.session.Session.derive>`."""
        return self.session.derive(self, peer_point)

    def to_cryptography_signer(self) -> CardSigningKey:
        """This key as a ``cryptography`` private key that signs (RSA, ECDSA or Ed25519): the
        type ``x509.CertificateBuilder.sign()`` and ``CertificateSigningRequestBuilder.sign()``
        take, so that typed code passes it on without narrowing :meth:`to_cryptography`'s
        union. The DEC key does not sign: :class:`~opcard.errors.UnsupportedMechanismError`
        (CKR_KEY_FUNCTION_NOT_PERMITTED), before anything is sent."""
        from opcard.errors import UnsupportedMechanismError
        from opcard.keys import CardX25519PrivateKey
        from opcard.pkcs11 import ReturnValue

        key = None if self.slot is KeySlot.DEC else self.to_cryptography()
        if key is None or isinstance(key, CardX25519PrivateKey):
            raise UnsupportedMechanismError(
                f"the {self.slot.name} key does not sign: use the SIG or AUT key",
                return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
            )
        return key

    def to_cryptography(self) -> CardPrivateKey:
        """This key as a ``cryptography`` private key (``sign()`` goes to the card)."""
        from opcard.keys import card_private_key

        return card_private_key(self)


class Certificate(CardObject):
    """A cardholder certificate (CKO_CERTIFICATE, X.509), stored for a key slot."""

    object_class = ObjectClass.CERTIFICATE
    ATTRIBUTES = (
        *_COMMON,
        Attribute.PRIVATE,
        Attribute.ID,
        Attribute.CERTIFICATE_TYPE,
        Attribute.CERTIFICATE_CATEGORY,
        Attribute.TRUSTED,
        Attribute.SUBJECT,
        Attribute.ISSUER,
        Attribute.SERIAL_NUMBER,
        Attribute.VALUE,
    )

    def __init__(self, session: Session, handle: int, slot: KeySlot) -> None:
        super().__init__(session, handle)
        self.slot = slot

    @property
    def label(self) -> str:
        return _CERT_LABELS[self.slot]

    @property
    def der(self) -> bytes:
        return self.card.certificate(self.slot)

    def _parsed(self) -> asn1_x509.Certificate:
        # asn1crypto's X.509 parser is imported when a certificate is parsed, not by every
        # command that opens a session (opcard sign)
        from asn1crypto import x509 as asn1_x509

        return asn1_x509.Certificate.load(self.der)

    def _value(self, attribute: Attribute) -> AttributeValue:
        if attribute is Attribute.PRIVATE or attribute is Attribute.TRUSTED:
            return False
        if attribute is Attribute.ID:
            return bytes((int(self.slot),))
        if attribute is Attribute.CERTIFICATE_TYPE:
            return int(CertificateType.X_509)
        if attribute is Attribute.CERTIFICATE_CATEGORY:
            return int(CertificateCategory.TOKEN_USER)
        if attribute is Attribute.VALUE:
            return self.der
        if attribute is Attribute.SUBJECT:
            return bytes(self._parsed().subject.dump())
        if attribute is Attribute.ISSUER:
            return bytes(self._parsed().issuer.dump())
        if attribute is Attribute.SERIAL_NUMBER:
            return bytes(self._parsed()["tbs_certificate"]["serial_number"].dump())
        raise KeyError(attribute)

    def to_cryptography(self) -> x509.Certificate:
        """This certificate as a ``cryptography`` ``x509.Certificate``."""
        from cryptography import x509

        return x509.load_der_x509_certificate(self.der)


class DataObject(CardObject):
    """A data object (CKO_DATA): URL, login data or a private-use DO."""

    object_class = ObjectClass.DATA
    ATTRIBUTES = (
        *_COMMON,
        Attribute.PRIVATE,
        Attribute.APPLICATION,
        Attribute.OBJECT_ID,
        Attribute.VALUE,
    )

    def __init__(self, session: Session, handle: int, tag: int) -> None:
        super().__init__(session, handle)
        self.tag = tag

    @property
    def label(self) -> str:
        return DATA_OBJECTS[self.tag][0]

    @property
    def private(self) -> bool:
        """CKA_PRIVATE: reading the value needs a PIN (private DO 3: the user PIN, private DO
        4: the admin PIN)."""
        return DATA_OBJECTS[self.tag][1] is not None

    @property
    def value(self) -> bytes:
        """The DO's bytes (CKA_VALUE): private DO 3 after the user PIN, private DO 4 after the
        admin PIN, else :class:`~opcard.errors.NotLoggedInError` (nothing is sent)."""
        value = self[Attribute.VALUE]
        assert isinstance(value, bytes)
        return value

    @property
    def read_access(self) -> str | None:
        """The PIN the card wants before it shows the value: None, "user" or "admin"."""
        return DATA_OBJECTS[self.tag][1]

    def _value(self, attribute: Attribute) -> AttributeValue:
        if attribute is Attribute.PRIVATE:
            return self.private
        if attribute is Attribute.APPLICATION:
            return _APPLICATION
        if attribute is Attribute.OBJECT_ID:
            return b""
        if attribute is Attribute.VALUE:
            access = self.read_access
            if access == "user" and not self.session.user_logged_in:
                raise NotLoggedInError(f"{self.label} can only be read after login")
            if access == "admin" and not self.session.so_logged_in:
                raise NotLoggedInError(f"{self.label} can only be read after the admin login")
            return self.card.data_object(self.tag)
        raise KeyError(attribute)


def _handle(object_class: ObjectClass, index: int) -> int:
    return ((int(object_class) + 1) << 16) | index


def card_objects(
    session: Session, classes: frozenset[int] | None = None, slots: frozenset[int] | None = None
) -> Iterator[CardObject]:
    """Every object on the card, in a stable order (handles stay valid for the session).

    ``classes`` / ``slots`` narrow the walk before anything is read: certificates are read
    only when certificates may match.
    """
    card = session.card

    def wanted(object_class: ObjectClass) -> bool:
        return classes is None or int(object_class) in classes

    certificates: dict[KeySlot, bytes] = {}
    if wanted(ObjectClass.CERTIFICATE):
        held = card.certificate_slots()  # spec 2 cards: AUT only (no SELECT DATA is sent)
        if slots is not None and len(slots) == 1:  # one slot named: read only its certificate
            certificates = {s: card.certificate(s) for s in held if int(s) in slots}
        else:
            certificates = card.certificates()
    for slot in KeySlot:
        if slots is not None and int(slot) not in slots:
            continue
        if (wanted(ObjectClass.PRIVATE_KEY) or wanted(ObjectClass.PUBLIC_KEY)) and card.key_present(
            slot
        ):
            if wanted(ObjectClass.PRIVATE_KEY):
                yield PrivateKey(session, _handle(ObjectClass.PRIVATE_KEY, slot), slot)
            if wanted(ObjectClass.PUBLIC_KEY):
                yield PublicKey(session, _handle(ObjectClass.PUBLIC_KEY, slot), slot)
        if certificates.get(slot):
            yield Certificate(session, _handle(ObjectClass.CERTIFICATE, slot), slot)
    if slots is None and wanted(ObjectClass.DATA):
        private_dos = card.has_private_dos()
        for tag in DATA_OBJECTS:
            if tag in PRIVATE_DOS and not private_dos:  # the card has none (C0)
                continue
            yield DataObject(session, _handle(ObjectClass.DATA, tag), tag)


# --- exactly one object (the typed accessors of Session) ---------------------------------------

_O = TypeVar("_O", bound=CardObject)

#: Object class → (how messages name it, the Session accessor that returns it).
_KINDS: dict[ObjectClass, tuple[str, str]] = {
    ObjectClass.PRIVATE_KEY: ("private key", "get_private_key"),
    ObjectClass.PUBLIC_KEY: ("public key", "get_public_key"),
    ObjectClass.CERTIFICATE: ("certificate", "get_certificate"),
    ObjectClass.DATA: ("data object", "get_data_object"),
}
_CLASSES: dict[ObjectClass, type[CardObject]] = {
    ObjectClass.PRIVATE_KEY: PrivateKey,
    ObjectClass.PUBLIC_KEY: PublicKey,
    ObjectClass.CERTIFICATE: Certificate,
    ObjectClass.DATA: DataObject,
}


def class_of(object_class: int) -> type[CardObject]:
    """The Python class of the card's objects of a CKA_CLASS (CardObject for other classes)."""
    try:
        return _CLASSES.get(ObjectClass(object_class), CardObject)
    except ValueError:
        return CardObject


def _kind(object_class: int) -> tuple[str, str | None]:
    try:
        oc = ObjectClass(object_class)
    except ValueError:
        return (f"object of class {object_class:#x}", None)
    name, accessor = _KINDS.get(oc, (oc.name.lower().replace("_", " "), ""))
    return name, accessor or None


def _describe(template: Mapping[int, object]) -> str:
    """How a message names what was asked for: "in the SIG slot with label 'URL'"."""
    parts = []
    obj_id = template.get(Attribute.ID)
    if isinstance(obj_id, bytes):
        slot = obj_id[0] if len(obj_id) == 1 and obj_id[0] in (1, 2, 3) else None
        parts.append(f"in the {KeySlot(slot).name} slot" if slot else f"with id {obj_id.hex()}")
    label = template.get(Attribute.LABEL)
    if label is not None:
        parts.append(f"with label {label!r}")
    return " ".join(parts) or "on the card"


def find_one(
    session: Session, cls: type[_O], object_class: int, template: Mapping[int, object]
) -> _O:
    """The one object of ``object_class`` matching ``template`` (a PKCS#11 template without
    CKA_CLASS), as ``cls``. None raises :class:`~opcard.errors.ObjectNotFoundError` with a
    message that says what the card has instead and which accessor finds it; several raise
    :class:`~opcard.errors.MultipleObjectsError` naming them."""
    from opcard.errors import MultipleObjectsError, ObjectNotFoundError

    found = list(session.find_objects({**template, Attribute.CLASS: object_class}))
    what, accessor = _kind(object_class)
    described = _describe(template)
    if len(found) == 1:
        obj = found[0]
        if not isinstance(obj, cls):  # pragma: no cover - the class table says otherwise
            raise TypeError(f"{obj!r} is not a {cls.__name__}")
        return obj
    if found:
        labels = ", ".join(repr(o.label) for o in found)
        hint = f": name one, e.g. {accessor}('sig')" if accessor and what != "data object" else ""
        if what == "data object":
            hint = ": name one, e.g. get_data_object('url')"
        raise MultipleObjectsError(f"{len(found)} {what}s match {described} ({labels}){hint}")
    message = f"no {what} {described}"
    others = [o for o in session.find_objects(dict(template)) if o.object_class != object_class]
    if template and others:
        kinds: dict[int, list[CardObject]] = {}
        for o in others:
            kinds.setdefault(int(o.object_class), []).append(o)
        hints = []
        for oc, objects in kinds.items():
            other, other_accessor = _kind(oc)
            plural = other + ("s" if len(objects) > 1 else "")
            use = f" (use {other_accessor})" if other_accessor else ""
            hints.append(f"{len(objects)} {plural}{use}")
        if set(template) == {Attribute.LABEL}:
            that = "with that label"
        elif set(template) == {Attribute.ID}:
            that = "in that slot" if described.endswith("slot") else "with that id"
        else:
            that = "matching that"
        message += f"; {that} the card has " + " and ".join(hints)
    else:
        present = list(session.find_objects({Attribute.CLASS: object_class}))
        if present:
            message += f"; the card's {what}s: " + ", ".join(repr(o.label) for o in present)
        else:
            message += f"; the card has no {what}s"
    raise ObjectNotFoundError(message)
