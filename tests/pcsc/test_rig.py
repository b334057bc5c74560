"""The emulated card through the real stack: pyscard -> pcscd -> vpcd -> emulator process.

Raw bytes only (no driver): what pcscd delivers must be exactly what the card in-process says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.apdulog import read_log
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from fixtures.profiles import PROFILES

pytestmark = pytest.mark.pcsc

SELECT = bytes.fromhex("00A4040006D27600012401")
PROFILE_NAMES = ["extended", "short"]


def _get_data(tag: int, le: int = 0) -> bytes:
    return bytes([0x00, 0xCA, tag >> 8, tag & 0xFF, le])


def _reference_card(profile: str, **kwargs: Any) -> OpenPGPCard:
    card = OpenPGPCard(profile, **kwargs)
    personalize(card, "demo")
    card.power_on()
    return card


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_card_appears_with_the_profile_atr(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile)
    expected = OpenPGPCard(profile).atr
    # pcscd's view of the reader (SCardGetStatusChange) and of the connection (SCardStatus)
    assert emu.atr == expected
    with emu.connect() as conn:
        assert conn.atr == expected
    # ISO 7816-3 TS 3B; the historical bytes' card capabilities (compact-TLV 73) announce the
    # profile's length handling: 0x40 extended Lc/Le, 0x80 command chaining
    assert expected[0] == 0x3B
    i = expected.index(b"\x73\xc0\x01")
    caps3 = expected[i + 3]
    assert bool(caps3 & 0x40) == PROFILES[profile].extended_length
    assert caps3 & 0x80


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_select_and_get_data_round_trip_raw_bytes(emulator: Any, profile: str) -> None:
    serial = 0x12345678
    emu = emulator(profile=profile, serial=serial)
    ref = _reference_card(profile, serial=serial)
    manufacturer = PROFILES[profile].manufacturer.to_bytes(2, "big")
    apdus = [
        SELECT,
        _get_data(0x004F),
        _get_data(0x00C4),
        _get_data(0x0065),
        _get_data(0x006E),  # long: 61xx on the short profile
        bytes.fromhex("00C0000000"),  # GET RESPONSE (or an error where nothing is pending)
        _get_data(0x5F50),
        _get_data(0x0104),  # needs PW3: 6982
    ]
    with emu.connect() as conn:
        for apdu in apdus:
            got = conn.transmit(apdu)
            assert got == ref.transmit(apdu), f"APDU {apdu.hex()}"
        # the AID as the spec lays it out: RID, application, version, manufacturer, serial
        aid = conn.transmit(_get_data(0x004F))
        assert aid == (
            bytes.fromhex("D27600012401")
            + b"\x03\x04"
            + manufacturer
            + serial.to_bytes(4, "big")
            + b"\x00\x00\x90\x00"
        )
        assert conn.transmit(_get_data(0x0104))[-2:] == b"\x69\x82"


def test_restart_is_seen_as_removal_and_insertion(emulator: Any, reader_state: Any) -> None:
    emu = emulator(profile="extended")
    conn = emu.connect()
    try:
        assert conn.transmit(SELECT)[-2:] == b"\x90\x00"
        before = reader_state(emu.reader)[0] >> 16  # pcsc-lite's card event count
        emu.stop()  # returns once pcscd reports the reader empty
        with pytest.raises(ConnectionError):
            conn.transmit(_get_data(0x00C4))  # the card was pulled
        emu.start()  # returns once pcscd reports a card present
        assert reader_state(emu.reader)[0] >> 16 >= before + 2  # one removal, one insertion
        with pytest.raises(ConnectionError):
            conn.transmit(_get_data(0x00C4))  # an old handle stays invalid
    finally:
        conn.close()
    with emu.connect() as fresh:
        assert fresh.transmit(SELECT)[-2:] == b"\x90\x00"
        assert fresh.get_data(0x00C4)[4:] == b"\x03\x00\x03"  # retry counters of a new card


def test_state_file_survives_restart_memory_does_not(emulator: Any, tmp_path: Path) -> None:
    new_name = b"Rig<<Test"
    verify_pw3 = bytes.fromhex("0020008308") + b"12345678"
    put_name = bytes([0x00, 0xDA, 0x00, 0x5B, len(new_name)]) + new_name

    state = tmp_path / "card.json"
    emu = emulator(state=state)
    with emu.connect() as conn:
        assert conn.transmit(SELECT)[-2:] == b"\x90\x00"
        assert conn.transmit(verify_pw3) == b"\x90\x00"
        assert conn.transmit(put_name) == b"\x90\x00"
    assert state.exists()
    emu.restart()
    with emu.connect() as conn:
        conn.transmit(SELECT)
        assert new_name in conn.get_data(0x0065)
        assert conn.transmit(_get_data(0x0104))[-2:] == b"\x69\x82"  # PW3 forgotten on reset
    emu.stop()

    emu2 = emulator()  # in memory: a restart brings back the demo card
    with emu2.connect() as conn:
        conn.transmit(SELECT)
        conn.transmit(verify_pw3)
        assert conn.transmit(put_name) == b"\x90\x00"
    emu2.restart()
    with emu2.connect() as conn:
        conn.transmit(SELECT)
        assert b"Doe<<Jane" in conn.get_data(0x0065)


def test_apdu_log_counts_and_redacts(emulator: Any) -> None:
    emu = emulator(profile="short")
    assert emu.commands() == 0  # pcscd sends no APDU by itself
    new_pw1 = b"314159"
    reset_code = b"27182818"
    after_reset = b"161803"
    key_bytes = bytes((0xA5 + 7 * i) % 256 for i in range(200))
    sent = [
        SELECT,
        bytes.fromhex("0020008206") + b"123456",  # VERIFY PW1 (82)
        bytes.fromhex("002400810C") + b"123456" + new_pw1,  # CHANGE REFERENCE DATA
        bytes.fromhex("0020008308") + b"12345678",  # VERIFY PW3
        bytes.fromhex("00DA00D308") + reset_code,  # PUT DATA reset code
        bytes.fromhex("002C00810E") + reset_code + after_reset,  # RESET RETRY COUNTER
        bytes.fromhex("10DB3FFF") + bytes([len(key_bytes[:100])]) + key_bytes[:100],
        bytes.fromhex("00DB3FFF") + bytes([len(key_bytes[100:])]) + key_bytes[100:],
        bytes.fromhex("10200081") + bytes([len(after_reset)]) + after_reset,  # chained VERIFY
        _get_data(0x00C4),
    ]
    with emu.connect() as conn:
        answers = [conn.transmit(apdu) for apdu in sent]
    assert answers[1][-2:] == b"\x90\x00"
    assert answers[2][-2:] == b"\x90\x00"
    assert answers[5][-2:] == b"\x90\x00"  # the reset code worked: the card saw the real bytes

    assert emu.commands() == len(sent)
    entries = read_log(emu.apdu_log)
    commands = [e.text for e in entries if e.direction == ">"]
    responses = [e.text for e in entries if e.direction == "<"]
    assert len(responses) == len(sent)
    assert commands[0] == SELECT.hex().upper()
    assert commands[1] == "00200082 [redacted: 6 data bytes]"
    assert commands[2] == "00240081 [redacted: 12 data bytes]"
    assert commands[6] == "10DB3FFF [redacted: 100 data bytes]"
    assert commands[8] == "10200081 [redacted: 6 data bytes]"
    assert commands[9] == "00CA00C400"
    text = Path(emu.apdu_log).read_text().upper()
    for secret in (b"123456", b"12345678", new_pw1, reset_code, after_reset, key_bytes[:100]):
        assert secret.hex().upper() not in text
    assert b"123456" not in Path(emu.output).read_bytes()


def test_ready_file_holds_the_pid_while_running(emulator: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    emu = emulator(ready_file=ready)
    assert int(ready.read_text()) == emu.process.pid
    emu.stop()
    assert not ready.exists()
