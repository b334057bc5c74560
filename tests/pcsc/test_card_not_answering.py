"""A card that stops answering in the middle of a command (issue 12, item 4).

The emulator goes silent at the first PSO: COMPUTE DIGITAL SIGNATURE (``--silent-on
002A9E9A``): vpcd, and pcscd's reader with it, then wait for an answer that never comes, as
behind a real reader whose card went mute. Before the fix every later command on that reader
hung until the card was removed. Now the library and the CLI give up within the bound
(``OPCARD_CARD_TIMEOUT`` / ``--card-timeout``) with "the card in READER does not answer",
while a second card in the other reader keeps signing (signatures verified).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PW1, REPO
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key

import opcard
import opcard.errors
from apdu.errors import CardNotAnsweringError, CardRemovedError, TransportError
from apdu.transport.pcsc import PcscTransport
from fixtures.personalize import demo_files
from opcard.errors import CardError

PSO_CDS = "002A9E9A"
BOUND = 2.0
#: What the bound may be exceeded by (thread hand-over, a loaded 2-core CI machine).
SLACK = 3.0


def _sig_public() -> ec.EllipticCurvePublicKey:
    key = load_pem_private_key(demo_files("demo-ecc")["sig_key"].read_bytes(), None)
    public = key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


def _verify(signature_der: bytes, digest: bytes) -> None:
    _sig_public().verify(signature_der, digest, ec.ECDSA(Prehashed(SHA256())))


class Signer(threading.Thread):
    """Signs on the good card again and again while the other card is stuck."""

    def __init__(self, reader: str) -> None:
        super().__init__(daemon=True)
        self.reader = reader
        self.stop = threading.Event()
        self.times: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with opcard.open_card(reader=self.reader) as card, card.session() as session:
                session.login(PW1)
                signer = session.digest_signer("sig")
                i = 0
                while not self.stop.is_set():
                    digest = hashlib.sha256(b"%d" % i).digest()
                    t0 = time.monotonic()
                    _verify(signer.sign_digest_der(digest, "sha256"), digest)
                    self.times.append(time.monotonic() - t0)
                    i += 1
                    time.sleep(0.02)
        except BaseException as e:  # reported by the test
            self.error = e


@pytest.fixture
def two_cards(emulator: Any) -> tuple[Any, Any]:
    stuck = emulator(personalize="demo-ecc", port=35963, silent_on=PSO_CDS)
    good = emulator(personalize="demo-ecc", port=35964, serial=0x10000002)
    return stuck, good


@pytest.mark.parametrize("mode", ["watchdog", "thread"])
def test_library_gives_up_within_the_bound(
    two_cards: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Both ways of bounding a call: the watchdog shutting the context's socket down (the
    default with pcsc-lite), and the transport's own thread (where the socket is unknown)."""
    stuck, good = two_cards
    # the bound from the environment, or (thread mode) from open_card(timeout=)
    api_timeout = BOUND if mode == "thread" else None
    if api_timeout is None:
        monkeypatch.setenv("OPCARD_CARD_TIMEOUT", f"{BOUND:g}")
    if mode == "thread":
        import apdu.transport.pcsc as pcsc_module

        monkeypatch.setattr(pcsc_module, "_socket_fds", lambda: None)
    worker = Signer(good.reader)
    worker.start()
    try:
        card = opcard.open_card(reader=stuck.reader, timeout=api_timeout)
        transport = getattr(card.channel.transport, "inner", card.channel.transport)
        assert isinstance(transport, PcscTransport)
        assert transport.watchdog == (mode == "watchdog")
        session = card.session()
        session.login(PW1)
        signer = session.digest_signer("sig")
        t0 = time.monotonic()
        with pytest.raises(CardError) as info:
            signer.sign_digest_der(hashlib.sha256(b"x").digest(), "sha256")
        elapsed = time.monotonic() - t0
        assert BOUND <= elapsed < BOUND + SLACK
        assert isinstance(info.value, opcard.errors.CardNotAnsweringError)
        assert (info.value.reader, info.value.timeout) == (stuck.reader, BOUND)
        cause = info.value.__cause__
        assert isinstance(cause, CardNotAnsweringError)
        assert f"the card in {stuck.reader!r} does not answer" in str(info.value)
        assert cause.reader == stuck.reader and cause.timeout == BOUND
        # the reader stays blocked inside pcscd: the next command fails at once
        t0 = time.monotonic()
        with pytest.raises(CardError) as again:
            card.refresh()
        assert time.monotonic() - t0 < 0.5
        assert isinstance(again.value.__cause__, CardNotAnsweringError)
        # meanwhile the other card signed, quickly, all verified
        time.sleep(0.3)
        assert worker.error is None
        assert len(worker.times) >= 5 and max(worker.times) < 1.0, worker.times

        # a new connection to the stuck reader (another program, or the next CLI command)
        # is bounded too
        t0 = time.monotonic()
        with (
            pytest.raises(CardNotAnsweringError),
            PcscTransport.open(stuck.reader, timeout=1.0) as t,
        ):
            t.transmit(bytes.fromhex("00CA006E00"))
        assert time.monotonic() - t0 < 1.0 + SLACK

        # pulling the card frees the reader: the stuck call returns, the session says the card
        # is gone (not "does not answer")
        stuck.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                card.refresh()
            except CardError as e:
                if isinstance(e.__cause__, CardNotAnsweringError):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                    continue
                assert isinstance(e.__cause__, TransportError)
                assert not isinstance(e.__cause__, CardNotAnsweringError)
                break
        session.close()
        card.close()
    finally:
        worker.stop.set()
        worker.join(10)
    assert worker.error is None


