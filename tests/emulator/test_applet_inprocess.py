"""Every OpenPgpApplet command against the emulated card, in-process.

The stack is the real one — ``OpenPgpApplet`` → ``Channel`` → ``LoopbackTransport`` →
``fixtures.card.OpenPGPCard`` — with the ``extended`` profile (YubiKey-5-like) and the
``short`` one (Gnuk-like: short APDUs, chaining, 61xx); some tests also run the ``quirky`` and
``small-cert`` profiles. Signatures are verified with ``cryptography`` against the demo keys
in ``fixtures/demo``; PIN counters are read before and after every failure.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from apdu.channel import Channel
from apdu.errors import (
    CardRemovedError,
    NotEnoughMemoryError,
    PinBlockedError,
    SecurityStatusNotSatisfiedError,
    WrongDataError,
    WrongPinError,
)
from apdu.openpgp import OpenPgpApplet, PinState
from apdu.openpgp.constants import Curve, Do, KeySlot, KeyStatus, Pw, RsaImportFormat, Secret
from apdu.openpgp.kdf import new_kdf_do
from apdu.openpgp.keys import ec_import_template, rsa_import_template
from apdu.openpgp.objects import (
    ApplicationRelatedData,
    EcAttributes,
    EcPublicKey,
    PublicKeyMaterial,
    RsaAttributes,
    RsaPublicKey,
    Uif,
)
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
PW1, PW3 = "123456", "12345678"
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
PROFILES = ["extended", "short"]


@dataclass
class Rig:
    card: OpenPGPCard
    transport: LoopbackTransport
    channel: Channel
    applet: OpenPgpApplet
    ard: ApplicationRelatedData


def make_rig(profile: str, variant: str | None = "demo-rsa") -> Rig:
    card = OpenPGPCard(profile)
    if variant:
        personalize(card, variant)
    card.power_on()
    transport = LoopbackTransport(card.transmit, card.atr, on_power=card.reset)
    channel = Channel(transport)
    applet = OpenPgpApplet(channel)
    ard = applet.start()
    return Rig(card, transport, channel, applet, ard)


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig(profile: str) -> Iterator[Rig]:
    yield make_rig(profile)


def demo_private(variant: str, slot: str) -> object:
    return serialization.load_pem_private_key(
        (DEMO / variant / f"{slot}-key.pem").read_bytes(), None
    )


def demo_cert(variant: str, slot: str) -> bytes:
    pem = (DEMO / variant / f"{slot}-cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def retries(applet: OpenPgpApplet, secret: Secret) -> int:
    return applet.get_pw_status().retries(secret)


def matches(public: PublicKeyMaterial, key: object) -> bool:
    """Whether the card's public key template is ``key``'s public key."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return isinstance(public, RsaPublicKey) and (public.n, public.e) == (numbers.n, numbers.e)
    assert isinstance(public, EcPublicKey)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    return public.point == raw


# --- application, data objects, framing ------------------------------------------------------


def test_start_reads_the_card_and_adopts_its_framing(rig: Rig, profile: str) -> None:
    ard = rig.ard
    assert ard.aid.manufacturer == rig.card.profile.manufacturer
    assert ard.aid.serial == rig.card.serial and ard.aid.version == (3, 4)
    framing = rig.channel.framing
    if profile == "extended":
        assert framing.extended and framing.max_command == 0x800 and framing.max_response == 0x800
    else:
        assert not framing.extended and framing.chaining and framing.max_command == 255
    for slot in KeySlot:
        assert ard.fingerprint(slot) is not None
        assert ard.generation_time(slot) == 1748736000
        assert ard.key_information is not None
        assert ard.key_information.status(slot) is KeyStatus.IMPORTED
    assert ard.pw_status is not None
    assert ard.pw_status.pw1_valid_for_several_signatures is (profile == "extended")


