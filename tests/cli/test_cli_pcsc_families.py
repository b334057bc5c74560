"""Every card family through the real stack: the installed ``opcard`` command as a subprocess,
pcscd, vpcd and the emulated card of each family profile (fixtures/profiles.py).

What the in-process matrix (test_cli_matrix.py) cannot show: the framing each family needs
(short APDUs with chaining and 61xx, extended APDUs without chaining, 255/254-byte answers)
working through pcscd's T=1 path, and what actually went over the wire: no SELECT DATA to a
one-certificate card, no extended APDU to a card that only takes short ones, no FA read where
the card publishes none. Signatures are verified with ``cryptography`` against the demo keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Emulator
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.personalize import demo_files
from fixtures.profiles import FAMILY_PROFILES, PROFILES, personalizations

pytestmark = [pytest.mark.pcsc]

USER = {"OPCARD_PIN": "123456"}


def wire_commands(emu: Emulator) -> list[bytes]:
    """The command APDUs the card received (headers of redacted ones only)."""
    out = []
    for entry in emu.log_entries():
        if entry.direction == ">":
            out.append(bytes.fromhex(entry.text.split(" ", 1)[0]))
    return out


def is_extended(apdu: bytes) -> bool:
    return len(apdu) > 5 and apdu[4] == 0x00


def verify(public: Any, signature: bytes, data: bytes) -> None:
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)


@pytest.mark.parametrize("name", FAMILY_PROFILES)
def test_family_through_pcscd(emulator: Any, run_opcard: Any, name: str, tmp_path: Path) -> None:
    p = PROFILES[name]
    variant = personalizations(name)[-1]
    emu = emulator(profile=name, personalize=variant)
    reader = ["--reader", emu.reader]
    version = f"{p.version >> 8}.{p.version & 0xFF}"

    status = run_opcard(*reader, "status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert (doc["serial"], doc["version"]) == (f"{p.serial:08X}", version)
    assert doc["features"]["certificate_slots"] == (
        ["sig", "dec", "aut"] if p.cert_slots == 3 else ["aut"]
    )

    files = demo_files(variant)
    aut_cert = x509.load_pem_x509_certificate(files["aut_cert"].read_bytes())
    exported = run_opcard(*reader, "cert", "export", "--slot", "aut", "--format", "der")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == aut_cert.public_bytes(Encoding.DER)
    if p.cert_slots == 1:
        other = run_opcard(*reader, "cert", "export", "--slot", "sig")
        assert other.returncode == 8, other.stderr
        assert "one certificate" in other.stderr

    data = tmp_path / "data.bin"
    data.write_bytes(f"signed by the {name} card through pcscd\n".encode())
    for slot in ("sig", "aut"):
        signed = run_opcard(*reader, "sign", "--slot", slot, str(data), env=USER)
        assert signed.returncode == 0, signed.stderr
        public = x509.load_pem_x509_certificate(files[f"{slot}_cert"].read_bytes()).public_key()
        verify(public, signed.stdout, data.read_bytes())

    sent = wire_commands(emu)
    instructions = {apdu[1] for apdu in sent}
    if p.cert_slots == 1:
        assert 0xA5 not in instructions and 0xCC not in instructions  # SELECT/GET NEXT DATA
    if not p.extended_length:
        assert not [a.hex() for a in sent if is_extended(a)]
    fa_reads = [a for a in sent if a[1] == 0xCA and a[2:4] == b"\x00\xfa"]
    if p.version < 0x0304:  # FA came with spec 3.4: not even asked for
        assert not fa_reads
    elif not p.algorithm_info:  # a 3.4 card without FA is asked once (and answers 6A88)
        assert len(fa_reads) <= 1
    if not p.command_chaining:
        assert not [a for a in sent if a[0] & 0x10]
