"""What ``opcard status`` shows of an X.509 certificate, read from its DER without ``cryptography``.

Importing ``cryptography.x509`` costs more than the whole start-up budget of ``opcard status``
(issue #15). :func:`read_fields` is a small, strict DER reader of exactly the fields status
shows (subject and issuer as RFC 4514 strings, serial number, validity) that gives, byte for
byte, what ``cryptography`` gives (``Name.rfc4514_string()``, ``f"{serial_number:X}"``,
``not_valid_*_utc`` as ``%Y-%m-%dT%H:%M:%SZ``) for the certificates it handles with certainty,
and hands over (returns ``None``) for everything else: :func:`certificate_fields` then asks
``cryptography`` (imported only then), so that unusual certificates, and every error text, stay
``cryptography``'s.

What it handles: a DER ``Certificate`` (minimal definite lengths, nothing after it) of version
1 (no version field) or 3; a positive serial number of at most 64 bytes; signature and public
key algorithms from a fixed list (RSA PKCS #1 v1.5, ECDSA, EdDSA; the named curves of OpenPGP
cards) with the parameters ``cryptography`` accepts without a warning; names whose attribute
values are ``UTF8String``, ``PrintableString`` (its strict character set), ``IA5String``,
``T61String``, ``NumericString``, ``VisibleString`` (all as UTF-8, as ``cryptography`` reads
them), ``BMPString`` without surrogates or ``UniversalString``; multi-valued RDNs in DER order
without a repeated attribute type; ``UTCTime`` and ``GeneralizedTime`` (years 1000-1949 and
2050-9999, as RFC 5280 uses it) without fractional seconds or leap seconds; extensions (v3
only) whose structure is well formed (their contents are read by ``cryptography`` only when
asked for). Anything else, and any length or structure in doubt, is handed over.

The reader never raises (any flaw of its own is a hand-over too) and its work is linear in the
input, which is at most 64 KiB (a certificate DO is smaller; a larger input is handed over).
tests/unit/test_certinfo.py compares it with ``cryptography`` (generated certificates, and
mutated and random DER).
"""

from __future__ import annotations

import sys

__all__ = ["certificate_fields", "read_fields", "sha256_hex"]

#: Inputs above this size are handed over (bounded work on anything a card may hold).
MAX_SIZE = 65536

#: Short attribute names in RFC 4514 strings, as ``cryptography`` writes them (its
#: ``_NAMEOID_TO_NAME``); other attribute types are written as their dotted OID.
_SHORT_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}

#: Attribute types whose value length (UTF-8 bytes) ``cryptography`` checks when it reads a
#: name, with a warning when the value is out of bounds (then the reader hands over).
_LENGTH_LIMITS = {
    "2.5.4.6": (2, 2),  # countryName
    "1.3.6.1.4.1.311.60.2.1.3": (2, 2),  # jurisdictionCountryName
    "2.5.4.3": (1, 64),  # commonName
}

#: AlgorithmIdentifiers (whole DER) of signatures that ``cryptography`` loads without a warning.
_SIGNATURE_ALGORITHMS = frozenset(
    bytes.fromhex(h)
    for h in (
        "300d06092a864886f70d0101050500",  # sha1WithRSAEncryption
        "300d06092a864886f70d01010e0500",  # sha224WithRSAEncryption
        "300d06092a864886f70d01010b0500",  # sha256WithRSAEncryption
        "300d06092a864886f70d01010c0500",  # sha384WithRSAEncryption
        "300d06092a864886f70d01010d0500",  # sha512WithRSAEncryption
        "300a06082a8648ce3d040301",  # ecdsa-with-SHA224
        "300a06082a8648ce3d040302",  # ecdsa-with-SHA256
        "300a06082a8648ce3d040303",  # ecdsa-with-SHA384
        "300a06082a8648ce3d040304",  # ecdsa-with-SHA512
        "300506032b6570",  # Ed25519
        "300506032b6571",  # Ed448
    )
)

