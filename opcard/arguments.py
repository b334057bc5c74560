"""What the public API accepts, in one place: a caller's argument in its natural form, made into
the form opcard works with — or refused with a message that says what to pass.

Every public entry point of :class:`~opcard.session.Session` and :class:`~opcard.card.Card`
runs its arguments through these helpers first, before any PIN is asked or anything is sent:

- key slots: ``KeySlot.SIG``, ``"sig"``, ``"SIG"``, ``1`` (:func:`key_slot`);
- data objects: ``Do.URL``, its tag ``0x5F50``, or a name as the documentation shows it:
  ``"url"``, ``"login"``, ``"name"``, ``"language"``, ``"sex"``, ``"private1"`` …
  ``"private4"`` (:func:`data_object`), and their values as bytes or text (:func:`do_value`);
- mechanisms: ``Mechanism.ECDSA_SHA256``, its number, ``"ECDSA_SHA256"`` or
  ``"CKM_ECDSA_SHA256"`` (:func:`mechanism`);
- hashes: a ``cryptography`` hash (``hashes.SHA256()`` or the class ``hashes.SHA256``) or a
  name (``"sha256"``, ``"SHA-256"``) (:func:`hash_name`);
- object classes: ``ObjectClass.CERTIFICATE``, its number, ``"certificate"``, ``"cert"``,
  ``"private_key"``, ``"private"`` … (:func:`object_class`);
- certificates: a ``cryptography`` ``x509.Certificate``, DER bytes, or PEM as bytes or text
  (:func:`certificate_der`);
- PINs: text (or bytes); an int is refused — as a number a PIN loses its leading zeros
  (:func:`pin`);
- data to sign or decrypt: bytes (:func:`data`).

Wrong types raise ``TypeError``, unknown names ``ValueError`` (an :class:`~opcard.errors.
OpcardError` where opcard has a class for the condition); each message names what to pass.
This module imports ``cryptography`` and the PKCS#11 tables only when an argument needs them,
so that :mod:`opcard.card` stays cheap to import.
"""

from __future__ import annotations

from apdu.openpgp.constants import Do, KeySlot, UifMode

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from enum import IntEnum
    from typing import TypeGuard, TypeVar

    from cryptography.hazmat.primitives import hashes

    from apdu.openpgp.objects import ExtendedCapabilities
    from opcard.pkcs11.constants import Mechanism, ObjectClass

    _E = TypeVar("_E", bound=IntEnum)

