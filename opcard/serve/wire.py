"""The p11-kit RPC wire format: frames, the call table, value and mechanism encodings.

Read from p11-kit's ``p11-kit/rpc-message.h``, ``rpc-message.c``, ``rpc-transport.c`` and
``rpc-server.c`` (tags 0.24.1, 0.25.x and 0.26.4) and checked against the traces of real
clients (``shared/design/p11kit-traces``). Pure functions and small classes, no I/O.

Transport (rpc-transport.c): the client writes one version byte and the server answers
``min(client's, PROTOCOL_VERSION_MAX)``. Then frames, both ways: a 12-byte big-endian header
{message code u32, options length u32, body length u32}, the options (the client sends its
module name, the server nothing), the body. The reply echoes the message code.

Body (rpc-message.c): call id u32, the signature (u32 length + ASCII), the arguments in
signature order. All integers big-endian:

- ``u`` CK_ULONG: 8 bytes. ``y`` byte. ``v`` CK_VERSION: 2 bytes. ``s``/``z``: a byte array.
- byte array: u32 length + bytes; length 0xffffffff means NULL.
- ``ay`` / ``au``: a presence byte; 1 → a byte array / u32 count + u64 items; 0 → a bare u32
  length (size only: the answer to a size query, or CKR_BUFFER_TOO_SMALL).
- ``fy`` / ``fu``: u32 capacity of the caller's buffer (0: the caller asks for the size).
- ``fA``: u32 count, then (type u32, buffer length u32) pairs.
- ``aA``: u32 count, then per attribute: type u32, validity byte (0: ulValueLen is -1, nothing
  follows), u32 length (the client's ulValueLen), the value by its p11-kit value type
  (:data:`WIRE_TYPES`: byte, u64, byte array, date, arrays).
- ``M`` mechanism: u32 type, then the parameter. Protocol versions 0 and 1 (p11-kit ≤ 0.25.5)
  always send a parameter: PSS parameters as three u64, OAEP as three u64 and a byte array,
  ECDH1 (version 1) as a u64 and two byte arrays, anything else as a byte array (NULL when
  there is none). Version 2 (p11-kit ≥ 0.25.6) sends nothing after the type for the
  mechanisms p11-kit knows take no parameter, and a presence byte before the others'
  parameters. Type 0xffffffff (no mechanism: cancel the operation) is never followed by a
  parameter.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

from apdu._enums import IntEnumBody, fast_enum
from apdu.record import Record
from opcard.pkcs11.rv import ReturnValue
from opcard.serve.errors import FrameError, Pkcs11Error

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from typing import TypeAlias

__all__ = [
    "HANDSHAKE",
    "HEADER",
    "MAX_BODY",
    "MAX_OPTIONS",
    "NULL_LENGTH",
    "NO_MECHANISM",
    "PROTOCOL_VERSION_MAX",
    "READABLE_MECHANISMS",
    "REQUEST_SIGNATURES",
    "RESPONSE_SIGNATURES",
    "WIRE_TYPES",
    "Call",
    "EcdhParameters",
    "FrameError",
    "Reader",
    "WireAttribute",
    "WireMechanism",
    "WireType",
    "WireValue",
    "Writer",
    "check_arguments",
    "wire_type",
]

#: Highest protocol version this server speaks (p11-kit 0.25.6 and later offer 2).
PROTOCOL_VERSION_MAX = 2
#: C_Initialize's first argument (P11_RPC_HANDSHAKE in rpc-message.h).
HANDSHAKE = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"
#: The frame header: message code, options length, body length.
HEADER = struct.Struct(">III")
#: A byte array's length field meaning NULL.
NULL_LENGTH = 0xFFFFFFFF
#: The mechanism type meaning "no mechanism" (cancel the operation).
NO_MECHANISM = 0xFFFFFFFF
#: Limits this server puts on a frame (p11-kit has none), checked on the header before a byte
#: of the frame is stored. Options: p11-kit's client sends the 6 bytes "client".
MAX_OPTIONS = 4096
#: The largest request body: 1 MiB. What the calls need: a signature's or decryption's input
#: is at most the modulus (512 bytes for RSA-4096) unless a hashing mechanism hashes in the
#: daemon; a template is a few attributes, the largest a certificate's value (an OpenPGP
#: card's certificate DO holds at most 65535 bytes); multi-part data without a hash is capped
#: at 64 KiB in all (functions.py). Only a single-part C_Sign with a hashing mechanism
#: (CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA256 …) carries data of any length: 1 MiB lets such a
#: call sign a document of up to 1 MiB at once (16 times the largest template), and clients
#: with more data use C_SignUpdate, which every PKCS#11 client does for files. Anything
#: larger closes the connection before it is read (docs/serve.md, *Security*).
MAX_BODY = 1024 * 1024
#: Attribute arrays nest at most this deep (P11_RPC_MAX_RECURSION_DEPTH).
MAX_DEPTH = 8

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


@fast_enum
class Call(IntEnumBody):
    """The RPC call ids (``P11_RPC_CALL_*`` in rpc-message.h, 0.26.4 numbering)."""

    ERROR = 0
    INITIALIZE = 1
    FINALIZE = 2
    GET_INFO = 3
    GET_SLOT_LIST = 4
    GET_SLOT_INFO = 5
    GET_TOKEN_INFO = 6
    GET_MECHANISM_LIST = 7
    GET_MECHANISM_INFO = 8
    INIT_TOKEN = 9
    OPEN_SESSION = 10
    CLOSE_SESSION = 11
    CLOSE_ALL_SESSIONS = 12
    GET_SESSION_INFO = 13
    INIT_PIN = 14
    SET_PIN = 15
    GET_OPERATION_STATE = 16
    SET_OPERATION_STATE = 17
    LOGIN = 18
    LOGOUT = 19
    CREATE_OBJECT = 20
    COPY_OBJECT = 21
    DESTROY_OBJECT = 22
    GET_OBJECT_SIZE = 23
    GET_ATTRIBUTE_VALUE = 24
    SET_ATTRIBUTE_VALUE = 25
    FIND_OBJECTS_INIT = 26
    FIND_OBJECTS = 27
    FIND_OBJECTS_FINAL = 28
    ENCRYPT_INIT = 29
    ENCRYPT = 30
    ENCRYPT_UPDATE = 31
    ENCRYPT_FINAL = 32
    DECRYPT_INIT = 33
    DECRYPT = 34
    DECRYPT_UPDATE = 35
    DECRYPT_FINAL = 36
    DIGEST_INIT = 37
    DIGEST = 38
    DIGEST_UPDATE = 39
    DIGEST_KEY = 40
    DIGEST_FINAL = 41
    SIGN_INIT = 42
    SIGN = 43
    SIGN_UPDATE = 44
    SIGN_FINAL = 45
    SIGN_RECOVER_INIT = 46
    SIGN_RECOVER = 47
    VERIFY_INIT = 48
    VERIFY = 49
    VERIFY_UPDATE = 50
    VERIFY_FINAL = 51
    VERIFY_RECOVER_INIT = 52
    VERIFY_RECOVER = 53
    DIGEST_ENCRYPT_UPDATE = 54
    DECRYPT_DIGEST_UPDATE = 55
    SIGN_ENCRYPT_UPDATE = 56
    DECRYPT_VERIFY_UPDATE = 57
    GENERATE_KEY = 58
    GENERATE_KEY_PAIR = 59
    WRAP_KEY = 60
    UNWRAP_KEY = 61
    DERIVE_KEY = 62
    SEED_RANDOM = 63
    GENERATE_RANDOM = 64
    WAIT_FOR_SLOT_EVENT = 65
    # PKCS #11 3.0 (p11-kit 0.25)
    LOGIN_USER = 66
    SESSION_CANCEL = 67
    MESSAGE_ENCRYPT_INIT = 68
    ENCRYPT_MESSAGE = 69
    ENCRYPT_MESSAGE_BEGIN = 70
    ENCRYPT_MESSAGE_NEXT = 71
    MESSAGE_ENCRYPT_FINAL = 72
    MESSAGE_DECRYPT_INIT = 73
    DECRYPT_MESSAGE = 74
    DECRYPT_MESSAGE_BEGIN = 75
    DECRYPT_MESSAGE_NEXT = 76
    MESSAGE_DECRYPT_FINAL = 77
    MESSAGE_SIGN_INIT = 78
    SIGN_MESSAGE = 79
    SIGN_MESSAGE_BEGIN = 80
    SIGN_MESSAGE_NEXT = 81
    MESSAGE_SIGN_FINAL = 82
    MESSAGE_VERIFY_INIT = 83
    VERIFY_MESSAGE = 84
    VERIFY_MESSAGE_BEGIN = 85
    VERIFY_MESSAGE_NEXT = 86
    MESSAGE_VERIFY_FINAL = 87
    # protocol version 1 and 2
    INIT_TOKEN2 = 88
    DERIVE_KEY2 = 89

    @property
    def function(self) -> str:
        """The PKCS#11 function name (``C_GetSlotList``)."""
        if self is Call.ERROR:
            return "ERROR"
        return "C_" + "".join(part.capitalize() for part in self.name.split("_"))


