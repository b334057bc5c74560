"""The fact tables and what is derived from them: opcard.hashes (one row per hash) and the curve
mapping of opcard.publickeys (derived from apdu's Curve), checked against independent sources
(cryptography's OID table, asn1crypto's encoder, RFC 4880 and RFC 5246 numbers as printed)."""

from __future__ import annotations

import warnings

import pytest
from asn1crypto.core import ObjectIdentifier, OctetString  # type: ignore[import-untyped]
from conftest import require_module
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from apdu.openpgp.constants import Curve, KeySlot
from opcard.errors import MechanismError, UnsupportedMechanismError
from opcard.hashes import HASHES, hash_for_curve, hash_named, unsupported_hash_message
from opcard.openpgp import HashAlgorithm
from opcard.pkcs11 import KeyType, Mechanism, MechanismFlag
from opcard.pkcs11.mechanisms import (
    NO_PSS_MESSAGE,
    KeyInfo,
    check_mechanism,
    hash_name_of,
    signing_hash,
)
from opcard.publickeys import (
    CardPublicKey,
    UnsupportedKeyError,
    curve_of,
    ec_params_der,
    parse_algorithm,
    public_key_from_point,
)

# RFC 4880 §9.4 and RFC 5246 §7.4.1.4.1, as printed there.
RFC4880_IDS = {"sha1": 2, "sha224": 11, "sha256": 8, "sha384": 9, "sha512": 10}
RFC5246_IDS = {"sha1": 2, "sha224": 3, "sha256": 4, "sha384": 5, "sha512": 6}


def test_hash_rows() -> None:
    assert list(HASHES) == ["sha1", "sha224", "sha256", "sha384", "sha512"]
    for name, row in HASHES.items():
        assert row.name == name == row.algorithm.name
        assert row.label == f"SHA-{name[3:]}"
        assert row.rsa_pkcs is Mechanism[f"{name.upper()}_RSA_PKCS"]
        assert row.ecdsa is Mechanism[f"ECDSA_{name.upper()}"]
        assert signing_hash(row.rsa_pkcs) == signing_hash(row.ecdsa) == name
        assert HashAlgorithm[name.upper()] == RFC4880_IDS[name]
        assert row.digest_info_prefix.endswith(bytes((0x04, row.digest_size)))
    for mechanism in (Mechanism.RSA_PKCS, Mechanism.ECDSA, Mechanism.EDDSA, Mechanism.SHA256):
        assert signing_hash(mechanism) is None


def test_tls_hash_ids_are_named_as_the_rows() -> None:
    with warnings.catch_warnings():  # tlslite imports asyncore
        warnings.simplefilter("ignore", DeprecationWarning)
        constants = require_module("tlslite.constants")
    for name in HASHES:
        assert getattr(constants.HashAlgorithm, name) == RFC5246_IDS[name]


def test_hash_named() -> None:
    for given in ("sha256", "SHA-256", "Sha256", hashes.SHA256()):
        found = hash_named(given)
        assert found is not None and found.name == "sha256"
    assert hash_named("md5") is None and hash_named(hashes.SHA3_256()) is None
    assert unsupported_hash_message("md5") == (
        "unsupported hash 'md5' (sha1, sha224, sha256, sha384, sha512)"
    )
    with pytest.raises(MechanismError, match=r"unsupported hash 'md5' \(sha1, "):
        hash_name_of("md5")


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        (Curve.NIST_P256, "sha256"),
        (Curve.NIST_P384, "sha384"),
        (Curve.NIST_P521, "sha512"),
        (Curve.SECP256K1, "sha256"),
        (Curve.BRAINPOOL_P384R1, "sha384"),
        (Curve.BRAINPOOL_P512R1, "sha512"),
        (Curve.ED25519, "sha256"),
    ],
)
def test_hash_for_curve(curve: Curve, expected: str) -> None:
    assert hash_for_curve(curve.bits).name == expected


