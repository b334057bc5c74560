"""The card goes away mid-session (emulator stopped, card reset): a clear CardRemovedError,
then the next operation reconnects and re-selects the application by itself."""

from __future__ import annotations

from typing import Any

import pytest

from apdu.channel import Channel
from apdu.command import Command
from apdu.errors import CardNotPresentError, CardRemovedError, SecurityStatusNotSatisfiedError
from apdu.transport.pcsc import PcscTransport

pytestmark = pytest.mark.pcsc

PORT = 35964
SELECT = Command(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("D27600012401"))
GET_6E = Command(0x00, 0xCA, 0x00, 0x6E, le=0)
PW1 = b"123456"


def open_channel(reader: str) -> tuple[PcscTransport, Channel, list[int]]:
    t = PcscTransport.open(reader)
    ch = Channel(t)
    reselects: list[int] = []

    def reselect() -> None:
        reselects.append(ch.apdu_count)
        ch.send(SELECT)

    ch.on_reconnect = reselect
    ch.send(SELECT)
    return t, ch, reselects


def commands_since_last_connect(emu: Any) -> list[str]:
    """The commands the current emulator card received (its log spans restarts)."""
    entries = emu.log_entries()
    last = max(
        i for i, e in enumerate(entries) if e.direction == "*" and e.text.startswith("connect")
    )
    return [e.text for e in entries[last:] if e.direction == ">"]


@pytest.mark.parametrize("profile", ["short", "extended"])
def test_emulator_stopped_and_started_again(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, port=PORT)
    t, ch, reselects = open_channel(emu.reader)
    try:
        before = ch.send(GET_6E)
        emu.stop()
        with pytest.raises(CardRemovedError) as info:
            ch.send(GET_6E)
        message = str(info.value)
        assert "Virtual PCD 00 01" in message and "removed" in message
        assert ch.stale
        with pytest.raises(CardNotPresentError, match="no card in 'Virtual PCD 00 01'"):
            ch.send(GET_6E)  # still away: the reconnect attempt fails clearly, no hang
        assert ch.stale and reselects == []
        emu.start()
        assert ch.send(GET_6E) == before  # reconnects, re-selects, then the command
        assert len(reselects) == 1 and ch.reconnects == 1 and not ch.stale
        sent = commands_since_last_connect(emu)
        assert sent[0] == "00A4040006D27600012401"  # the new card got SELECT first
        assert sent[1].startswith("00CA006E")
        assert ch.send(GET_6E) == before  # and stays connected
        assert len(reselects) == 1
    finally:
        t.close()


def test_restart_between_operations(emulator: Any) -> None:
    """Card pulled and put back before the next operation: one error, then it works."""
    emu = emulator(profile="short", port=PORT)
    t, ch, reselects = open_channel(emu.reader)
    try:
        before = ch.send(GET_6E)
        emu.restart()
        with pytest.raises(CardRemovedError, match="Virtual PCD 00 01"):
            ch.send(GET_6E)
        assert ch.send(GET_6E) == before
        assert len(reselects) == 1
    finally:
        t.close()


def test_reset_by_another_process_loses_pin_state(emulator: Any, pcsc_connect: Any) -> None:
    emu = emulator(profile="extended", port=PORT)
    t, ch, reselects = open_channel(emu.reader)
    try:
        ch.send(Command(0x00, 0x20, 0x00, 0x82, PW1, sensitive=True))
        assert ch.send_raw(Command(0x00, 0x20, 0x00, 0x82)).sw == 0x9000  # verified
        other = pcsc_connect(emu.reader)
        other.reconnect()  # SCardReconnect with SCARD_RESET_CARD: a warm reset
        with pytest.raises(CardRemovedError, match="was reset"):
            ch.send(Command(0x00, 0xCA, 0x01, 0x01, le=0))
        status = ch.send_raw(Command(0x00, 0x20, 0x00, 0x82))
        assert len(reselects) == 1
        assert status.sw == 0x63C3  # PW1 no longer verified after the reset
        with pytest.raises(SecurityStatusNotSatisfiedError):
            ch.send(Command(0x00, 0xDA, 0x01, 0x01, b"x"))
    finally:
        t.close()
