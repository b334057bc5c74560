"""Card public keys (7F49 answers + algorithm attributes) as ``cryptography`` keys and back.

The card answers READ PUBLIC KEY with bare material (RSA modulus and exponent, or an EC point);
which curve the point is on is only told by the slot's algorithm attributes. This module joins
the two into a :class:`CardPublicKey` that knows its PKCS#11 key type, size and encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from apdu.openpgp.constants import AlgorithmId, Curve
from apdu.openpgp.objects import (
    AlgorithmAttributes,
    EcAttributes,
    EcPublicKey,
    PublicKeyMaterial,
    RsaAttributes,
    RsaPublicKey,
)
from opcard.errors import OpcardError
from opcard.pkcs11 import KeyType

__all__ = [
    "CardPublicKey",
    "CryptographyPublicKey",
    "KeyAlgorithm",
    "UnsupportedKeyError",
    "algorithm_of",
    "attributes_for",
    "ec_params_der",
]

CryptographyPublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
)


class UnsupportedKeyError(OpcardError, ValueError):
    """A key or algorithm this card (or opcard) cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class KeyAlgorithm:
    """What kind of key a slot holds: ``rsa2048``, ``nistp256``, ``ed25519``, …"""

    key_type: KeyType
    bits: int
    curve: Curve | None = None

    @property
    def name(self) -> str:
        if self.curve is None:
            return f"rsa{self.bits}"
        return _CURVE_NAMES[self.curve]

    def __str__(self) -> str:
        return self.name


_CURVE_NAMES = {
    Curve.NIST_P256: "nistp256",
    Curve.NIST_P384: "nistp384",
    Curve.NIST_P521: "nistp521",
    Curve.SECP256K1: "secp256k1",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
    Curve.ED25519: "ed25519",
    Curve.X25519: "cv25519",
}
_CURVE_BY_NAME = {name.lower(): curve for curve, name in _CURVE_NAMES.items()}
_CURVE_BY_NAME.update({"x25519": Curve.X25519, "p256": Curve.NIST_P256, "p384": Curve.NIST_P384})
_CURVE_BY_NAME.update({"p521": Curve.NIST_P521, "secp256r1": Curve.NIST_P256})
_CURVE_BY_NAME.update({"secp384r1": Curve.NIST_P384, "secp521r1": Curve.NIST_P521})
_CURVE_BITS = {
    Curve.NIST_P256: 256,
    Curve.NIST_P384: 384,
    Curve.NIST_P521: 521,
    Curve.SECP256K1: 256,
    Curve.BRAINPOOL_P256R1: 256,
    Curve.BRAINPOOL_P384R1: 384,
    Curve.BRAINPOOL_P512R1: 512,
    Curve.ED25519: 255,
    Curve.X25519: 255,
}
_EC_CURVES: dict[Curve, ec.EllipticCurve] = {
    Curve.NIST_P256: ec.SECP256R1(),
    Curve.NIST_P384: ec.SECP384R1(),
    Curve.NIST_P521: ec.SECP521R1(),
    Curve.SECP256K1: ec.SECP256K1(),
    Curve.BRAINPOOL_P256R1: ec.BrainpoolP256R1(),
    Curve.BRAINPOOL_P384R1: ec.BrainpoolP384R1(),
    Curve.BRAINPOOL_P512R1: ec.BrainpoolP512R1(),
}
_CURVE_OF_CRYPTOGRAPHY: dict[str, Curve] = {c.name: k for k, c in _EC_CURVES.items()}


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return bytes((0x06, len(body))) + bytes(body)


def ec_params_der(curve: Curve) -> bytes:
    """CKA_EC_PARAMS: the DER OBJECT IDENTIFIER of the curve (for Ed25519 the RFC 8410 OID
    1.3.101.112, for X25519 1.3.101.110, as PKCS#11 3.0 and OpenSC use)."""
    if curve is Curve.ED25519:
        return _der_oid("1.3.101.112")
    if curve is Curve.X25519:
        return _der_oid("1.3.101.110")
    return _der_oid(curve.dotted)


def algorithm_of(attributes: AlgorithmAttributes | None) -> KeyAlgorithm | None:
    """The key algorithm the slot's attributes declare (None when unknown or absent)."""
    if isinstance(attributes, RsaAttributes):
        return KeyAlgorithm(KeyType.RSA, attributes.n_bits)
    if isinstance(attributes, EcAttributes):
        curve = Curve.from_oid(attributes.oid)
        if curve is None:
            return None
        if curve is Curve.ED25519:
            return KeyAlgorithm(KeyType.EC_EDWARDS, 255, curve)
        if curve is Curve.X25519:
            return KeyAlgorithm(KeyType.EC_MONTGOMERY, 255, curve)
        return KeyAlgorithm(KeyType.EC, _CURVE_BITS[curve], curve)
    return None


