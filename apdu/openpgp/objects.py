"""Typed OpenPGP card data objects: ``X.parse(data) -> X`` and ``bytes(x)``.

Parsers are strict about what the specification fixes and tolerant of what real cards are
known to vary (see ``docs/openpgp.md``): an optional outer tag, ``73`` present / empty /
absent, ``7F66`` inside or outside ``73``, four fingerprint entries, an FA length that lies.
For any input they return a value or raise :class:`apdu.openpgp.errors.DataObjectError` /
:class:`apdu.errors.TlvError` (both :class:`apdu.errors.ApduError`), never ``IndexError`` or
``ValueError``.

``bytes(x)`` gives the canonical encoding: constructed objects the card returns with their
tag (6E, 65, 7A, 7F66, 7F74, FA, 7F49) come with it; objects written with PUT DATA come as the
value PUT DATA takes (C1-C3, C4, D6-D8, F9, …). ``parse(bytes(x)) == x`` always holds.
"""

from __future__ import annotations

from collections.abc import Iterable

from apdu import tlv
from apdu.errors import TlvError
from apdu.openpgp.constants import (
    OPENPGP_RID,
    AlgorithmId,
    Curve,
    Do,
    EcImportFormat,
    ExtendedCapability,
    GeneralFeature,
    KdfAlgorithm,
    KdfHash,
    KdfTag,
    KeySlot,
    KeyStatus,
    PublicKeyTag,
    RsaImportFormat,
    Secret,
    Sex,
    UifMode,
    decode_oid,
    manufacturer_name,
)
from apdu.openpgp.errors import DataObjectError
from apdu.record import Record, field

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    # Annotations only (strings: ``from __future__ import annotations``); records skip fields
    # annotated ClassVar by the annotation's text (apdu.record).
    from typing import ClassVar, Self, TypeAlias

__all__ = [
    "Aid",
    "AlgorithmAttributes",
    "AlgorithmInformation",
    "ApplicationRelatedData",
    "CaFingerprints",
    "CardCapabilities",
    "CardholderData",
    "EcAttributes",
    "EcPublicKey",
    "ExtendedCapabilities",
    "ExtendedLengthInfo",
    "Fingerprints",
    "GeneralFeatureManagement",
    "GenerationTimes",
    "HistoricalBytes",
    "KdfDo",
    "KeyInformation",
    "PublicKeyMaterial",
    "PwStatus",
    "RsaAttributes",
    "RsaPublicKey",
    "SecuritySupportTemplate",
    "Uif",
    "UnknownAttributes",
    "parse_algorithm_attributes",
    "parse_public_key",
]


# --- helpers ---------------------------------------------------------------------------------


def _bytes(data: bytes | bytearray | memoryview) -> bytes:
    return bytes(data)


def _unwrap(data: bytes, tag: int) -> tuple[bytes, bool]:
    """The value of ``tag`` when ``data`` is exactly one ``tag`` object, else ``data`` itself.

    Returns the content and whether the outer tag was present. A card may send a constructed
    DO with or without its own tag (``6E`` vs. bare ``4F …``).
    """
    if not data:
        return data, False
    try:
        first, end = tlv.parse_one(data)
    except TlvError:
        return data, False
    if first.tag == tag and end == len(data):
        return first.value, True
    return data, False


def _children(data: bytes) -> dict[int, bytes]:
    """Children of a constructed value as a dict; duplicate tags are malformed."""
    out: dict[int, bytes] = {}
    for item in tlv.parse(data):
        if item.tag in out:
            raise DataObjectError(f"tag {item.tag:X} appears twice")
        out[item.tag] = item.value
    return out


def _uint(data: bytes, what: str, *, min_len: int = 1, max_len: int = 4) -> int:
    if not min_len <= len(data) <= max_len:
        raise DataObjectError(f"{what}: {len(data)} bytes, expected {min_len} to {max_len}")
    return int.from_bytes(data, "big")


def _need(data: bytes, length: int, what: str) -> None:
    if len(data) != length:
        raise DataObjectError(f"{what}: {len(data)} bytes, expected {length}")


# --- 4F AID ----------------------------------------------------------------------------------


class Aid(Record):
    """4F application identifier (§4.2.1): RID ‖ 01 ‖ version ‖ manufacturer ‖ serial ‖ RFU."""

    version: tuple[int, int]
    manufacturer: int
    serial: int
    rfu: bytes = b"\x00\x00"
    application: int = 0x01

    LENGTH: ClassVar[int] = 16

    @classmethod
    def parse(cls, data: bytes) -> Aid:
        data = _bytes(data)
        _need(data, cls.LENGTH, "AID")
        if data[:5] != OPENPGP_RID:
            raise DataObjectError(f"AID {data.hex().upper()} is not an OpenPGP AID")
        return cls(
            version=(data[6], data[7]),
            manufacturer=int.from_bytes(data[8:10], "big"),
            serial=int.from_bytes(data[10:14], "big"),
            rfu=data[14:16],
            application=data[5],
        )

    def __bytes__(self) -> bytes:
        return (
            OPENPGP_RID
            + bytes((self.application, self.version[0], self.version[1]))
            + self.manufacturer.to_bytes(2, "big")
            + self.serial.to_bytes(4, "big")
            + self.rfu
        )

    @property
    def manufacturer_name(self) -> str:
        return manufacturer_name(self.manufacturer)

    @property
    def serial_hex(self) -> str:
        """The serial as GnuPG prints it ("Serial number"): eight hex digits, upper case."""
        return f"{self.serial:08X}"

    @property
    def version_text(self) -> str:
        return f"{self.version[0]:X}.{self.version[1]:X}"

    @property
    def is_v3(self) -> bool:
        return self.version[0] >= 3

    def __str__(self) -> str:
        return bytes(self).hex().upper()


