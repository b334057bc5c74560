"""``opcard`` end to end (subprocess, pcscd + vpcd + emulated cards): the error cases with the
exit code and message of each (no traceback), and the key generation spinner on a terminal."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_PORT, require_tool
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures.personalize import demo_files

pytestmark = [pytest.mark.pcsc]

SERIAL_A = 0x0C11A00A
SERIAL_B = 0x0C11A00B


def test_no_card(pcscd: Any, run_opcard) -> None:
    result = run_opcard("--serial", "0C11DEAD", "status")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "opcard: error: no OpenPGP card with serial 0C11DEAD is present",
        "opcard: insert the card, check 'opcard list', or choose another with --serial / --reader",
    ]
    missing = run_opcard("--reader", "No Such Reader 42", "cert", "export")
    assert missing.returncode == 3
    assert missing.stderr.startswith("opcard: error: no reader named 'No Such Reader 42'")
    assert "Traceback" not in result.stderr + missing.stderr


def test_no_pcsc_service(run_opcard, tmp_path: Path) -> None:
    result = run_opcard("status", env={"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")})
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "opcard: error: the PC/SC service (pcscd) is not running (SCardEstablishContext: "
        "SCARD_E_NO_SERVICE)",
        "opcard: start pcscd (e.g. 'systemctl start pcscd.socket', or 'pcscd')",
    ]


def test_several_cards(emulator: Any, run_opcard) -> None:
    a = emulator(personalize="demo", port=DEFAULT_PORT, serial=SERIAL_A)
    b = emulator(personalize="demo-ecc", port=DEFAULT_PORT + 1, serial=SERIAL_B)
    result = run_opcard("cert", "export")
    assert result.returncode == 4
    lines = result.stderr.splitlines()
    assert lines[0] == "opcard: error: 2 OpenPGP cards are present:"
    assert lines[1:3] == [
        f"  {a.reader}: OpenPGP card 3.4 by unmanaged S/N range, serial {SERIAL_A:08X}",
        f"  {b.reader}: OpenPGP card 3.4 by unmanaged S/N range, serial {SERIAL_B:08X}",
    ]
    assert lines[3] == "opcard: choose one with --serial SERIAL or --reader NAME"
    listing = run_opcard("list").text.splitlines()
    assert f"{b.reader}: OpenPGP card 3.4 by unmanaged S/N range, serial {SERIAL_B:08X}" in listing
    chosen = run_opcard("--serial", f"{SERIAL_B:08x}", "cert", "export", "--format", "der")
    assert chosen.returncode == 0
    expected = x509.load_pem_x509_certificate(demo_files("demo-ecc")["aut_cert"].read_bytes())
    assert chosen.stdout == expected.public_bytes(Encoding.DER)


def test_pin_certificate_and_algorithm_errors(emulator: Any, run_opcard, tmp_path: Path) -> None:
    """Wrong PIN with tries left, blocked PIN, certificate too large, unsupported algorithm,
    RSA-PSS: on one card limited to 600-byte certificates."""
    require_tool("openssl")
    emu = emulator(personalize="demo", max_cert_size=600, serial=SERIAL_A)
    r = ("--reader", emu.reader)
    data = tmp_path / "data"
    data.write_bytes(b"to sign")

    big = tmp_path / "big.pem"
    big.write_bytes(demo_files("demo-rsa")["sig_cert"].read_bytes())
    size = len(x509.load_pem_x509_certificate(big.read_bytes()).public_bytes(Encoding.DER))
    too_large = run_opcard(
        *r, "cert", "import", "--slot", "sig", str(big), env={"OPCARD_ADMIN_PIN": "12345678"}
    )
    assert too_large.returncode == 7
    assert too_large.stderr.splitlines()[0] == (
        f"opcard: error: the certificate is {size} bytes; this card stores at most 600 "
        "(the maximum certificate length in its extended capabilities, C0): nothing was sent "
        "to the card"
    )

    algorithm = run_opcard(*r, "key", "generate", "--slot", "dec", "--algo", "ed25519", "--yes")
    assert algorithm.returncode == 8
    assert algorithm.stderr == (
        "opcard: error: Ed25519 signs; the decryption slot takes cv25519 (X25519)\n"
    )

    pss = run_opcard(*r, "sign", "--slot", "aut", "--padding", "pss", str(data))
    assert pss.returncode == 8
    assert pss.stderr.startswith("opcard: error: CKM_SHA256_RSA_PKCS_PSS: OpenPGP cards pad RSA")
    assert "TLS 1.3 client authentication with an RSA card key cannot work" in pss.stderr

    for left, word in ((2, "tries"), (1, "try")):
        wrong = run_opcard(*r, "sign", str(data), env={"OPCARD_PIN": "999999"})
        assert wrong.returncode == 5
        assert wrong.stdout == b""
        assert wrong.stderr.splitlines()[0] == f"opcard: error: wrong user PIN: {left} {word} left"
    last = run_opcard(*r, "pin", "verify", env={"OPCARD_PIN": "999999"})
    assert last.returncode == 5
    assert "no tries left, the user PIN is now blocked" in last.stderr
    blocked = run_opcard(*r, "sign", str(data), env={"OPCARD_PIN": "123456"})
    assert blocked.returncode == 6
    assert blocked.stderr.splitlines() == [
        "opcard: error: the user PIN is blocked",
        "opcard: unblock it with 'opcard pin unblock' (reset code or admin PIN)",
    ]
    status = run_opcard(*r, "pin", "status")
    assert "user PIN ..: 0 tries left" in status.text
    unblocked = run_opcard(
        *r,
        "pin",
        "unblock",
        "--admin",
        env={"OPCARD_ADMIN_PIN": "12345678", "OPCARD_NEW_PIN": "123456"},
    )
    assert unblocked.returncode == 0
    signed = run_opcard(*r, "sign", str(data), env={"OPCARD_PIN": "123456"})
    assert signed.returncode == 0 and len(signed.stdout) == 256
    everything = "".join(x.stderr for x in (too_large, algorithm, pss, wrong, last, blocked))
    assert "Traceback" not in everything


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr; (status, output)."""
    import pty
    import subprocess

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=secondary, stdout=secondary, stderr=secondary, env=env)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc.wait(60), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(primary)


def test_key_generation_spinner_only_on_a_terminal(
    emulator: Any, opcard_exe: Path, run_opcard
) -> None:
    emu = emulator(personalize="demo", serial=SERIAL_A)
    argv = [str(opcard_exe), "--reader", emu.reader, "key", "generate", "--slot", "aut"]
    argv += ["--algo", "nistp256", "--yes"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env["OPCARD_ADMIN_PIN"] = "12345678"
    status, output = _on_a_terminal(argv, env)
    assert status == 0, output
    assert "\rgenerating a nistp256 key in the AUT slot  | 0 s" in output
    assert "\r\x1b[K" in output  # the spinner line erased
    assert re.search(r"AUT key: nistp256, fingerprint [0-9A-F]{40}\r?\n", output)
    piped = run_opcard(*argv[1:], env={"OPCARD_ADMIN_PIN": "12345678"})
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert re.fullmatch(r"AUT key: nistp256, fingerprint [0-9A-F]{40}\n", piped.text)