__all__ = [
    "DATA_OBJECT_NAMES",
    "certificate_der",
    "check_certificate_length",
    "check_do_length",
    "data",
    "data_object",
    "do_value",
    "hash_name",
    "key_id",
    "key_slot",
    "mechanism",
    "object_class",
    "pin",
    "touch_mode",
]

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _key(text: str) -> str:
    """Case, spaces, ``-`` and ``_`` do not matter in names."""
    return "".join(c for c in text.lower() if c not in " -_")


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_int(value: object) -> TypeGuard[int]:
    """An int, not a bool (``True`` is no slot, tag or mechanism)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _member(enum: type[_E], value: int) -> _E | int:
    """The enum member of ``value``, or ``value`` itself when the enum does not name it (a
    tag or mechanism number opcard has no name for is passed on as given)."""
    try:
        return enum(value)
    except ValueError:
        return value


# --- key slots -------------------------------------------------------------------------------


def key_slot(value: KeySlot | str | int) -> KeySlot:
    """``KeySlot.SIG`` from ``KeySlot.SIG``, ``"sig"``, ``"SIG"`` or ``1`` (DEC: 2, AUT: 3)."""
    if isinstance(value, KeySlot):
        return value
    if isinstance(value, str) or _is_int(value):
        return KeySlot.parse(value)
    raise TypeError(
        f"a key slot is KeySlot.SIG/DEC/AUT, 'sig'/'dec'/'aut' or 1/2/3, not {_type_name(value)}"
    )


def key_id(value: bytes | int | object) -> bytes:
    """A CKA_ID: bytes, or an int 0-255 (``3`` is ``b"\\x03"``, the AUT key's id)."""
    if isinstance(value, _BYTES_LIKE):
        return bytes(value)
    if _is_int(value) and 0 <= value <= 255:
        return bytes((value,))
    raise TypeError(f"an object id is bytes (b'\\x03') or an int 0-255, not {value!r}")


# --- data objects ----------------------------------------------------------------------------

#: The names of the data objects a caller writes or reads, as the documentation shows them.
DATA_OBJECT_NAMES: dict[str, Do] = {
    "url": Do.URL,
    "login": Do.LOGIN_DATA,
    "name": Do.NAME,
    "language": Do.LANGUAGE,
    "sex": Do.SEX,
    "private1": Do.PRIVATE_USE_1,
    "private2": Do.PRIVATE_USE_2,
    "private3": Do.PRIVATE_USE_3,
    "private4": Do.PRIVATE_USE_4,
}
#: Other spellings: the Do member names ("LOGIN_DATA", "PRIVATE_USE_1") and the data objects'
#: labels ("Login data", "Private DO 1").
_DO_ALIASES: dict[str, Do] = {
    **{_key(name): tag for name, tag in DATA_OBJECT_NAMES.items()},
    **{_key(tag.name): tag for tag in DATA_OBJECT_NAMES.values()},
    "logindata": Do.LOGIN_DATA,
    "lang": Do.LANGUAGE,
    **{f"privatedo{n}": Do(0x0100 + n) for n in range(1, 5)},
}
_DO_CHOICES = ", ".join(DATA_OBJECT_NAMES)


def data_object(value: Do | str | int) -> Do | int:
    """The tag of a data object: a :class:`Do`, a tag int (``0x5F50``), or a name ("url",
    "login", "name", "language", "sex", "private1" … "private4"; case, ``-`` and ``_`` do not
    matter; "LOGIN_DATA", "Private DO 1" work too)."""
    if isinstance(value, Do):
        return value
    if _is_int(value):
        return _member(Do, value)
    if isinstance(value, str):
        tag = _DO_ALIASES.get(_key(value))
        if tag is None:
            raise ValueError(
                f"no data object named {value!r}: use one of {_DO_CHOICES} "
                "(or a Do member such as Do.URL, or the tag as an int)"
            )
        return tag
    raise TypeError(
        f"a data object is named by a string ({_DO_CHOICES}), a Do member (Do.URL) or its tag "
        f"as an int, not {_type_name(value)}"
    )


def do_name(tag: int) -> str:
    """How messages name a data object: "URL (5F50)"."""
    for name, known in DATA_OBJECT_NAMES.items():
        if known == tag:
            label = "URL" if name == "url" else name
            return f"{label} (DO {tag:02X})"
    return f"DO {tag:02X}"


def do_value(tag: int, value: bytes | str) -> bytes:
    """The bytes to write into a data object: bytes as given; text encoded (the name as
    ISO 8859-1, as the specification wants it; everything else as UTF-8)."""
    if isinstance(value, _BYTES_LIKE):
        return bytes(value)
    if isinstance(value, str):
        if tag == Do.NAME:
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(
                    "the cardholder name must be Latin-1 text (ISO/IEC 8859-1): nothing was written"
                ) from None
        return value.encode("utf-8")
    raise TypeError(f"the value of {do_name(tag)} is bytes or str, not {_type_name(value)}")


def check_do_length(tag: int, value: bytes, caps: ExtendedCapabilities | None) -> None:
    """Refuse (before sending) a value longer than the card stores: the URL, the login data and
    the private DOs up to the maximum length of special DOs the card declares in its extended
    capabilities (C0, spec 3); the name up to 39 bytes, the language 8, the sex 1 (§4.4.3)."""
    from opcard.errors import DataLengthError

    fixed = {Do.NAME: 39, Do.LANGUAGE: 8, Do.SEX: 1}
    if tag in fixed:
        limit = fixed[Do(tag)]
        source = "the OpenPGP card specification's limit"
    elif tag in _SPECIAL_DOS and caps is not None and caps.max_special_do_length:
        limit = caps.max_special_do_length
        source = "the maximum length of special DOs in the card's extended capabilities (C0)"
    else:
        return
    if len(value) > limit:
        raise DataLengthError(
            f"{do_name(tag)}: {len(value)} bytes is too long; this card stores at most {limit} "
            f"bytes there ({source}); nothing was written"
        )


_SPECIAL_DOS = frozenset(
    {Do.URL, Do.LOGIN_DATA, Do.PRIVATE_USE_1, Do.PRIVATE_USE_2, Do.PRIVATE_USE_3, Do.PRIVATE_USE_4}
)


# --- PINs and data ---------------------------------------------------------------------------


def pin(value: str | bytes, what: str, call: str) -> str | bytes:
    """A PIN as text (or bytes), never an int: as a number a PIN loses its leading zeros
    (``012345`` is not even an int literal), so an int is refused with a message showing
    ``call`` (``"session.login('123456')"``). Nothing is sent to the card."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if _is_int(value):
        raise TypeError(
            f"give the {what} as a string: {call} (as an int a PIN loses its leading zeros)"
        )
    raise TypeError(f"give the {what} as a string, e.g. {call}; not {_type_name(value)}")


def data(value: bytes, what: str) -> bytes:
    """Bytes to sign, decrypt or derive with: bytes-like; text is refused (which encoding?)."""
    if isinstance(value, _BYTES_LIKE):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{what} is bytes: encode the text first, e.g. {value[:12]!r}.encode()")
    raise TypeError(f"{what} is bytes, not {_type_name(value)}")


# --- mechanisms, hashes, object classes --------------------------------------------------------


def mechanism(value: Mechanism | int | str) -> int:
    """A PKCS#11 mechanism: a :class:`~opcard.pkcs11.Mechanism`, its number, or its name with
    or without ``CKM_`` (``"ECDSA_SHA256"``, ``"CKM_ECDSA_SHA256"``, ``"ecdsa-sha256"``)."""
    from opcard.pkcs11.constants import Mechanism

    if isinstance(value, Mechanism):
        return value
    if _is_int(value):
        return _member(Mechanism, value)
    if isinstance(value, str):
        name = value.strip().upper().replace("-", "_")
        name = name.removeprefix("CKM_")
        try:
            return Mechanism[name]
        except KeyError:
            pass
        import difflib

        from opcard.errors import UnsupportedMechanismError

        close = difflib.get_close_matches(name, Mechanism.__members__, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnsupportedMechanismError(
            f"no PKCS#11 mechanism named {value!r}{hint}: give an opcard.Mechanism "
            "(Mechanism.ECDSA_SHA256) or its name ('ECDSA_SHA256' or 'CKM_ECDSA_SHA256')"
        )
    raise TypeError(
        "a mechanism is an opcard.Mechanism (Mechanism.ECDSA_SHA256), its name "
        f"('ECDSA_SHA256') or its number, not {_type_name(value)}"
    )


def hash_name(value: hashes.HashAlgorithm | type[hashes.HashAlgorithm] | str) -> str:
    """The hash name opcard uses (``"sha256"``) of a ``cryptography`` hash (an instance such
    as ``hashes.SHA256()``, or the class) or a name (``"sha256"``, ``"SHA-256"``)."""
    from opcard.pkcs11.mechanisms import hash_name_of

    if isinstance(value, str):  # a name: no cryptography (~4 ms to import) on opcard sign
        return hash_name_of(value)
    from cryptography.hazmat.primitives import hashes as _hashes

    if isinstance(value, type) and issubclass(value, _hashes.HashAlgorithm):
        return hash_name_of(str(value.name))
    if isinstance(value, _hashes.HashAlgorithm):
        return hash_name_of(value)
    raise TypeError(
        "a hash is a cryptography hash (hashes.SHA256()) or its name ('sha256'), not "
        f"{_type_name(value)}"
    )


_CLASS_NAMES = {
    "privatekey": "PRIVATE_KEY",
    "private": "PRIVATE_KEY",
    "publickey": "PUBLIC_KEY",
    "public": "PUBLIC_KEY",
    "certificate": "CERTIFICATE",
    "cert": "CERTIFICATE",
    "data": "DATA",
    "dataobject": "DATA",
}


def object_class(value: ObjectClass | int | str | object) -> ObjectClass | int:
    """A CKA_CLASS: an :class:`~opcard.pkcs11.ObjectClass`, its number, or a name
    (``"private_key"``/``"private"``, ``"public_key"``/``"public"``, ``"certificate"``/
    ``"cert"``, ``"data"``; the ``pkcs11:`` URI ``type`` names work)."""
    from opcard.pkcs11.constants import ObjectClass

    if isinstance(value, ObjectClass):
        return value
    if _is_int(value):
        return _member(ObjectClass, value)
    if isinstance(value, str):
        name = _CLASS_NAMES.get(_key(value.removeprefix("CKO_").removeprefix("cko_")))
        if name is None:
            raise ValueError(
                f"no object class named {value!r}: use ObjectClass.PRIVATE_KEY/PUBLIC_KEY/"
                "CERTIFICATE/DATA or 'private_key', 'public_key', 'certificate', 'data'"
            )
        return ObjectClass[name]
    raise TypeError(
        f"an object class is an ObjectClass or its name ('certificate'), not {_type_name(value)}"
    )


def touch_mode(value: UifMode | int | str) -> UifMode:
    """A touch policy: a :class:`UifMode`, its byte, or its name (``"enabled"``, ``"on"``,
    ``"disabled"``, ``"off"``, ``"permanently_enabled"``, ``"fixed"``, ``"cached"``,
    ``"permanently_cached"``, ``"cached_fixed"``)."""
    if isinstance(value, UifMode):
        return value
    if _is_int(value):
        return UifMode(value)
    if isinstance(value, str):
        aliases = {"on": "ENABLED", "off": "DISABLED", "fixed": "PERMANENTLY_ENABLED"}
        aliases["cachedfixed"] = "PERMANENTLY_CACHED"
        wanted = _key(value)
        for member in UifMode:
            if _key(member.name) == wanted:
                return member
        if wanted in aliases:
            return UifMode[aliases[wanted]]
        raise ValueError(
            f"no touch policy named {value!r}: use a UifMode or 'on', 'off', 'fixed', "
            "'cached' or 'cached-fixed'"
        )
    raise TypeError(f"a touch policy is a UifMode or its name ('on'), not {_type_name(value)}")


# --- certificates ------------------------------------------------------------------------------


def certificate_der(value: object) -> bytes:
    """DER of a certificate given as a ``cryptography`` ``x509.Certificate``, DER bytes, or PEM
    (bytes or text). What is not a certificate raises
    :class:`~opcard.errors.CertificateFormatError`, saying what is wrong in our words (the
    parser's own error stays as ``__cause__``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from opcard.errors import CertificateFormatError

    if isinstance(value, x509.Certificate):
        return value.public_bytes(Encoding.DER)
    if isinstance(value, str):
        if "-----BEGIN" not in value:
            raise CertificateFormatError(
                "a certificate given as text must be PEM ('-----BEGIN CERTIFICATE-----' …); "
                "give DER as bytes"
            )
        value = value.encode("ascii", "replace")
    if not isinstance(value, _BYTES_LIKE):
        raise TypeError(
            "a certificate is a cryptography x509.Certificate, DER bytes or PEM, not "
            f"{_type_name(value)}"
        )
    raw = bytes(value)
    if raw.lstrip().startswith(b"-----BEGIN"):
        if b"-----BEGIN CERTIFICATE-----" not in raw:
            kind = raw.lstrip()[11:].split(b"-----", 1)[0].decode("ascii", "replace")
            raise CertificateFormatError(
                f"the PEM text holds a {kind!r} block, not a CERTIFICATE: nothing was written"
            )
        try:
            return x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
        except ValueError as e:
            raise CertificateFormatError(
                "the PEM CERTIFICATE block does not hold a valid X.509 certificate (its base64 "
                "is damaged, or the DER inside is not a certificate): nothing was written"
            ) from e
    problem = _der_problem(raw)
    try:
        x509.load_der_x509_certificate(raw)
    except ValueError as e:
        raise CertificateFormatError(
            f"not an X.509 certificate: {problem or 'the DER structure is not a certificate'}; "
            "nothing was written (give DER or PEM bytes, or an x509.Certificate)"
        ) from e
    return raw


def _der_problem(raw: bytes) -> str | None:
    """What is wrong with the outer DER of a would-be certificate, or None."""
    if not raw:
        return "no bytes"
    if raw[0] != 0x30:
        return f"a certificate starts with a DER SEQUENCE (30), these bytes with {raw[0]:02X}"
    if len(raw) < 2:
        return "the bytes end after the first byte"
    first = raw[1]
    if first < 0x80:
        length, header = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count:
            return "the outer length is malformed"
        length, header = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    if header + length > len(raw):
        return f"the DER is cut short: it announces {header + length} bytes, {len(raw)} are given"
    if header + length < len(raw):
        return f"{len(raw) - header - length} bytes follow the certificate's DER"
    return None


def check_certificate_length(der: bytes, caps: ExtendedCapabilities | None) -> None:
    """Refuse (before sending) a certificate longer than the card's maximum certificate length
    (extended capabilities C0). A maximum of 0 means the card stores no certificate (a Gnuk
    built without certificate support says so), which GnuPG refuses too."""
    from opcard.errors import CertificateTooLargeError

    if caps is None:
        return
    limit = caps.max_certificate_length
    if limit == 0:
        raise CertificateTooLargeError(
            "this card declares a maximum certificate length of 0 in its extended capabilities "
            "(C0): it cannot store a certificate; nothing was sent to the card"
        )
    if len(der) > limit:
        raise CertificateTooLargeError(
            f"the certificate is {len(der)} bytes; this card stores at most {limit} (the maximum "
            "certificate length in its extended capabilities, C0): nothing was sent to the card"
        )
