"""The on-demand route: ``python -m opcard.serve --stdio`` started by p11-kit itself from a
module file line ``remote: |PYTHON -m opcard.serve --stdio …`` (in a private HOME's
~/.config/pkcs11/modules/), on a card in a PC/SC reader (pcscd + vpcd + the emulator): p11-kit
lists the module, p11tool with no ``--provider`` and no variable lists the token and exports
the certificates byte-identical, and pkcs11-tool through p11-kit's proxy module signs with a
signature that verifies. ``opcard serve --stdio`` (the command line, the same server function)
in the module file still lists the token.
The process p11-kit starts exits at once and a child of it serves (p11-kit's C_Finalize polls
for that process every 100 ms); by default it logs nothing but warnings and errors (each
application would show them), ``--log-level`` says more — both entries.
``python -m opcard.serve --stdio`` loads neither click nor the command line, nor TLS, X.509 or
asn1crypto, up to its first C_GetSlotList on a card; it is strict about its options (usage on
standard error, exit 2, as ``opcard``).
``opcard serve --install`` writes that module file (p11tool then finds the card) and
``--uninstall`` removes it; a file of that name it did not write is left alone. Also:
``--stdio`` on a standard input that is not a socket is refused with a clear message."""

from __future__ import annotations

import ast
import hashlib
import os
import select
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require_file, require_tool
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from serve_support import PW1, RawClient, demo

from opcard.serve.errors import ServeError
from opcard.serve.install import MARKER, MODULE_FILE, install, uninstall

READER = "Virtual PCD 00 00"
PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
#: The on-demand command as ``opcard serve --install`` writes it, and through the command line.
ON_DEMAND = [sys.executable, "-m", "opcard.serve", "--stdio"]
THROUGH_CLI = [sys.executable, "-m", "opcard.cli", "serve", "--stdio"]
ENTRIES = pytest.mark.parametrize("entry", [ON_DEMAND, THROUGH_CLI], ids=["opcard.serve", "cli"])


@dataclass
class Home:
    """A HOME with p11-kit module files, and how to run a client there. p11-kit reads no user
    module files in a program running as root ("skipping user config in program running as
    root"): as root, the clients run in a user namespace of their own with our uid mapped to
    1000 (``unshare --map-user``) — p11-kit sees uid 1000, files and pcscd still see root."""

    path: Path
    env: dict[str, str]
    prefix: list[str]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [*self.prefix, *argv], env=self.env, cwd=self.path, capture_output=True,
            timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{argv[0]} exited {proc.returncode}\nstdout:\n{proc.stdout.decode(errors='replace')}"
            f"\nstderr:\n{proc.stderr.decode(errors='replace')}"
        )
        return proc


def make_home(tmp_path: Path, entry: list[str]) -> Home:
    """One p11-kit module file, ``opcard.module``, with the ``remote: |ENTRY --reader …``
    line; OpenSC's system-wide module is disabled there (a user file of the same name
    replaces it), so that the card is seen through opcard only."""
    path = tmp_path / "home"
    modules = path / ".config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    command = shlex.join([*entry, "--reader", READER])
    (modules / "opcard.module").write_text(f"remote: |{command}\n")
    (modules / "opensc-pkcs11.module").write_text(
        "module: opensc-pkcs11.so\nenable-in: opcard-test-nothing\n"
    )
    env = dict(os.environ)
    env["HOME"] = str(path)
    env["PYTHONPATH"] = str(REPO)
    for key in ("XDG_CONFIG_HOME", "P11_KIT_SERVER_ADDRESS", "GNUTLS_PIN", "OPCARD_PIN"):
        env.pop(key, None)
    prefix: list[str] = []
    if os.getuid() == 0:
        prefix = [require_tool("unshare"), "--map-user=1000", "--map-group=1000"]
    return Home(path, env, prefix)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A HOME whose module file starts ``python -m opcard.serve --stdio`` (as --install)."""
    return make_home(tmp_path, ON_DEMAND)


@pytest.mark.pcsc
def test_p11kit_starts_serve_stdio_from_a_module_file(
    emulator: Callable[..., Any], home: Home
) -> None:
    require_file(PROXY)
    emu = emulator(profile="extended", personalize="demo-ecc")
    modules = home.run([require_tool("p11-kit"), "list-modules"]).stdout.decode()
    assert "opcard: " in modules, modules
    assert "Jane Doe" in modules and "OpenPGP card 3.4" in modules, modules

    p11tool = require_tool("p11tool")
    tokens = home.run([p11tool, "--list-tokens"]).stdout.decode()
    assert "Label: Jane Doe" in tokens and "Serial: 10000001" in tokens, tokens
    material = demo("demo-ecc")
    for key, key_id in (("sig", "01"), ("dec", "02"), ("aut", "03")):
        der = home.run(
            [p11tool, "--export", "--outder", f"pkcs11:token=Jane%20Doe;id=%{key_id};type=cert"]
        ).stdout
        assert der == material[key].cert_der, key

    # a signature through p11-kit's proxy module (the client logs in itself)
    message = b"signed through opcard serve --stdio"
    (home.path / "in").write_bytes(hashlib.sha256(message).digest())
    before = emu.commands()
    home.run(
        [
            require_tool("pkcs11-tool"), "--module", PROXY, "--token-label", "Jane Doe",
            "--login", "--pin", PW1, "--sign", "--id", "03", "-m", "ECDSA",
            "--input-file", "in", "--output-file", "sig",
        ]
    )  # fmt: skip
    signature = (home.path / "sig").read_bytes()
    half = len(signature) // 2
    der_signature = encode_dss_signature(
        int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
    )
    material["aut"].public.verify(der_signature, message, ec.ECDSA(hashes.SHA256()))
    commands = [e.text for e in emu.log_entries() if e.direction == ">"][before:]
    assert any(text[2:4].upper() == "88" for text in commands), commands


@pytest.mark.pcsc
def test_the_command_line_in_the_module_file_still_serves(
    emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A module file of an earlier --install, or written by hand: ``opcard serve --stdio``."""
    emulator(profile="extended", personalize="demo-ecc")
    home = make_home(tmp_path, THROUGH_CLI)
    tokens = home.run([require_tool("p11tool"), "--list-tokens"]).stdout.decode()
    assert "Label: Jane Doe" in tokens and "Serial: 10000001" in tokens, tokens


