"""Handshakes with the emulated card's keys against servers nobody here wrote.

``openssl s_server -Verify 1 -CAfile <demo CA>`` and ``gnutls-serv --require-client-cert
--verify-client-cert`` require and verify the client certificate; each test checks that the
handshake succeeds in the version asked for, that the server's own output shows the card's
certificate subject (the server verified the card's signature and certificate), and what the
card received: exactly one signing command after login, with the input format of the key.
"""

from __future__ import annotations

import pytest
from tls_support import (
    INS_INTERNAL_AUTHENTICATE,
    INS_PSO,
    PW1,
    CardRig,
    Pki,
    apdu_data,
    gnutls_subject,
    install_client_certificate,
    install_p384,
    openssl_subject,
    slot_certificate,
)

from opcard.tls import ClientRejectedError, ServerCertificateError, TlsClient, TlsVersion

# (card, TLS version) pairs that must work: RSA in TLS 1.2, ECC keys in 1.2 and 1.3
MATRIX = [
    ("demo-rsa", "1.2"),
    ("demo-ecc", "1.2"),
    ("demo-ecc", "1.3"),
    ("p384", "1.2"),
    ("p384", "1.3"),
    ("demo-25519", "1.2"),
    ("demo-25519", "1.3"),
]
IDS = [f"{card}-tls{version}" for card, version in MATRIX]
# what s_server's -www page says about the client's CertificateVerify
PEER_SIGNATURE = {
    "demo-rsa": ("RSA", "SHA256"),
    "demo-ecc": ("ECDSA", "SHA256"),
    "p384": ("ECDSA", "SHA384"),
    "demo-25519": ("ed25519", None),
}


def _card(card_rig: object, pki: Pki, name: str) -> CardRig:
    assert callable(card_rig)
    if name == "p384":
        rig: CardRig = card_rig("demo-ecc")
        install_p384(rig, pki)
        return rig
    made: CardRig = card_rig(name)
    return made


def _check_signature_command(rig: CardRig, commands: list[bytes], name: str, version: str) -> None:
    """The handshake sent the card exactly one command: INTERNAL AUTHENTICATE (AUT key) with
    the input format of the key type (chained only for a long Ed25519 TLS 1.2 transcript)."""
    signing = [c for c in commands if c[1] in (INS_INTERNAL_AUTHENTICATE, INS_PSO)]
    assert signing == commands, [c[:4].hex() for c in commands]
    if name == "demo-25519" and version == "1.2":
        # PureEdDSA over the whole transcript, from the ClientHello (handshake type 1) on:
        # one command while it fits the card's 2048 bytes, command chaining (CLA 10) beyond
        assert all(c[0] == 0x10 for c in commands[:-1]) and commands[-1][0] == 0x00
        assert apdu_data(commands[0])[:1] == b"\x01"
        return
    assert len(commands) == 1
    command = commands[0]
    assert command[:4] == bytes([0x00, INS_INTERNAL_AUTHENTICATE, 0x00, 0x00])
    data = apdu_data(command)
    if name == "demo-rsa":  # a DigestInfo: SEQUENCE { AlgorithmIdentifier, OCTET STRING }
        assert data[0] == 0x30 and len(data) in (35, 47, 51, 67, 83)
    elif name == "demo-ecc":  # the SHA-256 hash (P-256 prefers it)
        assert len(data) == 32
    elif name == "p384":  # the SHA-384 hash
        assert len(data) == 48
    else:  # Ed25519, TLS 1.3: 64 spaces, the context string, 0, the transcript hash
        assert data.startswith(b" " * 64 + b"TLS 1.3, client CertificateVerify\x00")


@pytest.mark.parametrize(("name", "version"), MATRIX, ids=IDS)
def test_openssl_s_server(
    name: str, version: str, card_rig: object, pki: Pki, openssl_server: object
) -> None:
    rig = _card(card_rig, pki, name)
    assert callable(openssl_server)
    server = openssl_server()
    with rig.card.session() as session:
        client = TlsClient(
            session, cafile=pki.demo_ca_file, min_version=version, max_version=version
        )
        session.login(PW1)
        mark = rig.mark()
        with client.connect("localhost", server.port) as conn:
            handshake = rig.since(mark)
            assert conn.version is TlsVersion.parse(version)
            assert conn.card_signatures == 1
            assert conn.client_certificate == slot_certificate(rig)
            assert conn.server_certificate == pki.server.certificate
            assert conn.verified_chain is not None and conn.verified_chain[-1] == pki.demo_ca
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            page = conn.read_until_close(idle_timeout=5)
    _check_signature_command(rig, handshake, name, version)
    assert page.startswith(b"HTTP/1.0 200 ok")
    # -www describes the session as the server saw it: protocol, the client's signature
    text = page.decode()
    assert f"Protocol  : TLSv{version}" in text
    kind, digest = PEER_SIGNATURE[name]
    assert f"Peer signature type: {kind}\n" in text
    if digest:
        assert f"Peer signing digest: {digest}\n" in text
    assert f"CN=opcard {'tls P-384 client' if name == 'p384' else 'demo AUT'}" in text
    log = server.wait_for(openssl_subject(slot_certificate(rig)))
    assert "verify error" not in log


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("demo-rsa", "1.2"),
        ("demo-ecc", "1.2"),
        ("demo-ecc", "1.3"),
        ("demo-25519", "1.2"),
        ("demo-25519", "1.3"),
    ],
    ids=[
        "demo-rsa-tls1.2",
        "demo-ecc-tls1.2",
        "demo-ecc-tls1.3",
        "ed25519-tls1.2",
        "ed25519-tls1.3",
    ],
)
def test_gnutls_serv(
    name: str, version: str, card_rig: object, pki: Pki, gnutls_server: object
) -> None:
    rig = _card(card_rig, pki, name)
    assert callable(gnutls_server)
    server = gnutls_server()
    with rig.card.session() as session:
        client = TlsClient(
            session, cafile=pki.demo_ca_file, min_version=version, max_version=version
        )
        session.login(PW1)
        mark = rig.mark()
        with client.wrap_socket(server.connect(), server_name="localhost") as conn:
            handshake = rig.since(mark)
            assert conn.version is TlsVersion.parse(version)
            assert conn.card_signatures == 1
            conn.sendall(b"hello from the card\n")
            assert conn.recv(timeout=5) == b"hello from the card\n"  # --echo
    _check_signature_command(rig, handshake, name, version)
    log = server.wait_for(f"Subject: {gnutls_subject(slot_certificate(rig))}")
    assert f"Version: TLS{version}" in log
    expected = {"demo-rsa": "RSA-SHA", "demo-ecc": "ECDSA-", "demo-25519": "EdDSA-Ed25519"}
    assert f"Client Signature: {expected[name]}" in log


