"""``opcard serve`` with a card that stops answering (issue 12, item 4 and "Also").

Two cards through pcscd + vpcd; the one in the first reader goes silent at its first PSO:
COMPUTE DIGITAL SIGNATURE (emulator ``--silent-on 002A9E9A``). A client signing with it gets
CKR_DEVICE_ERROR within the card timeout (``OPCARD_CARD_TIMEOUT``) and the next call on it
fails at once; meanwhile another client signs with the second card (signatures verified) and
a third lists slots. A card pulled while its operation is in flight gives CKR_DEVICE_REMOVED
(not CKR_DEVICE_ERROR). SIGTERM while a card is stuck stops the daemon within a bound. A
daemon that refused to start never logs "stopped serving".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from serve_support import PW1, RawClient, RpcError, demo, private_dir, start_serve, stop_serve

from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass, ReturnValue

pytestmark = pytest.mark.pcsc

PSO_CDS = "002A9E9A"
STUCK_SLOT = (0xFF00 << 32) | 0x10000001
GOOD_SLOT = (0xFF00 << 32) | 0x10000002
SLACK = 3.0


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], path: str, log: Path) -> None:
        self.proc, self.path, self.log = proc, path, log


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*args: str, card_timeout: float) -> Daemon:
        socket_dir = private_dir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
        env.update(PYTHONPATH=str(REPO), OPCARD_PIN=PW1, OPCARD_CARD_TIMEOUT=f"{card_timeout:g}")
        log = tmp_path / f"daemon-{len(started)}.log"
        proc, address = start_serve(
            ["--socket", f"{socket_dir}/pkcs11", "--poll", "0.1", "--log-level", "debug",
             "--login", *args],
            env, log,
        )  # fmt: skip
        started.append((proc, socket_dir))
        return Daemon(proc, address.split("=", 1)[1], log)

    try:
        yield start
    finally:
        for proc, socket_dir in started:
            stop_serve(proc, timeout=15)
            shutil.rmtree(socket_dir, ignore_errors=True)


def _sign(path: str, slot: int, digest: bytes, timeout: float = 60.0) -> bytes:
    with RawClient(path, timeout=timeout) as c:
        c.initialize()
        session = c.open(slot)
        try:
            c.login(session, PW1.encode())
        except RpcError as e:  # the daemon's --login holds it (until the card leaves)
            assert e.rv == ReturnValue.USER_ALREADY_LOGGED_IN
        (key,) = c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: b"\x01"})
        return c.sign(session, key, M.ECDSA, digest, capacity=64)


def _verified(raw: bytes, digest: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    public = demo("demo-ecc")["sig"].public
    public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


class Call(threading.Thread):
    """``fn()`` on a thread: its result or its CK_RV, and how long it took."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.rv: int | None = None
        self.error: BaseException | None = None
        self.elapsed = 0.0
        self.start()

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            self.result = self.fn()
        except RpcError as e:
            self.rv = e.rv
        except BaseException as e:
            self.error = e
        self.elapsed = time.monotonic() - t0


def _good_card_works_meanwhile(path: str, stuck: Call) -> None:
    for i in range(3):
        digest = hashlib.sha256(b"meanwhile %d" % i).digest()
        t0 = time.monotonic()
        _verified(_sign(path, GOOD_SLOT, digest), digest)
        assert time.monotonic() - t0 < 2.0
    with RawClient(path) as c:
        c.initialize()
        assert sorted(c.slots()) == [STUCK_SLOT, GOOD_SLOT]
    assert stuck.is_alive(), "the stuck call should still be waiting"


@pytest.fixture
def two_cards(emulator: Any) -> tuple[Any, Any]:
    stuck = emulator(personalize="demo-ecc", port=35963, silent_on=PSO_CDS)
    good = emulator(personalize="demo-ecc", port=35964, serial=0x10000002)
    return stuck, good


def test_stuck_card_answers_device_error_within_the_bound(
    two_cards: tuple[Any, Any], daemon: Callable[..., Daemon]
) -> None:
    bound = 4.0
    d = daemon(card_timeout=bound)
    stuck_call = Call(lambda: _sign(d.path, STUCK_SLOT, hashlib.sha256(b"x").digest()))
    time.sleep(0.5)
    _good_card_works_meanwhile(d.path, stuck_call)
    stuck_call.join(bound + SLACK + 5)
    assert stuck_call.error is None
    assert stuck_call.rv == ReturnValue.DEVICE_ERROR
    assert bound <= stuck_call.elapsed < bound + SLACK
    # the card still does not answer: the next call says so at once
    t0 = time.monotonic()
    with pytest.raises(RpcError) as e:
        _sign(d.path, STUCK_SLOT, hashlib.sha256(b"y").digest())
    assert e.value.rv == ReturnValue.DEVICE_ERROR
    assert time.monotonic() - t0 < 1.0
    log = d.log.read_text()
    assert "does not answer" in log


