"""The public API takes arguments in their natural form (opcard/arguments.py), or refuses them
before anything is sent with a message that says what to pass; sizes are checked against the
card's own limits; the typed accessors say what the card has when a lookup finds nothing; each
object class answers exactly the attributes its table lists; the token tells the spec version
and, where the card tells it, the firmware version."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from opcard_support import PW1, PW3, Rig, raw_to_der

import opcard
from apdu.openpgp.objects import Uif
from opcard import Attribute, Do, KeySlot, Mechanism, UifMode
from opcard.errors import (
    CertificateFormatError,
    CertificateTooLargeError,
    DataLengthError,
    MultipleObjectsError,
    NotLoggedInError,
    ObjectNotFoundError,
    UnsupportedMechanismError,
)

MESSAGE = b"natural arguments"


def _nothing_sent(r: Rig, action: Callable[[], object]) -> BaseException:
    """Run ``action``, which must raise; nothing may reach the card. The exception."""
    start = len(r.sent)
    with pytest.raises(Exception) as info:
        action()
    assert r.sent[start:] == [], f"{info.value!r} came after {len(r.sent) - start} APDUs"
    return info.value


# --- PINs ---------------------------------------------------------------------------------


def test_a_pin_as_int_is_refused_before_anything_is_sent(rig: Callable[..., Rig]) -> None:
    r = rig()
    with r.card.session() as s:
        s.login(PW1)  # the card session's first login reads F9: not part of the checks below
        s.logout()
        for call, shown in (
            (lambda: s.login(123456), "session.login('123456')"),  # type: ignore[arg-type]
            (lambda: s.login_admin(12345678), "session.login_admin('12345678')"),  # type: ignore[arg-type]
            (lambda: s.change_pin(123456, "654321"), "session.login('123456')"),  # type: ignore[arg-type]
            (lambda: s.unblock_pin(654321), "session.login('123456')"),  # type: ignore[arg-type]
        ):
            error = _nothing_sent(r, call)
            assert isinstance(error, TypeError)
            assert "as a string" in str(error) and shown in str(error)
            assert "leading zeros" in str(error)
        assert r.tries() == (3, 0, 3)
        s.login(PW1)  # the string works
        assert s.user_logged_in


# --- data objects -------------------------------------------------------------------------


def test_data_objects_by_name_with_bytes_or_text(rig: Callable[..., Rig]) -> None:
    r = rig()
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_data("url", b"https://example.org/a.asc")
        s.set_data("LOGIN", "jane")  # text: UTF-8
        s.set_data("private2", b"\x00\x01")
        s.set_data(Do.PRIVATE_USE_4, "four")
        s.set_data(0x5F2D, "en")  # the tag as an int
        s.set_data("name", "Doe<<Jane")
        s.login(PW1)
        s.set_data("Private DO 1", "one")  # the object's label
        s.set_data("private_use_3", b"three")
        state = r.emu.state
        assert (state.url, state.login, state.lang, state.name) == (
            b"https://example.org/a.asc",
            b"jane",
            b"en",
            b"Doe<<Jane",
        )
        assert state.private_dos == {
            0x0101: b"one",
            0x0102: b"\x00\x01",
            0x0103: b"three",
            0x0104: b"four",
        }
        assert s.get_data_object("url").value == b"https://example.org/a.asc"
        assert s.get_data_object(Do.LOGIN_DATA).value == b"jane"
        assert r.card.data_object("private2") == b"\x00\x01"
        for wrong, kind, text in (
            (lambda: s.set_data("homepage", b"x"), ValueError, "url, login, name"),
            (lambda: s.set_data("url", 5), TypeError, "bytes or str"),  # type: ignore[arg-type]
            (lambda: s.set_data(3.5, b"x"), TypeError, "Do member"),  # type: ignore[arg-type]
            (lambda: s.set_data("name", "Dōe"), ValueError, "Latin-1"),
        ):
            error = _nothing_sent(r, wrong)
            assert isinstance(error, kind) and text in str(error), error


@pytest.mark.parametrize(
    ("name", "limit", "source"),
    [
        ("url", 255, "maximum length of special DOs"),
        ("login", 255, "maximum length of special DOs"),
        ("private2", 255, "maximum length of special DOs"),
        ("name", 39, "specification"),
        ("language", 8, "specification"),
    ],
)
def test_a_value_longer_than_the_card_stores_is_refused_before_sending(
    rig: Callable[..., Rig], name: str, limit: int, source: str
) -> None:
    r = rig()
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_data(name, b"a" * limit)  # the limit itself: the card takes it
        r.card.application_data()  # (the write dropped the cache: the limit is read again)
        error = _nothing_sent(r, lambda: s.set_data(name, b"a" * (limit + 1)))
        assert isinstance(error, DataLengthError)
        assert f"{limit + 1} bytes is too long" in str(error)
        assert f"at most {limit} bytes" in str(error) and source in str(error)
        assert "nothing was written" in str(error)


def test_a_5000_byte_url_never_reaches_the_card(rig: Callable[..., Rig]) -> None:
    r = rig()
    with r.card.session() as s:
        s.login_admin(PW3)
        before = r.emu.state.url
        error = _nothing_sent(r, lambda: s.set_data("url", b"h" * 5000))
        assert str(error).startswith("URL (DO 5F50): 5000 bytes is too long")
        assert "(C0)" in str(error)
        assert r.emu.state.url == before


# --- mechanisms, hashes, data -----------------------------------------------------------------


def test_mechanisms_by_name_and_hashes_as_objects(rig: Callable[..., Rig]) -> None:
    r = rig()
    aut = r.demo["aut"].public
    sig = r.demo["sig"].public
    assert isinstance(aut, ec.EllipticCurvePublicKey) and isinstance(sig, ec.EllipticCurvePublicKey)
    with r.card.session() as s:
        s.login(PW1)
        for mechanism in (
            "ECDSA_SHA256",
            "CKM_ECDSA_SHA256",
            "ecdsa-sha256",
            Mechanism.ECDSA_SHA256,
        ):
            raw = s.sign("aut", MESSAGE, mechanism)
            aut.verify(raw_to_der(raw), MESSAGE, ec.ECDSA(hashes.SHA256()))
        raw = s.get_private_key(KeySlot.SIG).sign(MESSAGE, "ECDSA_SHA384")
        sig.verify(raw_to_der(raw), MESSAGE, ec.ECDSA(hashes.SHA384()))
        digest = hashes.Hash(hashes.SHA384())
        digest.update(MESSAGE)
        d384 = digest.finalize()
        for hash_given in (hashes.SHA384(), hashes.SHA384, "SHA-384", "sha384"):
            raw = s.sign_digest(3, d384, hash_given)
            aut.verify(raw_to_der(raw), d384, ec.ECDSA(Prehashed(hashes.SHA384())))
        der = s.digest_signer("AUT").sign_digest_der(d384, hashes.SHA384())
        aut.verify(der, d384, ec.ECDSA(Prehashed(hashes.SHA384())))

        error = _nothing_sent(r, lambda: s.sign("aut", MESSAGE, "ECDSA_SHA265"))
        assert isinstance(error, UnsupportedMechanismError)
        assert "did you mean ECDSA_SHA256" in str(error)
        error = _nothing_sent(r, lambda: s.sign("aut", "text"))  # type: ignore[arg-type]
        assert isinstance(error, TypeError) and ".encode()" in str(error)
        error = _nothing_sent(r, lambda: s.sign_digest("aut", d384, hashes.MD5()))
        assert "unsupported hash" in str(error)


def test_decrypting_or_deriving_with_a_signing_key_is_refused_as_documented(
    rig: Callable[..., Rig],
) -> None:
    r = rig("extended", "demo-rsa")
    with r.card.session() as s:
        s.login(PW1)
        for slot in ("sig", "aut"):
            for call in (
                lambda slot=slot: s.decrypt(slot, b"\x00" * 256),
                lambda slot=slot: s.derive(slot, b"\x04"),
            ):
                error = _nothing_sent(r, call)
                assert isinstance(error, UnsupportedMechanismError)
                assert error.return_value is opcard.errors.ReturnValue.KEY_FUNCTION_NOT_PERMITTED
        error = _nothing_sent(r, lambda: s.digest_signer("dec"))
        assert isinstance(error, UnsupportedMechanismError)


def test_touch_policy_by_name(rig: Callable[..., Rig]) -> None:
    r = rig()
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_touch("aut", "on")
        assert r.card.uif("aut") == Uif(UifMode.ENABLED, r.card.uif("aut").feature)  # type: ignore[union-attr]
        s.set_touch(KeySlot.AUT, "off")
        assert r.card.uif(3).mode == UifMode.DISABLED  # type: ignore[union-attr]
        error = _nothing_sent(r, lambda: s.set_touch("aut", "sometimes"))
        assert isinstance(error, ValueError) and "'on', 'off', 'fixed'" in str(error)


# --- certificates -------------------------------------------------------------------------------


def _self_signed(cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_certificates_as_cryptography_objects_der_or_pem(rig: Callable[..., Rig]) -> None:
    r = rig()
    cert = _self_signed("as object")
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    with r.card.session() as s:
        s.login_admin(PW3)
        s.store_certificate("aut", cert)
        assert r.emu.state.certs[0] == der  # occurrence 0: AUT
        s.store_certificate(KeySlot.DEC, pem.decode())  # PEM text
        assert r.emu.state.certs[1] == der
        s.store_certificate(1, pem)
        assert r.emu.state.certs[2] == der
        assert r.card.certificate("sig") == der
        assert s.get_certificate("sig").to_cryptography() == cert


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "no bytes"),
        (b"\x02\x01\x01", "a certificate starts with a DER SEQUENCE (30), these bytes with 02"),
        (b"cut", "a certificate starts with a DER SEQUENCE (30), these bytes with 63"),
        (None, "the DER is cut short: it announces"),
        (b"\x30\x03\x02\x01\x01", "the DER structure is not a certificate"),
        ("not a certificate", "a certificate given as text must be PEM"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "'PUBLIC KEY' block"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "does not hold a valid X.509 certificate",
        ),
    ],
)
def test_what_is_no_certificate_is_said_in_our_words(
    rig: Callable[..., Rig], data: bytes | str | None, said: str
) -> None:
    r = rig()
    if data is None:
        data = _self_signed("cut").public_bytes(serialization.Encoding.DER)[:-10]
    with r.card.session() as s:
        s.login_admin(PW3)
        error = _nothing_sent(r, lambda: s.store_certificate("aut", data))  # type: ignore[arg-type]
        assert isinstance(error, CertificateFormatError), error
        assert said in str(error)
        assert "ParseError" not in str(error) and "asn1" not in str(error).lower()
        if data and isinstance(data, bytes) and b"PUBLIC KEY" not in data:
            assert isinstance(error.__cause__, ValueError)  # the parser's own error is kept


def test_a_certificate_over_the_card_limit_names_the_limit(rig: Callable[..., Rig]) -> None:
    r = rig("small-cert", "demo-ecc")
    big = _self_signed("x" * 60)
    der = big.public_bytes(serialization.Encoding.DER)
    limit = r.card.application_data().extended_capabilities.max_certificate_length  # type: ignore[union-attr]
    padded = b"\x30\x82" + (limit + 4).to_bytes(2, "big") + der + b"\x00" * (limit + 4 - len(der))
    with r.card.session() as s:
        s.login_admin(PW3)
        error = _nothing_sent(r, lambda: s.store_certificate("aut", padded))
        # the size is checked only on what is a certificate: this one is not
        assert isinstance(error, CertificateFormatError)
        long_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "o" * 60)] * 25)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        huge = (
            x509.CertificateBuilder()
            .subject_name(long_name)
            .issuer_name(long_name)
            .public_key(key.public_key())
            .serial_number(9)
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        size = len(huge.public_bytes(serialization.Encoding.DER))
        assert size > limit
        error = _nothing_sent(r, lambda: s.store_certificate("aut", huge))
        assert isinstance(error, CertificateTooLargeError)
        assert f"the certificate is {size} bytes; this card stores at most {limit}" in str(error)
        assert "maximum certificate length in its extended capabilities, C0" in str(error)


# --- typed accessors and lookups ----------------------------------------------------------------


def test_typed_accessors(card_rig: Rig) -> None:
    with card_rig.card.session() as s:
        for slot in ("sig", "dec", "aut"):
            assert isinstance(s.get_private_key(slot), opcard.PrivateKey)
            assert isinstance(s.get_public_key(slot.upper()), opcard.PublicKey)
            cert = s.get_certificate(KeySlot[slot.upper()])
            assert isinstance(cert, opcard.Certificate)
            assert cert.der == card_rig.demo[slot].cert_der
            assert cert.to_cryptography() == card_rig.demo[slot].certificate
            public = s.get_public_key(slot).to_cryptography()
            assert public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ) == card_rig.demo[slot].public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        assert s.get_key("aut", object_class="certificate").handle == s.get_certificate(3).handle
        assert s.get_key(2, object_class="public").label == "Encryption key"
        assert s.get_key(id=3).label == "Authentication key"
        assert s.get_data_object("login").label == "Login data"
        assert s.get_data_object(label="Private DO 2").tag == Do.PRIVATE_USE_2
        assert len(list(s.find_objects(object_class="cert"))) == 3
        private3 = s.get_data_object("private3")
        with pytest.raises(NotLoggedInError):
            _ = private3.value
        with pytest.raises(ValueError, match="not one of the card's data objects"):
            s.get_data_object(Do.NAME)


def test_a_lookup_that_finds_nothing_says_what_exists(rig: Callable[..., Rig]) -> None:
    r = rig()
    with r.card.session() as s:
        with pytest.raises(ObjectNotFoundError) as none:
            s.get_key(label="URL")
        assert str(none.value) == (
            "no private key with label 'URL'; with that label the card has 1 data object "
            "(use get_data_object)"
        )
        with pytest.raises(ObjectNotFoundError) as none:
            s.get_certificate(label="Signature key")
        assert str(none.value) == (
            "no certificate with label 'Signature key'; with that label the card has 1 private "
            "key (use get_private_key) and 1 public key (use get_public_key)"
        )
        with pytest.raises(ObjectNotFoundError) as none:
            s.get_private_key(label="Nothing")
        assert str(none.value) == (
            "no private key with label 'Nothing'; the card's private keys: 'Signature key', "
            "'Encryption key', 'Authentication key'"
        )
        with pytest.raises(MultipleObjectsError, match="3 certificates match") as several:
            s.get_certificate()
        assert "get_certificate('sig')" in str(several.value)
        s.login_admin(PW3)
        s.delete_certificate("dec")
        with pytest.raises(ObjectNotFoundError) as none:
            s.get_certificate("dec")
        assert str(none.value) == (
            "no certificate in the DEC slot; in that slot the card has 1 private key "
            "(use get_private_key) and 1 public key (use get_public_key)"
        )


# --- attributes: one table per class ---------------------------------------------------------


def test_attributes_and_item_access_agree(card_rig: Rig) -> None:
    """``attributes()`` holds exactly the attributes ``obj[a]`` answers (sensitive values that
    need a PIN aside), and each class's table is what it answers."""
    with card_rig.card.session() as s:
        for obj in s.objects():
            shown = obj.attributes()
            for attribute in Attribute:
                try:
                    value = obj[attribute]
                except KeyError:
                    assert attribute not in shown, (obj, attribute)
                    continue
                except NotLoggedInError:
                    assert attribute is Attribute.VALUE and attribute not in shown
                    continue
                assert attribute in type(obj).ATTRIBUTES, (obj, attribute)
                assert shown[attribute] == value, (obj, attribute)
            assert list(shown) == [a for a in type(obj).ATTRIBUTES if a in shown]
        key = s.get_private_key("aut")
        for attribute in (Attribute.MODIFIABLE, Attribute.SUBJECT, Attribute.START_DATE):
            assert attribute in key.attributes()


