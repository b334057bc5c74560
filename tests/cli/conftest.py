"""Fixtures for the command-line tests.

In process: ``cli_cards`` puts emulated cards (``fixtures.card.OpenPGPCard``) into named
"readers" of a :class:`LoopbackBackend` installed with :func:`opcard.cli.backend.use_backend`;
``run`` invokes the click command through ``CliRunner`` (no OPCARD_* variable of the caller's
environment leaks in).

End to end: ``opcard_exe`` is the installed console script; ``run_opcard`` runs it as a
subprocess (pcscd + vpcd + emulator from tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from opcard.card import Card, CardInfo
from opcard.cli.app import cli
from opcard.cli.backend import ReaderEntry, use_backend
from opcard.errors import NoCardError, SeveralCardsError

#: Environment variables the command reads; cleared for every test run.
OPCARD_ENV = (
    "OPCARD_PIN",
    "OPCARD_ADMIN_PIN",
    "OPCARD_RESET_CODE",
    "OPCARD_NEW_PIN",
    "OPCARD_READER",
    "OPCARD_SERIAL",
)


class LoopbackBackend:
    """Cards in named in-process "readers"; the selection rules of :func:`opcard.open_card`."""

    def __init__(self) -> None:
        self.cards: dict[str, OpenPGPCard | None] = {}
        #: readers holding a card without an OpenPGP application (ATR only)
        self.foreign: dict[str, bytes] = {}
        self.opened: list[Card] = []

    def _info(self, reader: str, card: OpenPGPCard) -> CardInfo:
        from apdu.openpgp.objects import Aid

        return CardInfo(reader, Aid.parse(card.aid))

    def _open(self, reader: str, card: OpenPGPCard) -> Card:
        transport = LoopbackTransport(card.transmit, card.atr, reader, on_power=card.reset)
        opened = Card(transport)
        self.opened.append(opened)
        return opened

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        present = {r: c for r, c in self.cards.items() if c is not None}
        if reader is not None:
            card = present.get(reader)
            if card is None:
                raise NoCardError(f"no card in reader {reader!r}")
            if serial is not None and f"{card.serial:08X}" != serial.upper():
                raise NoCardError(f"the card in {reader!r} has another serial")
            return self._open(reader, card)
        candidates = present
        if serial is not None:
            candidates = {r: c for r, c in present.items() if f"{c.serial:08X}" == serial.upper()}
            if not candidates:
                raise NoCardError(f"no OpenPGP card with serial {serial.upper()} is present")
        if not candidates:
            raise NoCardError(
                "no OpenPGP card is present (is the card inserted and pcscd running?)"
            )
        if len(candidates) > 1:
            raise SeveralCardsError([self._info(r, c) for r, c in candidates.items()])
        ((name, card),) = candidates.items()
        return self._open(name, card)

    def readers(self) -> list[ReaderEntry]:
        out = []
        for name, card in self.cards.items():
            if card is None:
                out.append(ReaderEntry(name, None))
            else:
                out.append(ReaderEntry(name, card.atr, self._info(name, card)))
        out += [ReaderEntry(name, atr) for name, atr in self.foreign.items()]
        return out


@pytest.fixture
def backend() -> Iterator[LoopbackBackend]:
    """An installed, empty loopback backend."""
    b = LoopbackBackend()
    with use_backend(b):
        yield b


MakeCard = Callable[..., OpenPGPCard]


@pytest.fixture
def cli_cards(backend: LoopbackBackend) -> MakeCard:
    """``cli_cards(personalisation="demo", reader="Loopback 00", profile="extended", **kw)``:
    an emulated card put into a reader of the installed backend (returned for inspection)."""

    def make(
        personalisation: str | None = "demo",
        reader: str = "Loopback 00",
        profile: str = "extended",
        **kw: Any,
    ) -> OpenPGPCard:
        card = OpenPGPCard(profile, **kw)
        if personalisation:
            personalize(card, personalisation)
        card.power_on()
        backend.cards[reader] = card
        return card

    return make


@pytest.fixture
def card(cli_cards: MakeCard) -> OpenPGPCard:
    """The demo RSA card, alone in the backend."""
    return cli_cards()


Run = Callable[..., Result]


@pytest.fixture
def run() -> Run:
    """``run(*args, input=None, env={})``: the click command in process; stdout/stderr apart."""

    def invoke(
        *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
    ) -> Result:
        environment: dict[str, str | None] = dict.fromkeys(OPCARD_ENV)
        environment.update(env or {})
        runner = CliRunner(env=environment)
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


# --- end to end ----------------------------------------------------------------------------------


@dataclass
class Completed:
    args: Sequence[str]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


@pytest.fixture(scope="session")
def opcard_exe() -> Path:
    """The installed ``opcard`` console script (the entry point in pyproject.toml)."""
    from conftest import require_file

    return require_file(Path(sys.executable).parent / "opcard")


RunOpcard = Callable[..., Completed]


@pytest.fixture(scope="session")
def run_opcard(opcard_exe: Path) -> RunOpcard:
    """``run_opcard(*args, env={}, input=None, timeout=60, python_code=None)``: the command as
    a subprocess; with ``python_code``, that code runs instead of the console script (with
    ``args`` in ``sys.argv[1:]``)."""

    def call(
        *args: str,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 60,
        python_code: str | None = None,
    ) -> Completed:
        environment = {k: v for k, v in os.environ.items() if k not in OPCARD_ENV}
        environment.update(env or {})
        argv = [str(opcard_exe), *args]
        if python_code is not None:  # run the command inside this Python code
            argv = [sys.executable, "-c", python_code, *args]
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            env=environment,
            timeout=timeout,
            check=False,
        )
        return Completed(argv, proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))

    return call
