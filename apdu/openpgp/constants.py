"""Constants of the OpenPGP card application v3.4: instructions, data objects, key slots.

Every number the OpenPGP layer puts on the wire is named here (or in a builder of
:mod:`apdu.openpgp.commands`). Section numbers refer to "Functional Specification of the
OpenPGP application on ISO Smart Card Operating Systems", version 3.4.1.
"""

from __future__ import annotations

from enum import Enum, unique

from apdu._enums import IntEnumBody, IntFlagBody, fast_enum
from apdu.openpgp.errors import DataObjectError

__all__ = [
    "OPENPGP_AID_PREFIX",
    "OPENPGP_RID",
    "AlgorithmId",
    "Crt",
    "Curve",
    "Do",
    "EcImportFormat",
    "ExtendedCapability",
    "GeneralFeature",
    "Ins",
    "KdfAlgorithm",
    "KdfHash",
    "KdfTag",
    "KeySlot",
    "KeyStatus",
    "LifeCycle",
    "MANUFACTURERS",
    "PRIVATE_DOS",
    "Pw",
    "RsaImportFormat",
    "Secret",
    "Sex",
    "SmAlgorithm",
    "UifMode",
    "YUBICO",
    "KeyTemplateTag",
    "PublicKeyTag",
    "decode_oid",
    "manufacturer_name",
]

#: Registered application provider identifier of the FSFE (ISO 7816-5).
OPENPGP_RID = bytes.fromhex("D276000124")
#: RID ‖ PIX application byte 01: what SELECT sends (§4.2.1).
OPENPGP_AID_PREFIX = OPENPGP_RID + b"\x01"


@fast_enum
class Ins(IntEnumBody):
    """Instruction bytes (§7.2), plus the vendor commands a driver may meet."""

    VERIFY = 0x20
    MANAGE_SECURITY_ENVIRONMENT = 0x22
    CHANGE_REFERENCE_DATA = 0x24
    PERFORM_SECURITY_OPERATION = 0x2A
    RESET_RETRY_COUNTER = 0x2C
    ACTIVATE_FILE = 0x44
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x47
    GET_CHALLENGE = 0x84
    INTERNAL_AUTHENTICATE = 0x88
    SELECT = 0xA4
    SELECT_DATA = 0xA5
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCA
    GET_NEXT_DATA = 0xCC
    PUT_DATA = 0xDA
    PUT_DATA_ODD = 0xDB
    TERMINATE_DF = 0xE6
    #: Yubico vendor commands (never required by this driver).
    YUBICO_GET_VERSION = 0xF1
    YUBICO_SET_PIN_RETRIES = 0xF2
    YUBICO_GET_ATTESTATION = 0xFB


