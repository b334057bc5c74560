"""OpenPGP public keys and signatures for the card's keys (RFC 4880, RFC 6637, and EdDSA as
GnuPG writes it in v4 keys).

- :class:`PublicKeyPacket` / :func:`fingerprint_v4`: the v4 public-key packet of a card key and
  its fingerprint, which equals the fingerprint the card stores in C5 when the creation time is
  the card's generation time (CD) and, for ECDH keys, the KDF parameters are the ones the
  writer of C5 used (:func:`match_fingerprint` tries the known GnuPG variants).
- :func:`export_public_key`: a transferable public key (primary = SIG key with certify+sign,
  subkeys DEC (encrypt) and AUT (authenticate), one user ID) whose self-signatures are made by
  a **signer callback**, because the primary's secret key lives on the card.
- :func:`detached_signature_packet`: an OpenPGP detached signature over bytes or a file, same
  signer.
- :func:`armor` / :func:`dearmor`: ASCII armor (RFC 4880 §6).

The signer callback is ``sign(hash_name, digest) -> signature``: ``hash_name`` is ``"sha256"``
etc. and ``digest`` the OpenPGP hash of the signed data. It returns the card's raw answer: the
RSA signature (the caller makes the DigestInfo for PSO:CDS, e.g. with
:func:`opcard.pkcs11.mechanisms.digest_info`), ECDSA ``r‖s`` (the caller normalises the digest with
:func:`opcard.pkcs11.mechanisms.normalise_hash`), or EdDSA ``R‖S`` over the digest bytes (OpenPGP's
legacy EdDSA signs the hash as the message). Every signature is verified against the public key
before it is written (:class:`~opcard.errors.OpenPgpError` otherwise).

Packets are written in the new (RFC 4880 §4.2.2) format; the library does not use pgpy at run
time (pgpy imports ``imghdr``, gone in Python 3.13) — the tests use pgpy and GnuPG as judges.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, unique
from typing import BinaryIO, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from apdu.openpgp.constants import Curve, KeySlot
from opcard.errors import OpenPgpError, OpenPgpFormatError
from opcard.hashes import HASHES, hash_for_curve, unsupported_hash_message
from opcard.publickeys import CryptographyPublicKey, curve_of, public_key_from_point

__all__ = [
    "GNUPG_2_2_P384_KDF",
    "CompressionAlgorithm",
    "EcdhKdf",
    "HashAlgorithm",
    "KeyFlag",
    "PacketTag",
    "PublicKeyAlgorithm",
    "PublicKeyPacket",
    "SignatureType",
    "Signer",
    "SubpacketType",
    "SymmetricAlgorithm",
    "armor",
    "dearmor",
    "default_ecdh_kdf",
    "default_hash",
    "detached_signature_packet",
    "ecdh_kdf_candidates",
    "encode_packet",
    "export_public_key",
    "fingerprint_v4",
    "iter_packets",
    "match_fingerprint",
]

#: ``sign(hash_name, digest) -> raw signature`` (see the module docstring).
Signer: TypeAlias = Callable[[str, bytes], bytes]


# --- constants (RFC 4880 §9, RFC 6637) -----------------------------------------------------


@unique
class PacketTag(IntEnum):
    """RFC 4880 §4.3 packet tags used here."""

    SIGNATURE = 2
    PUBLIC_KEY = 6
    USER_ID = 13
    PUBLIC_SUBKEY = 14


@unique
class PublicKeyAlgorithm(IntEnum):
    """RFC 4880 §9.1, RFC 6637 §5; 22 is EdDSA as GnuPG writes it in v4 keys."""

    RSA = 1
    RSA_ENCRYPT_ONLY = 2
    RSA_SIGN_ONLY = 3
    ECDH = 18
    ECDSA = 19
    EDDSA = 22


@unique
class HashAlgorithm(IntEnum):
    """RFC 4880 §9.4."""

    SHA1 = 2
    SHA256 = 8
    SHA384 = 9
    SHA512 = 10
    SHA224 = 11


@unique
class SymmetricAlgorithm(IntEnum):
    """RFC 4880 §9.2 (the AES ciphers an ECDH KDF names)."""

    AES128 = 7
    AES192 = 8
    AES256 = 9


@unique
class CompressionAlgorithm(IntEnum):
    """RFC 4880 §9.3."""

    UNCOMPRESSED = 0
    ZIP = 1
    ZLIB = 2
    BZIP2 = 3


@unique
class SignatureType(IntEnum):
    """RFC 4880 §5.2.1."""

    BINARY = 0x00
    TEXT = 0x01
    POSITIVE_CERTIFICATION = 0x13
    SUBKEY_BINDING = 0x18
    PRIMARY_KEY_BINDING = 0x19


@unique
class SubpacketType(IntEnum):
    """RFC 4880 §5.2.3.1 (33 from RFC 9580)."""

    SIGNATURE_CREATION_TIME = 2
    KEY_EXPIRATION_TIME = 9
    PREFERRED_SYMMETRIC = 11
    ISSUER = 16
    PREFERRED_HASH = 21
    PREFERRED_COMPRESSION = 22
    KEY_SERVER_PREFERENCES = 23
    PRIMARY_USER_ID = 25
    KEY_FLAGS = 27
    FEATURES = 30
    EMBEDDED_SIGNATURE = 32
    ISSUER_FINGERPRINT = 33


@unique
class KeyFlag(IntFlag):
    """RFC 4880 §5.2.3.21, first octet."""

    CERTIFY = 0x01
    SIGN = 0x02
    ENCRYPT_COMMUNICATIONS = 0x04
    ENCRYPT_STORAGE = 0x08
    SPLIT = 0x10
    AUTHENTICATE = 0x20
    GROUP = 0x80


#: The algorithms a key on each curve is written with: EdDSA on Ed25519, ECDH on Curve25519,
#: ECDSA or ECDH on the others.
_WEIERSTRASS_ALGORITHMS = (PublicKeyAlgorithm.ECDSA, PublicKeyAlgorithm.ECDH)
_ALGORITHMS_ON = {
    Curve.ED25519: (PublicKeyAlgorithm.EDDSA,),
    Curve.X25519: (PublicKeyAlgorithm.ECDH,),
}
#: Hash name → RFC 4880 id, for the hashes opcard signs with (:data:`opcard.hashes.HASHES`).
_HASH_IDS = {name: HashAlgorithm[name.upper()] for name in HASHES}


# --- ECDH KDF parameters -------------------------------------------------------------------


@dataclass(frozen=True)
class EcdhKdf:
    """RFC 6637 §9 KDF parameters of an ECDH key: the KDF hash and the AES key-wrap cipher.

    They are part of the public-key packet, hence of the fingerprint.
    """

    hash: HashAlgorithm
    cipher: SymmetricAlgorithm

    def __bytes__(self) -> bytes:
        return bytes((3, 1, self.hash, self.cipher))


#: GnuPG 2.2 (and its scdaemon) write this for 384-bit curves; GnuPG ≥ 2.3 writes AES-256.
GNUPG_2_2_P384_KDF = EcdhKdf(HashAlgorithm.SHA384, SymmetricAlgorithm.AES192)


def default_ecdh_kdf(bits: int) -> EcdhKdf:
    """The KDF parameters GnuPG (≥ 2.3, g10/ecdh.c kek_params_table and scd/app-openpgp.c
    ecdh_params) gives an ECDH key on a curve of ``bits``: up to 256 bits (P-256, brainpool
    P256, secp256k1, Curve25519) SHA-256 + AES-128; up to 384 SHA-384 + AES-256; above
    (brainpoolP512r1, P-521) SHA-512 + AES-256."""
    if bits <= 256:
        return EcdhKdf(HashAlgorithm.SHA256, SymmetricAlgorithm.AES128)
    if bits <= 384:
        return EcdhKdf(HashAlgorithm.SHA384, SymmetricAlgorithm.AES256)
    return EcdhKdf(HashAlgorithm.SHA512, SymmetricAlgorithm.AES256)


def ecdh_kdf_candidates(bits: int) -> list[EcdhKdf]:
    """The KDF parameters a card's C5 fingerprint may have been computed with, most likely
    first: :func:`default_ecdh_kdf`, then GnuPG 2.2's SHA-384 + AES-192 for 384-bit curves."""
    candidates = [default_ecdh_kdf(bits)]
    if 256 < bits <= 384:
        candidates.append(GNUPG_2_2_P384_KDF)
    return candidates


