"""opcard.pkcs11.mechanisms: DigestInfo, ECDSA hash normalisation and encodings, mechanism rules,
and the card input each mechanism produces, checked by signing it the way a card does with a
software key and verifying the result with ``cryptography``."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto.algos import DigestAlgorithm, DigestInfo  # type: ignore[import-untyped]
from asn1crypto.core import Null  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import given
from hypothesis import strategies as st

from apdu.openpgp.constants import KeySlot
from opcard.errors import DataLengthError, MechanismError, OpcardError, UnsupportedMechanismError
from opcard.pkcs11 import KeyType, Mechanism, MechanismFlag, ReturnValue
from opcard.pkcs11.mechanisms import (
    DIGEST_INFO_PREFIXES,
    CardOperation,
    KeyInfo,
    SignatureFormat,
    check_mechanism,
    digest_info,
    ecdsa_der_to_raw,
    ecdsa_raw_to_der,
    hash_name_of,
    mechanism_flags,
    mechanisms_for,
    normalise_hash,
    parse_digest_info,
    prepare_digest_sign_input,
    prepare_sign_input,
    signature_length,
)

HASHES = ["sha1", "sha224", "sha256", "sha384", "sha512"]
HASH_BY_SIZE: dict[int, hashes.HashAlgorithm] = {
    20: hashes.SHA1(),
    28: hashes.SHA224(),
    32: hashes.SHA256(),
    48: hashes.SHA384(),
    64: hashes.SHA512(),
}

# RFC 8017 §9.2, note 1, exactly as printed there (the DigestInfo prefix of each hash).
RFC8017_NOTE1 = {
    "sha1": "30 21 30 09 06 05 2b 0e 03 02 1a 05 00 04 14",
    "sha224": "30 2d 30 0d 06 09 60 86 48 01 65 03 04 02 04 05 00 04 1c",
    "sha256": "30 31 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20",
    "sha384": "30 41 30 0d 06 09 60 86 48 01 65 03 04 02 02 05 00 04 30",
    "sha512": "30 51 30 0d 06 09 60 86 48 01 65 03 04 02 03 05 00 04 40",
}

CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 256),
    "P-384": (ec.SECP384R1(), 384),
    "P-521": (ec.SECP521R1(), 521),
    "brainpoolP512r1": (ec.BrainpoolP512R1(), 512),
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def ec_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    return {name: ec.generate_private_key(curve) for name, (curve, _) in CURVES.items()}


# --- the card, simulated with software keys ------------------------------------------------


def card_rsa_sign(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """What an OpenPGP card does with PSO:CDS / INTERNAL AUTHENTICATE input: PKCS#1 v1.5
    type-1 padding of the input, then the raw RSA private operation."""
    k = (key.key_size + 7) // 8
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    d = key.private_numbers().d
    n = key.public_key().public_numbers().n
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")


def fips_e(digest: bytes, order_bits: int) -> int:
    """FIPS 186-4 §6.4: the integer of the leftmost min(N, outlen) bits of the hash."""
    value = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - order_bits
    return value >> excess if excess > 0 else value


def card_ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """A card's ECDSA over its input hash, answered as raw r‖s."""
    der = key.sign(data, ec.ECDSA(Prehashed(HASH_BY_SIZE[len(data)])))
    return ecdsa_der_to_raw(der, (key.curve.key_size + 7) // 8)


# --- DigestInfo ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", HASHES)
def test_digest_info_prefixes_are_rfc8017_note_1(name: str) -> None:
    assert DIGEST_INFO_PREFIXES[name] == bytes.fromhex(RFC8017_NOTE1[name])


@pytest.mark.parametrize("name", HASHES)
def test_digest_info_equals_asn1crypto_der(name: str) -> None:
    digest = hashlib.new(name, b"abc").digest()
    expected = DigestInfo(
        {
            "digest_algorithm": DigestAlgorithm({"algorithm": name, "parameters": Null()}),
            "digest": digest,
        }
    ).dump()
    assert digest_info(name, digest) == expected
    assert parse_digest_info(expected) == (name, digest)


@pytest.mark.parametrize("name", HASHES)
def test_digest_info_is_what_pkcs1_signatures_contain(
    rsa_key: rsa.RSAPrivateKey, name: str
) -> None:
    digest = hashlib.new(name, b"message").digest()
    signature = rsa_key.sign(digest, padding.PKCS1v15(), Prehashed(HASH_BY_SIZE[len(digest)]))
    numbers = rsa_key.public_key().public_numbers()
    em = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(256, "big")
    assert em.endswith(b"\x00" + digest_info(name, digest))
    assert card_rsa_sign(rsa_key, digest_info(name, digest)) == signature


def test_digest_info_errors() -> None:
    with pytest.raises(DataLengthError):
        digest_info("sha256", bytes(31))
    with pytest.raises(MechanismError):
        digest_info("md5", bytes(16))
    assert digest_info("SHA-256", bytes(32)) == DIGEST_INFO_PREFIXES["sha256"] + bytes(32)
    with pytest.raises(MechanismError):
        parse_digest_info(bytes(51))
    with pytest.raises(MechanismError):
        parse_digest_info(DIGEST_INFO_PREFIXES["sha256"] + bytes(31))
    # the same length as a SHA-256 DigestInfo but the SHA-1 OID: refused
    with pytest.raises(MechanismError):
        parse_digest_info(DIGEST_INFO_PREFIXES["sha1"] + bytes(36))
    assert isinstance(MechanismError("x"), ValueError)
    assert isinstance(MechanismError("x"), OpcardError)


def test_hash_name_of() -> None:
    assert hash_name_of(hashes.SHA384()) == "sha384"
    assert hash_name_of("SHA-512") == "sha512"
    with pytest.raises(MechanismError):
        hash_name_of(hashes.MD5())


# --- ECDSA hash normalisation --------------------------------------------------------------


@pytest.mark.parametrize("name", HASHES)
@pytest.mark.parametrize("curve", list(CURVES))
def test_normalised_hash_keeps_the_ecdsa_value(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], curve: str, name: str
) -> None:
    """Signing the normalised input as a card does gives a signature that verifies over the
    original digest, for shorter and longer hashes on every curve."""
    bits = CURVES[curve][1]
    digest = hashlib.new(name, b"normalise me").digest()
    card_input = normalise_hash(digest, bits)
    assert fips_e(card_input, bits) == fips_e(digest, bits)
    if bits % 8 == 0:
        assert len(card_input) == bits // 8
    key = ec_keys[curve]
    if len(card_input) not in HASH_BY_SIZE:
        return  # brainpoolP512r1: 64 bytes is SHA-512's size, always in the table
    raw = card_ecdsa_sign(key, card_input)
    key.public_key().verify(
        ecdsa_raw_to_der(raw), digest, ec.ECDSA(Prehashed(HASH_BY_SIZE[len(digest)]))
    )