# --- exports and the token ------------------------------------------------------------------------


def test_the_names_a_user_needs_come_from_opcard() -> None:
    from apdu.openpgp import constants

    assert opcard.KeySlot is constants.KeySlot and opcard.Do is constants.Do
    assert opcard.UifMode is constants.UifMode
    for name in opcard.errors.__all__:
        assert getattr(opcard, name) is getattr(opcard.errors, name)
    assert {"Mechanism", "UserType", "ObjectClass", "TokenFlag", "KeyAlgorithm"} <= set(
        opcard.__all__
    )


@pytest.mark.parametrize(
    ("profile", "spec", "firmware"),
    [
        ("extended", (3, 4), None),
        ("gnuk12", (2, 0), None),
        ("yubikey5", (3, 4), (5, 7, 1)),
        ("yubikey4", (2, 1), (4, 3, 7)),
    ],
)
def test_spec_and_firmware_versions(
    rig: Callable[..., Rig], profile: str, spec: tuple[int, int], firmware: object
) -> None:
    r = rig(profile, "demo-rsa")
    info = r.card.token_info()
    assert info.spec_version == r.card.aid.version == spec
    assert info.firmware_version == firmware
    get_version = [apdu for apdu in r.sent if apdu[1] == 0xF1]
    # the vendor command goes to Yubico cards only, once per Card
    assert len(get_version) == (1 if firmware else 0)
    assert r.card.token_info().firmware_version == firmware
    assert len([apdu for apdu in r.sent if apdu[1] == 0xF1]) == len(get_version)