@pytest.mark.parametrize("profile", ["quirky", "small-cert"])
def test_start_on_other_profiles(profile: str) -> None:
    rig = make_rig(profile)
    assert rig.ard.fingerprints is not None
    assert rig.ard.extended_length_info is not None
    info = rig.applet.get_algorithm_information()
    assert RsaAttributes(2048, 32, RsaImportFormat.STANDARD) in info.for_slot(KeySlot.SIG)
    assert rig.applet.get_certificate(KeySlot.SIG) == demo_cert("demo-rsa", "sig")


def test_data_objects(rig: Rig) -> None:
    applet = rig.applet
    holder = applet.get_cardholder_data()
    assert holder.name_text == "Jane Doe" and holder.language == b"en"
    assert applet.get_data(Do.URL) == b"https://example.invalid/opcard-demo.asc"
    assert applet.get_data(Do.LOGIN_DATA) == b"jdoe"
    assert applet.get_data(Do.PRIVATE_USE_1) == b"opcard demo private DO 1"
    with pytest.raises(SecurityStatusNotSatisfiedError, match="PUT DATA 5F50"):
        applet.put_data(Do.URL, b"https://example.invalid/new")
    applet.verify(Pw.PW3, PW3)
    applet.put_data(Do.URL, b"https://example.invalid/new")
    applet.put_data(Do.NAME, b"Roe<<Richard")
    assert applet.get_data(Do.URL) == b"https://example.invalid/new"
    assert applet.get_cardholder_data().name_text == "Richard Roe"
    applet.set_uif(KeySlot.SIG, Uif(1))
    applet.set_fingerprint(KeySlot.AUT, bytes(range(20)))
    applet.set_ca_fingerprint(KeySlot.DEC, b"\x42" * 20)
    applet.set_generation_time(KeySlot.AUT, 0x5F5E1000)
    ard = applet.get_application_related_data()
    assert ard.uif(KeySlot.SIG) == Uif(1, 0x20)
    assert ard.fingerprint(KeySlot.AUT) == bytes(range(20))
    assert ard.ca_fingerprints is not None and ard.ca_fingerprints.entries[1] == b"\x42" * 20
    assert ard.generation_time(KeySlot.AUT) == 0x5F5E1000
    applet.set_pw1_policy(several_signatures=False)
    status = applet.get_pw_status()
    assert not status.pw1_valid_for_several_signatures


def test_get_challenge(rig: Rig) -> None:
    a, b = rig.applet.get_challenge(32), rig.applet.get_challenge(32)
    assert len(a) == len(b) == 32 and a != b


# --- PINs ------------------------------------------------------------------------------------


def test_verify_and_status(rig: Rig) -> None:
    applet = rig.applet
    assert applet.pin_status(Pw.PW1) == PinState(False, 3)
    applet.verify(Pw.PW1, PW1)
    assert applet.pin_status(Pw.PW1) == PinState(True, None)
    assert applet.pin_status(Pw.PW1_OTHER).verified is False
    applet.verify(Pw.PW1_OTHER, PW1.encode())
    applet.unverify(Pw.PW1)
    assert applet.pin_status(Pw.PW1).verified is False
    assert applet.pin_status(Pw.PW1_OTHER).verified is True


@pytest.mark.parametrize(("pw", "secret"), [(Pw.PW1, Secret.PW1), (Pw.PW3, Secret.PW3)])
def test_wrong_pin_burns_exactly_one_try(rig: Rig, pw: Pw, secret: Secret) -> None:
    applet = rig.applet
    before = retries(applet, secret)
    sent = rig.channel.apdu_count
    with pytest.raises(WrongPinError) as info:
        applet.verify(pw, "99999999")
    assert rig.channel.apdu_count == sent + 1  # no retry, no extra read
    assert info.value.retries == before - 1
    assert "99999999" not in str(info.value) and "3939" not in str(info.value)
    assert retries(applet, secret) == before - 1
    applet.verify(pw, PW1 if pw is Pw.PW1 else PW3)  # a right PIN restores the counter
    assert retries(applet, secret) == 3