# (request, response) signatures, from p11_rpc_calls[] in rpc-message.h
_SIGNATURES: dict[Call, tuple[str, str]] = {
    Call.ERROR: ("", "u"),
    Call.INITIALIZE: ("ayyay", ""),
    Call.FINALIZE: ("", ""),
    Call.GET_INFO: ("", "vsusv"),
    Call.GET_SLOT_LIST: ("yfu", "au"),
    Call.GET_SLOT_INFO: ("u", "ssuvv"),
    Call.GET_TOKEN_INFO: ("u", "ssssuuuuuuuuuuuvvs"),
    Call.GET_MECHANISM_LIST: ("ufu", "au"),
    Call.GET_MECHANISM_INFO: ("uu", "uuu"),
    Call.INIT_TOKEN: ("uayz", ""),
    Call.OPEN_SESSION: ("uu", "u"),
    Call.CLOSE_SESSION: ("u", ""),
    Call.CLOSE_ALL_SESSIONS: ("u", ""),
    Call.GET_SESSION_INFO: ("u", "uuuu"),
    Call.INIT_PIN: ("uay", ""),
    Call.SET_PIN: ("uayay", ""),
    Call.GET_OPERATION_STATE: ("ufy", "ay"),
    Call.SET_OPERATION_STATE: ("uayuu", ""),
    Call.LOGIN: ("uuay", ""),
    Call.LOGOUT: ("u", ""),
    Call.CREATE_OBJECT: ("uaA", "u"),
    Call.COPY_OBJECT: ("uuaA", "u"),
    Call.DESTROY_OBJECT: ("uu", ""),
    Call.GET_OBJECT_SIZE: ("uu", "u"),
    Call.GET_ATTRIBUTE_VALUE: ("uufA", "aAu"),
    Call.SET_ATTRIBUTE_VALUE: ("uuaA", ""),
    Call.FIND_OBJECTS_INIT: ("uaA", ""),
    Call.FIND_OBJECTS: ("ufu", "au"),
    Call.FIND_OBJECTS_FINAL: ("u", ""),
    Call.ENCRYPT_INIT: ("uMu", ""),
    Call.ENCRYPT: ("uayfy", "ay"),
    Call.ENCRYPT_UPDATE: ("uayfy", "ay"),
    Call.ENCRYPT_FINAL: ("ufy", "ay"),
    Call.DECRYPT_INIT: ("uMu", ""),
    Call.DECRYPT: ("uayfy", "ay"),
    Call.DECRYPT_UPDATE: ("uayfy", "ay"),
    Call.DECRYPT_FINAL: ("ufy", "ay"),
    Call.DIGEST_INIT: ("uM", ""),
    Call.DIGEST: ("uayfy", "ay"),
    Call.DIGEST_UPDATE: ("uay", ""),
    Call.DIGEST_KEY: ("uu", ""),
    Call.DIGEST_FINAL: ("ufy", "ay"),
    Call.SIGN_INIT: ("uMu", ""),
    Call.SIGN: ("uayfy", "ay"),
    Call.SIGN_UPDATE: ("uay", ""),
    Call.SIGN_FINAL: ("ufy", "ay"),
    Call.SIGN_RECOVER_INIT: ("uMu", ""),
    Call.SIGN_RECOVER: ("uayfy", "ay"),
    Call.VERIFY_INIT: ("uMu", ""),
    Call.VERIFY: ("uayay", ""),
    Call.VERIFY_UPDATE: ("uay", ""),
    Call.VERIFY_FINAL: ("uay", ""),
    Call.VERIFY_RECOVER_INIT: ("uMu", ""),
    Call.VERIFY_RECOVER: ("uayfy", "ay"),
    Call.DIGEST_ENCRYPT_UPDATE: ("uayfy", "ay"),
    Call.DECRYPT_DIGEST_UPDATE: ("uayfy", "ay"),
    Call.SIGN_ENCRYPT_UPDATE: ("uayfy", "ay"),
    Call.DECRYPT_VERIFY_UPDATE: ("uayfy", "ay"),
    Call.GENERATE_KEY: ("uMaA", "u"),
    Call.GENERATE_KEY_PAIR: ("uMaAaA", "uu"),
    Call.WRAP_KEY: ("uMuufy", "ay"),
    Call.UNWRAP_KEY: ("uMuayaA", "u"),
    Call.DERIVE_KEY: ("uMuaA", "u"),
    Call.SEED_RANDOM: ("uay", ""),
    Call.GENERATE_RANDOM: ("ufy", "ay"),
    Call.WAIT_FOR_SLOT_EVENT: ("u", "u"),
    Call.LOGIN_USER: ("uuayay", ""),
    Call.SESSION_CANCEL: ("uu", ""),
    Call.MESSAGE_ENCRYPT_INIT: ("uMu", ""),
    Call.ENCRYPT_MESSAGE: ("uayayayfy", "ay"),
    Call.ENCRYPT_MESSAGE_BEGIN: ("uayay", ""),
    Call.ENCRYPT_MESSAGE_NEXT: ("uayayfyu", "ay"),
    Call.MESSAGE_ENCRYPT_FINAL: ("u", ""),
    Call.MESSAGE_DECRYPT_INIT: ("uMu", ""),
    Call.DECRYPT_MESSAGE: ("uayayayfy", "ay"),
    Call.DECRYPT_MESSAGE_BEGIN: ("uayay", ""),
    Call.DECRYPT_MESSAGE_NEXT: ("uayayfyu", "ay"),
    Call.MESSAGE_DECRYPT_FINAL: ("u", ""),
    Call.MESSAGE_SIGN_INIT: ("uMu", ""),
    Call.SIGN_MESSAGE: ("uayayfy", "ay"),
    Call.SIGN_MESSAGE_BEGIN: ("uay", ""),
    Call.SIGN_MESSAGE_NEXT: ("uayayyfy", "ay"),
    Call.MESSAGE_SIGN_FINAL: ("u", ""),
    Call.MESSAGE_VERIFY_INIT: ("uMu", ""),
    Call.VERIFY_MESSAGE: ("uayayay", ""),
    Call.VERIFY_MESSAGE_BEGIN: ("uay", ""),
    Call.VERIFY_MESSAGE_NEXT: ("uayayay", ""),
    Call.MESSAGE_VERIFY_FINAL: ("u", ""),
    Call.INIT_TOKEN2: ("uays", ""),
    Call.DERIVE_KEY2: ("uMuaA", "uPu"),
}
REQUEST_SIGNATURES: dict[Call, str] = {c: s[0] for c, s in _SIGNATURES.items()}
RESPONSE_SIGNATURES: dict[Call, str] = {c: s[1] for c, s in _SIGNATURES.items()}