def test_openpgp_hash_as_a_cryptography_object(rig: Callable[..., Rig]) -> None:
    from opcard.openpgp import dearmor, detached_signature, iter_packets

    r = rig()
    with r.card.session() as s:
        s.login(PW1)
        armored = detached_signature(s, b"data", hash_name=hashes.SHA512())
    ((tag, body),) = list(iter_packets(dearmor(armored.decode())))
    assert tag == 2 and body[0] == 4  # a v4 signature packet
    assert body[3] == 10  # RFC 4880 §9.4: hash algorithm 10 is SHA-512


def test_the_signing_key_for_cryptography_builders(card_rig: Rig) -> None:
    with card_rig.card.session() as s:
        s.login(PW1)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "typed")])
        key = s.get_private_key("sig").to_cryptography_signer()
        hash_algorithm = None if card_rig.variant == "demo-25519" else hashes.SHA256()
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hash_algorithm)
        assert csr.is_signature_valid
        dec = s.get_private_key("dec")
        sent = len(card_rig.sent)
        with pytest.raises(UnsupportedMechanismError, match="the DEC key does not sign") as no:
            dec.to_cryptography_signer()
        assert no.value.return_value is opcard.errors.ReturnValue.KEY_FUNCTION_NOT_PERMITTED
        assert len(card_rig.sent) == sent