def test_card_pulled_in_flight_then_sigterm_while_stuck(
    two_cards: tuple[Any, Any], daemon: Callable[..., Daemon]
) -> None:
    stuck, _good = two_cards
    d = daemon(card_timeout=120)
    # an operation in flight when the card is pulled: CKR_DEVICE_REMOVED
    call = Call(lambda: _sign(d.path, STUCK_SLOT, hashlib.sha256(b"x").digest()))
    time.sleep(1.0)
    assert call.is_alive()
    stuck.stop()
    call.join(15)
    assert call.error is None
    assert call.rv == ReturnValue.DEVICE_REMOVED, call.rv

    # the card comes back (and goes silent again); a client waits on it; SIGTERM: the daemon
    # stops within a bound, not after the card timeout
    stuck.start()
    deadline = time.monotonic() + 15
    while True:
        with RawClient(d.path) as c:
            c.initialize()
            if STUCK_SLOT in c.slots():
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    call = Call(lambda: _sign(d.path, STUCK_SLOT, hashlib.sha256(b"z").digest()))
    time.sleep(1.0)
    _good_card_works_meanwhile(d.path, call)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(20) == 0
    assert time.monotonic() - t0 < 8.0
    call.join(10)
    assert not call.is_alive()
    log = d.log.read_text()
    assert "does not answer: its operation in progress is aborted" in log
    assert "stopped serving on" in log
    assert PW1 not in log


def test_card_silent_from_the_start_is_not_served_and_blocks_no_other(
    emulator: Any, daemon: Callable[..., Daemon]
) -> None:
    """A card that does not answer its SELECT: the daemon's card monitor gives up on it after
    a short look (opcard.serve.pcsc.OPEN_TIMEOUT), says so, and keeps serving the other
    reader — cards there come and go as usual."""
    emulator(personalize="demo-ecc", port=35963, silent_on="00A404")
    good = emulator(personalize="demo-ecc", port=35964, serial=0x10000002)
    t0 = time.monotonic()
    d = daemon(card_timeout=60)
    assert time.monotonic() - t0 < 5.0 + SLACK + 3.0  # the look is bounded, not the 60 s
    assert "not served until it is inserted again" in d.log.read_text()
    digest = hashlib.sha256(b"other").digest()
    _verified(_sign(d.path, GOOD_SLOT, digest), digest)
    good.stop()
    deadline = time.monotonic() + 5
    while True:
        with RawClient(d.path) as c:
            c.initialize()
            if c.slots() == []:
                break
        assert time.monotonic() < deadline, "the monitor should see the other card go"
        time.sleep(0.1)


def test_no_stopped_serving_when_it_never_served(tmp_path: Path) -> None:
    """The daemon refuses to start (socket directory open to others): it says why, and its
    log never claims it served or stopped serving."""
    from click.testing import CliRunner

    from apdu.transport.loopback import LoopbackTransport
    from fixtures.card import OpenPGPCard
    from fixtures.personalize import personalize
    from opcard.card import Card
    from opcard.cli.app import cli
    from opcard.cli.backend import ReaderEntry, use_backend

    class OneCard:
        def open_card(self, *, serial: str | None, reader: str | None) -> Card:
            emu = OpenPGPCard("extended")
            personalize(emu, "demo-ecc")
            emu.power_on()
            return Card(LoopbackTransport(emu.transmit, emu.atr, "Loopback 00", on_power=emu.reset))

        def readers(self) -> list[ReaderEntry]:
            return []

    directory = tmp_path / "public"
    directory.mkdir()
    directory.chmod(0o755)
    env = dict.fromkeys([k for k in os.environ if k.startswith("OPCARD_")])
    with use_backend(OneCard()):
        result = CliRunner(env=env).invoke(
            cli, ["serve", "--socket", f"{directory}/pkcs11", "--log-level", "debug"]
        )
    output = result.output
    assert result.exit_code == 1, output
    assert "open to other users" in output
    assert "token present" in output  # the log was on
    assert "serving on" not in output and "stopped serving" not in output


def test_serve_log_is_escaped() -> None:
    """The daemon's log: a reader name or card text with escapes cannot reach the terminal
    raw, nor forge a log line with a newline."""
    import logging

    from opcard.cli.serve import _EscapingFormatter

    formatter = _EscapingFormatter("%(asctime)s opcard serve: %(message)s")
    record = logging.LogRecord(
        "opcard.serve", logging.INFO, __file__, 1,
        "token present: card %s in %s", ("10000001", "Evil\x1b]0;x\x07\nforged line\u202e"), None,
    )  # fmt: skip
    line = formatter.format(record)
    assert line.endswith(
        "token present: card 10000001 in Evil\\x1b]0;x\\x07\\x0aforged line\\u202e"
    )
    assert "\n" not in line and "\x1b" not in line
