"""GnuPG and OpenSC on what only the card-family profiles do (docs/cards.md).

test_gnupg.py and test_opensc.py run their whole set on every profile with the
personalisations it can hold; this file adds what differs on the real families and is not
covered there: one-certificate cards (spec 2.x: one 7F21, no SELECT DATA) as GnuPG and OpenSC
read them, and a card refusing algorithm attributes it does not support, seen through GnuPG.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from test_gnupg import _tlv_find, demo_public_key, verify_signature
from test_gnupg import gnupg as gnupg  # the fixture
from test_opensc import opensc as opensc  # the fixture

from fixtures.profiles import PROFILES, supports

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]

ONE_CERT = sorted(n for n, p in PROFILES.items() if p.cert_slots == 1)
# OpenSC 0.23 sends SELECT DATA to Gnuk (OpenSC #2752): its PKCS#15 layer fails there as it
# does on the real token; test_opensc.py says more
ONE_CERT_OPENSC = [n for n in ONE_CERT if PROFILES[n].family != "Gnuk"]


def _demo_cert_der(slot: str) -> bytes:
    from fixtures.personalize import demo_files

    pem = demo_files("demo")[f"{slot}_cert"].read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_one_certificate_families_exist() -> None:
    assert ONE_CERT == ["gnuk12", "yubikey-neo", "yubikey4", "zeitcontrol21"]
    assert all(supports(n, "demo") for n in ONE_CERT)


@pytest.mark.gnupg
@pytest.mark.parametrize("profile", ONE_CERT)
def test_gnupg_reads_the_one_certificate_as_openpgp3_without_select_data(
    emulator: Any, gnupg: Any, profile: str
) -> None:
    """scd/app-openpgp.c do_readcert: on a v2 card only OPENPGP.3 exists, read with GET DATA
    7F21 (no SELECT DATA); OPENPGP.1/.2 answer "not supported"."""
    emu = emulator(profile=profile, personalize="demo")
    g = gnupg(emu.reader)
    before = emu.commands()
    aut, sig = g.agent("SCD READCERT OPENPGP.3", "SCD READCERT OPENPGP.1")
    assert aut.ok, aut.error
    assert aut.data == _demo_cert_der("aut")
    assert not sig.ok  # 2.2: "Invalid ID"; later GnuPG: "not supported" on a v2 card
    sent = [e.text for e in emu.log_entries() if e.direction == ">"][before:]
    assert not any(c[2:4] == "A5" for c in sent)  # no SELECT DATA reached the card


@pytest.mark.opensc
@pytest.mark.parametrize("profile", ONE_CERT_OPENSC)
def test_opensc_shows_exactly_the_aut_certificate(emulator: Any, opensc: Any, profile: str) -> None:
    emu = emulator(profile=profile, personalize="demo")
    tool = opensc(emu.reader)
    dump = tool.pkcs15("--dump").decode()
    keys = re.findall(r"^Private (?:RSA|EC|EDDSA|XEDDSA) Key \[(.*)\]$", dump, re.M)
    certs = re.findall(r"^X\.509 Certificate \[(.*)\]$", dump, re.M)
    assert sorted(keys) == ["Authentication key", "Encryption key", "Signature key"]
    assert certs == ["AUT certificate"]
    pem = tool.pkcs15("--read-certificate", "03")
    got = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert got == _demo_cert_der("aut")


@pytest.mark.gnupg
@pytest.mark.parametrize(
    ("profile", "algo", "sw"),
    [
        ("yubikey4", "19 nistp256", "6A80"),
        ("zeitcontrol21", "22 ed25519", "6A80"),
        ("ledger", "19 nistp384", "6A80"),
        ("gnuk12", "19 nistp384", "6F00"),
    ],
)
def test_gnupg_key_attr_change_the_card_refuses_changes_nothing(
    emulator: Any, gnupg: Any, profile: str, algo: str, sw: str
) -> None:
    """GnuPG sends the new attributes (PUT DATA C1); the card answers its refusal (GnuPG 2.2.40
    still answers the SETATTR with OK) and keeps its key: gpg signs with it afterwards."""
    emu = emulator(profile=profile, personalize="demo")
    g = gnupg(emu.reader)
    fpr_before = g.card_status()["fpr"][0]
    before = len(emu.log_entries())
    g.agent(f"SCD SETATTR KEY-ATTR --force 1 {algo}")
    log = emu.log_entries()[before:]
    puts = [i for i, e in enumerate(log) if e.direction == ">" and e.text.startswith("00DA00C1")]
    assert puts, "GnuPG sent no PUT DATA C1"
    assert all(log[i + 1].text == sw for i in puts)
    with emu.connect() as conn:  # raw, without SELECT: scdaemon holds a session
        app = conn.get_data(0x006E)
    c1 = _tlv_find(app, 0xC1)
    assert c1 is not None and c1[:3] == b"\x01\x08\x00"  # still RSA-2048
    assert g.card_status()["fpr"][0] == fpr_before
    digest = hashlib.sha256(f"{profile} after a refused key-attr".encode()).digest()
    reply = g.pksign(digest)
    assert reply.ok, reply.error
    verify_signature(demo_public_key("demo", "sig"), reply.data, digest)
