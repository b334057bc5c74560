"""Session resumption (#14): a reconnect resumes the session and costs the card nothing.

Against ``openssl s_server`` (its ``-www`` page says ``Reused, TLSv1.x`` for a resumed
session and still names the client certificate of the first handshake) and ``gnutls-serv``
(its log says ``*** This is a resumed session``), TLS 1.2 and 1.3, ECDSA and RSA card keys,
client certificates required; the card's commands are counted in the emulator's own log.
Then the rules: a session is never offered to another server (host or port), for another
server name, with another card certificate or slot, or under other trust settings; a server
that declines a session gets a full handshake.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from tls_support import (
    PW1,
    CardRig,
    OpenSslServer,
    Pki,
    install_client_certificate,
    install_p384,
    slot_certificate,
)

from opcard.errors import TlsError
from opcard.tls import SessionCache, TlsClient, TlsSession, TlsVersion
from opcard.tls.verify import spki_sha256

CASES = [("demo-ecc", "1.2"), ("demo-ecc", "1.3"), ("demo-rsa", "1.2")]
IDS = [f"{card}-tls{version}" for card, version in CASES]
GET = b"GET / HTTP/1.0\r\n\r\n"


def _page(client: TlsClient, port: int, rig: CardRig) -> tuple[bool, int, str]:
    """(resumed, card commands in the handshake, s_server's -www page)."""
    mark = rig.mark()
    with client.connect("localhost", port) as conn:
        commands = len(rig.since(mark))
        conn.sendall(GET)
        page = conn.read_until_close(idle_timeout=5).decode()
    return conn.resumed, commands, page


@pytest.mark.parametrize(("variant", "version"), CASES, ids=IDS)
def test_openssl_s_server_resumes(
    variant: str, version: str, card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig(variant)
    server = openssl_server()
    cache = SessionCache()
    with rig.card.session() as session:
        client = TlsClient(
            session,
            cafile=pki.demo_ca_file,
            min_version=version,
            max_version=version,
            session_cache=cache,
        )
        session.login(PW1)
        key = client.tls_key()
        resumed, commands, page = _page(client, server.port, rig)
        assert (resumed, commands, key.signatures) == (False, 1, 1)
        assert f"New, TLSv{version}" in page
        for _ in range(3):
            resumed, commands, page = _page(client, server.port, rig)
            assert resumed and commands == 0  # no APDU at all
            assert f"Reused, TLSv{version}" in page
            # the server still knows the card's certificate from the first handshake
            assert "opcard demo AUT" in page
        assert key.signatures == 1
        assert len(cache) >= 1


@pytest.mark.parametrize("tickets", [True, False], ids=["ticket", "session-id"])
def test_tls12_by_ticket_and_by_session_id(
    tickets: bool, card_rig: object, pki: Pki, openssl_server: object
) -> None:
    """OpenSSL issues a TLS 1.2 ticket (RFC 5077) by default; with -no_ticket the session ID
    of its cache resumes. Both: 0 APDUs, and the SIG key's signature counter (PSO:CDS counts
    its signatures on the card) does not move on a resumption."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    install_client_certificate(rig, pki, "sig")
    server = openssl_server(extra=() if tickets else ("-no_ticket",))
    with rig.card.session() as session:
        client = _client(session, pki, SessionCache(), slot="sig", max_version="1.2")
        session.login(PW1)
        client.tls_key()
        counter = rig.card.signature_counter()
        resumed, commands, page = _page(client, server.port, rig)
        assert (resumed, commands) == (False, 1) and "New, TLSv1.2" in page
        assert rig.card.signature_counter() == counter + 1
        with client.connect("localhost", server.port) as conn:
            assert conn.resumed
            mechanism = repr(conn.session)
        assert ("TLS 1.2 ticket" in mechanism) is tickets
        assert ("session ID" in mechanism) is True  # the server's, or ours sent with a ticket
        resumed, commands, page = _page(client, server.port, rig)
        assert resumed and commands == 0 and "Reused, TLSv1.2" in page
        assert rig.card.signature_counter() == counter + 1


@pytest.mark.parametrize(("variant", "version"), CASES, ids=IDS)
def test_gnutls_serv_resumes(
    variant: str, version: str, card_rig: object, pki: Pki, gnutls_server: object
) -> None:
    assert callable(card_rig) and callable(gnutls_server)
    rig: CardRig = card_rig(variant)
    server = gnutls_server()
    cache = SessionCache()
    with rig.card.session() as session:
        client = TlsClient(
            session,
            cafile=pki.demo_ca_file,
            min_version=version,
            max_version=version,
            session_cache=cache,
        )
        session.login(PW1)
        results = []
        for n in range(3):
            mark = rig.mark()
            with client.wrap_socket(server.connect(), server_name="localhost") as conn:
                results.append((conn.resumed, len(rig.since(mark)), conn.version))
                conn.sendall(b"ping %d\n" % n)
                assert conn.recv(timeout=5) == b"ping %d\n" % n
    expected = TlsVersion.parse(version)
    assert results == [(False, 1, expected), (True, 0, expected), (True, 0, expected)]
    log = server.wait_for("ping 2")
    assert log.count("*** This is a resumed session") == 2
    assert f"Version: TLS{version}" in log


def _client(session: object, pki: Pki, cache: SessionCache, **options: object) -> TlsClient:
    return TlsClient(session, cafile=pki.demo_ca_file, session_cache=cache, **options)  # type: ignore[arg-type]


def test_never_across_servers_or_names(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """Another port, another host string for the same server, another server name: each a
    full handshake (one card signature), though all the servers would resume."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    first = openssl_server()
    second = openssl_server()  # the same certificate, another port
    sni = openssl_server(
        credentials=pki.sni_default,
        extra=(
            "-servername", "localhost",
            "-cert2", str(pki.server.cert), "-key2", str(pki.server.key),
        ),
    )  # fmt: skip
    cache = SessionCache()
    with rig.card.session() as session:
        client = _client(session, pki, cache)
        session.login(PW1)
        key = client.tls_key()

        def kind(host: str, port: int, name: str | None = None) -> str:
            before = key.signatures
            with client.connect(host, port, server_name=name) as conn:
                assert conn.card_signatures == key.signatures - before
                return "resumed" if conn.resumed else "full"

        assert kind("localhost", first.port) == "full"
        assert kind("localhost", first.port) == "resumed"
        assert kind("localhost", second.port) == "full"
        assert kind("127.0.0.1", first.port, "localhost") == "full"  # another host
        assert kind("127.0.0.1", first.port, "localhost") == "resumed"
        # the same server and port, two names (two certificates): a session each
        assert kind("127.0.0.1", sni.port, "localhost") == "full"
        assert kind("127.0.0.1", sni.port, "default.invalid") == "full"
        assert kind("127.0.0.1", sni.port, "localhost") == "resumed"
        assert kind("127.0.0.1", sni.port, "default.invalid") == "resumed"
        # a session given explicitly for another server is not offered, and says why
        other = client.connect("localhost", first.port)
        other.close()
        assert other.session is not None
        with client.connect("localhost", second.port, session=other.session) as conn:
            assert not conn.resumed and conn.card_signatures == 1
            assert conn.session_refused is not None
            assert f"localhost:{first.port}, not localhost:{second.port}" in conn.session_refused
        # still good for its own server: kept in the cache, and resumed there
        assert other.session in cache.sessions()
        assert kind("localhost", first.port) == "resumed"


def test_never_across_client_certificates(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    """The same card: the SIG slot's session is not the AUT slot's; after the AUT key and
    certificate are replaced (another card identity) the old session is not offered."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    install_client_certificate(rig, pki, "sig")
    server = openssl_server()
    cache = SessionCache()
    with rig.card.session() as session:
        aut = _client(session, pki, cache)
        sig = _client(session, pki, cache, slot="sig")
        session.login(PW1)
        sig.tls_key()
        with aut.connect("localhost", server.port) as conn:
            assert not conn.resumed
        with aut.connect("localhost", server.port) as conn:
            assert conn.resumed
        mark = rig.mark()
        with sig.connect("localhost", server.port) as conn:
            assert not conn.resumed and conn.client_certificate == slot_certificate(rig, "sig")
        assert len(rig.since(mark)) == 1  # PSO:CDS
        saved = conn.session
    # a new AUT key and certificate on the same card
    new_cert = install_p384(rig, pki)
    with rig.card.session() as session:
        aut = _client(session, pki, cache)
        session.login(PW1)
        mark = rig.mark()
        with aut.connect("localhost", server.port) as conn:
            assert not conn.resumed and conn.client_certificate == new_cert
        assert len(rig.since(mark)) == 1
        # the SIG session offered explicitly to the AUT client: refused, and why
        assert saved is not None
        with aut.connect("localhost", server.port, session=saved) as conn:
            assert not conn.resumed
            assert conn.session_refused == (
                "it was made with another card, key slot or client certificate"
            )


def test_never_under_other_trust(card_rig: object, pki: Pki, openssl_server: object) -> None:
    """A session made with --no-verify, or with the demo CA only, is not resumed by a client
    with pins (stricter), another CA file, or verification on; a session whose stored server
    chain fails the current verification is never offered (checked again before offering)."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    cache = SessionCache()
    good_pin = spki_sha256(pki.server.certificate)
    bad_pin = spki_sha256(pki.other_server.certificate)
    with rig.card.session() as session:
        session.login(PW1)
        insecure = TlsClient(session, verify=False, session_cache=cache)
        plain = _client(session, pki, cache)
        pinned = _client(session, pki, cache, pinned_keys=[good_pin])
        wrong_pin = _client(session, pki, cache, pinned_keys=[bad_pin])
        both_cas = TlsClient(session, cadata=pki.demo_ca_file.read_bytes()
                             + pki.other_ca_file.read_bytes(), session_cache=cache)  # fmt: skip
        for client in (insecure, plain, pinned, both_cas):
            client.tls_key()
        with insecure.connect("localhost", server.port) as conn:
            assert not conn.resumed and conn.verified_chain is None
        with insecure.connect("localhost", server.port) as conn:
            assert conn.resumed
        for client in (plain, pinned, both_cas):
            with client.connect("localhost", server.port) as conn:
                assert not conn.resumed and conn.card_signatures == 1
                assert conn.verified_chain is not None
            with client.connect("localhost", server.port) as conn:
                assert conn.resumed and conn.card_signatures == 0
                # the stored chain was verified again, under this client's trust
                assert conn.verified_chain is not None
                assert conn.verified_chain[-1] == pki.demo_ca
        # a stricter client given the plain client's session: not offered, and not by its
        # trust key alone: the stored chain is checked against the wrong pin
        made = plain.connect("localhost", server.port)
        made.close()
        assert made.session is not None
        forged = TlsSession.from_bytes(
            made.session.to_bytes().replace(
                made.session.key.trust.encode(),
                wrong_pin.session_key("localhost", server.port).trust.encode(),
            )
        )
        from opcard.errors import ServerCertificateError

        with pytest.raises(ServerCertificateError):  # the full handshake fails the pin
            wrong_pin.connect("localhost", server.port, session=forged)
        # the same binding, but a stored server chain the current trust refuses (another
        # CA's certificate): checked again before offering, so not offered
        import base64

        from cryptography.hazmat.primitives import serialization

        def der64(cert: object) -> bytes:
            return base64.b64encode(cert.public_bytes(serialization.Encoding.DER))  # type: ignore[attr-defined]

        other_chain = TlsSession.from_bytes(
            made.session.to_bytes().replace(
                der64(pki.server.certificate), der64(pki.other_server.certificate)
            )
        )
        assert other_chain.key == made.session.key
        with plain.connect("localhost", server.port, session=other_chain) as conn:
            assert not conn.resumed and conn.card_signatures == 1
            assert conn.session_refused is not None
            assert conn.session_refused.startswith(
                "its server certificate does not pass verification now"
            )


def test_declined_session_falls_back_to_a_full_handshake(
    card_rig: object, pki: Pki, openssl_server: object, tmp_path: Path
) -> None:
    """A server restarted on the same port knows neither the session ID nor the ticket key:
    it declines, and the handshake is a full one (tlslite alone would fail on a declined
    TLS 1.2 ticket). TLS 1.2 and 1.3."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    first = openssl_server()
    port = first.port
    cache = SessionCache()
    with rig.card.session() as session:
        session.login(PW1)
        for version in ("1.2", "1.3"):
            client = _client(session, pki, cache, max_version=version, min_version=version)
            with client.connect("localhost", port) as conn:
                assert not conn.resumed
            assert conn.wait_for_session(0) is not None
        first.stop()
        restarted = OpenSslServer(
            "openssl",
            tmp_path / "restarted.log",
            cert=pki.server.cert,
            key=pki.server.key,
            cafile=pki.demo_ca_file,
        )
        restarted.port = port
        restarted.argv[restarted.argv.index("-accept") + 1] = f"127.0.0.1:{port}"
        restarted.start()
        try:
            for version in ("1.2", "1.3"):
                client = _client(session, pki, cache, max_version=version, min_version=version)
                mark = rig.mark()
                with client.connect("localhost", port) as conn:
                    assert not conn.resumed and conn.card_signatures == 1
                    assert conn.session_refused == "the server declined it (full handshake)"
                    conn.sendall(GET)
                    assert f"New, TLSv{version}" in conn.read_until_close(5).decode()
                assert len(rig.since(mark)) == 1
        finally:
            restarted.stop()


def test_tls13_tickets_are_used_once_and_sessions_expire(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    cache = SessionCache(lifetime=3600)
    with rig.card.session() as session:
        client = _client(session, pki, cache, min_version="1.3")
        session.login(PW1)
        with client.connect("localhost", server.port) as conn:
            pass
        full = conn.session
        assert full is not None and full.resumable
        tickets = list(full._session.tickets)
        assert len(tickets) == 2  # OpenSSL sends two
        used = []
        for _ in range(2):
            with client.connect("localhost", server.port, session=full) as conn:
                assert conn.resumed
            used.append(conn._tls.session)
        assert not full.resumable  # both tickets used, each once
        with client.connect("localhost", server.port, session=full) as conn:
            assert not conn.resumed and conn.session_refused == "it holds no usable ticket"
        # age limit: counted from the full handshake, kept by the resumed sessions
        latest = cache.get(client.session_key("localhost", server.port))
        assert latest is not None and latest.resumable
        latest.expires = time.time() - 1
        assert not latest.resumable
        with client.connect("localhost", server.port, session=latest) as conn:
            assert not conn.resumed and conn.session_refused == "it has expired"


# --- session files --------------------------------------------------------------------------


def _session_file(tmp_path: Path, card_rig: object, pki: Pki, server: OpenSslServer) -> Path:
    assert callable(card_rig)
    rig: CardRig = card_rig("demo-ecc")
    with rig.card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        session.login(PW1)
        with client.connect("localhost", server.port) as conn:
            saved = conn.wait_for_session()
    assert saved is not None
    path = tmp_path / "session.json"
    saved.save(path)
    return path


def test_session_file_is_private_and_parsed_strictly(
    card_rig: object, pki: Pki, openssl_server: object, tmp_path: Path
) -> None:
    assert callable(openssl_server)
    path = _session_file(tmp_path, card_rig, pki, openssl_server())
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".opcard-session-")]
    good = path.read_bytes()
    loaded = TlsSession.load(path)
    assert loaded.to_bytes() == good
    assert "secret" not in repr(loaded) and good.hex() not in repr(loaded)
    os.chmod(path, 0o640)
    with pytest.raises(TlsError, match=r"accessible by others \(mode 0640\).*chmod 600"):
        TlsSession.load(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(TlsError, match="is a symbolic link: refused"):
        TlsSession.load(link)  # not followed
    bad = {
        b"": "not JSON",
        b"\x80\xff": "not JSON",
        b"[]": "not a JSON object",
        b'{"format": "x"}': "no 'format'",
        good.replace(b'"format_version": 1', b'"format_version": 9'): "format version 9",
        good.replace(b'"port": ', b'"port": -'): "'port' is out of range",
        good.replace(b'"version": 772', b'"version": 771.5'): "'version' has the wrong type",
        good.replace(b'"version": 772', b'"version": true'): "'version' has the wrong type",
        good.replace(b'"created": ', b'"created": NaN, "x": '): "not JSON",
        good.replace(b'"resumption_master_secret": "', b'"resumption_master_secret": "zz'):
            "not hexadecimal",
        good.replace(b'"server_chain": [\n  "', b'"server_chain": [\n  "AAAA'):
            "server chain is malformed",
        good.replace(b'"tickets": [', b'"tickets": [7, '): "a ticket is not a JSON object",
        b"[" * 100000 + b"]" * 100000: "not JSON",
        b" " * (300 * 1024): "larger than",
    }  # fmt: skip
    for data, message in bad.items():
        assert data != good
        with pytest.raises(TlsError, match=message):
            TlsSession.from_bytes(data)
    # every truncation and every single-byte change: a TlsError or a session, nothing else
    for cut in range(0, len(good), 37):
        with contextlib.suppress(TlsError):
            TlsSession.from_bytes(good[:cut])
    for index in range(0, len(good), 11):
        for value in (0x00, 0x22, 0x7B, 0x31):
            mutated = good[:index] + bytes([value]) + good[index + 1 :]
            with contextlib.suppress(TlsError):
                TlsSession.from_bytes(mutated)
    # the same inside the server certificate (tlslite's and cryptography's parsers raise
    # KeyError, InvalidVersion… for some bytes): a TlsError or a session
    import base64
    import json

    document = json.loads(good)
    der = base64.b64decode(document["server_chain"][0])
    for index in range(0, len(der), 5):
        for value in (0x00, 0x07, 0x55, 0xFF):
            changed = der[:index] + bytes([value]) + der[index + 1 :]
            document["server_chain"] = [base64.b64encode(changed).decode()]
            with contextlib.suppress(TlsError):
                TlsSession.from_bytes(json.dumps(document).encode())
