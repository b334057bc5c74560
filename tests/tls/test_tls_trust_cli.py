"""`opcard tls connect` end to end against `openssl s_server`: the everyday set-ups of issue
#14 (a self-signed test server made by `openssl req -x509`, a private CA without keyUsage),
the hint for each cause of a refusal, and --pinnedpubkey."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_tls_cli import Cli
from tls_support import CardRig, Pki

from opcard.tls.verify import spki_sha256


@dataclass
class Creds:
    cert: Path
    key: Path
    certificate: x509.Certificate


def _openssl(*args: str) -> None:
    subprocess.run([require_tool("openssl"), *args], check=True, capture_output=True, timeout=60)


NEW_EC_KEY = ("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def signed(commands: list[bytes]) -> list[bytes]:
    """PSO: COMPUTE DIGITAL SIGNATURE and INTERNAL AUTHENTICATE commands (the card signing)."""
    return [c for c in commands if len(c) > 1 and c[1] in (0x2A, 0x88)]


def self_signed(directory: Path) -> Creds:
    """The usual test server: `openssl req -x509 -subj /CN=localhost` (CA:TRUE, no SAN)."""
    cert, key = directory / "self.pem", directory / "self-key.pem"
    _openssl(*NEW_EC_KEY, "-x509", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=localhost")  # fmt: skip
    return Creds(cert, key, x509.load_pem_x509_certificate(cert.read_bytes()))


def private_ca(directory: Path) -> tuple[Path, Creds]:
    """A CA made by `openssl req -x509` with no keyUsage, and a server certificate from it."""
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    _openssl(*NEW_EC_KEY, "-x509", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
             "-subj", "/CN=private CA")  # fmt: skip
    assert "keyUsage" not in subprocess.run(
        ["openssl", "x509", "-in", str(ca), "-noout", "-text"], capture_output=True, text=True
    ).stdout.replace("Extended Key Usage", "")
    key, csr, cert = directory / "srv-key.pem", directory / "srv.csr", directory / "srv.pem"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\n")
    _openssl(*NEW_EC_KEY, "-new", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=localhost")  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, Creds(cert, key, x509.load_pem_x509_certificate(cert.read_bytes()))


def pin_of(certificate: x509.Certificate) -> str:
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def rig(card_rig: object) -> CardRig:
    assert callable(card_rig)
    made: CardRig = card_rig("demo-ecc")
    return made


def test_self_signed_server_as_its_own_ca(
    rig: CardRig, pki: Pki, openssl_server: object, tmp_path: Path
) -> None:
    assert callable(openssl_server)
    creds = self_signed(tmp_path)
    run = Cli(rig, openssl_server(credentials=creds), pki)
    result = run("--cafile", str(creds.cert), ca=False)
    assert result.exit_code == 0, result.stderr
    assert "verified:  yes, for 'localhost', up to CN=localhost" in result.stdout
    # the same file, another name: refused before the card signs, with the name hint
    mark = rig.mark()
    wrong = run("--cafile", str(creds.cert), "--servername", "www.example.org", ca=False)
    assert wrong.exit_code == 1
    assert "is not valid for 'www.example.org': it names localhost" in wrong.stderr
    assert "--servername NAME" in wrong.stderr
    assert signed(rig.since(mark)) == []


def test_private_ca_without_key_usage(
    rig: CardRig, pki: Pki, openssl_server: object, tmp_path: Path
) -> None:
    assert callable(openssl_server)
    ca, creds = private_ca(tmp_path)
    run = Cli(rig, openssl_server(credentials=creds), pki)
    result = run("--cafile", str(ca), ca=False)
    assert result.exit_code == 0, result.stderr
    assert "up to CN=private CA" in result.stdout
    # the server's own certificate is not a root: the file holds no CA, and the hint says so
    no_ca = run("--cafile", str(creds.cert), ca=False)
    assert no_ca.exit_code == 1
    assert "holds no root CA" in no_ca.stderr and "must hold the root CA" in no_ca.stderr
    # another CA: unknown issuer, and the hint names --cafile and --pinnedpubkey
    unknown = run("--cafile", str(pki.demo_ca_file), ca=False)
    assert unknown.exit_code == 1
    assert "does not chain to a CA of" in unknown.stderr
    assert "--pinnedpubkey sha256//HASH" in unknown.stderr


def test_pinnedpubkey(rig: CardRig, pki: Pki, openssl_server: object, tmp_path: Path) -> None:
    assert callable(openssl_server)
    creds = self_signed(tmp_path)
    run = Cli(rig, openssl_server(credentials=creds), pki)
    good = pin_of(creds.certificate)
    assert spki_sha256(creds.certificate) == base64.b64decode(good[8:])
    other = pin_of(pki.server.certificate)
    # alone: only the key counts (this certificate chains to nothing given)
    result = run("--pinnedpubkey", f"{other};{good}", ca=False)
    assert result.exit_code == 0, result.stderr
    assert "its key matches --pinnedpubkey (chain, dates and name not checked)" in result.stdout
    assert len(signed(rig.since(0))) == 1  # the card signed once in that handshake
    mark = rig.mark()
    wrong = run("--pinnedpubkey", other, ca=False)
    assert wrong.exit_code == 1
    assert f"the server's public key ({good}" in wrong.stderr
    assert "matches no pinned key" in wrong.stderr and "check --pinnedpubkey" in wrong.stderr
    assert signed(rig.since(mark)) == []  # refused before the card signed
    # with a CA file, both must hold: the right pin does not excuse an unknown CA
    both = run("--pinnedpubkey", good, "--cafile", str(pki.demo_ca_file), ca=False)
    assert both.exit_code == 1 and "does not chain to a CA of" in both.stderr
    with_ca = run("--pinnedpubkey", good, "--cafile", str(creds.cert), ca=False)
    assert with_ca.exit_code == 0, with_ca.stderr
    assert "and its key matches --pinnedpubkey" in with_ca.stdout
    # a malformed pin is a usage error naming the option
    bad = run("--pinnedpubkey", "sha1//AAAA", ca=False)
    assert bad.exit_code == 2 and "--pinnedpubkey" in bad.stderr and "sha256//" in bad.stderr
    short = run("--pinnedpubkey", "sha256//AAAA", ca=False)
    assert short.exit_code == 2 and "32 bytes" in short.stderr
