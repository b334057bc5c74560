"""OpenPGP with the card (opcard.openpgp): the exported public key carries the card's C5
fingerprints and imports into GnuPG and pgpy; detached signatures made on the card verify
with ``gpg --verify`` and pgpy. GnuPG is required (skipped outside CI without it)."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_module, require_tool
from opcard_support import PW1, PW3, Rig

from apdu.openpgp.constants import KeySlot
from opcard.errors import NotLoggedInError, ObjectNotFoundError, OpenPgpError
from opcard.openpgp import card_key_packets, detached_signature, export_openpgp

USER_ID = "Jane Doe <jane@example.org>"
PSO, VERIFY = 0x2A, 0x20

pytestmark = pytest.mark.gnupg


@dataclass
class Gpg:
    home: Path

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", *args],
            input=input,
            capture_output=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode() + proc.stderr.decode()

    def colons(self, *args: str) -> list[list[str]]:
        out = self.run("--with-colons", "--fixed-list-mode", *args)
        return [line.split(":") for line in out.splitlines() if ":" in line]


@pytest.fixture
def gpg(tmp_path: Path) -> Iterator[Gpg]:
    require_tool("gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    yield Gpg(home)
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30
    )


def pgpy_module() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pgpy imports imghdr
        return require_module("pgpy")


def c5(r: Rig) -> list[str]:
    ard = r.card.application_data()
    return [ard.fingerprint(slot).hex().upper() for slot in KeySlot]  # type: ignore[union-attr]


def test_export_imports_into_gnupg_and_pgpy(card_rig: Rig, gpg: Gpg) -> None:
    r = card_rig
    with r.card.session() as s:
        with pytest.raises(NotLoggedInError):
            export_openpgp(s, USER_ID)
        s.login(PW1)
        start = len(r.sent)
        armored = export_openpgp(s, USER_ID)
        single_use = r.emu.state.pw1_single_use
        # three self-signatures by the SIG key (VERIFY before each one under C4 00)
        signing = [c[1] for c in r.sent[start:] if c[1] in (PSO, VERIFY)]
        assert signing == ([VERIFY, PSO] * 3 if single_use else [VERIFY, PSO, PSO, PSO])
        binary = export_openpgp(s, USER_ID, armored=False)
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    expected = c5(r)
    # the C5 fingerprints are those the personalisation wrote, computed independently of opcard
    from fixtures.personalize import DEMO_TIME, v4_fingerprint

    demo = r.demo
    assert expected == [
        v4_fingerprint(demo[slot].public, DEMO_TIME, ecdh=slot == "dec").hex().upper()
        for slot in ("sig", "dec", "aut")
    ]
    out = gpg.run("--import", input=armored)
    assert "imported: 1" in out
    rows = gpg.colons("--check-sigs")
    assert [row[9] for row in rows if row[0] == "fpr"] == expected
    sigs = [row for row in rows if row[0] == "sig"]
    assert len(sigs) == 3 and all(row[1] == "!" for row in sigs), sigs  # good signatures
    capabilities = [row[11] for row in rows if row[0] in ("pub", "sub")]
    assert capabilities[0].startswith("sc") and capabilities[1:] == ["e", "a"]
    assert [row[9] for row in rows if row[0] == "uid"] == [USER_ID]
    assert [row[5] for row in rows if row[0] in ("pub", "sub")] == ["1748736000"] * 3
    pgpy = pgpy_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for blob in (armored, binary):
            key, _ = pgpy.PGPKey.from_blob(blob)
            assert str(key.fingerprint).replace(" ", "") == expected[0]
            subkeys = [str(k.fingerprint).replace(" ", "") for k in key.subkeys.values()]
            assert subkeys == expected[1:]
            assert key.verify(key)


def test_detached_signature_verifies(card_rig: Rig, gpg: Gpg, tmp_path: Path) -> None:
    r = card_rig
    data = b"signed on the card\n" * 1000
    (tmp_path / "data").write_bytes(data)
    with r.card.session() as s:
        s.login(PW1)
        key = export_openpgp(s, USER_ID)
        armored = detached_signature(s, data)
        with open(tmp_path / "data", "rb") as f:
            binary = detached_signature(s, f, armored=False)
    assert armored.startswith(b"-----BEGIN PGP SIGNATURE-----\n")
    (tmp_path / "data.asc").write_bytes(armored)
    (tmp_path / "data.sig").write_bytes(binary)
    gpg.run("--import", input=key)
    fpr = c5(r)[0]
    for name in ("data.asc", "data.sig"):
        out = gpg.run("--status-fd", "1", "--verify", str(tmp_path / name), str(tmp_path / "data"))
        assert "[GNUPG:] GOODSIG" in out
        assert f"[GNUPG:] VALIDSIG {fpr}" in out
    (tmp_path / "other").write_bytes(data + b"!")
    out = gpg.run(
        "--status-fd",
        "1",
        "--verify",
        str(tmp_path / "data.asc"),
        str(tmp_path / "other"),
        check=False,
    )
    assert "[GNUPG:] BADSIG" in out and "GOODSIG" not in out
    pgpy = pgpy_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        public, _ = pgpy.PGPKey.from_blob(key)
        for blob in (armored, binary):
            assert public.verify(data, pgpy.PGPSignature.from_blob(blob))
            assert not public.verify(data + b"!", pgpy.PGPSignature.from_blob(blob))


def test_fingerprint_mismatch_and_missing_keys(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login(PW1)
        assert set(card_key_packets(s)) == set(KeySlot)
        # C5 of the AUT key overwritten by someone else: the export refuses to lie
        s.login_admin(PW3)
        s.card.applet.set_fingerprint(KeySlot.AUT, b"\x11" * 20)
        s.card.invalidate()
        with pytest.raises(OpenPgpError, match="AUT key's OpenPGP fingerprint"):
            export_openpgp(s, USER_ID)
        assert KeySlot.AUT in card_key_packets(s, check_fingerprints=False)
    fresh = rig("extended", None)
    with fresh.card.session() as s2:
        s2.login(PW1)
        with pytest.raises(ObjectNotFoundError):
            export_openpgp(s2, USER_ID)
        with pytest.raises(ObjectNotFoundError):
            detached_signature(s2, b"x")


def test_export_after_key_generation(rig: Callable[..., Rig], gpg: Gpg) -> None:
    """Keys generated through opcard (fingerprint and time written by opcard) export with
    the fingerprints the card then holds."""
    r = rig("short", "demo-rsa")
    with r.card.session() as s:
        s.login_admin(PW3)
        s.generate_key("sig", "ed25519", created=1750000000)
        s.generate_key("dec", "nistp256", created=1750000001)
        s.login(PW1)
        armored = export_openpgp(s, USER_ID)
    gpg.run("--import", input=armored)
    rows = gpg.colons("--check-sigs")
    assert [row[9] for row in rows if row[0] == "fpr"] == c5(r)
    assert all(row[1] == "!" for row in rows if row[0] == "sig")
