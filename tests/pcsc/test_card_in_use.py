"""A card held by another program, through pcscd + vpcd + the emulated card.

The other program is a raw PC/SC connection of the test: exclusive (SCARD_SHARE_EXCLUSIVE, as
GnuPG's scdaemon holds a card by default) for the entry points — ``opcard.open_card()`` with
and without reader/serial, ``list_cards``/``scan_cards``, ``opcard status``/``list``/``cert
export`` and the ``opcard serve`` monitor — and shared, with PC/SC transactions, for taking
turns: opcard's multi-APDU reads run inside a transaction (another client's SELECT DATA
cannot slip in), a one-APDU signature waits for the other client's transaction, re-verifies
its own PIN after the other client's SELECT dropped it, and a PIN the other client verified is
never used by a session that did not log in. tests/thirdparty/test_beside_gnupg.py does the
same with a real scdaemon.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_PORT, PW1, in_ci, reader_for_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import opcard
from apdu.openpgp.constants import KeySlot
from fixtures.personalize import demo_files
from opcard.card import scan_cards
from opcard.cli.app import cli
from opcard.errors import CardInUseError, NoCardError, NotLoggedInError
from opcard.exitcodes import ExitCode
from opcard.pkcs11.rv import ReturnValue
from opcard.serve.pcsc import PcscMonitor
from opcard.serve.slots import Registry, held_slot_id

pytestmark = pytest.mark.pcsc

OTHER_PORT = DEFAULT_PORT + 1
SELECT = bytes.fromhex("00A4040006D27600012401")
SERIAL = 0x0C0FFEE1
REMEDY = (
    "run 'gpgconf --kill scdaemon' (GnuPG lets go until it needs the card again), or put "
    "'pcsc-shared' and 'disable-ccid' in ~/.gnupg/scdaemon.conf so that GnuPG shares the card"
)


def held_message(reader: str) -> str:
    return f"the card in '{reader}' is in exclusive use by another program (GnuPG's scdaemon"


def require_alone(*ours: Any) -> None:
    """Skip (outside CI) or fail (in CI) when a card we did not start is in a reader."""
    readers = {emu.reader for emu in ours}
    scan = scan_cards()
    foreign = [c.reader for c in scan.cards if c.reader not in readers]
    foreign += [r for r in scan.held if r not in readers]
    if foreign:
        what = f"another card is present: {', '.join(foreign)}"
        if in_ci():
            pytest.fail(what)
        pytest.skip(what)


def invoke(*argv: str) -> Any:
    env = {k: None for k in os.environ if k.startswith("OPCARD_")}
    return CliRunner(env=env).invoke(cli, list(argv))


def test_open_card_and_list_cards_name_the_held_reader(emulator: Any, pcsc_connect: Any) -> None:
    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    require_alone(emu)
    holder = pcsc_connect(emu.reader, exclusive=True)
    scan = scan_cards()
    assert scan.held == (emu.reader,)
    assert scan.cards == ()
    assert opcard.list_cards() == []  # list_cards keeps returning the usable cards only
    partial = emu.reader.removeprefix("Virtual ")  # "PCD 00 00": matches one reader
    for how in ({}, {"reader": emu.reader}, {"reader": partial}, {"serial": "0C0FFEE1"}):
        with pytest.raises(CardInUseError) as raised:
            opcard.open_card(**how)
        error = raised.value
        assert isinstance(error, NoCardError)  # no card opcard can use
        assert error.readers == [emu.reader], how
        assert held_message(emu.reader) in str(error), how
        assert str(error).endswith(REMEDY), how
        assert error.return_value == ReturnValue.TOKEN_NOT_PRESENT
    with pytest.raises(CardInUseError, match="the card with serial 0C0FFEE1 is not among"):
        opcard.open_card(serial=SERIAL)
    holder.close()
    assert [c.serial for c in opcard.list_cards()] == ["0C0FFEE1"]
    with opcard.open_card() as card:
        assert card.serial == "0C0FFEE1"


def test_a_usable_card_beside_a_held_one(emulator: Any, pcsc_connect: Any) -> None:
    held = emulator(personalize="demo-ecc", serial=0x11111111)
    free = emulator(personalize="demo-rsa", serial=0x22222222, port=OTHER_PORT)
    assert free.reader == reader_for_port(OTHER_PORT)
    require_alone(held, free)
    holder = pcsc_connect(held.reader, exclusive=True)
    scan = scan_cards()
    assert scan.held == (held.reader,)
    assert [(c.reader, c.serial) for c in scan.cards] == [(free.reader, "22222222")]
    with opcard.open_card() as card:  # the only usable card
        assert card.serial == "22222222"
    with opcard.open_card(serial="22222222") as card:
        assert card.channel.transport.name == free.reader
    with pytest.raises(CardInUseError) as raised:
        opcard.open_card(serial="11111111")
    assert raised.value.readers == [held.reader]
    holder.close()


def test_cli_entry_points_exit_with_card_in_use(emulator: Any, pcsc_connect: Any) -> None:
    emu = emulator(personalize="demo", serial=SERIAL)
    require_alone(emu)
    holder = pcsc_connect(emu.reader, exclusive=True)
    for argv in (
        ("status",),
        ("status", "--json"),
        ("cert", "export", "--slot", "aut"),
        ("--reader", emu.reader, "status"),
        ("--serial", "0C0FFEE1", "cert", "export"),
        ("sign", "--slot", "sig", "--pin", PW1, "-"),
    ):
        result = invoke(*argv)
        assert result.exit_code == ExitCode.CardInUse == 12, (argv, result.output)
        lines = result.stderr.splitlines()
        assert lines[0].startswith("opcard: error: "), argv
        assert held_message(emu.reader) in lines[0], argv
        assert lines[1] == f"opcard: {REMEDY}", argv
        assert result.stdout == "", argv
    listing = invoke("list")
    assert listing.exit_code == 0, listing.output
    assert (
        f"{emu.reader}: card in exclusive use by another program (e.g. GnuPG's scdaemon)"
        in listing.stdout.splitlines()
    )
    assert f"opcard: to use a card in exclusive use: {REMEDY}" in listing.stderr
    doc = json.loads(invoke("list", "--json").stdout)
    (entry,) = [r for r in doc["readers"] if r["reader"] == emu.reader]
    assert entry["in_use_by_another_program"] is True
    assert entry["openpgp_card"] is None
    assert entry["atr"] == emu.atr.hex().upper()
    # the installed command, as a user runs it: its exit status
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "opcard"), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")},
    )
    assert proc.returncode == 12, proc.stderr
    assert held_message(emu.reader) in proc.stderr
    holder.close()
    free = invoke("status")
    assert free.exit_code == 0, free.output
    assert "Serial number .....: 0C0FFEE1" in free.stdout


def test_serve_monitor_keeps_a_slot_and_takes_the_card_when_released(
    emulator: Any,
    pcsc_connect: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    require_alone(emu)
    holder = pcsc_connect(emu.reader, exclusive=True)
    registry = Registry()
    monitor = PcscMonitor(registry, readers=[emu.reader], interval=0.05)
    caplog.set_level(logging.INFO, logger="opcard.serve")
    try:
        with registry.subscribe() as events:
            monitor.scan()
            (slot,) = registry.slots()
            assert slot.slot_id == held_slot_id(emu.reader)
            assert not slot.present and slot.held
            assert slot.description == f"{emu.reader} (card in use by another program)"
            assert monitor.held == [emu.reader]
            error = monitor.in_use_error()
            assert error is not None and error.readers == [emu.reader]
            assert events.pop() == slot.slot_id  # a new slot: clients are told
            # polls every 50 ms, tries to connect every 100 ms: no further log line while held
            monkeypatch.setattr("opcard.serve.pcsc.HELD_RETRY", 0.1)
            monitor.start()
            time.sleep(0.5)
            warnings = [r for r in caplog.records if "exclusive use" in r.getMessage()]
            assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
            assert warnings[0].levelno == logging.WARNING
            assert REMEDY in warnings[0].getMessage()
            assert registry.slots() == [slot] and not slot.present
            released = time.monotonic()
            holder.close()
            assert events.wait(timeout=5) == slot.slot_id
            took = time.monotonic() - released
            assert slot.present and not slot.held, slot
            assert took < 1.0, took  # within a few polls
            assert slot.description == emu.reader
            assert registry.slots() == [slot]  # the same slot, now with the token
            assert slot.card is not None and slot.card.serial == "0C0FFEE1"
            messages = [r.getMessage() for r in caplog.records]
            assert any("no longer held by another program" in m for m in messages), messages
            assert any("token present: card 0C0FFEE1" in m for m in messages), messages
            # the card keeps that slot when it leaves and comes back
            emu.stop()
            monitor.wake()
            assert events.wait(timeout=5) == slot.slot_id
            assert not slot.present
            emu.start()
            monitor.wake()
            assert events.wait(timeout=10) == slot.slot_id
            assert slot.present and registry.slots() == [slot]
    finally:
        monitor.stop()
        registry.close()


def _demo_certificates(variant: str) -> dict[KeySlot, bytes]:
    files = demo_files(variant)
    return {
        slot: x509.load_pem_x509_certificate(
            files[f"{slot.name.lower()}_cert"].read_bytes()
        ).public_bytes(serialization.Encoding.DER)
        for slot in KeySlot
    }


def test_multi_apdu_reads_are_not_interleaved(emulator: Any, pcsc_connect: Any) -> None:
    """Another shared client keeps moving the card's current certificate (SELECT DATA
    occurrence 2, SIG) while opcard reads the three certificates (SELECT DATA + GET DATA + GET
    NEXT DATA twice + SELECT DATA): inside opcard's transaction nothing slips in, so every read
    gives each slot its own certificate."""
    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    expected = _demo_certificates("demo-ecc")
    other = pcsc_connect(emu.reader)
    select_sig = bytes.fromhex("00A502040660045C027F21")
    assert other.transmit(SELECT)[-2:] == b"\x90\x00"
    stop = threading.Event()
    sent = [0]

    def meddle() -> None:
        while not stop.is_set():
            assert other.transmit(select_sig)[-2:] == b"\x90\x00"
            sent[0] += 1

    thread = threading.Thread(target=meddle)
    with opcard.open_card(reader=emu.reader) as card:
        thread.start()
        reads = 0
        deadline = time.monotonic() + 20
        try:
            # until the other client got at least 20 turns between opcard's reads
            while (sent[0] < 20 or reads < 20) and time.monotonic() < deadline:
                card.invalidate()
                assert card.certificates() == expected
                reads += 1
                time.sleep(0.005)
        finally:
            stop.set()
            thread.join()
    assert sent[0] >= 20 and reads >= 20, (sent[0], reads)


def _verify_ecdsa(card: opcard.Card, slot: KeySlot, der: bytes, digest: bytes) -> None:
    public = card.public_key(slot)
    assert public is not None
    key = public.to_cryptography()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def _pw1_tries(conn: Any) -> int:
    return conn.get_data(0xC4)[4]


def test_turns_with_a_shared_client_and_pin_state(emulator: Any, pcsc_connect: Any) -> None:
    """opcard logged in; another shared client takes a transaction, SELECTs the application
    (the card forgets every verified PIN) and keeps the transaction 0.3 s. opcard's one-APDU
    signature waits for it, gets 6982, verifies its own PIN again and signs: the signature
    verifies and no PIN try is lost. Then the other client verifies PW1 itself: a session of
    opcard's that did not log in refuses to sign, sending nothing to the card."""
    from smartcard import scard

    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    other = pcsc_connect(emu.reader)
    digest = hashlib.sha256(b"turns").digest()
    with opcard.open_card(reader=emu.reader) as card:
        with card.session() as session:
            session.login(PW1)
            signer = session.digest_signer("aut")
            _verify_ecdsa(card, KeySlot.AUT, signer.sign_digest_der(digest, "sha256"), digest)
            in_transaction = threading.Event()

            def take_a_turn() -> None:
                assert scard.SCardBeginTransaction(other._card) == scard.SCARD_S_SUCCESS
                try:
                    assert other.transmit(SELECT)[-2:] == b"\x90\x00"
                    in_transaction.set()
                    time.sleep(0.3)
                finally:
                    scard.SCardEndTransaction(other._card, scard.SCARD_LEAVE_CARD)

            thread = threading.Thread(target=take_a_turn)
            thread.start()
            assert in_transaction.wait(5)
            before = emu.commands()
            started = time.monotonic()
            signature = signer.sign_digest_der(digest, "sha256")
            waited = time.monotonic() - started
            thread.join()
            _verify_ecdsa(card, KeySlot.AUT, signature, digest)
            assert waited > 0.15, waited  # it waited for the other client's turn
            sent = [e.text[:4].upper() for e in emu.log_entries() if e.direction == ">"]
            # INTERNAL AUTHENTICATE → 6982, GET DATA C4 (tries as at our login), VERIFY 82
            # (our own PIN), INTERNAL AUTHENTICATE
            assert sent[before:] == ["0088", "00CA", "0020", "0088"], sent[before:]
            assert _pw1_tries(other) == 3
        # another program verifies PW1; a session that did not log in must not use it
        assert other.transmit(bytes.fromhex("0020008206") + PW1.encode())[-2:] == b"\x90\x00"
        with card.session() as fresh:
            before = emu.commands()
            with pytest.raises(NotLoggedInError):
                fresh.sign_digest("aut", digest, "sha256")
            with pytest.raises(NotLoggedInError):
                fresh.digest_signer("aut")
            with pytest.raises(NotLoggedInError):
                fresh.sign("sig", digest, opcard.Mechanism.ECDSA)
            assert emu.commands() == before  # nothing was sent


