"""What each command imports, run for real (issue #15): the installed command line as a
subprocess against the emulated card through pcscd + vpcd, with ``sys.modules`` printed when
the process ends. Each command must not load what it does not use, so that the start-up gains
cannot silently come back. (Import-only guards, ``--help``, completion and ``serve``:
tests/unit/test_lazy_imports.py; ``cert export``'s own list: test_cli_pcsc.py.)

One emulator for the module (read-only commands; ``sign`` verifies the PIN, which does not
change the card).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_PORT, PW1, Emulator

pytestmark = [pytest.mark.pcsc]

MODULES_AT_EXIT = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n"))
from opcard.cli import main
main()
"""

#: Never loaded by a command that does not ask for them: click (these commands run through
#: opcard.cli.fast), APDU logging (-v), JSON output (--json), pyscard's object layer, TLS and
#: the daemon, datetime (times are written with time.strftime).
NEVER = {
    "click",
    "opcard.cli.app",
    "datetime",
    "logging",
    "json",
    "smartcard.Session",
    "smartcard.System",
    "smartcard.CardConnection",
    "tlslite",
    "opcard.tls",
    "opcard.serve",
}
#: The PKCS#11 tables and the session layer (and the dataclasses some of them use): a command
#: that does not log in needs none.
TOKEN_LAYER = {
    "dataclasses",
    "opcard.pkcs11.constants",
    "opcard.pkcs11.mechanisms",
    "opcard.pkcs11.uri",
    "opcard.session",
    "opcard.objects",
    "opcard.keys",
}
#: Each command's forbidden modules (beyond NEVER); a package name forbids its sub-modules.
FORBIDDEN: dict[str, set[str]] = {
    # opcard.errors (and the CK_RV table) come with the first error; these commands meet none
    "list": TOKEN_LAYER
    | {"cryptography", "asn1crypto", "hashlib", "opcard.publickeys", "opcard.algorithms"}
    | {"opcard.errors", "opcard.pkcs11", "math"}
    # the applet comes with the first card opened; list only reads each card's AID
    | {"apdu.openpgp.applet", "apdu.openpgp.quirks", "apdu.openpgp.kdf"},
    # PEM through binascii: base64 would add itself and struct
    "cert export": TOKEN_LAYER
    | {"cryptography", "asn1crypto", "hashlib", "opcard.publickeys", "opcard.algorithms"}
    | {"base64", "struct", "opcard.errors", "opcard.pkcs11", "math", "apdu.openpgp.kdf"},
    # status reads the certificates with opcard.certinfo and hashes them with CPython's own
    # SHA-256 (not OpenSSL's _hashlib); the key algorithms come from opcard.algorithms
    "status": TOKEN_LAYER
    | {
        "cryptography",
        "hashlib",
        "_hashlib",
        # opcard.errors and the CK_RV table come with the first error (a DO it cannot read)
        "opcard.errors",
        "opcard.pkcs11.rv",
        "asn1crypto",
        "opcard.publickeys",
        "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.primitives.ciphers",
    },
    "sign": {
        "cryptography",  # the hash is named, the signature made by the card
        "opcard.pkcs11.constants",
        "asn1crypto",
        "opcard.pkcs11.uri",
        "cryptography.x509",
        "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.primitives.ciphers",
        # the card's public key is read, not made a cryptography key
        "cryptography.hazmat.primitives.asymmetric.ec",
        "cryptography.hazmat.primitives.asymmetric.rsa",
        "cryptography.hazmat.primitives.asymmetric.ed25519",
        "cryptography.hazmat.primitives.asymmetric.x25519",
        "opcard.openpgp",
        "opcard.cli.status",
        "opcard.cli.cert",
        "opcard.cli.key",
    },
}


@pytest.fixture(scope="module")
def emu(pcscd: Any, tmp_path_factory: Any) -> Iterator[Emulator]:
    workdir = tmp_path_factory.mktemp("start-up")
    emulator = Emulator(
        workdir,
        profile="extended",
        personalize="demo-ecc",
        port=DEFAULT_PORT,
        apdu_log=None,
        opts={},
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def loaded(run_opcard: Any, *args: str) -> set[str]:
    result = run_opcard(*args, python_code=MODULES_AT_EXIT)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("MODULES ")]
    return set(line.split()[1:])


def offending(modules: set[str], forbidden: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("command", list(FORBIDDEN))
def test_command_loads_only_what_it_uses(
    command: str, emu: Emulator, run_opcard: Any, tmp_path: Path
) -> None:
    args = ["--reader", emu.reader, *command.split()]
    if command == "cert export":
        args += ["--slot", "aut"]  # PEM, the default
    if command == "sign":
        (tmp_path / "pin").write_text(PW1 + "\n")
        (tmp_path / "data").write_bytes(b"hello")
        args += ["--pin-file", str(tmp_path / "pin"), "--output", str(tmp_path / "sig")]
        args.append(str(tmp_path / "data"))
    modules = loaded(run_opcard, *args)
    assert {"opcard.card", "apdu.transport.pcsc", "smartcard.scard"} <= modules  # it ran
    assert offending(modules, NEVER | FORBIDDEN[command]) == []
    if command == "sign":
        assert (tmp_path / "sig").read_bytes()[:1] == b"\x30"  # an ECDSA signature (DER)


def test_log_apdus_still_logs(emu: Emulator, run_opcard: Any) -> None:
    """-v loads logging (the only way in) and the traffic lines come out."""
    result = run_opcard(
        "-v", "--reader", emu.reader, "cert", "export", "--format", "der",
        python_code=MODULES_AT_EXIT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "apdu.traffic: > 00a4040006 d27600012401" in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("MODULES ")]
    assert "logging" in line.split()
