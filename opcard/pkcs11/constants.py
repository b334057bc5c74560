"""PKCS#11 v2.40 / v3.0 constants: object classes, attributes, key types, mechanisms, return
values and flags, plus the table of attribute value types.

Naming: every class is a ``@unique`` :class:`~enum.IntEnum` (or :class:`~enum.IntFlag` for the
``CKF_*`` bit sets) named after the C type in CamelCase; members carry the specification's name
**without** its prefix, so ``CKM_SHA256_RSA_PKCS`` is ``Mechanism.SHA256_RSA_PKCS``,
``CKA_EC_POINT`` is ``Attribute.EC_POINT``, ``CKR_PIN_INCORRECT`` is
``ReturnValue.PIN_INCORRECT`` and ``CKF_TOKEN_INITIALIZED`` is ``TokenFlag.TOKEN_INITIALIZED``.
The one name that would start with a digit does not occur; none clashes with a keyword.

Values come from the OASIS PKCS#11 3.0 headers (``published/3-00/pkcs11t.h``); the unit tests
compare every member with the system's NSS ``pkcs11t.h`` (3.0) and p11-kit ``pkcs11.h``
(2.40). Where the specification defines two names for one value, ``@unique`` keeps one: the
current name, not the deprecated alias (``KeyType.EC`` not ``CKK_ECDSA``,
``Attribute.EC_PARAMS`` not ``CKA_ECDSA_PARAMS``, ``Mechanism.EC_KEY_PAIR_GEN`` not
``CKM_ECDSA_KEY_PAIR_GEN``, the ``CAST128`` names not ``CAST5``, ``MechanismFlag.EC_OID`` not
``CKF_EC_NAMEDCURVE``).

:class:`ReturnValue` is defined in :mod:`opcard.pkcs11.rv` (so that :mod:`opcard.errors` loads
without these tables), :class:`KeyType` in :mod:`opcard.pkcs11.keytype` (so that a card's key
algorithms are named without them), :class:`ObjectClass` and :class:`UserType` in
:mod:`opcard.pkcs11.basic` (so that a session loads without them); all are re-exported here.

Note: p11-kit 0.24 (Debian 12) ships wrong values for five return codes (``CKR_EXCEEDED_MAX_
ITERATIONS`` … ``CKR_PUBLIC_KEY_INVALID`` as 0x1C0 to 0x1C4); the specification, and this
module, say 0x1B5 to 0x1B9.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from apdu._enums import IntEnumBody, IntFlagBody, fast_enum
from opcard.pkcs11.basic import ObjectClass, UserType
from opcard.pkcs11.keytype import KeyType
from opcard.pkcs11.rv import ReturnValue

__all__ = [
    "ARRAY_ATTRIBUTE",
    "ATTRIBUTE_KINDS",
    "Attribute",
    "AttributeKind",
    "AttributeValue",
    "CertificateCategory",
    "CertificateType",
    "EcKdf",
    "HardwareFeature",
    "InitializeFlag",
    "KeyType",
    "Mechanism",
    "MechanismFlag",
    "ObjectClass",
    "ReturnValue",
    "SessionFlag",
    "SessionState",
    "SlotFlag",
    "TokenFlag",
    "UNAVAILABLE_INFORMATION",
    "UserType",
    "attribute_kind",
    "normalise_attribute_value",
    "normalise_template",
]

#: ``CK_UNAVAILABLE_INFORMATION``: (CK_ULONG)-1 on a 64-bit platform.
UNAVAILABLE_INFORMATION = 0xFFFFFFFFFFFFFFFF

#: ``CKF_ARRAY_ATTRIBUTE``: set in the type of attributes whose value is an attribute array.
ARRAY_ATTRIBUTE = 0x40000000


@fast_enum
class CertificateType(IntEnumBody):
    """CK_CERTIFICATE_TYPE (``CKC_*``)."""

    X_509 = 0x0
    X_509_ATTR_CERT = 0x1
    WTLS = 0x2
    VENDOR_DEFINED = 0x80000000


@fast_enum
class CertificateCategory(IntEnumBody):
    """CK_CERTIFICATE_CATEGORY (``CK_CERTIFICATE_CATEGORY_*``): CKA_CERTIFICATE_CATEGORY values."""

    UNSPECIFIED = 0x0
    TOKEN_USER = 0x1
    AUTHORITY = 0x2
    OTHER_ENTITY = 0x3


@fast_enum
class HardwareFeature(IntEnumBody):
    """CK_HW_FEATURE_TYPE (``CKH_*``)."""

    MONOTONIC_COUNTER = 0x1
    CLOCK = 0x2
    USER_INTERFACE = 0x3
    VENDOR_DEFINED = 0x80000000


@fast_enum
class Attribute(IntEnumBody):
    """CK_ATTRIBUTE_TYPE (``CKA_*``). The value types are in :func:`attribute_kind`."""

    CLASS = 0x0
    TOKEN = 0x1
    PRIVATE = 0x2
    LABEL = 0x3
    UNIQUE_ID = 0x4
    APPLICATION = 0x10
    VALUE = 0x11
    OBJECT_ID = 0x12
    CERTIFICATE_TYPE = 0x80
    ISSUER = 0x81
    SERIAL_NUMBER = 0x82
    AC_ISSUER = 0x83
    OWNER = 0x84
    ATTR_TYPES = 0x85
    TRUSTED = 0x86
    CERTIFICATE_CATEGORY = 0x87
    JAVA_MIDP_SECURITY_DOMAIN = 0x88
    URL = 0x89
    HASH_OF_SUBJECT_PUBLIC_KEY = 0x8A
    HASH_OF_ISSUER_PUBLIC_KEY = 0x8B
    NAME_HASH_ALGORITHM = 0x8C
    CHECK_VALUE = 0x90
    KEY_TYPE = 0x100
    SUBJECT = 0x101
    ID = 0x102
    SENSITIVE = 0x103
    ENCRYPT = 0x104
    DECRYPT = 0x105
    WRAP = 0x106
    UNWRAP = 0x107
    SIGN = 0x108
    SIGN_RECOVER = 0x109
    VERIFY = 0x10A
    VERIFY_RECOVER = 0x10B
    DERIVE = 0x10C
    START_DATE = 0x110
    END_DATE = 0x111
    MODULUS = 0x120
    MODULUS_BITS = 0x121
    PUBLIC_EXPONENT = 0x122
    PRIVATE_EXPONENT = 0x123
    PRIME_1 = 0x124
    PRIME_2 = 0x125
    EXPONENT_1 = 0x126
    EXPONENT_2 = 0x127
    COEFFICIENT = 0x128
    PUBLIC_KEY_INFO = 0x129
    PRIME = 0x130
    SUBPRIME = 0x131
    BASE = 0x132
    PRIME_BITS = 0x133
    SUBPRIME_BITS = 0x134
    VALUE_BITS = 0x160
    VALUE_LEN = 0x161
    EXTRACTABLE = 0x162
    LOCAL = 0x163
    NEVER_EXTRACTABLE = 0x164
    ALWAYS_SENSITIVE = 0x165
    KEY_GEN_MECHANISM = 0x166
    MODIFIABLE = 0x170
    COPYABLE = 0x171
    DESTROYABLE = 0x172
    EC_PARAMS = 0x180
    EC_POINT = 0x181
    SECONDARY_AUTH = 0x200
    AUTH_PIN_FLAGS = 0x201
    ALWAYS_AUTHENTICATE = 0x202
    WRAP_WITH_TRUSTED = 0x210
    WRAP_TEMPLATE = 0x40000211
    UNWRAP_TEMPLATE = 0x40000212
    DERIVE_TEMPLATE = 0x40000213
    OTP_FORMAT = 0x220
    OTP_LENGTH = 0x221
    OTP_TIME_INTERVAL = 0x222
    OTP_USER_FRIENDLY_MODE = 0x223
    OTP_CHALLENGE_REQUIREMENT = 0x224
    OTP_TIME_REQUIREMENT = 0x225
    OTP_COUNTER_REQUIREMENT = 0x226
    OTP_PIN_REQUIREMENT = 0x227
    OTP_COUNTER = 0x22E
    OTP_TIME = 0x22F
    OTP_USER_IDENTIFIER = 0x22A
    OTP_SERVICE_IDENTIFIER = 0x22B
    OTP_SERVICE_LOGO = 0x22C
    OTP_SERVICE_LOGO_TYPE = 0x22D
    GOSTR3410_PARAMS = 0x250
    GOSTR3411_PARAMS = 0x251
    GOST28147_PARAMS = 0x252
    HW_FEATURE_TYPE = 0x300
    RESET_ON_INIT = 0x301
    HAS_RESET = 0x302
    PIXEL_X = 0x400
    PIXEL_Y = 0x401
    RESOLUTION = 0x402
    CHAR_ROWS = 0x403
    CHAR_COLUMNS = 0x404
    COLOR = 0x405
    BITS_PER_PIXEL = 0x406
    CHAR_SETS = 0x480
    ENCODING_METHODS = 0x481
    MIME_TYPES = 0x482
    MECHANISM_TYPE = 0x500
    REQUIRED_CMS_ATTRIBUTES = 0x501
    DEFAULT_CMS_ATTRIBUTES = 0x502
    SUPPORTED_CMS_ATTRIBUTES = 0x503
    ALLOWED_MECHANISMS = 0x40000600
    PROFILE_ID = 0x601
    X2RATCHET_BAG = 0x602
    X2RATCHET_BAGSIZE = 0x603
    X2RATCHET_BOBS1STMSG = 0x604
    X2RATCHET_CKR = 0x605
    X2RATCHET_CKS = 0x606
    X2RATCHET_DHP = 0x607
    X2RATCHET_DHR = 0x608
    X2RATCHET_DHS = 0x609
    X2RATCHET_HKR = 0x60A
    X2RATCHET_HKS = 0x60B
    X2RATCHET_ISALICE = 0x60C
    X2RATCHET_NHKR = 0x60D
    X2RATCHET_NHKS = 0x60E
    X2RATCHET_NR = 0x60F
    X2RATCHET_NS = 0x610
    X2RATCHET_PNS = 0x611
    X2RATCHET_RK = 0x612
    VENDOR_DEFINED = 0x80000000


@fast_enum
class Mechanism(IntEnumBody):
    """CK_MECHANISM_TYPE (``CKM_*``), the complete PKCS#11 3.0 list."""

    RSA_PKCS_KEY_PAIR_GEN = 0x0
    RSA_PKCS = 0x1
    RSA_9796 = 0x2
    RSA_X_509 = 0x3
    MD2_RSA_PKCS = 0x4
    MD5_RSA_PKCS = 0x5
    SHA1_RSA_PKCS = 0x6
    RIPEMD128_RSA_PKCS = 0x7
    RIPEMD160_RSA_PKCS = 0x8
    RSA_PKCS_OAEP = 0x9
    RSA_X9_31_KEY_PAIR_GEN = 0xA
    RSA_X9_31 = 0xB
    SHA1_RSA_X9_31 = 0xC
    RSA_PKCS_PSS = 0xD
    SHA1_RSA_PKCS_PSS = 0xE
    DSA_KEY_PAIR_GEN = 0x10
    DSA = 0x11
    DSA_SHA1 = 0x12
    DSA_SHA224 = 0x13
    DSA_SHA256 = 0x14
    DSA_SHA384 = 0x15
    DSA_SHA512 = 0x16
    DSA_SHA3_224 = 0x18
    DSA_SHA3_256 = 0x19
    DSA_SHA3_384 = 0x1A
    DSA_SHA3_512 = 0x1B
    DH_PKCS_KEY_PAIR_GEN = 0x20
    DH_PKCS_DERIVE = 0x21
    X9_42_DH_KEY_PAIR_GEN = 0x30
    X9_42_DH_DERIVE = 0x31
    X9_42_DH_HYBRID_DERIVE = 0x32
    X9_42_MQV_DERIVE = 0x33
    SHA256_RSA_PKCS = 0x40
    SHA384_RSA_PKCS = 0x41
    SHA512_RSA_PKCS = 0x42
    SHA256_RSA_PKCS_PSS = 0x43
    SHA384_RSA_PKCS_PSS = 0x44
    SHA512_RSA_PKCS_PSS = 0x45
    SHA224_RSA_PKCS = 0x46
    SHA224_RSA_PKCS_PSS = 0x47
    SHA512_224 = 0x48
    SHA512_224_HMAC = 0x49
    SHA512_224_HMAC_GENERAL = 0x4A
    SHA512_224_KEY_DERIVATION = 0x4B
    SHA512_256 = 0x4C
    SHA512_256_HMAC = 0x4D
    SHA512_256_HMAC_GENERAL = 0x4E
    SHA512_256_KEY_DERIVATION = 0x4F
    SHA512_T = 0x50
    SHA512_T_HMAC = 0x51
    SHA512_T_HMAC_GENERAL = 0x52
    SHA512_T_KEY_DERIVATION = 0x53
    SHA3_256_RSA_PKCS = 0x60
    SHA3_384_RSA_PKCS = 0x61
    SHA3_512_RSA_PKCS = 0x62
    SHA3_256_RSA_PKCS_PSS = 0x63
    SHA3_384_RSA_PKCS_PSS = 0x64
    SHA3_512_RSA_PKCS_PSS = 0x65
    SHA3_224_RSA_PKCS = 0x66
    SHA3_224_RSA_PKCS_PSS = 0x67
    RC2_KEY_GEN = 0x100
    RC2_ECB = 0x101
    RC2_CBC = 0x102
    RC2_MAC = 0x103
    RC2_MAC_GENERAL = 0x104
    RC2_CBC_PAD = 0x105
    RC4_KEY_GEN = 0x110
    RC4 = 0x111
    DES_KEY_GEN = 0x120
    DES_ECB = 0x121
    DES_CBC = 0x122
    DES_MAC = 0x123
    DES_MAC_GENERAL = 0x124
    DES_CBC_PAD = 0x125
    DES2_KEY_GEN = 0x130
    DES3_KEY_GEN = 0x131
    DES3_ECB = 0x132
    DES3_CBC = 0x133
    DES3_MAC = 0x134
    DES3_MAC_GENERAL = 0x135
    DES3_CBC_PAD = 0x136
    DES3_CMAC_GENERAL = 0x137
    DES3_CMAC = 0x138
    CDMF_KEY_GEN = 0x140
    CDMF_ECB = 0x141
    CDMF_CBC = 0x142
    CDMF_MAC = 0x143
    CDMF_MAC_GENERAL = 0x144
    CDMF_CBC_PAD = 0x145
    DES_OFB64 = 0x150
    DES_OFB8 = 0x151
    DES_CFB64 = 0x152
    DES_CFB8 = 0x153
    MD2 = 0x200
    MD2_HMAC = 0x201
    MD2_HMAC_GENERAL = 0x202
    MD5 = 0x210
    MD5_HMAC = 0x211
    MD5_HMAC_GENERAL = 0x212
    SHA_1 = 0x220
    SHA_1_HMAC = 0x221
    SHA_1_HMAC_GENERAL = 0x222
    RIPEMD128 = 0x230
    RIPEMD128_HMAC = 0x231
    RIPEMD128_HMAC_GENERAL = 0x232
    RIPEMD160 = 0x240
    RIPEMD160_HMAC = 0x241
    RIPEMD160_HMAC_GENERAL = 0x242
    SHA256 = 0x250
    SHA256_HMAC = 0x251
    SHA256_HMAC_GENERAL = 0x252
    SHA224 = 0x255
    SHA224_HMAC = 0x256
    SHA224_HMAC_GENERAL = 0x257
    SHA384 = 0x260
    SHA384_HMAC = 0x261
    SHA384_HMAC_GENERAL = 0x262
    SHA512 = 0x270
    SHA512_HMAC = 0x271
    SHA512_HMAC_GENERAL = 0x272
    SECURID_KEY_GEN = 0x280
    SECURID = 0x282
    HOTP_KEY_GEN = 0x290
    HOTP = 0x291
    ACTI = 0x2A0
    ACTI_KEY_GEN = 0x2A1
    SHA3_256 = 0x2B0
    SHA3_256_HMAC = 0x2B1
    SHA3_256_HMAC_GENERAL = 0x2B2
    SHA3_256_KEY_GEN = 0x2B3
    SHA3_224 = 0x2B5
    SHA3_224_HMAC = 0x2B6
    SHA3_224_HMAC_GENERAL = 0x2B7
    SHA3_224_KEY_GEN = 0x2B8
    SHA3_384 = 0x2C0
    SHA3_384_HMAC = 0x2C1
    SHA3_384_HMAC_GENERAL = 0x2C2
    SHA3_384_KEY_GEN = 0x2C3
    SHA3_512 = 0x2D0
    SHA3_512_HMAC = 0x2D1
    SHA3_512_HMAC_GENERAL = 0x2D2
    SHA3_512_KEY_GEN = 0x2D3
    CAST_KEY_GEN = 0x300
    CAST_ECB = 0x301
    CAST_CBC = 0x302
    CAST_MAC = 0x303
    CAST_MAC_GENERAL = 0x304
    CAST_CBC_PAD = 0x305
    CAST3_KEY_GEN = 0x310
    CAST3_ECB = 0x311
    CAST3_CBC = 0x312
    CAST3_MAC = 0x313
    CAST3_MAC_GENERAL = 0x314
    CAST3_CBC_PAD = 0x315
    CAST128_KEY_GEN = 0x320
    CAST128_ECB = 0x321
    CAST128_CBC = 0x322
    CAST128_MAC = 0x323
    CAST128_MAC_GENERAL = 0x324
    CAST128_CBC_PAD = 0x325
    RC5_KEY_GEN = 0x330
    RC5_ECB = 0x331
    RC5_CBC = 0x332
    RC5_MAC = 0x333
    RC5_MAC_GENERAL = 0x334
    RC5_CBC_PAD = 0x335
    IDEA_KEY_GEN = 0x340
    IDEA_ECB = 0x341
    IDEA_CBC = 0x342
    IDEA_MAC = 0x343
    IDEA_MAC_GENERAL = 0x344
    IDEA_CBC_PAD = 0x345
    GENERIC_SECRET_KEY_GEN = 0x350
    CONCATENATE_BASE_AND_KEY = 0x360
    CONCATENATE_BASE_AND_DATA = 0x362
    CONCATENATE_DATA_AND_BASE = 0x363
    XOR_BASE_AND_DATA = 0x364
    EXTRACT_KEY_FROM_KEY = 0x365
    SSL3_PRE_MASTER_KEY_GEN = 0x370
    SSL3_MASTER_KEY_DERIVE = 0x371
    SSL3_KEY_AND_MAC_DERIVE = 0x372
    SSL3_MASTER_KEY_DERIVE_DH = 0x373
    TLS_PRE_MASTER_KEY_GEN = 0x374
    TLS_MASTER_KEY_DERIVE = 0x375
    TLS_KEY_AND_MAC_DERIVE = 0x376
    TLS_MASTER_KEY_DERIVE_DH = 0x377
    TLS_PRF = 0x378
    SSL3_MD5_MAC = 0x380
    SSL3_SHA1_MAC = 0x381
    MD5_KEY_DERIVATION = 0x390
    MD2_KEY_DERIVATION = 0x391
    SHA1_KEY_DERIVATION = 0x392
    SHA256_KEY_DERIVATION = 0x393
    SHA384_KEY_DERIVATION = 0x394
    SHA512_KEY_DERIVATION = 0x395
    SHA224_KEY_DERIVATION = 0x396
    SHA3_256_KEY_DERIVATION = 0x397
    SHA3_224_KEY_DERIVATION = 0x398
    SHA3_384_KEY_DERIVATION = 0x399
    SHA3_512_KEY_DERIVATION = 0x39A
    SHAKE_128_KEY_DERIVATION = 0x39B
    SHAKE_256_KEY_DERIVATION = 0x39C
    PBE_MD2_DES_CBC = 0x3A0
    PBE_MD5_DES_CBC = 0x3A1
    PBE_MD5_CAST_CBC = 0x3A2
    PBE_MD5_CAST3_CBC = 0x3A3
    PBE_MD5_CAST128_CBC = 0x3A4
    PBE_SHA1_CAST128_CBC = 0x3A5
    PBE_SHA1_RC4_128 = 0x3A6
    PBE_SHA1_RC4_40 = 0x3A7
    PBE_SHA1_DES3_EDE_CBC = 0x3A8
    PBE_SHA1_DES2_EDE_CBC = 0x3A9
    PBE_SHA1_RC2_128_CBC = 0x3AA
    PBE_SHA1_RC2_40_CBC = 0x3AB
    PKCS5_PBKD2 = 0x3B0
    PBA_SHA1_WITH_SHA1_HMAC = 0x3C0
    WTLS_PRE_MASTER_KEY_GEN = 0x3D0
    WTLS_MASTER_KEY_DERIVE = 0x3D1
    WTLS_MASTER_KEY_DERIVE_DH_ECC = 0x3D2
    WTLS_PRF = 0x3D3
    WTLS_SERVER_KEY_AND_MAC_DERIVE = 0x3D4
    WTLS_CLIENT_KEY_AND_MAC_DERIVE = 0x3D5
    TLS12_MAC = 0x3D8
    TLS12_KDF = 0x3D9
    TLS12_MASTER_KEY_DERIVE = 0x3E0
    TLS12_KEY_AND_MAC_DERIVE = 0x3E1
    TLS12_MASTER_KEY_DERIVE_DH = 0x3E2
    TLS12_KEY_SAFE_DERIVE = 0x3E3
    TLS_MAC = 0x3E4
    TLS_KDF = 0x3E5
    KEY_WRAP_LYNKS = 0x400
    KEY_WRAP_SET_OAEP = 0x401
    CMS_SIG = 0x500
    KIP_DERIVE = 0x510
    KIP_WRAP = 0x511
    KIP_MAC = 0x512
    CAMELLIA_KEY_GEN = 0x550
    CAMELLIA_ECB = 0x551
    CAMELLIA_CBC = 0x552
    CAMELLIA_MAC = 0x553
    CAMELLIA_MAC_GENERAL = 0x554
    CAMELLIA_CBC_PAD = 0x555
    CAMELLIA_ECB_ENCRYPT_DATA = 0x556
    CAMELLIA_CBC_ENCRYPT_DATA = 0x557
    CAMELLIA_CTR = 0x558
    ARIA_KEY_GEN = 0x560
    ARIA_ECB = 0x561
    ARIA_CBC = 0x562
    ARIA_MAC = 0x563
    ARIA_MAC_GENERAL = 0x564
    ARIA_CBC_PAD = 0x565
    ARIA_ECB_ENCRYPT_DATA = 0x566
    ARIA_CBC_ENCRYPT_DATA = 0x567
    SEED_KEY_GEN = 0x650
    SEED_ECB = 0x651
    SEED_CBC = 0x652
    SEED_MAC = 0x653
    SEED_MAC_GENERAL = 0x654
    SEED_CBC_PAD = 0x655
    SEED_ECB_ENCRYPT_DATA = 0x656
    SEED_CBC_ENCRYPT_DATA = 0x657
    SKIPJACK_KEY_GEN = 0x1000
    SKIPJACK_ECB64 = 0x1001
    SKIPJACK_CBC64 = 0x1002
    SKIPJACK_OFB64 = 0x1003
    SKIPJACK_CFB64 = 0x1004
    SKIPJACK_CFB32 = 0x1005
    SKIPJACK_CFB16 = 0x1006
    SKIPJACK_CFB8 = 0x1007
    SKIPJACK_WRAP = 0x1008
    SKIPJACK_PRIVATE_WRAP = 0x1009
    SKIPJACK_RELAYX = 0x100A
    KEA_KEY_PAIR_GEN = 0x1010
    KEA_KEY_DERIVE = 0x1011
    KEA_DERIVE = 0x1012
    FORTEZZA_TIMESTAMP = 0x1020
    BATON_KEY_GEN = 0x1030
    BATON_ECB128 = 0x1031
    BATON_ECB96 = 0x1032
    BATON_CBC128 = 0x1033
    BATON_COUNTER = 0x1034
    BATON_SHUFFLE = 0x1035
    BATON_WRAP = 0x1036
    EC_KEY_PAIR_GEN = 0x1040
    ECDSA = 0x1041
    ECDSA_SHA1 = 0x1042
    ECDSA_SHA224 = 0x1043
    ECDSA_SHA256 = 0x1044
    ECDSA_SHA384 = 0x1045
    ECDSA_SHA512 = 0x1046
    EC_KEY_PAIR_GEN_W_EXTRA_BITS = 0x140B
    ECDH1_DERIVE = 0x1050
    ECDH1_COFACTOR_DERIVE = 0x1051
    ECMQV_DERIVE = 0x1052
    ECDH_AES_KEY_WRAP = 0x1053
    RSA_AES_KEY_WRAP = 0x1054
    JUNIPER_KEY_GEN = 0x1060
    JUNIPER_ECB128 = 0x1061
    JUNIPER_CBC128 = 0x1062
    JUNIPER_COUNTER = 0x1063
    JUNIPER_SHUFFLE = 0x1064
    JUNIPER_WRAP = 0x1065
    FASTHASH = 0x1070
    AES_XTS = 0x1071
    AES_XTS_KEY_GEN = 0x1072
    AES_KEY_GEN = 0x1080
    AES_ECB = 0x1081
    AES_CBC = 0x1082
    AES_MAC = 0x1083
    AES_MAC_GENERAL = 0x1084
    AES_CBC_PAD = 0x1085
    AES_CTR = 0x1086
    AES_GCM = 0x1087
    AES_CCM = 0x1088
    AES_CTS = 0x1089
    AES_CMAC = 0x108A
    AES_CMAC_GENERAL = 0x108B
    AES_XCBC_MAC = 0x108C
    AES_XCBC_MAC_96 = 0x108D
    AES_GMAC = 0x108E
    BLOWFISH_KEY_GEN = 0x1090
    BLOWFISH_CBC = 0x1091
    TWOFISH_KEY_GEN = 0x1092
    TWOFISH_CBC = 0x1093
    BLOWFISH_CBC_PAD = 0x1094
    TWOFISH_CBC_PAD = 0x1095
    DES_ECB_ENCRYPT_DATA = 0x1100
    DES_CBC_ENCRYPT_DATA = 0x1101
    DES3_ECB_ENCRYPT_DATA = 0x1102
    DES3_CBC_ENCRYPT_DATA = 0x1103
    AES_ECB_ENCRYPT_DATA = 0x1104
    AES_CBC_ENCRYPT_DATA = 0x1105
    GOSTR3410_KEY_PAIR_GEN = 0x1200
    GOSTR3410 = 0x1201
    GOSTR3410_WITH_GOSTR3411 = 0x1202
    GOSTR3410_KEY_WRAP = 0x1203
    GOSTR3410_DERIVE = 0x1204
    GOSTR3411 = 0x1210
    GOSTR3411_HMAC = 0x1211
    GOST28147_KEY_GEN = 0x1220
    GOST28147_ECB = 0x1221
    GOST28147 = 0x1222
    GOST28147_MAC = 0x1223
    GOST28147_KEY_WRAP = 0x1224
    CHACHA20_KEY_GEN = 0x1225
    CHACHA20 = 0x1226
    POLY1305_KEY_GEN = 0x1227
    POLY1305 = 0x1228
    DSA_PARAMETER_GEN = 0x2000
    DH_PKCS_PARAMETER_GEN = 0x2001
    X9_42_DH_PARAMETER_GEN = 0x2002
    DSA_PROBABILISTIC_PARAMETER_GEN = 0x2003
    DSA_SHAWE_TAYLOR_PARAMETER_GEN = 0x2004
    DSA_FIPS_G_GEN = 0x2005
    AES_OFB = 0x2104
    AES_CFB64 = 0x2105
    AES_CFB8 = 0x2106
    AES_CFB128 = 0x2107
    AES_CFB1 = 0x2108
    AES_KEY_WRAP = 0x2109
    AES_KEY_WRAP_PAD = 0x210A
    AES_KEY_WRAP_KWP = 0x210B
    RSA_PKCS_TPM_1_1 = 0x4001
    RSA_PKCS_OAEP_TPM_1_1 = 0x4002
    SHA_1_KEY_GEN = 0x4003
    SHA224_KEY_GEN = 0x4004
    SHA256_KEY_GEN = 0x4005
    SHA384_KEY_GEN = 0x4006
    SHA512_KEY_GEN = 0x4007
    SHA512_224_KEY_GEN = 0x4008
    SHA512_256_KEY_GEN = 0x4009
    SHA512_T_KEY_GEN = 0x400A
    NULL = 0x400B
    BLAKE2B_160 = 0x400C
    BLAKE2B_160_HMAC = 0x400D
    BLAKE2B_160_HMAC_GENERAL = 0x400E
    BLAKE2B_160_KEY_DERIVE = 0x400F
    BLAKE2B_160_KEY_GEN = 0x4010
    BLAKE2B_256 = 0x4011
    BLAKE2B_256_HMAC = 0x4012
    BLAKE2B_256_HMAC_GENERAL = 0x4013
    BLAKE2B_256_KEY_DERIVE = 0x4014
    BLAKE2B_256_KEY_GEN = 0x4015
    BLAKE2B_384 = 0x4016
    BLAKE2B_384_HMAC = 0x4017
    BLAKE2B_384_HMAC_GENERAL = 0x4018
    BLAKE2B_384_KEY_DERIVE = 0x4019
    BLAKE2B_384_KEY_GEN = 0x401A
    BLAKE2B_512 = 0x401B
    BLAKE2B_512_HMAC = 0x401C
    BLAKE2B_512_HMAC_GENERAL = 0x401D
    BLAKE2B_512_KEY_DERIVE = 0x401E
    BLAKE2B_512_KEY_GEN = 0x401F
    SALSA20 = 0x4020
    CHACHA20_POLY1305 = 0x4021
    SALSA20_POLY1305 = 0x4022
    X3DH_INITIALIZE = 0x4023
    X3DH_RESPOND = 0x4024
    X2RATCHET_INITIALIZE = 0x4025
    X2RATCHET_RESPOND = 0x4026
    X2RATCHET_ENCRYPT = 0x4027
    X2RATCHET_DECRYPT = 0x4028
    XEDDSA = 0x4029
    HKDF_DERIVE = 0x402A
    HKDF_DATA = 0x402B
    HKDF_KEY_GEN = 0x402C
    SALSA20_KEY_GEN = 0x402D
    ECDSA_SHA3_224 = 0x1047
    ECDSA_SHA3_256 = 0x1048
    ECDSA_SHA3_384 = 0x1049
    ECDSA_SHA3_512 = 0x104A
    EC_EDWARDS_KEY_PAIR_GEN = 0x1055
    EC_MONTGOMERY_KEY_PAIR_GEN = 0x1056
    EDDSA = 0x1057
    SP800_108_COUNTER_KDF = 0x3AC
    SP800_108_FEEDBACK_KDF = 0x3AD
    SP800_108_DOUBLE_PIPELINE_KDF = 0x3AE
    VENDOR_DEFINED = 0x80000000


