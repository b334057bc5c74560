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

The modules each command loads against a card are checked in tests/cli/test_cli_start_up.py.
"""

from __future__ import annotations

import ast
import subprocess
import sys

CARD_PATH = "import opcard.card, apdu.transport.pcsc, apdu.atr"
#: What pyscard's smartcard.scard loads anyway (every floor script pays for these too).
SHARED = "import typing, contextlib, threading"


def run(code: str) -> object:
    """``code`` run in a fresh interpreter; the value of the expression on its last line."""
    lines = code.rstrip().splitlines()
    script = "\n".join([*lines[:-1], f"print(repr({lines[-1]}))"])
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.splitlines()[-1])


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
