"""tlslite-ng private keys whose signatures are made by the card.

tlslite-ng takes client keys as objects of its own key classes (``RSAKey``, ``ECDSAKey``,
``EdDSAKey`` from ``tlslite.utils``) and calls their ``sign`` / ``hashAndSign`` with the bytes
to sign. The classes here subclass those and send each signature to the card:

- :class:`CardTlsRsaKey` (TLS 1.2 only): tlslite hands over the DigestInfo of the transcript
  hash (``padding="pkcs1"``, ``hashAlg=None``); the hash is read from the DigestInfo's
  algorithm identifier (an exact DER match, not a guess from the length) and the digest goes to
  :meth:`opcard.session.DigestSigner.sign_digest` — one APDU. RSA-PSS is refused with the
  reason: OpenPGP cards pad PKCS#1 v1.5 only.
- :class:`CardTlsEcdsaKey`: tlslite hands over the digest and names its hash (``hashAlg``);
  :meth:`~opcard.session.DigestSigner.sign_digest_der` — one APDU — returns the DER
  signature TLS sends.
- :class:`CardTlsEd25519Key`: PureEdDSA signs the message itself (TLS 1.3: 64 spaces, the
  context string and the transcript hash, about 130 bytes; TLS 1.2: the whole handshake
  transcript) with :meth:`opcard.session.Session.sign` and ``CKM_EDDSA`` — one APDU when the
  message fits the card's command length, command chaining beyond.

Each key verifies nothing itself; its ``verify`` / ``hashAndVerify`` (tlslite checks every
signature it made before sending it) use the card's public key with ``cryptography``.
``signatures`` counts the card signatures the key made; ``last_hash`` names the hash of the
last one (``"intrinsic"`` for Ed25519).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from opcard.errors import UnsupportedMechanismError
from opcard.pkcs11 import KeyType, Mechanism
from opcard.pkcs11.mechanisms import (
    HASH_ALGORITHMS,
    NO_PSS_MESSAGE,
    hash_name_of,
    parse_digest_info,
)

# tlslite-ng 0.8 imports asyncore (deprecated since Python 3.6, warned about in 3.11) for an
# integration opcard does not use: keep that warning out of the applications' output.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from tlslite.utils.ecdsakey import ECDSAKey
    from tlslite.utils.eddsakey import EdDSAKey
    from tlslite.utils.rsakey import RSAKey

if TYPE_CHECKING:
    from apdu.openpgp.constants import KeySlot
    from opcard.session import DigestSigner, Session

__all__ = [
    "CardTlsEcdsaKey",
    "CardTlsEd25519Key",
    "CardTlsKey",
    "CardTlsRsaKey",
    "tls_private_key",
]


def _no_private_key() -> NoReturn:
    raise UnsupportedMechanismError("the private key lives on the card and cannot be exported")


class _CurveLength:
    """What tlslite reads as ``key.private_key.curve.baselen``.

    tlslite-ng 0.8 cuts the TLS 1.2 CertificateVerify digest to the curve's byte length before
    calling ``sign()`` (``KeyExchange.makeCertificateVerify``). The card does that cut itself
    (:func:`opcard.pkcs11.mechanisms.normalise_hash`) and the digest signer wants the whole digest
    of the hash it names, so the card key announces a length no digest exceeds (SHA-512's): the
    slice leaves the digest whole, and the signature is the same ECDSA signature.
    """

    __slots__ = ("baselen",)

    def __init__(self) -> None:
        self.baselen = max(h.digest_size for h in HASH_ALGORITHMS.values())


class _PrivatePart:
    __slots__ = ("curve",)

    def __init__(self) -> None:
        self.curve = _CurveLength()


class CardTlsRsaKey(RSAKey):  # type: ignore[misc]  # tlslite has no type hints
    """An RSA card key for tlslite-ng: PKCS#1 v1.5 signatures of a DigestInfo (TLS 1.2)."""

    def __init__(self, signer: DigestSigner, public: rsa.RSAPublicKey) -> None:
        # RSAKey.__init__ only raises NotImplementedError: set its attributes ourselves
        numbers = public.public_numbers()
        self.n = numbers.n
        self.e = numbers.e
        self.key_type = "rsa"
        self._key_hash = None
        self._signer = signer
        self._public = public
        self.signatures = 0
        self.last_hash: str | None = None

    def hasPrivateKey(self) -> bool:
        return True

    def sign(
        self,
        data: bytes | bytearray,
        padding: str = "pkcs1",
        hashAlg: str | None = None,
        saltLen: int | None = None,
    ) -> bytearray:
        if (padding or "pkcs1").lower() != "pkcs1":
            raise UnsupportedMechanismError(NO_PSS_MESSAGE)
        if hashAlg is None:  # tlslite passes the DigestInfo (TLS 1.2 CertificateVerify)
            name, digest = parse_digest_info(bytes(data))
        else:
            name, digest = hash_name_of(hashAlg), bytes(data)
        signature = self._signer.sign_digest(digest, name)
        self.signatures += 1
        self.last_hash = name
        return bytearray(signature)

    def verify(
        self,
        sigBytes: bytes | bytearray,
        data: bytes | bytearray,
        padding: str = "pkcs1",
        hashAlg: str | None = None,
        saltLen: int | None = None,
    ) -> bool:
        if (padding or "pkcs1").lower() != "pkcs1":
            return False
        if hashAlg is None:
            name, digest = parse_digest_info(bytes(data))
        else:
            name, digest = hash_name_of(hashAlg), bytes(data)
        try:
            self._public.verify(
                bytes(sigBytes),
                digest,
                _PKCS1v15(),
                utils.Prehashed(HASH_ALGORITHMS[name]),
            )
        except InvalidSignature:
            return False
        return True

    def _rawPrivateKeyOp(self, message: int) -> NoReturn:
        raise UnsupportedMechanismError(
            "OpenPGP cards do not compute raw RSA: they pad PKCS#1 v1.5 themselves"
        )

    def _rawPublicKeyOp(self, ciphertext: int) -> int:
        return pow(ciphertext, self.e, self.n)

    def acceptsPassword(self) -> bool:
        return False

    def write(self, password: str | None = None) -> NoReturn:
        _no_private_key()

    def __repr__(self) -> str:
        return f"<CardTlsRsaKey {self._signer.slot.name} {len(self)} bits>"


_PKCS1v15 = padding.PKCS1v15


class CardTlsEcdsaKey(ECDSAKey):  # type: ignore[misc]  # tlslite has no type hints
    """An ECDSA card key for tlslite-ng (TLS 1.2 and 1.3): one APDU per signature."""

    def __init__(self, signer: DigestSigner, public: ec.EllipticCurvePublicKey) -> None:
        # ECDSAKey.__init__ only raises NotImplementedError
        self.key_type = "ecdsa"
        self.curve_name = public.curve.name
        self.private_key = _PrivatePart()
        self._signer = signer
        self._public = public
        self.signatures = 0
        self.last_hash: str | None = None

    def __len__(self) -> int:
        return self._public.curve.key_size

    def hasPrivateKey(self) -> bool:
        return True

    def sign(
        self,
        data: bytes | bytearray,
        padding: str | None = None,
        hashAlg: str = "sha1",
        saltLen: int | None = None,
    ) -> bytearray:
        name = hash_name_of(hashAlg)  # named by tlslite: the hash of the signature scheme
        signature = self._signer.sign_digest_der(bytes(data), name)
        self.signatures += 1
        self.last_hash = name
        return bytearray(signature)

    def _sign(self, data: bytes | bytearray, hash_alg: str) -> bytearray:
        return self.sign(data, None, hash_alg)

    def verify(
        self,
        sigBytes: bytes | bytearray,
        data: bytes | bytearray,
        padding: str | None = None,
        hashAlg: str | None = None,
        saltLen: int | None = None,
    ) -> bool:
        if hashAlg is None:
            return False
        algorithm = HASH_ALGORITHMS[hash_name_of(hashAlg)]
        try:
            self._public.verify(bytes(sigBytes), bytes(data), ec.ECDSA(utils.Prehashed(algorithm)))
        except (InvalidSignature, ValueError):
            return False
        return True

    def _verify(self, signature: bytes | bytearray, hash_bytes: bytes | bytearray) -> bool:
        return False  # only reached without a hash name; tlslite always names it

    def acceptsPassword(self) -> bool:
        return False

    def write(self, password: str | None = None) -> NoReturn:
        _no_private_key()

    def __repr__(self) -> str:
        return f"<CardTlsEcdsaKey {self._signer.slot.name} {self.curve_name}>"


class CardTlsEd25519Key(EdDSAKey):  # type: ignore[misc]  # tlslite has no type hints
    """An Ed25519 card key for tlslite-ng (TLS 1.2 and 1.3): PureEdDSA of the message."""

    def __init__(self, session: Session, slot: KeySlot, public: ed25519.Ed25519PublicKey) -> None:
        self.key_type = "Ed25519"
        self.curve_name = "Ed25519"
        self._session = session
        self._slot = slot
        self._public = public
        self.signatures = 0
        self.last_hash: str | None = None

    def __len__(self) -> int:
        return 255

    def hasPrivateKey(self) -> bool:
        return True

    def _hashAndSign(self, data: bytes | bytearray) -> bytearray:
        signature = self._session.sign(self._slot, bytes(data), Mechanism.EDDSA)
        self.signatures += 1
        self.last_hash = "intrinsic"
        return bytearray(signature)

    def _hashAndVerify(self, signature: bytes | bytearray, data: bytes | bytearray) -> bool:
        try:
            self._public.verify(bytes(signature), bytes(data))
        except InvalidSignature:
            return False
        return True

    def acceptsPassword(self) -> bool:
        return False

    def write(self, password: str | None = None) -> NoReturn:
        _no_private_key()

    def __repr__(self) -> str:
        return f"<CardTlsEd25519Key {self._slot.name}>"


CardTlsKey = CardTlsRsaKey | CardTlsEcdsaKey | CardTlsEd25519Key


def tls_private_key(session: Session, slot: KeySlot) -> CardTlsKey:
    """The tlslite-ng key object for the key in ``slot`` (SIG or AUT).

    Needs the user PIN (the session must be logged in): the digest signer is made here, so a
    missing login raises :class:`~opcard.errors.NotLoggedInError` before any connection.
    """
    from opcard.errors import ObjectNotFoundError, UnsupportedKeyError

    public = session.card.public_key(slot)
    if public is None:
        raise ObjectNotFoundError(f"there is no key in the {slot.name} slot")
    key = public.to_cryptography()
    if public.key_type is KeyType.RSA:
        assert isinstance(key, rsa.RSAPublicKey)
        return CardTlsRsaKey(session.digest_signer(slot), key)
    if public.key_type is KeyType.EC:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return CardTlsEcdsaKey(session.digest_signer(slot), key)
    if public.key_type is KeyType.EC_EDWARDS:
        assert isinstance(key, ed25519.Ed25519PublicKey)
        _check_login(session, slot)
        return CardTlsEd25519Key(session, slot, key)
    raise UnsupportedKeyError(
        f"the {slot.name} key ({public.algorithm}) cannot sign: TLS client authentication "
        "needs an RSA, ECDSA or Ed25519 key"
    )


def _check_login(session: Session, slot: KeySlot) -> None:
    from opcard.errors import NotLoggedInError

    if not session.user_logged_in:
        raise NotLoggedInError(f"signing with the {slot.name} key needs the user PIN: log in first")