@fast_enum
class EcKdf(IntEnumBody):
    """CK_EC_KDF_TYPE (``CKD_*``): the ``kdf`` member of CK_ECDH1_DERIVE_PARAMS."""

    NULL = 0x1
    SHA1_KDF = 0x2
    SHA1_KDF_ASN1 = 0x3
    SHA1_KDF_CONCATENATE = 0x4
    SHA224_KDF = 0x5
    SHA256_KDF = 0x6
    SHA384_KDF = 0x7
    SHA512_KDF = 0x8
    CPDIVERSIFY_KDF = 0x9
    SHA3_224_KDF = 0xA
    SHA3_256_KDF = 0xB
    SHA3_384_KDF = 0xC
    SHA3_512_KDF = 0xD
    SHA1_KDF_SP800 = 0xE
    SHA224_KDF_SP800 = 0xF
    SHA256_KDF_SP800 = 0x10
    SHA384_KDF_SP800 = 0x11
    SHA512_KDF_SP800 = 0x12
    SHA3_224_KDF_SP800 = 0x13
    SHA3_256_KDF_SP800 = 0x14
    SHA3_384_KDF_SP800 = 0x15
    SHA3_512_KDF_SP800 = 0x16
    BLAKE2B_160_KDF = 0x17
    BLAKE2B_256_KDF = 0x18
    BLAKE2B_384_KDF = 0x19
    BLAKE2B_512_KDF = 0x1A


