"""Firefox's route, proved with NSS's own tools: an NSS database with p11-kit-client.so added
by ``modutil`` shows the card's token, ``certutil`` lists and exports its certificates and
(after a login) its private keys, and NSS's TLS client ``tstclnt`` authenticates with the
card's key against ``openssl s_server -Verify 1``.

NSS loads the module in process, so P11_KIT_SERVER_ADDRESS reaches p11-kit's client through
the tools' environment; the database stores only the module's path. Firefox makes the same
NSS calls (PK11_* / SSL_*) with its profile directory as the database.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from serve_support import (
    PW1,
    Served,
    ServerCredentials,
    background,
    demo_ca,
    free_port,
    run,
    server_credentials,
)

TOKEN = "Jane Doe"
#: the certificates' and keys' CKA_LABEL per key slot, and their CKA_ID
CERT_LABEL = {
    "sig": "Signature certificate",
    "dec": "Encryption certificate",
    "aut": "Authentication certificate",
}
KEY_LABEL = {"sig": ("01", "Signature key"), "dec": ("02", "Encryption key")}
KEY_LABEL["aut"] = ("03", "Authentication key")
INTERNAL_AUTHENTICATE = 0x88


def nss_db(s: Served, directory: Path, module: str) -> str:
    """A fresh NSS database with p11-kit's client module added as "opcard"."""
    db = directory / "nssdb"
    db.mkdir()
    spec = f"sql:{db}"
    run([require_tool("certutil"), "-N", "-d", spec, "--empty-password"], s.env())
    run(
        [require_tool("modutil"), "-dbdir", spec, "-add", "opcard", "-libfile", module,
         "-force"],
        s.env(),
    )  # fmt: skip
    return spec


def pin_file(directory: Path) -> Path:
    path = directory / "pin"
    path.write_text(PW1 + "\n")
    path.chmod(0o600)
    return path


