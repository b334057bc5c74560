"""``opcard tls connect --reconnect N`` and ``--sess-out`` / ``--sess-in`` end to end (click's
runner, the emulated card behind the CLI's backend, ``openssl s_server -www``): the resumed
handshakes cost the card no APDU (counted in the emulator's log and printed by the command),
the server says ``Reused``; session files are private, and a bad or unfitting one is an
error or a warning with a full handshake, never a crash."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_tls_cli import Cli
from tls_support import INS_INTERNAL_AUTHENTICATE, CardRig, Pki

from opcard.cli.app import cli
from opcard.tls import TlsSession

GET = r"GET / HTTP/1.0\r\n\r\n"


@pytest.fixture
def run(card_rig: object, pki: Pki, openssl_server: object) -> Cli:
    assert callable(card_rig) and callable(openssl_server)
    return Cli(card_rig("demo-ecc"), openssl_server(), pki)


def _signatures(rig: CardRig, mark: int) -> int:
    return len([c for c in rig.since(mark) if c[1] == INS_INTERNAL_AUTHENTICATE])


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_reconnect(run: Cli, version: str) -> None:
    mark = run.rig.mark()
    result = run("--reconnect", "3", "--tls-max", version, "--send", GET, "--wait", "3")
    assert result.exit_code == 0, result.output
    assert _signatures(run.rig, mark) == 1  # four handshakes, one card signature
    lines = result.stdout.splitlines()
    start = lines.index("Handshakes (--reconnect 3):")
    rows = [line.split() for line in lines[start + 1 : start + 5]]
    assert [r[:4] for r in rows] == [
        ["1", "full", "TLS", version],
        ["2", "resumed", "TLS", version],
        ["3", "resumed", "TLS", version],
        ["4", "resumed", "TLS", version],
    ]
    assert [r[-1] for r in rows] == ["1", "0", "0", "0"]  # card APDUs per handshake
    assert lines[start + 5] == "  4 handshakes: 3 resumed, 1 full"
    assert "  signature: none, the session was resumed (0 card APDUs in the handshake)" in lines
    # the request went on the last connection: the server resumed that session
    answer = result.stdout.split("\n---\n", 1)[1]
    assert f"Reused, TLSv{version}" in answer


def test_reconnect_json(run: Cli) -> None:
    result = run("--reconnect", "2", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [(h["resumed"], h["card_apdus"]) for h in document["handshakes"]] == [
        (False, 1),
        (True, 0),
        (True, 0),
    ]
    assert document["resumed"] is True
    assert document["client_certificate"]["card_apdus"] == 0


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_sess_out_then_sess_in(run: Cli, tmp_path: Path, version: str) -> None:
    path = tmp_path / "session.json"
    result = run("--tls-max", version, "--sess-out", str(path))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = TlsSession.from_bytes(path.read_bytes())
    assert saved.version_label == f"TLS {version}" and saved.resumable
    mark = run.rig.mark()
    result = run("--tls-max", version, "--sess-in", str(path), "--send", GET, "--wait", "3")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert _signatures(run.rig, mark) == 0
    assert len(run.rig.verifies(mark)) == 1  # the PIN is still asked for
    assert "Handshake:" in result.stdout and "(resumed)" in result.stdout
    assert f"Reused, TLSv{version}" in result.stdout


def test_sess_in_refused_or_unfitting(
    run: Cli, tmp_path: Path, pki: Pki, openssl_server: object
) -> None:
    path = tmp_path / "session.json"
    assert run("--sess-out", str(path)).exit_code == 0
    good = path.read_bytes()
    # readable by others: refused before the PIN, exit 1
    os.chmod(path, 0o644)
    mark = run.rig.mark()
    result = run("--sess-in", str(path))
    assert result.exit_code == 1
    assert "accessible by others (mode 0644)" in result.stderr
    assert "chmod 600" in result.stderr and "Traceback" not in result.output
    assert run.rig.verifies(mark) == []
    os.chmod(path, 0o600)
    # garbled, empty, hostile: a clear error each
    for data, message in (
        (b"\x00garbage", "not a TLS session file of opcard"),
        (b"", "not JSON"),
        (good.replace(b'"port": ', b'"port": 1e400, "x": '), "wrong type"),
        (b'{"format": "opcard-tls-session", "format_version": 1}', "'host' is missing"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_bytes(data)
        os.chmod(bad, 0o600)
        result = run("--sess-in", str(bad))
        assert result.exit_code == 1, result.output
        assert message in result.stderr, result.stderr
        assert "--sess-in takes a file written by --sess-out" in result.stderr
    missing = run("--sess-in", str(tmp_path / "none.json"))
    assert missing.exit_code == 1 and "cannot read the session file" in missing.stderr
    # another server: a warning and a full handshake
    assert callable(openssl_server)
    other = Cli(run.rig, openssl_server(), pki)
    mark = run.rig.mark()
    result = other("--sess-in", str(path))
    assert result.exit_code == 0, result.output
    assert "opcard: warning: the session in" in result.stderr
    assert f"it was made with localhost:{run.server.port}" in result.stderr
    assert _signatures(run.rig, mark) == 1
    # expired: the same
    document = json.loads(good)
    document["expires"] = document["created"] = document["created"] - 86400
    path.write_text(json.dumps(document))
    result = run("--sess-in", str(path))
    assert result.exit_code == 0, result.output
    assert "was not resumed: it has expired" in result.stderr


def test_sess_out_errors_and_help(run: Cli, tmp_path: Path) -> None:
    result = run("--sess-out", str(tmp_path / "no" / "such" / "dir.json"))
    assert result.exit_code == 1
    assert "No such file or directory" in result.stderr and "Traceback" not in result.output
    from click.testing import CliRunner

    text = CliRunner().invoke(cli, ["tls", "connect", "--help"], terminal_width=200).output
    assert "whoever reads it can resume the session as you, without the card" in " ".join(
        text.split()
    )