@fast_enum
class SessionState(IntEnumBody):
    """CK_STATE (``CKS_*``)."""

    RO_PUBLIC_SESSION = 0x0
    RO_USER_FUNCTIONS = 0x1
    RW_PUBLIC_SESSION = 0x2
    RW_USER_FUNCTIONS = 0x3
    RW_SO_FUNCTIONS = 0x4


@fast_enum
class SlotFlag(IntFlagBody):
    """CK_SLOT_INFO.flags (``CKF_*``)."""

    TOKEN_PRESENT = 0x1
    REMOVABLE_DEVICE = 0x2
    HW_SLOT = 0x4


@fast_enum
class TokenFlag(IntFlagBody):
    """CK_TOKEN_INFO.flags (``CKF_*``)."""

    RNG = 0x1
    WRITE_PROTECTED = 0x2
    LOGIN_REQUIRED = 0x4
    USER_PIN_INITIALIZED = 0x8
    RESTORE_KEY_NOT_NEEDED = 0x20
    CLOCK_ON_TOKEN = 0x40
    PROTECTED_AUTHENTICATION_PATH = 0x100
    DUAL_CRYPTO_OPERATIONS = 0x200
    TOKEN_INITIALIZED = 0x400
    SECONDARY_AUTHENTICATION = 0x800
    USER_PIN_COUNT_LOW = 0x10000
    USER_PIN_FINAL_TRY = 0x20000
    USER_PIN_LOCKED = 0x40000
    USER_PIN_TO_BE_CHANGED = 0x80000
    SO_PIN_COUNT_LOW = 0x100000
    SO_PIN_FINAL_TRY = 0x200000
    SO_PIN_LOCKED = 0x400000
    SO_PIN_TO_BE_CHANGED = 0x800000
    ERROR_STATE = 0x1000000


