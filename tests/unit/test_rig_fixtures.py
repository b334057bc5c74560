"""The rig's own pieces without pcscd: the vpcd framing (against a fake vpcd) and the APDU log."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fixtures.apdulog import ApduLog, count_commands, read_log, redact_command
from fixtures.vpcd import VpcdClient, reader_name

PIN = b"123456"
REPO = Path(__file__).resolve().parents[2]


class FakeCard:
    """Records what the vpcd client hands it; answers APDUs with their length and 9000."""

    atr = bytes.fromhex("3B8A80010031C173C8400000900090")

    def __init__(self) -> None:
        self.events: list[str] = []

    def power_on(self) -> None:
        self.events.append("on")

    def power_off(self) -> None:
        self.events.append("off")

    def reset(self) -> None:
        self.events.append("reset")

    def transmit(self, apdu: bytes) -> bytes:
        self.events.append(apdu.hex())
        return len(apdu).to_bytes(2, "big") + b"\x90\x00"


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def _read_frame(conn: socket.socket) -> bytes:
    head = b""
    while len(head) < 2:
        head += conn.recv(2 - len(head))
    n = int.from_bytes(head, "big")
    body = b""
    while len(body) < n:
        body += conn.recv(n - len(body))
    return body


def test_reader_names() -> None:
    assert reader_name(35963) == "Virtual PCD 00 00"
    assert reader_name(35964) == "Virtual PCD 00 01"
    with pytest.raises(ValueError):
        reader_name(35965)


def test_vpcd_protocol_against_fake_vpcd(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    card = FakeCard()
    log = ApduLog(tmp_path / "apdu.log")
    ready = threading.Event()
    client = VpcdClient(card, port=port, apdu_log=log, on_ready=ready.set)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(client.run(connect_timeout=5)))
    thread.start()
    conn, _ = server.accept()
    try:
        conn.settimeout(5)
        conn.sendall(_frame(b"\x04"))  # get ATR
        assert _read_frame(conn) == FakeCard.atr
        assert ready.is_set()
        conn.sendall(_frame(b"\x01"))  # power on: no answer
        # length and payload in two sends, as vpcd does
        apdu = bytes.fromhex("00CA006E00")
        conn.sendall(len(apdu).to_bytes(2, "big"))
        conn.sendall(apdu)
        assert _read_frame(conn) == b"\x00\x05\x90\x00"
        verify = bytes.fromhex("0020008106") + PIN
        conn.sendall(_frame(verify))
        assert _read_frame(conn) == b"\x00\x0b\x90\x00"
        conn.sendall(_frame(b"\x02"))  # reset
        conn.sendall(_frame(b"\x00"))  # power off
        big = b"\x00\xda\x01\x01\x00\x10\x00" + bytes(4096)  # extended Lc
        conn.sendall(_frame(big))
        assert _read_frame(conn) == len(big).to_bytes(2, "big") + b"\x90\x00"
    finally:
        conn.close()  # vpcd goes away: the client returns False (not stopped on request)
        thread.join(5)
        server.close()
        log.close()
    assert result == [False]
    assert card.events == ["on", "00ca006e00", verify.hex(), "reset", "off", big.hex(), "off"]
    text = (tmp_path / "apdu.log").read_text()
    assert PIN.hex() not in text.lower()
    assert count_commands(tmp_path / "apdu.log") == 3
    directions = [e.direction for e in read_log(tmp_path / "apdu.log")]
    assert directions.count("<") == 3


def test_connect_failure_is_clear() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    client = VpcdClient(FakeCard(), port=port)
    from fixtures.vpcd import VpcdError

    with pytest.raises(VpcdError, match="is pcscd running"):
        client.run(connect_timeout=0.3)


@pytest.mark.parametrize(
    ("apdu", "logged"),
    [
        # VERIFY PW1 (short), status query, P1=FF
        ("0020008106313233343536", "00200081 [redacted: 6 data bytes]"),
        ("00200081", "00200081"),
        ("0020008100", "0020008100"),
        # command chaining (CLA 10) keeps the redaction
        ("1020008103313233", "10200081 [redacted: 3 data bytes]"),
        # CHANGE REFERENCE DATA, RESET RETRY COUNTER (both forms)
        ("002400810C313233343536363534333231", "00240081 [redacted: 12 data bytes]"),
        ("002C02810636353433323100", "002C0281 [redacted: 6 data bytes]"),
        # PUT DATA reset code (D3); other PUT DATA stays readable
        ("00DA00D3083132333435363738", "00DA00D3 [redacted: 8 data bytes]"),
        ("00DA005B03414243", "00DA005B03414243"),
        # key import, extended Lc and chained short blocks
        ("00DB3FFF0000044D020000", "00DB3FFF [redacted: 4 data bytes]"),
        ("10DB3FFF044D020000", "10DB3FFF [redacted: 4 data bytes]"),
        # a malformed body is redacted whole, never printed
        ("0020008109313233", "00200081 [redacted: 4 data bytes]"),
        # not sensitive
        ("00A4040006D27600012401", "00A4040006D27600012401"),
    ],
)
def test_redaction(apdu: str, logged: str) -> None:
    assert redact_command(bytes.fromhex(apdu)) == logged


def test_log_lines_are_flushed_and_parse(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    log = ApduLog(path)
    log.command(bytes.fromhex("00A4040006D27600012401"))
    # readable before close: each line is flushed
    assert count_commands(path) == 1
    log.response(bytes.fromhex("9000"))
    log.event("power-off")
    log.close()
    entries = read_log(path)
    assert [(e.direction, e.text) for e in entries] == [
        (">", "00A4040006D27600012401"),
        ("<", "9000"),
        ("*", "power-off"),
    ]


def test_reconnect_waits_for_vpcd_to_come_back() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    card = FakeCard()
    client = VpcdClient(card, port=port)
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(client.run(connect_timeout=5, reconnect=True))
    )
    thread.start()
    try:
        for _ in range(2):  # pcscd goes away and comes back: the card is plugged in again
            conn, _ = server.accept()
            conn.settimeout(5)
            conn.sendall(_frame(b"\x04"))
            assert _read_frame(conn) == FakeCard.atr
            conn.sendall(_frame(b"\x01"))
            conn.sendall(_frame(bytes.fromhex("00CA00C400")))
            assert _read_frame(conn) == b"\x00\x05\x90\x00"
            conn.close()
        conn, _ = server.accept()  # third connection: now stop on request
        client.stop()
        thread.join(5)
        conn.close()
    finally:
        client.stop()
        thread.join(5)
        server.close()
    assert result == [True]
    assert card.events.count("00ca00c400") == 2
    assert card.events[-1] == "off"


def _emulator_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fixtures.emulator", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_emulator_help_lists_profiles_and_personalisations() -> None:
    from fixtures.personalize import DEMO_NAMES
    from fixtures.profiles import PROFILES

    out = _emulator_cli("--help")
    assert out.returncode == 0
    for name, profile in PROFILES.items():
        assert name in out.stdout
        assert profile.description.split()[0] in out.stdout
    for name in DEMO_NAMES:
        assert name in out.stdout
    assert "Virtual PCD 00 00" in out.stdout


def test_emulator_exits_2_with_a_message_when_vpcd_is_unreachable() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = _emulator_cli("--port", str(port), "--connect-timeout", "0.3", "--personalize", "demo")
    assert out.returncode == 2
    assert "cannot connect to vpcd" in out.stderr
    assert "Traceback" not in out.stderr