# --- 5F52 historical bytes -------------------------------------------------------------------

_CATEGORY_STATUS_AT_END = 0x00
_CATEGORY_COMPACT_TLV = 0x80
_COMPACT_TAG_CARD_CAPABILITIES = 0x7
_COMPACT_TAG_STATUS = 0x8


class CardCapabilities(Record):
    """Compact-TLV tag 7 of the historical bytes (ISO 7816-4 §8.1.1.2.7)."""

    raw: bytes

    @property
    def command_chaining(self) -> bool:
        return len(self.raw) >= 3 and bool(self.raw[2] & 0x80)

    @property
    def extended_lc_le(self) -> bool:
        return len(self.raw) >= 3 and bool(self.raw[2] & 0x40)

    @property
    def extended_length_info_in_ef_atr(self) -> bool:
        return len(self.raw) >= 3 and bool(self.raw[2] & 0x20)


class HistoricalBytes(Record):
    """5F52 / ATR historical bytes (ISO 7816-4 §8.1.1), parsed leniently.

    Real cards send 8, 10 or 15 bytes, zero padded or slightly malformed: :meth:`parse`
    never fails. ``well_formed`` says whether every byte was understood;
    :attr:`card_capabilities` is None when tag 7 is absent or unreadable. ``bytes(x)`` is the
    original bytes.
    """

    raw: bytes
    category: int | None = field(init=False)
    objects: tuple[tuple[int, bytes], ...] = field(init=False)
    life_cycle: int | None = field(init=False)
    status_word: int | None = field(init=False)
    well_formed: bool = field(init=False)

    def __post_init__(self) -> None:
        raw = bytes(self.raw)
        object.__setattr__(self, "raw", raw)
        category: int | None = raw[0] if raw else None
        objects: list[tuple[int, bytes]] = []
        life_cycle: int | None = None
        status_word: int | None = None
        ok = False
        if category == _CATEGORY_STATUS_AT_END and len(raw) >= 4:
            ok = _compact_tlv(raw[1:-3], objects)
            life_cycle = raw[-3]
            status_word = int.from_bytes(raw[-2:], "big")
        elif category == _CATEGORY_COMPACT_TLV:
            ok = _compact_tlv(raw[1:], objects)
            for tag, value in objects:
                if tag == _COMPACT_TAG_STATUS:
                    if len(value) in (1, 3):
                        life_cycle = value[0]
                    if len(value) in (2, 3):
                        status_word = int.from_bytes(value[-2:], "big")
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "objects", tuple(objects))
        object.__setattr__(self, "life_cycle", life_cycle)
        object.__setattr__(self, "status_word", status_word)
        object.__setattr__(self, "well_formed", ok)

    @classmethod
    def parse(cls, data: bytes) -> HistoricalBytes:
        return cls(_bytes(data))

    def __bytes__(self) -> bytes:
        return self.raw

    def get(self, tag: int) -> bytes | None:
        for t, value in self.objects:
            if t == tag:
                return value
        return None

    @property
    def card_capabilities(self) -> CardCapabilities | None:
        value = self.get(_COMPACT_TAG_CARD_CAPABILITIES)
        return CardCapabilities(value) if value else None


def _compact_tlv(body: bytes, out: list[tuple[int, bytes]]) -> bool:
    """Parse compact-TLV objects into ``out``; False when something is not understood.

    A zero byte (tag 0, length 0) is padding, seen on YubiKey NEO.
    """
    pos = 0
    while pos < len(body):
        head = body[pos]
        pos += 1
        if head == 0:
            continue
        tag, length = head >> 4, head & 0x0F
        if pos + length > len(body):
            return False
        out.append((tag, body[pos : pos + length]))
        pos += length
    return True


# --- C0 extended capabilities ----------------------------------------------------------------


class ExtendedCapabilities(Record):
    """C0 extended capabilities (§4.4.3.7), v3 layout (or v2 with ``v3=False``).

    Bytes 7-10 differ: v3 has max special DO length, PIN block 2 format, MSE support; v2 has
    max command and max response length. The fields of the other layout are None.
    """

    flags: ExtendedCapability
    sm_algorithm: int
    max_challenge_length: int
    max_certificate_length: int
    max_special_do_length: int | None = None
    pin_block_2_format: int | None = None
    mse: int | None = None
    max_command_length: int | None = None
    max_response_length: int | None = None
    extra: bytes = b""

    LENGTH: ClassVar[int] = 10

    @classmethod
    def parse(cls, data: bytes, *, v3: bool = True) -> ExtendedCapabilities:
        data = _bytes(data)
        if len(data) < cls.LENGTH:
            raise DataObjectError(f"extended capabilities: {len(data)} bytes, expected 10")

        def word(i: int) -> int:
            return int.from_bytes(data[i : i + 2], "big")

        flags = ExtendedCapability(data[0])
        if v3:
            return cls(
                flags,
                data[1],
                word(2),
                word(4),
                max_special_do_length=word(6),
                pin_block_2_format=data[8],
                mse=data[9],
                extra=data[10:],
            )
        return cls(
            flags,
            data[1],
            word(2),
            word(4),
            max_command_length=word(6),
            max_response_length=word(8),
            extra=data[10:],
        )

    @property
    def v3(self) -> bool:
        return self.max_command_length is None

    def __bytes__(self) -> bytes:
        head = bytes((int(self.flags), self.sm_algorithm))
        head += self.max_challenge_length.to_bytes(2, "big")
        head += self.max_certificate_length.to_bytes(2, "big")
        if self.v3:
            tail = (self.max_special_do_length or 0).to_bytes(2, "big") + bytes(
                (self.pin_block_2_format or 0, self.mse or 0)
            )
        else:
            tail = (self.max_command_length or 0).to_bytes(2, "big") + (
                self.max_response_length or 0
            ).to_bytes(2, "big")
        return head + tail + self.extra

    def supports(self, flag: ExtendedCapability) -> bool:
        return bool(self.flags & flag)