def test_card_reset_by_another_program_between_signatures(emulator: Any, pcsc_connect: Any) -> None:
    """Another program resets the card (SCardReconnect with SCARD_RESET_CARD): opcard's next
    signature sees SCARD_W_RESET_CARD, reconnects, SELECTs the application again, verifies its
    own PIN again and signs; no PIN try is lost."""
    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    other = pcsc_connect(emu.reader)
    digest = hashlib.sha256(b"after a reset").digest()
    with opcard.open_card(reader=emu.reader) as card, card.session() as session:
        session.login(PW1)
        signer = session.digest_signer("aut")
        _verify_ecdsa(card, KeySlot.AUT, signer.sign_digest_der(digest, "sha256"), digest)
        other.reconnect()  # a warm reset: the card forgets the application and the PINs
        before = emu.commands()
        _verify_ecdsa(card, KeySlot.AUT, signer.sign_digest_der(digest, "sha256"), digest)
        sent = [e.text[:4].upper() for e in emu.log_entries() if e.direction == ">"][before:]
        # SELECT (re-selected after the reconnect), then the signature refused (6982), C4,
        # VERIFY with opcard's own PIN, the signature again
        assert sent[0] == "00A4" and sent[-4:] == ["0088", "00CA", "0020", "0088"], sent
        assert session.pin_status()["user"] == 3


