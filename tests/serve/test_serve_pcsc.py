"""``opcard serve`` as a process, on a card in a PC/SC reader (pcscd + vpcd + the emulator):
started with ``--login`` (the PIN from OPCARD_PIN), serving p11tool and a TLS handshake with
no PIN given to the client, showing the token gone when the card leaves the reader and back
(same slot, logged out) when it returns — a client blocked in C_WaitForSlotEvent hears of
both — and stopping cleanly on SIGTERM."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require_tool
from serve_support import (
    CK_ULONG,
    PW1,
    Module,
    ModuleCall,
    RawClient,
    ServerCredentials,
    background,
    demo,
    free_port,
    private_dir,
    run,
    server_credentials,
    start_serve,
    stop_serve,
    u64,
)

pytestmark = pytest.mark.pcsc

READER = "Virtual PCD 00 00"
AUT_URI = "pkcs11:token=Jane%20Doe;id=%03"


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], address: str, log: Path) -> None:
        self.proc = proc
        self.address = address
        self.path = address.removeprefix("unix:path=")
        self.log = log

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("GNUTLS_PIN", None)
        env["P11_KIT_SERVER_ADDRESS"] = self.address
        env.update(extra)
        return env


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[subprocess.Popen[bytes]] = []
    directories: list[Path] = []

    def start(*args: str, pin: str | None = PW1) -> Daemon:
        socket_dir = private_dir()
        directories.append(socket_dir)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO)
        env.pop("OPCARD_PIN", None)
        if pin is not None:
            env["OPCARD_PIN"] = pin
        log = tmp_path / "daemon.log"
        proc, address = start_serve(
            ["--socket", f"{socket_dir}/pkcs11", "--poll", "0.1", "--log-level", "debug", *args],
            env, log,
        )  # fmt: skip
        started.append(proc)
        return Daemon(proc, address, log)

    try:
        yield start
    finally:
        for proc in started:
            stop_serve(proc)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)


def present_slots(d: Daemon) -> list[int]:
    with RawClient(d.path) as c:
        c.initialize()
        return c.slots(present=True)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> ServerCredentials:
    return server_credentials(tmp_path_factory.mktemp("tls"))


def test_serve_a_pcsc_card(
    emulator: Callable[..., Any],
    daemon: Callable[..., Daemon],
    p11_client: str,
    credentials: ServerCredentials,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(profile="extended", personalize="demo-ecc")
    d = daemon("--reader", READER, "--login")
    slots = present_slots(d)
    assert slots == [(0xFF00 << 32) | 0x10000001]
    p11tool = require_tool("p11tool")
    listing = run([p11tool, "--provider", p11_client, "--list-all-certs"], d.env()).stdout
    assert listing.decode().count("type=cert") == 3
    der = run(
        [p11tool, "--provider", p11_client, "--export", "--outder", f"{AUT_URI};type=cert"],
        d.env(),
    ).stdout
    assert der == demo("demo-ecc")["aut"].cert_der

    # TLS 1.3 client authentication, no PIN given to the client: the daemon holds it
    port = free_port()
    serv = [
        require_tool("gnutls-serv"), "--port", str(port), "--echo", "--require-client-cert",
        "--verify-client-cert", "--x509cafile", str(credentials.ca),
        "--x509certfile", str(credentials.cert), "--x509keyfile", str(credentials.key),
    ]  # fmt: skip
    with background(serv, tmp_path / "gnutls-serv.out", port=port) as server:
        before = emu.commands()
        cli = run(
            [
                require_tool("gnutls-cli"), "--provider", p11_client,
                "--x509cafile", str(credentials.ca),
                "--x509certfile", f"{AUT_URI};type=cert",
                "--x509keyfile", f"{AUT_URI};type=private", "-p", str(port), "127.0.0.1",
            ],
            d.env(), input=b"through pcscd\n",
        )  # fmt: skip
        out = cli.stdout.decode(errors="replace")
        assert "Handshake was completed" in out and "through pcscd" in out, out
    assert "Client Signature: ECDSA-SECP256R1-SHA256" in server.text()
    # the emulator's own log: the signature went to the card (INTERNAL AUTHENTICATE)
    commands = [e.text for e in emu.log_entries() if e.direction == ">"][before:]
    assert any(text[2:4].upper() == "88" for text in commands), commands

    # the card leaves the reader: token gone; it comes back: same slot, logged out. An
    # application blocked in C_WaitForSlotEvent (p11-kit's client) hears of both, and its
    # other threads' calls are answered while it waits.
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", d.address)
    m = Module(p11_client)
    assert ModuleCall(lambda: m.f["C_Initialize"](None)).result() == 0
    event = CK_ULONG(0)

    def wait_for_event(count: int) -> ModuleCall:
        call = ModuleCall(lambda: m.f["C_WaitForSlotEvent"](0, ctypes.byref(event), None))
        wait_until(lambda: d.log.read_text().count("C_WaitForSlotEvent: waiting") == count)
        return call

    wait = wait_for_event(1)
    assert m.slots() == slots  # another thread's call, answered during the wait
    emu.stop()
    assert wait.result(10) == 0
    assert event.value == slots[0]
    wait_until(lambda: present_slots(d) == [])
    wait = wait_for_event(2)
    emu.start()
    assert wait.result(10) == 0
    assert event.value == slots[0]
    wait_until(lambda: present_slots(d) == slots)
    assert m.slots() == slots
    assert ModuleCall(lambda: m.f["C_Finalize"](None)).result() == 0
    with RawClient(d.path) as c:
        c.initialize()
        session = c.open(slots[0])
        r = c.call(13, u64(session))
        r.ulong()
        assert r.ulong() == 0  # CKS_RO_PUBLIC_SESSION: the login ended with the card
        c.login(session, PW1.encode())

    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    assert not Path(d.path).exists()
    log = d.log.read_text()
    assert PW1 not in log
    assert "token removed" in log and "token present" in log


def test_wrong_pin_at_start_is_refused(
    emulator: Callable[..., Any], daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    emulator(profile="extended", personalize="demo-ecc")
    socket_dir = private_dir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OPCARD_PIN="654321")
    proc = subprocess.run(
        [sys.executable, "-m", "opcard.cli", "serve", "--socket", f"{socket_dir}/pkcs11",
         "--reader", READER, "--login"],
        cwd=REPO, env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr  # ExitCode.WrongPin
    assert b"654321" not in proc.stderr + proc.stdout
    assert not (socket_dir / "pkcs11").exists()
    shutil.rmtree(socket_dir, ignore_errors=True)


def test_two_cards_in_two_readers(
    emulator: Callable[..., Any], daemon: Callable[..., Daemon], p11_client: str
) -> None:
    emulator(profile="extended", personalize="demo-ecc", port=35963)
    emulator(profile="short", personalize="demo-rsa", port=35964, serial=0x10000002)
    d = daemon("--serial", "10000001", "--serial", "10000002", "--login")
    assert sorted(present_slots(d)) == [(0xFF00 << 32) | 0x10000001, (0xFF00 << 32) | 0x10000002]
    tokens = run(
        [require_tool("p11tool"), "--provider", p11_client, "--list-tokens"], d.env()
    ).stdout.decode()
    assert "Serial: 10000001" in tokens and "Serial: 10000002" in tokens
    for serial, variant in (("10000001", "demo-ecc"), ("10000002", "demo-rsa")):
        der = run(
            [require_tool("p11tool"), "--provider", p11_client, "--export", "--outder",
             f"pkcs11:serial={serial};id=%01;type=cert"],
            d.env(),
        ).stdout  # fmt: skip
        assert der == demo(variant)["sig"].cert_der