def test_empty_answer_mode_and_removal_in_flight(emulator: Any) -> None:
    """``--silent-mode empty`` (the card answers zero bytes) blocks vpcd the same way; a card
    pulled while a command is in flight is CardRemovedError, not a malformed answer."""
    emu = emulator(personalize="demo-ecc", silent_on="00CA006E", silent_mode="empty")
    with PcscTransport.open(emu.reader, timeout=30) as t:
        t.transmit(bytes.fromhex("00A4040006D27600012401"))
        outcome: list[BaseException | bytes] = []

        def call() -> None:
            try:
                outcome.append(t.transmit(bytes.fromhex("00CA006E00")))
            except BaseException as e:
                outcome.append(e)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # no answer
        emu.stop()  # pulled while the command is in flight
        thread.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], CardRemovedError), outcome


def _opcard(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    environment["PYTHONPATH"] = str(REPO)
    environment.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "opcard.cli", *args],
        env=environment,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return proc, time.monotonic() - t0


def test_cli_exits_13_within_the_bound(two_cards: tuple[Any, Any], tmp_path: Path) -> None:
    stuck, good = two_cards
    message = tmp_path / "message"
    message.write_bytes(b"hello")
    env = {"OPCARD_PIN": PW1}
    results: dict[str, Any] = {}

    def sign_on_stuck() -> None:
        results["stuck"] = _opcard(
            "--reader", stuck.reader, "--card-timeout", f"{BOUND:g}", "sign", str(message),
            env=env,
        )  # fmt: skip

    thread = threading.Thread(target=sign_on_stuck)
    thread.start()
    time.sleep(1.0)  # the stuck command is waiting now: the other card works meanwhile
    proc, _ = _opcard("--reader", good.reader, "sign", str(message), env=env)
    assert proc.returncode == 0, proc.stderr
    _verify(proc.stdout, hashlib.sha256(b"hello").digest())
    thread.join(60)
    proc, elapsed = results["stuck"]
    stderr = proc.stderr.decode()
    assert proc.returncode == 13, stderr
    assert f"the card in '{stuck.reader}' does not answer" in stderr
    assert "remove the card and insert it again" in stderr
    assert elapsed < BOUND + SLACK + 2.0  # + the interpreter's start

    # every later command on that reader: bounded too (before: hung until the card was pulled),
    # the bound from the environment this time
    proc, elapsed = _opcard("--reader", stuck.reader, "status", env={"OPCARD_CARD_TIMEOUT": "1"})
    assert proc.returncode == 13, proc.stderr
    assert b"does not answer" in proc.stderr
    assert elapsed < 1.0 + SLACK + 2.0

    # `opcard list` names the stuck reader as such (not as "a card without an OpenPGP
    # application") and still lists the card that works
    proc, elapsed = _opcard("list", "--json", env={"OPCARD_CARD_TIMEOUT": "1"})
    assert proc.returncode == 0, proc.stderr
    readers = {r["reader"]: r for r in json.loads(proc.stdout)["readers"]}
    assert readers[stuck.reader]["not_answering"] is True
    assert readers[stuck.reader]["openpgp_card"] is None
    assert readers[good.reader]["not_answering"] is False
    assert readers[good.reader]["openpgp_card"]["serial"] == "10000002"
    assert elapsed < 1.0 + SLACK + 2.0
    proc, _ = _opcard("list", env={"OPCARD_CARD_TIMEOUT": "1"})
    assert f"{stuck.reader}: card that does not answer".encode() in proc.stdout