@fast_enum
class SessionFlag(IntFlagBody):
    """CK_SESSION_INFO.flags and the C_OpenSession flags (``CKF_*``)."""

    RW_SESSION = 0x2
    SERIAL_SESSION = 0x4


@fast_enum
class MechanismFlag(IntFlagBody):
    """CK_MECHANISM_INFO.flags (``CKF_*``)."""

    HW = 0x1
    MESSAGE_ENCRYPT = 0x2
    MESSAGE_DECRYPT = 0x4
    MESSAGE_SIGN = 0x8
    MESSAGE_VERIFY = 0x10
    MULTI_MESSAGE = 0x20
    FIND_OBJECTS = 0x40
    ENCRYPT = 0x100
    DECRYPT = 0x200
    DIGEST = 0x400
    SIGN = 0x800
    SIGN_RECOVER = 0x1000
    VERIFY = 0x2000
    VERIFY_RECOVER = 0x4000
    GENERATE = 0x8000
    GENERATE_KEY_PAIR = 0x10000
    WRAP = 0x20000
    UNWRAP = 0x40000
    DERIVE = 0x80000
    EC_F_P = 0x100000
    EC_F_2M = 0x200000
    EC_ECPARAMETERS = 0x400000
    EC_OID = 0x800000
    EC_UNCOMPRESS = 0x1000000
    EC_COMPRESS = 0x2000000
    EC_CURVENAME = 0x4000000
    EXTENSION = 0x80000000


