"""What every card command pays in ``apdu`` and ``opcard.card`` at start-up (issue #15), pinned
in fresh interpreters (subprocesses) so that the savings cannot silently come back:

- importing the card path (``opcard.card``, ``apdu.transport.pcsc``, ``apdu.atr``: what
  ``opcard cert export``, ``list``, ``status`` and ``sign`` load of this layer) calls no
  ``compile()``: a process's first ``compile()`` costs about 1 ms (the compiler starting up),
  and ``typing`` compiles every string it turns into a ``ForwardRef`` (a ``TypeVar`` bound
  given as a string);
- the integer enumerations of ``apdu`` are built by :func:`apdu._enums.fast_enum` (no
  ``EnumType`` class statement runs for them), and are real ``IntEnum``/``IntFlag`` classes
  (tests/unit/test_enums.py compares them with the class statement's);
- the card path loads neither :mod:`math` (the transport's time bounds compare with
  ``float("inf")``) nor ``apdu.openpgp.kdf`` (loaded with the first PIN to send), and the
  transport names PC/SC codes from a table built with the first message that needs one;
- what ``opcard list`` runs of this layer (``opcard.card`` and the PC/SC transport, then
  SELECT + GET DATA 4F on each card) loads no applet (``apdu.openpgp.applet``, ``quirks``):
  :class:`opcard.card.Card` imports it when a card is opened.

The modules each command loads against a card are checked in tests/cli/test_cli_start_up.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys

#: What opening a card and reading it loads (Card imports the applet when a card is opened).
CARD_PATH = "import opcard.card, apdu.openpgp.applet, apdu.transport.pcsc, apdu.atr"
#: What the card path loads anyway (every floor script pays for these too; pyscard's SWIG
#: wrapper also loads typing, which the card path does without: tests/unit/
#: test_lazy_imports_typing.py).
SHARED = "import contextlib, threading"


def run(code: str) -> object:
    """``code`` run in a fresh interpreter; the value of the expression on its last line."""
    lines = code.rstrip().splitlines()
    script = "\n".join([*lines[:-1], f"print(repr({lines[-1]}))"])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.splitlines()[-1])


def loaded(code: str) -> set[str]:
    modules = run(f"{code}\nimport sys\nsorted(sys.modules)")
    assert isinstance(modules, list)
    return set(modules)


def test_the_card_path_loads_neither_math_nor_the_pin_derivation() -> None:
    modules = loaded(CARD_PATH)
    assert "apdu.openpgp.applet" in modules  # what cert export, status and sign run
    assert not modules & {"math", "apdu.openpgp.kdf", "hashlib"}


def test_the_pcsc_code_names_are_built_with_the_first_message() -> None:
    message = run(
        "import apdu.transport.pcsc as pcsc\n"
        "assert pcsc._names is None\n"
        "str(pcsc.connect_error(pcsc.scard.SCARD_E_NO_SMARTCARD, 'R', 'SCardConnect'))"
    )
    assert message == "no card in 'R' (SCardConnect: SCARD_E_NO_SMARTCARD)"


def test_listing_the_cards_loads_no_applet() -> None:
    modules = loaded(
        "import opcard.card, apdu.transport.pcsc\n"
        "from apdu.transport.loopback import LoopbackTransport\n"
        "from fixtures.card import OpenPGPCard\n"
        "emu = OpenPGPCard('extended', serial=0x1234)\n"
        "emu.power_on()\n"
        "aid = opcard.card._read_aid(LoopbackTransport(emu.transmit, emu.atr, 'Loop 00'))\n"
        "assert aid is not None and aid.serial == 0x1234, aid\n"
    )
    assert not modules & {"apdu.openpgp.applet", "apdu.openpgp.quirks", "apdu.openpgp.kdf"}


def test_a_card_still_opens_and_verifies_a_pin() -> None:
    modules = loaded(
        "from apdu.openpgp.constants import Pw\n"
        "from apdu.transport.loopback import LoopbackTransport\n"
        "from fixtures.card import OpenPGPCard\n"
        "from fixtures.personalize import personalize\n"
        "from opcard.card import Card\n"
        "emu = OpenPGPCard('extended', serial=0x1234)\n"
        "personalize(emu, 'demo-ecc')\n"
        "emu.power_on()\n"
        "card = Card(LoopbackTransport(emu.transmit, emu.atr, 'Loop 00'))\n"
        "assert card.aid.serial == 0x1234 and card.certificate('aut')\n"
        "card.applet.verify(Pw.PW1, '123456')\n"
    )
    assert {"apdu.openpgp.applet", "apdu.openpgp.kdf"} <= modules


def test_the_card_path_compiles_nothing() -> None:
    compiled = run(
        f"{SHARED}\n"
        "import sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda event, args: event == 'compile' and seen.append(args[1]))\n"
        f"{CARD_PATH}\n"
        # a module without its bytecode cached is compiled from its file: not what is pinned
        "[name for name in seen if not str(name).endswith('.py')]"
    )
    assert compiled == []


def test_the_card_path_builds_no_enumeration_by_class_statement() -> None:
    built = run(
        f"{SHARED}\n"
        "import enum\n"
        "seen = []\n"
        "new = enum.EnumType.__new__\n"
        "def spy(metacls, cls, bases, classdict, **kwds):\n"
        "    if not kwds.get('_simple'):\n"
        "        seen.append(cls)\n"
        "    return new(metacls, cls, bases, classdict, **kwds)\n"
        "enum.EnumType.__new__ = spy\n"
        f"{CARD_PATH}\n"
        "seen"
    )
    # Curve's members are tuples with an __init__ (not integers): a class statement's
    assert built == ["Curve"]