@fast_enum
class WireType(IntEnumBody):
    """How p11-kit encodes an attribute's value (``p11_rpc_value_type``)."""

    BYTE = 0
    ULONG = 1
    ATTRIBUTE_ARRAY = 2
    MECHANISM_TYPE_ARRAY = 3
    DATE = 4
    BYTE_ARRAY = 5


# map_attribute_to_value_type() in rpc-message.c; everything else is a byte array. Note that
# p11-kit sends CKA_DESTROYABLE (a CK_BBOOL) as a byte array, like every attribute it does not
# list; the client hands the bytes to the application as they are.
_WIRE_NAMES: dict[WireType, str] = {
    WireType.BYTE: """
        TOKEN PRIVATE TRUSTED SENSITIVE ENCRYPT DECRYPT WRAP UNWRAP SIGN SIGN_RECOVER VERIFY
        VERIFY_RECOVER DERIVE EXTRACTABLE LOCAL NEVER_EXTRACTABLE ALWAYS_SENSITIVE MODIFIABLE
        COPYABLE SECONDARY_AUTH ALWAYS_AUTHENTICATE WRAP_WITH_TRUSTED RESET_ON_INIT HAS_RESET
        COLOR
    """,
    WireType.ULONG: """
        CLASS CERTIFICATE_TYPE CERTIFICATE_CATEGORY JAVA_MIDP_SECURITY_DOMAIN KEY_TYPE
        MODULUS_BITS PRIME_BITS SUBPRIME_BITS VALUE_BITS VALUE_LEN KEY_GEN_MECHANISM
        AUTH_PIN_FLAGS HW_FEATURE_TYPE PIXEL_X PIXEL_Y RESOLUTION CHAR_ROWS CHAR_COLUMNS
        BITS_PER_PIXEL MECHANISM_TYPE
    """,
    WireType.ATTRIBUTE_ARRAY: "WRAP_TEMPLATE UNWRAP_TEMPLATE DERIVE_TEMPLATE",
    WireType.MECHANISM_TYPE_ARRAY: "ALLOWED_MECHANISMS",
    WireType.DATE: "START_DATE END_DATE",
}