# --- C1/C2/C3/DA algorithm attributes --------------------------------------------------------


class RsaAttributes(Record):
    """RSA algorithm attributes: 01 ‖ n bits (2) ‖ e bits (2) ‖ import format (1, optional
    on v1/v2 cards)."""

    n_bits: int
    e_bits: int = 32
    import_format: RsaImportFormat | None = RsaImportFormat.STANDARD

    @property
    def algorithm(self) -> AlgorithmId:
        return AlgorithmId.RSA

    @classmethod
    def parse(cls, data: bytes) -> RsaAttributes:
        data = _bytes(data)
        if len(data) not in (5, 6) or data[0] != AlgorithmId.RSA:
            raise DataObjectError(f"RSA attributes {data.hex()} malformed")
        fmt: RsaImportFormat | None = None
        if len(data) == 6:
            if data[5] not in RsaImportFormat._value2member_map_:
                raise DataObjectError(f"RSA import format {data[5]:02X} unknown")
            fmt = RsaImportFormat(data[5])
        n_bits = int.from_bytes(data[1:3], "big")
        e_bits = int.from_bytes(data[3:5], "big")
        if not n_bits or not e_bits:
            raise DataObjectError("RSA attributes with a zero length")
        return cls(n_bits, e_bits, fmt)

    def __bytes__(self) -> bytes:
        out = bytes((AlgorithmId.RSA,)) + self.n_bits.to_bytes(2, "big")
        out += self.e_bits.to_bytes(2, "big")
        if self.import_format is not None:
            out += bytes((self.import_format,))
        return out

    def __str__(self) -> str:
        return f"rsa{self.n_bits}"


class EcAttributes(Record):
    """ECC algorithm attributes: 12 ECDH / 13 ECDSA / 16 EdDSA ‖ OID content ‖ [00 | FF].

    ``oid`` keeps the OID content bytes even for an unknown curve; ``import_format`` is None
    when the optional last byte is absent.
    """

    algorithm: AlgorithmId
    oid: bytes
    import_format: EcImportFormat | None = None

    def __post_init__(self) -> None:
        decode_oid(self.oid)  # validates

    @classmethod
    def for_curve(
        cls, curve: Curve, slot: KeySlot, import_format: EcImportFormat | None = None
    ) -> EcAttributes:
        """The attributes GnuPG writes for ``curve`` in ``slot``: EdDSA for Ed25519, ECDH in
        the DEC slot (and for X25519), ECDSA otherwise."""
        if curve is Curve.ED25519:
            algorithm = AlgorithmId.EDDSA
        elif curve is Curve.X25519 or slot is KeySlot.DEC:
            algorithm = AlgorithmId.ECDH
        else:
            algorithm = AlgorithmId.ECDSA
        return cls(algorithm, curve.oid, import_format)

    @classmethod
    def parse(cls, data: bytes) -> EcAttributes:
        data = _bytes(data)
        if len(data) < 2 or data[0] not in (AlgorithmId.ECDH, AlgorithmId.ECDSA, AlgorithmId.EDDSA):
            raise DataObjectError(f"ECC attributes {data.hex()} malformed")
        algorithm = AlgorithmId(data[0])
        oid = data[1:]
        fmt: EcImportFormat | None = None
        if oid[-1] == EcImportFormat.WITH_PUBLIC_KEY:
            oid, fmt = oid[:-1], EcImportFormat.WITH_PUBLIC_KEY
        elif oid[-1] == EcImportFormat.STANDARD and Curve.from_oid(oid[:-1]) is not None:
            oid, fmt = oid[:-1], EcImportFormat.STANDARD
        return cls(algorithm, oid, fmt)

    @property
    def curve(self) -> Curve | None:
        return Curve.from_oid(self.oid)

    @property
    def oid_dotted(self) -> str:
        return decode_oid(self.oid)

    def __bytes__(self) -> bytes:
        out = bytes((self.algorithm,)) + self.oid
        if self.import_format is not None:
            out += bytes((self.import_format,))
        return out

    def __str__(self) -> str:
        curve = self.curve
        return curve.name.lower() if curve else self.oid_dotted


class UnknownAttributes(Record):
    """Attributes with an algorithm id this driver does not know, kept as they are."""

    algorithm: int
    data: bytes

    @classmethod
    def parse(cls, data: bytes) -> UnknownAttributes:
        data = _bytes(data)
        if not data:
            raise DataObjectError("empty algorithm attributes")
        return cls(data[0], data[1:])

    def __bytes__(self) -> bytes:
        return bytes((self.algorithm,)) + self.data


AlgorithmAttributes: TypeAlias = RsaAttributes | EcAttributes | UnknownAttributes


def parse_algorithm_attributes(data: bytes) -> AlgorithmAttributes:
    """C1/C2/C3/DA value → :class:`RsaAttributes`, :class:`EcAttributes` or
    :class:`UnknownAttributes` (for an algorithm id outside the spec)."""
    data = _bytes(data)
    if not data:
        raise DataObjectError("empty algorithm attributes")
    if data[0] == AlgorithmId.RSA:
        return RsaAttributes.parse(data)
    if data[0] in (AlgorithmId.ECDH, AlgorithmId.ECDSA, AlgorithmId.EDDSA):
        return EcAttributes.parse(data)
    return UnknownAttributes.parse(data)


