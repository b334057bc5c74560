"""Text from a hostile card never reaches the terminal raw (issue 12, item 1).

The card's login data, URL, cardholder name and AUT certificate (subject and issuer), and the
reader's name, hold terminal escape sequences, C1 controls and bidi overrides — written the
way an attacker would, through ``opcard data set`` and ``opcard cert import``. Then every
read-only command runs against that card and nothing it prints (stdout and stderr) holds a
control or format character other than newline; ``--json`` keeps the exact values. A command
tree walk fails when a new command is not listed here, so that a new output path is checked
too.
"""

from __future__ import annotations

import datetime
import json
import unicodedata
from typing import Any

import click
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from fixtures.personalize import demo_files
from opcard.cli.app import cli
from opcard.text import escape, escape_json

ADMIN = "12345678"
#: The attack of the issue: retitles the terminal (OSC 0 … BEL) and clears the screen.
LOGIN = "jdoe\033]0;owned\007\033[2J"
URL = "https://example.invalid/\x1b[31mred\x9b2J\u202egpj.exe\u2028second line"
NAME = "Jane\x1b[8m Doe"
SUBJECT_CN = "Jane\x1b]0;cert\x07 \u202eeoD"
ISSUER_O = "Evil\x9b1m CA\u200b\ufeff"
READER = "Evil\x1b]0;reader\x07 Reader\x85 00"

#: Read-only invocations checked byte by byte (argument lists after ``opcard``).
READ_ONLY: list[list[str]] = [
    ["list"],
    ["list", "--json"],
    ["status"],
    ["status", "--json"],
    ["pin", "status"],
    ["pin", "status", "--json"],
    ["touch"],
    ["key", "export", "--slot", "aut"],
    ["key", "export", "--slot", "aut", "--format", "ssh"],
    ["--reader", READER + "x", "status"],  # an error message quoting a reader name
    ["--serial", "\x1b[2JDEADBEEF", "status"],  # an error quoting what was given
]
#: Commands not run here, with the reason (writes, PIN-protected work covered elsewhere,
#: and data written byte for byte by design — docs/cli.md says which).
NOT_RUN = {
    "cert delete": "writes",
    "cert export": "data: the certificate, DER or PEM",
    "cert import": "writes (used above to plant the hostile certificate)",
    "data get": "data: exact into a pipe, escaped on a terminal (test below)",
    "data set": "writes (used above)",
    "kdf disable": "writes",
    "kdf enable": "writes",
    "key generate": "writes",
    "key import": "writes",
    "pin change": "writes",
    "pin set-reset-code": "writes",
    "pin unblock": "writes",
    "pin verify": "uses a PIN try",
    "reset": "erases the card",
    "serve": "daemon: its log is checked in tests/serve (escaping formatter)",
    "sign": "data: the signature",
    "tls connect": "needs a TLS server: tests/tls/test_tls_cli_escaping.py (hostile subject)",
}


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            out += _commands(command, path + " ")
        else:
            out.append(path)
    return out


def _unsafe(text: str) -> list[str]:
    """The control/format characters in ``text`` (newline allowed between lines)."""
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]


def _names() -> tuple[str, str]:
    """Subject and issuer of the hostile certificate as RFC 4514 strings (exact)."""
    cert = x509.load_der_x509_certificate(_hostile_certificate())
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()


def _hostile_certificate() -> bytes:
    files = demo_files("demo-rsa")
    key = serialization.load_pem_private_key(files["aut_key"].read_bytes(), None)
    now = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SUBJECT_CN)])
    issuer = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER_O)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())  # type: ignore[union-attr]
        .serial_number(12)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def run() -> Any:
    """The command in process (stdout and stderr apart, no OPCARD_* variable of the caller),
    with click's ANSI stripping off (``color=True``): click.echo removes escape sequences by
    itself when the output is not a terminal, which would hide a missing escape here."""
    import os

    from click.testing import CliRunner

    def invoke(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Any:
        environment: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith("OPCARD_")
        }
        environment.update(env or {})
        runner = CliRunner(env=environment)
        return runner.invoke(cli, list(args), input=input, color=True, catch_exceptions=False)

    return invoke


@pytest.fixture
def hostile(cli_cards: Any, run: Any, tmp_path: Any) -> None:
    """The demo card in a hostile-named reader, its text planted through the CLI."""
    cli_cards(reader=READER)
    env = {"OPCARD_ADMIN_PIN": ADMIN}
    for field, value in (("login", LOGIN), ("url", URL), ("name", NAME)):
        r = run("data", "set", field, "--file", "-", input=value.encode(), env=env)
        assert r.exit_code == 0, r.output
    cert = tmp_path / "hostile.der"
    cert.write_bytes(_hostile_certificate())
    r = run("cert", "import", "--slot", "aut", str(cert), env=env)
    assert r.exit_code == 0, (r.stdout, r.stderr)