_EC_PUBLIC_KEY = "06072a8648ce3d0201"
#: AlgorithmIdentifiers (whole DER) of subject public keys: RSA, the curves of OpenPGP cards.
_PUBLIC_KEY_ALGORITHMS = frozenset(
    bytes.fromhex(h)
    for h in (
        "300d06092a864886f70d0101010500",  # rsaEncryption
        "3013" + _EC_PUBLIC_KEY + "06082a8648ce3d030107",  # P-256
        "3010" + _EC_PUBLIC_KEY + "06052b81040022",  # P-384
        "3010" + _EC_PUBLIC_KEY + "06052b81040023",  # P-521
        "3010" + _EC_PUBLIC_KEY + "06052b8104000a",  # secp256k1
        "3014" + _EC_PUBLIC_KEY + "06092b2403030208010107",  # brainpoolP256r1
        "3014" + _EC_PUBLIC_KEY + "06092b240303020801010b",  # brainpoolP384r1
        "3014" + _EC_PUBLIC_KEY + "06092b240303020801010d",  # brainpoolP512r1
        "300506032b6570",  # Ed25519
        "300506032b6571",  # Ed448
        "300506032b656e",  # X25519
        "300506032b656f",  # X448
    )
)

#: The characters of a PrintableString (X.680; what ``cryptography`` accepts).
_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)
#: String types ``cryptography`` reads as UTF-8 (without checking their character sets):
#: UTF8String, NumericString, T61String, IA5String, VisibleString.
_UTF8_TYPES = frozenset((0x0C, 0x12, 0x14, 0x16, 0x1A))
_PRINTABLE_STRING, _UNIVERSAL_STRING, _BMP_STRING = 0x13, 0x1C, 0x1E
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_SEQUENCE, _SET, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID = 0x30, 0x31, 0x02, 0x03, 0x04, 0x06
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
#: CPython's own SHA-2 module of this version (only it is tried: a failed import would search
#: sys.path at every call)
_SHA2 = "_sha2" if sys.version_info >= (3, 12) else "_sha256"


class _Unsure(Exception):
    """The reader is not certain to give what ``cryptography`` gives: hand over."""


def certificate_fields(der: bytes) -> dict[str, str]:
    """``subject``, ``issuer``, ``serial_number``, ``not_before`` and ``not_after`` of the
    certificate ``der`` (as ``opcard status`` shows them), or ``error`` (``not a valid X.509
    certificate: …``, ``cryptography``'s reason). ``cryptography`` is imported only for a
    certificate :func:`read_fields` hands over; its exceptions other than ``ValueError``
    (``InvalidVersion`` of a v2 certificate) go through, as they did before."""
    fields = read_fields(der)
    if fields is not None:
        return fields
    return _with_cryptography(der)