@functools.cache
def _wire_types() -> dict[int, WireType]:
    """:data:`WIRE_TYPES`, made on first use: the names are looked up in the PKCS#11 attribute
    table, which the first C_GetSlotList does not need (issue #15)."""
    from opcard.pkcs11.constants import Attribute

    return {
        int(Attribute[name]): kind for kind, names in _WIRE_NAMES.items() for name in names.split()
    }


def wire_type(attribute: int) -> WireType:
    """How p11-kit carries the value of ``attribute``."""
    return _wire_types().get(attribute, WireType.BYTE_ARRAY)


#: A decoded attribute value: int (byte, ulong), bytes or None (byte array, date), a tuple of
#: mechanism types, or a nested attribute list.
WireValue: TypeAlias = "int | bytes | tuple[int, ...] | list[WireAttribute] | None"


class WireAttribute(Record):
    """One ``aA`` entry. ``length`` is the sender's ulValueLen; None when it was -1."""

    type: int
    length: int | None
    value: WireValue


class EcdhParameters(Record):
    """CK_ECDH1_DERIVE_PARAMS: key derivation function, shared data, the peer's public data."""

    kdf: int
    shared_data: bytes | None
    public_data: bytes | None


#: A decoded mechanism parameter: raw bytes (or None: no parameter), ECDH1 parameters, or a
#: tuple of integers (PSS: hash, MGF, salt length; OAEP: hash, MGF, source).
MechanismParameter: TypeAlias = "bytes | EcdhParameters | tuple[int, ...] | None"