def test_every_pss_mechanism_is_refused_with_the_one_message() -> None:
    key = KeyInfo(KeySlot.SIG, KeyType.RSA, 2048)
    pss = [m for m in Mechanism if m.name.endswith("RSA_PKCS_PSS")]
    assert len(pss) == 10  # RSA_PKCS_PSS, SHA1/224/256/384/512 and SHA3-224/256/384/512
    for mechanism in pss:
        with pytest.raises(UnsupportedMechanismError) as info:
            check_mechanism(mechanism, key, MechanismFlag.SIGN)
        assert str(info.value) == f"CKM_{mechanism.name}: {NO_PSS_MESSAGE}"


WEIERSTRASS = [c for c in Curve if not c.is_25519]


@pytest.mark.parametrize("curve", WEIERSTRASS)
def test_cryptography_curve_of_every_card_curve(curve: Curve) -> None:
    # cryptography's own OID table names the class: the mapping agrees with it
    crypto_curve = ec.get_curve_for_oid(x509.ObjectIdentifier(curve.dotted))()
    key = ec.generate_private_key(crypto_curve).public_key()
    assert curve_of(key) is curve
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert public_key_from_point(curve, point) == key
    card_key = CardPublicKey.from_cryptography(key)
    assert (card_key.key_type, card_key.bits, card_key.algorithm.curve) == (
        KeyType.EC,
        curve.bits,
        curve,
    )
    assert card_key.to_cryptography() == key
    assert ec_params_der(curve) == ObjectIdentifier(curve.dotted).dump()
    # CKA_EC_POINT: a DER OCTET STRING, long form from 128 bytes on (P-521: 04 81 85)
    der = card_key.ec_point_der()
    assert der == OctetString(point).dump()
    if curve is Curve.NIST_P521:
        assert der[:3] == b"\x04\x81\x85"
    assert parse_algorithm(curve.openpgp_name) == card_key.algorithm
    assert parse_algorithm(crypto_curve.name.upper()) == card_key.algorithm


def test_25519_curves() -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    xk = x25519.X25519PrivateKey.generate().public_key()
    assert curve_of(ed) is Curve.ED25519 and curve_of(xk) is Curve.X25519
    assert curve_of(rsa.generate_private_key(65537, 2048).public_key()) is None
    assert curve_of(ec.generate_private_key(ec.SECP224R1()).public_key()) is None
    assert CardPublicKey.from_cryptography(ed).key_type is KeyType.EC_EDWARDS
    assert CardPublicKey.from_cryptography(xk).key_type is KeyType.EC_MONTGOMERY
    # PKCS#11 3.0 and OpenSC name them by the RFC 8410 OIDs, not by OpenPGP's
    assert ec_params_der(Curve.ED25519) == bytes.fromhex("06032b6570")
    assert ec_params_der(Curve.X25519) == bytes.fromhex("06032b656e")
    assert parse_algorithm("cv25519") == parse_algorithm("x25519")
    assert parse_algorithm("cv25519").name == "cv25519"
    with pytest.raises(UnsupportedKeyError, match="secp224r1 is not an OpenPGP card curve"):
        CardPublicKey.from_cryptography(ec.generate_private_key(ec.SECP224R1()).public_key())
    with pytest.raises(UnsupportedKeyError, match=r"one of: rsa2048, rsa3072, rsa4096, nistp256"):
        parse_algorithm("p192")


def test_the_cli_offers_the_hashes_of_the_table() -> None:
    # opcard sign keeps its own list (its module must not load cryptography for --help)
    from opcard.cli.sign import _HASHES

    assert sorted(_HASHES) == sorted(HASHES) and _HASHES[0] == "sha256"


def test_the_cli_names_every_algorithm_of_the_tables() -> None:
    # opcard key generate --help lists the names itself (no cryptography import for --help)
    from opcard.cli.key import key
    from opcard.publickeys import RSA_SIZES

    generate = key.commands["generate"]
    (algo,) = [p for p in generate.params if p.name == "algo"]
    listed = [
        name.split(" (")[0].strip().rstrip(".")
        for name in str(getattr(algo, "help", "")).split(", ")
    ]
    assert listed[: len(RSA_SIZES)] == [f"rsa{bits}" for bits in RSA_SIZES]
    assert sorted(listed[len(RSA_SIZES) :]) == sorted(c.openpgp_name for c in Curve)
