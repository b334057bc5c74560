"""Writing to the card through opcard: certificates, keys (generated and imported), algorithm
attributes, cardholder data and DOs, touch policy, factory reset — and the cache rules (the
application data is read once per card session, and every write invalidates it)."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.x509.oid import NameOID
from opcard_support import EMU_INDEX, PW1, PW3, Rig, digest, verify_digest

from apdu.openpgp.constants import Do, KeySlot, UifMode
from opcard import Attribute, Mechanism, ObjectClass
from opcard.errors import (
    CertificateTooLargeError,
    NotLoggedInError,
    ObjectNotFoundError,
    OpcardError,
    UnsupportedKeyError,
)
from opcard.openpgp import fingerprint_v4

GET_DATA_6E = bytes.fromhex("00CA006E")
CREATED = 1750000000  # 2025-06-15


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_certificate(padding_bytes: int = 0) -> bytes:
    """A self-signed P-256 certificate; ``padding_bytes`` of extension make it larger."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("opcard write test"))
        .issuer_name(_name("opcard write test"))
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    if padding_bytes:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04" * padding_bytes
            ),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def reads_of_6e(r: Rig, start: int) -> int:
    return sum(1 for c in r.sent[start:] if c[:4] == GET_DATA_6E)


# --- certificates -----------------------------------------------------------------------------


def test_store_and_delete_certificates(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    new = make_certificate(padding_bytes=900)  # long enough to need chaining on short APDUs
    with r.card.session() as s:
        with r.count() as n, pytest.raises(NotLoggedInError):
            s.store_certificate("sig", new)
        assert n[0] == 0
        s.login_admin(PW3)
        for slot in ("sig", "dec", "aut"):
            s.store_certificate(slot, new)
            cert = s.get_key(slot, object_class=ObjectClass.CERTIFICATE)
            assert cert[Attribute.VALUE] == new
        # PEM is accepted too
        pem = x509.load_der_x509_certificate(new).public_bytes(serialization.Encoding.PEM)
        s.store_certificate("aut", pem)
        assert s.get_key("aut", object_class=ObjectClass.CERTIFICATE)[Attribute.VALUE] == new
        s.delete_certificate("dec")
        assert [o.label for o in s.find_objects(object_class=ObjectClass.CERTIFICATE)] == [
            "Signature certificate",
            "Authentication certificate",
        ]
        with pytest.raises(ObjectNotFoundError):
            s.get_key("dec", object_class=ObjectClass.CERTIFICATE)
    assert r.emu.state.certs == [new, b"", new]  # occurrences AUT, DEC, SIG
    # a new card session reads the same
    other = r.reopen()
    with other.session() as s2:
        assert s2.get_key("sig", object_class=ObjectClass.CERTIFICATE)[Attribute.VALUE] == new
    other.close()


def test_card_declaring_no_certificate_room_refuses_before_sending(
    rig: Callable[..., Rig],
) -> None:
    r = rig("extended", "demo-ecc", max_cert_size=0)
    with r.card.session() as s:
        s.login_admin(PW3)
        before = list(r.emu.state.certs)
        with r.count() as n, pytest.raises(CertificateTooLargeError) as info:
            s.store_certificate("aut", make_certificate())
        assert n[0] == 0
        assert "maximum certificate length of 0" in str(info.value)
        assert r.emu.state.certs == before


def test_too_large_certificate_refused_before_sending(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc", max_cert_size=1000)
    big = make_certificate(padding_bytes=900)
    assert len(big) > 1000
    small = make_certificate()
    with r.card.session() as s:
        s.login_admin(PW3)
        r.card.application_data()
        before = list(r.emu.state.certs)
        with r.count() as n, pytest.raises(CertificateTooLargeError) as info:
            s.store_certificate("aut", big)
        assert n[0] == 0
        assert str(len(big)) in str(info.value) and "1000" in str(info.value)
        assert isinstance(info.value, ValueError)
        assert r.emu.state.certs == before
        s.store_certificate("aut", small)
        assert r.emu.state.certs[0] == small
        with pytest.raises(ValueError):
            s.store_certificate("aut", b"not a certificate")


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slot", "algorithm"),
    [("aut", "nistp256"), ("sig", "ed25519"), ("dec", "cv25519"), ("sig", "rsa2048")],
)
def test_generate_key_on_card(rig: Callable[..., Rig], slot: str, algorithm: str) -> None:
    profile = "short" if algorithm == "rsa2048" else "extended"
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3)
        new = s.generate_key(slot, algorithm, created=CREATED)
        assert new.algorithm.name == algorithm
        public = new.to_cryptography()
        ard = r.card.application_data()
        key_slot = KeySlot[slot.upper()]
        assert ard.fingerprint(key_slot) == fingerprint_v4(public, CREATED, slot)
        assert ard.generation_time(key_slot) == CREATED
        state = r.emu.state
        assert state.fingerprints[EMU_INDEX[slot]] == fingerprint_v4(public, CREATED, slot)
        assert state.times[EMU_INDEX[slot]] == CREATED.to_bytes(4, "big")
        assert state.key_status[EMU_INDEX[slot]] == 0x01  # generated on the card
        s.login(PW1)
        key = s.private_key(slot)
        assert key[Attribute.LOCAL] is True and key[Attribute.NEVER_EXTRACTABLE] is True
        assert key.public().to_cryptography() == public
        _exercise(s, slot, public)