_ATTRIBUTE_TAGS = (
    Do.ALGORITHM_ATTRIBUTES_SIG,
    Do.ALGORITHM_ATTRIBUTES_DEC,
    Do.ALGORITHM_ATTRIBUTES_AUT,
    Do.ALGORITHM_ATTRIBUTES_ATT,
)


class AlgorithmInformation(Record):
    """FA algorithm information (§4.4.3.11): the attributes each slot accepts.

    ``entries`` are (attributes tag C1/C2/C3/DA, attributes) in card order. Tolerates a bare
    list (no FA tag) and an FA length larger than the data (YubiKey 5.4.3 declares 2 bytes
    more than it sends).
    """

    entries: tuple[tuple[int, AlgorithmAttributes], ...]

    @classmethod
    def parse(cls, data: bytes) -> AlgorithmInformation:
        content = _lenient_outer(_bytes(data), Do.ALGORITHM_INFORMATION)
        entries: list[tuple[int, AlgorithmAttributes]] = []
        for item in tlv.parse(content):
            if item.tag not in _ATTRIBUTE_TAGS:
                raise DataObjectError(f"tag {item.tag:X} in algorithm information")
            entries.append((item.tag, parse_algorithm_attributes(item.value)))
        return cls(tuple(entries))

    def for_slot(self, slot: KeySlot) -> list[AlgorithmAttributes]:
        return [attrs for tag, attrs in self.entries if tag == slot.attributes_tag]

    def __bytes__(self) -> bytes:
        return tlv.build(
            Do.ALGORITHM_INFORMATION, b"".join(tlv.build(t, bytes(a)) for t, a in self.entries)
        )


def _lenient_outer(data: bytes, tag: int) -> bytes:
    """Content of an outer ``tag`` whose declared length may exceed the data (never less)."""
    try:
        first, end = tlv.parse_one(data)
    except TlvError:
        first, end = None, 0
    if first is not None:
        if first.tag != tag:
            return data  # bare list
        if end != len(data):
            raise DataObjectError(f"{len(data) - end} bytes after the {tag:X} object")
        return first.value
    # Truncated? Only accept a declared length that overshoots, with our tag in front.
    encoded = tlv.encode_tag(tag)
    if not data.startswith(encoded):
        return data
    pos = len(encoded)
    if pos >= len(data):
        raise DataObjectError(f"{tag:X} without a length")
    first_len = data[pos]
    pos += 1
    if first_len & 0x80:
        size = first_len & 0x7F
        if not 1 <= size <= 3 or pos + size > len(data):
            raise DataObjectError(f"{tag:X} with a malformed length")
        pos += size
    return data[pos:]


# --- C4 PW status ----------------------------------------------------------------------------


class PwStatus(Record):
    """C4 PW status bytes (§4.4.3.8).

    ``pw1_policy`` is byte 1 as sent: 00 = PW1 (81) valid for one PSO:CDS only; 01 (or FF on
    YubiKey 4) = valid for several. Max lengths keep bit 8 (PIN block 2 format) as sent.
    """

    pw1_policy: int
    max_length_pw1: int
    max_length_reset_code: int
    max_length_pw3: int
    retries_pw1: int
    retries_reset_code: int
    retries_pw3: int
    extra: bytes = b""

    LENGTH: ClassVar[int] = 7

    @classmethod
    def parse(cls, data: bytes) -> PwStatus:
        data = _bytes(data)
        if len(data) < cls.LENGTH:
            raise DataObjectError(f"PW status: {len(data)} bytes, expected 7")
        return cls(data[0], data[1], data[2], data[3], data[4], data[5], data[6], extra=data[7:])

    def __bytes__(self) -> bytes:
        return (
            bytes(
                (
                    self.pw1_policy,
                    self.max_length_pw1,
                    self.max_length_reset_code,
                    self.max_length_pw3,
                    self.retries_pw1,
                    self.retries_reset_code,
                    self.retries_pw3,
                )
            )
            + self.extra
        )

    @property
    def pw1_valid_for_several_signatures(self) -> bool:
        return self.pw1_policy != 0

    def retries(self, secret: Secret) -> int:
        return (self.retries_pw1, self.retries_reset_code, self.retries_pw3)[secret]

    def max_length(self, secret: Secret) -> int:
        """Maximum length in bytes (bit 8, the PIN block 2 flag, masked off)."""
        raw = (self.max_length_pw1, self.max_length_reset_code, self.max_length_pw3)[secret]
        return raw & 0x7F

    def pin_block_2_format(self, secret: Secret) -> bool:
        raw = (self.max_length_pw1, self.max_length_reset_code, self.max_length_pw3)[secret]
        return bool(raw & 0x80)

    @staticmethod
    def policy_value(several_signatures: bool) -> bytes:
        """The one byte PUT DATA C4 takes to set the PW1 policy."""
        return b"\x01" if several_signatures else b"\x00"


# --- C5/C6 fingerprints, CD generation times, DE key information ----------------------------

_FINGERPRINT_LEN = 20
_MAX_ENTRIES = 4  # SIG, DEC, AUT (+ Yubico's attestation key)