def read_fields(der: bytes) -> dict[str, str] | None:
    """The fields of :func:`certificate_fields` read without ``cryptography``, or ``None``
    when this reader is not certain to give what ``cryptography`` gives (never an exception)."""
    try:
        return _read(bytes(der))
    except Exception:  # _Unsure, or a flaw of this reader: cryptography decides
        return None


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in upper-case hex (``opcard status``'s ``sha256``), from
    CPython's own SHA-2 module (``_sha2``, ``_sha256`` before 3.12: about 0.4 ms to load)
    rather than :mod:`hashlib`, which loads OpenSSL's ``_hashlib`` (about 2.5 ms); hashlib
    where it does not exist. The same digest (tests/unit/test_certinfo.py)."""
    try:
        return str(__import__(_SHA2).sha256(data).hexdigest()).upper()
    except ImportError:  # not CPython
        import hashlib

        return hashlib.sha256(data).hexdigest().upper()


def _with_cryptography(der: bytes) -> dict[str, str]:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        return {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial_number": f"{cert.serial_number:X}",
            "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    except ValueError as e:
        return {"error": f"not a valid X.509 certificate: {e}"}


def _tlv(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start, end of the value) of the DER element at ``der[pos]``, within ``end``."""
    if end - pos < 2:
        raise _Unsure("truncated")
    tag = der[pos]
    if tag & 0x1F == 0x1F:
        raise _Unsure("high tag number")
    n = der[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if not 1 <= k <= 3 or end - pos < k or der[pos] == 0:
            raise _Unsure("indefinite, long or non-minimal length")
        n = int.from_bytes(der[pos : pos + k], "big")
        if n < 0x80:
            raise _Unsure("non-minimal length")
        pos += k
    if n > end - pos:
        raise _Unsure("length past the end")
    return tag, pos, pos + n


def _expect(der: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _tlv(der, pos, end)
    if found != tag:
        raise _Unsure(f"tag {found:02X} instead of {tag:02X}")
    return start, stop


def _read(der: bytes) -> dict[str, str]:
    if len(der) > MAX_SIZE:
        raise _Unsure("too large")
    start, end = _expect(der, 0, len(der), _SEQUENCE)
    if end != len(der):
        raise _Unsure("data after the certificate")
    tbs_start, tbs_end = _expect(der, start, end, _SEQUENCE)
    pos = _algorithm(der, tbs_end, end, _SIGNATURE_ALGORITHMS)
    pos = _bit_string(der, pos, end)
    if pos != end:
        raise _Unsure("data after the signature")

    pos = tbs_start
    tag, start, stop = _tlv(der, pos, tbs_end)
    version = 1
    if tag == 0xA0:
        if der[start:stop] != b"\x02\x01\x02":
            raise _Unsure("version other than v3")
        version = 3
        pos = stop
    start, pos = _expect(der, pos, tbs_end, _INTEGER)
    serial = _serial(der[start:pos])
    pos = _algorithm(der, pos, tbs_end, _SIGNATURE_ALGORITHMS)
    start, pos = _expect(der, pos, tbs_end, _SEQUENCE)
    issuer = _name(der, start, pos)
    start, pos = _expect(der, pos, tbs_end, _SEQUENCE)
    tag, time_start, time_end = _tlv(der, start, pos)
    not_before = _time(tag, der[time_start:time_end])
    tag, time_start, time_end = _tlv(der, time_end, pos)
    not_after = _time(tag, der[time_start:time_end])
    if time_end != pos:
        raise _Unsure("validity")
    start, pos = _expect(der, pos, tbs_end, _SEQUENCE)
    subject = _name(der, start, pos)
    start, pos = _expect(der, pos, tbs_end, _SEQUENCE)
    start = _algorithm(der, start, pos, _PUBLIC_KEY_ALGORITHMS)
    if _bit_string(der, start, pos) != pos:
        raise _Unsure("subject public key info")
    if pos != tbs_end:
        start, pos = _expect(der, pos, tbs_end, 0xA3)  # unique identifiers: handed over
        if version != 3 or pos != tbs_end:
            raise _Unsure("extensions")
        _extensions(der, start, pos)
    return {
        "subject": subject,
        "issuer": issuer,
        "serial_number": serial,
        "not_before": not_before,
        "not_after": not_after,
    }


def _algorithm(der: bytes, pos: int, end: int, known: frozenset[bytes]) -> int:
    _, stop = _expect(der, pos, end, _SEQUENCE)
    if der[pos:stop] not in known:
        raise _Unsure("algorithm")
    return stop


def _bit_string(der: bytes, pos: int, end: int) -> int:
    start, stop = _expect(der, pos, end, _BIT_STRING)
    if start == stop:
        raise _Unsure("empty BIT STRING")
    unused = der[start]
    if unused > 7 or (unused and (stop - start == 1 or der[stop - 1] & ((1 << unused) - 1))):
        raise _Unsure("BIT STRING padding")
    return stop


def _serial(value: bytes) -> str:
    if not value or len(value) > 64:
        raise _Unsure("serial number length")
    if value[0] & 0x80:
        raise _Unsure("negative serial number")  # cryptography warns
    if len(value) > 1 and value[0] == 0 and value[1] < 0x80:
        raise _Unsure("non-minimal serial number")
    number = int.from_bytes(value, "big")
    if not number:
        raise _Unsure("zero serial number")  # cryptography warns
    return f"{number:X}"


def _time(tag: int, raw: bytes) -> str:
    if tag == _UTC_TIME:
        if len(raw) != 13 or raw[12] != 0x5A or not raw[:12].isdigit():
            raise _Unsure("UTCTime")
        year = int(raw[:2])
        year += 1900 if year >= 50 else 2000
        rest = raw[2:12]
    elif tag == _GENERALIZED_TIME:
        if len(raw) != 15 or raw[14] != 0x5A or not raw[:14].isdigit():
            raise _Unsure("GeneralizedTime")
        year = int(raw[:4])
        if year < 1000 or 1950 <= year <= 2049:
            raise _Unsure("GeneralizedTime year")
        rest = raw[4:14]
    else:
        raise _Unsure("time type")
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        raise _Unsure("time out of range")
    if not 1 <= day <= _DAYS[month - 1] + (month == 2 and leap):
        raise _Unsure("day out of range")
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _oid(raw: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's value (minimal, at most 32 bytes)."""
    if not raw or len(raw) > 32 or raw[-1] & 0x80:
        raise _Unsure("OID")
    arcs: list[int] = []
    value = length = 0
    for byte in raw:
        if length == 0 and byte == 0x80:
            raise _Unsure("non-minimal OID arc")
        value = value << 7 | byte & 0x7F
        length += 1
        if length > 9:
            raise _Unsure("OID arc too large")
        if not byte & 0x80:
            arcs.append(value)
            value = length = 0
    first = arcs[0]
    head = f"{first // 40}.{first % 40}" if first < 80 else f"2.{first - 80}"
    return ".".join([head, *map(str, arcs[1:])])


def _string(tag: int, raw: bytes) -> str:
    if tag in _UTF8_TYPES:
        codec = "utf-8"
    elif tag == _PRINTABLE_STRING:
        if not _PRINTABLE.issuperset(raw):
            raise _Unsure("PrintableString character")
        codec = "ascii"
    elif tag == _BMP_STRING:
        if len(raw) % 2 or any(0xD8 <= raw[i] <= 0xDF for i in range(0, len(raw), 2)):
            raise _Unsure("BMPString")
        codec = "utf-16-be"
    elif tag == _UNIVERSAL_STRING:
        if len(raw) % 4:
            raise _Unsure("UniversalString")
        codec = "utf-32-be"  # refuses surrogates and values past U+10FFFF
    else:
        raise _Unsure("attribute value type")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise _Unsure(f"not {codec}") from None


def _escape(value: str) -> str:
    """An attribute value as ``cryptography``'s RFC 4514 strings write it."""
    if not value:
        return ""
    for char in '\\"+,;<>':
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _name(der: bytes, pos: int, end: int) -> str:
    """A Name (the value of its SEQUENCE) as ``Name.rfc4514_string()`` writes it."""
    rdns: list[str] = []
    while pos < end:
        start, pos = _expect(der, pos, end, _SET)
        if start == pos:
            raise _Unsure("empty RDN")
        attributes: list[str] = []
        types: set[str] = set()
        previous = b""
        while start < pos:
            value_start, stop = _expect(der, start, pos, _SEQUENCE)
            encoding = der[start:stop]
            if encoding <= previous:
                raise _Unsure("RDN not in DER order")  # cryptography: InvalidSetOrdering
            previous = encoding
            oid_start, oid_end = _expect(der, value_start, stop, _OID)
            oid = _oid(der[oid_start:oid_end])
            if oid in types:
                raise _Unsure("repeated attribute type in an RDN")
            types.add(oid)
            tag, value_start, value_end = _tlv(der, oid_end, stop)
            if value_end != stop:
                raise _Unsure("attribute")
            value = _string(tag, der[value_start:value_end])
            limits = _LENGTH_LIMITS.get(oid)
            if limits is not None and not limits[0] <= len(value.encode()) <= limits[1]:
                raise _Unsure("attribute length")  # cryptography warns
            attributes.append(f"{_SHORT_NAMES.get(oid, oid)}={_escape(value)}")
            start = stop
        rdns.append("+".join(attributes))
    return ",".join(reversed(rdns))


def _extensions(der: bytes, pos: int, end: int) -> None:
    start, stop = _expect(der, pos, end, _SEQUENCE)
    if stop != end or start == stop:
        raise _Unsure("extensions")
    while start < stop:
        value_start, start = _expect(der, start, stop, _SEQUENCE)
        oid_start, pos = _expect(der, value_start, start, _OID)
        _oid(der[oid_start:pos])
        tag, value_start, value_end = _tlv(der, pos, start)
        if tag == 0x01:  # critical: only TRUE is encoded (DER: the default is left out)
            if der[value_start:value_end] != b"\xff":
                raise _Unsure("critical")
            pos = value_end
        value_start, value_end = _expect(der, pos, start, _OCTET_STRING)
        if value_end != start:
            raise _Unsure("extension")