def _exercise(s: object, slot: str, public: object) -> None:
    """Use the key in ``slot`` once and check the result with its public key."""
    from opcard.session import Session

    assert isinstance(s, Session)
    message = b"exercise " + slot.encode()
    if isinstance(public, rsa.RSAPublicKey):
        if slot == "dec":
            secret = b"wrapped key material"
            assert s.decrypt(slot, public.encrypt(secret, padding.PKCS1v15())) == secret
        else:
            sig = s.sign(slot, message, Mechanism.SHA256_RSA_PKCS)
            public.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        if slot == "dec":
            peer = ec.generate_private_key(public.curve)
            point = peer.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            assert s.derive(slot, point) == peer.exchange(ec.ECDH(), public)
        else:
            d = digest("sha256", message)
            verify_digest(public, s.sign_digest(slot, d, "sha256"), "sha256", d)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(s.sign(slot, message, Mechanism.EDDSA), message)
    else:
        assert isinstance(public, x25519.X25519PublicKey)
        x_peer = x25519.X25519PrivateKey.generate()
        assert s.derive(slot, x_peer.public_key().public_bytes_raw()) == x_peer.exchange(public)


def _encodings(key: object) -> dict[str, bytes]:
    enc = serialization.Encoding
    fmt = serialization.PrivateFormat
    none = serialization.NoEncryption()
    out = {
        "pkcs8-pem": key.private_bytes(enc.PEM, fmt.PKCS8, none),  # type: ignore[attr-defined]
        "pkcs8-der": key.private_bytes(enc.DER, fmt.PKCS8, none),  # type: ignore[attr-defined]
    }
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        out["traditional-pem"] = key.private_bytes(enc.PEM, fmt.TraditionalOpenSSL, none)
        out["traditional-der"] = key.private_bytes(enc.DER, fmt.TraditionalOpenSSL, none)
    out["pkcs8-encrypted"] = key.private_bytes(  # type: ignore[attr-defined]
        enc.PEM, fmt.PKCS8, serialization.BestAvailableEncryption(b"secret")
    )
    return out


PrivateKeys = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | x25519.X25519PrivateKey
)
IMPORTS: dict[str, tuple[str, Callable[[], PrivateKeys]]] = {
    "rsa2048": ("aut", lambda: rsa.generate_private_key(65537, 2048)),
    "rsa2048-dec": ("dec", lambda: rsa.generate_private_key(65537, 2048)),
    "p256-sig": ("sig", lambda: ec.generate_private_key(ec.SECP256R1())),
    "p256-dec": ("dec", lambda: ec.generate_private_key(ec.SECP256R1())),
    "ed25519": ("sig", ed25519.Ed25519PrivateKey.generate),
    "x25519": ("dec", x25519.X25519PrivateKey.generate),
}