def parse_algorithm(name: str) -> KeyAlgorithm:
    """``rsa2048`` / ``rsa3072`` / ``rsa4096`` / ``nistp256`` / ``ed25519`` / ``cv25519`` …"""
    text = name.strip().lower()
    if text.startswith("rsa") and text[3:].isdigit():
        bits = int(text[3:])
        if bits not in (2048, 3072, 4096):
            raise UnsupportedKeyError(f"RSA-{bits}: OpenPGP cards take RSA 2048, 3072 or 4096")
        return KeyAlgorithm(KeyType.RSA, bits)
    curve = _CURVE_BY_NAME.get(text)
    if curve is None:
        known = ", ".join(["rsa2048", "rsa3072", "rsa4096", *_CURVE_NAMES.values()])
        raise UnsupportedKeyError(f"unknown algorithm {name!r} (one of: {known})")
    algorithm = algorithm_of(EcAttributes(AlgorithmId.ECDSA, curve.oid))
    assert algorithm is not None
    return algorithm


def attributes_for(algorithm: KeyAlgorithm, *, decryption: bool) -> AlgorithmAttributes:
    """The algorithm attributes (C1-C3) that declare ``algorithm`` for a slot."""
    if algorithm.curve is None:
        return RsaAttributes(algorithm.bits, 32)
    curve = algorithm.curve
    if curve is Curve.ED25519:
        if decryption:
            raise UnsupportedKeyError("Ed25519 signs; the decryption slot takes cv25519 (X25519)")
        return EcAttributes(AlgorithmId.EDDSA, curve.oid)
    if curve is Curve.X25519:
        if not decryption:
            raise UnsupportedKeyError("cv25519 (X25519) only decrypts; sign with ed25519")
        return EcAttributes(AlgorithmId.ECDH, curve.oid)
    return EcAttributes(AlgorithmId.ECDH if decryption else AlgorithmId.ECDSA, curve.oid)


@dataclass(frozen=True)
class CardPublicKey:
    """A slot's public key: the card's material and the algorithm that interprets it."""

    algorithm: KeyAlgorithm
    material: PublicKeyMaterial

    @classmethod
    def from_card(
        cls, material: PublicKeyMaterial, attributes: AlgorithmAttributes | None
    ) -> CardPublicKey:
        algorithm = algorithm_of(attributes)
        if algorithm is None:
            raise UnsupportedKeyError(f"unsupported algorithm attributes {attributes!r}")
        if isinstance(material, RsaPublicKey) != (algorithm.curve is None):
            raise UnsupportedKeyError(
                f"the card sent a {type(material).__name__} for a {algorithm} slot"
            )
        return cls(algorithm, material)

    @classmethod
    def from_cryptography(cls, key: CryptographyPublicKey) -> CardPublicKey:
        if isinstance(key, rsa.RSAPublicKey):
            numbers = key.public_numbers()
            n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
            e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
            return cls(KeyAlgorithm(KeyType.RSA, key.key_size), RsaPublicKey(n, e))
        if isinstance(key, ec.EllipticCurvePublicKey):
            curve = _CURVE_OF_CRYPTOGRAPHY.get(key.curve.name)
            if curve is None:
                raise UnsupportedKeyError(f"curve {key.curve.name} is not an OpenPGP card curve")
            point = key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            return cls(KeyAlgorithm(KeyType.EC, _CURVE_BITS[curve], curve), EcPublicKey(point))
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(KeyAlgorithm(KeyType.EC_EDWARDS, 255, Curve.ED25519), EcPublicKey(raw))
        return cls(KeyAlgorithm(KeyType.EC_MONTGOMERY, 255, Curve.X25519), EcPublicKey(raw))

    @property
    def key_type(self) -> KeyType:
        return self.algorithm.key_type

    @property
    def bits(self) -> int:
        return self.algorithm.bits

    @property
    def modulus(self) -> bytes:
        assert isinstance(self.material, RsaPublicKey)
        return self.material.modulus.lstrip(b"\x00")

    @property
    def exponent(self) -> bytes:
        assert isinstance(self.material, RsaPublicKey)
        return self.material.exponent.lstrip(b"\x00")

    @property
    def point(self) -> bytes:
        """The EC point as the card gives it (uncompressed 04‖x‖y, or 32 raw bytes for 25519;
        a 0x40 prefix some cards add to 25519 points is removed)."""
        assert isinstance(self.material, EcPublicKey)
        point = self.material.point
        if self.algorithm.curve in (Curve.ED25519, Curve.X25519) and len(point) == 33:
            return point[1:]
        return point

    def to_cryptography(self) -> CryptographyPublicKey:
        """The key as a ``cryptography`` public key object."""
        curve = self.algorithm.curve
        try:
            if curve is None:
                return rsa.RSAPublicNumbers(
                    int.from_bytes(self.exponent, "big"), int.from_bytes(self.modulus, "big")
                ).public_key()
            if curve is Curve.ED25519:
                return ed25519.Ed25519PublicKey.from_public_bytes(self.point)
            if curve is Curve.X25519:
                return x25519.X25519PublicKey.from_public_bytes(self.point)
            return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[curve], self.point)
        except ValueError as e:
            raise UnsupportedKeyError(
                f"the card's {self.algorithm} public key is invalid: {e}"
            ) from e

    def spki_der(self) -> bytes:
        """SubjectPublicKeyInfo DER (CKA_PUBLIC_KEY_INFO)."""
        return self.to_cryptography().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def ec_point_der(self) -> bytes:
        """CKA_EC_POINT: the point as a DER OCTET STRING (what OpenSC and p11-kit clients
        expect)."""
        point = self.point
        if len(point) < 0x80:
            return bytes((0x04, len(point))) + point
        return bytes((0x04, 0x81, len(point))) + point
