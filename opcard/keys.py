"""Card keys as ``cryptography`` private keys: ``sign()`` (and ``decrypt()``/``exchange()``)
go to the card, ``public_key()`` is the card's public key.

They subclass ``cryptography``'s key ABCs, so they work wherever a private key object does:
``CertificateSigningRequestBuilder.sign()``, ``CertificateBuilder.sign()``, TLS stacks that take
key objects. The private key never leaves the card: ``private_numbers()`` and
``private_bytes()`` raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, Self, TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519

from opcard.errors import MechanismError, UnsupportedMechanismError
from opcard.pkcs11 import KeyType, Mechanism
from opcard.pkcs11.mechanisms import ecdsa_raw_to_der, hash_name_of

if TYPE_CHECKING:
    from opcard.objects import PrivateKey

__all__ = [
    "CardEcPrivateKey",
    "CardEd25519PrivateKey",
    "CardPrivateKey",
    "CardRsaPrivateKey",
    "CardX25519PrivateKey",
    "card_private_key",
]


def _never_leaves() -> NoReturn:
    raise UnsupportedMechanismError("the private key lives on the card and cannot be exported")


def _digest(
    data: bytes | bytearray | memoryview, algorithm: hashes.HashAlgorithm | utils.Prehashed
) -> tuple[str, bytes]:
    if isinstance(algorithm, utils.Prehashed):
        name = hash_name_of(algorithm._algorithm)
        if len(data) != algorithm.digest_size:
            raise MechanismError(
                f"a prehashed {name} digest is {algorithm.digest_size} bytes, not {len(data)}"
            )
        return name, bytes(data)
    name = hash_name_of(algorithm)
    h = hashes.Hash(algorithm)
    h.update(data)
    return name, h.finalize()


class _OnCard:
    """What every card key shares: the card object behind it, a private half that cannot be
    exported, and copies that are the same key (``cryptography`` copies keys it is given)."""

    _key: PrivateKey

    @property
    def card_key(self) -> PrivateKey:
        return self._key

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _never_leaves()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self

    def __repr__(self) -> str:  # no I/O: only what the object already holds
        return f"<{type(self).__name__} {self._key.slot.name} slot>"


class CardRsaPrivateKey(_OnCard, rsa.RSAPrivateKey):
    """An RSA key on the card (PKCS#1 v1.5 signatures; PKCS#1 v1.5 decryption for DEC)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        public = key.public().to_cryptography()
        assert isinstance(public, rsa.RSAPublicKey)
        self._public: rsa.RSAPublicKey = public

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        padding: padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, _PKCS1v15):
            raise UnsupportedMechanismError(
                f"{padding.name}: OpenPGP cards sign with PKCS#1 v1.5 padding only (no PSS, so "
                "no TLS 1.3 with an RSA card key; use an ECC key)"
            )
        if isinstance(algorithm, utils.NoDigestInfo):  # the caller built the input itself
            return self._key.session.sign(self._key, bytes(data), Mechanism.RSA_PKCS)
        name, digest = _digest(data, algorithm)
        return self._key.session.sign_digest(self._key, digest, name)

    def decrypt(
        self, ciphertext: bytes | bytearray | memoryview, padding: padding.AsymmetricPadding
    ) -> bytes:
        if not isinstance(padding, _PKCS1v15):
            raise UnsupportedMechanismError(
                f"{padding.name}: OpenPGP cards decrypt PKCS#1 v1.5 only (no OAEP)"
            )
        return self._key.session.decrypt(self._key, bytes(ciphertext), Mechanism.RSA_PKCS)

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _never_leaves()


_PKCS1v15 = padding.PKCS1v15


class CardEcPrivateKey(_OnCard, ec.EllipticCurvePrivateKey):
    """An ECDSA (SIG/AUT) or ECDH (DEC) key on the card."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        public = key.public().to_cryptography()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        self._public: ec.EllipticCurvePublicKey = public

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedMechanismError("card EC keys sign with ECDSA")
        name, digest = _digest(data, signature_algorithm.algorithm)
        raw = self._key.session.sign_digest(self._key, digest, name)
        return ecdsa_raw_to_der(raw)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        point = peer_public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return self._key.session.derive(self._key, point)

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _never_leaves()


class CardEd25519PrivateKey(_OnCard, ed25519.Ed25519PrivateKey):
    """An Ed25519 key on the card (PureEdDSA: the card signs the whole message)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        public = key.public().to_cryptography()
        assert isinstance(public, ed25519.Ed25519PublicKey)
        self._public: ed25519.Ed25519PublicKey = public

    def sign(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._key.session.sign(self._key, bytes(data), Mechanism.EDDSA)

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def private_bytes_raw(self) -> bytes:
        _never_leaves()


class CardX25519PrivateKey(_OnCard, x25519.X25519PrivateKey):
    """An X25519 (cv25519) decryption key on the card: ``exchange()`` is ECDH on the card."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        public = key.public().to_cryptography()
        assert isinstance(public, x25519.X25519PublicKey)
        self._public: x25519.X25519PublicKey = public

    def exchange(self, peer_public_key: x25519.X25519PublicKey) -> bytes:
        point = peer_public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return self._key.session.derive(self._key, point)

    def public_key(self) -> x25519.X25519PublicKey:
        return self._public

    def private_bytes_raw(self) -> bytes:
        _never_leaves()


CardPrivateKey: TypeAlias = (
    CardRsaPrivateKey | CardEcPrivateKey | CardEd25519PrivateKey | CardX25519PrivateKey
)
#: The card keys that sign (SIG, AUT): what cryptography's certificate and CSR builders take.
CardSigningKey: TypeAlias = CardRsaPrivateKey | CardEcPrivateKey | CardEd25519PrivateKey


def card_private_key(key: PrivateKey) -> CardPrivateKey:
    """The ``cryptography`` private key object for a card :class:`~opcard.objects.PrivateKey`."""
    public = key.public()
    if public.key_type is KeyType.RSA:
        return CardRsaPrivateKey(key)
    if public.key_type is KeyType.EC:
        return CardEcPrivateKey(key)
    if public.key_type is KeyType.EC_EDWARDS:
        return CardEd25519PrivateKey(key)
    return CardX25519PrivateKey(key)