@fast_enum
class InitializeFlag(IntFlagBody):
    """CK_C_INITIALIZE_ARGS.flags (``CKF_*``)."""

    LIBRARY_CANT_CREATE_OS_THREADS = 0x1
    OS_LOCKING_OK = 0x2


# --- attribute value types -----------------------------------------------------------------


@fast_enum
class AttributeKind(IntEnumBody):
    """How an attribute's value is typed (PKCS#11 3.0 §4 attribute tables).

    ``BOOL`` CK_BBOOL · ``ULONG`` CK_ULONG (classes, key types, lengths, mechanism types) ·
    ``BYTES`` byte array · ``BIGINT`` "big integer" (unsigned, big-endian byte array) ·
    ``STRING`` RFC 2279 (UTF-8) string · ``DATE`` CK_DATE · ``ATTRIBUTE_ARRAY``
    CK_ATTRIBUTE_PTR (the ``*_TEMPLATE`` attributes) · ``MECHANISM_ARRAY``
    CK_MECHANISM_TYPE_PTR (CKA_ALLOWED_MECHANISMS). On the wire BIGINT and STRING are byte
    arrays; the distinction tells a caller what Python value to expect.
    """

    BOOL = 1
    ULONG = 2
    BYTES = 3
    BIGINT = 4
    STRING = 5
    DATE = 6
    ATTRIBUTE_ARRAY = 7
    MECHANISM_ARRAY = 8


