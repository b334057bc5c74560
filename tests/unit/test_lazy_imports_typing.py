"""The card commands load neither :mod:`typing` nor the :mod:`re` it brings (issue #15: about
3.5 ms of a command's start-up), so that the saving cannot silently come back.

Our modules import typing only under ``if TYPE_CHECKING:`` (``TYPE_CHECKING = False``; mypy
takes the name as true); protocol classes that need typing at run time live in modules of their
own resolved on first use (``apdu.transport.Transport``, ``opcard.cli.backend.Backend``); and
``apdu.transport.pcsc`` loads pyscard's C extension without SWIG's wrapper module, whose one
import is an unused ``import typing``.

Each command runs in a fresh interpreter through ``opcard.cli.main`` and the real PC/SC route
(``PcscBackend``, ``opcard.card.scan_cards``/``open_card``, ``apdu.transport.pcsc``), with only
the two PC/SC entry points that reach pcscd (``reader_states`` and ``PcscTransport.open``)
replaced by a loopback transport replaying the emulated card's answers, recorded by a first run
of the same command on the emulator (``fixtures.card``, which itself uses typing). A spy on
``__import__`` names every module that imports typing or re, ours or not.

``COMMANDS`` lists, per command, the modules of ours that may still import typing at run time
(none today): any other importer fails the test, and with none the test also requires that
neither typing nor re is in ``sys.modules`` at exit. Adding a command is one line in
``COMMANDS``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("purelib", "platlib")
DEMO = REPO / "fixtures" / "demo"

#: command name -> (its arguments, the importers of typing/re still expected on its route);
#: {tmp} is a scratch directory holding PIN (the card's user PIN) and DATA (a few bytes).
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    "cert export": (["cert", "export", "--slot", "aut"], set()),
    "list": (["list"], set()),
    "status": (["status"], set()),
    "sign": (["sign", "--pin-file", "{tmp}/PIN", "-o", "{tmp}/SIG", "{tmp}/DATA"], set()),
}

SPY = """
import builtins, sys
_import = builtins.__import__
importers = set()

