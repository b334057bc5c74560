"""Failures: each one a clear opcard error, no PIN try used beyond one wrong attempt, and no
card signature or connection where there should be none.

Checked for every case: the exception (class, message, attributes), the PIN retry counter
afterwards (read from the card), the VERIFY commands the card received, the signing commands
it received, and what the server saw (its own output).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from tls_support import (
    INS_INTERNAL_AUTHENTICATE,
    PW1,
    PW3,
    CardRig,
    OpenSslServer,
    Pki,
    free_port,
    openssl_subject,
    slot_certificate,
)

from opcard.errors import (
    AlertCode,
    NotLoggedInError,
    ObjectNotFoundError,
    UnsupportedMechanismError,
    WrongPinError,
)
from opcard.tls import (
    ClientRejectedError,
    ServerCertificateError,
    TlsClient,
    TlsConnectError,
    TlsError,
    TlsHandshakeError,
    TlsVersion,
    TlsVersionError,
)


def _signing(rig: CardRig, mark: int) -> list[bytes]:
    return [c for c in rig.since(mark) if c[1] == INS_INTERNAL_AUTHENTICATE]


def _assert_untouched(server: OpenSslServer) -> None:
    """The server accepted no connection: its output is its start-up text only."""
    log = server.log()
    assert "ACCEPT" in log
    assert "depth=" not in log and "error" not in log.lower().replace("verify error", "")
    assert log.strip().endswith("ACCEPT"), log


def test_wrong_pin_uses_one_try_and_no_handshake(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        mark = rig.mark()
        with pytest.raises(WrongPinError) as info:
            session.login("654321")
        assert info.value.retries == 2 and "654321" not in str(info.value)
        with pytest.raises(NotLoggedInError):
            client.connect("localhost", server.port)
        assert len(rig.verifies(mark)) == 1
        assert _signing(rig, mark) == []
    assert rig.pin_retries() == 2
    _assert_untouched(server)


def test_missing_certificate(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    with rig.card.session() as session:
        session.login_admin(PW3)
        session.delete_certificate("aut")
    with rig.card.session() as session:
        mark = rig.mark()
        with pytest.raises(ObjectNotFoundError, match="no certificate in the AUT slot"):
            TlsClient(session, cafile=pki.demo_ca_file)
        assert rig.verifies(mark) == []
    assert rig.pin_retries() == 3
    _assert_untouched(server)


def test_certificate_of_another_key(card_rig: object, pki: Pki) -> None:
    """The SIG slot's certificate stored in the AUT slot: refused before any PIN."""
    from cryptography.hazmat.primitives.serialization import Encoding

    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    sig = slot_certificate(rig, "sig")
    with rig.card.session() as session:
        session.login_admin(PW3)
        session.store_certificate("aut", sig.public_bytes(Encoding.DER))
    with rig.card.session() as session, pytest.raises(TlsError, match="is not for the AUT key"):
        TlsClient(session, cafile=pki.demo_ca_file)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_rejects_the_client(
    version: str, card_rig: object, pki: Pki, openssl_server: object
) -> None:
    """s_server trusts another CA for client certificates: it refuses the card's."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(cafile=pki.other_ca_file)
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file, max_version=version)
        session.login(PW1)
        mark = rig.mark()
        with pytest.raises(ClientRejectedError) as info:
            client.connect("localhost", server.port)
        assert info.value.remote
        assert info.value.alert in (AlertCode.UnknownCa, AlertCode.BadCertificate)
        assert "refused the client certificate" in str(info.value)
        assert len(_signing(rig, mark)) == 1  # the card signed; the server said no
        assert rig.verifies(mark) == []
    assert rig.pin_retries() == 3
    log = server.wait_for("verify error")
    assert openssl_subject(slot_certificate(rig)) in log


def test_untrusted_server_certificate(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """The server's chain leads to a CA the client does not trust: the client says
    unknown_ca and stops before sending its certificate — the card signs nothing."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(credentials=pki.other_server)
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        for version in ("1.2", "1.3"):
            client = TlsClient(session, cafile=pki.demo_ca_file, max_version=version)
            mark = rig.mark()
            with pytest.raises(ServerCertificateError) as info:
                client.connect("localhost", server.port)
            assert info.value.alert is AlertCode.UnknownCa
            assert "does not chain to a CA of" in str(info.value)
            assert "CN=other CA" in str(info.value)
            assert rig.since(mark) == []  # no signature, nothing at all
    assert rig.pin_retries() == 3
    log = server.wait_for("SSL alert number 48")
    assert "depth=0" not in log  # the server never saw a client certificate


def test_wrong_server_name(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        mark = rig.mark()
        with pytest.raises(ServerCertificateError, match=r"not valid for 'www\.example\.org'") as e:
            client.connect("127.0.0.1", server.port, server_name="www.example.org")
        assert e.value.alert is AlertCode.BadCertificate
        assert rig.since(mark) == []
    server.wait_for("SSL alert number 42")


def test_no_verification_when_asked(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server(credentials=pki.other_server)
    with rig.card.session() as session:
        client = TlsClient(session, verify=False)
        session.login(PW1)
        with client.connect("localhost", server.port) as conn:
            assert conn.verified_chain is None
            assert conn.server_certificate == pki.other_server.certificate


def test_tls13_with_rsa_refused_before_connecting(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-rsa")
    server = openssl_server()
    with rig.card.session() as session:
        mark = rig.mark()
        with pytest.raises(TlsVersionError) as info:
            TlsClient(session, cafile=pki.demo_ca_file, min_version="1.3")
        message = str(info.value)
        assert "TLS 1.3" in message and "RSA-PSS" in message and "PKCS#1 v1.5" in message
        assert "ECC" in message
        assert isinstance(info.value, UnsupportedMechanismError)  # exit code 8 in the CLI
        assert rig.verifies(mark) == []
        # a range up to 1.3 is capped at 1.2 for an RSA key
        capped = TlsClient(session, cafile=pki.demo_ca_file, max_version="1.3")
        assert capped.max_version is TlsVersion.TLS1_2
    assert rig.pin_retries() == 3
    _assert_untouched(server)


def test_rsa_key_against_a_tls13_only_server(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-rsa")
    server = openssl_server(extra=("-tls1_3",))
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        with pytest.raises(TlsHandshakeError) as info:
            client.connect("localhost", server.port)
    assert info.value.alert == AlertCode.ProtocolVersion
    assert "RSA-PSS" in str(info.value)  # the reason the client could not offer TLS 1.3


def test_nothing_listening() -> None:
    pytest.importorskip("tlslite")
    from tls_support import make_card

    rig = make_card("demo-ecc")
    with rig.card, rig.card.session() as session:
        client = TlsClient(session, verify=False)
        session.login(PW1)
        with pytest.raises(TlsConnectError, match=r"cannot connect to 127\.0\.0\.1"):
            client.connect("127.0.0.1", free_port(), timeout=5)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that closes every connection at once (no TLS)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def test_server_that_does_not_speak_tls(card_rig: object, silent_server: int) -> None:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    with rig.card.session() as session:
        client = TlsClient(session, verify=False)
        session.login(PW1)
        mark = rig.mark()
        with pytest.raises(TlsHandshakeError, match="closed the connection during the handshake"):
            client.connect("127.0.0.1", silent_server, timeout=5)
        assert rig.since(mark) == []