def test_normalise_hash_shapes() -> None:
    sha1 = bytes(range(1, 21))
    assert normalise_hash(sha1, 256) == bytes(12) + sha1
    sha512 = bytes(range(64))
    assert normalise_hash(sha512, 256) == sha512[:32]
    assert normalise_hash(sha512, 384) == sha512[:48]
    # P-521: no padding to 66 bytes, which a FIPS signer would shift right by 7 bits
    assert normalise_hash(sha512, 521) == sha512
    padded = bytes(2) + sha512
    assert fips_e(padded, 521) != fips_e(sha512, 521)
    with pytest.raises(DataLengthError):
        normalise_hash(b"", 256)
    with pytest.raises(ValueError):
        normalise_hash(sha1, 0)


@given(st.binary(min_size=1, max_size=80), st.sampled_from([160, 224, 255, 256, 384, 512, 521]))
def test_normalise_hash_property(digest: bytes, bits: int) -> None:
    out = normalise_hash(digest, bits)
    assert fips_e(out, bits) == fips_e(digest, bits)
    assert len(out) <= max(len(digest), (bits + 7) // 8)


# --- ECDSA encodings -----------------------------------------------------------------------


@pytest.mark.parametrize("curve", list(CURVES))
def test_ecdsa_encodings_round_trip(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey], curve: str
) -> None:
    key = ec_keys[curve]
    size = (key.curve.key_size + 7) // 8
    for i in range(20):
        message = b"round trip %d" % i
        der = key.sign(message, ec.ECDSA(hashes.SHA256()))
        raw = ecdsa_der_to_raw(der, size)
        assert len(raw) == 2 * size
        assert ecdsa_raw_to_der(raw) == der
        key.public_key().verify(ecdsa_raw_to_der(raw), message, ec.ECDSA(hashes.SHA256()))


