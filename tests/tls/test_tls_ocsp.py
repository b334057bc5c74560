"""OCSP stapling (``TlsClient(ocsp_status=True)``, ``opcard tls connect --status``).

The OCSP answers are made here: "good", "revoked" and "unknown" by ``openssl ocsp`` acting
as the responder on an index file (``-reqin``/``-respout``, no network), the broken ones
(stale, not yet valid, wrong responder, responder without OCSPSigning, bad signature, for
another certificate, an error status) with ``cryptography``. Each answer is judged by
``openssl ocsp -respin … -CAfile … -issuer … -cert …`` (OpenSSL's ``OCSP_basic_verify``, the
status and ``OCSP_check_validity``: what ``curl --cert-status`` applies) and by opcard: equal on
every row. Then real handshakes against ``openssl s_server -status_file`` (TLS 1.2 and 1.3)
and against ``s_server -status_url`` asking a live ``openssl ocsp -port`` responder on
127.0.0.1: the staple is asked for, a good one passes, a revoked or missing one is refused
before the card signs anything.
"""

from __future__ import annotations

import datetime
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_tls_parity import NOW, Cert, _pem, make, root
from tls_support import DEMO_CA, PW1, CardRig

from opcard.tls import ServerCertificateError, TlsClient
from opcard.tls.verify import ServerVerifier

HOUR = datetime.timedelta(hours=1)
INS_SIGNING = (0x2A, 0x88)


def _key_pem(cert: Cert) -> bytes:
    return cert.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Material:
    directory: Path
    ca: Cert
    leaf: Cert
    responder: Cert
    answers: dict[str, bytes]  # name -> DER OCSP response
    expected: dict[str, str | None]  # name -> opcard's cause (None: accepted)

    def path(self, name: str) -> Path:
        return self.directory / name


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("openssl"), *args], capture_output=True, text=True, timeout=30, cwd=cwd
    )


def _index_line(cert: Cert, revoked: bool) -> str:
    expiry = cert.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    when = (NOW - HOUR).strftime("%y%m%d%H%M%SZ") + ",keyCompromise" if revoked else ""
    serial = f"{cert.certificate.serial_number:X}"
    return f"{'R' if revoked else 'V'}\t{expiry}\t{when}\t{serial}\tunknown\t/CN=localhost\n"


