"""The pieces of opcard.tls on their own: versions, the server verifier, the tlslite key
classes, the signature schemes offered for card keys, and the fail-closed fallback check."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from tls_support import PW1, CardRig, Pki, issue

from apdu.openpgp.constants import KeySlot
from opcard.errors import AlertCode, NotLoggedInError, UnsupportedMechanismError
from opcard.tls import ServerCertificateError, TlsClient, TlsError, TlsVersion
from opcard.tls.keys import CardTlsEcdsaKey, CardTlsEd25519Key, CardTlsRsaKey, tls_private_key
from opcard.tls.verify import ServerVerifier

# --- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1.2", "TLSv1.2", "tls1.2", "TLS 1.2", "TLS1_2"])
def test_version_parse_12(text: str) -> None:
    assert TlsVersion.parse(text) is TlsVersion.TLS1_2


def test_version_parse_other() -> None:
    assert TlsVersion.parse("1.3") is TlsVersion.TLS1_3
    assert TlsVersion.parse(0x0304) is TlsVersion.TLS1_3
    assert TlsVersion.TLS1_3.label == "TLS 1.3" and TlsVersion.TLS1_2.tlslite == (3, 3)
    with pytest.raises(ValueError, match="RFC 8996"):
        TlsVersion.parse("1.1")
    with pytest.raises(ValueError, match="unknown TLS version"):
        TlsVersion.parse("2.0")


def test_version_range_errors(card_rig: object, pki: Pki) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    with rig.card.session() as session:
        with pytest.raises(ValueError, match="above the maximum"):
            TlsClient(session, cafile=pki.demo_ca_file, min_version="1.3", max_version="1.2")
        with pytest.raises(ValueError, match="DEC key"):
            TlsClient(session, slot="dec", cafile=pki.demo_ca_file)


def test_ca_file_errors(card_rig: object, tmp_path: Path) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with rig.card.session() as session:
        with pytest.raises(TlsError, match="cannot read the CA file"):
            TlsClient(session, cafile=tmp_path / "missing.pem")
        with pytest.raises(TlsError, match=r"no X\.509 certificate could be read"):
            TlsClient(session, cafile=garbage)


# --- the server verifier ---------------------------------------------------------------------


def _chain(*certs: x509.Certificate) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def test_verifier_accepts_name_and_ip(pki: Pki) -> None:
    verifier = ServerVerifier.from_cafile(pki.demo_ca_file)
    for host in ("localhost", "LOCALHOST", "127.0.0.1"):
        path = verifier.verify(_chain(pki.server.certificate), host)
        assert path == [pki.server.certificate, pki.demo_ca]
    # a trailing dot is part of the name, as OpenSSL compares it (test_tls_parity)
    with pytest.raises(ServerCertificateError, match=r"not valid for 'localhost\.'"):
        verifier.verify(_chain(pki.server.certificate), "localhost.")


def test_verifier_profile(pki: Pki) -> None:
    """The CA/Browser Forum profile, except that the authority key identifier may be absent;
    a server certificate for clients only (extended key usage clientAuth) is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    verifier = ServerVerifier.from_cafile(pki.demo_ca_file)
    plain = issue(
        pki.demo_ca, pki.demo_ca_key, key.public_key(), "x", names=["x.test"],
        authority_key_id=False,
    )  # fmt: skip
    assert verifier.verify(_chain(plain), "x.test")[0] == plain
    client_only = issue(
        pki.demo_ca, pki.demo_ca_key, key.public_key(), "x", names=["x.test"], client=True
    )
    with pytest.raises(ServerCertificateError):
        verifier.verify(_chain(client_only), "x.test")


def test_verifier_refusals(pki: Pki) -> None:
    verifier = ServerVerifier.from_cafile(pki.demo_ca_file)
    with pytest.raises(ServerCertificateError) as name:
        verifier.verify(_chain(pki.server.certificate), "::1")
    assert name.value.alert is AlertCode.BadCertificate
    with pytest.raises(ServerCertificateError) as unknown:
        verifier.verify(_chain(pki.other_server.certificate), "localhost")
    assert unknown.value.alert is AlertCode.UnknownCa
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    with pytest.raises(ServerCertificateError, match="not valid now") as expired:
        verifier.verify(_chain(pki.server.certificate), "localhost", now=later)
    assert expired.value.alert is AlertCode.CertificateExpired
    with pytest.raises(ServerCertificateError, match="no certificate"):
        verifier.verify([], "localhost")
    with pytest.raises(ServerCertificateError, match="malformed"):
        verifier.verify([b"\x30\x03\x02\x01\x00"], "localhost")
    # a version field cryptography does not know raises InvalidVersion, not a ValueError
    der = _chain(pki.server.certificate)[0]
    at = der.index(bytes.fromhex("a003020102")) + 4
    with pytest.raises(ServerCertificateError, match="malformed"):
        verifier.verify([der[:at] + b"\x05" + der[at + 1 :]], "localhost")
    with pytest.raises(TlsError, match="neither a DNS name nor an IP address"):
        verifier.verify(_chain(pki.server.certificate), "bad name!")