def _spy(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.partition(".")[0] in ("typing", "re"):
        importers.add((globals or {}).get("__name__", "?"))
    return _import(name, globals, locals, fromlist, level)

builtins.__import__ = _spy
"""

RECORD = """
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize

card = OpenPGPCard("extended")
personalize(card, "demo-rsa")
card.power_on()
atr = bytes(card.atr)
script = []

def transmit(apdu):
    answer = bytes(card.transmit(apdu))
    script.append((apdu.hex(), answer.hex()))
    return answer

def report():
    sys.stderr.write("ATR " + atr.hex() + "\\n")
    sys.stderr.write("SCRIPT " + repr(script) + "\\n")
"""

REPLAY = """
script = {script}
atr = bytes.fromhex({atr!r})

def transmit(apdu):
    sent, answer = script.pop(0)
    assert apdu.hex() == sent, (apdu.hex(), sent)
    return bytes.fromhex(answer)

def report():
    sys.stderr.write("LEFT " + str(len(script)) + "\\n")
    sys.stderr.write("IMPORTERS " + repr(sorted(importers)) + "\\n")
    sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
"""

#: The real PC/SC route, with pcscd's two entry points replaced by the loopback transport.
RUN = """
import atexit
atexit.register(report)
import apdu.transport.pcsc as pcsc
from apdu.transport import ReaderStatus
from apdu.transport.loopback import LoopbackTransport

def _open(cls, reader=None, *, timeout=None, generate_timeout=None):
    return LoopbackTransport(transmit, atr, reader)

pcsc.PcscTransport.open = classmethod(_open)
pcsc.reader_states = lambda: [ReaderStatus("Replay 00", atr), ReaderStatus("Replay 01", None)]
from opcard.cli import main
main(sys.argv[1:])
"""


#: As a wheel install runs (python -S: no .pth, so not the editable install's finder, which
#: loads re before anything else): this checkout first, then the environment's packages.
PATH = os.pathsep.join(dict.fromkeys([str(REPO), *(sysconfig.get_path(k) for k in PACKAGES)]))


def run(code: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", code, *args],
        capture_output=True, text=True, check=False, timeout=60, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=PATH),
    )  # fmt: skip


def line(proc: subprocess.CompletedProcess[str], tag: str) -> str:
    (found,) = [x for x in proc.stderr.splitlines() if x.startswith(tag + " ")]
    return found[len(tag) + 1 :]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_command_loads_neither_typing_nor_re(command: str, tmp_path: Path) -> None:
    (tmp_path / "PIN").write_text("123456\n")
    (tmp_path / "DATA").write_bytes(b"signed by the card\n")
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command][0]]
    pending = COMMANDS[command][1]
    recorded = run(SPY + RECORD + RUN, args)
    assert recorded.returncode == 0, recorded.stderr
    script = line(recorded, "SCRIPT")
    assert ast.literal_eval(script), "the command sent no APDU"

    replay = REPLAY.format(script=script, atr=line(recorded, "ATR"))
    proc = run(SPY + replay + RUN, args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == recorded.stdout  # the same output as on the emulator
    assert line(proc, "LEFT") == "0"  # and every APDU of the recording was sent, in order
    if command == "cert export":
        cert = x509.load_pem_x509_certificate((DEMO / "demo-rsa" / "aut-cert.pem").read_bytes())
        assert proc.stdout == cert.public_bytes(Encoding.PEM).decode()
    if command == "list":
        assert "Replay 00: OpenPGP card 3.4" in proc.stdout
        assert "Replay 01: empty" in proc.stdout
    if command == "sign":  # the replay wrote the signature the card made (RSA: deterministic)
        key = load_pem_private_key((DEMO / "demo-rsa" / "sig-key.pem").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(b"signed by the card\n", padding.PKCS1v15(), hashes.SHA256())
        assert (tmp_path / "SIG").read_bytes() == signature

    importers = set(ast.literal_eval(line(proc, "IMPORTERS"))) - {"typing"}  # typing: re
    assert importers <= pending, "modules importing typing or re at run time"
    if not importers:
        modules = set(line(proc, "MODULES").split())
        assert not modules & {"typing", "re"}


def test_the_spy_sees_an_import_of_typing() -> None:
    """The guard's own checks: the interpreter it runs loads neither module before the
    command, and a module importing typing at run time is named (here pyscard's SWIG wrapper,
    which the commands do without)."""
    code = SPY + (
        "at_start = {'typing', 're'} & set(sys.modules)\n"
        "import smartcard.scard.scard\n"
        "print(sorted(at_start))\n"
        "print(sorted(importers))\n"
    )
    proc = run(code, [])
    assert proc.returncode == 0, proc.stderr
    at_start, importers = map(ast.literal_eval, proc.stdout.splitlines())
    assert at_start == []
    assert "smartcard.scard.scard" in importers


def test_protocols_resolve_on_first_use() -> None:
    """``Transport`` and ``Backend`` (typing.Protocol classes) come from their own modules on
    first use, under their public names; importing the packages loads neither typing nor them."""
    code = SPY + (
        "import apdu.transport, opcard.cli.backend\n"
        "print(sorted(importers), sorted({'typing', 're'} & set(sys.modules)))\n"
        "import pickle\n"
        "from apdu.transport import Transport\n"
        "from apdu.transport.loopback import LoopbackTransport\n"
        "from opcard.cli.backend import Backend, PcscBackend\n"
        "loop = LoopbackTransport(lambda apdu: b'\\x90\\x00', b'\\x3b\\x00', 'Loop 00')\n"
        "print(isinstance(loop, Transport), isinstance(object(), Transport), repr(Transport),\n"
        "      pickle.loads(pickle.dumps(Transport)) is Transport, repr(Backend),\n"
        "      getattr(Backend, '_is_protocol', False), 'Transport' in dir(apdu.transport))\n"
    )
    proc = run(code, [])
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == "[] []"
    assert second == (
        "True False <class 'apdu.transport.Transport'> True "
        "<class 'opcard.cli.backend.Backend'> True True"
    )


def test_record_fields_skip_classvar_without_typing() -> None:
    """Records skip ClassVar annotations as before: as text (``from __future__ import
    annotations``) without typing loaded, and as typing's objects in a module evaluating its
    annotations."""
    code = (
        "import sys\n"
        "from apdu.record import Record\n"
        "class Text(Record):\n"
        "    __annotations__ = {'a': 'int', 'LIMIT': 'ClassVar[int]', 'T': 'typing.ClassVar'}\n"
        "    LIMIT = 3\n"
        "print('typing' in sys.modules, Text.__record_fields__.keys() == {'a'}, Text.LIMIT)\n"
        "from typing import ClassVar\n"
        "class Evaluated(Record):\n"
        "    a: int\n"
        "    LIMIT: ClassVar[int] = 4\n"
        "    BARE: ClassVar = 5\n"
        "print(Evaluated.__record_fields__.keys() == {'a'}, Evaluated(1), Evaluated.LIMIT)\n"
    )
    proc = run(code, [])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["False True 3", "True Evaluated(a=1) 4"]
