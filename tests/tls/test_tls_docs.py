"""Every example of docs/tls.md runs: the Python blocks against an emulated card and an
``openssl s_server`` standing for ``localhost:8443``; the console example through the command
line (in process), its output compared line by line (dates and times left out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from tls_support import DEMO_CA, REPO, CardRig

from opcard.cli.app import cli
from opcard.cli.backend import use_backend

DOC = REPO / "docs" / "tls.md"
BLOCK = re.compile(r"```(python|console)\n(.*?)```", re.DOTALL)


def blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCK.findall(DOC.read_text(encoding="utf-8")) if k == kind]


def test_examples_are_found() -> None:
    assert len(blocks("python")) >= 2 and len(blocks("console")) == 1


def demo_crl() -> bytes:
    """An empty CRL of the demo CA (current), for the revocation example's "crl.pem"."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    ca = x509.load_pem_x509_certificate(DEMO_CA.read_bytes())
    key = serialization.load_pem_private_key((DEMO_CA.parent / "ca-key.pem").read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example(
    index: int,
    card_rig: object,
    openssl_server: object,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    assert callable(card_rig) and callable(openssl_server)
    source = blocks("python")[index]
    first = source.splitlines()[0]
    variant = first.split(":", 1)[1].strip() if first.startswith("# card:") else "demo-ecc"
    rig: CardRig = card_rig(variant)
    server = openssl_server()
    source = source.replace("8443", str(server.port)).replace('"ca.pem"', repr(str(DEMO_CA)))
    if '"crl.pem"' in source:
        (tmp_path / "crl.pem").write_bytes(demo_crl())
        source = source.replace('"crl.pem"', repr(str(tmp_path / "crl.pem")))
    exec(compile(source, f"{DOC}:python-{index}", "exec"), {"card": rig.card})


def test_console_example(
    card_rig: object, openssl_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_tls_cli import RigBackend

    assert callable(card_rig) and callable(openssl_server)
    rig: CardRig = card_rig("demo-ecc")
    server = openssl_server()
    text = blocks("console")[0].replace("8443", str(server.port))
    command, _, expected = text.partition("\n")
    while command.endswith("\\"):
        more, _, expected = expected.partition("\n")
        command = command[:-1] + more.strip()
    assert command.startswith("$ OPCARD_PIN=123456 opcard ")
    argv = re.findall(r"'[^']*'|\S+", command.removeprefix("$ OPCARD_PIN=123456 opcard "))
    argv = [a[1:-1] if a.startswith("'") else a for a in argv]
    monkeypatch.chdir(REPO)
    with use_backend(RigBackend(rig)):
        result = CliRunner(env={"OPCARD_PIN": "123456"}).invoke(cli, argv)
    assert result.exit_code == 0, result.output
    header, _, answer = result.stdout.partition("\n---\n")
    shown = header.splitlines()
    for line in expected.split("\n---\n")[0].splitlines():
        if line.startswith(("  valid:", "Handshake:")):
            assert any(s.startswith(line.split(":")[0] + ":") for s in shown)
            continue
        assert line in shown, f"{line!r} not in\n{header}"
    assert answer.startswith(expected.split("\n---\n")[1].splitlines()[0])


def test_doc_mentions_every_error_class() -> None:
    import opcard.errors as errors

    text = DOC.read_text(encoding="utf-8")
    tls_errors = [
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.TlsError)
    ]
    assert len(tls_errors) == 6  # TlsError and its five subclasses
    for name in tls_errors:
        assert f"`{name}`" in text, name
    assert Path(errors.__file__).name in text
