"""Helpers for the object-layer tests: the rig (emulated card + opcard.Card) and the demo
material the emulated card is personalised with, read independently of opcard."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

import opcard
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.card_state import AUT, DEC, SIG
from fixtures.personalize import DEMO_TIME, demo_files, personalize

PW1 = "123456"
PW3 = "12345678"
SLOTS = ("sig", "dec", "aut")
#: CKA_ID byte per slot name
SLOT_ID = {"sig": 1, "dec": 2, "aut": 3}
#: emulator state index per slot name
EMU_INDEX = {"sig": SIG, "dec": DEC, "aut": AUT}

PublicKeyTypes = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
)
PrivateKeyTypes = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | x25519.X25519PrivateKey
)


@dataclass(frozen=True)
class SlotMaterial:
    private: PrivateKeyTypes
    certificate: x509.Certificate

    @property
    def public(self) -> PublicKeyTypes:
        return self.private.public_key()  # type: ignore[return-value]

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Demo:
    """A demo variant's keys and certificates, straight from the PEM files."""

    variant: str
    slots: dict[str, SlotMaterial]
    created: int = DEMO_TIME

    def __getitem__(self, slot: str) -> SlotMaterial:
        return self.slots[slot]


@functools.cache
def demo(variant: str) -> Demo:
    files = demo_files(variant)
    slots = {}
    for name in SLOTS:
        key = serialization.load_pem_private_key(files[f"{name}_key"].read_bytes(), None)
        cert = x509.load_pem_x509_certificate(files[f"{name}_cert"].read_bytes())
        slots[name] = SlotMaterial(key, cert)  # type: ignore[arg-type]
    return Demo(variant, slots)


@dataclass
class Rig:
    """An emulated card with an opcard.Card on it (in-process, loopback transport)."""

    emu: OpenPGPCard
    transport: LoopbackTransport
    card: opcard.Card
    variant: str | None
    profile: str
    #: every command APDU the card received, in order
    sent: list[bytes] = field(default_factory=list)

    @property
    def demo(self) -> Demo:
        assert self.variant is not None
        return demo(self.variant)

    @property
    def apdus(self) -> int:
        return self.card.channel.apdu_count

    @contextmanager
    def count(self) -> Iterator[list[int]]:
        """``with rig.count() as n: ...`` then ``n[0]`` is the number of APDUs sent inside."""
        box = [0]
        start = self.apdus
        try:
            yield box
        finally:
            box[0] = self.apdus - start

    def ins_since(self, start: int) -> list[int]:
        """INS bytes of the commands sent since ``len(rig.sent)`` was ``start``."""
        return [c[1] for c in self.sent[start:]]

    def tries(self) -> tuple[int, int, int]:
        """The emulator's retry counters (PW1, reset code, PW3), read from its state."""
        s = self.emu.state
        return s.pw1_tries, s.rc_tries, s.pw3_tries

    def reopen(self) -> opcard.Card:
        """A second opcard.Card on the same emulated card (a fresh card session)."""
        return opcard.Card(LoopbackTransport(self.emu.transmit, self.emu.atr, "loopback-2"))


def make_rig(profile: str = "extended", variant: str | None = "demo-ecc", **kw: Any) -> Rig:
    emu = OpenPGPCard(profile, **kw)
    if variant is not None:
        personalize(emu, variant)
    emu.power_on()
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return emu.transmit(apdu)

    transport = LoopbackTransport(transmit, emu.atr, on_power=emu.reset)
    card = opcard.Card(transport)
    return Rig(emu, transport, card, variant, profile, sent)


# --- verification with cryptography -----------------------------------------------------------

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def digest(hash_name: str, data: bytes) -> bytes:
    h = hashes.Hash(HASHES[hash_name]())
    h.update(data)
    return h.finalize()


def raw_to_der(rs: bytes) -> bytes:
    half = len(rs) // 2
    return encode_dss_signature(int.from_bytes(rs[:half], "big"), int.from_bytes(rs[half:], "big"))


def verify_digest(public: PublicKeyTypes, signature: bytes, hash_name: str, dig: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` (card format: RSA bytes, ECDSA r‖s) signs
    the digest ``dig`` made with ``hash_name``."""
    algorithm = Prehashed(HASHES[hash_name]())
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, dig, padding.PKCS1v15(), algorithm)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(raw_to_der(signature), dig, ec.ECDSA(algorithm))
    else:
        raise AssertionError(f"{type(public).__name__} does not sign digests")


def verifies(public: PublicKeyTypes, signature: bytes, hash_name: str, dig: bytes) -> bool:
    try:
        verify_digest(public, signature, hash_name, dig)
    except InvalidSignature:
        return False
    return True