@fast_enum
class Do(IntEnumBody):
    """Data object tags (§4.4.1), as the integer of their encoded tag bytes."""

    PRIVATE_USE_1 = 0x0101
    PRIVATE_USE_2 = 0x0102
    PRIVATE_USE_3 = 0x0103
    PRIVATE_USE_4 = 0x0104
    AID = 0x4F
    EXTENDED_HEADER_LIST = 0x4D
    NAME = 0x5B
    LOGIN_DATA = 0x5E
    LANGUAGE = 0x5F2D
    SEX = 0x5F35
    CARDHOLDER_PRIVATE_KEY = 0x5F48
    URL = 0x5F50
    HISTORICAL_BYTES = 0x5F52
    CARDHOLDER_RELATED_DATA = 0x65
    APPLICATION_RELATED_DATA = 0x6E
    DISCRETIONARY_DATA_OBJECTS = 0x73
    SECURITY_SUPPORT_TEMPLATE = 0x7A
    CARDHOLDER_CERTIFICATE = 0x7F21
    CARDHOLDER_PRIVATE_KEY_TEMPLATE = 0x7F48
    PUBLIC_KEY = 0x7F49
    EXTENDED_LENGTH_INFORMATION = 0x7F66
    GENERAL_FEATURE_MANAGEMENT = 0x7F74
    DIGITAL_SIGNATURE_COUNTER = 0x93
    EXTENDED_CAPABILITIES = 0xC0
    ALGORITHM_ATTRIBUTES_SIG = 0xC1
    ALGORITHM_ATTRIBUTES_DEC = 0xC2
    ALGORITHM_ATTRIBUTES_AUT = 0xC3
    PW_STATUS_BYTES = 0xC4
    FINGERPRINTS = 0xC5
    CA_FINGERPRINTS = 0xC6
    FINGERPRINT_SIG = 0xC7
    FINGERPRINT_DEC = 0xC8
    FINGERPRINT_AUT = 0xC9
    CA_FINGERPRINT_1 = 0xCA
    CA_FINGERPRINT_2 = 0xCB
    CA_FINGERPRINT_3 = 0xCC
    GENERATION_TIMES = 0xCD
    GENERATION_TIME_SIG = 0xCE
    GENERATION_TIME_DEC = 0xCF
    GENERATION_TIME_AUT = 0xD0
    RESETTING_CODE = 0xD3
    AES_KEY = 0xD5
    UIF_SIG = 0xD6
    UIF_DEC = 0xD7
    UIF_AUT = 0xD8
    #: Yubico attestation key: UIF, attributes, fingerprint, CA fingerprint, time.
    UIF_ATT = 0xD9
    ALGORITHM_ATTRIBUTES_ATT = 0xDA
    FINGERPRINT_ATT = 0xDB
    CA_FINGERPRINT_ATT = 0xDC
    GENERATION_TIME_ATT = 0xDD
    KEY_INFORMATION = 0xDE
    KDF = 0xF9
    ALGORITHM_INFORMATION = 0xFA
    #: Yubico attestation certificate.
    ATTESTATION_CERTIFICATE = 0xFC


@fast_enum
class Pw(IntEnumBody):
    """Password references of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER (§7.2.2).

    ``PW1`` (81) and ``PW1_OTHER`` (82) are one physical user PIN verified for two uses: 81
    allows PSO:COMPUTE DIGITAL SIGNATURE, 82 everything else (decipher, authenticate, private
    DOs). ``PW3`` (83) is the admin PIN.
    """

    PW1 = 0x81
    PW1_OTHER = 0x82
    PW3 = 0x83


#: The private-use DOs (§4.4.1) and the password each needs, to be read and to be written (None:
#: anyone reads it). The user PIN is verified as 82 for both.
PRIVATE_DOS: dict[Do, tuple[Pw | None, Pw]] = {
    Do.PRIVATE_USE_1: (None, Pw.PW1_OTHER),
    Do.PRIVATE_USE_2: (None, Pw.PW3),
    Do.PRIVATE_USE_3: (Pw.PW1_OTHER, Pw.PW1_OTHER),
    Do.PRIVATE_USE_4: (Pw.PW3, Pw.PW3),
}


@fast_enum
class Secret(IntEnumBody):
    """The three secrets of the card, numbered as their position in C4 (lengths, counters)."""

    PW1 = 0
    RESET_CODE = 1
    PW3 = 2

    @property
    def minimum_length(self) -> int:
        """Shortest value the spec allows (§4.3: PW1 6, reset code and PW3 8)."""
        return 6 if self is Secret.PW1 else 8

    @property
    def maximum_length(self) -> int:
        """Longest value any card can take: C4 gives a length in 7 bits (§4.4.3.11); the
        card's own limit is :meth:`apdu.openpgp.objects.PwStatus.max_length`."""
        return 127

    @classmethod
    def for_pw(cls, pw: Pw) -> Secret:
        return cls.PW3 if pw is Pw.PW3 else cls.PW1


@fast_enum
class Crt(IntEnumBody):
    """Control reference template tags naming a key in GENERATE / key import (§7.2.9)."""

    SIG = 0xB6
    DEC = 0xB8
    AUT = 0xA4