def _built(
    m_leaf: Cert,
    issuer: Cert,
    signer: Cert,
    *,
    this: datetime.datetime,
    next_: datetime.datetime | None,
    serial_of: Cert | None = None,
    include: list[Cert] | None = None,
) -> bytes:
    subject = serial_of or m_leaf
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=subject.certificate,
            issuer=issuer.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this,
            next_update=next_,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
    )
    if include:
        builder = builder.certificates([c.certificate for c in include])
    response = builder.sign(signer.key, hashes.SHA256())  # type: ignore[arg-type]
    return response.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    d = tmp_path_factory.mktemp("ocsp")
    ca = root("ocsp root", key="ec-ocsp-root")
    leaf = make("localhost", ca, san=["localhost", "127.0.0.1"], key="ec-ocsp-leaf")
    other_leaf = make("localhost", ca, san=["localhost"], key="ec-ocsp-leaf")
    ocsp_eku = [ExtendedKeyUsageOID.OCSP_SIGNING]
    responder = make("ocsp responder", ca, ku=("digital_signature",), eku=ocsp_eku,
                     key="ec-ocsp-resp")  # fmt: skip
    no_eku = make("responder without OCSPSigning", ca, ku=("digital_signature",),
                  eku=[ExtendedKeyUsageOID.CLIENT_AUTH], key="ec-ocsp-resp2")  # fmt: skip
    other = root("unrelated root", key="ec-ocsp-other")
    stranger = make("ocsp responder", other, ku=("digital_signature",), eku=ocsp_eku,
                    key="ec-ocsp-resp3")  # fmt: skip
    for name, cert in (("ca", ca), ("leaf", leaf), ("responder", responder)):
        (d / f"{name}.pem").write_bytes(_pem([cert]))
        (d / f"{name}-key.pem").write_bytes(_key_pem(cert))
    (d / "index-good.txt").write_text(_index_line(leaf, False))
    (d / "index-revoked.txt").write_text(_index_line(leaf, True))
    (d / "index-unknown.txt").write_text(_index_line(other_leaf, False))
    done = _openssl("ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-no_nonce",
                    "-reqout", "req.der", cwd=d)  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers: dict[str, bytes] = {}
    for name, index, signer in (
        ("good", "index-good.txt", "responder"),
        ("good, signed by the CA itself", "index-good.txt", "ca"),
        ("revoked", "index-revoked.txt", "responder"),
        ("unknown", "index-unknown.txt", "responder"),
    ):
        out = d / "out.der"
        done = _openssl("ocsp", "-index", index, "-rsigner", f"{signer}.pem", "-rkey",
                        f"{signer}-key.pem", "-CA", "ca.pem", "-reqin", "req.der",
                        "-respout", str(out), "-ndays", "1", cwd=d)  # fmt: skip
        assert done.returncode == 0, done.stderr
        answers[name] = out.read_bytes()
    now = datetime.datetime.now(datetime.UTC)
    answers["stale (nextUpdate passed)"] = _built(
        leaf, ca, responder, this=now - 3 * HOUR, next_=now - HOUR, include=[responder]
    )
    answers["not yet valid (thisUpdate in an hour)"] = _built(
        leaf, ca, responder, this=now + HOUR, next_=now + 3 * HOUR, include=[responder]
    )
    answers["wrong responder (another CA's)"] = _built(
        leaf, ca, stranger, this=now - HOUR, next_=now + HOUR, include=[stranger]
    )
    answers["responder without OCSPSigning"] = _built(
        leaf, ca, no_eku, this=now - HOUR, next_=now + HOUR, include=[no_eku]
    )
    answers["responder certificate not sent"] = _built(
        leaf, ca, responder, this=now - HOUR, next_=now + HOUR
    )
    answers["for another certificate"] = _built(
        leaf, ca, responder, this=now - HOUR, next_=now + HOUR, serial_of=other_leaf,
        include=[responder],
    )  # fmt: skip
    good = bytearray(answers["good"])
    at = good.find(ocsp.load_der_ocsp_response(bytes(good)).signature)
    assert at > 0
    good[at + 10] ^= 0x01  # inside the responder's signature
    answers["bad signature"] = bytes(good)
    answers["error status tryLater"] = ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.TRY_LATER
    ).public_bytes(serialization.Encoding.DER)
    expected: dict[str, str | None] = {
        "good": None,
        "good, signed by the CA itself": None,
        "revoked": "revoked",
        "unknown": "ocsp",
        "stale (nextUpdate passed)": "ocsp",
        "not yet valid (thisUpdate in an hour)": "ocsp",
        "wrong responder (another CA's)": "ocsp",
        "responder without OCSPSigning": "ocsp",
        "responder certificate not sent": "ocsp",
        "for another certificate": "ocsp",
        "bad signature": "ocsp",
        "error status tryLater": "ocsp",
    }
    for name, data in answers.items():
        (d / f"{name}.der").write_bytes(data)
    return Material(d, ca, leaf, responder, answers, expected)


def openssl_judges(material: Material, name: str) -> tuple[bool, str]:
    """``openssl ocsp -respin`` verifies the answer against the CA file and gives the
    leaf's status; the answer passes when it verifies, is in date and says good."""
    done = _openssl("ocsp", "-respin", f"{name}.der", "-CAfile", "ca.pem", "-issuer", "ca.pem",
                    "-cert", "leaf.pem", "-no_nonce", cwd=material.directory)  # fmt: skip
    text = done.stdout + done.stderr
    ok = (
        done.returncode == 0
        and "Response verify OK" in text
        and "leaf.pem: good" in text
        and "Status times invalid" not in text
    )
    return ok, " | ".join(text.strip().splitlines()[:3])


