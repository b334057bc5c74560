"""OpenPgpApplet through pcscd + vpcd + the emulated card (a representative subset of
tests/emulator/test_applet_inprocess.py), with the ``extended`` and ``short`` profiles.

Fails (never skips) in CI when pcscd / vpcd / pyscard are missing: the ``emulator`` fixture
of tests/conftest.py takes care of that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from apdu.channel import Channel
from apdu.errors import CardRemovedError, WrongDataError, WrongPinError
from apdu.openpgp import OpenPgpApplet, PinState
from apdu.openpgp.constants import Curve, KeySlot, KeyStatus, Pw, Secret
from apdu.openpgp.kdf import new_kdf_do
from apdu.openpgp.objects import EcAttributes, EcPublicKey
from apdu.transport.pcsc import PcscTransport

pytestmark = pytest.mark.pcsc

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "demo-rsa"
PW1, PW3 = "123456", "12345678"
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
PROFILES = ["extended", "short"]


@contextmanager
def connected(emu: Any) -> Iterator[OpenPgpApplet]:
    transport = PcscTransport.open(emu.reader)
    try:
        applet = OpenPgpApplet(Channel(transport))
        applet.start()
        yield applet
    finally:
        transport.close()


def demo_key(slot: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((DEMO / f"{slot}-key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def demo_cert(slot: str) -> bytes:
    cert = x509.load_pem_x509_certificate((DEMO / f"{slot}-cert.pem").read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def commands_sent(emu: Any) -> list[str]:
    return [e.text for e in emu.log_entries() if e.direction == ">"]


@pytest.mark.parametrize("profile", PROFILES)
def test_status_certificates_and_framing(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, personalize="demo")
    with connected(emu) as applet:
        after_start = len(commands_sent(emu))
        ard = applet.get_application_related_data()
        assert ard.aid.serial_hex == ("10000001" if profile == "extended" else "10000002")
        assert applet.channel.framing.extended is (profile == "extended")
        for slot, name in ((KeySlot.SIG, "sig"), (KeySlot.DEC, "dec"), (KeySlot.AUT, "aut")):
            assert ard.fingerprint(slot) is not None
            assert applet.get_certificate(slot) == demo_cert(name)
        holder = applet.get_cardholder_data()
        assert holder.name_text == "Jane Doe"
    # Once the framing is adopted, long answers come in one extended APDU or through
    # 61xx + GET RESPONSE (short profile). (start() reads 6E before it knows the framing.)
    later = commands_sent(emu)[after_start:]
    assert any(c.startswith("00C00000") for c in later) is (profile == "short")
    assert any(c.startswith("00CA7F2100") and len(c) == 14 for c in later) is (
        profile == "extended"
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_pins_signature_and_decipher(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, personalize="demo")
    with connected(emu) as applet:
        before = applet.get_pw_status().retries(Secret.PW1)
        with pytest.raises(WrongPinError) as info:
            applet.verify(Pw.PW1, "000000")
        assert info.value.retries == before - 1
        assert applet.get_pw_status().retries(Secret.PW1) == before - 1
        applet.verify(Pw.PW1, PW1)
        assert applet.pin_status(Pw.PW1) == PinState(True, None)
        # One signature is one APDU once PW1 is verified.
        start = len(commands_sent(emu))
        message = b"signed through pcscd"
        signature = applet.sign(SHA256_PREFIX + hashlib.sha256(message).digest())
        assert len(commands_sent(emu)) - start == 1
        demo_key("sig").public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        applet.verify(Pw.PW1_OTHER, PW1)
        auth = applet.internal_authenticate(SHA256_PREFIX + hashlib.sha256(b"tls").digest())
        demo_key("aut").public_key().verify(auth, b"tls", padding.PKCS1v15(), hashes.SHA256())
        ciphertext = demo_key("dec").public_key().encrypt(b"secret", padding.PKCS1v15())
        assert applet.decipher_rsa(ciphertext) == b"secret"


@pytest.mark.parametrize("profile", PROFILES)
def test_generate_certificate_kdf_and_reset(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, personalize="demo")
    with connected(emu) as applet:
        applet.verify(Pw.PW3, PW3)
        applet.set_algorithm_attributes(
            KeySlot.SIG, EcAttributes.for_curve(Curve.NIST_P256, KeySlot.SIG)
        )
        public = applet.generate_key(KeySlot.SIG)
        assert isinstance(public, EcPublicKey)
        ard = applet.get_application_related_data()
        assert ard.key_information is not None
        assert ard.key_information.status(KeySlot.SIG) is KeyStatus.GENERATED
        applet.verify(Pw.PW1, PW1)
        digest = hashlib.sha256(b"p256").digest()
        raw = applet.sign(digest)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public.point)
        key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        # A certificate longer than one short APDU (chaining on the short profile).
        blob = demo_cert("sig") * 2
        applet.put_certificate(KeySlot.SIG, blob, max_length=2048)
        assert applet.get_certificate(KeySlot.SIG) == blob
        # KDF on: the derived PIN works, the plain one is refused without using a try.
        applet.set_kdf(new_kdf_do(iteration_count=65536))
        applet.verify(Pw.PW1, PW1)
        plain = OpenPgpApplet(applet.channel)
        with pytest.raises(WrongDataError):
            plain.verify(Pw.PW1, PW1)
        assert applet.get_pw_status().retries(Secret.PW1) == 3
        applet.factory_reset()
        assert applet.get_certificate(KeySlot.SIG) == b""
        assert not applet.get_kdf().enabled
        applet.verify(Pw.PW3, PW3)


def test_card_removed_then_reconnects_and_reselects(emulator: Any) -> None:
    emu = emulator(profile="extended", personalize="demo")
    with connected(emu) as applet:
        applet.verify(Pw.PW1, PW1)
        emu.restart()
        with pytest.raises(CardRemovedError):
            applet.get_pw_status()
        assert applet.pin_status(Pw.PW1) == PinState(False, 3)  # re-selected, fresh card
        assert applet.get_certificate(KeySlot.AUT) == demo_cert("aut")