def test_blocked_pin_stays_blocked_and_is_reset_by_pw3(rig: Rig) -> None:
    applet = rig.applet
    for left in (2, 1, 0):
        with pytest.raises(WrongPinError) as info:
            applet.verify(Pw.PW1, "000000")
        assert info.value.retries == left
    with pytest.raises(PinBlockedError):
        applet.verify(Pw.PW1, PW1)
    assert applet.pin_status(Pw.PW1).blocked
    applet.verify(Pw.PW3, PW3)
    applet.reset_retry_counter("654321")
    assert retries(applet, Secret.PW1) == 3
    applet.verify(Pw.PW1, "654321")


def test_change_pins_and_reset_code(rig: Rig) -> None:
    applet = rig.applet
    applet.change_pin(Pw.PW1, PW1, "abcdef")
    with pytest.raises(WrongPinError):
        applet.verify(Pw.PW1, PW1)
    applet.verify(Pw.PW1, "abcdef")
    applet.change_pin(Pw.PW3, PW3, "admin-pin-2")
    applet.verify(Pw.PW3, "admin-pin-2")
    applet.set_reset_code("resetcode1")
    assert retries(applet, Secret.RESET_CODE) == 3
    with pytest.raises(WrongPinError):
        applet.reset_retry_counter("123123", reset_code="resetcode0")
    assert retries(applet, Secret.RESET_CODE) == 2
    applet.reset_retry_counter("123123", reset_code="resetcode1")
    applet.verify(Pw.PW1, "123123")
    applet.set_reset_code(None)
    assert retries(applet, Secret.RESET_CODE) == 0


# --- private key operations with the demo keys -----------------------------------------------


def _sign_and_check(applet: OpenPgpApplet, variant: str, slot: KeySlot, message: bytes) -> None:
    key = demo_private(variant, "sig" if slot is KeySlot.SIG else "aut")
    digest = hashlib.sha256(message).digest()
    op = applet.sign if slot is KeySlot.SIG else applet.internal_authenticate
    if isinstance(key, rsa.RSAPrivateKey):
        signature = op(SHA256_PREFIX + digest)
        key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        raw = op(digest)
        half = len(raw) // 2
        der = encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
        key.public_key().verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        key.public_key().verify(op(message), message)


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc", "demo-25519"])
def test_sign_authenticate_decipher_with_demo_keys(profile: str, variant: str) -> None:
    rig = make_rig(profile, variant)
    applet = rig.applet
    for slot, name in ((KeySlot.SIG, "sig"), (KeySlot.DEC, "dec"), (KeySlot.AUT, "aut")):
        assert matches(applet.read_public_key(slot), demo_private(variant, name))
    with pytest.raises(SecurityStatusNotSatisfiedError, match="PSO:CDS"):
        applet.sign(SHA256_PREFIX + bytes(32))
    counter = applet.get_security_support_template().signature_counter
    for i in range(2):
        applet.verify(Pw.PW1, PW1)  # the short profile's PW1 is valid for one signature
        _sign_and_check(applet, variant, KeySlot.SIG, b"message %d" % i)
    assert applet.get_security_support_template().signature_counter == counter + 2
    applet.verify(Pw.PW1_OTHER, PW1)
    _sign_and_check(applet, variant, KeySlot.AUT, b"TLS transcript")
    dec = demo_private(variant, "dec")
    if isinstance(dec, rsa.RSAPrivateKey):
        ciphertext = dec.public_key().encrypt(b"session key", padding.PKCS1v15())
        assert applet.decipher_rsa(ciphertext) == b"session key"
    elif isinstance(dec, ec.EllipticCurvePrivateKey):
        peer = ec.generate_private_key(dec.curve)
        point = peer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert applet.decipher_ecdh(point) == peer.exchange(ec.ECDH(), dec.public_key())
    else:
        assert isinstance(dec, x25519.X25519PrivateKey)
        xpeer = x25519.X25519PrivateKey.generate()
        point = xpeer.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        assert applet.decipher_ecdh(point) == xpeer.exchange(dec.public_key())


