"""opcard beside a real GnuPG scdaemon on one card (pcscd + vpcd + the emulated card).

Exclusive (scdaemon's default: no ``pcsc-shared``): after ``gpg --card-status`` scdaemon keeps
the card in SCARD_SHARE_EXCLUSIVE mode, and every entry point of opcard says so, naming the
reader and what to do — ``opcard.open_card()`` with and without reader/serial,
``opcard.list_cards()``/``scan_cards()``, ``opcard status``, ``opcard list``, ``opcard cert
export`` — and ``opcard serve`` keeps a slot for the reader and serves the token once
``gpgconf --kill scdaemon`` lets the card go.

Shared (``pcsc-shared``, which GnuPG 2.2.40 accepts): opcard and GnuPG take turns; opcard
signs with its own login after gpg used the card and never with a PIN GnuPG verified.

The ``gnupg`` fixture (private GNUPGHOME, scdaemon on the emulator's reader) comes from
test_gnupg.py. Fails (never skips) in CI when GnuPG, pcscd or the emulator is missing.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PW1, REPO, require_tool

# the gnupg fixture (a private GNUPGHOME per test) and helpers of test_gnupg.py
from test_gnupg import GnuPG, demo_public_key, gnupg, verify_signature  # noqa: F401

import opcard
from opcard.card import scan_cards
from opcard.errors import CardInUseError, NotLoggedInError
from opcard.serve.slots import held_slot_id

sys.path.insert(0, str(REPO / "tests" / "serve"))
from serve_support import RawClient, private_dir

pytestmark = [pytest.mark.pcsc, pytest.mark.gnupg, pytest.mark.slow]

SERIAL = "0C0FFEE5"
P11_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
REMEDY = (
    "run 'gpgconf --kill scdaemon' (GnuPG lets go until it needs the card again), or put "
    "'pcsc-shared' and 'disable-ccid' in ~/.gnupg/scdaemon.conf so that GnuPG shares the card"
)


def held_by_scdaemon(reader: str) -> str:
    return (
        f"the card in '{reader}' is in exclusive use by another program (GnuPG's scdaemon "
        "holds cards this way, and one is running for this user)"
    )


def exclusive(g: GnuPG) -> GnuPG:
    """scdaemon as GnuPG ships it: no ``pcsc-shared`` (SCARD_SHARE_EXCLUSIVE)."""
    conf = g.home / "scdaemon.conf"
    lines = [line for line in conf.read_text().splitlines() if line != "pcsc-shared"]
    conf.write_text("\n".join(lines) + "\n")
    return g


def kill_scdaemon(g: GnuPG) -> None:
    subprocess.run(
        ["gpgconf", "--kill", "scdaemon"], env=g.env(), capture_output=True, timeout=30, check=True
    )


def opcard_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env["LC_ALL"] = "C"
    return subprocess.run(
        [sys.executable, "-m", "opcard.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def scdaemon_holds(emu: Any, g: GnuPG) -> None:
    """Let scdaemon take the card (gpg --card-status) and check that nobody else can."""
    assert g.card_status()["serial"][0] == SERIAL
    with pytest.raises(ConnectionError, match="Sharing violation"):
        emu.connect()


def test_every_entry_point_names_the_card_scdaemon_holds(
    emulator: Any,
    gnupg: Any,  # noqa: F811
) -> None:
    emu = emulator(personalize="demo", serial=int(SERIAL, 16))
    g = exclusive(gnupg(emu.reader))
    scdaemon_holds(emu, g)
    scan = scan_cards()
    assert emu.reader in scan.held
    assert all(c.reader != emu.reader for c in scan.cards)
    assert all(c.reader != emu.reader for c in opcard.list_cards())
    for how in ({}, {"reader": emu.reader}, {"serial": SERIAL}):
        with pytest.raises(CardInUseError) as raised:
            opcard.open_card(**how)
        assert raised.value.readers == [emu.reader], how
        assert raised.value.scdaemon_running is True
        assert held_by_scdaemon(emu.reader) in str(raised.value), how
        assert str(raised.value).endswith(REMEDY)

    for args in (("status",), ("cert", "export"), ("--serial", SERIAL, "status", "--json")):
        proc = opcard_cli(*args)
        assert proc.returncode == 12, (args, proc.stderr)
        assert proc.stdout == ""
        first, second = proc.stderr.splitlines()
        assert first.startswith("opcard: error: ") and held_by_scdaemon(emu.reader) in first
        assert second == f"opcard: {REMEDY}"
    listing = opcard_cli("list")
    assert listing.returncode == 0, listing.stderr
    assert (
        f"{emu.reader}: card in exclusive use by another program (e.g. GnuPG's scdaemon)"
        in listing.stdout.splitlines()
    )
    assert REMEDY in listing.stderr

    # what the message says to do works
    kill_scdaemon(g)
    status = wait_until(lambda: (p := opcard_cli("status")).returncode == 0 and p, timeout=5)
    assert "Serial number .....: 0C0FFEE5" in status.stdout


class Daemon:
    def __init__(self, proc: subprocess.Popen[bytes], path: str, log: Path) -> None:
        self.proc, self.path, self.log = proc, path, log

    def slots(self, present: bool) -> list[int]:
        with RawClient(self.path) as client:
            client.initialize()
            return client.slots(present=present)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[subprocess.Popen[bytes]] = []
    directories: list[Path] = []

    def start(*args: str) -> Daemon:
        socket_dir = private_dir()
        directories.append(socket_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
        log = tmp_path / "daemon.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "opcard.cli", "serve", "--socket",
                 f"{socket_dir}/pkcs11", *args],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("P11_KIT_SERVER_ADDRESS=unix:path="), (line, log.read_text())
        return Daemon(proc, line.split("=", 2)[2], log)

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for directory in directories:
            subprocess.run(["rm", "-rf", str(directory)], check=False)


def test_serve_keeps_the_slot_and_takes_the_card_when_scdaemon_lets_go(
    emulator: Any,
    gnupg: Any,  # noqa: F811
    daemon: Callable[..., Daemon],
) -> None:
    emu = emulator(personalize="demo-ecc", serial=int(SERIAL, 16))
    g = exclusive(gnupg(emu.reader))
    scdaemon_holds(emu, g)

    # --login has nothing to log in to, and says why
    refused = opcard_cli("serve", "--login", "--pin", PW1, "--socket", "/nonexistent/x")
    assert refused.returncode == 12, refused.stderr
    assert held_by_scdaemon(emu.reader) in refused.stderr

    d = daemon("--poll", "0.2")  # every reader, as a user starts it
    slot = held_slot_id(emu.reader)
    assert d.slots(present=False) == [slot]
    assert d.slots(present=True) == []
    started = d.log.read_text()
    assert "0 card(s) served, 1 held by another program" in started
    # a PKCS#11 application through p11-kit's client sees the reader's slot, without a token
    pkcs11_tool = require_tool("pkcs11-tool")
    env = dict(os.environ, P11_KIT_SERVER_ADDRESS=f"unix:path={d.path}")
    listing = subprocess.run(
        [pkcs11_tool, "--module", P11_CLIENT, "-L"], env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert f"{emu.reader} (card in use by another program)" in listing.stdout
    assert "(empty)" in listing.stdout, listing.stdout
    p11tool = require_tool("p11tool")
    tokens = subprocess.run(
        [p11tool, "--provider", P11_CLIENT, "--list-tokens"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert tokens.returncode == 0, tokens.stderr
    assert tokens.stdout.strip() == ""  # no token while the card is held
    time.sleep(1.0)  # five polls: the card is still held, and the log says so once
    log = d.log.read_text()
    assert log.count("exclusive use by another program") == 1, log
    assert REMEDY in log

    kill_scdaemon(g)
    released = time.monotonic()
    wait_until(lambda: d.slots(present=True) == [slot], timeout=5)
    took = time.monotonic() - released
    assert took < 2.0, took  # scdaemon takes some time to exit; then one poll
    certs = subprocess.run(
        [p11tool, "--provider", P11_CLIENT, "--list-all-certs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert certs.stdout.count("type=cert") == 3, certs.stdout + certs.stderr
    log = d.log.read_text()
    assert "no longer held by another program" in log
    assert "token present: card 0C0FFEE5" in log
    # and now GnuPG, exclusive, is the one refused while opcard serve holds the card (shared)
    refused_gpg = subprocess.run(
        ["gpg", "--batch", "--card-status"], env=g.env(), capture_output=True, text=True
    )
    assert refused_gpg.returncode != 0, refused_gpg.stdout


def test_shared_scdaemon_and_opcard_take_turns(
    emulator: Any,
    gnupg: Any,  # noqa: F811
) -> None:
    """scdaemon with pcsc-shared (the fixture's default) and opcard on one card: each signs in
    turn with its own verification; gpg's verification never serves opcard."""
    emu = emulator(personalize="demo-ecc", serial=int(SERIAL, 16))
    g = gnupg(emu.reader)
    aut = demo_public_key("demo-ecc", "aut")
    sig = demo_public_key("demo-ecc", "sig")
    digest = hashlib.sha256(b"taking turns").digest()
    with opcard.open_card(reader=emu.reader) as card:
        with card.session() as session:
            session.login(PW1)
            signer = session.digest_signer("aut")
            verify_signature(aut, signer.sign_digest(digest, "sha256"), digest)
            # gpg uses the card: reads it (SELECT: the card forgets opcard's verification)
            assert g.card_status()["serial"][0] == SERIAL
            before = emu.commands()
            verify_signature(aut, signer.sign_digest(digest, "sha256"), digest)
            sent = [e.text[:4].upper() for e in emu.log_entries() if e.direction == ">"]
            # INTERNAL AUTHENTICATE → 6982; GET DATA C4 (tries as at our login); VERIFY 82
            # with opcard's own PIN; again → signed
            assert sent[before:] == ["0088", "00CA", "0020", "0088"], sent[before:]
            # gpg signs (it verifies PW1 itself), then opcard again, then gpg again
            reply = g.pksign(digest)
            assert reply.ok, reply.error
            verify_signature(sig, reply.data, digest)
            verify_signature(aut, signer.sign_digest(digest, "sha256"), digest)
            verify_signature(sig, session.sign_digest("sig", digest, "sha256"), digest)
            reply = g.pksign(digest)
            assert reply.ok, reply.error
            verify_signature(sig, reply.data, digest)
            assert session.pin_status()["user"] == 3  # no try lost on either side
        # gpg verified PW1 on the card just now; a session of opcard's that did not log in
        # must not sign, and sends nothing
        with card.session() as fresh:
            before = emu.commands()
            with pytest.raises(NotLoggedInError):
                fresh.sign_digest("aut", digest, "sha256")
            with pytest.raises(NotLoggedInError):
                fresh.sign_digest("sig", digest, "sha256")
            assert emu.commands() == before
    status = g.card_status()
    assert status["pinretry"][0] == "3"
    assert status["sigcount"][0] == "3"  # gpg's two and opcard's one PSO:CDS
    # an admin write of opcard's after gpg used the card (gpg's SELECT dropped opcard's PW3)
    with opcard.open_card(reader=emu.reader) as card, card.session() as admin:
        admin.login_admin("12345678")
        assert g.card_status()["serial"][0] == SERIAL
        admin.set_name("Turn<<Taking")
    with emu.connect() as raw:  # the card holds the new name
        assert b"Turn<<Taking" in raw.get_data(0x65)
        assert raw.get_data(0xC4)[6] == 3  # no admin PIN try lost
    # scdaemon 2.2.40 keeps what it read (no check for changes by others in shared mode)...
    assert g.card_status()["name"][:2] == ["Jane", "Doe"]
    kill_scdaemon(g)  # ...until it starts afresh
    status = wait_until(lambda: _card_status_or_none(g), timeout=10)
    assert status["name"][:2] == ["Taking", "Turn"]


def _card_status_or_none(g: GnuPG) -> dict[str, list[str]] | None:
    try:
        return g.card_status()
    except AssertionError:  # scdaemon still on its way out
        return None
