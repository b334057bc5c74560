"""Channel: framing, command chaining, 61xx/6Cxx, bounds, logging, transactions, reconnects.

Every test scripts the exact bytes the card must receive and what it answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import apdu.channel
from apdu.channel import MAX_GET_RESPONSE, MAX_RESPONSE_TOTAL, Channel, Framing
from apdu.command import Command
from apdu.errors import (
    ApduError,
    CardNotPresentError,
    CardRemovedError,
    ChainingError,
    MalformedResponseError,
    NotFoundError,
    SecurityStatusNotSatisfiedError,
    UnknownStatusError,
    WrongLengthError,
    WrongPinError,
)
from apdu.log import TRAFFIC, format_command, format_response
from apdu.transport import Transport
from apdu.transport.loopback import LoopbackTransport

AID = bytes.fromhex("D27600012401")
SELECT = Command(0x00, 0xA4, 0x04, 0x00, AID)
GET_6E = Command(0x00, 0xCA, 0x00, 0x6E, le=0)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class Script:
    """A transport that expects exact command bytes and plays scripted answers."""

    name = "scripted"
    atr = h("3B00")

    def __init__(self, *exchanges: tuple[str | bytes, str | bytes]) -> None:
        self.exchanges = [
            (h(c) if isinstance(c, str) else c, h(a) if isinstance(a, str) else a)
            for c, a in exchanges
        ]
        self.sent: list[bytes] = []
        self.begins = 0
        self.ends = 0
        self.depth = 0
        self.reconnects = 0
        self.depth_at_transmit: list[int] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        self.depth_at_transmit.append(self.depth)
        assert self.exchanges, f"unexpected APDU {apdu.hex()}"
        expected, answer = self.exchanges.pop(0)
        assert apdu.hex() == expected.hex()
        return answer

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.begins += 1
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.ends += 1

    def reconnect(self) -> None:
        self.reconnects += 1

    def close(self) -> None:
        pass

    def done(self) -> None:
        assert not self.exchanges, f"{len(self.exchanges)} scripted exchanges left"


def test_transports_satisfy_the_protocol() -> None:
    assert isinstance(Script(), Transport)
    assert isinstance(LoopbackTransport(lambda a: b"\x90\x00", b"\x3b"), Transport)


# --- single APDUs and status words ---------------------------------------------------------


def test_select_and_data() -> None:
    t = Script(("00A4040006 D27600012401", "9000"), ("00CA006E00", "6E03 4F0100 9000"))
    ch = Channel(t)
    assert ch.send(SELECT) == b""
    assert ch.send(GET_6E) == h("6E034F0100")
    assert ch.apdu_count == 2
    t.done()


def test_status_words_raise_with_data_but_send_raw_returns() -> None:
    t = Script(
        ("0020008100", "63C2"),
        ("0020008100", "63C2"),
        ("00CA010100", "0102 6A88"),
        ("00CA010100", "6982"),
    )
    ch = Channel(t)
    verify = Command(0x00, 0x20, 0x00, 0x81, le=0)
    with pytest.raises(WrongPinError) as info:
        ch.send(verify)
    assert info.value.retries == 2
    r = ch.send_raw(verify)
    assert (r.sw, r.data, r.ok) == (0x63C2, b"", False)
    with pytest.raises(NotFoundError) as nf:
        ch.send(Command(0x00, 0xCA, 0x01, 0x01, le=0))
    assert (nf.value.sw, nf.value.data) == (0x6A88, h("0102"))
    with pytest.raises(SecurityStatusNotSatisfiedError):
        ch.send(Command(0x00, 0xCA, 0x01, 0x01, le=0))
    t.done()


@pytest.mark.parametrize(
    ("framing", "le", "wire"),
    [
        (Framing(), 0, "00CA006E 00"),
        (Framing(), 256, "00CA006E 00"),
        (Framing(), 300, "00CA006E 00"),  # capped to a short Le; 61xx does the rest
        (Framing(), 17, "00CA006E 11"),
        (Framing(max_response=128), 0, "00CA006E 80"),
        (Framing(extended=True), 0, "00CA006E 00"),  # max_response 256: short suffices
        (Framing(extended=True, max_response=2048), 0, "00CA006E 00 0800"),
        (Framing(extended=True, max_response=2048), 256, "00CA006E 00"),
        (Framing(extended=True, max_response=2048), 4096, "00CA006E 00 0800"),
        (Framing(extended=True, max_response=65536), 0, "00CA006E 00 0000"),
        (Framing(extended=True, max_response=65536), 65536, "00CA006E 00 0000"),
        (Framing(extended=True, max_response=65536), 257, "00CA006E 00 0101"),
    ],
)
def test_le_encoding(framing: Framing, le: int, wire: str) -> None:
    t = Script((wire, "9000"))
    Channel(t, framing).send(Command(0x00, 0xCA, 0x00, 0x6E, le=le))
    t.done()


def test_framing_validation() -> None:
    for bad in ({"max_command": 0}, {"max_command": 65536}, {"max_response": 0},
                {"max_response": 65537}):  # fmt: skip
        with pytest.raises(ValueError):
            Framing(**bad)  # type: ignore[arg-type]
    assert Framing(max_command=4000).command_block == 255
    assert Framing(extended=True, max_command=4000).command_block == 4000
    assert Framing(max_response=65536).response_block == 256


# --- command chaining ----------------------------------------------------------------------


def test_extended_single_apdu_when_allowed() -> None:
    data = bytes(range(256)) + bytes(44)
    t = Script(("00DB3FFF 00012C" + data.hex(), "9000"))
    Channel(t, Framing(extended=True, max_command=2048, max_response=2048)).send(
        Command(0x00, 0xDB, 0x3F, 0xFF, data)
    )
    t.done()


def test_short_chaining_blocks() -> None:
    data = bytes(range(256)) + bytes(44)  # 300 bytes: 255 + 45
    t = Script(
        ("10DB3FFF FF" + data[:255].hex(), "9000"),
        ("00DB3FFF 2D" + data[255:].hex(), "9000"),
    )
    ch = Channel(t)
    assert ch.send(Command(0x00, 0xDB, 0x3F, 0xFF, data)) == b""
    assert ch.apdu_count == 2
    t.done()


def test_chaining_with_le_on_last_block_only_and_small_max_command() -> None:
    data = bytes(range(250))
    t = Script(
        ("102A8086 64" + data[:100].hex(), "9000"),
        ("102A8086 64" + data[100:200].hex(), "9000"),
        ("002A8086 32" + data[200:].hex() + "00", "AABB 9000"),
    )
    ch = Channel(t, Framing(max_command=100))
    assert ch.send(Command(0x00, 0x2A, 0x80, 0x86, data, le=0)) == h("AABB")
    t.done()


def test_extended_chaining_blocks() -> None:
    data = bytes(i & 0xFF for i in range(5000))
    t = Script(
        ("10DB3FFF 000800" + data[:2048].hex(), "9000"),
        ("10DB3FFF 000800" + data[2048:4096].hex(), "9000"),
        ("00DB3FFF 000388" + data[4096:].hex(), "9000"),
    )
    Channel(t, Framing(extended=True, max_command=2048, max_response=2048)).send(
        Command(0x00, 0xDB, 0x3F, 0xFF, data)
    )
    t.done()


def test_chaining_stops_at_an_intermediate_error() -> None:
    data = bytes(600)
    t = Script(("10DA7F21 FF" + data[:255].hex(), "6A84"))
    ch = Channel(t)
    r = ch.send_raw(Command(0x00, 0xDA, 0x7F, 0x21, data))
    assert r.sw == 0x6A84
    assert ch.apdu_count == 1
    t.done()
    t2 = Script(("10DA7F21 FF" + data[:255].hex(), "6883"))
    with pytest.raises(ApduError) as info:
        Channel(t2).send(Command(0x00, 0xDA, 0x7F, 0x21, data))
    assert info.value.sw == 0x6883  # type: ignore[attr-defined]


def test_no_chaining_no_extended_refused_before_io() -> None:
    t = Script()
    with pytest.raises(ValueError, match="command chaining"):
        Channel(t, Framing(chaining=False)).send(Command(0x00, 0xDA, 0x7F, 0x21, bytes(300)))
    assert t.sent == []


# --- response chaining ---------------------------------------------------------------------


def test_get_response_flow() -> None:
    part1, part2, part3 = bytes(range(256)), bytes(range(255, -1, -1)), h("0102030405")
    t = Script(
        ("00CA7F2100", "6100"),
        ("00C0000000", part1.hex() + "6100"),
        ("00C0000000", part2.hex() + "6105"),
        ("00C0000005", part3.hex() + "9000"),
    )
    ch = Channel(t)
    assert ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0)) == part1 + part2 + part3
    assert ch.apdu_count == 4
    t.done()


def test_data_with_61xx_is_kept() -> None:
    t = Script(("00CA006E00", "AABB 6102"), ("00C0000002", "CCDD 9000"))
    assert Channel(t).send(GET_6E) == h("AABBCCDD")


def test_get_response_ending_in_error_keeps_the_data() -> None:
    t = Script(("00CA006E00", "AA 6101"), ("00C0000001", "BB 6A88"))
    with pytest.raises(NotFoundError) as info:
        Channel(t).send(GET_6E)
    assert info.value.data == h("AABB")


def test_wrong_le_resend_once() -> None:
    t = Script(("00CA006E00", "6C10"), ("00CA006E10", "00" * 16 + "9000"))
    assert Channel(t).send(GET_6E) == bytes(16)
    t = Script(("00A4040006 D27600012401", "6C00"), ("00A4040006 D27600012401 00", "9000"))
    assert Channel(t).send(SELECT) == b""
    t.done()


def test_wrong_le_twice_is_an_error() -> None:
    t = Script(("00CA006E00", "6C10"), ("00CA006E10", "6C08"))
    ch = Channel(t)
    with pytest.raises(ChainingError, match="6C08"):
        ch.send(GET_6E)
    assert ch.apdu_count == 2
    t.done()


def test_wrong_le_then_61xx() -> None:
    t = Script(
        ("00CA006E00", "6C20"),
        ("00CA006E20", "11" * 32 + "6102"),
        ("00C0000002", "2222 9000"),
    )
    assert Channel(t).send(GET_6E) == h("11" * 32 + "2222")


def test_get_response_answered_wrong_le() -> None:
    t = Script(
        ("00CA006E00", "6100"),
        ("00C0000000", "6C05"),
        ("00C0000005", "0102030405 9000"),
    )
    assert Channel(t).send(GET_6E) == h("0102030405")
    t = Script(("00CA006E00", "6100"), ("00C0000000", "6C05"), ("00C0000005", "6C04"))
    with pytest.raises(ChainingError, match="twice"):
        Channel(t).send(GET_6E)


class Forever:
    """A card answering every APDU with the same bytes."""

    name = "forever"
    atr = b"\x3b"

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.count = 0

    def transmit(self, apdu: bytes) -> bytes:
        self.count += 1
        return self.answer

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def reconnect(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_61xx_forever_is_bounded() -> None:
    card = Forever(h("6101"))
    ch = Channel(card)
    with pytest.raises(ChainingError, match="after 300 GET RESPONSE"):
        ch.send(GET_6E)
    assert MAX_GET_RESPONSE == 300
    assert card.count == ch.apdu_count == 1 + MAX_GET_RESPONSE


def test_total_length_is_bounded() -> None:
    card = Forever(bytes(256) + h("6100"))
    ch = Channel(card)
    with pytest.raises(ChainingError, match="exceeded 65536 bytes"):
        ch.send(GET_6E)
    # 256 answers of 256 bytes make exactly 64 KiB (allowed); the 257th crosses the bound
    assert card.count == MAX_RESPONSE_TOTAL // 256 + 1
    small = Channel(Forever(bytes(100) + h("6164")), max_response_total=1000)
    with pytest.raises(ChainingError, match="exceeded 1000 bytes"):
        small.send(GET_6E)
    assert small.apdu_count == 11


def test_a_single_oversized_answer_is_refused() -> None:
    ch = Channel(Forever(bytes(2000) + h("9000")), max_response_total=1024)
    with pytest.raises(ChainingError, match="2000 bytes"):
        ch.send(GET_6E)


def test_more_data_than_asked_is_accepted_and_noted(caplog: pytest.LogCaptureFixture) -> None:
    t = Script(("00CA006E04", "00112233445566778899 9000"), ("00A4040006 D27600012401", "AA9000"))
    ch = Channel(t)
    with caplog.at_level(logging.DEBUG, logger="apdu.channel"):
        assert ch.send(Command(0x00, 0xCA, 0x00, 0x6E, le=4)) == h("00112233445566778899")
        assert ch.send(SELECT) == h("AA")
    notes = [r.getMessage() for r in caplog.records if r.name == "apdu.channel"]
    assert notes == [
        "card answered 10 data bytes where Ne was 4",
        "card answered 1 data bytes where Ne was 0",
    ]


@pytest.mark.parametrize("answer", ["", "90"])
def test_answer_without_status_word(answer: str) -> None:
    with pytest.raises(MalformedResponseError, match="no status word"):
        Channel(Script(("00CA006E00", answer))).send(GET_6E)


def test_intermediate_61xx_is_not_followed() -> None:
    t = Script(("10DA7F21 FF" + "00" * 255, "6110"))
    with pytest.raises(UnknownStatusError):
        Channel(t).send(Command(0x00, 0xDA, 0x7F, 0x21, bytes(300)))
    t.done()


def test_unresolved_wrong_le_status_maps_to_wrong_length() -> None:
    # a chained command whose intermediate block gets 6Cxx: not resent (only last blocks are)
    t = Script(("10DA7F21 FF" + "00" * 255, "6C10"))
    with pytest.raises(WrongLengthError):
        Channel(t).send(Command(0x00, 0xDA, 0x7F, 0x21, bytes(300)))


# --- logging -------------------------------------------------------------------------------


def test_traffic_lines(caplog: pytest.LogCaptureFixture) -> None:
    t = Script(
        ("00A4040006 D27600012401", "9000"),
        ("00CA006E00", "6102"),
        ("00C0000002", "4F00 9000"),
    )
    ch = Channel(t)
    with caplog.at_level(TRAFFIC, logger="apdu.traffic"):
        ch.send(SELECT)
        ch.send(GET_6E)
    lines = [r.getMessage() for r in caplog.records if r.name == "apdu.traffic"]
    assert all(r.levelno == TRAFFIC and r.levelname == "TRAFFIC" for r in caplog.records)
    assert lines[0] == "> 00a4040006 d27600012401"
    assert lines[1].startswith("< 9000 (0 bytes, ") and lines[1].endswith(" ms)")
    assert lines[2] == "> 00ca006e00"
    assert lines[3].startswith("< 6102 (0 bytes")
    assert lines[4] == "> 00c0000002"
    assert lines[5].startswith("< 9000 (2 bytes, ") and lines[5].endswith(" ms) 4f00")


def test_sensitive_commands_are_redacted_in_every_block(caplog: pytest.LogCaptureFixture) -> None:
    pin = b"12345678" * 40  # 320 bytes: two chained blocks
    t = Script(
        (b"\x10\x24\x00\x83\xff" + pin[:255], "9000"),
        (b"\x00\x24\x00\x83\x41" + pin[255:], "6101"),
        ("00C0000001", "07 9000"),
    )
    ch = Channel(t)
    with caplog.at_level(TRAFFIC, logger="apdu.traffic"):
        ch.send(Command(0x00, 0x24, 0x00, 0x83, pin, sensitive=True))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "3132333435" not in text and "12345678" not in text
    lines = text.splitlines()
    assert lines[0] == "> 10240083ff <255 bytes redacted>"
    assert lines[2] == "> 0024008341 <65 bytes redacted>"
    assert lines[-1].endswith("<redacted>") and "07" not in lines[-1].split(")")[-1]


def test_no_formatting_when_traffic_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> str:
        raise AssertionError("formatted a log line with logging off")

    monkeypatch.setattr(apdu.channel, "format_command", boom)
    monkeypatch.setattr(apdu.channel, "format_response", boom)
    logging.getLogger("apdu.traffic").setLevel(logging.WARNING)
    try:
        t = Script(("00A4040006 D27600012401", "9000"))
        Channel(t).send(SELECT)
    finally:
        logging.getLogger("apdu.traffic").setLevel(logging.NOTSET)


def test_format_helpers() -> None:
    wire = h("00A4040006 D27600012401 00")
    assert format_command(wire, 5, 6, False) == "> 00a4040006 d27600012401 00"
    assert format_command(wire, 5, 6, True) == "> 00a4040006 <6 bytes redacted> 00"
    assert format_command(h("00DB3FFF 000003 010203"), 7, 3, True) == (
        "> 00db3fff000003 <3 bytes redacted>"
    )
    assert format_command(h("00CA006E00"), 5, 0, False) == "> 00ca006e00"
    assert format_response(h("0102 9000"), False) == "< 9000 (2 bytes) 0102"
    assert format_response(h("0102 9000"), True, 0.001) == "< 9000 (2 bytes, 1.000 ms) <redacted>"
    assert format_response(b"\x90", False).startswith("< malformed")


# --- transactions --------------------------------------------------------------------------


def test_send_outside_a_transaction_opens_one() -> None:
    t = Script(("00A4040006 D27600012401", "9000"), ("00CA006E00", "6101"), ("00C0000001", "9000"))
    ch = Channel(t)
    ch.send(SELECT)
    ch.send(GET_6E)
    assert (t.begins, t.ends) == (2, 2)
    assert t.depth_at_transmit == [1, 1, 1]


def test_nested_transactions_cost_one() -> None:
    t = Script(*[("00A4040006 D27600012401", "9000")] * 3)
    ch = Channel(t)
    with ch.transaction():
        ch.send(SELECT)
        with ch.transaction():
            ch.send(SELECT)
            with ch.transaction():
                pass
        ch.send(SELECT)
    assert (t.begins, t.ends) == (1, 1)
    assert t.depth_at_transmit == [1, 1, 1]


def test_auto_transaction_off() -> None:
    t = Script(("00A4040006 D27600012401", "9000"))
    ch = Channel(t, auto_transaction=False)
    ch.send(SELECT)
    assert t.begins == 0 and t.depth_at_transmit == [0]


def test_transaction_released_on_exceptions() -> None:
    t = Script(("00CA006E00", "6A88"))
    ch = Channel(t)
    with pytest.raises(NotFoundError), ch.transaction():
        ch.send(GET_6E)
    assert (t.begins, t.ends, t.depth) == (1, 1, 0)


class Applet:
    """A tiny card: SELECT, then GET DATA 6E answers in 61xx pieces; forgets SELECT on power."""

    def __init__(self) -> None:
        self.selected = False
        self.pending = b""
        self.powered = 0
        self.log: list[str] = []

    def power(self) -> None:
        self.powered += 1
        self.selected = False
        self.pending = b""

    def __call__(self, apdu: bytes) -> bytes:
        self.log.append(apdu.hex())
        if apdu[1] == 0xA4:
            self.selected = apdu[5:11] == AID
            return h("9000") if self.selected else h("6A82")
        if not self.selected:
            return h("6985")
        if apdu[1] == 0xCA:
            body = bytes(range(200)) * 2
            self.pending = body[100:]
            return body[:100] + h("6100")
        if apdu[1] == 0xC0:
            if not self.pending:
                return h("6985")
            piece, self.pending = self.pending[:256], self.pending[256:]
            return piece + (
                bytes((0x61, min(len(self.pending), 255))) if self.pending else h("9000")
            )
        return h("6D00")


def loopback() -> tuple[LoopbackTransport, Applet, Channel, list[int]]:
    card = Applet()
    t = LoopbackTransport(card, h("3B8001"), "loop", on_power=card.power)
    selects: list[int] = []
    ch = Channel(t)

    def reselect() -> None:
        selects.append(ch.apdu_count)
        ch.send(SELECT)

    ch.on_reconnect = reselect
    ch.send(SELECT)
    return t, card, ch, selects


def test_removed_card_error_then_reconnect_and_reselect() -> None:
    t, card, ch, selects = loopback()
    assert len(ch.send(GET_6E)) == 400
    t.remove()
    with pytest.raises(CardRemovedError, match="removed from 'loop'"):
        ch.send(GET_6E)
    assert ch.stale
    with pytest.raises(CardNotPresentError):  # still away: the reconnect fails, still stale
        ch.send(GET_6E)
    assert ch.stale and selects == []
    t.insert()
    assert card.powered == 1 and not card.selected
    count = ch.apdu_count
    assert len(ch.send(GET_6E)) == 400  # reconnects, re-selects, then the command
    assert selects == [count] and not ch.stale and ch.reconnects == 1
    assert card.log[-4][:10] == "00a4040006"


def test_reset_by_another_process() -> None:
    t, _card, ch, selects = loopback()
    t.reset()
    with pytest.raises(CardRemovedError, match="reset"):
        ch.send(GET_6E)
    assert len(ch.send(GET_6E)) == 400
    assert len(selects) == 1


def test_loss_inside_a_transaction_fails_the_rest_of_it() -> None:
    t, _card, ch, selects = loopback()
    with pytest.raises(CardRemovedError), ch.transaction():
        ch.send(GET_6E)
        t.reset()
        with pytest.raises(CardRemovedError):
            ch.send(GET_6E)
        ch.send(GET_6E)  # still the same transaction: refused again
    assert ch.stale and selects == []
    with ch.transaction():
        assert selects == [ch.apdu_count - 1]  # re-selected first thing in the transaction
        assert len(ch.send(GET_6E)) == 400


def test_failed_reselect_is_retried() -> None:
    t, card, ch, selects = loopback()
    real = card.__call__
    fail = [True]

    def flaky(apdu: bytes) -> bytes:
        if apdu[1] == 0xA4 and fail[0]:
            fail[0] = False
            return h("6A82")
        return real(apdu)

    t.reset()
    t._card = flaky  # the next SELECT fails once
    with pytest.raises(CardRemovedError):
        ch.send(GET_6E)
    with pytest.raises(NotFoundError):
        ch.send(GET_6E)  # reconnect ok, re-select refused: raised, retried next time
    assert len(ch.send(GET_6E)) == 400
    assert len(selects) == 2 and ch.reconnects == 1


def test_explicit_reconnect_and_invalidate() -> None:
    _t, _card, ch, selects = loopback()
    ch.reconnect()
    assert selects and ch.reconnects == 1
    ch.invalidate()
    assert ch.stale
    ch.send(GET_6E)
    assert ch.reconnects == 2 and len(selects) == 2
    with ch.transaction(), pytest.raises(RuntimeError):
        ch.reconnect()


def test_closed_loopback() -> None:
    t, _card, ch, _selects = loopback()
    t.close()
    with pytest.raises(ApduError, match="closed"):
        ch.send(GET_6E)


def test_threads_do_not_interleave_chains() -> None:
    """Two threads share a channel: each 61xx chain completes without the other's APDUs."""
    _t, _card, ch, _selects = loopback()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(200):
                assert ch.send(GET_6E) == bytes(range(200)) * 2
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ch.apdu_count == 1 + 600 * 3