class Fingerprints(Record):
    """C5 fingerprints (§4.4.3.10): 20 bytes per slot, all zero = no key; three entries, or
    four on cards with an attestation key (YubiKey 5)."""

    entries: tuple[bytes, ...]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        data = _bytes(data)
        if len(data) % _FINGERPRINT_LEN or len(data) > _MAX_ENTRIES * _FINGERPRINT_LEN:
            raise DataObjectError(f"fingerprint list of {len(data)} bytes")
        return cls(
            tuple(data[i : i + _FINGERPRINT_LEN] for i in range(0, len(data), _FINGERPRINT_LEN))
        )

    def __bytes__(self) -> bytes:
        return b"".join(self.entries)

    def _entry(self, index: int) -> bytes | None:
        if index >= len(self.entries):
            return None
        value = self.entries[index]
        return value if any(value) else None

    def get(self, slot: KeySlot) -> bytes | None:
        """The fingerprint of ``slot``, None when absent or all zero."""
        return self._entry(KeySlot(slot) - 1)

    @property
    def attestation(self) -> bytes | None:
        return self._entry(3)


class CaFingerprints(Fingerprints):
    """C6 list of CA fingerprints (§4.4.3.10), same layout as C5."""


class GenerationTimes(Record):
    """CD key generation times (§4.4.3.10): 4-byte Unix times, 0 = none; 3 or 4 entries."""

    entries: tuple[int, ...]

    @classmethod
    def parse(cls, data: bytes) -> GenerationTimes:
        data = _bytes(data)
        if len(data) % 4 or len(data) > _MAX_ENTRIES * 4:
            raise DataObjectError(f"generation times of {len(data)} bytes")
        return cls(tuple(int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)))

    def __bytes__(self) -> bytes:
        return b"".join(t.to_bytes(4, "big") for t in self.entries)

    def get(self, slot: KeySlot) -> int | None:
        index = KeySlot(slot) - 1
        if index >= len(self.entries) or not self.entries[index]:
            return None
        return self.entries[index]


class KeyInformation(Record):
    """DE key information (§4.4.3.14): pairs of key reference and status (00 none,
    01 generated, 02 imported)."""

    entries: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, data: bytes) -> KeyInformation:
        data = _bytes(data)
        if len(data) % 2:
            raise DataObjectError(f"key information of odd length {len(data)}")
        return cls(tuple((data[i], data[i + 1]) for i in range(0, len(data), 2)))

    def __bytes__(self) -> bytes:
        return b"".join(bytes(pair) for pair in self.entries)

    def status(self, slot: KeySlot) -> KeyStatus | None:
        """The status of ``slot``; None when the card does not list it or sends an unknown
        status."""
        for ref, status in self.entries:
            if ref == slot and status in KeyStatus._value2member_map_:
                return KeyStatus(status)
        return None


# --- D6-D9 UIF -------------------------------------------------------------------------------


class Uif(Record):
    """User interaction flag D6/D7/D8 (§4.4.3.6): mode ‖ general feature byte (20 = button)."""

    mode: int
    feature: int | None = GeneralFeature.BUTTON

    @classmethod
    def parse(cls, data: bytes) -> Uif:
        data = _bytes(data)
        if len(data) not in (1, 2):
            raise DataObjectError(f"UIF of {len(data)} bytes")
        return cls(data[0], data[1] if len(data) == 2 else None)

    def __bytes__(self) -> bytes:
        return bytes((self.mode,)) + (b"" if self.feature is None else bytes((self.feature,)))

    @property
    def mode_enum(self) -> UifMode | None:
        return UifMode(self.mode) if self.mode in UifMode._value2member_map_ else None

    @property
    def enabled(self) -> bool:
        return self.mode != UifMode.DISABLED


# --- F9 KDF-DO -------------------------------------------------------------------------------