def test_sig_slot(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """Any slot on request: the SIG key signs with PSO:COMPUTE DIGITAL SIGNATURE. The demo
    SIG certificate is for e-mail protection: the server refuses it (unsupported_certificate),
    a certificate for client authentication is accepted."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    with rig.card.session() as session:
        client = TlsClient(session, slot="sig", cafile=pki.demo_ca_file)
        session.login(PW1)
        with pytest.raises(ClientRejectedError, match=r"unsupported_certificate \(43\)"):
            client.connect("localhost", server.port)
    cert = install_client_certificate(rig, pki, "sig")
    with rig.card.session() as session:
        client = TlsClient(session, slot="sig", cafile=pki.demo_ca_file)
        session.login(PW1)
        client.tls_key()  # PW1 for the SIG key (mode 81) is verified here, once
        mark = rig.mark()
        with client.connect("127.0.0.1", server.port) as conn:
            assert conn.version is TlsVersion.TLS1_3
            assert conn.client_certificate == cert
        commands = rig.since(mark)
    assert [c[:4] for c in commands] == [bytes([0x00, INS_PSO, 0x9E, 0x9A])]
    server.wait_for(openssl_subject(cert))


def test_defaults_negotiate_tls13_with_ecc_and_tls12_with_rsa(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    server = openssl_server()
    for variant, expected in (("demo-ecc", TlsVersion.TLS1_3), ("demo-rsa", TlsVersion.TLS1_2)):
        rig: CardRig = card_rig(variant)
        with rig.card.session() as session:
            client = TlsClient(session, cafile=pki.demo_ca_file)
            assert client.max_version is expected
            session.login(PW1)
            with client.connect("localhost", server.port) as conn:
                assert conn.version is expected


def test_several_handshakes_one_signature_each(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    """After login, each handshake costs the card exactly one APDU, nothing else."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        for _ in range(3):
            mark = rig.mark()
            with client.connect("localhost", server.port) as conn:
                assert conn.card_signatures == 1
            assert len(rig.since(mark)) == 1


def test_alpn(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """The protocol the server chose from the client's list is reported (both versions)."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(extra=("-alpn", "http/1.1"))
    with rig.card.session() as session:
        session.login(PW1)
        for version in ("1.2", "1.3"):
            client = TlsClient(
                session, cafile=pki.demo_ca_file, alpn=["h2", "http/1.1"], max_version=version
            )
            with client.connect("localhost", server.port) as conn:
                assert conn.version is TlsVersion.parse(version)
                assert conn.alpn == "http/1.1"
        with TlsClient(session, cafile=pki.demo_ca_file).connect("localhost", server.port) as c:
            assert c.alpn is None  # nothing offered, nothing chosen


def test_sni(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """s_server answers the SNI "localhost" with the certificate for it (-cert2) and any
    other name, or no SNI, with its default one (valid for default.invalid only)."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(
        credentials=pki.sni_default,
        extra=(
            "-servername", "localhost",
            "-cert2", str(pki.server.cert), "-key2", str(pki.server.key),
        ),
    )  # fmt: skip
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        with client.connect("127.0.0.1", server.port, server_name="localhost") as conn:
            assert conn.server_certificate == pki.server.certificate
        with client.connect("127.0.0.1", server.port, server_name="default.invalid") as conn:
            assert conn.server_certificate == pki.sni_default.certificate
        # an IP address is never sent as SNI: the default certificate, not valid for the IP
        with pytest.raises(ServerCertificateError, match=r"not valid for '127\.0\.0\.1'"):
            client.connect("127.0.0.1", server.port)


def test_version_limits(card_rig: object, pki: Pki, openssl_server: object) -> None:
    from opcard.tls import TlsHandshakeError

    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    only13 = openssl_server(extra=("-tls1_3",))
    only12 = openssl_server(extra=("-tls1_2",))
    with rig.card.session() as session:
        session.login(PW1)
        capped = TlsClient(session, cafile=pki.demo_ca_file, max_version="1.2")
        with capped.connect("localhost", only12.port) as conn:
            assert conn.version is TlsVersion.TLS1_2
        with pytest.raises(TlsHandshakeError) as info:
            capped.connect("localhost", only13.port)
        assert info.value.remote and info.value.alert == 70  # protocol_version
        assert "protocol_version" in str(info.value)
        floor = TlsClient(session, cafile=pki.demo_ca_file, min_version="1.3")
        with pytest.raises(TlsHandshakeError):
            floor.connect("localhost", only12.port)