@fast_enum
class KeySlot(IntEnumBody):
    """The three key slots; the value is the key reference (1, 2, 3: also PKCS#11-style ids)."""

    SIG = 1
    DEC = 2
    AUT = 3

    @property
    def crt(self) -> Crt:
        return (Crt.SIG, Crt.DEC, Crt.AUT)[self - 1]

    @property
    def attributes_tag(self) -> Do:
        return (
            Do.ALGORITHM_ATTRIBUTES_SIG,
            Do.ALGORITHM_ATTRIBUTES_DEC,
            Do.ALGORITHM_ATTRIBUTES_AUT,
        )[self - 1]

    @property
    def fingerprint_tag(self) -> Do:
        return (Do.FINGERPRINT_SIG, Do.FINGERPRINT_DEC, Do.FINGERPRINT_AUT)[self - 1]

    @property
    def ca_fingerprint_tag(self) -> Do:
        return (Do.CA_FINGERPRINT_1, Do.CA_FINGERPRINT_2, Do.CA_FINGERPRINT_3)[self - 1]

    @property
    def generation_time_tag(self) -> Do:
        return (Do.GENERATION_TIME_SIG, Do.GENERATION_TIME_DEC, Do.GENERATION_TIME_AUT)[self - 1]

    @property
    def uif_tag(self) -> Do:
        return (Do.UIF_SIG, Do.UIF_DEC, Do.UIF_AUT)[self - 1]

    @property
    def certificate_occurrence(self) -> int:
        """SELECT DATA occurrence of this slot's cardholder certificate (§7.2.5): AUT 0,
        DEC 1, SIG 2."""
        return 3 - self.value

    @classmethod
    def parse(cls, value: KeySlot | str | int) -> KeySlot:
        """``KeySlot.SIG`` from ``KeySlot.SIG``, ``1``, ``"sig"`` or ``"SIG"`` (a caller's
        choice of slot; ValueError names the valid ones)."""
        if isinstance(value, KeySlot):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"no key slot {value!r} (sig, dec or aut)") from None
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"no key slot {value!r} (1 sig, 2 dec or 3 aut)") from None

    @classmethod
    def from_attributes_tag(cls, tag: int) -> KeySlot | None:
        for slot in cls:
            if slot.attributes_tag == tag:
                return slot
        return None


@fast_enum
class AlgorithmId(IntEnumBody):
    """First byte of the algorithm attributes (§4.4.3.9), RFC 4880 / RFC 6637 ids."""

    RSA = 0x01
    ECDH = 0x12
    ECDSA = 0x13
    EDDSA = 0x16


@fast_enum
class RsaImportFormat(IntEnumBody):
    """Last byte of RSA attributes: which parts a key import carries (§4.4.3.9)."""

    STANDARD = 0x00
    STANDARD_WITH_MODULUS = 0x01
    CRT = 0x02
    CRT_WITH_MODULUS = 0x03

    @property
    def crt(self) -> bool:
        return self in (RsaImportFormat.CRT, RsaImportFormat.CRT_WITH_MODULUS)

    @property
    def with_modulus(self) -> bool:
        return self in (RsaImportFormat.STANDARD_WITH_MODULUS, RsaImportFormat.CRT_WITH_MODULUS)


@fast_enum
class EcImportFormat(IntEnumBody):
    """Optional last byte of ECC attributes: FF = key import carries the public key."""

    STANDARD = 0x00
    WITH_PUBLIC_KEY = 0xFF


