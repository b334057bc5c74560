"""What the on-demand server and the signing path load (issue #15): the gains of making them
lazy must not silently go.

- ``python -m opcard.serve --stdio`` (what ``opcard serve --install`` writes; p11-kit starts it
  for every application) up to its first answered C_GetSlotList loads neither
  ``cryptography`` nor the PKCS#11 constants table (the 418 mechanisms), the object layer, the
  mechanism rules, :mod:`logging` (loaded by the first line the log writes), :mod:`pathlib`
  and :mod:`socket` (the stdio server binds no socket: the C socket type serves),
  :mod:`datetime`, :mod:`argparse` (a plain command line is read without it) nor the exit
  codes (loaded when something failed): without a reader, and with the emulated card (marked
  ``pcsc``: the card's slot makes its session when first used, so not even
  :mod:`opcard.session` is loaded);
- the garbage collector, off while the server starts, is on again when it serves, the
  start-up's objects frozen;
- the command line's ``python -m opcard.serve`` options read without argparse are the values
  argparse gives (a fuzzed comparison), and argparse still reads and refuses the others;
- ``opcard sign``'s library path (``opcard.session``, ``opcard.pkcs11.mechanisms``: log in,
  ``sign_digest``, ``ecdsa_raw_to_der``) loads neither ``cryptography`` nor the PKCS#11
  constants, ``opcard.objects`` or ``opcard.errors`` (and its CK_RV table): the errors are
  imported where one is raised.
"""

from __future__ import annotations

import ast
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

#: What the stdio route must not load before its first answer (a module or its package).
NOT_BEFORE_THE_FIRST_ANSWER = (
    "cryptography",
    "asn1crypto",
    "opcard.pkcs11.constants",
    "opcard.pkcs11.mechanisms",
    "opcard.pkcs11.template",
    "opcard.objects",
    "opcard.hashes",
    "logging",
    "traceback",
    "pathlib",
    "datetime",
    "argparse",
    "gettext",
    "shutil",
    "click",
    "opcard.cli",
    "socket",
    "selectors",
    "opcard.exitcodes",
    "zlib",
    "opcard.text",
    "mmap",
    "opcard.pkcs11.keytype",
    "opcard.pkcs11.basic",
    "typing",  # with re: 3.5 ms (TYPE_CHECKING = False in each module)
    "re",
)
#: What opening the card (the monitor's scan) loads.
CARD_MODULES = ("opcard.card", "apdu.openpgp.applet")

#: Runs ``python -m opcard.serve`` and prints, when the serving child ends, whether its
#: garbage collector was back on with the start-up's objects frozen, and the modules it
#: loaded (the started process exits through os._exit: it prints nothing).
WHAT_IT_LOADS = (
    "import gc, runpy, sys\n"
    "try:\n"
    "    runpy.run_module('opcard.serve', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    print('GC', gc.isenabled(), gc.get_freeze_count() > 10000, file=sys.stderr)\n"
    "    print('MODULES', sorted(sys.modules), file=sys.stderr)\n"
)


def _frame(code: int, call: int, signature: bytes, args: bytes) -> bytes:
    body = struct.pack(">II", call, len(signature)) + signature + args
    return struct.pack(">III", code, 0, len(body)) + body


def _ay(data: bytes) -> bytes:
    return b"\x01" + struct.pack(">I", len(data)) + data