def test_ecdsa_encoding_errors() -> None:
    with pytest.raises(MechanismError):
        ecdsa_raw_to_der(bytes(63))
    with pytest.raises(MechanismError):
        ecdsa_raw_to_der(b"")
    with pytest.raises(MechanismError):
        ecdsa_der_to_raw(b"\x30\x03\x02\x01", 32)
    too_big = ecdsa_raw_to_der(b"\x01" * 33 + b"\x01" * 33)
    with pytest.raises(MechanismError):
        ecdsa_der_to_raw(too_big, 32)


# --- which slot does what ------------------------------------------------------------------

RSA_SIG = KeyInfo(KeySlot.SIG, KeyType.RSA, 2048)
RSA_AUT = KeyInfo(KeySlot.AUT, KeyType.RSA, 2048)
RSA_DEC = KeyInfo(KeySlot.DEC, KeyType.RSA, 2048)
P256_SIG = KeyInfo(KeySlot.SIG, KeyType.EC, 256)
P256_AUT = KeyInfo(KeySlot.AUT, KeyType.EC, 256)
P256_DEC = KeyInfo(KeySlot.DEC, KeyType.EC, 256)
ED_AUT = KeyInfo(KeySlot.AUT, KeyType.EC_EDWARDS, 255)
X25519_DEC = KeyInfo(KeySlot.DEC, KeyType.EC_MONTGOMERY, 255)


def test_mechanism_tables() -> None:
    rsa_sign = {
        Mechanism.RSA_PKCS,
        Mechanism.SHA1_RSA_PKCS,
        Mechanism.SHA224_RSA_PKCS,
        Mechanism.SHA256_RSA_PKCS,
        Mechanism.SHA384_RSA_PKCS,
        Mechanism.SHA512_RSA_PKCS,
    }
    ecdsa = {
        Mechanism.ECDSA,
        Mechanism.ECDSA_SHA1,
        Mechanism.ECDSA_SHA224,
        Mechanism.ECDSA_SHA256,
        Mechanism.ECDSA_SHA384,
        Mechanism.ECDSA_SHA512,
    }
    assert mechanisms_for(RSA_SIG) == dict.fromkeys(rsa_sign, MechanismFlag.SIGN)
    assert mechanisms_for(RSA_AUT) == dict.fromkeys(rsa_sign, MechanismFlag.SIGN)
    assert mechanisms_for(RSA_DEC) == {Mechanism.RSA_PKCS: MechanismFlag.DECRYPT}
    assert mechanisms_for(P256_AUT) == dict.fromkeys(ecdsa, MechanismFlag.SIGN)
    assert mechanisms_for(P256_DEC) == {Mechanism.ECDH1_DERIVE: MechanismFlag.DERIVE}
    assert mechanisms_for(ED_AUT) == {Mechanism.EDDSA: MechanismFlag.SIGN}
    assert mechanisms_for(X25519_DEC) == {Mechanism.ECDH1_DERIVE: MechanismFlag.DERIVE}
    assert mechanisms_for(KeyInfo(KeySlot.SIG, KeyType.EC_MONTGOMERY, 255)) == {}
    assert all(isinstance(m, Mechanism) for m in mechanisms_for(RSA_SIG))