def opcard_judges(material: Material, answer: bytes | None) -> tuple[bool, str | None, str]:
    verifier = ServerVerifier.from_pem(_pem([material.ca])).with_revocation(require_ocsp=True)
    der = material.leaf.certificate.public_bytes(serialization.Encoding.DER)
    try:
        verifier.verify([der], "localhost", ocsp_response=answer)
    except ServerCertificateError as e:
        return False, e.cause, str(e)
    return True, None, "ok"


def test_ocsp_answers_judged_like_openssl(
    material: Material, capsys: pytest.CaptureFixture[str]
) -> None:
    out, wrong = [], []
    for name, cause in material.expected.items():
        ossl, why = openssl_judges(material, name)
        ours, our_cause, message = opcard_judges(material, material.answers[name])
        ok = ossl == ours == (cause is None) and our_cause == cause
        out.append(f"{'ok ' if ok else '!! '}{name:42} openssl={'accept' if ossl else 'refuse'}"
                   f" opcard={'accept' if ours else 'refuse'}"
                   + (f" ({our_cause})" if our_cause else ""))  # fmt: skip
        if not ok:
            wrong.append(f"{name}: openssl {ossl} ({why}); opcard {ours} {our_cause} ({message})")
    with capsys.disabled():
        print("\n" + "\n".join(out))
    assert not wrong, "\n".join(wrong)


def test_missing_or_malformed_answer_is_refused(material: Material) -> None:
    ok, cause, message = opcard_judges(material, None)
    assert (ok, cause) == (False, "ocsp") and "sent no OCSP answer" in message
    ok, cause, message = opcard_judges(material, b"\x30\x03\x0a\x01\x00")
    assert (ok, cause) == (False, "ocsp") and "malformed" in message
    ok, cause, message = opcard_judges(material, material.answers["revoked"])
    assert "revoked" in message and "keyCompromise" in message


# --- over the wire ------------------------------------------------------------------------


def _connect(rig: CardRig, material: Material, port: int, **kw: object) -> object:
    with rig.card.session() as session:
        session.login(PW1)
        client = TlsClient(session, cafile=material.path("ca.pem"), ocsp_status=True, **kw)  # type: ignore[arg-type]
        with client.connect("127.0.0.1", port, server_name="localhost") as conn:
            return conn


