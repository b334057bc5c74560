"""PKCS#11 key types (CK_KEY_TYPE, ``CKK_*``): :class:`KeyType`.

Its own module so that naming a card's key algorithm (:class:`opcard.algorithms.KeyAlgorithm`,
``opcard status``) does not load the other PKCS#11 tables; :mod:`opcard.pkcs11` and
:mod:`opcard.pkcs11.constants` re-export it (the same class), and those are the names to use.
"""

from __future__ import annotations

from apdu._enums import IntEnumBody, fast_enum

__all__ = ["KeyType"]


@fast_enum
class KeyType(IntEnumBody):
    """CK_KEY_TYPE (``CKK_*``). OpenPGP cards hold RSA, EC, EC_EDWARDS and EC_MONTGOMERY keys."""

    RSA = 0x0
    DSA = 0x1
    DH = 0x2
    EC = 0x3
    X9_42_DH = 0x4
    KEA = 0x5
    GENERIC_SECRET = 0x10
    RC2 = 0x11
    RC4 = 0x12
    DES = 0x13
    DES2 = 0x14
    DES3 = 0x15
    CAST = 0x16
    CAST3 = 0x17
    CAST128 = 0x18
    RC5 = 0x19
    IDEA = 0x1A
    SKIPJACK = 0x1B
    BATON = 0x1C
    JUNIPER = 0x1D
    CDMF = 0x1E
    AES = 0x1F
    BLOWFISH = 0x20
    TWOFISH = 0x21
    SECURID = 0x22
    HOTP = 0x23
    ACTI = 0x24
    CAMELLIA = 0x25
    ARIA = 0x26
    MD5_HMAC = 0x27
    SHA_1_HMAC = 0x28
    RIPEMD128_HMAC = 0x29
    RIPEMD160_HMAC = 0x2A
    SHA256_HMAC = 0x2B
    SHA384_HMAC = 0x2C
    SHA512_HMAC = 0x2D
    SHA224_HMAC = 0x2E
    SEED = 0x2F
    GOSTR3410 = 0x30
    GOSTR3411 = 0x31
    GOST28147 = 0x32
    CHACHA20 = 0x33
    POLY1305 = 0x34
    AES_XTS = 0x35
    SHA3_224_HMAC = 0x36
    SHA3_256_HMAC = 0x37
    SHA3_384_HMAC = 0x38
    SHA3_512_HMAC = 0x39
    BLAKE2B_160_HMAC = 0x3A
    BLAKE2B_256_HMAC = 0x3B
    BLAKE2B_384_HMAC = 0x3C
    BLAKE2B_512_HMAC = 0x3D
    SALSA20 = 0x3E
    X2RATCHET = 0x3F
    EC_EDWARDS = 0x40
    EC_MONTGOMERY = 0x41
    HKDF = 0x42
    SHA512_224_HMAC = 0x43
    SHA512_256_HMAC = 0x44
    SHA512_T_HMAC = 0x45
    VENDOR_DEFINED = 0x80000000
