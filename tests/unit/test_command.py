"""Byte-exact encodings of command APDUs (ISO 7816-4 §5.1: cases 1 to 4, short and extended)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.channel import encode
from apdu.command import EXTENDED_MAX, SHORT_MAX, Command, Response
from apdu.errors import MalformedResponseError

AID = bytes.fromhex("D27600012401")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (command, short encoding or None, extended encoding)
CASES = [
    # case 1: header only
    (Command(0x00, 0x44, 0x00, 0x00), "00440000", "00440000"),
    # case 2: Le only
    (Command(0x00, 0xCA, 0x00, 0x6E, le=1), "00CA006E 01", "00CA006E 00 0001"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=255), "00CA006E FF", "00CA006E 00 00FF"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=256), "00CA006E 00", "00CA006E 00 0100"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=0), "00CA006E 00", "00CA006E 00 0000"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=257), None, "00CA006E 00 0101"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=65535), None, "00CA006E 00 FFFF"),
    (Command(0x00, 0xCA, 0x00, 0x6E, le=65536), None, "00CA006E 00 0000"),
    # case 3: data only
    (Command(0x00, 0xA4, 0x04, 0x00, AID), "00A4040006 D27600012401",
     "00A40400 000006 D27600012401"),
    (Command(0x00, 0xDA, 0x00, 0x5B, b"\x41" * 255), "00DA005BFF" + "41" * 255,
     "00DA005B 0000FF" + "41" * 255),
    (Command(0x00, 0xDB, 0x3F, 0xFF, b"\x42" * 256), None, "00DB3FFF 000100" + "42" * 256),
    # case 4: data and Le
    (Command(0x00, 0xA4, 0x04, 0x00, AID, le=0), "00A4040006 D27600012401 00",
     "00A40400 000006 D27600012401 0000"),
    (Command(0x00, 0x2A, 0x9E, 0x9A, b"\x01" * 51, le=256), "002A9E9A33" + "01" * 51 + "00",
     "002A9E9A 000033" + "01" * 51 + "0100"),
    (Command(0x00, 0x2A, 0x80, 0x86, b"\x00" * 300, le=65536), None,
     "002A8086 00012C" + "00" * 300 + "0000"),
    (Command(0x00, 0x2A, 0x80, 0x86, b"\x00" * 10, le=300), None,
     "002A8086 00000A" + "00" * 10 + "012C"),
]  # fmt: skip


@pytest.mark.parametrize(("cmd", "short", "extended"), CASES)
def test_encodings(cmd: Command, short: str | None, extended: str) -> None:
    if short is None:
        assert cmd.needs_extended()
        with pytest.raises(ValueError):
            cmd.encode_short()
    else:
        assert not cmd.needs_extended()
        assert cmd.encode_short() == h(short)
    assert cmd.encode_extended() == h(extended)


@pytest.mark.parametrize(("cmd", "short", "extended"), CASES)
def test_channel_encoder_agrees(cmd: Command, short: str | None, extended: str) -> None:
    """The session's encoder picks the short form whenever it fits, else the extended one."""
    ne = None if cmd.le is None else (cmd.le or (EXTENDED_MAX if short is None else SHORT_MAX))
    if short is not None:
        assert encode(cmd.header, cmd.data, ne, extended=False) == h(short)
        assert encode(cmd.header, cmd.data, ne, extended=True) == h(short)
    else:
        assert encode(cmd.header, cmd.data, ne, extended=True) == h(extended)
        with pytest.raises(ValueError):
            encode(cmd.header, cmd.data, ne, extended=False)


@given(
    data=st.binary(max_size=700),
    le=st.one_of(st.none(), st.integers(min_value=1, max_value=EXTENDED_MAX)),
)
def test_encoder_matches_command(data: bytes, le: int | None) -> None:
    cmd = Command(0x00, 0xDA, 0x01, 0x02, data, le)
    wire = encode(cmd.header, data, le, extended=True)
    assert wire == (cmd.encode_extended() if cmd.needs_extended() else cmd.encode_short())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"ins": -1},
        {"p1": 0x100},
        {"le": EXTENDED_MAX + 1},
        {"le": -1},
        {"data": bytes(EXTENDED_MAX)},
    ],
)
def test_invalid_commands(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"cla": 0, "ins": 0xCA, "p1": 0, "p2": 0x6E}
    args.update(kwargs)
    with pytest.raises(ValueError):
        Command(**args)  # type: ignore[arg-type]


def test_sensitive_payload_is_never_shown() -> None:
    cmd = Command(0x00, 0x20, 0x00, 0x81, b"123456", sensitive=True)
    assert "123456" not in repr(cmd)
    assert b"123456".hex() not in repr(cmd)
    assert "<6 bytes redacted>" in cmd.describe()
    assert cmd.with_cla(0x10).sensitive
    assert cmd.with_cla(0x10).encode_short() == h("1020008106") + b"123456"
    plain = Command(0x00, 0xCA, 0x00, 0x6E, le=0)
    assert plain.describe() == "00ca006e lc=0 le=0"
    assert repr(Command(0, 0xA4, 4, 0, AID)) == "Command(00a40400 lc=6 d27600012401)"


def test_response_values() -> None:
    r = Response.from_bytes(h("0102 9000"))
    assert (r.data, r.sw, r.sw1, r.sw2, r.ok) == (b"\x01\x02", 0x9000, 0x90, 0x00, True)
    assert bytes(r) == h("01029000")
    r = Response.from_bytes(h("6A82"))
    assert (r.data, r.sw, r.ok) == (b"", 0x6A82, False)
    for bad in (b"", b"\x90"):
        with pytest.raises(MalformedResponseError):
            Response.from_bytes(bad)