_KIND_NAMES: dict[AttributeKind, str] = {
    AttributeKind.BOOL: """
        TOKEN PRIVATE TRUSTED SENSITIVE ENCRYPT DECRYPT WRAP UNWRAP SIGN SIGN_RECOVER VERIFY
        VERIFY_RECOVER DERIVE EXTRACTABLE LOCAL NEVER_EXTRACTABLE ALWAYS_SENSITIVE MODIFIABLE
        COPYABLE DESTROYABLE SECONDARY_AUTH ALWAYS_AUTHENTICATE WRAP_WITH_TRUSTED RESET_ON_INIT
        HAS_RESET COLOR OTP_USER_FRIENDLY_MODE X2RATCHET_BOBS1STMSG X2RATCHET_ISALICE
    """,
    AttributeKind.ULONG: """
        CLASS CERTIFICATE_TYPE CERTIFICATE_CATEGORY JAVA_MIDP_SECURITY_DOMAIN
        NAME_HASH_ALGORITHM KEY_TYPE MODULUS_BITS PRIME_BITS SUBPRIME_BITS VALUE_BITS VALUE_LEN
        KEY_GEN_MECHANISM AUTH_PIN_FLAGS OTP_FORMAT OTP_LENGTH OTP_TIME_INTERVAL
        OTP_CHALLENGE_REQUIREMENT OTP_TIME_REQUIREMENT OTP_COUNTER_REQUIREMENT
        OTP_PIN_REQUIREMENT HW_FEATURE_TYPE PIXEL_X PIXEL_Y RESOLUTION CHAR_ROWS CHAR_COLUMNS
        BITS_PER_PIXEL MECHANISM_TYPE PROFILE_ID X2RATCHET_BAGSIZE X2RATCHET_NR X2RATCHET_NS
        X2RATCHET_PNS
    """,
    AttributeKind.BIGINT: """
        MODULUS PUBLIC_EXPONENT PRIVATE_EXPONENT PRIME_1 PRIME_2 EXPONENT_1 EXPONENT_2
        COEFFICIENT PRIME SUBPRIME BASE
    """,
    AttributeKind.STRING: """
        LABEL APPLICATION URL CHAR_SETS ENCODING_METHODS MIME_TYPES OTP_USER_IDENTIFIER
        OTP_SERVICE_IDENTIFIER OTP_SERVICE_LOGO_TYPE UNIQUE_ID
    """,
    AttributeKind.DATE: "START_DATE END_DATE",
    AttributeKind.ATTRIBUTE_ARRAY: "WRAP_TEMPLATE UNWRAP_TEMPLATE DERIVE_TEMPLATE",
    AttributeKind.MECHANISM_ARRAY: "ALLOWED_MECHANISMS",
}

