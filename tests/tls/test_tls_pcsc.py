"""TLS client authentication through pcscd + vpcd with the emulated card, counted in the
emulator's own APDU log: after login, exactly one command per handshake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tls_support import PW1, Pki, openssl_subject

import opcard
from opcard.tls import TlsClient, TlsVersion

pytestmark = pytest.mark.pcsc


def _commands(emu: Any) -> list[str]:
    return [e.text for e in emu.log_entries() if e.direction == ">"]


def test_library_through_pcscd(emulator: Any, pki: Pki, openssl_server: Any) -> None:
    emu = emulator(profile="extended", personalize="demo-ecc")
    server = openssl_server()
    with opcard.open_card(reader=emu.reader) as card, card.session() as session:
        client = TlsClient(session, cafile=pki.demo_ca_file)
        subject = openssl_subject(client.certificate)
        session.login(PW1)
        for version in (TlsVersion.TLS1_3, TlsVersion.TLS1_2):
            before = len(_commands(emu))
            with TlsClient(session, cafile=pki.demo_ca_file, max_version=version).connect(
                "localhost", server.port
            ) as conn:
                assert conn.version is version
                assert conn.card_signatures == 1
            handshake = _commands(emu)[before:]
            assert len(handshake) == 1, handshake
            assert handshake[0].startswith("00880000")  # INTERNAL AUTHENTICATE
    server.wait_for(subject)


def test_console_script_through_pcscd(emulator: Any, pki: Pki, openssl_server: Any) -> None:
    from conftest import require_file

    exe = require_file(Path(sys.executable).parent / "opcard")
    emu = emulator(profile="short", personalize="demo-rsa")  # Gnuk-like: short APDUs
    server = openssl_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env.update(OPCARD_PIN=PW1, OPCARD_READER=emu.reader)
    before = len(_commands(emu))
    argv = [str(exe), "tls", "connect", f"localhost:{server.port}"]
    argv += ["--cafile", str(pki.demo_ca_file), "--send", r"GET / HTTP/1.0\r\n\r\n"]
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()
    assert "Protocol:    TLS 1.2" in out  # an RSA key: TLS 1.2 at most
    assert "RSA PKCS#1 v1.5 with SHA-" in out and "(1 APDU in the handshake)" in out
    assert "\n---\nHTTP/1.0 200 ok" in out
    commands = _commands(emu)[before:]
    signing = [c for c in commands if c.startswith("00880000")]
    verifies = [c for c in commands if c.startswith("00200082") and "redacted" in c]
    assert len(signing) == 1 and len(verifies) == 1
    assert PW1 not in "".join(commands)
    server.wait_for("opcard demo AUT (RSA-2048)")
