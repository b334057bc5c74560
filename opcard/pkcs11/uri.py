"""RFC 7512 ``pkcs11:`` URIs: parse, format and match tokens and objects.

A URI has path attributes separated by ``;`` (which token, slot, library or object) and,
after ``?``, query attributes separated by ``&`` (how to get the PIN or the module)::

    pkcs11:token=OpenPGP%20card;serial=000500001234;object=Signature%20key;type=private
        ?pin-source=file:/run/user/1000/pin

Parsing follows the RFC's ABNF (section 2.3): attribute names are case-insensitive (RFC 5234
strings); a value may hold unreserved characters, the RFC's "available" reserved characters
(``: [ ] @ ! $ ' ( ) * + , =``, plus ``&`` in the path and ``/ ? |`` in the query) and
``%XX`` escapes with hex digits of either case; anything else is an error. A path attribute may
appear only once; ``pin-source`` and ``pin-value`` together are refused (RFC 7512 2.3: "SHOULD
be refused"). Unknown ("vendor") attributes are kept, in order, and formatted back. Formatting
escapes everything outside those sets as ``%XX`` with upper-case hex digits (UTF-8 for text),
escapes the whole ``id`` value (RFC 7512 2.3 recommends it), and writes the attributes in the
order the RFC lists them.

Matching (RFC 7512 2.4 and 2.5): a URI matches when every attribute it names matches; an
attribute it does not name matches anything; an unknown path attribute matches nothing. Token,
slot and library texts are compared with the trailing blanks of the PKCS#11 fixed-size fields
removed.

``pin-value`` is a secret: ``repr()`` shows ``pin-value=<redacted>``; ``str()`` and
:meth:`Pkcs11Uri.format` leave it out unless called with ``include_pin=True``; error messages
never quote values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum, unique
from typing import cast

from opcard.errors import UriError
from opcard.pkcs11 import Attribute, AttributeValue, ObjectClass
from opcard.pkcs11.template import matches_template

__all__ = ["ObjectType", "Pkcs11Uri", "parse_uri"]

SCHEME = "pkcs11"

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_RES_AVAIL = frozenset(":[]@!$'()*+,=")
#: characters a path value may hold literally (pk11-pchar without pct-encoded)
PATH_SAFE = _UNRESERVED | _RES_AVAIL | {"&"}
#: characters a query value may hold literally (pk11-qchar without pct-encoded)
QUERY_SAFE = _UNRESERVED | _RES_AVAIL | {"/", "?", "|"}
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_VERSION = re.compile(r"([0-9]+)(?:\.([0-9]+))?\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_HEX = frozenset("0123456789abcdefABCDEF")
_ULONG_MAX = 0xFFFFFFFFFFFFFFFF
_REDACTED = "<redacted>"


@unique
class ObjectType(StrEnum):
    """The ``type`` path attribute, i.e. the object's CKA_CLASS."""

    PUBLIC = "public"
    PRIVATE = "private"
    CERT = "cert"
    SECRET_KEY = "secret-key"
    DATA = "data"

    @property
    def object_class(self) -> ObjectClass:
        return _CLASS_OF[self]

    @classmethod
    def of(cls, object_class: int) -> ObjectType:
        """The type of a CKA_CLASS value (ValueError for classes a URI cannot name)."""
        for member, value in _CLASS_OF.items():
            if value == object_class:
                return member
        raise ValueError(f"RFC 7512 has no type for object class {object_class:#x}")


_CLASS_OF = {
    ObjectType.PUBLIC: ObjectClass.PUBLIC_KEY,
    ObjectType.PRIVATE: ObjectClass.PRIVATE_KEY,
    ObjectType.CERT: ObjectClass.CERTIFICATE,
    ObjectType.SECRET_KEY: ObjectClass.SECRET_KEY,
    ObjectType.DATA: ObjectClass.DATA,
}

