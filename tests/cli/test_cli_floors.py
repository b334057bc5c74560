"""The floors of issue #15 (tests/benchmarks/floors/) do what opcard does: each floor script,
pyscard alone, sends the card the same command APDUs as the opcard command it stands for and
prints the same bytes, so that tests/benchmarks/startup.py compares like with like and the two
cannot drift apart silently.

One emulated card per personalisation for the module, through pcscd + vpcd: the RSA 2048 card
for every floor, the P-256 and Ed25519/X25519 cards also for the two that depend on the key
type (status, sign); every floor and every opcard command runs once as a subprocess:

- ``floor_cert_export.py`` / ``opcard cert export --slot aut``: the same PEM;
- ``floor_status.py`` / ``opcard status``: the same text, every line (certificate subject,
  issuer and validity parsed by hand in the floor, by ``cryptography`` in opcard);
- ``floor_list.py`` / ``opcard list``: the same lines;
- ``floor_sign.py`` / ``opcard sign --pin-file`` with the SIG key (PSO:CDS) and the AUT key
  (INTERNAL AUTHENTICATE): RSA PKCS#1 v1.5 and Ed25519 signatures byte-identical, ECDSA
  (random) ones differ; all verified with ``cryptography`` against the slot's certificate;
- ``floor_open.py`` / ``opcard.open_card(reader=…)``: the same APDUs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_PORT, Emulator

pytestmark = [pytest.mark.pcsc]

REPO = Path(__file__).resolve().parents[2]
FLOORS = REPO / "tests" / "benchmarks" / "floors"
PIN = "123456"
#: the floors whose APDUs and output do not depend on the key type run on the RSA card only
RSA_ONLY = pytest.mark.parametrize("emu", ["demo-rsa"], indirect=True)


@pytest.fixture(scope="module", params=["demo-rsa", "demo-ecc", "demo-25519"])
def emu(request: pytest.FixtureRequest, pcscd: Any, tmp_path_factory: Any) -> Iterator[Emulator]:
    workdir = tmp_path_factory.mktemp(f"floors-{request.param}")
    emulator = Emulator(
        workdir,
        profile="extended",
        personalize=request.param,
        port=DEFAULT_PORT,
        apdu_log=workdir / "apdu.log",
        opts={},
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("floor-files")
    (work / "pin.txt").write_text(PIN + "\n")
    (work / "hello.txt").write_bytes(b"hello, floor\n")
    return {"pin": work / "pin.txt", "message": work / "hello.txt"}


def run(emu: Emulator, argv: list[str]) -> tuple[bytes, list[str]]:
    """Standard output of ``argv`` and the command APDUs (as logged) the card received."""
    before = len(emu.log_entries())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    proc = subprocess.run(argv, capture_output=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stderr.decode(errors='replace')}"
    commands = [e.text for e in emu.log_entries()[before:] if e.direction == ">"]
    return proc.stdout, commands


def floor(name: str, *args: str) -> list[str]:
    return [sys.executable, str(FLOORS / f"floor_{name}.py"), *args]


def opcard(emu: Emulator, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "opcard"), "--reader", emu.reader, *args]


@RSA_ONLY
def test_cert_export_floor(emu: Emulator) -> None:
    theirs, floor_apdus = run(emu, floor("cert_export", "--reader", emu.reader, "--slot", "aut"))
    ours, opcard_apdus = run(emu, opcard(emu, "cert", "export", "--slot", "aut"))
    assert theirs.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert theirs == ours
    assert floor_apdus == opcard_apdus
    assert len(opcard_apdus) == 4


def test_status_floor(emu: Emulator) -> None:
    theirs, floor_apdus = run(emu, floor("status", "--reader", emu.reader))
    ours, opcard_apdus = run(emu, opcard(emu, "status"))
    assert b"certificate .: CN=opcard demo AUT" in theirs
    assert theirs.decode().splitlines() == ours.decode().splitlines()
    assert floor_apdus == opcard_apdus


@RSA_ONLY
def test_list_floor(emu: Emulator) -> None:
    theirs, floor_apdus = run(emu, floor("list"))
    ours, opcard_apdus = run(emu, [str(Path(sys.executable).parent / "opcard"), "list"])
    assert f"{emu.reader}: OpenPGP card 3.4 by ".encode() in theirs
    assert theirs == ours
    assert floor_apdus == opcard_apdus


@pytest.mark.parametrize("slot", ["sig", "aut"])
def test_sign_floor(emu: Emulator, files: dict[str, Path], slot: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    from fixtures.personalize import demo_files

    args = ["--slot", slot, "--pin-file", str(files["pin"]), str(files["message"])]
    theirs, floor_apdus = run(emu, floor("sign", "--reader", emu.reader, *args))
    ours, opcard_apdus = run(emu, opcard(emu, "sign", *args))
    assert emu.personalize is not None
    cert = demo_files(emu.personalize)[f"{slot}_cert"].read_bytes()
    key = x509.load_pem_x509_certificate(cert).public_key()
    message = files["message"].read_bytes()
    for signature in (theirs, ours):
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)  # PureEdDSA: over the file itself
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    if emu.personalize != "demo-ecc":  # RSA PKCS#1 v1.5 and Ed25519 are deterministic
        assert theirs == ours
    # the signing APDU carries the same hash; ECDSA answers differ, the commands do not
    assert floor_apdus == opcard_apdus
    assert any(c.startswith("002A9E9A" if slot == "sig" else "00880000") for c in floor_apdus)


@RSA_ONLY
def test_open_floor(emu: Emulator) -> None:
    theirs, floor_apdus = run(emu, floor("open", "--reader", emu.reader))
    code = "import sys, opcard; opcard.open_card(reader=sys.argv[1]).close()"
    ours, opcard_apdus = run(emu, [sys.executable, "-c", code, emu.reader])
    assert theirs == ours == b""
    assert floor_apdus == opcard_apdus
    assert [c[:8] for c in floor_apdus] == ["00A40400", "00CA006E"]


def test_floors_name_manufacturers_as_opcard_does() -> None:
    """The floors' copy of the AID manufacturer table (they may use pyscard only) is opcard's."""
    import importlib.util

    from apdu.openpgp.constants import MANUFACTURERS

    spec = importlib.util.spec_from_file_location("floorcard", FLOORS / "floorcard.py")
    assert spec is not None and spec.loader is not None
    floorcard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floorcard)
    assert floorcard.MANUFACTURERS == MANUFACTURERS
