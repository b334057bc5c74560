"""PC/SC transport and Channel through pcscd + vpcd + the emulated card, both profiles.

Uses reader "Virtual PCD 00 01" (port 35964) so that it can run next to tests using the
default port.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from apdu import tlv
from apdu.channel import Channel, Framing
from apdu.command import Command
from apdu.errors import (
    AmbiguousReaderError,
    CardNotPresentError,
    NoReaderError,
    SharingViolationError,
    TransportError,
)
from apdu.log import TRAFFIC
from apdu.transport import ReaderStatus
from apdu.transport import pcsc as pcsc_module
from apdu.transport.pcsc import PcscTransport, list_readers, reader_states, wait_for_card

pytestmark = pytest.mark.pcsc

PORT = 35964
REPO = Path(__file__).resolve().parents[2]
AID = bytes.fromhex("D27600012401")
SELECT = Command(0x00, 0xA4, 0x04, 0x00, AID)
PW3 = b"12345678"

#: What each emulator profile declares (historical bytes / 7F66), as the applet would set it.
FRAMINGS = {
    "short": Framing(),
    "extended": Framing(extended=True, max_command=0x800, max_response=0x800),
}


def demo_certs() -> dict[int, bytes]:
    """The demo certificates by SELECT DATA occurrence (0 AUT, 1 DEC, 2 SIG), DER."""
    base = REPO / "fixtures/demo/demo-rsa"
    return {
        occ: x509.load_pem_x509_certificate((base / f"{slot}-cert.pem").read_bytes()).public_bytes(
            Encoding.DER
        )
        for occ, slot in ((0, "aut"), (1, "dec"), (2, "sig"))
    }


def select_data(occurrence: int) -> Command:
    return Command(0x00, 0xA5, occurrence, 0x04, bytes.fromhex("60045C027F21"))


def commands_after(emu: Any, count: int) -> list[str]:
    """Command APDUs (hex, upper case, as the emulator logged them) after the first ``count``."""
    return [e.text for e in emu.log_entries() if e.direction == ">"][count:]


def test_lists_readers_and_cards(emulator: Any) -> None:
    emu = emulator(profile="extended", port=PORT)
    assert emu.reader in list_readers()
    cards = {s.reader: s for s in reader_states()}
    status = cards[emu.reader]
    assert isinstance(status, ReaderStatus)
    assert status.present and status.atr == emu.atr and not status.exclusive
    assert wait_for_card(emu.reader, 1.0) == emu.atr
    emu.stop()
    cards = {s.reader: s for s in reader_states()}
    assert cards[emu.reader].atr is None and not cards[emu.reader].present
    with pytest.raises(CardNotPresentError, match="Virtual PCD 00 01"):
        wait_for_card(emu.reader, 0.3)
    with pytest.raises(CardNotPresentError, match="no card in 'Virtual PCD 00 01'"):
        PcscTransport.open(emu.reader)
    with pytest.raises(NoReaderError):
        wait_for_card("No Such Reader 99", 0.3)


def test_open_by_name_part_and_errors(emulator: Any) -> None:
    emu = emulator(profile="extended", port=PORT)
    with PcscTransport.open("pcd 00 01") as t:  # a unique, case-insensitive part
        assert t.name == emu.reader
        assert t.atr == emu.atr
        assert "Virtual PCD 00 01" in repr(t)
    assert t.closed
    with pytest.raises(TransportError, match="closed"):
        t.transmit(SELECT.encode_short())
    t.close()  # idempotent
    with pytest.raises(NoReaderError, match="no reader named 'No Such Reader'"):
        PcscTransport.open("No Such Reader")
    with pytest.raises(AmbiguousReaderError, match="several readers"):
        PcscTransport.open("Virtual PCD")


def test_open_without_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """open(None) picks the only reader with a card; none or several is a clear error."""
    states: list[ReaderStatus] = []
    monkeypatch.setattr(pcsc_module, "_readers", lambda ctx: [s.reader for s in states])
    monkeypatch.setattr(pcsc_module, "_states", lambda ctx, readers: list(states))
    monkeypatch.setattr(pcsc_module, "_establish", lambda: object())
    monkeypatch.setattr(pcsc_module, "_release", lambda ctx: None)
    chosen: list[str] = []

    def fake_connect(link: object, reader: str, timeout: float | None) -> tuple[int, bytes]:
        chosen.append(reader)
        raise SharingViolationError("stop here")

    monkeypatch.setattr(PcscTransport, "_connect", staticmethod(fake_connect))
    with pytest.raises(NoReaderError, match="no smartcard reader"):
        PcscTransport.open()
    states[:] = [ReaderStatus("A", None), ReaderStatus("B", b"\x3b\x00")]
    with pytest.raises(SharingViolationError):
        PcscTransport.open()
    assert chosen == ["B"]
    states[0] = ReaderStatus("A", b"\x3b\x01")
    with pytest.raises(AmbiguousReaderError, match="A, B"):
        PcscTransport.open()
    states[:] = [ReaderStatus("A", None)]
    with pytest.raises(CardNotPresentError, match="no card in any reader"):
        PcscTransport.open()


@pytest.mark.parametrize("profile", ["short", "extended"])
def test_select_and_read_through_pcscd(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, port=PORT)
    caps = emu.atr[-5]  # card capabilities byte of the historical bytes (73 C0 01 xx)
    assert bool(caps & 0x40) == (profile == "extended")
    certs = demo_certs()
    with PcscTransport.open(emu.reader) as t:
        ch = Channel(t, FRAMINGS[profile])
        logged = len(commands_after(emu, 0))
        assert ch.send(SELECT) == b""
        app = ch.send(Command(0x00, 0xCA, 0x00, 0x6E, le=0))
        aid = tlv.find(app, 0x4F)
        assert aid is not None and aid.value.startswith(AID)
        for occurrence in (2, 0, 1):
            ch.send(select_data(occurrence))
            assert ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0)) == certs[occurrence]
        sent = commands_after(emu, logged)
        assert len(sent) == ch.apdu_count
    assert sent[0] == "00A4040006D27600012401"
    if profile == "short":
        assert sent[1] == "00CA006E00"
        # every certificate (700+ bytes) comes through a 61xx / GET RESPONSE chain
        reads = [i for i, s in enumerate(sent) if s == "00CA7F2100"]
        assert len(reads) == 3
        assert all(sent[i + 1].startswith("00C00000") for i in reads)
        assert ch.apdu_count > 2 + 3 * 3
    else:
        assert sent[1] == "00CA006E000800"  # one extended APDU, Le = 7F66's 2048
        assert not any(s.startswith("00C0") for s in sent)
        assert ch.apdu_count == 2 + 3 * 2


@pytest.mark.parametrize("profile", ["short", "extended"])
def test_command_chaining_through_pcscd(
    emulator: Any, profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    emu = emulator(profile=profile, port=PORT)
    # 1283 bytes (under the 2048-byte certificate limit); steps of 7 never spell the PIN's hex
    blob = bytes((i * 7 + 3) & 0xFF for i in range(1283))
    with PcscTransport.open(emu.reader) as t, caplog.at_level(TRAFFIC, logger="apdu.traffic"):
        ch = Channel(t, FRAMINGS[profile])
        logged = len(commands_after(emu, 0))
        with ch.transaction():
            ch.send(SELECT)
            ch.send(Command(0x00, 0x20, 0x00, 0x83, PW3, sensitive=True))
            ch.send(select_data(1))
            ch.send(Command(0x00, 0xDA, 0x7F, 0x21, blob))
            ch.send(select_data(1))
            assert ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0)) == blob
        sent = commands_after(emu, logged)
    puts = [s for s in sent if s[2:4] == "DA"]
    if profile == "short":
        assert [s[:10] for s in puts] == ["10DA7F21FF"] * 5 + ["00DA7F2108"]
        assert b"".join(bytes.fromhex(s[10:]) for s in puts) == blob
    else:
        assert puts == ["00DA7F21000503" + blob.hex().upper()]
    traffic = "\n".join(r.getMessage() for r in caplog.records if r.name == "apdu.traffic")
    assert PW3.hex() not in traffic and "<8 bytes redacted>" in traffic
    assert not any(PW3.hex().upper() in s for s in sent)  # the emulator redacts too


def test_sharing_violation_names_the_reader(emulator: Any, pcsc_connect: Any) -> None:
    emu = emulator(profile="extended", port=PORT)
    holder = pcsc_connect(emu.reader, exclusive=True)
    assert {s.reader: s for s in reader_states()}[emu.reader].exclusive
    with pytest.raises(SharingViolationError, match=r"'Virtual PCD 00 01' exclusively"):
        PcscTransport.open(emu.reader)
    holder.close()
    with PcscTransport.open(emu.reader) as t:
        assert Channel(t).send(SELECT) == b""


def test_traffic_log_has_no_formatting_cost_when_off(emulator: Any) -> None:
    emu = emulator(profile="extended", port=PORT, apdu_log=None)
    logging.getLogger("apdu.traffic").setLevel(logging.WARNING)
    try:
        with PcscTransport.open(emu.reader) as t:
            ch = Channel(t)
            with ch.transaction():
                for _ in range(50):
                    ch.send(SELECT)
            assert ch.apdu_count == 50
    finally:
        logging.getLogger("apdu.traffic").setLevel(logging.NOTSET)