def test_pw1_single_use_on_the_short_profile() -> None:
    rig = make_rig("short")
    rig.applet.verify(Pw.PW1, PW1)
    rig.applet.sign(SHA256_PREFIX + bytes(32))
    with pytest.raises(SecurityStatusNotSatisfiedError):
        rig.applet.sign(SHA256_PREFIX + bytes(32))


def test_manage_security_environment_swaps_dec_and_aut(rig: Rig) -> None:
    applet = rig.applet
    applet.verify(Pw.PW1_OTHER, PW1)
    aut = demo_private("demo-rsa", "aut")
    assert isinstance(aut, rsa.RSAPrivateKey)
    ciphertext = aut.public_key().encrypt(b"for the AUT key", padding.PKCS1v15())
    with pytest.raises(WrongDataError):
        applet.decipher_rsa(ciphertext)  # the DEC key cannot unpad it
    applet.manage_security_environment(KeySlot.DEC, KeySlot.AUT)
    assert applet.decipher_rsa(ciphertext) == b"for the AUT key"
    applet.manage_security_environment(KeySlot.DEC, KeySlot.DEC)


# --- certificates ----------------------------------------------------------------------------


def test_certificates_read_walk_write_delete(rig: Rig) -> None:
    applet = rig.applet
    for slot, name in ((KeySlot.SIG, "sig"), (KeySlot.DEC, "dec"), (KeySlot.AUT, "aut")):
        assert applet.get_certificate(slot) == demo_cert("demo-rsa", name)
    assert applet.select_data_length_byte is False  # the emulator follows the spec
    # GET DATA 7F21 reads occurrence 0 (AUT): the applet left the card there.
    assert applet.get_data(Do.CARDHOLDER_CERTIFICATE) == demo_cert("demo-rsa", "aut")
    assert applet.get_next_certificate() == demo_cert("demo-rsa", "dec")
    assert applet.get_next_certificate() == demo_cert("demo-rsa", "sig")
    with pytest.raises(SecurityStatusNotSatisfiedError, match="PUT DATA 7F21"):
        applet.put_certificate(KeySlot.DEC, b"\x30\x00")
    applet.verify(Pw.PW3, PW3)
    new = demo_cert("demo-ecc", "dec")
    applet.put_certificate(KeySlot.DEC, new)
    assert applet.get_certificate(KeySlot.DEC) == new
    assert applet.get_certificate(KeySlot.SIG) == demo_cert("demo-rsa", "sig")
    applet.put_certificate(KeySlot.DEC, b"")
    assert applet.get_certificate(KeySlot.DEC) == b""


@pytest.mark.parametrize("profile", ["extended", "short", "small-cert"])
def test_certificate_size_limit(profile: str) -> None:
    rig = make_rig(profile)
    caps = rig.ard.extended_capabilities
    assert caps is not None
    limit = caps.max_certificate_length
    assert limit == rig.card.max_cert_size
    rig.applet.verify(Pw.PW3, PW3)
    blob = os.urandom(limit)
    rig.applet.put_certificate(KeySlot.AUT, blob, max_length=limit)
    assert rig.applet.get_certificate(KeySlot.AUT) == blob
    sent = rig.channel.apdu_count
    with pytest.raises(ValueError, match=str(limit)):
        rig.applet.put_certificate(KeySlot.AUT, blob + b"!", max_length=limit)
    assert rig.channel.apdu_count == sent
    with pytest.raises(NotEnoughMemoryError, match="7F21"):
        rig.applet.put_certificate(KeySlot.AUT, blob + b"!")
    assert rig.applet.get_certificate(KeySlot.AUT) == blob