def test_every_command_is_classified() -> None:
    """A new command must be run against the hostile card (READ_ONLY) or say why not."""
    read_only = set()
    for args in READ_ONLY:
        words = [a for a in args if not a.startswith("-") and a not in (READER + "x",)]
        words = [w for w in words if not w.startswith("\x1b") and w not in ("aut", "ssh")]
        read_only.add(" ".join(words))
    commands = set(_commands(cli))
    assert commands == read_only | set(NOT_RUN), commands - read_only - set(NOT_RUN)


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a).encode().hex()[:24])
def test_read_only_commands_print_no_control_characters(
    hostile: None, run: Any, args: list[str]
) -> None:
    r = run(*args)
    assert r.stdout or r.stderr
    assert _unsafe(r.stdout) == [], r.stdout
    assert _unsafe(r.stderr) == [], r.stderr


def test_status_text_escaped_and_json_exact(hostile: None, run: Any) -> None:
    text = run("status")
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "Login data ........: jdoe\\x1b]0;owned\\x07\\x1b[2J" in lines
    assert f"Reader ............: {escape(READER)}" in lines
    assert "Reader ............: Evil\\x1b]0;reader\\x07 Reader\\x85 00" in lines
    assert f"URL of public key .: {escape(URL)}" in lines
    assert "\\x9b2J\\u202egpj.exe\\u2028second line" in escape(URL)
    subject, issuer = _names()
    assert f"      certificate .: {escape(subject)}" in lines
    assert "      certificate .: CN=Jane\\x1b]0\\;cert\\x07 \\u202eeoD" in lines
    assert f"        issuer ....: {escape(issuer)}" in lines
    assert any(line.startswith("Name of cardholder : ") and "\\x1b[8m" in line for line in lines)

    js = run("status", "--json")
    assert js.exit_code == 0, js.stderr
    assert _unsafe(js.stdout) == []
    doc = json.loads(js.stdout)
    assert doc["login"] == LOGIN  # the exact value
    assert doc["url"] == URL
    assert doc["reader"] == READER
    assert doc["keys"]["aut"]["certificate"]["subject"] == subject
    assert doc["keys"]["aut"]["certificate"]["issuer"] == issuer
    assert "\x1b" in doc["cardholder"]["name"]
    # the JSON text escapes what json.dumps leaves raw (C1, bidi, separators)
    assert "\\u009b" in js.stdout and "\\u202e" in js.stdout and "\\u2028" in js.stdout


def test_list_text_and_json(hostile: None, run: Any) -> None:
    text = run("list")
    assert text.stdout.splitlines() == [
        "Evil\\x1b]0;reader\\x07 Reader\\x85 00: OpenPGP card 3.4 by unmanaged S/N range, "
        "serial 10000001"
    ]
    doc = json.loads(run("list", "--json").stdout)
    assert doc["readers"][0]["reader"] == READER


def test_error_message_is_escaped(hostile: None, run: Any) -> None:
    r = run("--serial", "\x1b[2JDEADBEEF", "status")
    assert r.exit_code == 3
    assert "\\x1b[2J" in r.stderr and "\x1b" not in r.stderr


def test_data_get_exact_into_a_pipe_escaped_on_a_terminal(
    hostile: None, run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    piped = run("data", "get", "login")
    assert piped.stdout == LOGIN + "\n"  # scripts get the value
    import opcard.cli.data

    monkeypatch.setattr(opcard.cli.data, "_is_terminal", lambda: True)
    r = run("data", "get", "login")
    assert r.stdout == "jdoe\\x1b]0;owned\\x07\\x1b[2J\n"


def test_escape_rules() -> None:
    assert escape("plain text, é, 日本語, emoji 🙂") == "plain text, é, 日本語, emoji 🙂"
    assert escape("a\x00b\x1fc\x7fd\x80e\x9f") == "a\\x00b\\x1fc\\x7fd\\x80e\\x9f"
    assert escape("tab\tnew\nline") == "tab\\x09new\\x0aline"
    assert escape("tab\tnew\nline", keep="\n\t") == "tab\tnew\nline"
    # bidi embeddings/overrides/isolates, marks, zero-width, BOM, tags, separators
    for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c":
        assert escape(c) == f"\\u{ord(c):04x}"
    assert escape("\u200b\u200d\ufeff\u2028\u2029") == "\\u200b\\u200d\\ufeff\\u2028\\u2029"
    assert escape("\U000e0041") == "\\U000e0041"
    assert escape(b"\xff".decode("utf-8", "surrogateescape")) == "\\xff"
    assert escape("back\\slash") == "back\\slash"  # left as it is
    doc = json.dumps({"v": "\x1b\x9b\u202e\u2028\U000e0041"}, ensure_ascii=False)
    assert json.loads(escape_json(doc)) == json.loads(doc)
    assert _unsafe(escape_json(doc)) == []