def test_mechanism_flags() -> None:
    assert mechanism_flags(Mechanism.SHA256_RSA_PKCS, RSA_SIG) == (
        MechanismFlag.SIGN | MechanismFlag.HW
    )
    assert mechanism_flags(Mechanism.RSA_PKCS, RSA_DEC) == MechanismFlag.DECRYPT | MechanismFlag.HW
    flags = mechanism_flags(Mechanism.ECDH1_DERIVE, P256_DEC)
    assert flags & MechanismFlag.DERIVE and flags & MechanismFlag.EC_OID
    assert mechanism_flags(Mechanism.RSA_PKCS_PSS, RSA_SIG) == 0
    assert mechanism_flags(Mechanism.ECDSA, RSA_SIG) == 0


@pytest.mark.parametrize(
    "mechanism",
    [Mechanism.RSA_PKCS_PSS, Mechanism.SHA256_RSA_PKCS_PSS, Mechanism.SHA512_RSA_PKCS_PSS],
)
@pytest.mark.parametrize("key", [RSA_SIG, RSA_AUT])
def test_rsa_pss_is_refused_with_the_reason(mechanism: Mechanism, key: KeyInfo) -> None:
    with pytest.raises(UnsupportedMechanismError) as info:
        prepare_sign_input(mechanism, key, b"tls 1.3 transcript")
    message = str(info.value)
    assert "PKCS#1 v1.5" in message and "TLS 1.3" in message and "ECC" in message
    assert info.value.return_value is ReturnValue.MECHANISM_INVALID
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("mechanism", "key", "usage", "return_value"),
    [
        (Mechanism.ECDSA_SHA256, RSA_SIG, MechanismFlag.SIGN, ReturnValue.KEY_TYPE_INCONSISTENT),
        (
            Mechanism.SHA256_RSA_PKCS,
            P256_AUT,
            MechanismFlag.SIGN,
            ReturnValue.KEY_TYPE_INCONSISTENT,
        ),
        (Mechanism.EDDSA, P256_SIG, MechanismFlag.SIGN, ReturnValue.KEY_TYPE_INCONSISTENT),
        (Mechanism.RSA_PKCS, RSA_DEC, MechanismFlag.SIGN, ReturnValue.KEY_FUNCTION_NOT_PERMITTED),
        (Mechanism.ECDSA, P256_DEC, MechanismFlag.SIGN, ReturnValue.KEY_FUNCTION_NOT_PERMITTED),
        (
            Mechanism.RSA_PKCS,
            RSA_SIG,
            MechanismFlag.DECRYPT,
            ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
        ),
        (Mechanism.RSA_X_509, RSA_SIG, MechanismFlag.SIGN, ReturnValue.MECHANISM_INVALID),
        (Mechanism.RSA_PKCS_OAEP, RSA_DEC, MechanismFlag.DECRYPT, ReturnValue.MECHANISM_INVALID),
        (Mechanism.AES_CBC, RSA_DEC, MechanismFlag.DECRYPT, ReturnValue.MECHANISM_INVALID),
        (0x8000_1234, RSA_SIG, MechanismFlag.SIGN, ReturnValue.MECHANISM_INVALID),
    ],
)
def test_check_mechanism_refusals(
    mechanism: int, key: KeyInfo, usage: MechanismFlag, return_value: ReturnValue
) -> None:
    with pytest.raises(UnsupportedMechanismError) as info:
        check_mechanism(mechanism, key, usage)
    assert info.value.return_value is return_value


def test_check_mechanism_accepts() -> None:
    check_mechanism(Mechanism.RSA_PKCS, RSA_DEC, MechanismFlag.DECRYPT)
    check_mechanism(Mechanism.ECDH1_DERIVE, X25519_DEC, MechanismFlag.DERIVE)
    check_mechanism(Mechanism.EDDSA, ED_AUT, MechanismFlag.SIGN)


# --- the card input per mechanism, verified end to end -------------------------------------


