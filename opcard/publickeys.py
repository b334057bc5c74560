"""Card public keys (7F49 answers + algorithm attributes) as ``cryptography`` keys and back.

The card answers READ PUBLIC KEY with bare material (RSA modulus and exponent, or an EC point);
which curve the point is on is only told by the slot's algorithm attributes. This module joins
the two into a :class:`CardPublicKey` that knows its PKCS#11 key type, size and encodings.

The algorithms themselves (:class:`KeyAlgorithm`, :func:`algorithm_of`, :func:`parse_algorithm`,
:func:`attributes_for`, :data:`RSA_SIZES`) live in :mod:`opcard.algorithms`, which does not
import ``cryptography``; they are re-exported here. ``cryptography``'s serialization and
asn1crypto are imported by the functions that encode keys (not by a command that only signs).
"""

from __future__ import annotations

from apdu.openpgp.constants import Curve
from apdu.openpgp.objects import (
    AlgorithmAttributes,
    EcPublicKey,
    PublicKeyMaterial,
    RsaPublicKey,
)
from apdu.record import Record
from opcard.algorithms import (
    CRYPTOGRAPHY_CURVE_NAMES,
    RSA_SIZES,
    KeyAlgorithm,
    algorithm_of,
    attributes_for,
    curve_algorithm,
    parse_algorithm,
)
from opcard.pkcs11 import KeyType

__all__ = [
    "CardPublicKey",
    "CryptographyPublicKey",
    "KeyAlgorithm",
    "RSA_SIZES",
    "algorithm_of",
    "attributes_for",
    "curve_of",
    "ec_params_der",
    "parse_algorithm",
    "public_key_from_point",
]

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from typing import TypeAlias

    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    from opcard.errors import UnsupportedKeyError as UnsupportedKeyError

    CryptographyPublicKey: TypeAlias = (
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | x25519.X25519PublicKey
    )


def __getattr__(name: str) -> object:
    # CryptographyPublicKey imports cryptography's key modules (3 ms) when asked for: a
    # command that only signs (opcard sign) does not load them; nor opcard.errors (2 ms),
    # whose UnsupportedKeyError is importable from here too.
    if name == "UnsupportedKeyError":
        from opcard.errors import UnsupportedKeyError

        return UnsupportedKeyError
    if name != "CryptographyPublicKey":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    alias = (
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | x25519.X25519PublicKey
    )
    globals()[name] = alias
    return alias


def _ec_curves() -> dict[Curve, ec.EllipticCurve]:
    """The ``cryptography`` curve of each short-Weierstrass card curve; the 25519 curves are
    key types of their own there (Ed25519PublicKey, X25519PublicKey), and in PKCS#11
    (CKK_EC_EDWARDS, CKK_EC_MONTGOMERY). Every other curve fact is a column of
    :class:`~apdu.openpgp.constants.Curve`."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return {
        Curve.NIST_P256: ec.SECP256R1(),
        Curve.NIST_P384: ec.SECP384R1(),
        Curve.NIST_P521: ec.SECP521R1(),
        Curve.SECP256K1: ec.SECP256K1(),
        Curve.BRAINPOOL_P256R1: ec.BrainpoolP256R1(),
        Curve.BRAINPOOL_P384R1: ec.BrainpoolP384R1(),
        Curve.BRAINPOOL_P512R1: ec.BrainpoolP512R1(),
    }


#: X.509 and PKCS#11 3.0 name the 25519 curves by their RFC 8410 OIDs, not by OpenPGP's.
_RFC8410_OIDS = {Curve.ED25519: "1.3.101.112", Curve.X25519: "1.3.101.110"}
_CURVE_OF_CRYPTOGRAPHY: dict[str, Curve] = {
    name: curve for curve, name in CRYPTOGRAPHY_CURVE_NAMES.items()
}


def curve_of(key: CryptographyPublicKey) -> Curve | None:
    """The card curve of a ``cryptography`` public key; None for RSA or a curve no OpenPGP
    card has."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

    if isinstance(key, ed25519.Ed25519PublicKey):
        return Curve.ED25519
    if isinstance(key, x25519.X25519PublicKey):
        return Curve.X25519
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVE_OF_CRYPTOGRAPHY.get(key.curve.name)
    return None


