"""KDF-DO (F9): the card compares S2K-derived PINs like a real card does."""

from __future__ import annotations

import hashlib
import os
import warnings

import pytest
from card_apdus import PW1, PW3, Driver

from fixtures.card_crypto import s2k_iterated_salted

COUNT_BYTE = 0x60  # OpenPGP coded count 0x60 -> 65536 octets
COUNT = (16 + (COUNT_BYTE & 15)) << ((COUNT_BYTE >> 4) + 6)


def s2k(salt: bytes, pin: bytes, count: int = COUNT) -> bytes:
    """Independent RFC 4880 3.7.1.3 iterated salted S2K with SHA-256 (straightforward)."""
    data = salt + pin
    stream = (data * (count // len(data) + 1))[: max(count, len(data))]
    return hashlib.sha256(stream).digest()


def kdf_do(salts: list[bytes], with_initial: bool = True) -> bytes:
    """Build F9 content the way GnuPG's kdf-setup does (81 03, 82 08, 83, 84[,85,86], 87, 88)."""
    out = bytes.fromhex("810103820108") + b"\x83\x04" + COUNT.to_bytes(4, "big")
    out += b"\x84\x08" + salts[0]
    if len(salts) == 3:
        out += b"\x85\x08" + salts[1] + b"\x86\x08" + salts[2]
    if with_initial:
        admin_salt = salts[2] if len(salts) == 3 else salts[0]
        out += b"\x87\x20" + s2k(salts[0], PW1) + b"\x88\x20" + s2k(admin_salt, PW3)
    return out


def test_s2k_matches_pgpy() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgpy.constants import HashAlgorithm, String2KeyType, SymmetricKeyAlgorithm
        from pgpy.packet.fields import String2Key
    salt = bytes.fromhex("0102030405060708")
    ref = String2Key()
    ref.specifier = String2KeyType.Iterated
    ref.halg = HashAlgorithm.SHA256
    ref.encalg = SymmetricKeyAlgorithm.AES256
    ref.salt = bytearray(salt)
    ref._count = COUNT_BYTE
    assert ref.count == COUNT
    expected = ref.derive_key(b"123456")
    assert s2k_iterated_salted(0x08, salt, b"123456", COUNT) == expected
    assert s2k(salt, b"123456") == expected
    # count smaller than salt || pin: hash it once
    assert (
        s2k_iterated_salted(0x08, salt, b"123456", 3) == hashlib.sha256(salt + b"123456").digest()
    )


@pytest.mark.parametrize("three_salts", [False, True])
def test_kdf_setup_like_gnupg(fresh: Driver, three_salts: bool) -> None:
    salts = [os.urandom(8) for _ in range(3 if three_salts else 1)]
    f9 = kdf_do(salts)
    assert len(f9) == (110 if three_salts else 90)  # what GnuPG checks
    assert fresh.put(0x00F9, f9).sw == 0x6982
    fresh.admin()
    assert fresh.put(0x00F9, f9).sw == 0x9000
    assert fresh.get(0x00F9).data == f9  # bare content
    # writing F9 dropped the verification
    assert fresh.verify(0x83, b"").sw == 0x63C3
    # plain PINs no longer work (wrong length: 6A80, counter untouched)
    assert fresh.verify(0x82, PW1).sw == 0x6A80
    assert fresh.get(0x00C4).data[4] == 3
    admin_salt = salts[2] if three_salts else salts[0]
    assert fresh.verify(0x82, s2k(salts[0], PW1)).sw == 0x9000
    assert fresh.verify(0x83, s2k(admin_salt, PW3)).sw == 0x9000
    # a wrong derived PIN counts
    assert fresh.verify(0x81, s2k(salts[0], b"654321")).sw == 0x63C2
    assert fresh.verify(0x81, s2k(salts[0], PW1)).sw == 0x9000
    # change PW1: old and new derived values, 32 bytes each
    new = s2k(salts[0], b"abcdef")
    assert fresh.send(0x24, 0, 0x81, s2k(salts[0], PW1) + new).sw == 0x9000
    assert fresh.verify(0x82, new).sw == 0x9000
    assert fresh.send(0x24, 0, 0x81, new + b"short").sw == 0x6A80
    # reset code with KDF: derived with the reset code salt
    rc_salt = salts[1] if three_salts else salts[0]
    assert fresh.put(0x00D3, s2k(rc_salt, b"resetcode")).sw == 0x9000
    for _ in range(3):
        fresh.verify(0x82, s2k(salts[0], b"999999"))
    assert (
        fresh.send(0x2C, 0x00, 0x81, s2k(rc_salt, b"resetcode") + s2k(salts[0], b"111111")).sw
        == 0x9000
    )
    assert fresh.verify(0x82, s2k(salts[0], b"111111")).sw == 0x9000


def test_kdf_without_initial_values_uses_default_pins(fresh: Driver) -> None:
    salt = os.urandom(8)
    fresh.admin()
    assert fresh.put(0x00F9, kdf_do([salt], with_initial=False)).sw == 0x9000
    assert fresh.verify(0x82, s2k(salt, PW1)).sw == 0x9000
    assert fresh.verify(0x83, s2k(salt, PW3)).sw == 0x9000


def test_kdf_off_restores_plain_default_pins(fresh: Driver) -> None:
    salt = os.urandom(8)
    fresh.admin()
    fresh.put(0x00F9, kdf_do([salt]))
    fresh.verify(0x83, s2k(salt, PW3))
    assert fresh.put(0x00F9, bytes.fromhex("810100")).sw == 0x9000
    assert fresh.verify(0x82, PW1).sw == 0x9000
    assert fresh.verify(0x83, PW3).sw == 0x9000
    assert fresh.get(0x00F9).data == bytes.fromhex("810100")


def test_kdf_rejects_malformed(fresh: Driver) -> None:
    fresh.admin()
    salt = os.urandom(8)
    bad = [
        b"",
        bytes.fromhex("810102"),
        bytes.fromhex("810103"),  # no hash / count / salt
        bytes.fromhex("810103820109") + b"\x83\x04\x00\x01\x00\x00\x84\x08" + salt,  # hash 09
        bytes.fromhex("810103820108") + b"\x83\x04\x00\x01\x00\x00\x84\x07" + salt[:7],
        bytes.fromhex("810103820108")
        + b"\x83\x04\x00\x01\x00\x00\x84\x08"
        + salt
        + b"\x87\x10"
        + bytes(16),
        b"\x81\x05",
    ]
    for f9 in bad:
        assert fresh.put(0x00F9, f9).sw == 0x6A80, f9.hex()
    assert fresh.get(0x00F9).data == bytes.fromhex("810100")
