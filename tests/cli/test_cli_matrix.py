"""The card-family matrix: the whole command line (and the API where the CLI has no command)
against every profile of the emulated card (fixtures/profiles.py; docs/cards.md).

Each test runs once per profile, in process (loopback backend), with the richest demo
personalisation the profile can hold. What a profile accepts is read from the profile itself
(``Profile.algorithm_names``, ``accepts``, ``kdf``, ``uif``, ``cert_slots``, ...), never from
opcard; results are checked in the emulated card's state and signatures are verified with
``cryptography`` against keys read from the demo files or from the card's state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.card import OpenPGPCard
from fixtures.card_state import AUT, DEC, SIG
from fixtures.personalize import demo_files
from fixtures.profiles import PROFILES, Profile, personalizations
from opcard.exitcodes import ExitCode

ADMIN = {"OPCARD_ADMIN_PIN": "12345678"}
USER = {"OPCARD_PIN": "123456"}
BOTH = {**ADMIN, **USER}
PROFILE_NAMES = sorted(PROFILES)
SLOT_INDEX = {"sig": SIG, "dec": DEC, "aut": AUT}
#: certificate occurrence (SELECT DATA P1) of each slot on a three-certificate card
OCCURRENCE = {"aut": 0, "dec": 1, "sig": 2}


#: CLI name of an algorithm the profile lists (fixtures.profiles.algorithm_name form)
def cli_name(profile_name: str) -> str:
    return profile_name.split("-", 1)[1] if "-" in profile_name else profile_name


#: every algorithm the CLI knows, per slot kind, to find one a profile refuses
SIGNING = (
    "rsa2048", "rsa3072", "rsa4096", "nistp256", "nistp384", "nistp521", "brainpoolp256r1",
    "brainpoolp384r1", "brainpoolp512r1", "secp256k1", "ed25519",
)  # fmt: skip
DECRYPTION = (*SIGNING[:-1], "cv25519")


def slot_algorithms(p: Profile, slot: str) -> list[str]:
    """CLI names of the algorithms the profile lists for ``slot`` that fit its use (a card
    that compares attributes byte for byte, as Gnuk does, may list ECDH ones for SIG too)."""
    kinds = ("rsa", "ecdh-") if slot == "dec" else ("rsa", "ecdsa-", "eddsa-")
    names = p.algorithm_names(SLOT_INDEX[slot])
    return [cli_name(n) for n in names if n.startswith(kinds)]


def refused_algorithm(p: Profile) -> tuple[str, str] | None:
    """(slot, CLI algorithm name) of one algorithm the profile refuses, or None."""
    for slot in ("aut", "sig", "dec"):
        taken = {n.lower() for n in slot_algorithms(p, slot)}
        for algo in SIGNING if slot != "dec" else DECRYPTION:
            if algo.lower() not in taken:
                return slot, algo
    return None


def richest(profile: str) -> str:
    held = personalizations(profile)
    assert held, f"profile {profile} holds no demo personalisation"
    return held[-1]


@pytest.fixture(params=PROFILE_NAMES)
def family(request: pytest.FixtureRequest, cli_cards: Any) -> tuple[Profile, OpenPGPCard, str]:
    """(profile, emulated card personalised with its richest variant, variant)."""
    name = str(request.param)
    variant = richest(name)
    return PROFILES[name], cli_cards(variant, profile=name), variant


def demo_public(variant: str, slot: str) -> Any:
    pem = demo_files(variant)[f"{slot}_cert"].read_bytes()
    return x509.load_pem_x509_certificate(pem).public_key()


def cert_slots(p: Profile) -> tuple[str, ...]:
    return ("aut", "dec", "sig") if p.cert_slots == 3 else ("aut",)


def state_snapshot(card: OpenPGPCard) -> tuple[Any, ...]:
    s = card.state
    return (
        list(s.attrs),
        [None if k is None else k.to_pkcs8() for k in s.keys],
        list(s.fingerprints),
        list(s.times),
        list(s.certs),
    )


def verify(public: Any, signature: bytes, data: bytes) -> None:
    """Raise unless ``signature`` (as ``opcard sign`` writes it) signs ``data``."""
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)


def card_public(card: OpenPGPCard, slot: str) -> Any:
    key = card.state.keys[SLOT_INDEX[slot]]
    assert key is not None
    return serialization.load_der_private_key(key.to_pkcs8(), None).public_key()


# --- reading -------------------------------------------------------------------------------------


def test_status_text_and_json(run, family) -> None:
    p, card, _ = family
    text = run("status")
    assert text.exit_code == 0, text.stderr
    assert f"{card.serial:08X}" in text.stdout
    assert f"Version ...........: {p.version >> 8}.{p.version & 0xFF}" in text.stdout
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["serial"] == f"{card.serial:08X}"
    assert doc["version"] == f"{p.version >> 8}.{p.version & 0xFF}"
    assert doc["manufacturer"]["id"] == f"{p.manufacturer:04X}"
    features = doc["features"]
    assert features["kdf"] is p.kdf and doc["kdf"]["supported"] is p.kdf
    assert features["private_dos"] is p.private_dos
    assert features["reset_code"] is p.reset_code
    assert features["attestation"] is p.attestation
    assert features["algorithm_information"] is (p.algorithm_info and p.version >= 0x0304)
    assert features["certificate_slots"] == sorted(cert_slots(p), key=["sig", "dec", "aut"].index)
    for slot in ("sig", "dec", "aut"):
        key = doc["keys"][slot]
        assert key["present"] is True
        fingerprint = card.state.fingerprints[SLOT_INDEX[slot]].hex().upper()
        assert key["fingerprint"] == fingerprint
        assert key["certificate_supported"] is (slot in cert_slots(p))
        if slot not in cert_slots(p):
            assert "not supported by this card" in text.stdout
    if not p.kdf:
        assert "KDF setting .......: not supported by this card" in text.stdout


def test_list(run, family) -> None:
    p, card, _ = family
    result = run("list", "--json")
    assert result.exit_code == 0, result.stderr
    (reader,) = json.loads(result.stdout)["readers"]
    assert reader["openpgp_card"]["serial"] == f"{card.serial:08X}"
    assert reader["openpgp_card"]["version"] == f"{p.version >> 8}.{p.version & 0xFF}"
    text = run("list").stdout
    assert f"serial {card.serial:08X}" in text


# --- certificates --------------------------------------------------------------------------------


def test_certificates_export_import_delete(run, family, tmp_path: Path) -> None:
    p, card, variant = family
    for slot in cert_slots(p):
        stored = card.state.certs[OCCURRENCE[slot]]
        exported = run("cert", "export", "--slot", slot, "--format", "der")
        assert exported.exit_code == 0, exported.stderr
        assert exported.stdout_bytes == stored
    new = x509.load_pem_x509_certificate(demo_files(variant)["sig_cert"].read_bytes())
    path = tmp_path / "new.der"
    path.write_bytes(new.public_bytes(Encoding.DER))
    before = list(card.state.certs)
    result = run("cert", "import", "--slot", "aut", str(path), env=ADMIN)
    if not p.cert_writable:  # Gnuk: written by its own tool, PUT DATA 7F21 refused
        assert result.exit_code != 0
        assert card.state.certs == before
        assert "7F21" in result.stderr or "certificate" in result.stderr
    else:
        assert result.exit_code == 0, result.stderr
        assert card.state.certs[0] == new.public_bytes(Encoding.DER)
        again = run("cert", "export", "--slot", "aut", "--format", "der")
        assert again.stdout_bytes == new.public_bytes(Encoding.DER)
        deleted = run("cert", "delete", "--slot", "aut", env=ADMIN)
        assert deleted.exit_code == 0, deleted.stderr
        assert card.state.certs[0] == b""
    for slot in ("dec", "sig"):
        if slot in cert_slots(p):
            continue
        sent_before = list(card.state.certs)
        for args in (
            ("cert", "export", "--slot", slot),
            ("cert", "import", "--slot", slot, str(path)),
            ("cert", "delete", "--slot", slot),
        ):
            refused = run(*args, env=ADMIN)
            assert refused.exit_code == ExitCode.Unsupported, (args, refused.stderr)
            assert "one certificate" in refused.stderr, refused.stderr
        assert card.state.certs == sent_before


# --- keys ----------------------------------------------------------------------------------------


def _use_key(run, card: OpenPGPCard, slot: str, tmp_path: Path) -> None:
    """Sign with SIG/AUT (verified); decrypt or derive with DEC through the API."""
    if slot == "dec":
        _decrypt_or_derive(run, card)
        return
    data = os.urandom(64)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    signed = run("sign", "--slot", slot, str(path), env=USER)
    assert signed.exit_code == 0, signed.stderr
    verify(card_public(card, slot), signed.stdout_bytes, data)


def _decrypt_or_derive(run, card: OpenPGPCard) -> None:
    from opcard.cli.backend import current

    public = card_public(card, "dec")
    opened = current().open_card(serial=None, reader=None)
    try:
        with opened.session() as session:
            session.login("123456")
            if isinstance(public, rsa.RSAPublicKey):
                secret = os.urandom(32)
                cryptogram = public.encrypt(secret, padding.PKCS1v15())
                assert session.decrypt("dec", cryptogram) == secret
            elif isinstance(public, x25519.X25519PublicKey):
                peer = x25519.X25519PrivateKey.generate()
                raw = peer.public_key().public_bytes(Encoding.Raw, serialization.PublicFormat.Raw)
                assert session.derive("dec", raw) == peer.exchange(public)
            else:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                peer_ec = ec.generate_private_key(public.curve)
                point = peer_ec.public_key().public_bytes(
                    Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
                assert session.derive("dec", point) == peer_ec.exchange(ec.ECDH(), public)
    finally:
        opened.close()


@pytest.mark.parametrize("slot", ["sig", "dec", "aut"])
def test_use_the_personalised_keys(run, family, slot: str, tmp_path: Path) -> None:
    _, card, variant = family
    assert card_public(card, slot).public_bytes(
        Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == demo_public(variant, slot).public_bytes(
        Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _use_key(run, card, slot, tmp_path)


@pytest.mark.parametrize("slot", ["sig", "dec", "aut"])
def test_generate_every_algorithm_the_card_takes(run, family, slot: str, tmp_path: Path) -> None:
    p, card, _ = family
    names = slot_algorithms(p, slot)
    if not p.attributes_changeable:  # only the algorithm the slot has now
        names = names[:1]
    assert names
    for algo in names:
        result = run("key", "generate", "--slot", slot, "--algo", algo, "--yes", env=ADMIN)
        assert result.exit_code == 0, (algo, result.stderr)
        assert card.state.key_status[SLOT_INDEX[slot]] == 0x01
        # the card's own attributes form (e length, import byte) is kept
        assert p.accepts(SLOT_INDEX[slot], card.state.attrs[SLOT_INDEX[slot]])
        key_out = run("key", "export", "--slot", slot)
        assert key_out.exit_code == 0, key_out.stderr
        exported = serialization.load_pem_public_key(key_out.stdout_bytes)
        assert exported.public_bytes(
            Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == card_public(card, slot).public_bytes(
            Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _use_key(run, card, slot, tmp_path)


#: the profiles that refuse at least one algorithm the CLI knows (a full v3.4 card takes all)
REFUSING = [name for name in PROFILE_NAMES if refused_algorithm(PROFILES[name]) is not None]


@pytest.mark.parametrize("name", REFUSING)
def test_refusal_of_an_algorithm_the_card_does_not_take(run, cli_cards, name: str) -> None:
    p = PROFILES[name]
    card = cli_cards(richest(name), profile=name)
    refused = refused_algorithm(p)
    assert refused is not None
    slot, algo = refused
    before = state_snapshot(card)
    result = run("key", "generate", "--slot", slot, "--algo", algo, "--yes", env=ADMIN)
    assert result.exit_code == ExitCode.Unsupported, result.stderr
    if p.algorithm_info and p.version >= 0x0304:
        assert "does not support" in result.stderr  # FA: refused before any PIN
    elif p.attributes_changeable:
        assert "the card refused" in result.stderr
        assert f"SW {p.unsupported_attributes_sw:04X}" in result.stderr
    assert state_snapshot(card) == before


@pytest.mark.parametrize("slot", ["sig", "dec", "aut"])
def test_import_a_key_the_card_takes(run, family, slot: str, tmp_path: Path) -> None:
    p, card, _ = family
    listed = slot_algorithms(p, slot)
    # the last listed algorithm (an ECC one where the card has any), or the only one
    names = listed[:1] if not p.attributes_changeable else listed[-1:]
    (algo,) = names
    private: Any
    if algo.startswith("rsa"):
        private = rsa.generate_private_key(65537, int(algo[3:]))
    elif algo == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif algo == "cv25519":
        private = x25519.X25519PrivateKey.generate()
    else:
        curves = {
            "nistp256": ec.SECP256R1(), "nistp384": ec.SECP384R1(), "nistp521": ec.SECP521R1(),
            "secp256k1": ec.SECP256K1(), "brainpoolp256r1": ec.BrainpoolP256R1(),
            "brainpoolp384r1": ec.BrainpoolP384R1(), "brainpoolp512r1": ec.BrainpoolP512R1(),
        }  # fmt: skip
        private = ec.generate_private_key(curves[algo.lower()])
    path = tmp_path / "key.pem"
    path.write_bytes(
        private.private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    result = run("key", "import", "--slot", slot, str(path), "--yes", env=ADMIN)
    assert result.exit_code == 0, (algo, result.stderr)
    assert card.state.key_status[SLOT_INDEX[slot]] == 0x02
    assert card_public(card, slot).public_bytes(
        Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == private.public_key().public_bytes(
        Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _use_key(run, card, slot, tmp_path)


# --- PINs ----------------------------------------------------------------------------------------


def test_pins_change_unblock_and_reset_code(run, family) -> None:
    p, card, _ = family
    changed = run("pin", "change", env={"OPCARD_PIN": "123456", "OPCARD_NEW_PIN": "654321"})
    assert changed.exit_code == 0, changed.stderr
    assert card.state.pw1 == b"654321"
    admin = run(
        "pin", "change", "--admin",
        env={"OPCARD_ADMIN_PIN": "12345678", "OPCARD_NEW_PIN": "87654321"},
    )  # fmt: skip
    assert admin.exit_code == 0, admin.stderr
    assert card.state.pw3 == b"87654321"
    unblocked = run(
        "pin", "unblock", "--admin",
        env={"OPCARD_ADMIN_PIN": "87654321", "OPCARD_NEW_PIN": "112233"},
    )  # fmt: skip
    assert unblocked.exit_code == 0, unblocked.stderr
    assert card.state.pw1 == b"112233"
    rc = run(
        "pin", "set-reset-code",
        env={"OPCARD_ADMIN_PIN": "87654321", "OPCARD_NEW_PIN": "13572468"},
    )  # fmt: skip
    if not p.reset_code:
        assert rc.exit_code == ExitCode.Unsupported, rc.stderr
        assert "not supported by this card" in rc.stderr
        return
    assert rc.exit_code == 0, rc.stderr
    assert card.state.rc == b"13572468"
    by_rc = run("pin", "unblock", env={"OPCARD_RESET_CODE": "13572468", "OPCARD_NEW_PIN": "445566"})
    assert by_rc.exit_code == 0, by_rc.stderr
    assert card.state.pw1 == b"445566"


def test_kdf_where_supported(run, family, tmp_path: Path) -> None:
    p, card, _ = family
    before = state_snapshot(card)
    result = run("kdf", "enable", env=ADMIN)
    if not p.kdf:
        assert result.exit_code == ExitCode.Unsupported, result.stderr
        assert "not supported by this card" in result.stderr
        assert state_snapshot(card) == before
        return
    assert result.exit_code == 0, result.stderr
    assert card.state.kdf[:3] == bytes.fromhex("810103")
    assert card.state.pw1 != b"123456"  # stored as the salted hash
    _use_key(run, card, "aut", tmp_path)  # the user PIN is derived on the way to the card
    off = run("kdf", "disable", env=ADMIN)
    assert off.exit_code == 0, off.stderr
    assert card.state.pw1 == b"123456"


def test_touch_where_supported(run, family) -> None:
    p, card, _ = family
    shown = run("touch")
    result = run("touch", "--slot", "sig", "--policy", "on", env=ADMIN)
    assert shown.exit_code == 0, shown.stderr
    if not p.uif:
        assert "not supported by this card" in shown.stdout
        assert result.exit_code == ExitCode.Unsupported, result.stderr
        assert "not supported by this card" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    assert card.state.uif[SIG] == bytes.fromhex("0120")


def test_factory_reset(run, family) -> None:
    p, card, _ = family
    before = state_snapshot(card)
    result = run("reset", "--yes", env=ADMIN)
    if not p.terminate:
        assert result.exit_code == ExitCode.Unsupported, result.stderr
        assert "not supported by this card" in result.stderr
        assert state_snapshot(card) == before
        return
    assert result.exit_code == 0, result.stderr
    s = card.state
    assert s.keys == [None, None, None]
    assert s.certs == [b"", b"", b""]
    assert (s.pw1, s.pw3) == (b"123456", b"12345678")
    assert (s.pw1_tries, s.pw3_tries) == (p.pin_retries, p.pin_retries)
    status = run("status", "--json")
    assert status.exit_code == 0, status.stderr
    assert all(not k["present"] for k in json.loads(status.stdout)["keys"].values())
