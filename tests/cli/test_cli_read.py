"""The reading commands in process: list, status, cert export, key export, sign.

Every expected value comes from the emulated card's state or from the committed demo material
(fixtures/demo), never from opcard itself; signatures are verified with ``cryptography`` (and
OpenPGP output with pgpy).
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fixtures.card import OpenPGPCard
from fixtures.card_state import AUT, DEC, SIG
from fixtures.personalize import OCCURRENCE_SLOT, demo_files
from opcard.exitcodes import ExitCode

SLOT_INDEX = {"sig": SIG, "dec": DEC, "aut": AUT}
VARIANTS = ["demo-rsa", "demo-ecc", "demo-25519"]


def demo_cert_der(variant: str, slot: str) -> bytes:
    pem = demo_files(variant)[f"{slot}_cert"].read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def demo_public(variant: str, slot: str) -> object:
    key = serialization.load_pem_private_key(demo_files(variant)[f"{slot}_key"].read_bytes(), None)
    return key.public_key()


def card_cert(card: OpenPGPCard, slot: str) -> bytes:
    occurrence = {v: k for k, v in OCCURRENCE_SLOT.items()}[SLOT_INDEX[slot]]
    return card.state.certs[occurrence]


# --- list ----------------------------------------------------------------------------------------


def test_list_readers_and_cards(run, backend, cli_cards) -> None:
    cli_cards("demo", reader="Reader A", serial=0x11112222)
    backend.cards["Reader B"] = None
    backend.foreign["Reader C"] = bytes.fromhex("3B8F8001")
    result = run("list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "Reader A: OpenPGP card 3.4 by unmanaged S/N range, serial 11112222",
        "Reader B: empty",
        "Reader C: card without an OpenPGP application",
    ]
    doc = json.loads(run("list", "--json").stdout)
    assert doc["schema_version"] == 1
    assert [r["reader"] for r in doc["readers"]] == ["Reader A", "Reader B", "Reader C"]
    assert doc["readers"][0]["openpgp_card"]["serial"] == "11112222"
    assert doc["readers"][1]["atr"] is None and doc["readers"][1]["openpgp_card"] is None
    assert doc["readers"][2]["atr"] == "3B8F8001"


# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_status_json_matches_the_card(run, cli_cards, variant: str) -> None:
    card = cli_cards(variant, serial=0x0BADCAFE)
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    state = card.state
    assert doc["schema_version"] == 1
    assert doc["reader"] == "Loopback 00"
    assert doc["application_id"] == card.aid.hex().upper()
    assert doc["serial"] == "0BADCAFE"
    assert doc["version"] == "3.4"
    assert doc["cardholder"] == {"name": "Jane Doe", "language": "en", "salutation": "Ms."}
    assert doc["url"] == state.url.decode()
    assert doc["login"] == state.login.decode()
    assert doc["pins"]["user"]["tries_left"] == state.pw1_tries
    assert doc["pins"]["admin"]["tries_left"] == state.pw3_tries
    assert doc["pins"]["reset_code"]["tries_left"] == state.rc_tries
    assert doc["signature_counter"] == state.sig_counter
    assert doc["kdf"] == {"supported": True, "enabled": False}
    assert doc["max_certificate_length"] == card.max_cert_size
    expected_algorithms = {
        "demo-rsa": ("rsa2048", "rsa2048", "rsa2048"),
        "demo-ecc": ("nistp256", "nistp256", "nistp256"),
        "demo-25519": ("ed25519", "cv25519", "ed25519"),
    }[variant]
    for name, algorithm in zip(("sig", "dec", "aut"), expected_algorithms, strict=True):
        key = doc["keys"][name]
        index = SLOT_INDEX[name]
        assert key["present"] is True
        assert key["algorithm"] == algorithm
        assert key["fingerprint"] == state.fingerprints[index].hex().upper()
        assert key["created"] == "2025-06-01T00:00:00Z"
        assert int.from_bytes(state.times[index], "big") == 1748736000
        assert key["origin"] == "imported"
        assert key["touch"] == "off"
        der = demo_cert_der(variant, name)
        cert = x509.load_der_x509_certificate(der)
        assert key["certificate"]["subject"] == cert.subject.rfc4514_string()
        assert key["certificate"]["issuer"] == cert.issuer.rfc4514_string()
        assert key["certificate"]["size"] == len(der)
        assert key["certificate"]["not_after"] == cert.not_valid_after_utc.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )


def test_status_text(run, card) -> None:
    result = run("status")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "Serial number .....: 10000001" in lines
    assert "Name of cardholder : Jane Doe" in lines
    assert "PIN retry counter .: user 3, reset code 0, admin 3" in lines
    sig = card.state.fingerprints[SIG].hex().upper()
    grouped = " ".join(sig[i : i + 4] for i in range(0, 40, 4))
    assert f"      fingerprint .: {grouped}" in lines
    assert "      certificate .: CN=opcard demo SIG (RSA-2048),O=opcard demo" in lines


def test_status_of_an_empty_card(run, cli_cards) -> None:
    cli_cards(None)
    doc = json.loads(run("status", "--json").stdout)
    for key in doc["keys"].values():
        assert key["present"] is False
        assert key["fingerprint"] is None and key["created"] is None
        assert key["certificate"] is None
    assert doc["cardholder"]["name"] is None
    text = run("status").stdout
    assert "Signature key .....: rsa2048 (empty)" in text
    assert "      certificate .: [none]" in text


# --- cert export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("slot", ["sig", "dec", "aut"])
def test_cert_export(run, cli_cards, variant: str, slot: str, tmp_path: Path) -> None:
    card = cli_cards(variant)
    expected = demo_cert_der(variant, slot)
    assert card_cert(card, slot) == expected
    der = run("cert", "export", "--slot", slot, "--format", "der")
    assert der.exit_code == 0
    assert der.stdout_bytes == expected
    pem = run("cert", "export", "--slot", slot)
    assert x509.load_pem_x509_certificate(pem.stdout_bytes).public_bytes(Encoding.DER) == expected
    # the PEM text is what openssl writes: 64-column base64 lines
    body = pem.stdout.splitlines()
    assert body[0] == "-----BEGIN CERTIFICATE-----" and body[-1] == "-----END CERTIFICATE-----"
    assert all(len(line) == 64 for line in body[1:-2]) and 0 < len(body[-2]) <= 64
    assert base64.b64decode("".join(body[1:-1])) == expected
    out = tmp_path / "cert.der"
    assert run("cert", "export", "--slot", slot, "--format", "der", "-o", str(out)).stdout == ""
    assert out.read_bytes() == expected


def test_cert_export_default_is_aut_pem(run, card) -> None:
    pem = run("cert", "export").stdout_bytes
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert der == card_cert(card, "aut")


def test_cert_export_empty_slot(run, card) -> None:
    card.state.certs[2] = b""  # occurrence 2 = SIG
    result = run("cert", "export", "--slot", "sig")
    assert result.exit_code == ExitCode.NotFound == 10
    assert result.stdout == ""
    assert result.stderr == "opcard: error: there is no certificate in the SIG slot\n"


# --- key export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("slot", ["sig", "dec", "aut"])
def test_key_export_pem(run, cli_cards, variant: str, slot: str) -> None:
    cli_cards(variant)
    result = run("key", "export", "--slot", slot, "--format", "pem")
    assert result.exit_code == 0
    expected = demo_public(variant, slot).public_bytes(  # type: ignore[attr-defined]
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    assert result.stdout_bytes == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_export_ssh(run, cli_cards, variant: str) -> None:
    cli_cards(variant, serial=0x01020304)
    for slot in ("sig", "aut"):
        result = run("key", "export", "--slot", slot, "--format", "ssh")
        assert result.exit_code == 0
        expected = demo_public(variant, slot).public_bytes(  # type: ignore[attr-defined]
            Encoding.OpenSSH, PublicFormat.OpenSSH
        )
        assert result.stdout_bytes == expected + b" cardno:FF0001020304\n"
    custom = run("key", "export", "--format", "ssh", "--comment", "jane@laptop")
    assert custom.stdout.endswith(" jane@laptop\n")


def test_key_export_ssh_refuses_x25519(run, cli_cards) -> None:
    cli_cards("demo-25519")
    result = run("key", "export", "--slot", "dec", "--format", "ssh")
    assert result.exit_code == ExitCode.Unsupported
    assert result.stderr.startswith("opcard: error: the DEC key (cv25519) has no OpenSSH form")


def test_key_export_empty_slot(run, card) -> None:
    card.state.keys[AUT] = None
    card.state.key_status[AUT] = 0
    card.state.fingerprints[AUT] = bytes(20)
    result = run("key", "export", "--format", "ssh")
    assert result.exit_code == ExitCode.NotFound
    assert "there is no key in the AUT slot" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_export_openpgp(run, cli_cards, variant: str) -> None:
    pgpy = pytest.importorskip("pgpy")
    card = cli_cards(variant)
    result = run("key", "export", "--format", "openpgp", input="123456\n")
    assert result.exit_code == 0, result.stderr
    assert "User PIN: " in result.stderr and "123456" not in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key, _ = pgpy.PGPKey.from_blob(result.stdout)
    fingerprints = [str(key.fingerprint).replace(" ", "")]
    fingerprints += [str(sub.fingerprint).replace(" ", "") for sub in key.subkeys.values()]
    assert fingerprints == [card.state.fingerprints[i].hex().upper() for i in (SIG, DEC, AUT)]
    assert [(uid.name, uid.email) for uid in key.userids] == [("Jane Doe", "")]
    custom = run(
        "key",
        "export",
        "--format",
        "openpgp",
        "--user-id",
        "J <j@example.org>",
        env={"OPCARD_PIN": "123456"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key, _ = pgpy.PGPKey.from_blob(custom.stdout)
        assert [(uid.name, uid.email) for uid in key.userids] == [("J", "j@example.org")]


# --- sign ----------------------------------------------------------------------------------------


def _verify(public: object, signature: bytes, data: bytes, hash_name: str) -> None:
    algorithm = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
        "sha1": hashes.SHA1(),
        "sha224": hashes.SHA224(),
    }[hash_name]
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(algorithm))  # DER
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("slot", ["sig", "aut"])
def test_sign_verifies(run, cli_cards, variant: str, slot: str, tmp_path: Path) -> None:
    cli_cards(variant)
    data = b"opcard sign test\n" * 100
    path = tmp_path / "data.txt"
    path.write_bytes(data)
    for hash_name in ("sha256", "sha384") if variant != "demo-25519" else ("sha256",):
        result = run(
            "sign", "--slot", slot, "--hash", hash_name, str(path), env={"OPCARD_PIN": "123456"}
        )
        assert result.exit_code == 0, result.stderr
        _verify(demo_public(variant, slot), result.stdout_bytes, data, hash_name)


def test_sign_stdin_and_output_file(run, card, tmp_path: Path) -> None:
    out = tmp_path / "sig.bin"
    result = run("sign", "-o", str(out), "-", input=b"from stdin", env={"OPCARD_PIN": "123456"})
    assert result.exit_code == 0 and result.stdout == ""
    _verify(demo_public("demo-rsa", "sig"), out.read_bytes(), b"from stdin", "sha256")


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc", "demo-25519"])
def test_sign_openpgp_detached(run, cli_cards, variant: str, tmp_path: Path) -> None:
    pgpy = pytest.importorskip("pgpy")
    cli_cards(variant)
    path = tmp_path / "doc.txt"
    path.write_bytes(b"signed by the card\n")
    env = {"OPCARD_PIN": "123456"}
    public = run("key", "export", "--format", "openpgp", env=env).stdout
    result = run("sign", "--openpgp", str(path), env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PGP SIGNATURE-----")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key, _ = pgpy.PGPKey.from_blob(public)
        signature = pgpy.PGPSignature.from_blob(result.stdout)
        assert key.verify(path.read_bytes(), signature)
        assert not key.verify(b"something else", signature)


def test_sign_refuses_the_dec_slot(run, card, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    result = run("sign", "--slot", "dec", str(path))
    assert result.exit_code == ExitCode.Usage
    assert "the DEC key decrypts" in result.stderr


@pytest.mark.parametrize("slot", ["sig", "aut"])
def test_sign_rsa_pss_is_refused_with_the_reason(run, card, slot: str, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    before = card.state.pw1_tries
    result = run("sign", "--slot", slot, "--padding", "pss", str(path))
    assert result.exit_code == ExitCode.Unsupported == 8
    assert result.stderr.startswith("opcard: error: CKM_SHA256_RSA_PKCS_PSS: ")
    assert "RSA-PSS is impossible" in result.stderr and "TLS 1.3" in result.stderr
    assert "PIN:" not in result.stderr  # refused before any PIN was asked (no input given)
    assert card.state.pw1_tries == before