class WireMechanism(Record):
    """A decoded ``M``: the type (NO_MECHANISM: none) and its parameter."""

    type: int
    parameter: MechanismParameter = None


# Mechanisms p11-kit ≥ 0.25.6 sends without a parameter (mechanism_has_no_parameters(), the
# part of its list that names PKCS#11 standard mechanisms).
_NO_PARAMETER_NAMES = (
    "RSA_PKCS_KEY_PAIR_GEN RSA_X9_31_KEY_PAIR_GEN RSA_PKCS RSA_9796 RSA_X_509 RSA_X9_31 "
    "MD2_RSA_PKCS MD5_RSA_PKCS SHA1_RSA_PKCS SHA224_RSA_PKCS SHA256_RSA_PKCS "
    "SHA384_RSA_PKCS SHA512_RSA_PKCS RIPEMD128_RSA_PKCS RIPEMD160_RSA_PKCS SHA1_RSA_X9_31 "
    "DSA_KEY_PAIR_GEN DSA_PARAMETER_GEN DSA DSA_SHA1 FORTEZZA_TIMESTAMP EC_KEY_PAIR_GEN "
    "ECDSA ECDSA_SHA1 ECDSA_SHA224 ECDSA_SHA256 ECDSA_SHA384 ECDSA_SHA512 "
    "DH_PKCS_KEY_PAIR_GEN DH_PKCS_PARAMETER_GEN X9_42_DH_KEY_PAIR_GEN "
    "X9_42_DH_PARAMETER_GEN KEA_KEY_PAIR_GEN GENERIC_SECRET_KEY_GEN RC2_KEY_GEN "
    "RC4_KEY_GEN RC4 RC5_KEY_GEN AES_KEY_GEN AES_ECB AES_MAC AES_CMAC DES_KEY_GEN "
    "DES2_KEY_GEN DES3_KEY_GEN CDMF_KEY_GEN CAST_KEY_GEN CAST3_KEY_GEN CAST128_KEY_GEN "
    "IDEA_KEY_GEN SSL3_PRE_MASTER_KEY_GEN TLS_PRE_MASTER_KEY_GEN SKIPJACK_KEY_GEN "
    "BATON_KEY_GEN JUNIPER_KEY_GEN RC2_ECB DES_ECB DES3_ECB CDMF_ECB CAST_ECB CAST3_ECB "
    "CAST128_ECB RC5_ECB IDEA_ECB RC2_MAC DES_MAC DES3_MAC DES3_CMAC CDMF_MAC CAST_MAC "
    "CAST3_MAC RC5_MAC IDEA_MAC SSL3_MD5_MAC SSL3_SHA1_MAC SKIPJACK_WRAP BATON_WRAP "
    "JUNIPER_WRAP MD2 MD2_HMAC MD5 MD5_HMAC SHA_1 SHA_1_HMAC SHA1_KEY_DERIVATION SHA224 "
    "SHA224_HMAC SHA224_KEY_DERIVATION SHA256 SHA256_HMAC SHA256_KEY_DERIVATION SHA384 "
    "SHA384_HMAC SHA384_KEY_DERIVATION SHA512 SHA512_HMAC SHA512_KEY_DERIVATION SHA512_T "
    "SHA512_T_HMAC SHA512_T_KEY_DERIVATION SHA512_224 SHA512_224_HMAC "
    "SHA512_224_KEY_DERIVATION SHA512_256 SHA512_256_HMAC SHA512_256_KEY_DERIVATION "
    "FASTHASH RIPEMD128 RIPEMD128_HMAC RIPEMD160 RIPEMD160_HMAC KEY_WRAP_LYNKS"
)