def _signed(rig: CardRig, mark: int) -> int:
    return sum(1 for c in rig.since(mark) if len(c) > 1 and c[1] in INS_SIGNING)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_stapled_answers_over_tls(
    version: str, material: Material, card_rig: object, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    creds = _Creds(material.path("leaf.pem"), material.path("leaf-key.pem"))
    flag = "-tls1_2" if version == "1.2" else "-tls1_3"
    for name, cause in (("good", None), ("revoked", "revoked"), (None, "ocsp")):
        extra: tuple[str, ...] = (flag,)
        if name is not None:
            extra += ("-status_file", str(material.path(f"{name}.der")))
        server = openssl_server(credentials=creds, extra=extra)
        mark = rig.mark()
        if cause is None:
            conn = _connect(rig, material, server.port)
            assert conn.version.label == f"TLS {version}"  # type: ignore[attr-defined]
            assert conn.ocsp_response == material.answers["good"]  # type: ignore[attr-defined]
            assert _signed(rig, mark) == 1
        else:
            with pytest.raises(ServerCertificateError) as info:
                _connect(rig, material, server.port)
            assert info.value.cause == cause, str(info.value)
            assert _signed(rig, mark) == 0  # refused before the card signs
            # the server saw the alert: bad_certificate_status_response / certificate_revoked
            alert = "bad certificate status response" if cause == "ocsp" else "certificate revoked"
            server.wait_for(alert)
        server.stop()


@dataclass
class _Creds:
    cert: Path
    key: Path


class _Responder:
    """An OCSP responder over HTTP on 127.0.0.1: each POSTed request is answered by
    ``openssl ocsp -index … -reqin … -respout …`` (``openssl ocsp -port`` itself would listen
    on every address)."""

    def __init__(self, directory: Path, index: Path) -> None:
        import http.server
        import threading

        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                (directory / "live-req.der").write_bytes(request)
                done = _openssl("ocsp", "-index", str(index), "-rsigner", "responder.pem",
                                "-rkey", "responder-key.pem", "-CA", "ca.pem", "-reqin",
                                "live-req.der", "-respout", "live-resp.der", "-ndays", "1",
                                cwd=directory)  # fmt: skip
                body = (directory / "live-resp.der").read_bytes() if done.returncode == 0 else b""
                outer.requests += 1
                self.send_response(200 if body else 500)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_live_responder_through_s_server(
    material: Material, card_rig: object, openssl_server: object
) -> None:
    """A responder answers on 127.0.0.1 (``openssl ocsp`` on an index file behind a small
    HTTP server); ``s_server -status_url`` asks it during each handshake and staples the
    answer (TLS 1.3); revoking the certificate in the index makes the next connection fail."""
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    index = material.directory / "index-live.txt"
    index.write_text(_index_line(material.leaf, False))
    responder = _Responder(material.directory, index)
    try:
        creds = _Creds(material.path("leaf.pem"), material.path("leaf-key.pem"))
        # s_server finds the issuer for its OCSP request in its CA store: the client CA and ours
        both = material.directory / "client-ca-and-ocsp-root.pem"
        both.write_bytes(DEMO_CA.read_bytes() + material.path("ca.pem").read_bytes())
        server = openssl_server(
            cafile=both, credentials=creds, extra=("-tls1_3", "-status_url", responder.url)
        )
        conn = _connect(rig, material, server.port)
        answer = ocsp.load_der_ocsp_response(conn.ocsp_response)  # type: ignore[attr-defined]
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert answer.serial_number == material.leaf.certificate.serial_number
        assert responder.requests == 1
        index.write_text(_index_line(material.leaf, True))
        with pytest.raises(ServerCertificateError) as info:
            _connect(rig, material, server.port)
        assert info.value.cause == "revoked"
        assert responder.requests == 2
    finally:
        responder.stop()


# --- the command line -----------------------------------------------------------------------


def test_cli_status_and_crlfile(
    material: Material, card_rig: object, openssl_server: object, pki: object, tmp_path: Path
) -> None:
    """``opcard tls connect --status`` / ``--crlfile`` / ``--crl-check-all``: what passed is
    shown, a refusal exits 1 with the hint for its cause, before the card signs."""
    from test_tls_cli import Cli

    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    creds = _Creds(material.path("leaf.pem"), material.path("leaf-key.pem"))
    good = openssl_server(credentials=creds, extra=("-status_file", str(material.path("good.der"))))
    ca = ("--cafile", str(material.path("ca.pem")))
    run = Cli(rig, good, pki)  # type: ignore[arg-type]
    result = run(*ca, "--status", ca=False)
    assert result.exit_code == 0, result.stderr
    assert "  OCSP:      good (stapled, produced " in result.stdout
    revoked = Cli(rig, openssl_server(credentials=creds, extra=(
        "-status_file", str(material.path("revoked.der")))), pki)  # type: ignore[arg-type]  # fmt: skip
    mark = rig.mark()
    refused = revoked(*ca, "--status", ca=False)
    assert refused.exit_code == 1
    assert "is revoked: its OCSP answer says so" in refused.stderr
    assert "do not connect" in refused.stderr
    assert _signed(rig, mark) == 0
    # without --status the staple is neither asked for nor needed
    assert revoked(*ca, ca=False).exit_code == 0
    none = Cli(rig, openssl_server(credentials=creds), pki)  # type: ignore[arg-type]
    missing = none(*ca, "--status", ca=False)
    assert missing.exit_code == 1 and "sent no OCSP answer" in missing.stderr
    assert "-status_file" in missing.stderr  # the hint
    # CRLs: the leaf, then the whole chain (the root's own CRL is then needed)
    crls = tmp_path / "crls.pem"
    from test_tls_revocation import crl

    crls.write_bytes(crl(material.ca).public_bytes(serialization.Encoding.PEM))
    ok = none(*ca, "--crlfile", str(crls), "--crl-check-all", "--json", ca=False)
    assert ok.exit_code == 0, ok.stderr
    assert '"crl_check": "all"' in ok.stdout
    crls.write_bytes(crl(material.ca, [material.leaf]).public_bytes(serialization.Encoding.PEM))
    bad = none(*ca, "--crlfile", str(crls), ca=False)
    assert bad.exit_code == 1 and "is revoked: the CRL of" in bad.stderr
    other = tmp_path / "other.pem"
    other.write_bytes(crl(root("x", key="ec-ocsp-other")).public_bytes(serialization.Encoding.PEM))
    nocrl = none(*ca, "--crlfile", str(other), ca=False)
    assert nocrl.exit_code == 1 and "its revocation cannot be checked" in nocrl.stderr
    assert "current CRL from the issuer" in nocrl.stderr
    usage = none(*ca, "--crl-check-all", ca=False)
    assert usage.exit_code == 2 and "--crl-check-all needs --crlfile" in usage.stderr
    usage = none("--no-verify", "--status", ca=False)
    assert usage.exit_code == 2 and "contradict" in usage.stderr


def test_status_makes_every_handshake_a_full_one(
    material: Material, card_rig: object, openssl_server: object
) -> None:
    """A resumed handshake carries no staple: with ocsp_status a cached session is not
    offered, the next connection is a full handshake (the card signs again) and says why."""
    from opcard.tls.sessions import SessionCache

    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    creds = _Creds(material.path("leaf.pem"), material.path("leaf-key.pem"))
    server = openssl_server(
        credentials=creds, extra=("-tls1_2", "-status_file", str(material.path("good.der")))
    )
    cache = SessionCache()
    with rig.card.session() as session:
        session.login(PW1)
        client = TlsClient(
            session, cafile=material.path("ca.pem"), ocsp_status=True, session_cache=cache
        )
        for round_ in range(2):
            mark = rig.mark()
            with client.connect("127.0.0.1", server.port, server_name="localhost") as conn:
                assert not conn.resumed and conn.ocsp_response == material.answers["good"]
                assert _signed(rig, mark) == 1
                if round_:
                    assert conn.session_refused is not None
                    assert "a resumed handshake carries none" in conn.session_refused


def test_status_request_keeps_psk_binders_valid(tmp_path: Path) -> None:
    """The status_request extension goes before a pre_shared_key extension (which must stay
    last) and the PSK binders, which sign the ClientHello, are computed again: a TLS 1.3
    external-PSK handshake with ``openssl s_server -psk`` succeeds with and without it (a
    stale binder makes s_server answer illegal_parameter)."""
    import socket

    from tls_support import _Process, free_port

    from opcard.tls.client import _CardTLSConnection

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tlslite.handshakesettings import HandshakeSettings

    key = bytes(range(32))
    port = free_port()
    server = _Process(
        [require_tool("openssl"), "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_3",
         "-psk", key.hex(), "-psk_identity", "opcard-test", "-nocert", "-www"],
        tmp_path / "s_server.log",
    )  # fmt: skip
    server._spawn()
    try:
        server.wait_for("ACCEPT")
        for status in (False, True):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                tls = _CardTLSConnection(sock, None)
                tls.opcard_status_request = status
                settings = HandshakeSettings()
                settings.minVersion = (3, 4)
                settings.pskConfigs = [(b"opcard-test", key, "sha256")]
                tls.handshakeClientCert(settings=settings, serverName="localhost")
                assert tls.version == (3, 4) and tls.session.cipherSuite
    finally:
        server.stop()
