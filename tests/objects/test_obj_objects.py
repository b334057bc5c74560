"""opcard objects and attributes against the demo material the emulated card holds.

Expected values come from the demo PEM files through ``cryptography`` / ``asn1crypto`` (never
from opcard): moduli, points, curve OIDs, SubjectPublicKeyInfo, certificate names and serials.
Every test runs on both profiles (extended, short) and the three demo variants.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from opcard_support import PW1, PW3, SLOT_ID, SLOTS, Rig

import opcard
from opcard import Attribute, ObjectClass
from opcard.errors import MultipleObjectsError, NotLoggedInError, ObjectNotFoundError
from opcard.objects import Certificate, DataObject, PrivateKey, PublicKey
from opcard.pkcs11.uri import ObjectType, Pkcs11Uri

# PKCS#11 v3.0 constants, written out here rather than taken from opcard.pkcs11
CKO_DATA, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 0, 1, 2, 3
CKK_RSA, CKK_EC, CKK_EC_EDWARDS, CKK_EC_MONTGOMERY = 0x00, 0x03, 0x40, 0x41
CKC_X_509 = 0

KEY_LABELS = {"sig": "Signature key", "dec": "Encryption key", "aut": "Authentication key"}
CERT_LABELS = {
    "sig": "Signature certificate",
    "dec": "Encryption certificate",
    "aut": "Authentication certificate",
}
DATA_LABELS = ["URL", "Login data", "Private DO 1", "Private DO 2", "Private DO 3", "Private DO 4"]


def spki(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def expected_key_type(public: object) -> int:
    if isinstance(public, rsa.RSAPublicKey):
        return CKK_RSA
    if isinstance(public, ec.EllipticCurvePublicKey):
        return CKK_EC
    if isinstance(public, ed25519.Ed25519PublicKey):
        return CKK_EC_EDWARDS
    assert isinstance(public, x25519.X25519PublicKey)
    return CKK_EC_MONTGOMERY


def expected_ec(public: object) -> tuple[bytes, bytes]:
    """(CKA_EC_PARAMS, CKA_EC_POINT) from the SubjectPublicKeyInfo: the named-curve OID (for
    Ed25519/X25519 the RFC 8410 algorithm OID) and the point as a DER OCTET STRING."""
    info = asn1_keys.PublicKeyInfo.load(spki(public))
    algorithm = info["algorithm"]
    if algorithm["algorithm"].native == "ec":
        params = algorithm["parameters"].chosen.dump()
    else:
        params = algorithm["algorithm"].dump()
    point = info["public_key"].contents[1:]  # BIT STRING: unused-bits byte, then the point
    assert len(point) < 0x80
    return params, bytes((0x04, len(point))) + point


def der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    assert len(body) < 0x80
    return bytes((0x02, len(body))) + body


# --- the object list --------------------------------------------------------------------------


def test_objects_listed(card_rig: Rig) -> None:
    with card_rig.card.session() as s:
        objects = s.objects()
    described = [(type(o).__name__, o.label) for o in objects]
    expected: list[tuple[str, str]] = []
    for slot in SLOTS:
        expected += [("PrivateKey", KEY_LABELS[slot]), ("PublicKey", KEY_LABELS[slot])]
        expected.append(("Certificate", CERT_LABELS[slot]))
    expected += [("DataObject", label) for label in DATA_LABELS]
    assert described == expected
    handles = [o.handle for o in objects]
    assert len(set(handles)) == len(handles)


def test_key_attributes(card_rig: Rig) -> None:
    demo = card_rig.demo
    single_use = card_rig.emu.state.pw1_single_use
    with card_rig.card.session() as s:
        for slot in SLOTS:
            public = demo[slot].public
            cert = demo[slot].certificate
            private_obj = s.get_key(slot)
            public_obj = s.get_key(slot, object_class=ObjectClass.PUBLIC_KEY)
            assert isinstance(private_obj, PrivateKey) and isinstance(public_obj, PublicKey)
            for obj, cls in ((private_obj, CKO_PRIVATE_KEY), (public_obj, CKO_PUBLIC_KEY)):
                a = obj.attributes()
                assert a[Attribute.CLASS] == cls
                assert a[Attribute.TOKEN] is True
                assert a[Attribute.LABEL] == KEY_LABELS[slot]
                assert a[Attribute.ID] == bytes((SLOT_ID[slot],))
                assert a[Attribute.KEY_TYPE] == expected_key_type(public)
                assert a[Attribute.PUBLIC_KEY_INFO] == spki(public)
                assert a[Attribute.LOCAL] is False  # personalised by import (key status 02)
                assert obj[Attribute.SUBJECT] == cert.subject.public_bytes()
                assert a[Attribute.DERIVE] is (
                    slot == "dec" and not isinstance(public, rsa.RSAPublicKey)
                )
                if isinstance(public, rsa.RSAPublicKey):
                    numbers = public.public_numbers()
                    assert a[Attribute.MODULUS] == numbers.n.to_bytes(256, "big")
                    assert a[Attribute.PUBLIC_EXPONENT] == numbers.e.to_bytes(3, "big")
                    assert a[Attribute.MODULUS_BITS] == 2048
                    assert Attribute.EC_POINT not in a and Attribute.EC_PARAMS not in a
                else:
                    params, point = expected_ec(public)
                    assert a[Attribute.EC_PARAMS] == params
                    assert a[Attribute.EC_POINT] == point
                    assert Attribute.MODULUS not in a
            p = private_obj.attributes()
            assert p[Attribute.PRIVATE] is True
            assert p[Attribute.SENSITIVE] is True
            assert p[Attribute.ALWAYS_SENSITIVE] is True
            assert p[Attribute.EXTRACTABLE] is False
            assert p[Attribute.NEVER_EXTRACTABLE] is False
            assert p[Attribute.SIGN] is (slot != "dec")
            assert p[Attribute.SIGN_RECOVER] is False
            assert p[Attribute.UNWRAP] is False
            assert p[Attribute.DECRYPT] is (slot == "dec" and isinstance(public, rsa.RSAPublicKey))
            # C4: PW1 valid for one signature → the SIG key always authenticates
            assert p[Attribute.ALWAYS_AUTHENTICATE] is (slot == "sig" and single_use)
            q = public_obj.attributes()
            assert q[Attribute.PRIVATE] is False
            assert q[Attribute.VERIFY] is (slot != "dec")
            assert q[Attribute.ENCRYPT] is (slot == "dec" and isinstance(public, rsa.RSAPublicKey))
            assert q[Attribute.WRAP] is False
            assert Attribute.SENSITIVE not in q
            assert public_obj.to_cryptography() == public
            assert private_obj.to_cryptography().public_key() == public


def test_always_authenticate_follows_c4(rig: Callable[..., Rig]) -> None:
    """The attribute reflects C4 byte 1, also after the policy is changed on the card."""
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        assert s.private_key("sig")[Attribute.ALWAYS_AUTHENTICATE] is False
        s.login_admin(PW3)
        s.set_pw1_policy(several_signatures=False)
        assert r.emu.state.pw1_single_use is True
        assert s.private_key("sig")[Attribute.ALWAYS_AUTHENTICATE] is True
        assert s.private_key("aut")[Attribute.ALWAYS_AUTHENTICATE] is False
        s.set_pw1_policy(several_signatures=True)
        assert s.private_key("sig")[Attribute.ALWAYS_AUTHENTICATE] is False


def test_certificate_attributes(card_rig: Rig) -> None:
    demo = card_rig.demo
    with card_rig.card.session() as s:
        for slot in SLOTS:
            cert = demo[slot].certificate
            obj = s.get_key(slot, object_class=ObjectClass.CERTIFICATE)
            assert isinstance(obj, Certificate)
            a = obj.attributes()
            assert a[Attribute.CLASS] == CKO_CERTIFICATE
            assert a[Attribute.LABEL] == CERT_LABELS[slot]
            assert a[Attribute.ID] == bytes((SLOT_ID[slot],))
            assert a[Attribute.CERTIFICATE_TYPE] == CKC_X_509
            assert a[Attribute.PRIVATE] is False
            assert a[Attribute.TRUSTED] is False
            assert a[Attribute.VALUE] == demo[slot].cert_der
            assert a[Attribute.SUBJECT] == cert.subject.public_bytes()
            assert a[Attribute.ISSUER] == cert.issuer.public_bytes()
            assert a[Attribute.SERIAL_NUMBER] == der_integer(cert.serial_number)
            assert obj.to_cryptography() == cert


def test_data_objects(card_rig: Rig) -> None:
    with card_rig.card.session() as s:
        objects = {o.label: o for o in s.find_objects(object_class=ObjectClass.DATA)}
        assert list(objects) == DATA_LABELS
        assert all(isinstance(o, DataObject) for o in objects.values())
        url = objects["URL"].attributes()
        assert url[Attribute.CLASS] == CKO_DATA
        assert url[Attribute.VALUE] == b"https://example.invalid/opcard-demo.asc"
        assert url[Attribute.PRIVATE] is False
        assert url[Attribute.APPLICATION] == "OpenPGP card"
        assert objects["Login data"][Attribute.VALUE] == b"jdoe"
        assert objects["Private DO 1"][Attribute.VALUE] == b"opcard demo private DO 1"
        assert objects["Private DO 2"][Attribute.VALUE] == b""
        for label in ("Private DO 3", "Private DO 4"):
            obj = objects[label]
            assert obj[Attribute.PRIVATE] is True
            with card_rig.count() as n:
                with pytest.raises(NotLoggedInError):
                    obj[Attribute.VALUE]
                assert Attribute.VALUE not in obj.attributes()
            assert n[0] == 0  # refused before asking the card
        s.login(PW1)
        assert objects["Private DO 3"][Attribute.VALUE] == b""
        with pytest.raises(NotLoggedInError):  # DO 4 needs the admin PIN
            objects["Private DO 4"][Attribute.VALUE]
        s.login_admin(PW3)
        assert objects["Private DO 4"][Attribute.VALUE] == b""


# --- find_objects and get_key -----------------------------------------------------------------


def labels(objects: object) -> list[str]:
    return [o.label for o in objects]  # type: ignore[attr-defined]


def test_find_objects_templates(card_rig: Rig) -> None:
    demo = card_rig.demo
    with card_rig.card.session() as s:
        assert labels(s.find_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == [
            KEY_LABELS[x] for x in SLOTS
        ]
        assert labels(s.find_objects({Attribute.ID: b"\x03"})) == [
            KEY_LABELS["aut"],
            KEY_LABELS["aut"],
            CERT_LABELS["aut"],
        ]
        assert labels(s.find_objects(object_class=ObjectClass.CERTIFICATE, id=b"\x01")) == [
            CERT_LABELS["sig"]
        ]
        assert labels(s.find_objects(label="Encryption key")) == [KEY_LABELS["dec"]] * 2
        assert labels(
            s.find_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True})
        ) == [KEY_LABELS["sig"], KEY_LABELS["aut"]]
        dec_public = demo["dec"].public
        assert labels(
            s.find_objects(
                {
                    Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                    Attribute.PUBLIC_KEY_INFO: spki(dec_public),
                }
            )
        ) == [KEY_LABELS["dec"]]
        subject = demo["aut"].certificate.subject.public_bytes()
        assert labels(s.find_objects({Attribute.SUBJECT: subject})) == [
            KEY_LABELS["aut"],
            KEY_LABELS["aut"],
            CERT_LABELS["aut"],
        ]
        assert labels(s.find_objects({Attribute.VALUE: demo["dec"].cert_der})) == [
            CERT_LABELS["dec"]
        ]
        # templates nothing matches
        assert list(s.find_objects({Attribute.ID: b"\x04"})) == []
        assert list(s.find_objects({Attribute.LABEL: "Signature key", Attribute.ID: b"\x02"})) == []
        assert list(s.find_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []
        assert list(s.find_objects({0x80001234: b"vendor"})) == []  # unknown attribute
        assert len(list(s.find_objects())) == 15
        with pytest.raises(TypeError):
            list(s.find_objects(colour="blue"))


def test_find_objects_reads_only_what_the_template_needs(rig: Callable[..., Rig]) -> None:
    """Listing keys by class reads nothing (6E is cached); an attribute of a key reads its
    public key once (READ PUBLIC KEY); certificates are read only when asked for."""
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        start = len(r.sent)
        keys = list(s.find_objects(object_class=ObjectClass.PRIVATE_KEY))
        assert len(keys) == 3
        assert r.ins_since(start) == []
        for key in keys:
            key[Attribute.EC_POINT]
        assert r.ins_since(start) == [0x47, 0x47, 0x47]  # READ PUBLIC KEY x 3
        start = len(r.sent)
        publics = list(s.find_objects(object_class=ObjectClass.PUBLIC_KEY, label="Signature key"))
        assert [p[Attribute.KEY_TYPE] for p in publics] == [CKK_EC]
        assert r.ins_since(start) == []  # cached
        start = len(r.sent)
        assert len(list(s.find_objects(object_class=ObjectClass.CERTIFICATE))) == 3
        # SELECT DATA, GET DATA, GET NEXT DATA x 2, SELECT DATA back to occurrence 0
        assert r.ins_since(start) == [0xA5, 0xCA, 0xCC, 0xCC, 0xA5]


def test_one_certificate_costs_its_own_reads_only(rig: Callable[..., Rig], profile: str) -> None:
    """Exporting one certificate right after opening the card: SELECT DATA + GET DATA for
    it (plus GET RESPONSE on short APDUs, and SELECT DATA back to occurrence 0 for SIG)."""
    r = rig(profile, "demo-ecc")
    # opening: SELECT, GET DATA 6E (+ GET RESPONSE); the KDF-DO waits for the first PIN
    assert [c[:4].hex() for c in r.sent if c[1] != 0xC0] == ["00a40400", "00ca006e"]
    expected_der = r.demo["aut"].cert_der
    with r.card.session() as s:
        start = len(r.sent)
        cert = s.get_key("aut", object_class=ObjectClass.CERTIFICATE)
        assert cert[Attribute.VALUE] == expected_der
        extra = [0xC0] if profile == "short" else []  # 471 bytes: 61xx + GET RESPONSE
        assert r.ins_since(start) == [0xA5, 0xCA, *extra]
        start = len(r.sent)
        assert s.get_key("sig", object_class=ObjectClass.CERTIFICATE)[Attribute.VALUE]
        assert r.ins_since(start) == [0xA5, 0xCA, *extra, 0xA5]
        start = len(r.sent)
        assert s.get_key("aut", object_class=ObjectClass.CERTIFICATE)[Attribute.VALUE]
        assert r.ins_since(start) == []  # cached


def test_get_key(card_rig: Rig) -> None:
    from apdu.openpgp.constants import KeySlot

    with card_rig.card.session() as s:
        for slot in SLOTS:
            key = s.get_key(slot)
            assert isinstance(key, PrivateKey) and key.label == KEY_LABELS[slot]
            assert s.get_key(SLOT_ID[slot]).handle == key.handle
            assert s.get_key(KeySlot[slot.upper()]).handle == key.handle
            assert s.get_key(slot.upper()).handle == key.handle
        assert s.get_key(label="Authentication key").handle == s.get_key("aut").handle
        assert s.get_key(id=b"\x02", object_class=ObjectClass.PUBLIC_KEY).label == "Encryption key"
        with pytest.raises(MultipleObjectsError, match="3 private keys match") as several:
            s.get_key()
        for label in KEY_LABELS.values():
            assert label in str(several.value)
        with pytest.raises(ObjectNotFoundError, match="no private key with label 'no such key'"):
            s.get_key(label="no such key")
        with pytest.raises(ValueError, match="no key slot"):
            s.get_key("nope")


def test_get_key_empty_slot(rig: Callable[..., Rig]) -> None:
    r = rig("extended", None)  # factory-fresh card: no keys, no certificates
    with r.card.session() as s:
        assert [type(o).__name__ for o in s.objects()] == ["DataObject"] * 6
        with pytest.raises(ObjectNotFoundError, match="no private key in the SIG slot; the card "):
            s.get_key("sig")
        with pytest.raises(ObjectNotFoundError, match="no certificate in the AUT slot"):
            s.get_key("aut", object_class=ObjectClass.CERTIFICATE)


# --- pkcs11: URIs -----------------------------------------------------------------------------


def test_object_uris_round_trip(card_rig: Rig) -> None:
    emu = card_rig.emu
    with card_rig.card.session() as s:
        token = s.token_info()
        assert token.label == "Jane Doe"
        assert token.serial == f"{emu.serial:08X}"
        token_uri = token.uri
        assert Pkcs11Uri.parse(str(token_uri)) == token_uri
        assert str(token_uri).startswith("pkcs11:token=Jane%20Doe;manufacturer=")
        assert token_uri.matches_token(token.uri_attributes())
        assert len(s.find_uri(str(token_uri))) == 15
        for obj in s.objects():
            uri = obj.uri
            text = str(uri)
            parsed = Pkcs11Uri.parse(text)
            assert parsed == uri
            assert parsed.format() == text
            assert parsed.serial == token.serial and parsed.token == "Jane Doe"
            assert parsed.object_label == obj.label
            assert parsed.object_type is ObjectType.of(int(obj[Attribute.CLASS]))  # type: ignore[arg-type]
            assert parsed.matches_token(token.uri_attributes())
            assert parsed.matches_object(obj.attributes())
            # the URI names exactly this object on this card
            assert [o.handle for o in s.find_uri(text)] == [obj.handle]
        other = Pkcs11Uri.parse("pkcs11:serial=00000000;object=Signature%20key;type=private")
        assert s.find_uri(other) == []
        by_id = s.find_uri("pkcs11:id=%03;type=cert")
        assert [o.label for o in by_id] == [CERT_LABELS["aut"]]


def test_uri_of_a_private_key_in_token_form(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-rsa")
    with r.card.session() as s:
        text = str(s.get_key("aut").uri)
    assert text == (
        "pkcs11:token=Jane%20Doe;manufacturer=unmanaged%20S%2FN%20range;serial=10000001;"
        "model=OpenPGP%20card%203.4;object=Authentication%20key;type=private;id=%03"
    )


def test_open_card_in_process_card_repr(card_rig: Rig) -> None:
    card = card_rig.card
    assert isinstance(card, opcard.Card)
    assert card.serial == f"{card_rig.emu.serial:08X}"
    assert card.serial in repr(card)


def test_card_promising_extended_lengths_it_refuses_is_read_with_short_apdus() -> None:
    """The ATR says extended Lc/Le, but the card (or its reader) answers 6700 to extended
    APDUs: the card is opened with short APDUs and everything still reads."""
    from cryptography import x509

    import opcard
    from apdu.transport.loopback import LoopbackTransport
    from fixtures.card import OpenPGPCard
    from fixtures.personalize import demo_files, personalize

    emu = OpenPGPCard("extended")
    personalize(emu, "demo-ecc")
    emu.power_on()
    sent: list[bytes] = []

    def no_extended(apdu: bytes) -> bytes:
        sent.append(apdu)
        if len(apdu) > 5 and apdu[4] == 0:  # an extended Lc or Le
            return b"\x67\x00"
        return emu.transmit(apdu)

    card = opcard.Card(LoopbackTransport(no_extended, emu.atr))
    assert any(len(a) > 5 and a[4] == 0 for a in sent)  # extended was tried first
    refused = len(sent)
    with card.session() as s:
        cert = s.get_key("aut", object_class=opcard.ObjectClass.CERTIFICATE)
        expected = x509.load_pem_x509_certificate(demo_files("demo-ecc")["aut_cert"].read_bytes())
        assert cert[Attribute.VALUE] == expected.public_bytes(serialization.Encoding.DER)
        s.login(PW1)
        assert len(s.digest_signer("aut").sign_digest(bytes(32), "sha256")) == 64
    assert not any(len(a) > 5 and a[4] == 0 for a in sent[refused:])  # short APDUs from then on
