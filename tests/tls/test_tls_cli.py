"""``opcard tls connect`` in process (click's runner) against openssl s_server, the card an
emulated one behind the CLI's backend; the PIN from OPCARD_PIN as users give it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result
from tls_support import (
    INS_INTERNAL_AUTHENTICATE,
    PW3,
    CardRig,
    OpenSslServer,
    Pki,
    openssl_subject,
    slot_certificate,
)

from apdu.transport.loopback import LoopbackTransport
from opcard.card import Card
from opcard.cli.app import cli
from opcard.cli.backend import ReaderEntry, use_backend
from opcard.cli.tls import parse_address, unescape

ENV_CLEARED = ("OPCARD_PIN", "OPCARD_ADMIN_PIN", "OPCARD_READER", "OPCARD_SERIAL")


class RigBackend:
    """The CLI's cards come from one :class:`CardRig` (its commands are recorded)."""

    def __init__(self, rig: CardRig) -> None:
        self.rig = rig

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        emu = self.rig.emu

        def transmit(apdu: bytes) -> bytes:
            self.rig.commands.append(bytes(apdu))
            return emu.transmit(apdu)

        return Card(LoopbackTransport(transmit, emu.atr, "Loopback 00", on_power=emu.reset))

    def readers(self) -> list[ReaderEntry]:
        return []


@dataclass
class Cli:
    rig: CardRig
    server: OpenSslServer
    pki: Pki

    def __call__(self, *args: str, pin: str | None = "123456", ca: bool = True) -> Result:
        env: dict[str, str | None] = dict.fromkeys(ENV_CLEARED)
        if pin is not None:
            env["OPCARD_PIN"] = pin
        argv = ["tls", "connect", f"localhost:{self.server.port}"]
        if ca:
            argv += ["--cafile", str(self.pki.demo_ca_file)]
        with use_backend(RigBackend(self.rig)):
            return CliRunner(env=env).invoke(cli, [*argv, *args], catch_exceptions=False)


@pytest.fixture
def run(card_rig: object, pki: Pki, openssl_server: object) -> Iterator[Cli]:
    assert callable(card_rig) and callable(openssl_server)
    yield Cli(card_rig("demo-ecc"), openssl_server(), pki)