def test_verifier_intermediates(pki: Pki) -> None:
    """Server → intermediate (sent by the server) → trust anchor; an end-entity certificate
    cannot act as an issuer."""
    inter_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = issue(
        pki.other_ca, pki.other_ca_key, inter_key.public_key(), "intermediate", ca=True
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue(intermediate, inter_key, leaf_key.public_key(), "svc", names=["svc.test"])
    verifier = ServerVerifier.from_pem(pki.other_ca_file.read_bytes())
    assert verifier.verify(_chain(leaf, intermediate), "svc.test") == [
        leaf,
        intermediate,
        pki.other_ca,
    ]
    with pytest.raises(ServerCertificateError):
        verifier.verify(_chain(leaf), "svc.test")  # the intermediate is missing
    fake_key = ec.generate_private_key(ec.SECP256R1())
    fake = issue(pki.other_server.certificate, fake_key, leaf_key.public_key(), "x")
    with pytest.raises(ServerCertificateError):
        verifier.verify(_chain(fake, pki.other_server.certificate), "x")


# --- key classes -----------------------------------------------------------------------------


def test_key_needs_login(card_rig: object) -> None:
    assert callable(card_rig)
    for variant in ("demo-rsa", "demo-ecc", "demo-25519"):
        rig: CardRig = card_rig(variant)
        with rig.card.session() as session, pytest.raises(NotLoggedInError):
            tls_private_key(session, KeySlot.AUT)


def test_rsa_key(card_rig: object) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-rsa")
    with rig.card.session() as session:
        session.login(PW1)
        key = tls_private_key(session, KeySlot.AUT)
        assert isinstance(key, CardTlsRsaKey) and len(key) == 2048 and key.key_type == "rsa"
        public = session.get_key("aut").public().to_cryptography()  # type: ignore[attr-defined]
        digest = hashlib.sha256(b"transcript").digest()
        info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
        mark = rig.mark()
        signature = key.sign(bytearray(info), "pkcs1", None, 0)  # as TLS 1.2 calls it
        assert len(rig.since(mark)) == 1
        public.verify(
            bytes(signature), digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
        assert key.verify(signature, info, "pkcs1", None, 0)
        assert not key.verify(signature, info[:-1] + b"\x00", "pkcs1", None, 0)
        assert key.last_hash == "sha256" and key.signatures == 1
        with pytest.raises(UnsupportedMechanismError, match="RSA-PSS"):
            key.sign(bytearray(digest), "pss", "sha256", 32)
        assert len(rig.since(mark)) == 1  # PSS refused without asking the card


def test_ecdsa_key(card_rig: object) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    with rig.card.session() as session:
        session.login(PW1)
        key = tls_private_key(session, KeySlot.AUT)
        assert isinstance(key, CardTlsEcdsaKey) and len(key) == 256
        digest = hashlib.sha384(b"transcript").digest()
        # tlslite 0.8 cuts TLS 1.2 digests to private_key.curve.baselen: no cut for the card
        assert digest[: key.private_key.curve.baselen] == digest
        signature = key.sign(bytearray(digest), None, "sha384", None)
        public = session.get_key("aut").public().to_cryptography()  # type: ignore[attr-defined]
        public.verify(bytes(signature), digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
        assert key.verify(signature, digest, None, "sha384", None)
        assert not key.verify(signature, hashlib.sha384(b"other").digest(), None, "sha384")


def test_ed25519_key(card_rig: object) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-25519")
    with rig.card.session() as session:
        session.login(PW1)
        key = tls_private_key(session, KeySlot.AUT)
        assert isinstance(key, CardTlsEd25519Key) and key.key_type == "Ed25519"
        message = b" " * 64 + b"TLS 1.3, client CertificateVerify\x00" + bytes(32)
        mark = rig.mark()
        signature = key.hashAndSign(bytearray(message))
        assert len(rig.since(mark)) == 1 and len(signature) == 64
        assert key.hashAndVerify(signature, message)
        assert not key.hashAndVerify(signature, message + b"x")


def test_signature_schemes_for_card_keys(card_rig: object, pki: Pki) -> None:
    """No RSA-PSS scheme is ever chosen for an RSA card key; an ECDSA card key puts the hash
    of its curve first."""
    from tlslite.constants import SignatureScheme

    from opcard.tls.client import _CardTLSConnection

    assert callable(card_rig)
    rsa_rig: CardRig = card_rig("demo-rsa")
    ecc_rig: CardRig = card_rig("demo-ecc")
    with rsa_rig.card.session() as rsa_session, ecc_rig.card.session() as ecc_session:
        rsa_session.login(PW1)
        ecc_session.login(PW1)
        rsa_client = TlsClient(rsa_session, cafile=pki.demo_ca_file)
        ecc_client = TlsClient(ecc_session, cafile=pki.demo_ca_file)
        rsa_schemes = _CardTLSConnection._sigHashesToList(
            rsa_client.settings(), rsa_client.tls_key(), rsa_client._chain
        )
        names = [SignatureScheme.toRepr(s) or str(s) for s in rsa_schemes]
        assert names and not [n for n in names if "pss" in n]
        assert names[0] == "rsa_pkcs1_sha256"
        ecc_schemes = _CardTLSConnection._sigHashesToList(
            ecc_client.settings(), ecc_client.tls_key(), ecc_client._chain
        )
        assert ecc_schemes[0] == (4, 3)  # sha256, ecdsa
        # without a card key (the ClientHello's list), PSS stays: servers sign with it
        offered = _CardTLSConnection._sigHashesToList(rsa_client.settings())
        assert any("pss" in (SignatureScheme.toRepr(s) or "") for s in offered)


def test_fallback_check_fails_closed(
    card_rig: object, pki: Pki, openssl_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should tlslite stop calling the early check (a changed internal method), the check
    after the handshake still refuses an untrusted server."""
    from tlslite.tlsconnection import TLSConnection

    from opcard.tls.client import _CardTLSConnection

    assert callable(card_rig) and callable(openssl_server)
    monkeypatch.setattr(
        _CardTLSConnection, "_clientGetKeyFromChain", TLSConnection._clientGetKeyFromChain
    )
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(credentials=pki.other_server)
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file, confirm_timeout=None)
        session.login(PW1)
        with pytest.raises(ServerCertificateError, match="does not chain"):
            client.connect("localhost", server.port)