# --- key generation and import ---------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes",
    [
        RsaAttributes(2048, 32, RsaImportFormat.STANDARD),
        EcAttributes.for_curve(Curve.NIST_P256, KeySlot.SIG),
        EcAttributes.for_curve(Curve.ED25519, KeySlot.SIG),
        EcAttributes.for_curve(Curve.BRAINPOOL_P384R1, KeySlot.SIG),
    ],
    ids=str,
)
def test_generate_key_and_sign(rig: Rig, attributes: RsaAttributes | EcAttributes) -> None:
    applet = rig.applet
    with pytest.raises(SecurityStatusNotSatisfiedError, match="GENERATE"):
        applet.generate_key(KeySlot.SIG)
    applet.verify(Pw.PW3, PW3)
    applet.set_algorithm_attributes(KeySlot.SIG, attributes)
    public = applet.generate_key(KeySlot.SIG)
    assert applet.read_public_key(KeySlot.SIG) == public
    ard = applet.get_application_related_data()
    assert ard.attributes(KeySlot.SIG) == attributes
    assert ard.key_information is not None
    assert ard.key_information.status(KeySlot.SIG) is KeyStatus.GENERATED
    applet.verify(Pw.PW1, PW1)
    message = b"signed by a generated key"
    digest = hashlib.sha256(message).digest()
    if isinstance(public, RsaPublicKey):
        sig = applet.sign(SHA256_PREFIX + digest)
        key = rsa.RSAPublicNumbers(public.e, public.n).public_key()
        key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(attributes, EcAttributes) and attributes.curve is Curve.ED25519:
        ed25519.Ed25519PublicKey.from_public_bytes(public.point).verify(
            applet.sign(message), message
        )
    else:
        assert isinstance(attributes, EcAttributes) and attributes.curve is not None
        curve = (
            ec.BrainpoolP384R1() if attributes.curve is Curve.BRAINPOOL_P384R1 else (ec.SECP256R1())
        )
        raw = applet.sign(digest)
        half = len(raw) // 2
        der = encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
        ec.EllipticCurvePublicKey.from_encoded_point(curve, public.point).verify(
            der, digest, ec.ECDSA(Prehashed(hashes.SHA256()))
        )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize("fmt", list(RsaImportFormat))
