"""The writing commands in process: cert import/delete, key generate/import, data, touch, kdf,
reset. Results are checked in the emulated card's state."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fixtures.card_state import AUT, DEC, SIG
from fixtures.personalize import demo_files
from opcard.cli.spinner import Spinner
from opcard.exitcodes import ExitCode

ADMIN = {"OPCARD_ADMIN_PIN": "12345678"}
USER = {"OPCARD_PIN": "123456"}


def demo_cert(variant: str, slot: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(demo_files(variant)[f"{slot}_cert"].read_bytes())


# --- certificates --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["pem", "der"])
def test_cert_import_pem_or_der(run, card, form: str, tmp_path: Path) -> None:
    cert = demo_cert("demo-ecc", "aut")
    path = tmp_path / f"cert.{form}"
    path.write_bytes(cert.public_bytes(Encoding.PEM if form == "pem" else Encoding.DER))
    result = run("cert", "import", "--slot", "sig", str(path), env=ADMIN)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "certificate stored in the SIG slot\n"
    assert card.state.certs[2] == cert.public_bytes(Encoding.DER)  # occurrence 2 = SIG
    assert run("cert", "export", "--slot", "sig", "--format", "der").stdout_bytes == (
        cert.public_bytes(Encoding.DER)
    )


def test_cert_import_prompts_for_the_admin_pin(run, card, tmp_path: Path) -> None:
    path = tmp_path / "c.pem"
    path.write_bytes(demo_cert("demo-ecc", "dec").public_bytes(Encoding.PEM))
    result = run("cert", "import", "--slot", "dec", str(path), input="12345678\n")
    assert result.exit_code == 0
    assert "Admin PIN: " in result.stderr and "12345678" not in result.stderr + result.stdout
    assert card.state.certs[1] == demo_cert("demo-ecc", "dec").public_bytes(Encoding.DER)


def test_cert_import_not_a_certificate(run, card, tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    before = list(card.state.certs)
    result = run("cert", "import", "--slot", "sig", str(path), env=ADMIN)
    assert result.exit_code == ExitCode.BadInput == 11
    assert f"opcard: error: {path} is not an X.509 certificate (PEM or DER)" in result.stderr
    assert card.state.certs == before and card.state.pw3_tries == 3


def test_cert_import_too_large(run, cli_cards, tmp_path: Path) -> None:
    card = cli_cards(max_cert_size=600)
    cert = demo_cert("demo-rsa", "sig")
    der = cert.public_bytes(Encoding.DER)
    assert len(der) > 600
    path = tmp_path / "big.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    before = list(card.state.certs)
    result = run("cert", "import", "--slot", "aut", str(path), env=ADMIN)
    assert result.exit_code == ExitCode.CertificateTooLarge == 7
    assert result.stderr.splitlines() == [
        f"opcard: error: the certificate is {len(der)} bytes; this card stores at most 600 "
        "(the maximum certificate length in its extended capabilities, C0): nothing was sent "
        "to the card",
        "opcard: use a smaller certificate (an ECC key, fewer extensions or a shorter chain "
        "of names)",
    ]
    assert card.state.certs == before


def test_cert_delete(run, card) -> None:
    result = run("cert", "delete", "--slot", "aut", env=ADMIN)
    assert result.exit_code == 0
    assert card.state.certs[0] == b""
    assert run("cert", "export").exit_code == ExitCode.NotFound


# --- keys ----------------------------------------------------------------------------------------


def _card_public(run, slot: str) -> object:
    pem = run("key", "export", "--slot", slot).stdout_bytes
    return serialization.load_pem_public_key(pem)


@pytest.mark.parametrize(
    ("slot", "algo", "kind"),
    [
        ("aut", "nistp256", ec.EllipticCurvePublicKey),
        ("sig", "ed25519", ed25519.Ed25519PublicKey),
        ("dec", "nistp384", ec.EllipticCurvePublicKey),
        ("sig", "rsa2048", rsa.RSAPublicKey),
    ],
)
def test_key_generate(run, card, slot: str, algo: str, kind: type) -> None:
    index = {"sig": SIG, "dec": DEC, "aut": AUT}[slot]
    old = card.state.fingerprints[index]
    result = run("key", "generate", "--slot", slot, "--algo", algo, "--yes", env=ADMIN)
    assert result.exit_code == 0, result.stderr
    new = card.state.fingerprints[index]
    assert new != old
    assert result.stdout == f"{slot.upper()} key: {algo}, fingerprint {new.hex().upper()}\n"
    assert result.stderr == ""  # not a terminal: no spinner
    assert card.state.key_status[index] == 1  # generated on the card
    public = _card_public(run, slot)
    assert isinstance(public, kind)
    doc = json.loads(run("status", "--json").stdout)
    assert doc["keys"][slot]["algorithm"] == algo
    assert doc["keys"][slot]["origin"] == "generated"
    if slot != "dec":
        data = b"freshly generated"
        signature = run("sign", "--slot", slot, "-", input=data, env=USER).stdout_bytes
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(public, ed25519.Ed25519PublicKey)
            public.verify(signature, data)


def test_key_generate_asks_before_replacing(run, card) -> None:
    old = card.state.fingerprints[AUT]
    result = run("key", "generate", "--slot", "aut", "--algo", "nistp256", input="n\n", env=ADMIN)
    assert result.exit_code == ExitCode.Error
    assert "holds a key; replace it" in result.stderr and "Aborted!" in result.stderr
    assert card.state.fingerprints[AUT] == old
    yes = run("key", "generate", "--slot", "aut", "--algo", "nistp256", input="y\n", env=ADMIN)
    assert yes.exit_code == 0 and card.state.fingerprints[AUT] != old


@pytest.mark.parametrize(
    ("slot", "algo", "message"),
    [
        ("sig", "rsa1024", "RSA-1024: OpenPGP cards take RSA 2048, 3072 or 4096"),
        ("sig", "ed448", "unknown algorithm 'ed448'"),
        ("dec", "ed25519", "Ed25519 signs; the decryption slot takes cv25519 (X25519)"),
        ("sig", "cv25519", "cv25519 (X25519) only decrypts; sign with ed25519"),
    ],
)
def test_key_generate_unsupported_algorithm(run, card, slot: str, algo: str, message: str) -> None:
    result = run("key", "generate", "--slot", slot, "--algo", algo, "--yes")
    # refused before the admin PIN is asked (no input given, none in the environment)
    assert result.exit_code == ExitCode.Unsupported == 8
    assert result.stderr.startswith(f"opcard: error: {message}")
    assert card.state.pw3_tries == 3


def test_key_generate_algorithm_missing_from_the_cards_list(run, card, monkeypatch) -> None:
    from opcard.card import Card

    original = Card.supported_algorithms

    def fewer(self: Card) -> dict:
        listed = original(self)
        assert listed is not None
        return {
            slot: tuple(a for a in algs if a.name != "brainpoolP512r1")
            for slot, algs in listed.items()
        }

    monkeypatch.setattr(Card, "supported_algorithms", fewer)
    result = run("key", "generate", "--slot", "sig", "--algo", "brainpoolP512r1", "--yes")
    assert result.exit_code == ExitCode.Unsupported
    assert result.stderr.startswith(
        "opcard: error: this card does not support brainpoolP512r1 in the SIG slot "
        "(it supports: rsa2048, rsa3072, rsa4096, nistp256"
    )


@pytest.mark.parametrize("encrypted", [False, True])
def test_key_import(run, card, encrypted: bool, tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    encryption = (
        serialization.BestAvailableEncryption(b"pass phrase")
        if encrypted
        else serialization.NoEncryption()
    )
    path = tmp_path / "key.pem"
    path.write_bytes(
        private.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    result = run(
        "key",
        "import",
        "--slot",
        "aut",
        "--yes",
        str(path),
        input="pass phrase\n" if encrypted else None,
        env=ADMIN,
    )
    assert result.exit_code == 0, result.stderr
    assert ("Passphrase of" in result.stderr) == encrypted
    assert card.state.key_status[AUT] == 2
    expected = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    assert run("key", "export", "--slot", "aut").stdout_bytes == expected
    signature = run("sign", "--slot", "aut", "--hash", "sha384", "-", input=b"m", env=USER)
    private.public_key().verify(signature.stdout_bytes, b"m", ec.ECDSA(hashes.SHA384()))


def test_key_import_bad_file(run, card, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"not a key")
    result = run("key", "import", "--slot", "aut", "--yes", str(path), env=ADMIN)
    assert result.exit_code == ExitCode.BadInput
    assert f"opcard: error: {path}: cannot load the private key" in result.stderr


def test_key_import_unsupported_key_type(run, card, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed448

    path = tmp_path / "key.pem"
    path.write_bytes(
        ed448.Ed448PrivateKey.generate().private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = run("key", "import", "--slot", "aut", "--yes", str(path), env=ADMIN)
    assert result.exit_code == ExitCode.Unsupported
    assert "Ed448PrivateKey keys cannot go on an OpenPGP card" in result.stderr
    assert card.state.pw3_tries == 3


# --- spinner -------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_spinner_draws_elapsed_time_on_a_terminal() -> None:
    import time

    stream = FakeTerminal()
    with Spinner("generating a rsa4096 key", stream, interval=0.01) as spinner:
        time.sleep(0.05)
    text = stream.getvalue()
    assert spinner.frames >= 2
    assert "\rgenerating a rsa4096 key  | 0 s" in text
    assert text.endswith("\r\x1b[K")  # the line is erased at the end
    assert spinner.line(1).endswith("/ 0 s")


def test_spinner_is_silent_on_a_pipe() -> None:
    stream = io.StringIO()
    with Spinner("generating", stream, interval=0.01) as spinner:
        pass
    assert stream.getvalue() == "" and spinner.frames == 0 and not spinner.active


# --- data objects --------------------------------------------------------------------------------


def test_data_get(run, card) -> None:
    assert run("data", "get", "name").stdout == "Jane Doe\n"
    assert run("data", "get", "url").stdout == "https://example.invalid/opcard-demo.asc\n"
    assert run("data", "get", "login").stdout == "jdoe\n"
    assert run("data", "get", "private-1").stdout_bytes == b"opcard demo private DO 1"
    assert run("data", "get", "private-2").stdout_bytes == b""


def test_data_set(run, card, tmp_path: Path) -> None:
    assert run("data", "set", "name", "Erika Mustermann", env=ADMIN).exit_code == 0
    assert card.state.name == b"Mustermann<<Erika"
    assert run("data", "get", "name").stdout == "Erika Mustermann\n"
    assert run("data", "set", "url", "https://keys.example/e.asc", env=ADMIN).exit_code == 0
    assert card.state.url == b"https://keys.example/e.asc"
    assert run("data", "set", "login", "--clear", env=ADMIN).stderr == "login cleared\n"
    assert card.state.login == b""
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(200)))
    assert run("data", "set", "private-2", "--file", str(blob), env=ADMIN).exit_code == 0
    assert card.state.private_dos[0x0102] == bytes(range(200))
    assert run("data", "get", "private-2").stdout_bytes == bytes(range(200))
    # private DO 3: the user PIN to write and to read
    assert run("data", "set", "private-3", "secret", env=USER).exit_code == 0
    assert card.state.private_dos[0x0103] == b"secret"
    read = run("data", "get", "private-3", input="123456\n")
    assert read.stdout_bytes == b"secret" and "User PIN: " in read.stderr
    # private DO 4: the admin PIN
    assert run("data", "set", "private-4", "top", env=ADMIN).exit_code == 0
    assert run("data", "get", "private-4", env=ADMIN).stdout_bytes == b"top"


def test_data_set_needs_exactly_one_value(run, card) -> None:
    result = run("data", "set", "url")
    assert result.exit_code == ExitCode.Usage
    assert "give exactly one of VALUE, --file FILE or --clear" in result.stderr


def test_data_set_name_must_be_latin1(run, card) -> None:
    result = run("data", "set", "name", "Jane Ďoe", env=ADMIN)
    assert result.exit_code == ExitCode.Usage
    assert "ISO 8859-1" in result.stderr


# --- touch, kdf, reset ---------------------------------------------------------------------------


def test_touch(run, card) -> None:
    assert run("touch").stdout == "SIG: off\nDEC: off\nAUT: off\n"
    result = run("touch", "--slot", "sig", "--policy", "on", env=ADMIN)
    assert result.exit_code == 0 and result.stdout == "SIG: on\n"
    assert card.state.uif[SIG][0] == 0x01
    assert run("touch").stdout == "SIG: on\nDEC: off\nAUT: off\n"
    assert run("touch", "--policy", "on").exit_code == ExitCode.Usage


def test_kdf_enable_and_disable(run, card) -> None:
    result = run("kdf", "enable", env=ADMIN)
    assert result.exit_code == 0, result.stderr
    assert "KDF enabled; the PINs are now the defaults" in result.stdout
    assert json.loads(run("status", "--json").stdout)["kdf"]["enabled"] is True
    # PINs go through the KDF now (the card stores hashes): verification still works
    assert card.state.pw1 != b"123456"
    assert run("pin", "verify", env=USER).stdout == "user PIN correct\n"
    assert run("kdf", "disable", env=ADMIN).exit_code == 0
    assert json.loads(run("status", "--json").stdout)["kdf"]["enabled"] is False
    assert card.state.pw1 == b"123456"


def test_reset(run, card) -> None:
    declined = run("reset", input="n\n")
    assert declined.exit_code == ExitCode.Error
    assert "Erase every key, certificate and data object of card 10000001" in declined.stderr
    assert card.state.keys[SIG] is not None
    result = run("reset", "--yes")
    assert result.exit_code == 0
    assert result.stdout.startswith("card 10000001 reset;")
    doc = json.loads(run("status", "--json").stdout)
    assert [k["present"] for k in doc["keys"].values()] == [False, False, False]
    assert doc["cardholder"]["name"] is None
    assert card.state.keys == [None, None, None]
