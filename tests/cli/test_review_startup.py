"""Review of #15's start-up work: the command line's output on unusual standard streams.

Before #15 every line went through ``click.echo``, which writes nothing when the stream is
gone (``>&-``, ``2>&-``: Python's ``sys.stdout`` is None) and writes UTF-8 to a stream whose
encoding is ASCII. opcard.cli.fast leaves such streams to click, but the click commands now
write through opcard.cli.state, which must do what ``click.echo`` does there (8a60077:
exit 0, UTF-8; the code under review failed with "internal error", exit 1). A missing binary
standard output stays click's error with exit code 1 (it had become a usage error, exit 2).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opcard.cli.app import cli
from opcard.cli.fast import main as fast


def _opcard(args: list[str]) -> int:
    """What :func:`opcard.cli.main` does with ``args`` (without its SIGPIPE and collector
    set-up, which would change this test process): the fast front end, else click."""
    code = fast(args)
    if code is not None:
        return code
    try:
        cli.main(args=args, prog_name="opcard")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture
def unicode_reader(cli_cards: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("OPCARD_PIN", "OPCARD_READER", "OPCARD_SERIAL", "OPCARD_CARD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    reader = "Lecteur é 00"
    cli_cards(reader=reader)
    return reader


@pytest.mark.parametrize("args", [["list"], ["status"], ["status", "--json"]])
def test_closed_stdout_is_not_an_internal_error(
    unicode_reader: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", err)
    assert _opcard(args) == 0
    assert err.getvalue() == ""


@pytest.mark.parametrize("args", [["list"], ["status"]])
def test_ascii_stdout_gets_utf8_as_click_echo_writes_it(
    unicode_reader: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert _opcard(args) == 0
    out.flush()
    assert err.getvalue() == ""
    assert unicode_reader.encode() in raw.getvalue()


def test_no_binary_stdout_is_clicks_error_exit_1(
    unicode_reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", err)
    assert _opcard(["cert", "export", "--slot", "aut"]) == 1
    assert err.getvalue() == "Error: standard output cannot take binary data\n"


def test_pin_on_command_line_with_closed_stderr_still_signs(
    unicode_reader: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"hello")
    signature = tmp_path / "sig"
    monkeypatch.setattr(sys, "stderr", None)
    code = _opcard(["sign", "--pin", "123456", "-o", str(signature), str(data)])
    assert code == 0
    assert len(signature.read_bytes()) == 256  # the demo card's RSA-2048 signature