def test_a_roaming_card_that_moves_into_a_held_reader(emulator: Any, pcsc_connect: Any) -> None:
    """A card opened without a reader follows its serial to another reader; when the only
    other card is held there by another program, the error says so (and the command line
    exits 12); once released, the same session goes on there."""
    first = emulator(personalize="demo-ecc", serial=SERIAL)
    require_alone(first)
    digest = hashlib.sha256(b"moving").digest()
    with opcard.open_card(serial=SERIAL) as card, card.session() as session:
        session.login(PW1)
        signer = session.digest_signer("aut")
        _verify_ecdsa(card, KeySlot.AUT, signer.sign_digest_der(digest, "sha256"), digest)
        first.stop()
        moved = emulator(personalize="demo-ecc", serial=SERIAL, port=OTHER_PORT)
        holder = pcsc_connect(moved.reader, exclusive=True)
        with pytest.raises(opcard.CardError):  # the card left its reader
            signer.sign_digest_der(digest, "sha256")
        with pytest.raises(opcard.CardError) as raised:  # it is held where it went
            signer.sign_digest_der(digest, "sha256")
        assert f"another program holds the card in '{moved.reader}' exclusively" in str(
            raised.value
        )
        from opcard.exitcodes import classify

        assert classify(raised.value)[0] is ExitCode.CardInUse
        holder.close()
        _verify_ecdsa(card, KeySlot.AUT, signer.sign_digest_der(digest, "sha256"), digest)
        assert card.channel.transport.name == moved.reader


def test_admin_writes_after_another_programs_select(emulator: Any, pcsc_connect: Any) -> None:
    """Another program's SELECT between opcard's admin login and its write makes the card
    forget PW3: the write (one PC/SC transaction) verifies again with the session's own admin
    PIN and is done; no try is lost. A session without the admin login writes nothing even
    though the other program verified PW3."""
    emu = emulator(personalize="demo-ecc", serial=SERIAL)
    other = pcsc_connect(emu.reader)
    with opcard.open_card(reader=emu.reader) as card:
        with card.session() as session:
            session.login_admin("12345678")
            assert other.transmit(SELECT)[-2:] == b"\x90\x00"
            session.set_name("Turn<<Taking")
            assert other.get_data(0x65).find(b"Turn<<Taking") >= 0
            assert other.get_data(0xC4)[6] == 3  # admin PIN tries
        assert other.transmit(bytes.fromhex("0020008308") + b"12345678")[-2:] == b"\x90\x00"
        with card.session() as fresh:
            before = emu.commands()
            with pytest.raises(NotLoggedInError):
                fresh.set_name("Not<<Mine")
            assert emu.commands() == before
