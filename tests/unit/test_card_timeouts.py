"""The card time bounds as settings: $OPCARD_CARD_TIMEOUT / $OPCARD_GENERATE_TIMEOUT, the API
values, the CLI's --card-timeout and exit code 13 (no reader needed: the behaviour with a
silent card is in tests/pcsc/test_card_not_answering.py and tests/serve)."""

from __future__ import annotations

import math
import os
import pickle

import pytest
from click.testing import CliRunner

from apdu.errors import CardNotAnsweringError, TransportError
from apdu.transport import pcsc
from opcard.errors import CardError
from opcard.exitcodes import ExitCode, classify


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPCARD_CARD_TIMEOUT", raising=False)
    monkeypatch.delenv("OPCARD_GENERATE_TIMEOUT", raising=False)


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pcsc.default_timeout() == pcsc.DEFAULT_TIMEOUT == 30.0
    assert pcsc.default_timeout(generate=True) == pcsc.GENERATE_TIMEOUT == 300.0
    monkeypatch.setenv("OPCARD_CARD_TIMEOUT", "2.5")
    monkeypatch.setenv("OPCARD_GENERATE_TIMEOUT", "600")
    assert pcsc.default_timeout() == 2.5
    assert pcsc.default_timeout(generate=True) == 600.0
    for forever in ("0", "none", "inf", " off "):
        monkeypatch.setenv("OPCARD_CARD_TIMEOUT", forever)
        assert pcsc.default_timeout() is None
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("OPCARD_CARD_TIMEOUT", bad)
        with pytest.raises(ValueError, match="OPCARD_CARD_TIMEOUT"):
            pcsc.default_timeout()


def test_api_values() -> None:
    assert pcsc.resolve_timeout(None) == 30.0
    assert pcsc.resolve_timeout(None, generate=True) == 300.0
    assert pcsc.resolve_timeout(5) == 5.0
    assert pcsc.resolve_timeout(math.inf) is None
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="positive number of seconds"):
            pcsc.resolve_timeout(bad)
    with pytest.raises(TypeError):
        pcsc.resolve_timeout("30")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pcsc.resolve_timeout(True)


def test_not_answering_error() -> None:
    e = CardNotAnsweringError("the card in 'R' does not answer", "R", 30.0)
    assert isinstance(e, TransportError)
    copy = pickle.loads(pickle.dumps(e))
    assert (str(copy), copy.reader, copy.timeout) == (str(e), "R", 30.0)
    # as opcard raises it (translate_error: a CardError, the apdu error as its cause):
    # exit code 13 and what to do
    from opcard.errors import CardNotAnsweringError as OpcardNotAnswering
    from opcard.errors import translate_error

    outer = translate_error(e, "sign with the SIG key")
    assert isinstance(outer, OpcardNotAnswering) and isinstance(outer, CardError)
    assert (outer.reader, outer.timeout) == ("R", 30.0)
    code, message, hint = classify(outer)
    assert code is ExitCode.NotAnswering == 13
    assert message == "sign with the SIG key: the card in 'R' does not answer"
    assert "remove the card and insert it again" in hint and "--card-timeout" in hint


def test_cli_option_sets_the_bound_for_the_command_only() -> None:
    import click

    from opcard.cli.app import cli

    seen: list[str | None] = []

    @cli.command("zz-probe-timeout")
    def probe() -> None:
        seen.append(os.environ.get("OPCARD_CARD_TIMEOUT"))
        seen.append(str(pcsc.default_timeout()))

    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["--card-timeout", "7", "zz-probe-timeout"])
        assert result.exit_code == 0, result.output
        assert seen == ["7", "7.0"]
        assert "OPCARD_CARD_TIMEOUT" not in os.environ  # restored after the command
        result = runner.invoke(cli, ["--card-timeout", "0", "zz-probe-timeout"])
        assert seen[-1] == "None"  # 0: for ever
        result = runner.invoke(cli, ["--card-timeout", "-3", "zz-probe-timeout"])
        assert result.exit_code == 2  # a usage error
        assert isinstance(cli, click.Group)
    finally:
        cli.commands.pop("zz-probe-timeout", None)