@pytest.mark.parametrize("slot", [KeySlot.SIG, KeySlot.AUT])
@pytest.mark.parametrize(
    ("mechanism", "algorithm"),
    [
        (Mechanism.SHA1_RSA_PKCS, hashes.SHA1()),
        (Mechanism.SHA224_RSA_PKCS, hashes.SHA224()),
        (Mechanism.SHA256_RSA_PKCS, hashes.SHA256()),
        (Mechanism.SHA384_RSA_PKCS, hashes.SHA384()),
        (Mechanism.SHA512_RSA_PKCS, hashes.SHA512()),
    ],
)
def test_rsa_hash_mechanisms(
    rsa_key: rsa.RSAPrivateKey, slot: KeySlot, mechanism: Mechanism, algorithm: hashes.HashAlgorithm
) -> None:
    data = b"sign me through the card" * 100
    prepared = prepare_sign_input(mechanism, KeyInfo(slot, KeyType.RSA, 2048), data)
    assert prepared.output is SignatureFormat.PKCS1_V1_5
    assert prepared.operation is (
        CardOperation.COMPUTE_DIGITAL_SIGNATURE
        if slot is KeySlot.SIG
        else CardOperation.INTERNAL_AUTHENTICATE
    )
    assert parse_digest_info(prepared.data)[0] == algorithm.name
    signature = card_rsa_sign(rsa_key, prepared.data)
    rsa_key.public_key().verify(signature, data, padding.PKCS1v15(), algorithm)


def test_rsa_pkcs_passes_the_digest_info_through(rsa_key: rsa.RSAPrivateKey) -> None:
    digest = hashlib.sha256(b"tls 1.2 handshake").digest()
    prepared = prepare_sign_input(Mechanism.RSA_PKCS, RSA_AUT, digest_info("sha256", digest))
    assert prepared.data == digest_info("sha256", digest)
    signature = card_rsa_sign(rsa_key, prepared.data)
    rsa_key.public_key().verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_rsa_length_limits() -> None:
    # INTERNAL AUTHENTICATE: at most 40 % of the modulus (102 bytes for RSA-2048)
    assert prepare_sign_input(Mechanism.RSA_PKCS, RSA_AUT, bytes(102)).data == bytes(102)
    with pytest.raises(DataLengthError) as info:
        prepare_sign_input(Mechanism.RSA_PKCS, RSA_AUT, bytes(103))
    assert info.value.return_value is ReturnValue.DATA_LEN_RANGE
    # PSO:CDS: at most k - 11 bytes
    assert len(prepare_sign_input(Mechanism.RSA_PKCS, RSA_SIG, bytes(245)).data) == 245
    with pytest.raises(DataLengthError):
        prepare_sign_input(Mechanism.RSA_PKCS, RSA_SIG, bytes(246))
    with pytest.raises(DataLengthError):
        prepare_sign_input(Mechanism.RSA_PKCS, RSA_SIG, b"")
    # a SHA-512 DigestInfo (83 bytes) exceeds 40 % of RSA-1024 (51 bytes) on the AUT key
    small = KeyInfo(KeySlot.AUT, KeyType.RSA, 1024)
    with pytest.raises(DataLengthError):
        prepare_sign_input(Mechanism.SHA512_RSA_PKCS, small, b"x")


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize(
    ("mechanism", "algorithm"),
    [
        (Mechanism.ECDSA_SHA1, hashes.SHA1()),
        (Mechanism.ECDSA_SHA224, hashes.SHA224()),
        (Mechanism.ECDSA_SHA256, hashes.SHA256()),
        (Mechanism.ECDSA_SHA384, hashes.SHA384()),
        (Mechanism.ECDSA_SHA512, hashes.SHA512()),
    ],
)
def test_ecdsa_hash_mechanisms(
    ec_keys: dict[str, ec.EllipticCurvePrivateKey],
    curve: str,
    mechanism: Mechanism,
    algorithm: hashes.HashAlgorithm,
) -> None:
    bits = CURVES[curve][1]
    data = b"an ECDSA message" * 50
    prepared = prepare_sign_input(mechanism, KeyInfo(KeySlot.SIG, KeyType.EC, bits), data)
    assert prepared.output is SignatureFormat.ECDSA_RAW
    raw = card_ecdsa_sign(ec_keys[curve], prepared.data)
    ec_keys[curve].public_key().verify(ecdsa_raw_to_der(raw), data, ec.ECDSA(algorithm))