#: Attribute type → value kind, for every attribute that is not a plain byte array.
ATTRIBUTE_KINDS: Mapping[int, AttributeKind] = {
    int(Attribute[name]): kind for kind, names in _KIND_NAMES.items() for name in names.split()
}


def attribute_kind(attribute: int) -> AttributeKind:
    """The value type of ``attribute``; unknown and vendor attributes are ``BYTES``."""
    return ATTRIBUTE_KINDS.get(int(attribute), AttributeKind.BYTES)


#: A normalised attribute value (see :func:`normalise_attribute_value`).
AttributeValue: TypeAlias = (
    "bool | int | bytes | str | datetime.date | tuple[int, ...]"
    " | Mapping[int, AttributeValue] | None"
)

_ULONG_MAX = 0xFFFFFFFFFFFFFFFF


def _name(attribute: int) -> str:
    try:
        return f"CKA_{Attribute(attribute).name}"
    except ValueError:
        return f"attribute {attribute:#x}"


def normalise_attribute_value(attribute: int, value: object) -> AttributeValue:
    """Check ``value`` against the type of ``attribute`` and return its canonical Python form.

    ``BOOL`` → bool (only bool accepted) · ``ULONG`` → int in 0…2**64-1 (IntEnum members
    accepted) · ``BYTES`` → bytes (bytes-like accepted) · ``BIGINT`` → bytes, big-endian without
    leading zero bytes (an int or bytes accepted; 0 is ``b"\\x00"``) · ``STRING`` → str (UTF-8
    bytes accepted) · ``DATE`` → :class:`datetime.date`, or None for the empty date (``b""``,
    or 8 ASCII digits ``YYYYMMDD`` accepted) · ``ATTRIBUTE_ARRAY`` → a dict normalised in turn ·
    ``MECHANISM_ARRAY`` → tuple of ints. Raises TypeError or ValueError (caller mistakes).
    """
    kind = attribute_kind(attribute)
    if kind is AttributeKind.BOOL:
        if not isinstance(value, bool):
            raise TypeError(f"{_name(attribute)} takes a bool, not {type(value).__name__}")
        return value
    if kind is AttributeKind.ULONG:
        return _ulong(attribute, value)
    if kind is AttributeKind.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{_name(attribute)} is not valid UTF-8") from e
        raise TypeError(f"{_name(attribute)} takes a str, not {type(value).__name__}")
    if kind is AttributeKind.BIGINT:
        if isinstance(value, bool):
            raise TypeError(f"{_name(attribute)} takes an int or bytes, not bool")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"{_name(attribute)} is unsigned")
            return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
        if isinstance(value, bytes | bytearray | memoryview):
            stripped = bytes(value).lstrip(b"\x00")
            return stripped or b"\x00"
        raise TypeError(f"{_name(attribute)} takes an int or bytes, not {type(value).__name__}")
    if kind is AttributeKind.DATE:
        return _date(attribute, value)
    if kind is AttributeKind.ATTRIBUTE_ARRAY:
        if not isinstance(value, Mapping):
            raise TypeError(f"{_name(attribute)} takes a mapping of attributes")
        return normalise_template(value)
    if kind is AttributeKind.MECHANISM_ARRAY:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence | frozenset | set):
            raise TypeError(f"{_name(attribute)} takes a sequence of mechanisms")
        return tuple(_ulong(attribute, m) for m in value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{_name(attribute)} takes bytes, not {type(value).__name__}")


def _ulong(attribute: int, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_name(attribute)} takes an int, not {type(value).__name__}")
    if not 0 <= value <= _ULONG_MAX:
        raise ValueError(f"{_name(attribute)} value {value} does not fit a CK_ULONG")
    return int(value)


def _date(attribute: int, value: object) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if not raw:
            return None
        if len(raw) == 8 and raw.isdigit():
            try:
                return datetime.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
            except ValueError as e:
                raise ValueError(f"{_name(attribute)}: invalid date {raw!r}") from e
        raise ValueError(f"{_name(attribute)}: a CK_DATE is 8 ASCII digits YYYYMMDD")
    if value is None:
        return None
    raise TypeError(f"{_name(attribute)} takes a date, not {type(value).__name__}")


def normalise_template(
    template: Mapping[int, object] | Mapping[Attribute, object],
) -> dict[int, AttributeValue]:
    """:func:`normalise_attribute_value` over a whole template (keys kept as given ints)."""
    result: dict[int, AttributeValue] = {}
    for attribute, value in template.items():
        if isinstance(attribute, bool) or not isinstance(attribute, int):
            raise TypeError(f"template keys are attribute types (int), not {attribute!r}")
        result[attribute] = normalise_attribute_value(attribute, value)
    return result
