"""KDF-DO PIN derivation: iterated salted S2K (RFC 4880 §3.7.1.3)."""

from __future__ import annotations

import hashlib

import pytest
from openpgp_vectors import (
    YK543_KDF_PW1_123456,
    YK543_KDF_PW3_12345678,
    YK543_KDF_SHA512,
)

from apdu.openpgp import kdf
from apdu.openpgp.constants import KdfHash, Secret
from apdu.openpgp.objects import KdfDo


def reference_s2k(name: str, salt: bytes, secret: bytes, count: int) -> bytes:
    """Byte-by-byte restatement of RFC 4880 §3.7.1.3 (slow, for cross-checking)."""
    data = salt + secret
    count = max(count, len(data))
    stream = (data * (count // len(data) + 1))[:count]
    return hashlib.new(name, stream).digest()


def test_yubikey_trace_vectors() -> None:
    # go-openpgp-card wrote this KDF-DO to a YubiKey 5.4.3 and then verified PW1 "123456"
    # and PW3 "12345678" with these derived values (the card accepted them).
    do = KdfDo.parse(YK543_KDF_SHA512)
    assert kdf.derive_pin(do, Secret.PW1, "123456") == YK543_KDF_PW1_123456
    assert kdf.derive_pin(do, Secret.PW3, b"12345678") == YK543_KDF_PW3_12345678
    assert do.initial_hash_pw1 == YK543_KDF_PW1_123456
    assert do.initial_hash_pw3 == YK543_KDF_PW3_12345678


@pytest.mark.parametrize("count", [1, 13, 14, 15, 65536, 65536 * 3 + 7, 0x780000 // 64])
@pytest.mark.parametrize("hash_algorithm", list(KdfHash))
def test_s2k_matches_reference(count: int, hash_algorithm: KdfHash) -> None:
    salt = bytes(range(8))
    assert kdf.s2k(hash_algorithm, salt, b"123456", count) == reference_s2k(
        hash_algorithm.hashlib_name, salt, b"123456", count
    )


def test_s2k_count_below_data_hashes_everything_once() -> None:
    salt = b"\x01" * 8
    expected = hashlib.sha256(salt + b"12345678").digest()
    assert kdf.s2k(KdfHash.SHA256, salt, b"12345678", 3) == expected


def test_derive_without_kdf_is_identity() -> None:
    assert kdf.derive_pin(None, Secret.PW1, "123456") == b"123456"
    assert kdf.derive_pin(kdf.kdf_off(), Secret.PW3, "pässwörd") == "pässwörd".encode()


def test_new_kdf_do_layout_matches_gnupg() -> None:
    # GnuPG g10/card-util.c gen_kdf_data: 81 01 03 82 01 08 83 04 cnt 84 08 s [85 08 s 86 08 s]
    # 87 20 h 88 20 h — KDF_DATA_LENGTH_MAX 110 bytes, MIN (single salt) 90.
    salts = (b"\x01" * 8, b"\x02" * 8, b"\x03" * 8)
    do = kdf.new_kdf_do(salts=salts, iteration_count=65536)
    raw = bytes(do)
    assert len(raw) == 110
    assert raw[:12] == bytes.fromhex("810103820108830400010000")
    assert raw[12:42] == bytes.fromhex("8408" + "01" * 8 + "8508" + "02" * 8 + "8608" + "03" * 8)
    assert raw[42:44] == b"\x87\x20" and raw[76:78] == b"\x88\x20"
    assert do.initial_hash_pw1 == reference_s2k("sha256", salts[0], b"123456", 65536)
    assert do.initial_hash_pw3 == reference_s2k("sha256", salts[2], b"12345678", 65536)
    assert KdfDo.parse(raw) == do
    single = kdf.new_kdf_do(salts=salts, iteration_count=65536, single_salt=True)
    assert len(bytes(single)) == 90
    assert single.salt(Secret.PW3) == single.salt(Secret.RESET_CODE) == salts[0]
    assert single.initial_hash_pw3 == reference_s2k("sha256", salts[0], b"12345678", 65536)


def test_new_kdf_do_random_salts_and_default_count() -> None:
    a, b = kdf.new_kdf_do(), kdf.new_kdf_do()
    assert a.salt_pw1 != b.salt_pw1 and len(a.salt_pw1 or b"") == kdf.SALT_LENGTH
    assert a.iteration_count == kdf.DEFAULT_ITERATION_COUNT
    assert kdf.encode_s2k_count(kdf.DEFAULT_ITERATION_COUNT) == 0xCE
    sha512 = kdf.new_kdf_do(hash_algorithm=KdfHash.SHA512, iteration_count=1024)
    assert sha512.initial_hash_pw1 is not None and len(sha512.initial_hash_pw1) == 64


def test_s2k_count_coding() -> None:
    assert kdf.decode_s2k_count(0x60) == 65536
    assert kdf.decode_s2k_count(0xFF) == 65011712
    with pytest.raises(ValueError):
        kdf.encode_s2k_count(100000)
    with pytest.raises(ValueError):
        kdf.decode_s2k_count(256)