class _Encodings:
    """The mechanism sets the ``M`` encoding depends on, made on first use (:func:`_encodings`:
    they are looked up in the PKCS#11 mechanism table, which the first C_GetSlotList does not
    need)."""

    def __init__(self) -> None:
        from opcard.pkcs11.constants import Mechanism

        self.no_parameters = frozenset(int(Mechanism[name]) for name in _NO_PARAMETER_NAMES.split())
        self.pss = frozenset(
            int(m)
            for m in (
                Mechanism.RSA_PKCS_PSS,
                Mechanism.SHA1_RSA_PKCS_PSS,
                Mechanism.SHA224_RSA_PKCS_PSS,
                Mechanism.SHA256_RSA_PKCS_PSS,
                Mechanism.SHA384_RSA_PKCS_PSS,
                Mechanism.SHA512_RSA_PKCS_PSS,
            )
        )
        self.oaep = int(Mechanism.RSA_PKCS_OAEP)
        self.ecdh1 = int(Mechanism.ECDH1_DERIVE)
        self.readable = (
            self.no_parameters | self.pss | {self.oaep, self.ecdh1, int(Mechanism.EDDSA)}
        )


@functools.cache
def _encodings() -> _Encodings:
    return _Encodings()


if TYPE_CHECKING:
    #: Attribute type → p11-kit value type, for the attributes that are not byte arrays.
    WIRE_TYPES: dict[int, WireType]
    #: Mechanisms whose parameter encoding this server reads; any other one is answered with
    #: CKR_MECHANISM_INVALID before its parameter (whose encoding p11-kit may define in its own
    #: way) is read.
    READABLE_MECHANISMS: frozenset[int]
else:

    def __getattr__(name: str) -> object:
        """:data:`WIRE_TYPES` and :data:`READABLE_MECHANISMS`, made on first use."""
        if name == "WIRE_TYPES":
            return _wire_types()
        if name == "READABLE_MECHANISMS":
            return _encodings().readable
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def takes_no_parameter(mechanism: int) -> bool:
    """p11-kit ≥ 0.25.6 sends ``mechanism`` as its type alone (version 2 encoding)."""
    return mechanism in _encodings().no_parameters