#: Runs ``python -m opcard.serve`` and, when the serving child ends, prints the modules it
#: loaded on standard error (the started process ends with os._exit: it prints nothing).
WHAT_IT_LOADS = (
    "import runpy, sys\n"
    "try:\n"
    "    runpy.run_module('opcard.serve', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    print('MODULES', sorted(sys.modules), file=sys.stderr)\n"
)
#: What the on-demand route must not load before its first answer (issues #13, #15).
NOT_ON_DEMAND = ("click", "opcard.cli", "tlslite", "cryptography.x509", "asn1crypto")


def start_on_a_socketpair(argv: list[str]) -> tuple[RawClient, subprocess.Popen[bytes]]:
    """``argv`` started as p11-kit starts a ``remote: |`` command; the tests' RPC client on
    our end of the socketpair (version byte not yet sent)."""
    ours, theirs = socket.socketpair()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, cwd=REPO, env=env
    )
    theirs.close()
    client = RawClient.__new__(RawClient)
    client.sock, client.code = ours, 0
    ours.settimeout(30)
    return client, proc


def standard_error_to_the_end(proc: subprocess.Popen[bytes]) -> bytes:
    """The started command's standard error until every holder of it (the serving child) is
    gone."""
    assert proc.stderr is not None
    err, deadline = b"", time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1)[0]:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            err += chunk
    else:
        raise AssertionError(f"the serving child did not end:\n{err.decode(errors='replace')}")
    proc.stderr.close()
    return err


@pytest.mark.pcsc
def test_on_demand_loads_no_command_line_and_logs_nothing(emulator: Callable[..., Any]) -> None:
    """``python -m opcard.serve --stdio`` on a card up to its first C_GetSlotList: the slot is
    listed, the modules it loaded leave out the command line (click), TLS, X.509 and
    asn1crypto, and an application's standard error shows nothing of it (warning level)."""
    emulator(profile="extended", personalize="demo-ecc")
    client, proc = start_on_a_socketpair(
        [sys.executable, "-c", WHAT_IT_LOADS, "--stdio", "--reader", READER]
    )
    try:
        assert proc.wait(timeout=30) == 0
        client.sock.sendall(b"\x00")
        assert client.recv(1) == b"\x00"
        client.version = 0
        client.initialize()
        assert len(client.slots(present=True)) == 1
    finally:
        client.close()
    lines = standard_error_to_the_end(proc).decode().splitlines()
    modules = [line for line in lines if line.startswith("MODULES ")]
    assert len(modules) == 1 and len(lines) == 1, lines  # no log line at the default level
    loaded = set(ast.literal_eval(modules[0].removeprefix("MODULES ")))
    assert "opcard.serve.server" in loaded and "smartcard.scard" in loaded
    found = {m for m in loaded for top in NOT_ON_DEMAND if m == top or m.startswith(top + ".")}
    assert not found, sorted(found)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--stdio", "--pin-file", "x"], "unrecognized arguments: --pin-file x"),
        (["--stdio", "--log-lev", "debug"], "unrecognized arguments: --log-lev"),  # no prefixes
        (["--reader", "A"], "the following arguments are required: --stdio"),
        (["--stdio", "--poll", "0"], "argument --poll: 0 is not between 0.05 and 60"),
        (["--stdio", "--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
        (["--stdio", "--card-timeout", "soon"], "argument --card-timeout: 'soon' is not a number"),
    ],
)
def test_on_demand_options_are_strict(args: list[str], says: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "opcard.serve", *args], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), input=b"", capture_output=True, timeout=30,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 2 and proc.stdout == b"", err
    assert err.startswith("usage: python -m opcard.serve") and says in err, err


