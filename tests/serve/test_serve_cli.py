"""``opcard serve`` command-line errors, in process (the running daemon is tested through
pcscd in test_serve_pcsc.py): a socket directory open to others, no card for --login."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_support import private_dir

from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from opcard.card import Card
from opcard.cli.app import cli
from opcard.cli.backend import ReaderEntry, use_backend
from opcard.errors import NoCardError


class OneCard:
    """A backend with one emulated card (or none)."""

    def __init__(self, present: bool) -> None:
        self.present = present
        self.opened: list[Card] = []

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        if not self.present:
            raise NoCardError("no OpenPGP card is present")
        emu = OpenPGPCard("extended")
        personalize(emu, "demo-ecc")
        emu.power_on()
        card = Card(LoopbackTransport(emu.transmit, emu.atr, "Loopback 00", on_power=emu.reset))
        self.opened.append(card)
        return card

    def readers(self) -> list[ReaderEntry]:
        return []


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("OPCARD_PIN", "OPCARD_READER", "OPCARD_SERIAL"):
        monkeypatch.delenv(key, raising=False)
    yield


@pytest.fixture
def directory() -> Iterator[Path]:
    path = private_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_socket_directory_open_to_others_is_refused(clean_env: None, directory: Path) -> None:
    os.chmod(directory, 0o755)
    with use_backend(OneCard(present=True)):
        result = CliRunner().invoke(cli, ["serve", "--socket", f"{directory}/pkcs11"])
    assert result.exit_code == 1, result.output
    assert "open to other users" in result.output
    assert not (directory / "pkcs11").exists()


def test_login_without_a_card(clean_env: None, directory: Path) -> None:
    with use_backend(OneCard(present=False)):
        result = CliRunner().invoke(
            cli, ["serve", "--socket", f"{directory}/pkcs11", "--login"], env={"OPCARD_PIN": "1"}
        )
    assert result.exit_code == 3, result.output  # ExitCode.NoCard
    assert not (directory / "pkcs11").exists()


def test_wrong_pin_at_login(clean_env: None, directory: Path) -> None:
    with use_backend(OneCard(present=True)):
        result = CliRunner().invoke(
            cli,
            ["serve", "--socket", f"{directory}/pkcs11", "--pin-file", "-"],
            input="271828\n",
        )
    assert result.exit_code == 5, result.output  # ExitCode.WrongPin
    assert "271828" not in result.output
    assert not (directory / "pkcs11").exists()
