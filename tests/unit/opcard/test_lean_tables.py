"""What issue #15 moved out of the import paths must stay the same values: the hash rows hold
their mechanisms as numbers, the small PKCS#11 tables live in their own module, the mechanism
rules are built on first use, and ECDSA r‖s → DER is encoded by opcard itself (no
``cryptography`` to sign a digest). Each is compared with what it replaced."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from apdu.openpgp.constants import KeySlot
from opcard import hashes as opcard_hashes
from opcard.errors import MechanismError
from opcard.pkcs11 import KeyType, Mechanism, MechanismFlag, ObjectClass, UserType, basic, constants
from opcard.pkcs11.mechanisms import (
    HASH_ALGORITHMS,
    KeyInfo,
    ecdsa_der_to_raw,
    ecdsa_raw_to_der,
    mechanism_flags,
    mechanisms_for,
)


def test_small_tables_are_the_constants_classes() -> None:
    assert constants.ObjectClass is basic.ObjectClass is ObjectClass
    assert constants.UserType is basic.UserType is UserType
    assert [(m.name, int(m)) for m in UserType] == [("SO", 0), ("USER", 1), ("CONTEXT_SPECIFIC", 2)]
    assert ObjectClass.PRIVATE_KEY == 3 and ObjectClass.VENDOR_DEFINED == 0x80000000


def test_hash_rows_numbers_and_algorithms() -> None:
    for name, row in opcard_hashes.HASHES.items():
        assert row.rsa_pkcs_value == Mechanism[f"{name.upper()}_RSA_PKCS"]
        assert row.ecdsa_value == Mechanism[f"ECDSA_{name.upper()}"]
        algorithm = row.algorithm
        assert isinstance(algorithm, hashes.HashAlgorithm)
        assert algorithm.name == name and algorithm.digest_size == row.digest_size
        assert row.algorithm is algorithm  # one instance per row
        assert HASH_ALGORITHMS[name] is algorithm
    assert "sha256" in repr(opcard_hashes.HASHES["sha256"])


def test_mechanism_rules_built_on_first_use() -> None:
    rsa_sig = KeyInfo(KeySlot.SIG, KeyType.RSA, 2048)
    supported = mechanisms_for(rsa_sig)
    assert supported[Mechanism.SHA256_RSA_PKCS] is MechanismFlag.SIGN
    assert all(type(m) is Mechanism for m in supported)
    assert mechanism_flags(Mechanism.ECDSA, rsa_sig) == MechanismFlag(0)
    dec = KeyInfo(KeySlot.DEC, KeyType.EC, 256)
    assert mechanism_flags(Mechanism.ECDH1_DERIVE, dec) == (
        MechanismFlag.DERIVE
        | MechanismFlag.HW
        | MechanismFlag.EC_F_P
        | MechanismFlag.EC_OID
        | MechanismFlag.EC_UNCOMPRESS
    )


def _values(size: int) -> list[int]:
    rng = random.Random(size)
    top = 1 << (8 * size)
    edge = [0, 1, 0x7F, 0x80, 0xFF, 0x100, top - 1, top >> 1, (top >> 1) - 1, top >> 9]
    return edge + [rng.randrange(top) >> rng.randrange(0, 8 * size) for _ in range(200)]


@pytest.mark.parametrize("size", [32, 48, 66])  # P-256, P-384, P-521 (a long-form length)
def test_ecdsa_raw_to_der_is_cryptography_s_encoding(size: int) -> None:
    values = _values(size)
    rng = random.Random(-size)
    for r in values:
        s = rng.choice(values)
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        der = ecdsa_raw_to_der(raw)
        assert der == encode_dss_signature(r, s)
        assert decode_dss_signature(der) == (r, s)
        if r and s:
            assert ecdsa_der_to_raw(der, size) == raw


@pytest.mark.parametrize("bad", [b"", b"\x01", bytes(3)])
def test_ecdsa_raw_to_der_refuses_unequal_halves(bad: bytes) -> None:
    with pytest.raises(MechanismError, match="r and s must be equal"):
        ecdsa_raw_to_der(bad)