@unique
class Curve(Enum):
    """Curves of the spec (§4.4.3.9 table), one row of facts each; opcard derives the rest.

    ``oid`` is the DER content of the OBJECT IDENTIFIER (no tag, no length) as it appears in
    the algorithm attributes, ``dotted`` its dotted form; ``bits`` is the bit length of the
    curve (521 for P-521, 255 for the 25519 curves: what key sizes and hash choices are
    measured in), ``size`` the length in bytes of a private scalar and of one coordinate;
    ``openpgp_name`` is the curve's name in GnuPG (``nistp256``, ``cv25519``), which opcard
    uses too.
    """

    #                   OID content bytes        bits  OpenPGP name
    NIST_P256 = ("2A8648CE3D030107", 256, "nistp256")  # 1.2.840.10045.3.1.7
    NIST_P384 = ("2B81040022", 384, "nistp384")  # 1.3.132.0.34
    NIST_P521 = ("2B81040023", 521, "nistp521")  # 1.3.132.0.35
    SECP256K1 = ("2B8104000A", 256, "secp256k1")  # 1.3.132.0.10
    BRAINPOOL_P256R1 = ("2B2403030208010107", 256, "brainpoolP256r1")  # 1.3.36.3.3.2.8.1.1.7
    BRAINPOOL_P384R1 = ("2B240303020801010B", 384, "brainpoolP384r1")  # 1.3.36.3.3.2.8.1.1.11
    BRAINPOOL_P512R1 = ("2B240303020801010D", 512, "brainpoolP512r1")  # 1.3.36.3.3.2.8.1.1.13
    ED25519 = ("2B06010401DA470F01", 255, "ed25519")  # 1.3.6.1.4.1.11591.15.1
    X25519 = ("2B060104019755010501", 255, "cv25519")  # 1.3.6.1.4.1.3029.1.5.1

    def __init__(self, oid_hex: str, bits: int, openpgp_name: str) -> None:
        self.oid = bytes.fromhex(oid_hex)
        self.bits = bits
        self.size = (bits + 7) // 8
        self.openpgp_name = openpgp_name

    @property
    def dotted(self) -> str:
        return decode_oid(self.oid)

    @property
    def is_25519(self) -> bool:
        return self in (Curve.ED25519, Curve.X25519)

    @classmethod
    def from_oid(cls, oid: bytes) -> Curve | None:
        """The curve whose OID content bytes are ``oid``, or None for an unknown curve."""
        for curve in cls:
            if curve.oid == oid:
                return curve
        return None


def decode_oid(content: bytes) -> str:
    """Dotted form of DER OBJECT IDENTIFIER content bytes (strict)."""
    if not content:
        raise DataObjectError("empty OID")
    if content[-1] & 0x80:
        raise DataObjectError("OID ends inside a sub-identifier")
    arcs: list[int] = []
    value = 0
    start = True
    for b in content:
        if start and b == 0x80:
            raise DataObjectError("OID sub-identifier with a leading 80 byte")
        value = (value << 7) | (b & 0x7F)
        start = not b & 0x80
        if start:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


@fast_enum
class KeyStatus(IntEnumBody):
    """Key information DE (§4.4.3.14): how the key in a slot came to be."""

    NONE = 0x00
    GENERATED = 0x01
    IMPORTED = 0x02


@fast_enum
class UifMode(IntEnumBody):
    """User interaction flag D6-D8 first byte (§4.4.3.6; 03/04 are Yubico extensions)."""

    DISABLED = 0x00
    ENABLED = 0x01
    PERMANENTLY_ENABLED = 0x02
    CACHED = 0x03
    PERMANENTLY_CACHED = 0x04


@fast_enum
class GeneralFeature(IntFlagBody):
    """General feature management 7F74 / 81 bits (§4.1.3.2); BUTTON is the UIF feature byte."""

    TOUCHSCREEN = 0x01
    MICROPHONE = 0x02
    LOUDSPEAKER = 0x04
    LED = 0x08
    KEYPAD = 0x10
    BUTTON = 0x20
    BIOMETRIC = 0x40
    DISPLAY = 0x80


@fast_enum
class ExtendedCapability(IntFlagBody):
    """First byte of extended capabilities C0 (§4.4.3.7)."""

    KDF = 0x01
    PSO_AES = 0x02
    ALGORITHM_ATTRIBUTES_CHANGEABLE = 0x04
    PRIVATE_USE_DOS = 0x08
    PW_STATUS_CHANGEABLE = 0x10
    KEY_IMPORT = 0x20
    GET_CHALLENGE = 0x40
    SECURE_MESSAGING = 0x80


@fast_enum
class SmAlgorithm(IntEnumBody):
    """Second byte of C0 on v3 cards: secure messaging algorithm."""

    NONE = 0x00
    AES_128 = 0x01
    AES_256 = 0x02
    SCP11B = 0x03


@fast_enum
class KdfAlgorithm(IntEnumBody):
    """KDF-DO F9 / 81 (§4.3.2)."""

    NONE = 0x00
    ITERSALTED_S2K = 0x03


