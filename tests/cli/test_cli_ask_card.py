"""The command line asks the card (issue #10), in process: key generate on cards without FA,
spec 2 cards with one certificate, and status / refusals for features a card lacks.

Cards are emulated cards with a profile that lacks one thing at a time
(``tests.limited_card.limited``: the emulator's own Profile fields), put into a reader of the
loopback backend. Refusals are checked to come before any PIN: no PIN is given
(none in the environment, no input), and the retry counters stay where they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.card_state import AUT, DEC
from fixtures.personalize import demo_files, personalize
from opcard.exitcodes import ExitCode
from tests.limited_card import RSA_AND_P256, LimitedCard, limited

ADMIN = {"OPCARD_ADMIN_PIN": "12345678"}
USER = {"OPCARD_PIN": "123456"}
P256_OID = bytes.fromhex("2A8648CE3D030107")
NOT_SUPPORTED = "not supported by this card"


def insert(
    backend: Any, variant: str = "demo-rsa", *, counter: bool = True, **fields: Any
) -> LimitedCard:
    card = LimitedCard(limited("extended", **fields), counter=counter)
    personalize(card, variant)
    card.power_on()
    backend.cards["Loopback 00"] = card
    return card


def demo_cert_der(variant: str, slot: str) -> bytes:
    pem = demo_files(variant)[f"{slot}_cert"].read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def key_state(card: LimitedCard) -> tuple[Any, ...]:
    s = card.state
    return (list(s.attrs), list(s.keys), list(s.fingerprints), list(s.times), list(s.key_status))


# --- key generate on a card without FA ----------------------------------------------------------


def test_generate_without_fa_accepted_and_the_key_signs(run, backend) -> None:
    card = insert(backend, algorithm_info=False, slot_algorithms=RSA_AND_P256)
    result = run("key", "generate", "--slot", "aut", "--algo", "nistp256", "--yes", env=ADMIN)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("AUT key: nistp256, fingerprint ")
    assert card.state.attrs[AUT] == b"\x13" + P256_OID
    pem = run("key", "export", "--slot", "aut").stdout_bytes
    public = serialization.load_pem_public_key(pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signed = run("sign", "--slot", "aut", "--hash", "sha256", "-", input=b"asked", env=USER)
    assert signed.exit_code == 0, signed.stderr
    public.verify(signed.stdout_bytes, b"asked", ec.ECDSA(hashes.SHA256()))


def test_generate_without_fa_refused_by_the_card(run, backend) -> None:
    card = insert(backend, algorithm_info=False, slot_algorithms=RSA_AND_P256)
    before = key_state(card)
    result = run("key", "generate", "--slot", "aut", "--algo", "ed25519", "--yes", env=ADMIN)
    assert result.exit_code == ExitCode.Unsupported == 8
    assert result.stderr == (
        "opcard: error: the card refused ed25519 for the AUT slot (SW 6A80): it may not "
        "support this algorithm; nothing on the card was changed\n"
    )
    assert key_state(card) == before
    assert card.state.pw3_tries == 3
    status = json.loads(run("status", "--json").stdout)
    assert status["keys"]["aut"]["algorithm"] == "rsa2048"
    assert status["features"]["algorithm_information"] is False


def test_import_without_fa_refused_by_the_card(run, backend, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    card = insert(backend, algorithm_info=False, slot_algorithms=RSA_AND_P256)
    before = key_state(card)
    path = tmp_path / "ed.pem"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = run("key", "import", "--slot", "sig", "--yes", str(path), env=ADMIN)
    assert result.exit_code == ExitCode.Unsupported
    assert result.stderr == (
        "opcard: error: the card refused ed25519 for the SIG slot (SW 6A80): it may not "
        "support this algorithm; nothing on the card was changed\n"
    )
    assert key_state(card) == before


def test_generate_with_fa_still_refuses_early(run, backend) -> None:
    """A card that publishes FA and does not list an algorithm: refused before the PIN."""
    card = insert(backend, slot_algorithms=RSA_AND_P256)
    before = card.state.attrs[DEC]
    result = run("key", "generate", "--slot", "dec", "--algo", "ed25519", "--yes")
    assert result.exit_code == ExitCode.Unsupported
    assert "Ed25519 signs; the decryption slot takes cv25519" in result.stderr
    assert card.state.attrs[DEC] == before and card.state.pw3_tries == 3


# --- spec 2 cards: one certificate ---------------------------------------------------------------


def test_v2_card_certificate_commands(run, backend, tmp_path: Path) -> None:
    card = insert(backend, version=0x0201, cert_slots=1, algorithm_info=False)
    message = (
        "opcard: error: this card (OpenPGP card 2.1) holds one certificate, for the AUT key; "
        "it has no certificate slot for {}\n"
    )
    export = run("cert", "export", "--slot", "sig")
    assert (export.exit_code, export.stderr) == (ExitCode.Unsupported, message.format("SIG"))
    path = tmp_path / "c.pem"
    path.write_bytes(demo_files("demo-ecc")["aut_cert"].read_bytes())
    for args in (
        ("cert", "import", "--slot", "dec", str(path)),
        ("cert", "delete", "--slot", "sig"),
    ):
        result = run(*args)  # no PIN given: refused before it would be asked
        assert (result.exit_code, result.stderr) == (
            ExitCode.Unsupported,
            message.format(args[3].upper()),
        )
    assert card.state.pw3_tries == 3
    aut = run("cert", "export", "--format", "der")
    assert aut.stdout_bytes == demo_cert_der("demo-rsa", "aut")
    imported = run("cert", "import", "--slot", "aut", str(path), env=ADMIN)
    assert imported.exit_code == 0, imported.stderr
    assert card.state.certs[0] == demo_cert_der("demo-ecc", "aut")
    text = run("status").stdout
    assert text.count(f"certificate .: {NOT_SUPPORTED} (it holds one certificate, for the AUT") == 2
    assert "      certificate .: CN=opcard demo AUT (ECDSA P-256),O=opcard demo" in text
    doc = json.loads(run("status", "--json").stdout)
    assert doc["features"]["certificate_slots"] == ["aut"]
    assert [doc["keys"][k]["certificate_supported"] for k in ("sig", "dec", "aut")] == [
        False,
        False,
        True,
    ]


# --- features a card lacks ---------------------------------------------------------------------


def bare(backend: Any) -> LimitedCard:
    return insert(
        backend,
        version=0x0303,
        algorithm_info=False,
        counter=False,
        uif=False,
        general_feature_do=None,
        kdf=False,
        private_dos=False,
    )


def test_status_text_says_not_supported(run, backend) -> None:
    bare(backend)
    result = run("status")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in (
        f"Signature counter .: {NOT_SUPPORTED}",
        f"KDF setting .......: {NOT_SUPPORTED}",
        f"Private DOs .......: {NOT_SUPPORTED}",
        f"Attestation .......: {NOT_SUPPORTED}",
        f"Algorithm list ....: {NOT_SUPPORTED} (it is asked when a key is generated)",
        "PIN retry counter .: user 3, reset code 0, admin 3",
    ):
        assert line in lines
    assert lines.count(f"      touch .......: {NOT_SUPPORTED}") == 3


def test_status_json_features(run, backend, cli_cards) -> None:
    bare(backend)
    doc = json.loads(run("status", "--json").stdout)
    assert doc["schema_version"] == 1
    assert doc["features"] == {
        "algorithm_information": False,
        "algorithm_attributes_changeable": True,
        "key_import": True,
        "kdf": False,
        "touch": [],
        "attestation": False,
        "reset_code": True,
        "private_dos": False,
        "signature_counter": False,
        "certificate_slots": ["sig", "dec", "aut"],
    }
    assert doc["signature_counter"] is None
    assert doc["kdf"] == {"supported": False, "enabled": False}
    assert all(doc["keys"][k]["touch"] is None for k in ("sig", "dec", "aut"))
    full = cli_cards(reader="Loopback 00")  # the plain emulator: everything but attestation
    doc = json.loads(run("status", "--json").stdout)
    assert full.state.sig_counter == doc["signature_counter"] == 0
    assert doc["features"]["touch"] == ["sig", "dec", "aut"]
    assert [k for k, v in doc["features"].items() if not v] == ["attestation"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("kdf", "enable"), "the PIN KDF (KDF-DO) is not supported by this card"),
        (("kdf", "disable"), "the PIN KDF (KDF-DO) is not supported by this card"),
        (
            ("touch", "--slot", "aut", "--policy", "on"),
            "touch (UIF) is not supported by this card for the AUT key",
        ),
        (("data", "set", "private-1", "x"), "private DO 1 is not supported by this card"),
        (("data", "get", "private-4"), "private DO 4 is not supported by this card"),
    ],
)
def test_absent_feature_refused_before_any_pin(run, backend, args, message: str) -> None:
    card = bare(backend)
    result = run(*args)  # no PIN anywhere: a prompt would fail differently
    assert (result.exit_code, result.stderr) == (
        ExitCode.Unsupported,
        f"opcard: error: {message}\n",
    )
    assert (card.state.pw1_tries, card.state.pw3_tries) == (3, 3)


def test_touch_listing_says_not_supported(run, backend) -> None:
    bare(backend)
    result = run("touch")
    assert result.stdout.splitlines() == [f"{s}: {NOT_SUPPORTED}" for s in ("SIG", "DEC", "AUT")]


def test_reset_code_refused_on_a_card_without_one(run, backend) -> None:
    card = insert(backend, version=0x0101, reset_code=False, cert_slots=1, algorithm_info=False)
    for args in (("pin", "set-reset-code"), ("pin", "unblock")):
        result = run(*args)
        assert (result.exit_code, result.stderr) == (
            ExitCode.Unsupported,
            "opcard: error: the reset code is not supported by this card\n",
        )
    assert (card.state.pw1_tries, card.state.pw3_tries) == (3, 3)
    text = run("status").stdout
    assert f"Reset code ........: {NOT_SUPPORTED}" in text
    assert "PIN retry counter .: user 3, admin 3" in text