def _answer(sock: socket.socket) -> bytes:
    data, olen, blen = b"", 0, 0
    while len(data) < 12 + olen + blen:
        chunk = sock.recv(12 + olen + blen - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
        if len(data) >= 12:
            _, olen, blen = struct.unpack(">III", data[:12])
    return data[12 + olen :]


def first_slot_list(argv: list[str]) -> tuple[int, set[str], list[str]]:
    """``python -m opcard.serve argv`` on a socketpair, as p11-kit starts it: C_Initialize and
    C_GetSlotList (present tokens) answered, then the connection closed; the number of slots
    listed, the modules the serving child loaded, and its other standard error lines."""
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-c", WHAT_IT_LOADS, *argv],
        stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    theirs.close()
    try:
        ours.settimeout(30)
        ours.sendall(b"\x00")
        assert ours.recv(1) == b"\x00"
        handshake = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"
        ours.sendall(_frame(1, 1, b"ayyay", _ay(handshake) + b"\x00" + _ay(b"\x00")))
        assert _answer(ours)[:4] == struct.pack(">I", 1)  # C_Initialize, not an error (0)
        ours.sendall(_frame(2, 4, b"yfu", b"\x01" + struct.pack(">I", 16)))  # C_GetSlotList
        reply = _answer(ours)
        assert reply[:4] == struct.pack(">I", 4), reply.hex()
        # call id, signature "au", then the array: a valid flag, the count, the ids (u64)
        count = struct.unpack(">I", reply[4 + 4 + 2 + 1 : 4 + 4 + 2 + 1 + 4])[0]
    finally:
        ours.close()
    _, err = proc.communicate(timeout=60)  # to its end: the serving child holds the pipe
    lines = err.decode().splitlines()
    assert lines[-2:-1] == ["GC True True"], lines  # collecting again, start-up frozen
    assert lines and lines[-1].startswith("MODULES "), lines
    modules = set(ast.literal_eval(lines[-1].removeprefix("MODULES ")))
    return count, modules, lines[:-2]


def offending(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules of ``forbidden`` (or of their packages) in ``modules``, but those this
    interpreter loads before running anything (the editable install's finder loads
    pathlib; an installed opcard does not)."""
    at_start = loaded_after("")
    return sorted(
        m for m in modules - at_start for f in forbidden if m == f or m.startswith(f + ".")
    )


def test_stdio_route_without_a_reader() -> None:
    count, modules, log = first_slot_list(["--stdio", "--reader", "no such reader"])
    assert count == 0 and log == []
    assert {"opcard.serve.server", "opcard.serve.functions", "smartcard.scard"} <= modules
    assert offending(modules, NOT_BEFORE_THE_FIRST_ANSWER) == []


@pytest.mark.pcsc
def test_stdio_route_with_a_card(emulator: Callable[..., Any]) -> None:
    """The card is opened and its token listed: none of the tables, cryptography, logging or
    argparse, and no session yet (a reader name with spaces, a log level, a poll interval: the
    plain command line ``--install`` writes)."""
    emu = emulator(profile="extended", personalize="demo-ecc")
    argv = ["--stdio", "--reader", emu.reader, "--log-level", "warning", "--poll=0.5"]
    count, modules, log = first_slot_list(argv)
    assert count == 1 and log == []
    assert set(CARD_MODULES) <= modules
    assert offending(modules, (*NOT_BEFORE_THE_FIRST_ANSWER, "opcard.session")) == []


def test_log_lines_load_logging_when_written() -> None:
    """The stdio log set-up waits for its first line at its level: a line below it loads
    nothing, the first one at it is written on standard error in the usual format."""
    code = (
        "import sys\n"
        "from opcard.serve.log import configure_logging, logger\n"
        "restore = configure_logging('warning')\n"
        "logger.info('not %s', 'shown')\n"
        "logger.debug('nor this')\n"
        "assert 'logging' not in sys.modules and not logger.isEnabledFor(20)\n"
        "logger.warning('card %s\\x1b[2J', 'x')\n"
        "assert 'logging' in sys.modules\n"
        "import logging\n"
        "target = logging.getLogger('opcard.serve')\n"
        "assert target.level == logging.WARNING and not target.propagate\n"
        "restore()\n"
        "assert not target.handlers and target.propagate\n"
        "logger.error('after the restore: not on our handler')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60,
        cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, lines  # ours, then logging's last resort for the line after
    assert lines[0].endswith(" opcard serve: card x\\x1b[2J"), lines  # escaped
    assert lines[1] == "after the restore: not on our handler"


# --- the options without argparse -----------------------------------------------------------

WORDS = [
    "--stdio", "--reader", "--serial", "--log-level", "--card-timeout", "--poll",
    "--frame-timeout", "--idle-timeout", "--help", "-h", "--", "--log-lev", "--read",
    "Virtual PCD 00 00", "", "-", "-1", "-x y", "0", "0.01", "0.05", "1", "3600", "3601",
    "60", "61", "1e300", "inf", "nan", "soon", " 2 ", "1_0", "DEBUG", "Info", "loud",
    "ABCD1234", "--reader=", "--reader=R", "--poll=0", "--poll=2", "--log-level=ERROR",
    "--stdio=1", "--idle-timeout=31536000", "--idle-timeout=31536001", "x=y",
]  # fmt: skip


def _argparse_result(argv: list[str]) -> dict[str, object] | None:
    from opcard.serve.stdio import _parser

    try:
        return vars(_parser().parse_args(argv))
    except SystemExit:
        return None


def test_plain_options_are_read_as_argparse_reads_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from opcard.serve.stdio import _fast_args

    rng = random.Random(15)
    cases = [
        ["--stdio"],
        ["--stdio", "--reader", "Virtual PCD 00 00"],
        ["--reader=A", "--reader", "B", "--stdio", "--serial", "ABCD1234", "--log-level", "Debug"],
        ["--stdio", "--poll", "0.05", "--frame-timeout", "3600", "--idle-timeout", "1e3"],
        ["--stdio", "--card-timeout", "0", "--poll", "2", "--poll", "3"],
    ]
    cases += [[rng.choice(WORDS) for _ in range(rng.randrange(1, 7))] for _ in range(1500)]
    for _ in range(1500):  # mostly well-formed: options with good and bad values
        argv = ["--stdio"] if rng.random() < 0.9 else []
        for _ in range(rng.randrange(0, 5)):
            option = rng.choice([w for w in WORDS if w.startswith("--") and "=" not in w])
            value = rng.choice(WORDS)
            if rng.random() < 0.3:
                argv.append(f"{option}={value}")
            else:
                argv += [option, value]
        if rng.random() < 0.1:
            rng.shuffle(argv)
        cases.append(argv)
    fast_ones = 0
    for argv in cases:
        fast = _fast_args(argv)
        if fast is None:
            continue  # argparse reads it (and refuses it, or reads what the fast path left)
        fast_ones += 1
        assert vars(fast) == _argparse_result(argv), argv
    capsys.readouterr()  # argparse's messages
    assert fast_ones > 100
    for argv in cases[:5]:
        assert _fast_args(argv) is not None, argv


@pytest.mark.parametrize(
    "argv",
    [
        ["--reader", "A"],  # no --stdio: argparse says it is required
        ["--stdio", "--log-lev", "debug"],
        ["--stdio", "--poll", "0"],
        ["--stdio", "--reader"],
        ["--stdio", "--reader", "--serial", "X"],
        ["--stdio", "--card-timeout", "-1"],
        ["--stdio", "--help"],
        ["--stdio=1"],
    ],
)
def test_other_command_lines_go_to_argparse(argv: list[str]) -> None:
    from opcard.serve.stdio import _fast_args

    assert _fast_args(argv) is None


# --- opcard sign's library path -------------------------------------------------------------


def loaded_after(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(sorted(sys.modules))\n"],
        capture_output=True, text=True, check=False, timeout=60, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(ast.literal_eval(proc.stdout.splitlines()[-1]))


SIGN_PATH_FORBIDDEN = (
    "cryptography",
    "asn1crypto",
    "opcard.pkcs11.constants",
    "opcard.pkcs11.template",
    "opcard.objects",
    "opcard.keys",
    "opcard.errors",  # imported where an error is raised (opcard._pinkind names the PINs)
    "opcard.pkcs11.rv",
    "typing",
    "re",
)


def test_sign_imports_load_no_tables_nor_cryptography() -> None:
    modules = loaded_after(
        "import opcard.session, opcard.pkcs11.mechanisms\n"
        "from opcard.pkcs11 import KeyType, UserType, ObjectClass\n"
        "from opcard.pkcs11.mechanisms import ecdsa_raw_to_der\n"
        "assert ecdsa_raw_to_der(bytes(64)) == bytes.fromhex('3006020100020100')\n"
    )
    assert "opcard.session" in modules
    assert offending(modules, SIGN_PATH_FORBIDDEN) == []


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_signing_a_digest_loads_no_tables(variant: str) -> None:
    """Through a loopback card (the emulator in process, which loads cryptography itself):
    what opcard loads from the public key to the DER signature of a digest."""
    code = (
        "import hashlib, sys\n"
        "sys.path[:0] = ['tests', 'tests/objects']\n"
        "from opcard_support import make_rig\n"
        f"rig = make_rig('extended', {variant!r})\n"
        "before = set(sys.modules)\n"
        "from opcard.pkcs11 import KeyType\n"
        "from opcard.pkcs11.mechanisms import ecdsa_raw_to_der\n"
        "public = rig.card.public_key('sig')\n"
        "session = rig.card.session()\n"
        "session.login('123456')\n"
        "sent = len(rig.sent)\n"
        "signature = session.sign_digest('sig', hashlib.sha256(b'data').digest(), 'sha256')\n"
        "if public.key_type is KeyType.EC:\n"
        "    signature = ecdsa_raw_to_der(signature)\n"
        "assert len(rig.sent) - sent == 2, rig.sent[sent:]  # VERIFY 81, PSO:CDS\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60,
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules = set(ast.literal_eval(proc.stdout.splitlines()[-1]))  # loaded after the rig's
    assert "opcard.session" in modules
    opcard_modules = {m for m in modules if m.startswith("opcard")}
    assert offending(opcard_modules, SIGN_PATH_FORBIDDEN) == []


def test_held_slot_ids_are_zlib_s_crc32() -> None:
    import zlib

    from opcard.serve.slots import _HELD_SLOT_BASE, _crc32, held_slot_id

    rng = random.Random(32)
    samples = [
        b"",
        b"a",
        b"Virtual PCD 00 00",
        "Lecteur é \udcff".encode("utf-8", "surrogateescape"),
    ]
    samples += [rng.randbytes(rng.randrange(0, 80)) for _ in range(300)]
    for data in samples:
        assert _crc32(data) == zlib.crc32(data), data
    reader = "Virtual PCD 00 01"
    assert held_slot_id(reader) == _HELD_SLOT_BASE | zlib.crc32(reader.encode())


def test_errors_still_raised_and_reexported() -> None:
    """What the sign path imports where it raises is the same error as before."""
    from opcard import errors, publickeys
    from opcard._pinkind import PinKind
    from opcard.errors import DataLengthError, MechanismError
    from opcard.pkcs11.mechanisms import digest_info, ecdsa_raw_to_der

    assert (
        errors.PinKind is PinKind and publickeys.UnsupportedKeyError is errors.UnsupportedKeyError
    )
    with pytest.raises(DataLengthError, match="a sha256 digest is 32 bytes, not 3"):
        digest_info("sha256", b"abc")
    with pytest.raises(MechanismError, match="r and s must be equal"):
        ecdsa_raw_to_der(b"abc")