@fast_enum
class KdfHash(IntEnumBody):
    """KDF-DO F9 / 82: hash algorithm (RFC 4880 ids)."""

    SHA256 = 0x08
    SHA512 = 0x0A

    @property
    def hashlib_name(self) -> str:
        return "sha256" if self is KdfHash.SHA256 else "sha512"

    @property
    def digest_size(self) -> int:
        return 32 if self is KdfHash.SHA256 else 64


@fast_enum
class KdfTag(IntEnumBody):
    """Children of the KDF-DO F9."""

    ALGORITHM = 0x81
    HASH_ALGORITHM = 0x82
    ITERATION_COUNT = 0x83
    SALT_PW1 = 0x84
    SALT_RESET_CODE = 0x85
    SALT_PW3 = 0x86
    INITIAL_HASH_PW1 = 0x87
    INITIAL_HASH_PW3 = 0x88


@fast_enum
class PublicKeyTag(IntEnumBody):
    """Children of the public key template 7F49 (§7.2.9)."""

    MODULUS = 0x81
    EXPONENT = 0x82
    EC_POINT = 0x86


@fast_enum
class KeyTemplateTag(IntEnumBody):
    """Children of the cardholder private key template 7F48 (§4.4.3.12).

    The same tag 92 carries the first prime of an RSA key and the private scalar of an ECC key.
    """

    PUBLIC_EXPONENT = 0x91
    PRIME1_OR_EC_PRIVATE = 0x92
    PRIME2 = 0x93
    PQ = 0x94  # 1/q mod p
    DP1 = 0x95  # d mod (p - 1)
    DQ1 = 0x96  # d mod (q - 1)
    MODULUS = 0x97
    EC_PUBLIC = 0x99


@fast_enum
class LifeCycle(IntEnumBody):
    """Life cycle status byte (ISO 7816-4 §5.3.3.2) at the end of the historical bytes."""

    NO_INFORMATION = 0x00
    #: The state an OpenPGP card is in after TERMINATE DF, until ACTIVATE FILE.
    INITIALISATION = 0x03
    OPERATIONAL = 0x05
    OPERATIONAL_DEACTIVATED = 0x04
    TERMINATED = 0x0C


@fast_enum
class Sex(IntEnumBody):
    """5F35 (ISO/IEC 5218, as ASCII digits)."""

    NOT_KNOWN = 0x30
    MALE = 0x31
    FEMALE = 0x32
    NOT_APPLICABLE = 0x39


#: Manufacturer ids of the AID (bytes 9-10) and their names, as GnuPG lists them in
#: ``scd/app-openpgp.c`` ``app_openpgp_manufacturer()`` (gpg/gnupg, 2025).
MANUFACTURERS: dict[int, str] = {
    0x0001: "PPC Card Systems",
    0x0002: "Prism",
    0x0003: "OpenFortress",
    0x0004: "Wewid",
    0x0005: "ZeitControl",
    0x0006: "Yubico",
    0x0007: "OpenKMS",
    0x0008: "LogoEmail",
    0x0009: "Fidesmo",
    0x000A: "VivoKey",
    0x000B: "Feitian Technologies",
    0x000D: "Dangerous Things",
    0x000E: "Excelsecu",
    0x002A: "Magrathea",
    0x0042: "GnuPG e.V.",
    0x1337: "Warsaw Hackerspace",
    0x2342: "warpzone",
    0x4354: "Confidential Technologies",
    0x5343: "SSE Carte à puce",
    0x5443: "TIF-IT e.V.",
    0x63AF: "Trustica",
    0xBA53: "c-base e.V.",
    0xBD0E: "Paranoidlabs",
    0xF517: "FSIJ",
    0xF5EC: "F-Secure",
}

#: The manufacturer id of Yubico (several quirks key on it).
YUBICO = 0x0006


def manufacturer_name(manufacturer: int) -> str:
    """The manufacturer's name; 0000 and FFFF are test cards, FF00-FFFE random serials."""
    name = MANUFACTURERS.get(manufacturer)
    if name is not None:
        return name
    if manufacturer in (0x0000, 0xFFFF):
        return "test card"
    if manufacturer & 0xFF00 == 0xFF00:
        return "unmanaged S/N range"
    return "unknown"
