"""``opcard tls connect`` with a card whose certificate subject holds terminal escapes and a
bidi override (issue 12, item 1): the text output shows them escaped, ``--json`` keeps the
exact subject, and nothing printed holds a control or format character."""

from __future__ import annotations

import json
import unicodedata

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tls_support import PW3, CardRig, Pki, issue

from apdu.transport.loopback import LoopbackTransport
from opcard.card import Card
from opcard.cli.app import cli
from opcard.cli.backend import ReaderEntry, use_backend
from opcard.text import escape

HOSTILE_CN = "Jane\x1b]0;tls\x07\x1b[2J \u202eeoD\x9b"


class Backend:
    def __init__(self, rig: CardRig) -> None:
        self.rig = rig

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        emu = self.rig.emu
        return Card(LoopbackTransport(emu.transmit, emu.atr, "Loopback 00", on_power=emu.reset))

    def readers(self) -> list[ReaderEntry]:
        return []


def _unsafe(text: str) -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]


def test_tls_connect_shows_a_hostile_subject_escaped(
    card_rig: object, pki: Pki, openssl_server: object
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(pki.demo_ca, pki.demo_ca_key, key.public_key(), HOSTILE_CN, client=True)
    with rig.card.session() as session:
        session.login_admin(PW3)
        session.import_key("aut", key)
        session.store_certificate("aut", cert.public_bytes(serialization.Encoding.DER))
    server = openssl_server()
    subject = cert.subject.rfc4514_string()
    env: dict[str, str | None] = {"OPCARD_PIN": "123456", "OPCARD_READER": None}
    argv = ["tls", "connect", f"localhost:{server.port}", "--cafile", str(pki.demo_ca_file)]
    with use_backend(Backend(rig)):
        text = CliRunner(env=env).invoke(cli, argv, color=True, catch_exceptions=False)
        as_json = CliRunner(env=env).invoke(
            cli, [*argv, "--json"], color=True, catch_exceptions=False
        )
    assert text.exit_code == 0, text.output
    assert f"  subject:   {escape(subject)}" in text.stdout.splitlines()
    assert "\\x1b]0\\;tls\\x07\\x1b[2J \\u202eeoD\\x9b" in text.stdout
    assert _unsafe(text.stdout) == [] and _unsafe(text.stderr) == []
    assert as_json.exit_code == 0, as_json.output
    assert _unsafe(as_json.stdout) == []
    assert json.loads(as_json.stdout)["client_certificate"]["subject"] == subject