# RFC attribute name ↔ dataclass field, in the RFC's order (section 2.3)
_PATH_FIELDS = {
    "token": "token",
    "manufacturer": "manufacturer",
    "serial": "serial",
    "model": "model",
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "object": "object_label",
    "type": "object_type",
    "id": "object_id",
    "slot-description": "slot_description",
    "slot-manufacturer": "slot_manufacturer",
    "slot-id": "slot_id",
}
_QUERY_FIELDS = {
    "pin-source": "pin_source",
    "pin-value": "pin_value",
    "module-name": "module_name",
    "module-path": "module_path",
}
_KNOWN = _PATH_FIELDS.keys() | _QUERY_FIELDS.keys()
# path attributes that describe the token, its slot or its library (CK_TOKEN_INFO,
# CK_SLOT_INFO, CK_INFO) as opposed to the object
_TOKEN_LEVEL = (
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
)
_TEXT_FIELDS = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "library_manufacturer",
        "library_description",
        "object_label",
        "slot_description",
        "slot_manufacturer",
        "pin_source",
        "pin_value",
        "module_name",
        "module_path",
    }
)


# --- percent-encoding ----------------------------------------------------------------------


def _decode(raw: str, safe: frozenset[str], name: str) -> bytes:
    """Percent-decode ``raw`` (a path or query value); every literal char must be in ``safe``."""
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise UriError(f"invalid %-escape in the value of {name!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in safe:
            raise UriError(
                f"character {c!r} must be %-encoded in the value of {name!r}"
                if c.isascii() and c.isprintable() and name != "pin-value"
                else f"a character in the value of {name!r} must be %-encoded"
            )
        out.append(ord(c))
        i += 1
    return bytes(out)


def _encode(value: bytes, safe: frozenset[str]) -> str:
    return "".join(chr(b) if chr(b) in safe else f"%{b:02X}" for b in value)


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UriError(f"the value of {name!r} is not UTF-8") from None


# --- the URI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pkcs11Uri:
    """An RFC 7512 URI. Fields are None when the attribute is absent ("" is an empty value).

    The path attributes ``object``, ``type`` and ``id`` are the fields ``object_label``,
    ``object_type`` and ``object_id`` (bytes); ``library_version`` is ``(major, minor)``
    (``library-version=3`` is ``(3, 0)``); ``slot_id`` is an int. Unknown attributes are in
    ``vendor_path`` / ``vendor_query`` as ``(name, value)`` pairs, names in lower case.
    """

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: tuple[int, int] | None = None
    object_label: str | None = None
    object_type: ObjectType | None = None
    object_id: bytes | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    slot_id: int | None = None
    pin_source: str | None = None
    pin_value: str | None = None
    module_name: str | None = None
    module_path: str | None = None
    vendor_path: tuple[tuple[str, str], ...] = ()
    vendor_query: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _TEXT_FIELDS and value is not None and not isinstance(value, str):
                raise TypeError(f"{f.name} must be a str, not {type(value).__name__}")
        if self.object_id is not None and not isinstance(self.object_id, bytes):
            raise TypeError("object_id must be bytes")
        if self.object_type is not None:
            object.__setattr__(self, "object_type", ObjectType(self.object_type))
        if self.library_version is not None:
            major, minor = self.library_version
            if not (0 <= major <= 255 and 0 <= minor <= 255):
                raise UriError("library-version: major and minor must be 0..255 (CK_VERSION)")
        if self.slot_id is not None and not 0 <= self.slot_id <= _ULONG_MAX:
            raise UriError("slot-id must be a CK_SLOT_ID (0..2**64-1)")
        if self.pin_source is not None and self.pin_value is not None:
            raise UriError("a URI may not hold both pin-source and pin-value (RFC 7512 2.3)")
        seen: set[str] = set()
        for name, value in self.vendor_path:
            _check_vendor(name, value, seen, "path")
        for name, value in self.vendor_query:
            _check_vendor(name, value, set(), "query")
        # attribute names are case-insensitive: keep them in lower case, as parse() does
        object.__setattr__(self, "vendor_path", tuple((n.lower(), v) for n, v in self.vendor_path))
        object.__setattr__(
            self, "vendor_query", tuple((n.lower(), v) for n, v in self.vendor_query)
        )

    # --- parse and format ------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse an RFC 7512 URI; :class:`~opcard.errors.UriError` when it is malformed."""
        if not isinstance(text, str):
            raise TypeError(f"a pkcs11 URI is a str, not {type(text).__name__}")
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() != SCHEME:
            raise UriError("not a pkcs11: URI")
        if "#" in rest:
            raise UriError("a pkcs11 URI has no fragment ('#' must be %-encoded)")
        path, _, query = rest.partition("?")
        values: dict[str, object] = {}
        vendor_path: list[tuple[str, str]] = []
        vendor_query: list[tuple[str, str]] = []
        seen_path: set[str] = set()
        for name, raw in _components(path, ";", "path"):
            if name in seen_path:
                raise UriError(f"path attribute {name!r} appears twice")
            seen_path.add(name)
            decoded = _decode(raw, PATH_SAFE, name)
            if name in _QUERY_FIELDS:
                raise UriError(f"{name!r} belongs in the query part (after '?')")
            if name not in _PATH_FIELDS:
                vendor_path.append((name, _text(decoded, name)))
                continue
            values[_PATH_FIELDS[name]] = _path_value(name, decoded)
        seen_query: set[str] = set()
        for name, raw in _components(query, "&", "query"):
            decoded = _decode(raw, QUERY_SAFE, name)
            if name in _PATH_FIELDS:
                raise UriError(f"{name!r} belongs in the path part (before '?')")
            if name not in _QUERY_FIELDS:
                vendor_query.append((name, _text(decoded, name)))
                continue
            if name in seen_query:
                raise UriError(f"query attribute {name!r} appears twice")
            seen_query.add(name)
            values[_QUERY_FIELDS[name]] = _text(decoded, name)
        return cls(
            vendor_path=tuple(vendor_path),
            vendor_query=tuple(vendor_query),
            **values,  # type: ignore[arg-type]
        )

    def format(self, *, include_pin: bool = False) -> str:
        """The URI text; ``pin-value`` only with ``include_pin=True``."""
        return self._format(self.pin_value if include_pin else None)

    def _format(self, pin: str | None) -> str:
        path: list[str] = []
        for name, field_name in _PATH_FIELDS.items():
            value = getattr(self, field_name)
            if value is None:
                continue
            if name == "id":
                text = "".join(f"%{b:02X}" for b in value)
            elif name == "library-version":
                major, minor = value
                text = f"{major}.{minor}" if minor else f"{major}"
            elif name == "slot-id":
                text = str(value)
            else:
                text = _encode(str(value).encode("utf-8"), PATH_SAFE)
            path.append(f"{name}={text}")
        path += [f"{n}={_encode(v.encode('utf-8'), PATH_SAFE)}" for n, v in self.vendor_path]
        query: list[str] = []
        for name, field_name in _QUERY_FIELDS.items():
            value = pin if name == "pin-value" else getattr(self, field_name)
            if value is None:
                continue
            text = value if value is _REDACTED else _encode(value.encode("utf-8"), QUERY_SAFE)
            query.append(f"{name}={text}")
        query += [f"{n}={_encode(v.encode('utf-8'), QUERY_SAFE)}" for n, v in self.vendor_query]
        uri = f"{SCHEME}:" + ";".join(path)
        if query:
            uri += "?" + "&".join(query)
        return uri

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Pkcs11Uri({self._format(None if self.pin_value is None else _REDACTED)!r})"

    # --- matching --------------------------------------------------------------------------

    def token_attributes(self) -> dict[str, str | int | tuple[int, int]]:
        """The token, slot and library attributes this URI names, keyed by RFC name."""
        result: dict[str, str | int | tuple[int, int]] = {}
        for name in _TOKEN_LEVEL:
            value = getattr(self, _PATH_FIELDS[name])
            if value is not None:
                result[name] = value
        return result

    def matches_token(self, info: Mapping[str, object]) -> bool:
        """Whether a token matches the URI's token, slot and library attributes.

        ``info`` maps RFC attribute names (``token``, ``manufacturer``, ``serial``, ``model``,
        ``slot-description``, ``slot-manufacturer``, ``slot-id``, ``library-manufacturer``,
        ``library-description``, ``library-version``) to the token's values: strings as in
        CK_TOKEN_INFO (blank padding is ignored), ``slot-id`` an int, ``library-version`` a
        ``(major, minor)`` tuple. An attribute the URI names but ``info`` lacks does not match;
        object attributes are ignored; an unknown path attribute matches nothing.
        """
        if self.vendor_path:
            return False
        for name, wanted in self.token_attributes().items():
            if name not in info:
                return False
            have = info[name]
            if isinstance(wanted, str):
                if isinstance(have, bytes):
                    have = have.decode("utf-8", "replace")
                if not isinstance(have, str) or have.rstrip(" ") != wanted.rstrip(" "):
                    return False
            elif isinstance(wanted, tuple):
                if not isinstance(have, tuple) or tuple(have) != wanted:
                    return False
            elif have != wanted:
                return False
        return True

    def object_template(self) -> dict[int, AttributeValue]:
        """The PKCS#11 template of the URI's object attributes (CKA_LABEL, CKA_CLASS, CKA_ID)."""
        template: dict[int, AttributeValue] = {}
        if self.object_label is not None:
            template[Attribute.LABEL] = self.object_label
        if self.object_type is not None:
            template[Attribute.CLASS] = int(self.object_type.object_class)
        if self.object_id is not None:
            template[Attribute.ID] = self.object_id
        return template

    def matches_object(self, attributes: Mapping[int, object] | Mapping[Attribute, object]) -> bool:
        """Whether an object with these PKCS#11 ``attributes`` (CKA_* → value; CKA_LABEL as str
        or UTF-8 bytes, CKA_CLASS an int, CKA_ID bytes) matches the URI's ``object``, ``type``
        and ``id`` (:func:`opcard.pkcs11.template.matches_template` with
        :meth:`object_template`). Token attributes are ignored; an unknown path attribute
        matches nothing."""
        if self.vendor_path:
            return False
        return matches_template(self.object_template(), cast(Mapping[int, object], attributes))

    def matches(
        self,
        token_info: Mapping[str, object],
        attributes: Mapping[int, object] | Mapping[Attribute, object],
    ) -> bool:
        """:meth:`matches_token` and :meth:`matches_object` together."""
        return self.matches_token(token_info) and self.matches_object(attributes)


def parse_uri(text: str) -> Pkcs11Uri:
    """Same as :meth:`Pkcs11Uri.parse`."""
    return Pkcs11Uri.parse(text)


def _components(part: str, separator: str, where: str) -> Iterator[tuple[str, str]]:
    if not part:
        return
    for component in part.split(separator):
        name, equals, raw = component.partition("=")
        if not equals:
            raise UriError(f"a {where} attribute needs 'name=value'")
        if not _NAME.match(name):
            raise UriError(f"invalid {where} attribute name")
        yield name.lower(), raw


def _path_value(name: str, decoded: bytes) -> object:
    if name == "id":
        return decoded
    text = _text(decoded, name)
    if name == "type":
        try:
            return ObjectType(text.lower())
        except ValueError:
            raise UriError("type must be public, private, cert, secret-key or data") from None
    if name == "library-version":
        m = _VERSION.match(text)
        if not m:
            raise UriError("library-version must be 'major' or 'major.minor' (digits)")
        return (int(m.group(1)), int(m.group(2) or 0))
    if name == "slot-id":
        if not _DIGITS.match(text):
            raise UriError("slot-id must be a decimal number")
        return int(text)
    return text


def _check_vendor(name: str, value: str, seen: set[str], where: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UriError(f"invalid vendor {where} attribute name")
    if name.lower() in _KNOWN:
        raise UriError(f"vendor {where} attribute {name!r} clashes with an RFC 7512 attribute")
    if name.lower() in seen:
        raise UriError(f"path attribute {name!r} appears twice")
    seen.add(name.lower())
    if not isinstance(value, str):
        raise TypeError(f"the value of vendor attribute {name!r} must be a str")
