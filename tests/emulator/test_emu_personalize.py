"""The demo personalisations: keys, fingerprints, times, certificates, cardholder data."""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Callable

import pytest
from card_apdus import Driver, application_data, constructed, fpr_list, tlv_dict
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_emu_crypto import pem_public, read_public

from fixtures.card import OpenPGPCard
from fixtures.personalize import (
    DEMO_NAMES,
    DEMO_TIME,
    demo_dir,
    demo_files,
    personalize,
    public_key_packet_body,
)

SLOTS = ("sig", "dec", "aut")


def test_names_and_files() -> None:
    assert set(DEMO_NAMES) == {"demo", "demo-rsa", "demo-ecc", "demo-25519"}
    assert demo_files("demo") == demo_files("demo-rsa")
    for name in DEMO_NAMES:
        for path in demo_files(name).values():
            assert path.is_file() and path.is_relative_to(demo_dir())
    with pytest.raises(ValueError):
        demo_files("nope")


def test_demo_time() -> None:
    assert datetime.datetime.fromtimestamp(DEMO_TIME, datetime.UTC) == datetime.datetime(
        2025, 6, 1, tzinfo=datetime.UTC
    )


def test_personalised_card(make: Callable[..., Driver], variant: str, profile: str) -> None:
    d = make(profile, variant)
    files = demo_files(variant)
    _top, dd = application_data(d)
    assert dd[0xDE] == bytes.fromhex("010202020302")
    assert dd[0xCD] == fpr_list(d, [DEMO_TIME.to_bytes(4, "big")] * 3, 4)
    assert dd[0xC6] == fpr_list(d, [], 20)
    assert dd[0xC4][4:] == b"\x03\x00\x03"
    for i, slot in enumerate(SLOTS):
        assert read_public(d, slot) == pem_public(variant, slot)
        assert dd[0xC5][20 * i : 20 * i + 20] == d.card.state.fingerprints[i] != bytes(20)
    # certificates: occurrence 0 AUT, 1 DEC, 2 SIG, byte for byte the PEM files' DER
    for occ, slot in enumerate(("aut", "dec", "sig")):
        d.send(0xA5, occ, 0x04, bytes.fromhex("60045C027F21"))
        der = x509.load_pem_x509_certificate(files[f"{slot}_cert"].read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
        assert d.send(0xCA, 0x7F, 0x21, le=0).data == der
    ch = tlv_dict(constructed(d, 0x0065))
    assert ch == {0x5B: b"Doe<<Jane", 0x5F2D: b"en", 0x5F35: b"2"}
    assert d.get(0x5F50).data == b"https://example.invalid/opcard-demo.asc"
    assert d.get(0x005E).data == b"jdoe"
    assert d.get(0x0101).data == b"opcard demo private DO 1"
    assert d.verify(0x82, b"123456").ok and d.verify(0x83, b"12345678").ok


def test_fingerprints_match_pgpy(make: Callable[..., Driver], variant: str) -> None:
    """pgpy parses our v4 public key packets and computes the same fingerprints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgpy
    d = make("extended", variant)
    fprs = d.get(0x00C5).data
    for i, slot in enumerate(SLOTS):
        pub = pem_public(variant, slot)
        body = public_key_packet_body(pub, DEMO_TIME, ecdh=slot == "dec")
        packet = bytes([0xC6, 0xFF]) + len(body).to_bytes(4, "big") + body
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key, _ = pgpy.PGPKey.from_blob(packet)
        assert key.fingerprint.replace(" ", "") == fprs[20 * i : 20 * i + 20].hex().upper()
        assert int(key.created.timestamp()) == DEMO_TIME
        expected_algo = {
            ("demo-rsa", "sig"): 1,
            ("demo-rsa", "dec"): 1,
            ("demo-rsa", "aut"): 1,
            ("demo-ecc", "sig"): 19,
            ("demo-ecc", "dec"): 18,
            ("demo-ecc", "aut"): 19,
            ("demo-25519", "sig"): 22,
            ("demo-25519", "dec"): 18,
            ("demo-25519", "aut"): 22,
        }[(variant, slot)]
        assert int(key.key_algorithm) == expected_algo
        if expected_algo == 18:
            # KDF parameters as GnuPG writes them: SHA256 (8) + AES128 (7)
            assert body[-4:] == bytes([3, 1, 8, 7])


def test_fingerprint_known_vector() -> None:
    """RFC 4880 v4 fingerprint of a fixed RSA key, checked against a hand-built packet."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import rsa

    n = (1 << 2047) + 12345  # any odd 2048-bit number: only the encoding matters here
    pub = rsa.RSAPublicNumbers(65537, n).public_key()
    body = public_key_packet_body(pub, 0x5C000000, ecdh=False)
    expected_body = (
        b"\x04\x5c\x00\x00\x00\x01" + b"\x08\x00" + n.to_bytes(256, "big") + b"\x00\x11\x01\x00\x01"
    )
    assert body == expected_body
    from fixtures.personalize import v4_fingerprint

    assert (
        v4_fingerprint(pub, 0x5C000000)
        == hashlib.sha1(b"\x99" + len(expected_body).to_bytes(2, "big") + expected_body).digest()
    )


def test_certificates_issued_by_demo_ca(variant: str) -> None:
    files = demo_files(variant)
    ca = x509.load_pem_x509_certificate(files["ca"].read_bytes())
    ca_key = serialization.load_pem_private_key(files["ca_key"].read_bytes(), None)
    assert ca.public_key() == ca_key.public_key()  # type: ignore[union-attr]
    assert ca.not_valid_before_utc == datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    assert ca.not_valid_after_utc == datetime.datetime(2045, 1, 1, tzinfo=datetime.UTC)
    for slot in SLOTS:
        cert = x509.load_pem_x509_certificate(files[f"{slot}_cert"].read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.public_key() == pem_public(variant, slot)
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert cn.startswith(f"opcard demo {slot.upper()} (")
        assert (
            cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
            == "opcard demo"
        )
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if slot == "aut":
            assert ku.digital_signature
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
        elif slot == "sig":
            assert ku.digital_signature and ku.content_commitment
        else:
            assert ku.key_agreement or ku.key_encipherment
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)


def test_is_fresh_and_state_file(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    path = tmp_path / "state.json"
    card = OpenPGPCard("extended", state_file=path)
    assert card.is_fresh
    personalize(card, "demo")
    again = OpenPGPCard("extended", state_file=path)
    assert not again.is_fresh
    assert again.state.fingerprints == card.state.fingerprints
    assert again.state.certs == card.state.certs


def test_fingerprints_match_gnupg_vectors() -> None:
    """Known answers recorded from GnuPG 2.2.40: its own fingerprints of on-card keys."""
    import json
    import pathlib

    from test_emu_crypto import public_from_template

    from fixtures.personalize import v4_fingerprint

    doc = json.loads((pathlib.Path(__file__).parent / "gnupg_fingerprints.json").read_text())
    kinds = set()
    for v in doc["vectors"]:
        attrs = bytes.fromhex(v["attributes"])
        pub = public_from_template(attrs, bytes.fromhex(v["public_key_template"]))
        got = v4_fingerprint(pub, v["created"], ecdh=attrs[0] == 0x12)
        assert got.hex() == v["gnupg_fingerprint"]
        kinds.add(attrs[:2])
    assert len(kinds) >= 5  # RSA, ECDSA, EdDSA, ECDH NIST/brainpool, ECDH cv25519
