"""TLS client authentication with the card's key through ``opcard serve``: gnutls-cli
(``pkcs11:`` URIs for certificate and key) against gnutls-serv, and OpenSSL's s_client with
libp11's engine against ``openssl s_server -Verify 1``; the demo CA verifies the client."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import require_file, require_tool
from serve_support import (
    PW1,
    Background,
    Served,
    ServerCredentials,
    background,
    free_port,
    run,
    server_credentials,
)

AUT_URI = "pkcs11:token=Jane%20Doe;id=%03"
LIBP11_ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> ServerCredentials:
    return server_credentials(tmp_path_factory.mktemp("tls"))


@contextlib.contextmanager
def gnutls_serv(creds: ServerCredentials, output: Path) -> Iterator[Background]:
    port = free_port()
    argv = [
        require_tool("gnutls-serv"), "--port", str(port), "--echo",
        "--require-client-cert", "--verify-client-cert",
        "--x509cafile", str(creds.ca), "--x509certfile", str(creds.cert),
        "--x509keyfile", str(creds.key),
    ]  # fmt: skip
    with background(argv, output, port=port) as server:
        yield server


def gnutls_cli(
    served: Served, module: str, creds: ServerCredentials, port: int, *extra: str
) -> str:
    argv = [
        require_tool("gnutls-cli"), "--provider", module, "--x509cafile", str(creds.ca),
        "--x509certfile", f"{AUT_URI};type=cert", "--x509keyfile", f"{AUT_URI};type=private",
        "-p", str(port), *extra, "127.0.0.1",
    ]  # fmt: skip
    proc = run(argv, served.env(GNUTLS_PIN=PW1), input=b"hello through the card\n")
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


@pytest.mark.parametrize(
    ("variant", "priority", "version", "signature"),
    [
        ("demo-rsa", "NORMAL:-VERS-TLS1.3", "TLS1.2", "RSA-SHA256"),
        ("demo-ecc", "NORMAL", "TLS1.3", "ECDSA-SECP256R1-SHA256"),
    ],
)
def test_gnutls_client_authentication(
    served: Callable[..., Served],
    p11_client: str,
    credentials: ServerCredentials,
    tmp_path: Path,
    variant: str,
    priority: str,
    version: str,
    signature: str,
) -> None:
    s = served(variant)
    with gnutls_serv(credentials, tmp_path / "gnutls-serv.out") as server:
        before = s.apdus()
        out = gnutls_cli(s, p11_client, credentials, server.port, "--priority", priority)
        assert "Successfully sent 1 certificate(s) to server" in out, out
        assert "Handshake was completed" in out, out
        assert f"({version}-X.509)" in out, out
        assert "hello through the card" in out, out  # the echo server answered
    log = server.text()
    assert f"Client Signature: {signature}" in log, log
    assert "The certificate is trusted" in log, log
    expected = s.card.demo["aut"].certificate.subject.rfc4514_string()
    assert expected.split(",")[0] in log, log
    assert s.apdus() > before


def test_rsa_key_and_tls13_sends_no_certificate(
    served: Callable[..., Served],
    p11_client: str,
    credentials: ServerCredentials,
    tmp_path: Path,
) -> None:
    """OpenPGP cards cannot do RSA-PSS: GnuTLS sees CKM_RSA_PKCS_PSS missing and sends no
    certificate under TLS 1.3; the server, which requires one, refuses."""
    s = served("demo-rsa")
    with gnutls_serv(credentials, tmp_path / "gnutls-serv.out") as server:
        argv = [
            require_tool("gnutls-cli"), "--provider", p11_client,
            "--x509cafile", str(credentials.ca),
            "--x509certfile", f"{AUT_URI};type=cert",
            "--x509keyfile", f"{AUT_URI};type=private",
            "-p", str(server.port), "127.0.0.1",
        ]  # fmt: skip
        proc = run(argv, s.env(GNUTLS_PIN=PW1), input=b"x\n", check=False)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert "Successfully sent 0 certificate(s)" in out or proc.returncode != 0, out
    assert "Client Signature: RSA" not in server.text()


def openssl_conf(directory: Path, module: str) -> Path:
    conf = directory / "openssl.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\nengines = engine_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n"
        "[pkcs11_section]\nengine_id = pkcs11\n"
        f"dynamic_path = {LIBP11_ENGINE}\nMODULE_PATH = {module}\ninit = 0\n"
    )
    return conf


# OpenSSL 3 prefers RSA-PSS even in TLS 1.2 and pads it itself (raw RSA, CKM_RSA_X_509, which
# no OpenPGP card does): the RSA case keeps the client to PKCS#1 v1.5 signatures.
@pytest.mark.parametrize(
    ("variant", "tls"),
    [
        ("demo-ecc", ["-tls1_3"]),
        ("demo-rsa", ["-tls1_2", "-client_sigalgs", "RSA+SHA256:RSA+SHA384"]),
    ],
    ids=["ecdsa-tls1.3", "rsa-tls1.2"],
)
def test_openssl_s_client_with_libp11(
    served: Callable[..., Served],
    p11_client: str,
    credentials: ServerCredentials,
    tmp_path: Path,
    variant: str,
    tls: list[str],
) -> None:
    openssl = require_tool("openssl")
    require_file(LIBP11_ENGINE)
    s = served(variant)
    cert = tmp_path / "aut-cert.pem"
    cert.write_bytes(
        s.card.demo["aut"].certificate.public_bytes(
            __import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
            ).Encoding.PEM
        )
    )
    port = free_port()
    server_argv = [
        openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
        "-cert", str(credentials.cert), "-key", str(credentials.key),
        "-CAfile", str(credentials.ca), "-Verify", "1", "-verify_return_error",
    ]  # fmt: skip
    # s_server stops at the end of its standard input: give it a pipe that stays open
    with background(
        server_argv, tmp_path / "s_server.out", ready="ACCEPT", stdin=subprocess.PIPE
    ) as server:
        env = s.env(OPENSSL_CONF=str(openssl_conf(tmp_path, p11_client)))
        client = run(
            [
                openssl, "s_client", "-connect", f"127.0.0.1:{port}", *tls,
                "-engine", "pkcs11", "-keyform", "engine",
                "-key", f"{AUT_URI};type=private;pin-value={PW1}",
                "-cert", str(cert), "-CAfile", str(credentials.ca), "-verify_return_error",
            ],
            env, input=b"Q\n",
        )  # fmt: skip
        server.wait(10)
    out = client.stdout.decode(errors="replace")
    assert "Verification: OK" in out or "Verify return code: 0 (ok)" in out, out
    log = server.text()
    assert "opcard demo AUT" in log, log  # the server saw (and verified) the card's cert
    assert "verify error" not in log.lower(), log
