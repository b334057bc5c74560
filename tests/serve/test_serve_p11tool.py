"""GnuTLS's p11tool through p11-kit's client module against ``opcard serve``: listing and
exporting the card's certificates, the token, private objects only after login."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from serve_support import PW1, SLOTS, Served, run

CERT_LABELS = {
    "sig": "Signature certificate",
    "dec": "Encryption certificate",
    "aut": "Authentication certificate",
}


def p11tool(served: Served, module: str, *args: str, pin: str | None = None) -> str:
    env = served.env(**({"GNUTLS_PIN": pin} if pin is not None else {}))
    proc = run([require_tool("p11tool"), "--provider", module, *args], env)
    return proc.stdout.decode()


def urls(listing: str) -> list[str]:
    return re.findall(r"URL: (pkcs11:\S+)", listing)


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_list_all_certs_shows_the_three_certificates(
    served: Callable[..., Served], p11_client: str, variant: str
) -> None:
    s = served(variant)
    listing = p11tool(s, p11_client, "--list-all-certs")
    found = urls(listing)
    assert len(found) == 3, listing
    labels = re.findall(r"Label: (.+)", listing)
    assert sorted(labels) == sorted(CERT_LABELS.values())
    for url in found:
        assert "token=Jane%20Doe" in url and "serial=10000001" in url and "type=cert" in url
    assert sorted(re.findall(r"ID: (\S+)", listing)) == ["01", "02", "03"]


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_export_is_byte_identical_to_the_demo_certificates(
    served: Callable[..., Served], p11_client: str, variant: str
) -> None:
    s = served(variant)
    for slot in SLOTS:
        url = f"pkcs11:token=Jane%20Doe;object={CERT_LABELS[slot].replace(' ', '%20')};type=cert"
        pem = p11tool(s, p11_client, "--export", url)
        exported = x509.load_pem_x509_certificate(pem.encode())
        assert exported.public_bytes(Encoding.DER) == s.card.demo[slot].cert_der


def test_export_der_bytes(served: Callable[..., Served], p11_client: str) -> None:
    s = served("demo-ecc")
    env = s.env()
    out = run(
        [
            require_tool("p11tool"),
            "--provider",
            p11_client,
            "--export",
            "--outder",
            "pkcs11:token=Jane%20Doe;id=%03;type=cert",
        ],
        env,
    ).stdout
    assert out == s.card.demo["aut"].cert_der


def test_token_as_p11tool_lists_it(served: Callable[..., Served], p11_client: str) -> None:
    s = served("demo-rsa")
    listing = p11tool(s, p11_client, "--list-tokens")
    assert "Label: Jane Doe" in listing
    assert "Model: OpenPGP card 3.4" in listing
    assert "Serial: 10000001" in listing
    assert "Manufacturer: unmanaged S/N range" in listing


def test_private_keys_only_after_login(served: Callable[..., Served], p11_client: str) -> None:
    s = served("demo-rsa")
    public = p11tool(s, p11_client, "--list-all")
    assert "type=private" not in public
    assert public.count("type=public") == 3 and public.count("type=cert") == 3
    logged = p11tool(s, p11_client, "--login", "--list-all", pin=PW1)
    assert logged.count("type=private") == 3
    # the login is the daemon's: a second client sees the private keys without a PIN
    again = p11tool(s, p11_client, "--list-all")
    assert again.count("type=private") == 3


def test_mechanisms(served: Callable[..., Served], p11_client: str) -> None:
    s = served("demo-ecc")
    listing = p11tool(s, p11_client, "--list-mechanisms", "pkcs11:token=Jane%20Doe")
    # p11-kit's client drops what it cannot carry (0.24.1: CKM_ECDH1_DERIVE, the newer
    # CKM_ECDSA_SHA* mechanisms); the rest comes through with the card's key size
    assert re.search(r"\bCKM_ECDSA\b keysize range \(256, 256\) hw sign", listing), listing
    assert "CKM_RSA_PKCS" not in listing