def public_key_from_point(curve: Curve, point: bytes) -> CryptographyPublicKey:
    """The ``cryptography`` public key of ``point`` on ``curve`` (an uncompressed or compressed
    point, or the 32 raw bytes of a 25519 key); ValueError when it is not one."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

    if curve is Curve.ED25519:
        return ed25519.Ed25519PublicKey.from_public_bytes(point)
    if curve is Curve.X25519:
        return x25519.X25519PublicKey.from_public_bytes(point)
    return ec.EllipticCurvePublicKey.from_encoded_point(_ec_curves()[curve], point)


def ec_params_der(curve: Curve) -> bytes:
    """CKA_EC_PARAMS: the DER OBJECT IDENTIFIER of the curve (for Ed25519 the RFC 8410 OID
    1.3.101.112, for X25519 1.3.101.110, as PKCS#11 3.0 and OpenSC use)."""
    from asn1crypto.core import ObjectIdentifier  # type: ignore[import-untyped]

    return bytes(ObjectIdentifier(_RFC8410_OIDS.get(curve, curve.dotted)).dump())


class CardPublicKey(Record):
    """A slot's public key: the card's material and the algorithm that interprets it."""

    algorithm: KeyAlgorithm
    material: PublicKeyMaterial

    @classmethod
    def from_card(
        cls, material: PublicKeyMaterial, attributes: AlgorithmAttributes | None
    ) -> CardPublicKey:
        algorithm = algorithm_of(attributes)
        if algorithm is None:
            from opcard.errors import UnsupportedKeyError

            raise UnsupportedKeyError(f"unsupported algorithm attributes {attributes!r}")
        if isinstance(material, RsaPublicKey) != (algorithm.curve is None):
            from opcard.errors import UnsupportedKeyError

            raise UnsupportedKeyError(
                f"the card sent a {type(material).__name__} for a {algorithm} slot"
            )
        return cls(algorithm, material)

    @classmethod
    def from_cryptography(cls, key: CryptographyPublicKey) -> CardPublicKey:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if isinstance(key, rsa.RSAPublicKey):
            numbers = key.public_numbers()
            n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
            e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
            return cls(KeyAlgorithm(KeyType.RSA, key.key_size), RsaPublicKey(n, e))
        curve = curve_of(key)
        if curve is None:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            from opcard.errors import UnsupportedKeyError

            raise UnsupportedKeyError(f"curve {key.curve.name} is not an OpenPGP card curve")
        from cryptography.hazmat.primitives import serialization

        if isinstance(key, ec.EllipticCurvePublicKey):
            point = key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            point = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(curve_algorithm(curve), EcPublicKey(point))

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
        if self.algorithm.curve is not None and self.algorithm.curve.is_25519 and len(point) == 33:
            return point[1:]
        return point

    def to_cryptography(self) -> CryptographyPublicKey:
        """The key as a ``cryptography`` public key object."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        curve = self.algorithm.curve
        try:
            if curve is None:
                return rsa.RSAPublicNumbers(
                    int.from_bytes(self.exponent, "big"), int.from_bytes(self.modulus, "big")
                ).public_key()
            return public_key_from_point(curve, self.point)
        except ValueError as e:
            from opcard.errors import UnsupportedKeyError

            raise UnsupportedKeyError(
                f"the card's {self.algorithm} public key is invalid: {e}"
            ) from e

    def spki_der(self) -> bytes:
        """SubjectPublicKeyInfo DER (CKA_PUBLIC_KEY_INFO)."""
        from cryptography.hazmat.primitives import serialization

        return self.to_cryptography().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def ec_point_der(self) -> bytes:
        """CKA_EC_POINT: the point as a DER OCTET STRING (what OpenSC and p11-kit clients
        expect)."""
        from asn1crypto.core import OctetString

        return bytes(OctetString(self.point).dump())