class Reader:
    """Reads the arguments of one body, in signature order; every short read is a
    :class:`FrameError`."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = memoryview(data)
        self.offset = offset

    def _take(self, n: int) -> bytes:
        end = self.offset + n
        if n < 0 or end > len(self._data):
            raise FrameError(f"truncated body: {n} bytes wanted at offset {self.offset}")
        chunk = bytes(self._data[self.offset : end])
        self.offset = end
        return chunk

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def end(self) -> None:
        """Every argument was read: trailing bytes make the frame malformed."""
        if self.remaining:
            raise FrameError(f"{self.remaining} trailing bytes after the arguments")

    def byte(self) -> int:
        """``y``"""
        return self._take(1)[0]

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def ulong(self) -> int:
        """``u``: CK_ULONG, 8 bytes."""
        value: int = _U64.unpack(self._take(8))[0]
        return value

    def byte_array(self) -> bytes | None:
        """u32 length + bytes; None for the NULL length."""
        n = self.u32()
        if n == NULL_LENGTH:
            return None
        if n > self.remaining:
            raise FrameError(f"byte array of {n} bytes in a body with {self.remaining} left")
        return self._take(n)

    def array_of_bytes(self) -> bytes | None:
        """``ay``: presence byte, then the byte array; None when absent (only a length)."""
        present = self.byte()
        if not present:
            self.u32()
            return None
        return self.byte_array()

    def buffer_length(self) -> int:
        """``fy`` / ``fu``: the capacity of the caller's buffer."""
        return self.u32()

    def string(self) -> bytes:
        """``s`` / ``z``."""
        value = self.byte_array()
        if value is None:
            raise FrameError("NULL string")
        return value

    def attribute_buffer(self) -> list[tuple[int, int]]:
        """``fA``: (attribute type, buffer length) pairs."""
        count = self.u32()
        if count * 8 > self.remaining:
            raise FrameError(f"{count} attribute buffers in a body with {self.remaining} left")
        return [(self.u32(), self.u32()) for _ in range(count)]

    def attribute_array(self, depth: int = 0) -> list[WireAttribute]:
        """``aA``: attributes with values (a template)."""
        if depth > MAX_DEPTH:
            raise FrameError("attribute arrays nested too deep")
        count = self.u32()
        if count * 5 > self.remaining:
            raise FrameError(f"{count} attributes in a body with {self.remaining} left")
        return [self._attribute(depth) for _ in range(count)]

    def _attribute(self, depth: int) -> WireAttribute:
        kind = self.u32()
        if not self.byte():
            return WireAttribute(kind, None, None)
        length = self.u32()
        value: WireValue
        wt = wire_type(kind)
        if wt is WireType.BYTE:
            value = self.byte()
        elif wt is WireType.ULONG:
            value = self.ulong()
        elif wt is WireType.ATTRIBUTE_ARRAY:
            value = self.attribute_array(depth + 1)
        elif wt is WireType.MECHANISM_TYPE_ARRAY:
            count = self.u32()
            if count * 8 > self.remaining:
                raise FrameError(f"{count} mechanisms in a body with {self.remaining} left")
            value = tuple(self.ulong() for _ in range(count))
        else:  # byte array, date
            value = self.byte_array()
        return WireAttribute(kind, length, value)

    def mechanism(self, version: int) -> WireMechanism:
        """``M`` in the encoding of protocol ``version`` (see the module docstring).

        A mechanism outside :data:`READABLE_MECHANISMS` raises :class:`Pkcs11Error`
        (CKR_MECHANISM_INVALID): the rest of the body is left unread."""
        kind = self.u32()
        if kind == NO_MECHANISM:
            return WireMechanism(kind)
        encodings = _encodings()
        if kind not in encodings.readable:
            raise Pkcs11Error(ReturnValue.MECHANISM_INVALID, f"mechanism {kind:#x}")
        if version >= 2:
            if kind in encodings.no_parameters:
                return WireMechanism(kind)
            if not self.byte():
                return WireMechanism(kind)
        if kind in encodings.pss:
            return WireMechanism(kind, (self.ulong(), self.ulong(), self.ulong()))
        if kind == encodings.oaep:
            values = (self.ulong(), self.ulong(), self.ulong())
            self.byte_array()  # the OAEP source data: not used (OAEP is refused)
            return WireMechanism(kind, values)
        if kind == encodings.ecdh1 and version >= 1:
            kdf = self.ulong()
            return WireMechanism(kind, EcdhParameters(kdf, self.byte_array(), self.byte_array()))
        return WireMechanism(kind, self.byte_array())


def check_arguments(reader: Reader, signature: str, version: int) -> None:
    """Walk the arguments of ``signature`` from ``reader``'s position to the end of the body:
    :class:`FrameError` when they are truncated or followed by trailing bytes. (A mechanism
    this server does not read ends the walk: its parameter's length is unknown.)"""
    i = 0
    while i < len(signature):
        c = signature[i]
        pair = signature[i : i + 2]
        if pair in ("ay", "au", "aA", "fy", "fu", "fA"):
            i += 2
            if pair == "ay":
                reader.array_of_bytes()
            elif pair == "au":
                if reader.byte():
                    for _ in range(reader.u32()):
                        reader.ulong()
                else:
                    reader.u32()
            elif pair == "aA":
                reader.attribute_array()
            elif pair == "fA":
                reader.attribute_buffer()
            else:
                reader.buffer_length()
            continue
        i += 1
        if c == "u":
            reader.ulong()
        elif c == "y":
            reader.byte()
        elif c == "v":
            reader.byte(), reader.byte()
        elif c in "sz":
            reader.string()
        elif c == "M":
            try:
                reader.mechanism(version)
            except Pkcs11Error:
                return
        else:
            raise FrameError(f"signature {signature!r}: unknown type {c!r}")
    reader.end()