def test_import_rsa(rig: Rig, rsa_key: rsa.RSAPrivateKey, fmt: RsaImportFormat) -> None:
    applet = rig.applet
    applet.verify(Pw.PW3, PW3)
    attributes = RsaAttributes(2048, 32, fmt)
    applet.set_algorithm_attributes(KeySlot.AUT, attributes)
    numbers = rsa_key.private_numbers()
    template = rsa_import_template(
        KeySlot.AUT, attributes, e=numbers.public_numbers.e, p=numbers.p, q=numbers.q
    )
    applet.import_key(template)
    assert matches(applet.read_public_key(KeySlot.AUT), rsa_key)
    applet.verify(Pw.PW1_OTHER, PW1)
    digest_info = SHA256_PREFIX + hashlib.sha256(b"imported").digest()
    signature = applet.internal_authenticate(digest_info)
    rsa_key.public_key().verify(signature, b"imported", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("with_public", [False, True])
def test_import_ecc(rig: Rig, with_public: bool) -> None:
    applet = rig.applet
    applet.verify(Pw.PW3, PW3)
    key = ec.generate_private_key(ec.SECP384R1())
    attributes = EcAttributes.for_curve(Curve.NIST_P384, KeySlot.SIG)
    applet.set_algorithm_attributes(KeySlot.SIG, attributes)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    template = ec_import_template(
        KeySlot.SIG,
        Curve.NIST_P384,
        key.private_numbers().private_value,
        public=point if with_public else None,
    )
    applet.import_key(template)
    assert matches(applet.read_public_key(KeySlot.SIG), key)
    applet.verify(Pw.PW1, PW1)
    digest = hashlib.sha384(b"imported ecc").digest()
    raw = applet.sign(digest)
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key.public_key().verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def test_import_25519(rig: Rig) -> None:
    applet = rig.applet
    applet.verify(Pw.PW3, PW3)
    xkey = x25519.X25519PrivateKey.generate()
    raw = xkey.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    applet.set_algorithm_attributes(KeySlot.DEC, EcAttributes.for_curve(Curve.X25519, KeySlot.DEC))
    applet.import_key(ec_import_template(KeySlot.DEC, Curve.X25519, raw))
    assert matches(applet.read_public_key(KeySlot.DEC), xkey)
    applet.verify(Pw.PW1_OTHER, PW1)
    peer = x25519.X25519PrivateKey.generate()
    point = peer.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert applet.decipher_ecdh(point) == peer.exchange(xkey.public_key())
    edkey = ed25519.Ed25519PrivateKey.generate()
    seed = edkey.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    applet.set_algorithm_attributes(KeySlot.AUT, EcAttributes.for_curve(Curve.ED25519, KeySlot.AUT))
    applet.import_key(ec_import_template(KeySlot.AUT, Curve.ED25519, seed))
    edkey.public_key().verify(applet.internal_authenticate(b"hello"), b"hello")


# --- KDF -------------------------------------------------------------------------------------


def test_kdf_on_then_verify_with_the_derived_pin(rig: Rig) -> None:
    applet = rig.applet
    applet.verify(Pw.PW3, PW3)
    kdf = new_kdf_do(iteration_count=65536)
    applet.set_kdf(kdf)
    assert applet.kdf == kdf
    assert applet.get_kdf() == kdf
    applet.verify(Pw.PW1, PW1)  # derived
    applet.verify(Pw.PW3, PW3)
    # The plain PIN now has the wrong length: refused, and no try is used.
    plain = OpenPgpApplet(rig.channel)
    before = retries(applet, Secret.PW1)
    with pytest.raises(WrongDataError):
        plain.verify(Pw.PW1, PW1)
    assert retries(applet, Secret.PW1) == before
    with pytest.raises(WrongPinError):
        applet.verify(Pw.PW1, "654321")
    assert retries(applet, Secret.PW1) == before - 1
    applet.change_pin(Pw.PW1, PW1, "kdf-pin")
    applet.verify(Pw.PW1_OTHER, "kdf-pin")
    fresh = OpenPgpApplet(rig.channel)
    fresh.get_kdf(adopt=True)
    fresh.verify(Pw.PW1, "kdf-pin")
    # Factory reset with KDF on: the blocking PINs must have the derived length.
    applet.factory_reset()
    assert applet.kdf is None
    assert not applet.get_kdf().enabled
    applet.verify(Pw.PW1, PW1)


# --- factory reset and reconnect -------------------------------------------------------------


def test_factory_reset(rig: Rig) -> None:
    applet = rig.applet
    applet.change_pin(Pw.PW1, PW1, "changed1")
    applet.factory_reset()
    ard = applet.get_application_related_data()
    for slot in KeySlot:
        assert ard.fingerprint(slot) is None
        assert ard.key_information is not None
        assert ard.key_information.status(slot) is KeyStatus.NONE
        assert applet.get_certificate(slot) == b""
    assert applet.get_cardholder_data().name_text == ""
    assert applet.get_pw_status().retries(Secret.PW1) == 3
    applet.verify(Pw.PW1, PW1)  # defaults are back
    applet.verify(Pw.PW3, PW3)


def test_card_reset_then_reconnect_reselects(rig: Rig) -> None:
    applet = rig.applet
    applet.verify(Pw.PW1, PW1)
    rig.transport.reset()
    with pytest.raises(CardRemovedError):
        applet.get_pw_status()
    status = applet.pin_status(Pw.PW1)  # reconnects, re-selects, then asks
    assert status == PinState(False, 3)
    assert rig.channel.reconnects == 1