def test_ecdsa_raw_mechanism(ec_keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    digest = hashlib.sha1(b"legacy").digest()
    prepared = prepare_sign_input(Mechanism.ECDSA, P256_AUT, digest)
    assert prepared.data == bytes(12) + digest
    assert prepared.operation is CardOperation.INTERNAL_AUTHENTICATE
    raw = card_ecdsa_sign(ec_keys["P-256"], prepared.data)
    ec_keys["P-256"].public_key().verify(
        ecdsa_raw_to_der(raw), digest, ec.ECDSA(Prehashed(hashes.SHA1()))
    )
    with pytest.raises(DataLengthError):
        prepare_sign_input(Mechanism.ECDSA, P256_AUT, b"")
    with pytest.raises(DataLengthError):
        prepare_sign_input(Mechanism.ECDSA, P256_AUT, bytes(65))


def test_eddsa_passes_the_message() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    message = b"the whole message, not a hash" * 10
    prepared = prepare_sign_input(Mechanism.EDDSA, ED_AUT, message)
    assert prepared == (message, CardOperation.INTERNAL_AUTHENTICATE, SignatureFormat.EDDSA)
    key.public_key().verify(key.sign(prepared.data), message)


def test_digest_sign_input(
    rsa_key: rsa.RSAPrivateKey, ec_keys: dict[str, ec.EllipticCurvePrivateKey]
) -> None:
    digest = hashlib.sha384(b"handshake").digest()
    prepared = prepare_digest_sign_input(RSA_AUT, "sha384", digest)
    assert prepared.data == digest_info("sha384", digest)
    rsa_key.public_key().verify(
        card_rsa_sign(rsa_key, prepared.data),
        digest,
        padding.PKCS1v15(),
        Prehashed(hashes.SHA384()),
    )
    prepared = prepare_digest_sign_input(P256_AUT, "sha384", digest)
    assert prepared.output is SignatureFormat.ECDSA_RAW
    raw = card_ecdsa_sign(ec_keys["P-256"], prepared.data)
    ec_keys["P-256"].public_key().verify(
        ecdsa_raw_to_der(raw), digest, ec.ECDSA(Prehashed(hashes.SHA384()))
    )
    # a wrong key must not verify (the checks above can fail)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidSignature):
        other.public_key().verify(
            ecdsa_raw_to_der(raw), digest, ec.ECDSA(Prehashed(hashes.SHA384()))
        )
    with pytest.raises(DataLengthError):
        prepare_digest_sign_input(P256_AUT, "sha256", digest)
    with pytest.raises(DataLengthError):
        prepare_digest_sign_input(RSA_AUT, "sha256", digest)
    with pytest.raises(UnsupportedMechanismError):
        prepare_digest_sign_input(ED_AUT, "sha256", bytes(32))
    with pytest.raises(UnsupportedMechanismError) as info:
        prepare_digest_sign_input(RSA_DEC, "sha256", bytes(32))
    assert info.value.return_value is ReturnValue.KEY_FUNCTION_NOT_PERMITTED


def test_signature_length() -> None:
    assert signature_length(RSA_SIG) == 256
    assert signature_length(KeyInfo(KeySlot.SIG, KeyType.RSA, 3072)) == 384
    assert signature_length(P256_SIG) == 64
    assert signature_length(KeyInfo(KeySlot.SIG, KeyType.EC, 521)) == 132
    assert signature_length(ED_AUT) == 64


def test_key_slot_parse() -> None:
    assert KeySlot.parse("sig") is KeySlot.SIG
    assert KeySlot.parse("AUT") is KeySlot.AUT
    assert KeySlot.parse(2) is KeySlot.DEC
    assert KeySlot.parse(KeySlot.DEC) is KeySlot.DEC
    with pytest.raises(ValueError):
        KeySlot.parse("enc")