class Writer:
    """Builds a reply body: ``Writer(call, signature)`` then the values in signature order."""

    def __init__(self, call: int, signature: str) -> None:
        sig = signature.encode("ascii")
        self._parts: list[bytes] = [_U32.pack(call), _U32.pack(len(sig)), sig]
        #: The CK_RV travelling inside the reply (C_GetAttributeValue), for the log.
        self.rv = 0

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def byte(self, value: int) -> Writer:
        self._parts.append(bytes((value & 0xFF,)))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def ulong(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value & 0xFFFFFFFFFFFFFFFF))
        return self

    def version(self, major: int, minor: int) -> Writer:
        self._parts.append(bytes((major & 0xFF, minor & 0xFF)))
        return self

    def byte_array(self, value: bytes | None) -> Writer:
        if value is None:
            return self.u32(NULL_LENGTH)
        self.u32(len(value))
        self._parts.append(bytes(value))
        return self

    def space_string(self, text: str | bytes, width: int) -> Writer:
        """``s``: a fixed-width PKCS#11 text field, UTF-8, blank-padded (cut at a character
        boundary when too long)."""
        return self.byte_array(space_padded(text, width))

    def array_of_bytes(self, value: bytes | None, length: int | None = None) -> Writer:
        """``ay``: the bytes, or (value None) only ``length``: a size answer."""
        if value is None:
            self.byte(0)
            return self.u32(length or 0)
        self.byte(1)
        return self.byte_array(value)

    def array_of_ulongs(self, values: Sequence[int] | None, count: int | None = None) -> Writer:
        """``au``: the items, or (values None) only ``count``."""
        if values is None:
            self.byte(0)
            return self.u32(count or 0)
        self.byte(1)
        self.u32(len(values))
        for v in values:
            self.ulong(v)
        return self

    def attribute(self, kind: int, length: int | None, encoded: bytes = b"") -> Writer:
        """One ``aA`` entry: ``length`` None means ulValueLen -1 (invalid, sensitive or
        too small); else the length and the value already encoded for its wire type
        (:func:`encode_value`)."""
        self.u32(kind)
        if length is None:
            return self.byte(0)
        self.byte(1)
        self.u32(length)
        self._parts.append(encoded)
        return self


def space_padded(text: str | bytes, width: int) -> bytes:
    """``text`` as UTF-8, cut to ``width`` bytes at a character boundary, padded with blanks."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(raw) > width:
        raw = raw[:width]
        if isinstance(text, str):
            raw = raw.decode("utf-8", errors="ignore").encode("utf-8")
    return raw + b" " * (width - len(raw))


def encode_value(kind: int, value: bytes | int | tuple[int, ...] | None) -> tuple[int, bytes]:
    """(ulValueLen, the value's bytes in the body) for an attribute of type ``kind``.

    ``value``: an int for the byte and ulong types, bytes for byte arrays and dates (None or
    an empty date: the NULL byte array), a tuple for mechanism arrays. A size answer (the
    client passed no buffer) is :func:`encode_size`.
    """
    wt = wire_type(kind)
    if wt is WireType.BYTE:
        assert isinstance(value, int)
        return 1, bytes((value & 0xFF,))
    if wt is WireType.ULONG:
        assert isinstance(value, int)
        return 8, _U64.pack(value & 0xFFFFFFFFFFFFFFFF)
    if wt is WireType.MECHANISM_TYPE_ARRAY:
        assert isinstance(value, tuple)
        return 8 * len(value), _U32.pack(len(value)) + b"".join(_U64.pack(v) for v in value)
    if wt is WireType.ATTRIBUTE_ARRAY:
        raise ValueError("attribute arrays are not served")
    assert value is None or isinstance(value, bytes)
    if value is None or (wt is WireType.DATE and not value):
        return 0, _U32.pack(NULL_LENGTH)
    return len(value), _U32.pack(len(value)) + value


def encode_size(kind: int, length: int) -> bytes:
    """The value part of a size answer (the client passed no buffer): what p11-kit's server
    writes for a NULL pValue of each wire type."""
    wt = wire_type(kind)
    if wt is WireType.BYTE:
        return b"\x00"
    if wt is WireType.ULONG:
        return _U64.pack(0)
    if wt is WireType.MECHANISM_TYPE_ARRAY:
        return _U32.pack(length // 8)
    if wt is WireType.ATTRIBUTE_ARRAY:
        return _U32.pack(0)
    return _U32.pack(NULL_LENGTH)
