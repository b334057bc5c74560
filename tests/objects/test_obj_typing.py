"""The public API as a user's type checker sees it.

tests/typing/user_script.py is user-style code that follows the documentation. It must pass
``mypy --strict`` as written (no casts, no ``isinstance`` to reach ``.sign()``), and it runs
against an emulated card here. A second file misuses the same API; mypy must report every
misuse — so a return type that became ``Any`` or ``CardObject`` (``get_private_key`` losing
``.sign``) fails this test one way or the other.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from opcard_support import make_rig

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "typing" / "user_script.py"

#: Each line is a mistake mypy must report (line numbers count from 1).
MISUSE = """\
import opcard


def misuse(session: opcard.Session) -> None:
    session.get_certificate("aut").sign(b"data")
    session.get_private_key("sig").sign(42)
    session.get_public_key("sig").decrypt(b"x")
    value: str = session.get_data_object("url").value
    session.get_key("aut", object_class=opcard.ObjectClass.CERTIFICATE).sign(b"x")
    opcard.KeySlots
"""
MISUSE_LINES = {5, 6, 7, 8, 9, 10}


def mypy_errors(*files: Path, cache: Path) -> dict[str, set[int]]:
    """``mypy --strict`` on ``files``: the lines with errors, per file name."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            f"--cache-dir={cache}",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    errors: dict[str, set[int]] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): error: ", line)
        if m:
            errors.setdefault(Path(m.group(1)).name, set()).add(int(m.group(2)))
    assert not set(errors) - {SCRIPT.name, "misuse.py"}, proc.stdout  # opcard itself is clean
    if errors.get(SCRIPT.name):
        raise AssertionError(f"{SCRIPT} does not pass mypy --strict:\n{proc.stdout}")
    return errors


def test_user_script_passes_mypy_strict_and_misuse_is_reported(tmp_path: Path) -> None:
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    errors = mypy_errors(SCRIPT, misuse, cache=tmp_path / "mypy-cache")
    assert errors.get("misuse.py") == MISUSE_LINES


def test_user_script_runs() -> None:
    spec = importlib.util.spec_from_file_location("user_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rig = make_rig("extended", "demo-ecc")
    url_before = rig.emu.state.url
    assert url_before
    try:
        seen = module.main(rig.card)
    finally:
        rig.card.close()
    assert seen["spec"] == (3, 4) and seen["firmware"] is None  # not a YubiKey
    assert seen["retries"] == 2
    aut = rig.demo["aut"]
    public = aut.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    fast = seen["fast"]
    assert isinstance(fast, bytes)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"transcript")
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    public.verify(fast, digest.finalize(), ec.ECDSA(Prehashed(hashes.SHA256())))
    assert seen["same"] == aut.cert_der
    assert seen["subject"] == aut.certificate.subject.rfc4514_string()
    assert seen["url"] == url_before  # read through the typed accessor
    assert (rig.emu.state.url, rig.emu.state.login) == (b"https://example.org/jane.asc", b"jane")
    assert "use get_data_object" in str(seen["not found"])
    assert seen["stored"] is True
    stored = x509.load_der_x509_certificate(rig.emu.state.certs[0])  # occurrence 0: AUT
    assert stored.subject.rfc4514_string() == "CN=Jane Doe"
    assert str(seen["openpgp"]).startswith("b'-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert str(seen["pgp signature"]).startswith("b'-----BEGIN PGP SIGNATURE-----")