class KdfDo(Record):
    """F9 KDF data object (§4.3.2).

    ``algorithm`` 00 = none (PINs sent as they are), 03 = iterated and salted S2K; then hash
    (08 SHA-256, 0A SHA-512), iteration count (bytes to hash), salts for PW1 / reset code /
    PW3 (a missing RC or PW3 salt means: use PW1's), and the hashes of the initial PW1/PW3.
    ``bytes(x)`` is the bare list PUT DATA F9 takes; :meth:`parse` accepts it bare or wrapped.
    """

    algorithm: int = KdfAlgorithm.NONE
    hash_algorithm: int | None = None
    iteration_count: int | None = None
    salt_pw1: bytes | None = None
    salt_reset_code: bytes | None = None
    salt_pw3: bytes | None = None
    initial_hash_pw1: bytes | None = None
    initial_hash_pw3: bytes | None = None
    extra: tuple[tlv.Tlv, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> KdfDo:
        content, _ = _unwrap(_bytes(data), Do.KDF)
        if not content:
            return cls()
        known: dict[int, bytes] = {}
        extra: list[tlv.Tlv] = []
        for item in tlv.parse(content):
            if item.tag in KdfTag._value2member_map_:
                if item.tag in known:
                    raise DataObjectError(f"KDF-DO tag {item.tag:X} appears twice")
                known[item.tag] = item.value
            else:
                extra.append(item)
        if KdfTag.ALGORITHM not in known:
            raise DataObjectError("KDF-DO without algorithm (81)")
        algorithm = _uint(known[KdfTag.ALGORITHM], "KDF algorithm", max_len=1)
        hash_algorithm = (
            _uint(known[KdfTag.HASH_ALGORITHM], "KDF hash", max_len=1)
            if KdfTag.HASH_ALGORITHM in known
            else None
        )
        count = (
            _uint(known[KdfTag.ITERATION_COUNT], "KDF iteration count")
            if KdfTag.ITERATION_COUNT in known
            else None
        )
        result = cls(
            algorithm=algorithm,
            hash_algorithm=hash_algorithm,
            iteration_count=count,
            salt_pw1=known.get(KdfTag.SALT_PW1),
            salt_reset_code=known.get(KdfTag.SALT_RESET_CODE),
            salt_pw3=known.get(KdfTag.SALT_PW3),
            initial_hash_pw1=known.get(KdfTag.INITIAL_HASH_PW1),
            initial_hash_pw3=known.get(KdfTag.INITIAL_HASH_PW3),
            extra=tuple(extra),
        )
        if result.enabled:
            if hash_algorithm not in KdfHash._value2member_map_:
                raise DataObjectError(f"KDF hash algorithm {hash_algorithm!r} unknown")
            if not count:
                raise DataObjectError("KDF iteration count missing or zero")
            if not result.salt_pw1:
                raise DataObjectError("KDF salt for PW1 (84) missing")
        return result

    @property
    def enabled(self) -> bool:
        """True when PINs must be derived (algorithm 03)."""
        return self.algorithm == KdfAlgorithm.ITERSALTED_S2K

    def salt(self, secret: Secret) -> bytes:
        """The salt for ``secret``; a missing reset-code or PW3 salt falls back to PW1's
        (as GnuPG does with a single-salt KDF-DO)."""
        if not self.enabled or not self.salt_pw1:
            raise ValueError("KDF is not enabled")
        if secret is Secret.RESET_CODE and self.salt_reset_code:
            return self.salt_reset_code
        if secret is Secret.PW3 and self.salt_pw3:
            return self.salt_pw3
        return self.salt_pw1

    def __bytes__(self) -> bytes:
        parts = [tlv.build(KdfTag.ALGORITHM, bytes((self.algorithm,)))]
        if self.hash_algorithm is not None:
            parts.append(tlv.build(KdfTag.HASH_ALGORITHM, bytes((self.hash_algorithm,))))
        if self.iteration_count is not None:
            parts.append(tlv.build(KdfTag.ITERATION_COUNT, self.iteration_count.to_bytes(4, "big")))
        for tag, value in (
            (KdfTag.SALT_PW1, self.salt_pw1),
            (KdfTag.SALT_RESET_CODE, self.salt_reset_code),
            (KdfTag.SALT_PW3, self.salt_pw3),
            (KdfTag.INITIAL_HASH_PW1, self.initial_hash_pw1),
            (KdfTag.INITIAL_HASH_PW3, self.initial_hash_pw3),
        ):
            if value is not None:
                parts.append(tlv.build(tag, value))
        parts.extend(bytes(item) for item in self.extra)
        return b"".join(parts)


# --- 65 cardholder related data, 7A, 7F74, 7F66 ---------------------------------------------


class CardholderData(Record):
    """65 cardholder related data (§4.4.3.3): 5B name, 5F2D language, 5F35 sex.

    Values are the raw bytes (the name is ISO 8859-1, ``Surname<<Given``); None when the DO
    is absent, b"" when present and empty.
    """

    name: bytes | None = None
    language: bytes | None = None
    sex: bytes | None = None

    @classmethod
    def parse(cls, data: bytes) -> CardholderData:
        content, _ = _unwrap(_bytes(data), Do.CARDHOLDER_RELATED_DATA)
        children = _children(content)
        unknown = set(children) - {Do.NAME, Do.LANGUAGE, Do.SEX}
        if unknown:
            raise DataObjectError(f"unexpected tags {sorted(unknown)} in cardholder data")
        return cls(children.get(Do.NAME), children.get(Do.LANGUAGE), children.get(Do.SEX))

    def __bytes__(self) -> bytes:
        parts = [
            tlv.build(tag, value)
            for tag, value in (
                (Do.NAME, self.name),
                (Do.LANGUAGE, self.language),
                (Do.SEX, self.sex),
            )
            if value is not None
        ]
        return tlv.build(Do.CARDHOLDER_RELATED_DATA, b"".join(parts))

    @property
    def name_text(self) -> str:
        """The name for display: ``Surname<<Given`` → ``Given Surname``, ``<`` → space."""
        raw = (self.name or b"").decode("latin-1")
        surname, _, given = raw.partition("<<")
        text = f"{given} {surname}" if given else surname
        return " ".join(text.replace("<", " ").split())

    @property
    def sex_value(self) -> Sex | None:
        if self.sex and len(self.sex) == 1 and self.sex[0] in Sex._value2member_map_:
            return Sex(self.sex[0])
        return None


class SecuritySupportTemplate(Record):
    """7A security support template (§4.4.3.4): 93 digital signature counter (3 bytes)."""

    signature_counter: int

    @classmethod
    def parse(cls, data: bytes) -> SecuritySupportTemplate:
        content, _ = _unwrap(_bytes(data), Do.SECURITY_SUPPORT_TEMPLATE)
        children = _children(content)
        if Do.DIGITAL_SIGNATURE_COUNTER not in children:
            raise DataObjectError("security support template without counter (93)")
        return cls(_uint(children[Do.DIGITAL_SIGNATURE_COUNTER], "signature counter", max_len=3))

    def __bytes__(self) -> bytes:
        counter = tlv.build(Do.DIGITAL_SIGNATURE_COUNTER, self.signature_counter.to_bytes(3, "big"))
        return tlv.build(Do.SECURITY_SUPPORT_TEMPLATE, counter)


_TAG_FEATURES = 0x81


class GeneralFeatureManagement(Record):
    """7F74 general feature management (§4.1.3.2): 81 { feature bits }."""

    features: GeneralFeature

    @classmethod
    def parse(cls, data: bytes) -> GeneralFeatureManagement:
        content, _ = _unwrap(_bytes(data), Do.GENERAL_FEATURE_MANAGEMENT)
        children = _children(content)
        if _TAG_FEATURES not in children:
            raise DataObjectError("general feature management without 81")
        return cls(GeneralFeature(_uint(children[_TAG_FEATURES], "features", max_len=1)))

    def __bytes__(self) -> bytes:
        return tlv.build(
            Do.GENERAL_FEATURE_MANAGEMENT, tlv.build(_TAG_FEATURES, bytes((int(self.features),)))
        )


_TAG_INTEGER = 0x02


class ExtendedLengthInfo(Record):
    """7F66 extended length information (§4.1.3.1): 02 max command ‖ 02 max response."""

    max_command_length: int
    max_response_length: int

    @classmethod
    def parse(cls, data: bytes) -> ExtendedLengthInfo:
        content, _ = _unwrap(_bytes(data), Do.EXTENDED_LENGTH_INFORMATION)
        items = tlv.parse(content)
        if len(items) != 2 or any(item.tag != _TAG_INTEGER for item in items):
            raise DataObjectError("extended length information is not two 02 integers")
        return cls(
            _uint(items[0].value, "max command length", max_len=2),
            _uint(items[1].value, "max response length", max_len=2),
        )

    def __bytes__(self) -> bytes:
        return tlv.build(
            Do.EXTENDED_LENGTH_INFORMATION,
            tlv.build(_TAG_INTEGER, self.max_command_length.to_bytes(2, "big"))
            + tlv.build(_TAG_INTEGER, self.max_response_length.to_bytes(2, "big")),
        )


# --- 7F49 public key -------------------------------------------------------------------------


class RsaPublicKey(Record):
    """7F49 { 81 modulus, 82 public exponent } (big-endian, as sent)."""

    modulus: bytes
    exponent: bytes

    @property
    def n(self) -> int:
        return int.from_bytes(self.modulus, "big")

    @property
    def e(self) -> int:
        return int.from_bytes(self.exponent, "big")

    @property
    def n_bits(self) -> int:
        return self.n.bit_length()

    def __bytes__(self) -> bytes:
        return tlv.build(
            Do.PUBLIC_KEY,
            tlv.build(PublicKeyTag.MODULUS, self.modulus)
            + tlv.build(PublicKeyTag.EXPONENT, self.exponent),
        )


class EcPublicKey(Record):
    """7F49 { 86 public point }: 04 ‖ X ‖ Y for Weierstrass curves, 32 raw bytes for 25519."""

    point: bytes

    def __bytes__(self) -> bytes:
        return tlv.build(Do.PUBLIC_KEY, tlv.build(PublicKeyTag.EC_POINT, self.point))


#: The public key the card answers (7F49): RSA modulus and exponent, or an EC point.
PublicKeyMaterial: TypeAlias = RsaPublicKey | EcPublicKey


def parse_public_key(data: bytes) -> PublicKeyMaterial:
    """The answer of GENERATE ASYMMETRIC KEY PAIR (§7.2.9), with or without the 7F49 tag."""
    content, _ = _unwrap(_bytes(data), Do.PUBLIC_KEY)
    children = _children(content)
    if PublicKeyTag.EC_POINT in children:
        if set(children) != {PublicKeyTag.EC_POINT} or not children[PublicKeyTag.EC_POINT]:
            raise DataObjectError("malformed ECC public key template")
        return EcPublicKey(children[PublicKeyTag.EC_POINT])
    modulus = children.get(PublicKeyTag.MODULUS)
    exponent = children.get(PublicKeyTag.EXPONENT)
    if not modulus or not exponent or len(children) != 2:
        raise DataObjectError("public key template has neither 81/82 nor 86")
    return RsaPublicKey(modulus, exponent)


# --- 6E application related data -------------------------------------------------------------

_ARD_KNOWN = frozenset(
    {
        Do.AID,
        Do.HISTORICAL_BYTES,
        Do.EXTENDED_LENGTH_INFORMATION,
        Do.GENERAL_FEATURE_MANAGEMENT,
        Do.EXTENDED_CAPABILITIES,
        Do.ALGORITHM_ATTRIBUTES_SIG,
        Do.ALGORITHM_ATTRIBUTES_DEC,
        Do.ALGORITHM_ATTRIBUTES_AUT,
        Do.ALGORITHM_ATTRIBUTES_ATT,
        Do.PW_STATUS_BYTES,
        Do.FINGERPRINTS,
        Do.CA_FINGERPRINTS,
        Do.GENERATION_TIMES,
        Do.KEY_INFORMATION,
        Do.UIF_SIG,
        Do.UIF_DEC,
        Do.UIF_AUT,
        Do.UIF_ATT,
    }
)


class ApplicationRelatedData(Record):
    """6E application related data (§4.4.3.1) with every child typed.

    Tolerates the outer 6E present or absent, 73 present, empty or absent (children directly
    under 6E), 7F66 inside or outside 73. Children this driver does not know are kept in
    ``unknown``. ``bytes(x)`` is the spec layout: 6E { 4F 5F52 7F66 7F74 73 { C0 … D9 } }.
    """

    aid: Aid
    historical_bytes: HistoricalBytes | None = None
    extended_length_info: ExtendedLengthInfo | None = None
    general_feature_management: GeneralFeatureManagement | None = None
    extended_capabilities: ExtendedCapabilities | None = None
    attributes_sig: AlgorithmAttributes | None = None
    attributes_dec: AlgorithmAttributes | None = None
    attributes_aut: AlgorithmAttributes | None = None
    attributes_att: AlgorithmAttributes | None = None
    pw_status: PwStatus | None = None
    fingerprints: Fingerprints | None = None
    ca_fingerprints: CaFingerprints | None = None
    generation_times: GenerationTimes | None = None
    key_information: KeyInformation | None = None
    uif_sig: Uif | None = None
    uif_dec: Uif | None = None
    uif_aut: Uif | None = None
    uif_att: Uif | None = None
    unknown: tuple[tlv.Tlv, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> ApplicationRelatedData:
        content, _ = _unwrap(_bytes(data), Do.APPLICATION_RELATED_DATA)
        flat: dict[int, bytes] = {}
        unknown: list[tlv.Tlv] = []
        for item in _flatten(tlv.parse(content)):
            if item.tag in _ARD_KNOWN:
                if item.tag in flat:
                    raise DataObjectError(f"tag {item.tag:X} appears twice in 6E")
                flat[item.tag] = item.value
            else:
                unknown.append(item)
        if Do.AID not in flat:
            raise DataObjectError("application related data without AID (4F)")
        aid = Aid.parse(flat[Do.AID])

        def opt(tag: int) -> bytes | None:
            return flat.get(tag)

        def attrs(tag: int) -> AlgorithmAttributes | None:
            value = opt(tag)
            return None if value is None else parse_algorithm_attributes(value)

        def uif(tag: int) -> Uif | None:
            value = opt(tag)
            return None if value is None else Uif.parse(value)

        hist = opt(Do.HISTORICAL_BYTES)
        eli = opt(Do.EXTENDED_LENGTH_INFORMATION)
        gfm = opt(Do.GENERAL_FEATURE_MANAGEMENT)
        caps = opt(Do.EXTENDED_CAPABILITIES)
        pws = opt(Do.PW_STATUS_BYTES)
        fps = opt(Do.FINGERPRINTS)
        cas = opt(Do.CA_FINGERPRINTS)
        times = opt(Do.GENERATION_TIMES)
        info = opt(Do.KEY_INFORMATION)
        return cls(
            aid=aid,
            historical_bytes=None if hist is None else HistoricalBytes.parse(hist),
            extended_length_info=None if eli is None else ExtendedLengthInfo.parse(eli),
            general_feature_management=None if gfm is None else GeneralFeatureManagement.parse(gfm),
            extended_capabilities=None
            if caps is None
            else ExtendedCapabilities.parse(caps, v3=aid.is_v3),
            attributes_sig=attrs(Do.ALGORITHM_ATTRIBUTES_SIG),
            attributes_dec=attrs(Do.ALGORITHM_ATTRIBUTES_DEC),
            attributes_aut=attrs(Do.ALGORITHM_ATTRIBUTES_AUT),
            attributes_att=attrs(Do.ALGORITHM_ATTRIBUTES_ATT),
            pw_status=None if pws is None else PwStatus.parse(pws),
            fingerprints=None if fps is None else Fingerprints.parse(fps),
            ca_fingerprints=None if cas is None else CaFingerprints.parse(cas),
            generation_times=None if times is None else GenerationTimes.parse(times),
            key_information=None if info is None else KeyInformation.parse(info),
            uif_sig=uif(Do.UIF_SIG),
            uif_dec=uif(Do.UIF_DEC),
            uif_aut=uif(Do.UIF_AUT),
            uif_att=uif(Do.UIF_ATT),
            unknown=tuple(unknown),
        )

    def attributes(self, slot: KeySlot) -> AlgorithmAttributes | None:
        return (self.attributes_sig, self.attributes_dec, self.attributes_aut)[KeySlot(slot) - 1]

    def uif(self, slot: KeySlot) -> Uif | None:
        return (self.uif_sig, self.uif_dec, self.uif_aut)[KeySlot(slot) - 1]

    def fingerprint(self, slot: KeySlot) -> bytes | None:
        return None if self.fingerprints is None else self.fingerprints.get(slot)

    def generation_time(self, slot: KeySlot) -> int | None:
        return None if self.generation_times is None else self.generation_times.get(slot)

    def __bytes__(self) -> bytes:
        outer: list[bytes] = [tlv.build(Do.AID, bytes(self.aid))]
        if self.historical_bytes is not None:
            outer.append(tlv.build(Do.HISTORICAL_BYTES, bytes(self.historical_bytes)))
        for obj in (self.extended_length_info, self.general_feature_management):
            if obj is not None:
                outer.append(bytes(obj))
        inner: list[bytes] = []
        for tag, value in (
            (Do.EXTENDED_CAPABILITIES, self.extended_capabilities),
            (Do.ALGORITHM_ATTRIBUTES_SIG, self.attributes_sig),
            (Do.ALGORITHM_ATTRIBUTES_DEC, self.attributes_dec),
            (Do.ALGORITHM_ATTRIBUTES_AUT, self.attributes_aut),
            (Do.ALGORITHM_ATTRIBUTES_ATT, self.attributes_att),
            (Do.PW_STATUS_BYTES, self.pw_status),
            (Do.FINGERPRINTS, self.fingerprints),
            (Do.CA_FINGERPRINTS, self.ca_fingerprints),
            (Do.GENERATION_TIMES, self.generation_times),
            (Do.KEY_INFORMATION, self.key_information),
            (Do.UIF_SIG, self.uif_sig),
            (Do.UIF_DEC, self.uif_dec),
            (Do.UIF_AUT, self.uif_aut),
            (Do.UIF_ATT, self.uif_att),
        ):
            if value is not None:
                inner.append(tlv.build(tag, bytes(value)))
        inner.extend(bytes(item) for item in self.unknown)
        outer.append(tlv.build(Do.DISCRETIONARY_DATA_OBJECTS, b"".join(inner)))
        return tlv.build(Do.APPLICATION_RELATED_DATA, b"".join(outer))


def _flatten(items: Iterable[tlv.Tlv]) -> Iterable[tlv.Tlv]:
    """The children of 6E with the contents of 73 spliced in (73 may be empty)."""
    for item in items:
        if item.tag == Do.DISCRETIONARY_DATA_OBJECTS:
            yield from tlv.parse(item.value)
        else:
            yield item
