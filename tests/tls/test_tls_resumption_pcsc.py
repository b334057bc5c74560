"""Session resumption through pcscd + vpcd with the emulated card, counted in the emulator's
own APDU log: a resumed handshake sends the card nothing, in the library and across two runs
of the installed ``opcard`` console script (``--sess-out`` then ``--sess-in``)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tls_support import PW1, Pki

import opcard
from opcard.tls import SessionCache, TlsClient, TlsVersion

pytestmark = pytest.mark.pcsc

SIGN = "00880000"  # INTERNAL AUTHENTICATE


def _commands(emu: Any) -> list[str]:
    return [e.text for e in emu.log_entries() if e.direction == ">"]


def test_library_resumes_without_the_card(emulator: Any, pki: Pki, openssl_server: Any) -> None:
    emu = emulator(profile="extended", personalize="demo-ecc")
    server = openssl_server()
    with opcard.open_card(reader=emu.reader) as card, card.session() as session:
        session.login(PW1)
        for version in (TlsVersion.TLS1_3, TlsVersion.TLS1_2):
            client = TlsClient(
                session, cafile=pki.demo_ca_file, max_version=version, session_cache=SessionCache()
            )
            seen = []
            for _ in range(3):
                before = len(_commands(emu))
                with client.connect("localhost", server.port) as conn:
                    assert conn.version is version
                    seen.append((conn.resumed, len(_commands(emu)[before:])))
            assert seen == [(False, 1), (True, 0), (True, 0)], (version, seen)


def test_console_script_sess_out_then_sess_in(
    emulator: Any, pki: Pki, openssl_server: Any, tmp_path: Path
) -> None:
    from conftest import require_file

    exe = require_file(Path(sys.executable).parent / "opcard")
    emu = emulator(profile="extended", personalize="demo-ecc")
    server = openssl_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env.update(OPCARD_PIN=PW1, OPCARD_READER=emu.reader)
    path = tmp_path / "session.json"
    base = [str(exe), "tls", "connect", f"localhost:{server.port}"]
    base += ["--cafile", str(pki.demo_ca_file)]
    before = len(_commands(emu))
    first = subprocess.run(
        [*base, "--reconnect", "2", "--sess-out", str(path)], env=env, capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr.decode()
    out = first.stdout.decode()
    assert "  3 handshakes: 2 resumed, 1 full" in out
    assert len([c for c in _commands(emu)[before:] if c.startswith(SIGN)]) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = len(_commands(emu))
    second = subprocess.run(
        [*base, "--sess-in", str(path), "--send", r"GET / HTTP/1.0\r\n\r\n"], env=env,
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr.decode()
    assert second.stderr == b""
    out = second.stdout.decode()
    assert "(resumed)" in out and "Reused, TLSv1.3" in out
    commands = _commands(emu)[before:]
    assert [c for c in commands if c.startswith(SIGN)] == []  # no signature in this process
    assert len([c for c in commands if c.startswith("00200082")]) == 1  # the PIN, still