def certutil(
    db: str, s: Served, *args: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    return run([require_tool("certutil"), "-d", db, *args], s.env(), check=check)


def listed_certificates(out: str) -> set[str]:
    return set(re.findall(rf"^({TOKEN}:.*?)\s+u,u,u$", out, re.MULTILINE))


def listed_keys(out: str) -> set[tuple[str, str, str]]:
    """``certutil -K`` lines: ``< 0> rsa      01      Signature key``."""
    found = re.findall(r"^<\s*\d+>\s+(\w+)\s+([0-9a-f]+)\s+(.+?)\s*$", out, re.MULTILINE)
    return {(kind, ckaid, label) for kind, ckaid, label in found}


def test_modutil_shows_the_token(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    s = served("demo-rsa")
    db = nss_db(s, tmp_path, p11_client)
    out = run([require_tool("modutil"), "-dbdir", db, "-list"], s.env()).stdout.decode()
    module = out.split("2. opcard", 1)[1]
    assert f"library name: {p11_client}" in module, out
    assert "library-manufacturer=opcard" in module, out
    assert "1 slot attached" in module, out
    assert f"token: {TOKEN}" in module, out
    assert "serial=10000001;model=OpenPGP%20card%203.4" in module, out

    # the database holds the module's path only: without the variable, no connection
    env = s.env(XDG_RUNTIME_DIR=str(tmp_path))
    del env["P11_KIT_SERVER_ADDRESS"]
    proc = run([require_tool("modutil"), "-dbdir", db, "-list"], env)
    alone = proc.stdout.decode().split("2. opcard", 1)[1]
    assert "p11-kit%20(no%20connection)" in alone, alone
    assert TOKEN not in alone, alone


def test_certutil_lists_and_exports_the_certificates(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    s = served("demo-rsa")
    db = nss_db(s, tmp_path, p11_client)
    expected = {f"{TOKEN}:{label}" for label in CERT_LABEL.values()}

    # all tokens: the card's certificates are public objects, no login needed
    out = certutil(db, s, "-L", "-h", "all").stdout.decode()
    assert listed_certificates(out) == expected, out

    # one token: certutil authenticates to it first (PK11_NeedLogin), so a PIN is needed
    refused = certutil(db, s, "-L", "-h", TOKEN, check=False)
    assert refused.returncode != 0
    assert b"could not authenticate" in refused.stderr, refused.stderr
    out = certutil(db, s, "-L", "-h", TOKEN, "-f", str(pin_file(tmp_path))).stdout.decode()
    assert listed_certificates(out) == expected, out

    for slot, label in CERT_LABEL.items():
        pem = certutil(db, s, "-L", "-n", f"{TOKEN}:{label}", "-a").stdout
        got = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        assert got == s.card.demo[slot].cert_der, slot


def test_certutil_lists_the_private_keys_with_the_pin(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    s = served("demo-rsa")
    db = nss_db(s, tmp_path, p11_client)
    refused = certutil(db, s, "-K", "-h", TOKEN, check=False)
    assert refused.returncode != 0
    assert not listed_keys(refused.stdout.decode())

    out = certutil(db, s, "-K", "-h", TOKEN, "-f", str(pin_file(tmp_path))).stdout.decode()
    assert listed_keys(out) == {("rsa", i, label) for i, label in KEY_LABEL.values()}, out
    assert s.slot.logged_in


def test_certutil_lists_the_private_keys_when_the_daemon_holds_the_pin(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    """``opcard serve --login``: no PIN file, no prompt (stdin is /dev/null)."""
    s = served("demo-ecc", login=True)
    db = nss_db(s, tmp_path, p11_client)
    out = certutil(db, s, "-K", "-h", TOKEN).stdout.decode()
    assert listed_keys(out) == {("ec", i, label) for i, label in KEY_LABEL.values()}, out
    out = certutil(db, s, "-L", "-h", TOKEN).stdout.decode()
    assert len(listed_certificates(out)) == 3, out


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> ServerCredentials:
    return server_credentials(tmp_path_factory.mktemp("nss-tls"))


@pytest.mark.parametrize(
    ("variant", "versions", "signature", "login"),
    [
        ("demo-rsa", "tls1.2:tls1.2", "RSA", False),
        ("demo-ecc", "tls1.3:tls1.3", "ECDSA", True),
        ("demo-rsa", "tls1.3:tls1.3", None, False),
    ],
    ids=["rsa-tls1.2-pinfile", "ecdsa-tls1.3-daemon-login", "rsa-tls1.3-no-pss"],
)
def test_tstclnt_client_authentication(
    served: Callable[..., Served],
    p11_client: str,
    credentials: ServerCredentials,
    tmp_path: Path,
    variant: str,
    versions: str,
    signature: str | None,
    login: bool,
) -> None:
    """NSS's TLS client with ``-n "Jane Doe:Authentication certificate"``; the server's
    certificate is verified against the demo CA imported into the database (no ``-o``).
    RSA under TLS 1.3 would need RSA-PSS, which the card lacks: NSS sends no certificate."""
    openssl, tstclnt = require_tool("openssl"), require_tool("tstclnt")
    s = served(variant, login=login)
    db = nss_db(s, tmp_path, p11_client)
    certutil(db, s, "-A", "-n", "opcard demo CA", "-t", "C,,", "-i", str(demo_ca()))
    port = free_port()
    server_argv = [
        openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
        "-cert", str(credentials.cert), "-key", str(credentials.key),
        "-CAfile", str(credentials.ca), "-Verify", "1", "-verify_return_error",
    ]  # fmt: skip
    client_argv = [
        tstclnt, "-h", "127.0.0.1", "-p", str(port), "-d", db, "-V", versions, "-Q",
        "-n", f"{TOKEN}:{CERT_LABEL['aut']}",
    ]  # fmt: skip
    if not login:
        client_argv += ["-W", str(pin_file(tmp_path))]
    # s_server stops at the end of its standard input: give it a pipe that stays open
    with background(
        server_argv, tmp_path / "s_server.out", ready="ACCEPT", stdin=subprocess.PIPE
    ) as server:
        before = len(s.card.sent)
        client = run(client_argv, s.env(), input=b"hello through NSS\n", check=False)
        server.wait(10)
    log = server.text()
    out = client.stdout.decode(errors="replace") + client.stderr.decode(errors="replace")
    signed = [a for a in s.card.sent[before:] if a[1] == INTERNAL_AUTHENTICATE]
    if signature is None:
        assert "peer did not return a certificate" in log, log
        assert "opcard demo AUT" not in log, log
        assert not signed
        return
    assert client.returncode == 0, out
    assert "issuer  DN: CN=opcard demo CA" in out, out  # the server's certificate, verified
    assert "opcard demo AUT" in log, log  # the server saw (and verified) the card's cert
    assert f"Peer signature type: {signature}" in log, log
    assert "verify error" not in log.lower(), log
    assert "hello through NSS" in log, log
    assert len(signed) == 1, "one INTERNAL AUTHENTICATE: the card signed the handshake"