@pytest.mark.parametrize("name", list(IMPORTS))
def test_import_key(rig: Callable[..., Rig], profile: str, name: str) -> None:
    slot, make = IMPORTS[name]
    private = make()
    r = rig(profile, "demo-ecc" if "rsa" in name else "demo-rsa")  # always a change of type
    public = private.public_key()
    with r.card.session() as s:
        s.login_admin(PW3)
        s.login(PW1)
        for form, blob in _encodings(private).items():
            password = b"secret" if form == "pkcs8-encrypted" else None
            created = CREATED + len(form)
            imported = s.import_key(slot, blob, created=created, password=password)
            assert imported.to_cryptography() == public, form
            ard = r.card.application_data()
            key_slot = KeySlot[slot.upper()]
            assert ard.fingerprint(key_slot) == fingerprint_v4(public, created, slot)
            assert ard.generation_time(key_slot) == created
            assert r.emu.state.key_status[EMU_INDEX[slot]] == 0x02  # imported
            key = s.private_key(slot)
            assert key[Attribute.LOCAL] is False
            assert key.public().to_cryptography() == public
            _exercise(s, slot, public)
        # the cryptography object itself
        s.import_key(slot, private, created=CREATED)
        _exercise(s, slot, public)


def test_import_refuses_unsuitable_keys_before_writing(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3)
        r.card.application_data()
        state_before = r.emu.state.to_json()
        with r.count() as n:
            with pytest.raises(UnsupportedKeyError, match="secp192r1"):
                s.import_key("sig", ec.generate_private_key(ec.SECP192R1()))
            with pytest.raises(UnsupportedKeyError, match="X25519"):
                s.import_key("sig", x25519.X25519PrivateKey.generate())
            with pytest.raises(UnsupportedKeyError, match="Ed25519"):
                s.import_key("dec", ed25519.Ed25519PrivateKey.generate())
            with pytest.raises(UnsupportedKeyError, match="PEM or DER"):
                s.import_key("aut", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            with pytest.raises(UnsupportedKeyError):
                s.import_key("aut", b"\x30\x03\x02\x01\x00")
            with pytest.raises(UnsupportedKeyError, match="RSA-1024"):
                s.import_key("aut", rsa.generate_private_key(65537, 1024))
        assert n[0] == 0
        assert r.emu.state.to_json() == state_before


def test_set_algorithm(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-rsa")
    with r.card.session() as s:
        s.login_admin(PW3)
        start = len(r.sent)
        s.set_algorithm("aut", "rsa2048")  # already so: nothing is written
        assert r.ins_since(start) == []
        s.set_algorithm("aut", "nistp384")
        assert r.card.algorithm(KeySlot.AUT).name == "nistp384"  # type: ignore[union-attr]
        # the card dropped the old key: no key objects for AUT until one is generated
        assert [o.label for o in s.find_objects(id=b"\x03")] == ["Authentication certificate"]
        new = s.generate_key("aut", created=CREATED)
        assert new.algorithm.name == "nistp384"
        s.login(PW1)
        d = digest("sha384", b"p384")
        verify_digest(new.to_cryptography(), s.sign_digest("aut", d, "sha384"), "sha384", d)
        s.set_algorithm("dec", "brainpoolP256r1")
        assert r.card.application_data().attributes(KeySlot.DEC).algorithm == 0x12  # type: ignore[union-attr]
        with pytest.raises(UnsupportedKeyError):
            s.set_algorithm("dec", "ed25519")
        with pytest.raises(UnsupportedKeyError):
            s.set_algorithm("sig", "cv25519")
        with pytest.raises(UnsupportedKeyError):
            s.set_algorithm("sig", "rsa1024")
        with pytest.raises(UnsupportedKeyError, match="unknown algorithm"):
            s.set_algorithm("sig", "dsa2048")


# --- cardholder data, DOs, touch --------------------------------------------------------------


def test_cardholder_data_and_dos(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        objects = {o.label: o for o in s.find_objects(object_class=ObjectClass.DATA)}
        with r.count() as n:
            for call in (
                lambda: s.set_name("John Smith"),
                lambda: s.set_data(Do.URL, b"https://example.org/key.asc"),
                lambda: s.set_data(Do.PRIVATE_USE_1, b"x"),
                lambda: s.set_data(Do.PRIVATE_USE_2, b"x"),
            ):
                with pytest.raises(NotLoggedInError):
                    call()
        assert n[0] == 0
        s.login_admin(PW3)
        s.set_name("Mary Ann Smith")
        assert r.emu.state.name == b"Smith<<Mary<Ann"
        assert s.token_info().label == "Mary Ann Smith"
        s.set_data(Do.URL, b"https://example.org/key.asc")
        s.set_data(Do.LOGIN_DATA, b"msmith")
        s.set_data(Do.PRIVATE_USE_2, b"two")
        s.set_data(Do.PRIVATE_USE_4, b"four")
        with pytest.raises(NotLoggedInError):  # private DOs 1 and 3 take the user PIN
            s.set_data(Do.PRIVATE_USE_3, b"three")
        s.login(PW1)
        s.set_data(Do.PRIVATE_USE_1, b"one")
        s.set_data(Do.PRIVATE_USE_3, b"three")
        values = {label: obj[Attribute.VALUE] for label, obj in objects.items()}
        assert values == {
            "URL": b"https://example.org/key.asc",
            "Login data": b"msmith",
            "Private DO 1": b"one",
            "Private DO 2": b"two",
            "Private DO 3": b"three",
            "Private DO 4": b"four",
        }
    # another session without PINs: private DO 3 and 4 stay closed; with the user PIN, only 4
    with r.card.session() as s2:
        objects = {o.label: o for o in s2.find_objects(object_class=ObjectClass.DATA)}
        assert objects["Private DO 1"][Attribute.VALUE] == b"one"
        for label in ("Private DO 3", "Private DO 4"):
            with pytest.raises(NotLoggedInError):
                objects[label][Attribute.VALUE]
        s2.login(PW1)
        assert objects["Private DO 3"][Attribute.VALUE] == b"three"
        with pytest.raises(NotLoggedInError):
            objects["Private DO 4"][Attribute.VALUE]
    assert r.emu.state.private_dos == {
        0x0101: b"one",
        0x0102: b"two",
        0x0103: b"three",
        0x0104: b"four",
    }


def test_touch_policy(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_touch("sig", UifMode.ENABLED)
        assert r.card.application_data().uif(KeySlot.SIG).mode == UifMode.ENABLED  # type: ignore[union-attr]
        assert r.emu.state.uif[EMU_INDEX["sig"]][0] == 0x01
        s.set_touch("sig", UifMode.DISABLED)
        assert r.emu.state.uif[EMU_INDEX["sig"]][0] == 0x00


# --- factory reset ----------------------------------------------------------------------------


def test_factory_reset(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-rsa")
    with r.card.session() as s:
        s.login_admin(PW3)
        s.enable_kdf()
        s.login(PW1)
        s.change_pin(PW1, "314159")
        s.factory_reset()  # no PIN needed
        assert not s.user_logged_in and not s.so_logged_in
        assert [type(o).__name__ for o in s.objects()] == ["DataObject"] * 6
        assert s.token_info().label == f"OpenPGP card {r.card.serial}"
        assert s.pin_status() == {"user": 3, "reset_code": 0, "admin": 3}
        s.login(PW1)  # default PINs, KDF off
        s.login_admin(PW3)
        new = s.generate_key("aut", "nistp256", created=CREATED)
        d = digest("sha256", b"after reset")
        verify_digest(new.to_cryptography(), s.sign_digest("aut", d, "sha256"), "sha256", d)
    state = r.emu.state
    assert state.kdf[:3] == bytes.fromhex("810100") or state.kdf == b""
    assert state.certs == [b"", b"", b""] and state.url == b""


# --- the cache --------------------------------------------------------------------------------


def test_application_data_read_once_and_invalidated_by_writes(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    assert reads_of_6e(r, 0) == 1  # opening the card
    start = len(r.sent)
    with r.card.session() as s:
        s.login(PW1)
        for obj in s.objects():
            obj.attributes()
        s.token_info()
        signer = s.digest_signer("aut")
        for i in range(5):
            signer.sign_digest(digest("sha256", bytes([i])), "sha256")
        s.sign("sig", digest("sha256", b"x"), Mechanism.ECDSA)
        s.pin_status()  # C4 is read fresh, on its own (GET DATA C4)
        assert reads_of_6e(r, start) == 0
        # a second pass costs nothing at all
        with r.count() as n:
            for obj in s.objects():
                obj.attributes()
            s.token_info()
        assert n[0] == 0
        # a write invalidates: the next use reads 6E once
        s.login_admin(PW3)
        start = len(r.sent)
        s.set_data(Do.URL, b"https://example.org/")
        assert reads_of_6e(r, start) == 0  # not read eagerly
        for obj in s.objects():
            obj.attributes()
        assert reads_of_6e(r, start) == 1
        assert s.get_key("aut").card is r.card
        url = next(s.find_objects(label="URL"))
        assert url[Attribute.VALUE] == b"https://example.org/"
        # refresh() reads again on request
        start = len(r.sent)
        r.card.refresh()
        r.card.application_data()
        assert reads_of_6e(r, start) == 1
        assert url[Attribute.VALUE] == b"https://example.org/"  # read again, then cached
        # another application changed the card behind our back: explicit refresh shows it
        assert r.emu.transmit(bytes.fromhex("00DA5F5003") + b"abc")[-2:] == b"\x90\x00"
        assert url[Attribute.VALUE] == b"https://example.org/"  # cached
        r.card.refresh()
        assert url[Attribute.VALUE] == b"abc"


def test_failed_write_still_invalidates(rig: Callable[..., Rig]) -> None:
    """A write the card refuses may have changed something: the cache is dropped anyway."""
    r = rig("extended", "demo-ecc", max_cert_size=1000)
    with r.card.session() as s:
        s.login_admin(PW3)
        # the card's own limit (opcard's check bypassed through the applet): 6700 or 6A84
        with pytest.raises(OpcardError):
            s._write(
                lambda: r.card.applet.put_certificate(KeySlot.AUT, make_certificate(900)),
                "store AUT certificate",
            )
        start = len(r.sent)
        r.card.application_data()
        assert reads_of_6e(r, start) == 1


def test_generated_key_without_metadata_is_reported() -> None:
    """A card that refuses the fingerprint after generating: the error says the key is there
    and its fingerprint is missing (the user is told; nothing is silently half-written)."""
    import opcard
    from apdu.transport.loopback import LoopbackTransport
    from fixtures.card import OpenPGPCard
    from fixtures.personalize import personalize
    from opcard.errors import CardOperationError

    emu = OpenPGPCard("extended")
    personalize(emu, "demo-ecc")
    emu.power_on()

    def refusing(apdu: bytes) -> bytes:
        if apdu[1] == 0xDA and apdu[2:4] == b"\x00\xc9":  # PUT DATA C9 (AUT fingerprint)
            return b"\x6a\x80"
        return emu.transmit(apdu)

    card = opcard.Card(LoopbackTransport(refusing, emu.atr))
    with card.session() as s:
        s.login_admin(PW3)
        with pytest.raises(CardOperationError) as info:
            s.generate_key("aut", "nistp256", created=CREATED)
    message = str(info.value)
    assert "AUT key is on the card" in message and "fingerprint" in message
    assert info.value.sw == 0x6A80