def test_connect_shows_the_session_and_the_answer(run: Cli) -> None:
    mark = run.rig.mark()
    result = run("--send", r"GET / HTTP/1.0\r\n\r\n", "--wait", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    assert lines[0] == f"Connected to localhost:{run.server.port}"
    assert "Protocol:    TLS 1.3" in lines
    assert "Cipher:      TLS_AES_256_GCM_SHA384" in lines or any(
        line.startswith("Cipher:      TLS_") for line in lines
    )
    assert "  subject:   CN=localhost,O=opcard tls tests" in lines
    assert "  issuer:    CN=opcard demo CA,O=opcard demo" in lines
    assert any(line.startswith("  verified:  yes, for 'localhost'") for line in lines)
    card_subject = slot_certificate(run.rig).subject.rfc4514_string()
    assert f"  subject:   {card_subject}" in lines
    assert "  signature: ECDSA with SHA-256, on the card (1 APDU in the handshake)" in lines
    answer = out.split("\n---\n", 1)[1]
    assert answer.startswith("HTTP/1.0 200 ok")
    assert "Protocol  : TLSv1.3" in answer
    # the card: one VERIFY (the PIN) and one INTERNAL AUTHENTICATE
    commands = run.rig.since(mark)
    assert len(run.rig.verifies(mark)) == 1
    assert len([c for c in commands if c[1] == INS_INTERNAL_AUTHENTICATE]) == 1
    run.server.wait_for(openssl_subject(slot_certificate(run.rig)))


def test_json(run: Cli) -> None:
    result = run("--json", "--tls-max", "1.2", "--send", r"GET / HTTP/1.0\r\n\r\n")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["version"] == "TLS 1.2"
    assert document["server_certificate"]["verified"] is True
    assert document["server_certificate"]["chain"] == [
        "CN=localhost,O=opcard tls tests",
        "CN=opcard demo CA,O=opcard demo",
    ]
    client = document["client_certificate"]
    assert client == {
        "slot": "aut",
        "subject": slot_certificate(run.rig).subject.rfc4514_string(),
        "sent": True,
        "signature": "ECDSA with SHA-256",
        "card_apdus": 1,
    }
    assert document["answer"].startswith("HTTP/1.0 200 ok")


def test_quiet_prints_only_the_answer(run: Cli) -> None:
    result = run("-q", "--send", r"GET / HTTP/1.0\r\n\r\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("HTTP/1.0 200 ok")


def test_wrong_pin(run: Cli) -> None:
    mark = run.rig.mark()
    result = run(pin="000000")
    assert result.exit_code == 5
    assert "wrong user PIN: 2 tries left" in result.stderr
    assert "000000" not in result.output
    assert len(run.rig.verifies(mark)) == 1
    assert [c for c in run.rig.since(mark) if c[1] == INS_INTERNAL_AUTHENTICATE] == []
    assert run.rig.pin_retries() == 2
    assert "depth=" not in run.server.log()  # no handshake was attempted


def test_missing_certificate_asks_no_pin(run: Cli) -> None:
    with run.rig.card.session() as session:
        session.login_admin(PW3)
        session.delete_certificate("aut")
    mark = run.rig.mark()
    result = run()
    assert result.exit_code == 10  # not found
    assert "no certificate in the AUT slot" in result.stderr
    assert run.rig.verifies(mark) == []
    assert run.rig.pin_retries() == 3


def test_tls13_with_rsa(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    run = Cli(card_rig("demo-rsa"), openssl_server(), pki)
    mark = run.rig.mark()
    refused = run("--tls-min", "1.3")
    assert refused.exit_code == 8  # unsupported
    assert "RSA-PSS" in refused.stderr and "TLS 1.3" in refused.stderr
    assert run.rig.verifies(mark) == []
    assert "depth=" not in run.server.log()
    capped = run("--tls-max", "1.3")
    assert capped.exit_code == 0, capped.output
    assert "offering TLS 1.2 at most" in capped.stderr
    assert "Protocol:    TLS 1.2" in capped.stdout
    assert "RSA PKCS#1 v1.5 with SHA-" in capped.stdout
    assert run.rig.pin_retries() == 3


def test_versions_upside_down(run: Cli) -> None:
    result = run("--tls-min", "1.3", "--tls-max", "1.2")
    assert result.exit_code == 2  # usage
    assert "above the maximum" in result.stderr
    assert run.rig.verifies() == []


def test_untrusted_server(run: Cli) -> None:
    result = run("--cafile", str(run.pki.other_ca_file), ca=False)
    assert result.exit_code == 1
    assert "does not chain to a CA of" in result.stderr
    assert "--cafile" in result.stderr  # the hint
    no_verify = run("--no-verify", ca=False)
    assert no_verify.exit_code == 0
    assert "not verified" in no_verify.stderr
    assert "  verified:  NO (--no-verify)" in no_verify.stdout


def test_server_rejects_the_client(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    run = Cli(card_rig("demo-ecc"), openssl_server(cafile=pki.other_ca_file), pki)
    result = run()
    assert result.exit_code == 1
    assert "the server refused the client certificate" in result.stderr
    assert run.rig.pin_retries() == 3


def test_alpn_option(card_rig: object, pki: Pki, openssl_server: object) -> None:
    assert callable(card_rig) and callable(openssl_server)
    run = Cli(card_rig("demo-ecc"), openssl_server(extra=("-alpn", "http/1.1")), pki)
    result = run("--alpn", "h2,http/1.1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["alpn"] == "http/1.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:443", ("localhost", 443)),
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::1]:4433", ("::1", 4433)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", "::1:443", "host:0", "host:70000", ":443"])
def test_bad_address(text: str) -> None:
    import click

    with pytest.raises(click.BadParameter):
        parse_address(text)


def test_unescape() -> None:
    assert unescape(r"GET / HTTP/1.0\r\n\r\n") == b"GET / HTTP/1.0\r\n\r\n"
    assert unescape(r"a\x00b\\n\tc") == b"a\x00b\\n\tc"
    assert unescape("é") == "é".encode()