@ENTRIES
def test_stdio_refuses_a_standard_input_that_is_not_a_socket(entry: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.monotonic()
    proc = subprocess.run(
        entry, cwd=REPO, env=env, input=b"", capture_output=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert err.startswith("opcard: error: --stdio: standard input is not a socket"), err
    assert "remote: |opcard serve --stdio" in err
    assert time.monotonic() - started < 30


@pytest.mark.pcsc
def test_install_registers_opcard_and_uninstall_removes_it(
    emulator: Callable[..., Any], home: Home
) -> None:
    emulator(profile="extended", personalize="demo-ecc")
    module = home.path / ".config" / "pkcs11" / "modules" / MODULE_FILE
    module.unlink()  # the fixture's own: --install writes it now
    opcard = [sys.executable, "-m", "opcard.cli", "serve"]
    out = home.run([*opcard, "--install", "--reader", READER]).stdout.decode()
    assert f"wrote {module}" in out, out
    assert module.read_text() == (
        f"{MARKER}\nremote: |" + shlex.join([*ON_DEMAND, "--reader", READER]) + "\n"
    )
    der = home.run(
        [
            require_tool("p11tool"),
            "--export",
            "--outder",
            "pkcs11:token=Jane%20Doe;id=%03;type=cert",
        ]
    ).stdout
    assert der == demo("demo-ecc")["aut"].cert_der
    # installed again: the file is replaced, not refused
    home.run([*opcard, "--install", "--reader", READER])
    out = home.run([*opcard, "--uninstall"]).stdout.decode()
    assert f"removed {module}" in out and not module.exists()
    modules = home.run([require_tool("p11-kit"), "list-modules"]).stdout.decode()
    assert "opcard" not in modules
    assert "nothing to remove" in home.run([*opcard, "--uninstall"]).stdout.decode()


def test_install_leaves_a_module_file_it_did_not_write(tmp_path: Path) -> None:
    theirs = tmp_path / MODULE_FILE
    theirs.write_text("remote: unix:path=/run/user/1000/elsewhere\n")
    with pytest.raises(ServeError, match="not written by 'opcard serve --install'"):
        install(["opcard", "serve", "--stdio"], tmp_path)
    with pytest.raises(ServeError, match="left in place"):
        uninstall(tmp_path)
    assert theirs.read_text() == "remote: unix:path=/run/user/1000/elsewhere\n"
    theirs.unlink()
    path = install(["opcard", "serve", "--stdio", "--reader", "A reader"], tmp_path)
    assert path.read_text() == f"{MARKER}\nremote: |opcard serve --stdio --reader 'A reader'\n"
    assert uninstall(tmp_path) == path and not path.exists()
    assert uninstall(tmp_path) is None


@ENTRIES
@pytest.mark.parametrize("level", [None, "debug"])
def test_the_started_process_exits_at_once_and_a_child_serves(
    entry: list[str], level: str | None
) -> None:
    """p11-kit, at C_Finalize, closes the socket and then polls every 100 ms for the process
    it started to exit: that process exits (status 0) before a byte of the protocol, its
    child answers the RPC on the socket, and ends when the socket closes (its standard error,
    a pipe here, then reaches end of file). By default nothing is logged (the application's
    standard error is the user's); ``--log-level debug`` logs the start and every call."""
    client, proc = start_on_a_socketpair(
        [*entry, "--reader", "no such reader", *(["--log-level", level] if level else [])]
    )
    try:
        assert proc.wait(timeout=30) == 0  # gone, with nothing sent to it yet
        client.sock.sendall(b"\x00")
        assert client.recv(1) == b"\x00"  # the version byte, answered by the child
        client.version = 0
        client.initialize()
        assert client.slots(present=False) == []
    finally:
        client.close()
    err = standard_error_to_the_end(proc)
    if level is None:
        assert err == b""
    else:
        assert b"opcard serve: serving 0 card(s) on standard input/output" in err, err
        assert b"C_GetSlotList" in err, err