def test_repr_shows_state_without_io() -> None:
    t, card, ch, _selects = loopback()
    before = len(card.log)
    t.remove()
    assert "loop" in repr(ch)
    assert len(card.log) == before


# --- the emulated card, in process ---------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "framing"),
    [
        ("short", Framing()),
        ("extended", Framing(extended=True, max_command=2048, max_response=2048)),
    ],
)
def test_emulated_card_in_process(profile: str, framing: Framing) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from fixtures.card import OpenPGPCard
    from fixtures.personalize import demo_files, personalize

    card = OpenPGPCard(profile)
    personalize(card, "demo")
    card.power_on()
    t = LoopbackTransport(card.transmit, card.atr, "emulator", on_power=card.reset)
    ch = Channel(t, framing)

    def reselect() -> None:
        ch.send(SELECT)

    ch.on_reconnect = reselect
    ch.send(SELECT)
    files = demo_files("demo")
    for occurrence, slot in ((0, "aut"), (1, "dec"), (2, "sig")):
        der = x509.load_pem_x509_certificate(files[f"{slot}_cert"].read_bytes()).public_bytes(
            Encoding.DER
        )
        ch.send(Command(0x00, 0xA5, occurrence, 0x04, h("60045C027F21")))
        before = ch.apdu_count
        assert ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0)) == der
        # short: 61xx chain; extended: one APDU
        assert (ch.apdu_count - before > 1) == (profile == "short")
    blob = bytes((i * 7) & 0xFF for i in range(1500))
    with pytest.raises(SecurityStatusNotSatisfiedError):
        ch.send(Command(0x00, 0xDA, 0x7F, 0x21, blob))
    ch.send(Command(0x00, 0x20, 0x00, 0x83, b"12345678", sensitive=True))
    before = ch.apdu_count
    ch.send(Command(0x00, 0xDA, 0x7F, 0x21, blob))  # occurrence 2 still selected
    assert ch.apdu_count - before == (6 if profile == "short" else 1)
    ch.send(Command(0x00, 0xA5, 0x02, 0x04, h("60045C027F21")))
    assert ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0)) == blob
    # pulled and re-inserted: PW3 is forgotten, the application re-selected by itself
    t.remove()
    t.insert()
    with pytest.raises(CardRemovedError):
        ch.send(Command(0x00, 0xDA, 0x7F, 0x21, blob))
    with pytest.raises(SecurityStatusNotSatisfiedError):
        ch.send(Command(0x00, 0xDA, 0x7F, 0x21, blob))
    assert ch.reconnects == 1
