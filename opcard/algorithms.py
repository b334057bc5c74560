"""Key algorithms as OpenPGP cards declare them: ``rsa2048``, ``nistp256``, ``ed25519``, …

:class:`KeyAlgorithm` (PKCS#11 key type, size, curve), read from a slot's algorithm attributes
(:func:`algorithm_of`), parsed from a name (:func:`parse_algorithm`) and turned back into
attributes (:func:`attributes_for`). This module does not import ``cryptography``, so that
naming a card's keys (:meth:`opcard.Card.algorithm`, ``opcard status``) does not load it;
:mod:`opcard.publickeys` (keys as ``cryptography`` objects) re-exports every name.
"""

from __future__ import annotations

from apdu.openpgp.constants import Curve, KeySlot
from apdu.openpgp.objects import AlgorithmAttributes, EcAttributes, RsaAttributes
from apdu.record import Record
from opcard.pkcs11.keytype import KeyType

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from opcard.errors import UnsupportedKeyError

__all__ = [
    "CRYPTOGRAPHY_CURVE_NAMES",
    "RSA_SIZES",
    "KeyAlgorithm",
    "algorithm_of",
    "attributes_for",
    "curve_algorithm",
    "parse_algorithm",
]


class KeyAlgorithm(Record):
    """What kind of key a slot holds: ``rsa2048``, ``nistp256``, ``ed25519``, …"""

    key_type: KeyType
    bits: int
    curve: Curve | None = None

    @property
    def name(self) -> str:
        if self.curve is None:
            return f"rsa{self.bits}"
        return self.curve.openpgp_name

    def __str__(self) -> str:
        return self.name


#: RSA modulus lengths OpenPGP cards take.
RSA_SIZES = (2048, 3072, 4096)

_KEY_TYPES = {Curve.ED25519: KeyType.EC_EDWARDS, Curve.X25519: KeyType.EC_MONTGOMERY}
#: ``cryptography``'s name of each short-Weierstrass card curve (``ec.SECP256R1().name``;
#: tests/unit check them against ``cryptography``), for :func:`parse_algorithm`.
CRYPTOGRAPHY_CURVE_NAMES: dict[Curve, str] = {
    Curve.NIST_P256: "secp256r1",
    Curve.NIST_P384: "secp384r1",
    Curve.NIST_P521: "secp521r1",
    Curve.SECP256K1: "secp256k1",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
}
#: The names :func:`parse_algorithm` takes: OpenPGP's, ``cryptography``'s and a few short ones.
_CURVE_BY_NAME: dict[str, Curve] = {
    **{name.lower(): curve for curve, name in CRYPTOGRAPHY_CURVE_NAMES.items()},
    **{curve.openpgp_name.lower(): curve for curve in Curve},
    "x25519": Curve.X25519,
    "p256": Curve.NIST_P256,
    "p384": Curve.NIST_P384,
    "p521": Curve.NIST_P521,
}


def curve_algorithm(curve: Curve) -> KeyAlgorithm:
    """The algorithm of a key on ``curve`` (its PKCS#11 key type and size)."""
    return KeyAlgorithm(_KEY_TYPES.get(curve, KeyType.EC), curve.bits, curve)


def algorithm_of(attributes: AlgorithmAttributes | None) -> KeyAlgorithm | None:
    """The key algorithm the slot's attributes declare (None when unknown or absent)."""
    if isinstance(attributes, RsaAttributes):
        return KeyAlgorithm(KeyType.RSA, attributes.n_bits)
    if isinstance(attributes, EcAttributes):
        curve = Curve.from_oid(attributes.oid)
        return None if curve is None else curve_algorithm(curve)
    return None


def parse_algorithm(name: str) -> KeyAlgorithm:
    """``rsa2048`` / ``rsa3072`` / ``rsa4096`` / ``nistp256`` / ``ed25519`` / ``cv25519`` …"""
    text = name.strip().lower()
    if text.startswith("rsa") and text[3:].isdigit():
        bits = int(text[3:])
        if bits not in RSA_SIZES:
            raise _unsupported(f"RSA-{bits}: OpenPGP cards take RSA 2048, 3072 or 4096")
        return KeyAlgorithm(KeyType.RSA, bits)
    curve = _CURVE_BY_NAME.get(text)
    if curve is None:
        known = ", ".join([*(f"rsa{bits}" for bits in RSA_SIZES), *(c.openpgp_name for c in Curve)])
        raise _unsupported(f"unknown algorithm {name!r} (one of: {known})")
    return curve_algorithm(curve)


def attributes_for(algorithm: KeyAlgorithm, *, decryption: bool) -> AlgorithmAttributes:
    """The algorithm attributes (C1-C3) that declare ``algorithm`` for a slot."""
    curve = algorithm.curve
    if curve is None:
        return RsaAttributes(algorithm.bits, 32)
    if curve is Curve.ED25519 and decryption:
        raise _unsupported("Ed25519 signs; the decryption slot takes cv25519 (X25519)")
    if curve is Curve.X25519 and not decryption:
        raise _unsupported("cv25519 (X25519) only decrypts; sign with ed25519")
    return EcAttributes.for_curve(curve, KeySlot.DEC if decryption else KeySlot.SIG)


def _unsupported(message: str) -> UnsupportedKeyError:
    # opcard.errors (and the CK_RV table) only for an error: opcard status names algorithms
    from opcard.errors import UnsupportedKeyError

    return UnsupportedKeyError(message)