# --- MPIs and packets ----------------------------------------------------------------------


def _mpi(value: int) -> bytes:
    """RFC 4880 §3.2 multiprecision integer."""
    return value.bit_length().to_bytes(2, "big") + value.to_bytes(
        (value.bit_length() + 7) // 8, "big"
    )


def _mpi_of_bytes(data: bytes) -> bytes:
    return _mpi(int.from_bytes(data, "big"))


def _read_mpi(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 2 > len(data):
        raise OpenPgpFormatError("truncated MPI")
    bits = int.from_bytes(data[offset : offset + 2], "big")
    end = offset + 2 + (bits + 7) // 8
    if end > len(data):
        raise OpenPgpFormatError("truncated MPI")
    return data[offset + 2 : end], end


def _new_length(length: int) -> bytes:
    if length < 192:
        return bytes((length,))
    if length < 8384:
        length -= 192
        return bytes(((length >> 8) + 192, length & 0xFF))
    return b"\xff" + length.to_bytes(4, "big")


def encode_packet(tag: int, body: bytes) -> bytes:
    """RFC 4880 §4.2.2 new-format packet."""
    return bytes((0xC0 | tag,)) + _new_length(len(body)) + body


def iter_packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """RFC 4880 §4.2 packets of ``data`` as ``(tag, body)``, old and new formats (no partial
    body lengths; they only occur in literal and encrypted data)."""
    i = 0
    n = len(data)
    while i < n:
        ctb = data[i]
        if not ctb & 0x80:
            raise OpenPgpFormatError(f"not a packet header at offset {i}")
        i += 1
        if ctb & 0x40:
            tag = ctb & 0x3F
            if i >= n:
                raise OpenPgpFormatError("truncated packet header")
            first = data[i]
            if first < 192:
                length, i = first, i + 1
            elif first < 224:
                if i + 1 >= n:
                    raise OpenPgpFormatError("truncated packet header")
                length, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
            elif first == 255:
                if i + 5 > n:
                    raise OpenPgpFormatError("truncated packet header")
                length, i = int.from_bytes(data[i + 1 : i + 5], "big"), i + 5
            else:
                raise OpenPgpFormatError("partial body lengths are not supported")
        else:
            tag = (ctb >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(ctb & 3)
            if size is None:
                length = n - i
            else:
                if i + size > n:
                    raise OpenPgpFormatError("truncated packet header")
                length, i = int.from_bytes(data[i : i + size], "big"), i + size
        if i + length > n:
            raise OpenPgpFormatError(f"packet {tag} is truncated")
        yield tag, data[i : i + length]
        i += length


# --- public-key packets --------------------------------------------------------------------


def _point(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


@dataclass(frozen=True, eq=False)
class PublicKeyPacket:
    """A v4 public-key packet body (RFC 4880 §5.5.2): version 4 ‖ creation time ‖ algorithm ‖
    key material. ``ecdh_kdf`` is set for ECDH keys only."""

    public_key: CryptographyPublicKey
    created: int
    algorithm: PublicKeyAlgorithm
    ecdh_kdf: EcdhKdf | None = None
    body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.created < 2**32:
            raise ValueError(f"creation time {self.created} is not a 32-bit Unix time")
        object.__setattr__(self, "body", self._encode())

    @classmethod
    def for_card_key(
        cls,
        public_key: CryptographyPublicKey,
        created: int,
        role: KeySlot | str,
        ecdh_kdf: EcdhKdf | None = None,
    ) -> PublicKeyPacket:
        """The packet GnuPG writes for a card key in slot ``role`` (``"sig"``, ``"dec"``,
        ``"aut"``): RSA keys as algorithm 1, NIST/brainpool/secp256k1 keys as ECDSA (SIG, AUT)
        or ECDH (DEC, with ``ecdh_kdf`` or :func:`default_ecdh_kdf`), Ed25519 as EdDSA (22),
        X25519 as ECDH on Curve25519."""
        slot = KeySlot.parse(role)
        if isinstance(public_key, rsa.RSAPublicKey):
            return cls(public_key, created, PublicKeyAlgorithm.RSA)
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            if slot is KeySlot.DEC:
                raise ValueError("an Ed25519 key cannot be the decryption key (use X25519)")
            return cls(public_key, created, PublicKeyAlgorithm.EDDSA)
        if isinstance(public_key, x25519.X25519PublicKey):
            if slot is not KeySlot.DEC:
                raise ValueError("an X25519 key can only be the decryption key")
            return cls(
                public_key, created, PublicKeyAlgorithm.ECDH, ecdh_kdf or default_ecdh_kdf(255)
            )
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            curve = curve_of(public_key)
            if curve is None:
                raise ValueError(f"OpenPGP has no OID for curve {public_key.curve.name}")
            if slot is KeySlot.DEC:
                kdf = ecdh_kdf or default_ecdh_kdf(curve.bits)
                return cls(public_key, created, PublicKeyAlgorithm.ECDH, kdf)
            return cls(public_key, created, PublicKeyAlgorithm.ECDSA)
        raise TypeError(f"unsupported public key type {type(public_key).__name__}")

    def _encode(self) -> bytes:
        key = self.public_key
        algorithm = self.algorithm
        head = b"\x04" + self.created.to_bytes(4, "big") + bytes((algorithm,))
        if algorithm in (
            PublicKeyAlgorithm.RSA,
            PublicKeyAlgorithm.RSA_ENCRYPT_ONLY,
            PublicKeyAlgorithm.RSA_SIGN_ONLY,
        ):
            if not isinstance(key, rsa.RSAPublicKey):
                raise TypeError("RSA algorithms need an RSA key")
            numbers = key.public_numbers()
            return head + _mpi(numbers.n) + _mpi(numbers.e)
        if isinstance(key, ed25519.Ed25519PublicKey):
            if algorithm is not PublicKeyAlgorithm.EDDSA:
                raise TypeError("an Ed25519 key is written as EdDSA (22)")
            curve = Curve.ED25519
            point = b"\x40" + key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif isinstance(key, x25519.X25519PublicKey):
            if algorithm is not PublicKeyAlgorithm.ECDH:
                raise TypeError("an X25519 key is written as ECDH (18)")
            curve = Curve.X25519
            point = b"\x40" + key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if algorithm not in (PublicKeyAlgorithm.ECDSA, PublicKeyAlgorithm.ECDH):
                raise TypeError("a NIST/brainpool key is written as ECDSA (19) or ECDH (18)")
            found = curve_of(key)
            if found is None:
                raise ValueError(f"OpenPGP has no OID for curve {key.curve.name}")
            curve = found
            point = _point(key)
        else:
            raise TypeError(f"unsupported public key type {type(key).__name__}")
        material = bytes((len(curve.oid),)) + curve.oid + _mpi_of_bytes(point)
        if algorithm is PublicKeyAlgorithm.ECDH:
            if self.ecdh_kdf is None:
                raise ValueError("an ECDH key needs its KDF parameters")
            material += bytes(self.ecdh_kdf)
        elif self.ecdh_kdf is not None:
            raise ValueError("only ECDH keys have KDF parameters")
        return head + material

    @classmethod
    def parse(cls, body: bytes) -> PublicKeyPacket:
        """Read a v4 public-key (or public-subkey) packet body."""
        if len(body) < 6 or body[0] != 4:
            raise OpenPgpFormatError("not a version 4 public-key packet")
        created = int.from_bytes(body[1:5], "big")
        try:
            algorithm = PublicKeyAlgorithm(body[5])
        except ValueError:
            raise OpenPgpFormatError(f"unsupported public-key algorithm {body[5]}") from None
        offset = 6
        kdf: EcdhKdf | None = None
        key: CryptographyPublicKey
        try:
            if algorithm in (
                PublicKeyAlgorithm.RSA,
                PublicKeyAlgorithm.RSA_ENCRYPT_ONLY,
                PublicKeyAlgorithm.RSA_SIGN_ONLY,
            ):
                n, offset = _read_mpi(body, offset)
                e, offset = _read_mpi(body, offset)
                key = rsa.RSAPublicNumbers(
                    int.from_bytes(e, "big"), int.from_bytes(n, "big")
                ).public_key()
            else:
                if offset >= len(body):
                    raise OpenPgpFormatError("truncated curve OID")
                oid_length = body[offset]
                oid = body[offset + 1 : offset + 1 + oid_length]
                curve = Curve.from_oid(oid)
                if curve is None:
                    raise OpenPgpFormatError(f"unsupported curve OID {oid.hex()}")
                point, offset = _read_mpi(body, offset + 1 + oid_length)
                name = curve.openpgp_name
                if curve.is_25519:
                    if len(point) != 33 or point[0] != 0x40:
                        raise OpenPgpFormatError(f"{name} point must be 0x40 ‖ 32 bytes")
                    point = point[1:]
                if algorithm not in _ALGORITHMS_ON.get(curve, _WEIERSTRASS_ALGORITHMS):
                    raise OpenPgpFormatError(f"{name} with algorithm {algorithm.name}")
                key = public_key_from_point(curve, point)
                if algorithm is PublicKeyAlgorithm.ECDH:
                    params = body[offset : offset + 4]
                    if len(params) != 4 or params[0] != 3 or params[1] != 1:
                        raise OpenPgpFormatError("malformed ECDH KDF parameters")
                    kdf = EcdhKdf(HashAlgorithm(params[2]), SymmetricAlgorithm(params[3]))
                    offset += 4
        except ValueError as e:
            if isinstance(e, OpenPgpFormatError):
                raise
            raise OpenPgpFormatError(f"invalid key material: {e}") from e
        if offset != len(body):
            raise OpenPgpFormatError("trailing bytes after the key material")
        packet = cls(key, created, algorithm, kdf)
        if packet.body != body:
            raise OpenPgpFormatError("key material is not in canonical form")
        return packet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKeyPacket):
            return NotImplemented
        return self.body == other.body

    def __hash__(self) -> int:
        return hash(self.body)

    @property
    def fingerprint(self) -> bytes:
        """RFC 4880 §12.2: SHA-1 of 0x99 ‖ two-octet length ‖ body (20 bytes)."""
        return hashlib.sha1(self._hash_prefix()).digest()

    @property
    def key_id(self) -> bytes:
        """The low 64 bits of the fingerprint."""
        return self.fingerprint[12:]

    @property
    def bits(self) -> int:
        """Modulus length (RSA) or curve size (the KDF table's measure) of the key."""
        if isinstance(self.public_key, rsa.RSAPublicKey):
            return self.public_key.key_size
        curve = curve_of(self.public_key)
        assert curve is not None  # __post_init__ encoded the key
        return curve.bits

    def packet(self, *, subkey: bool = False) -> bytes:
        """The whole packet: tag 6 (public key) or 14 (public subkey)."""
        return encode_packet(PacketTag.PUBLIC_SUBKEY if subkey else PacketTag.PUBLIC_KEY, self.body)

    def _hash_prefix(self) -> bytes:
        return b"\x99" + len(self.body).to_bytes(2, "big") + self.body


def fingerprint_v4(
    public_key: CryptographyPublicKey,
    created: int,
    role: KeySlot | str,
    ecdh_kdf: EcdhKdf | tuple[HashAlgorithm, SymmetricAlgorithm] | None = None,
) -> bytes:
    """The v4 fingerprint (20 bytes) of a card key created at ``created`` (Unix time) in slot
    ``role``; ``ecdh_kdf`` for ECDH keys defaults to :func:`default_ecdh_kdf`."""
    kdf = EcdhKdf(*ecdh_kdf) if isinstance(ecdh_kdf, tuple) else ecdh_kdf
    return PublicKeyPacket.for_card_key(public_key, created, role, kdf).fingerprint


def match_fingerprint(
    public_key: CryptographyPublicKey, created: int, role: KeySlot | str, fingerprint: bytes
) -> PublicKeyPacket | None:
    """The packet whose fingerprint is ``fingerprint`` (e.g. the card's C5 entry), trying the
    ECDH KDF variants of :func:`ecdh_kdf_candidates`; None when none matches."""
    packet = PublicKeyPacket.for_card_key(public_key, created, role)
    if packet.fingerprint == fingerprint:
        return packet
    if packet.algorithm is PublicKeyAlgorithm.ECDH:
        for kdf in ecdh_kdf_candidates(packet.bits)[1:]:
            other = PublicKeyPacket.for_card_key(public_key, created, role, kdf)
            if other.fingerprint == fingerprint:
                return other
    return None


# --- signatures ----------------------------------------------------------------------------


def default_hash(key: PublicKeyPacket) -> str:
    """SHA-256 for RSA and EdDSA; for ECDSA the hash matching the curve (SHA-384 for P-384,
    SHA-512 above), as GnuPG requires a hash at least as long as the curve order."""
    if key.algorithm is PublicKeyAlgorithm.ECDSA:
        return hash_for_curve(key.bits).name
    return "sha256"


def _subpacket(kind: SubpacketType, data: bytes) -> bytes:
    return _new_length(len(data) + 1) + bytes((kind,)) + data


def _issuer_subpackets(issuer: PublicKeyPacket) -> bytes:
    return _subpacket(SubpacketType.ISSUER_FINGERPRINT, b"\x04" + issuer.fingerprint)


def _raw_to_mpis(issuer: PublicKeyPacket, raw: bytes) -> bytes:
    if issuer.algorithm is PublicKeyAlgorithm.RSA:
        return _mpi_of_bytes(raw)
    if not raw or len(raw) % 2:
        raise OpenPgpError(f"the signer returned {len(raw)} bytes, not r‖s")
    half = len(raw) // 2
    return _mpi_of_bytes(raw[:half]) + _mpi_of_bytes(raw[half:])


def _verify(issuer: PublicKeyPacket, hash_name: str, digest: bytes, raw: bytes) -> None:
    key = issuer.public_key
    algorithm = HASHES[hash_name].algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, digest, padding.PKCS1v15(), Prehashed(algorithm))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            half = len(raw) // 2
            der = encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
            key.verify(der, digest, ec.ECDSA(Prehashed(algorithm)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, digest)
        else:
            raise OpenPgpError(f"{type(key).__name__} keys cannot sign")
    except (InvalidSignature, ValueError) as e:
        raise OpenPgpError(
            "the signature from the card does not verify with its public key "
            "(wrong key in the slot, or a card error)"
        ) from e


def _signature_packet(
    issuer: PublicKeyPacket,
    signer: Signer,
    sig_type: SignatureType,
    hash_name: str,
    hashed_subpackets: bytes,
    feed: Callable[[hashes.Hash], None],
    verify: bool,
) -> bytes:
    """RFC 4880 §5.2.3 v4 signature packet; ``feed`` hashes the signed data."""
    if issuer.algorithm not in (
        PublicKeyAlgorithm.RSA,
        PublicKeyAlgorithm.ECDSA,
        PublicKeyAlgorithm.EDDSA,
    ):
        raise ValueError(f"a {issuer.algorithm.name} key cannot sign")
    hash_id = _HASH_IDS.get(hash_name)
    if hash_id is None:
        raise ValueError(unsupported_hash_message(hash_name))
    algorithm = HASHES[hash_name].algorithm
    if issuer.algorithm is PublicKeyAlgorithm.ECDSA:
        needed = min(issuer.bits, 512)
        if algorithm.digest_size * 8 < needed:
            raise ValueError(f"an ECDSA key of {issuer.bits} bits needs a hash of {needed} bits")
    hashed = (
        bytes((4, sig_type, issuer.algorithm, hash_id))
        + len(hashed_subpackets).to_bytes(2, "big")
        + hashed_subpackets
    )
    hasher = hashes.Hash(algorithm)
    feed(hasher)
    hasher.update(hashed)
    hasher.update(b"\x04\xff" + len(hashed).to_bytes(4, "big"))
    digest = hasher.finalize()
    raw = signer(hash_name, digest)
    if not isinstance(raw, bytes):
        raise TypeError("the signer must return bytes")
    if verify:
        _verify(issuer, hash_name, digest, raw)
    unhashed = b""
    body = hashed + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2]
    body += _raw_to_mpis(issuer, raw)
    return encode_packet(PacketTag.SIGNATURE, body)


def _now(*keys: PublicKeyPacket) -> int:
    # a signature older than the key it certifies is refused by GnuPG
    return max(int(time.time()), *(k.created for k in keys))


def export_public_key(
    sig: PublicKeyPacket,
    user_id: str,
    signer: Signer,
    *,
    dec: PublicKeyPacket | None = None,
    aut: PublicKeyPacket | None = None,
    created: int | None = None,
    hash_name: str | None = None,
    verify: bool = True,
) -> bytes:
    """A transferable public key (RFC 4880 §11.1), binary; :func:`armor` it for text.

    Primary key ``sig`` (certify + sign) with the user ID ``user_id`` (positive certification
    with preferences: AES-256/192/128, SHA-512/384/256/224, ZLIB/BZIP2/ZIP, MDC feature,
    keyserver no-modify), then the subkeys ``dec`` (encrypt communications + storage) and
    ``aut`` (authenticate), each with a subkey binding signature. All signatures are made by
    ``signer`` with the SIG key; hashed subpackets carry the creation time ``created`` (default:
    now, never before a key's creation), the key flags, the issuer fingerprint and key ID.
    """
    if not user_id:
        raise ValueError("the user ID must not be empty")
    when = created if created is not None else _now(*[k for k in (sig, dec, aut) if k is not None])
    name = hash_name or default_hash(sig)
    primary = sig._hash_prefix()
    issuer = _issuer_subpackets(sig) + _subpacket(SubpacketType.ISSUER, sig.key_id)
    stamp = _subpacket(SubpacketType.SIGNATURE_CREATION_TIME, when.to_bytes(4, "big"))
    uid = user_id.encode("utf-8")

    def feed_uid(h: hashes.Hash) -> None:
        h.update(primary + b"\xb4" + len(uid).to_bytes(4, "big") + uid)

    preferences = (
        _subpacket(SubpacketType.KEY_FLAGS, bytes((KeyFlag.CERTIFY | KeyFlag.SIGN,)))
        + _subpacket(
            SubpacketType.PREFERRED_SYMMETRIC,
            bytes(
                (SymmetricAlgorithm.AES256, SymmetricAlgorithm.AES192, SymmetricAlgorithm.AES128)
            ),
        )
        + _subpacket(
            SubpacketType.PREFERRED_HASH,
            bytes(
                (
                    HashAlgorithm.SHA512,
                    HashAlgorithm.SHA384,
                    HashAlgorithm.SHA256,
                    HashAlgorithm.SHA224,
                )
            ),
        )
        + _subpacket(
            SubpacketType.PREFERRED_COMPRESSION,
            bytes(
                (CompressionAlgorithm.ZLIB, CompressionAlgorithm.BZIP2, CompressionAlgorithm.ZIP)
            ),
        )
        + _subpacket(SubpacketType.FEATURES, b"\x01")
        + _subpacket(SubpacketType.KEY_SERVER_PREFERENCES, b"\x80")
    )
    out = [
        sig.packet(),
        encode_packet(PacketTag.USER_ID, uid),
        _signature_packet(
            sig,
            signer,
            SignatureType.POSITIVE_CERTIFICATION,
            name,
            issuer + stamp + preferences,
            feed_uid,
            verify,
        ),
    ]
    for subkey, flags in (
        (dec, KeyFlag.ENCRYPT_COMMUNICATIONS | KeyFlag.ENCRYPT_STORAGE),
        (aut, KeyFlag.AUTHENTICATE),
    ):
        if subkey is None:
            continue
        if subkey.fingerprint == sig.fingerprint:
            raise ValueError("a subkey must differ from the primary key")
        if flags & KeyFlag.ENCRYPT_COMMUNICATIONS and subkey.algorithm not in (
            PublicKeyAlgorithm.RSA,
            PublicKeyAlgorithm.ECDH,
        ):
            raise ValueError(f"the decryption subkey cannot be {subkey.algorithm.name}")
        if flags & KeyFlag.AUTHENTICATE and subkey.algorithm is PublicKeyAlgorithm.ECDH:
            raise ValueError("the authentication subkey cannot be ECDH")
        sub_prefix = subkey._hash_prefix()

        def feed_subkey(h: hashes.Hash, sub_prefix: bytes = sub_prefix) -> None:
            h.update(primary + sub_prefix)

        out.append(subkey.packet(subkey=True))
        out.append(
            _signature_packet(
                sig,
                signer,
                SignatureType.SUBKEY_BINDING,
                name,
                issuer + stamp + _subpacket(SubpacketType.KEY_FLAGS, bytes((flags,))),
                feed_subkey,
                verify,
            )
        )
    return b"".join(out)


def detached_signature_packet(
    key: PublicKeyPacket,
    signer: Signer,
    data: bytes | BinaryIO,
    *,
    hash_name: str | None = None,
    created: int | None = None,
    verify: bool = True,
) -> bytes:
    """An OpenPGP detached binary signature (type 0x00) of ``data`` (bytes, or a binary file
    read to its end in 64 KiB blocks), binary; :func:`armor` it with ``"SIGNATURE"``."""
    when = created if created is not None else _now(key)
    name = hash_name or default_hash(key)

    def feed(h: hashes.Hash) -> None:
        if isinstance(data, bytes | bytearray | memoryview):
            h.update(bytes(data))
            return
        while block := data.read(65536):
            h.update(block)

    subpackets = (
        _issuer_subpackets(key)
        + _subpacket(SubpacketType.SIGNATURE_CREATION_TIME, when.to_bytes(4, "big"))
        + _subpacket(SubpacketType.ISSUER, key.key_id)
    )
    return _signature_packet(key, signer, SignatureType.BINARY, name, subpackets, feed, verify)


# --- ASCII armor (RFC 4880 §6) -------------------------------------------------------------


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(
    data: bytes, block: str = "PUBLIC KEY BLOCK", headers: Sequence[tuple[str, str]] = ()
) -> str:
    """ASCII armor: ``-----BEGIN PGP <block>-----``, headers, base64 in 64-column lines,
    ``=`` CRC-24, END line. ``block``: ``"PUBLIC KEY BLOCK"``, ``"SIGNATURE"``, ``"MESSAGE"``."""
    lines = [f"-----BEGIN PGP {block}-----"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append("")
    text = base64.b64encode(data).decode("ascii")
    lines += [text[i : i + 64] for i in range(0, len(text), 64)]
    lines.append("=" + base64.b64encode(_crc24(data).to_bytes(3, "big")).decode("ascii"))
    lines.append(f"-----END PGP {block}-----")
    return "\n".join(lines) + "\n"


def dearmor(text: str) -> bytes:
    """The data of the first armored block in ``text``; checks the CRC-24 when present."""
    lines = [line.strip() for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP "))
    except StopIteration:
        raise OpenPgpFormatError("no armored block") from None
    kind = lines[start][len("-----BEGIN PGP ") : -len("-----")]
    i = start + 1
    while i < len(lines) and lines[i]:  # armor headers up to the blank line
        if ": " not in lines[i]:
            break
        i += 1
    body: list[str] = []
    checksum: str | None = None
    for line in lines[i:]:
        if line == f"-----END PGP {kind}-----":
            break
        if line.startswith("=") and len(line) == 5:
            checksum = line[1:]
        elif line:
            body.append(line)
    else:
        raise OpenPgpFormatError("armored block without its END line")
    try:
        data = base64.b64decode("".join(body), validate=True)
        if checksum is not None and base64.b64decode(checksum, validate=True) != _crc24(
            data
        ).to_bytes(3, "big"):
            raise OpenPgpFormatError("armor checksum mismatch")
    except ValueError as e:
        if isinstance(e, OpenPgpFormatError):
            raise
        raise OpenPgpFormatError("invalid base64 in the armored block") from e
    return data
