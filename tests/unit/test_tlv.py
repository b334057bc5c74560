"""BER-TLV: multi-byte tags, long lengths, constructed objects, strictness, property tests."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import tlv
from apdu.errors import TlvError
from apdu.tlv import Tlv, build, encode_length, encode_tag, find, find_all, parse, parse_one


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- tags and lengths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "encoded"),
    [(0x4F, "4F"), (0x5F52, "5F52"), (0x7F49, "7F49"), (0x7F21, "7F21"), (0x9F7F, "9F7F"),
     (0x5F8101, "5F8101"), (0xC0, "C0"), (0x00, "00")],
)  # fmt: skip
def test_encode_tag(tag: int, encoded: str) -> None:
    assert encode_tag(tag) == h(encoded)
    item, end = parse_one(h(encoded) + b"\x00")
    assert (item.tag, item.value, end) == (tag, b"", len(h(encoded)) + 1)


@pytest.mark.parametrize("tag", [0x1F, 0x4F01, 0x5F81, 0x5F8181, 0x5F818101, -1])
def test_encode_tag_rejects_invalid(tag: int) -> None:
    with pytest.raises(ValueError):
        encode_tag(tag)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (1, "01"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100"),
     (65535, "82FFFF"), (65536, "83010000"), (0xFFFFFF, "83FFFFFF")],
)  # fmt: skip
def test_encode_length(length: int, encoded: str) -> None:
    assert encode_length(length) == h(encoded)


@pytest.mark.parametrize("length", [-1, 0x1000000])
def test_encode_length_rejects(length: int) -> None:
    with pytest.raises(ValueError):
        encode_length(length)


def test_long_lengths_parse() -> None:
    for n in (127, 128, 255, 256, 1000, 70000):
        value = bytes([n & 0xFF]) * n
        data = build(0x7F21, value)
        assert data[:2] == h("7F21")
        assert parse(data) == [Tlv(0x7F21, value)]
    # non-minimal long form is accepted (some cards send 81 05)
    assert parse(h("C0 81 02 0102")) == [Tlv(0xC0, h("0102"))]


# --- constructed objects -------------------------------------------------------------------

# Application related data in the layout of a v3.4 card (shortened discretionary objects).
APP_DATA = h(
    "6E 3F"
    "  4F 10 D2760001240103040006123456780000"
    "  5F52 08 0031C573C0014005"
    "  7F66 08 0202080002020800"
    "  73 15"
    "    C0 0A 7D000BFE080000FF0000"
    "    C4 07 FF202020030003"
)


def test_constructed_navigation() -> None:
    (outer,) = parse(APP_DATA)
    assert outer.tag == 0x6E and outer.constructed
    assert [c.tag for c in outer.children] == [0x4F, 0x5F52, 0x7F66, 0x73]
    aid = find(APP_DATA, 0x4F)
    assert aid is not None and aid.value[:6] == h("D27600012401")
    c4 = find(APP_DATA, 0xC4)
    assert c4 is not None and c4.value == h("FF202020030003")
    assert find(APP_DATA, 0xC4, recursive=False) is None
    assert find(APP_DATA, 0x7F66) == Tlv(0x7F66, h("0202080002020800"))
    assert [t.tag for t in outer.children[2].children] == [0x02, 0x02]
    assert find(APP_DATA, 0xC5) is None
    assert [t.tag for t in find_all(APP_DATA + build(0xC4, b"\x01"), 0xC4)] == [0xC4, 0xC4]
    assert find(memoryview(APP_DATA), 0xC0) is not None
    assert bytes(outer) == APP_DATA


def test_primitive_has_no_children() -> None:
    with pytest.raises(TlvError):
        _ = Tlv(0x4F, b"\x01").children


def test_build_from_children() -> None:
    built = build(0x7F49, [Tlv(0x81, b"\x01\x02"), build(0x82, b"\x03")])
    assert built == h("7F49 07 81020102 820103")
    assert parse(built)[0].children == [Tlv(0x81, b"\x01\x02"), Tlv(0x82, b"\x03")]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    data = b""
    for _ in range(2000):
        data = build(0x30, data)
    assert parse(data)[0].tag == 0x30
    with pytest.raises(TlvError, match="nested deeper"):
        find(data, 0x04)
    shallow = b"\x04\x00"
    for _ in range(tlv.MAX_DEPTH):
        shallow = build(0x30, shallow)
    assert find(shallow, 0x04) == Tlv(0x04, b"")


# --- strictness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("4F", "truncated length"),
        ("5F", "truncated multi-byte tag"),
        ("5F81", "truncated multi-byte tag"),
        ("5F818181", "tag longer than 3 bytes"),
        ("4F 80 0102 0000", "indefinite length"),
        ("4F 84 00000001 00", "length field of 4 bytes"),
        ("4F 82 01", "truncated length"),
        ("4F 05 010203", "declares 5 bytes, 3 present"),
        ("4F 01 01 C0", "truncated length"),  # trailing garbage: a lone tag byte
        ("4F 01 01 C0 02 01", "declares 2 bytes, 1 present"),  # trailing truncated object
    ],
)
def test_malformed(data: str, message: str) -> None:
    with pytest.raises(TlvError, match=message):
        parse(h(data))


def test_malformed_inside_constructed() -> None:
    (outer,) = parse(h("6E 03 4F 05 01"))
    with pytest.raises(TlvError):
        _ = outer.children
    with pytest.raises(TlvError):
        find(h("6E 03 4F 05 01"), 0xC0)


# --- properties ----------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes: a list of objects whose encoding is covered, or TlvError — nothing else."""
    try:
        items = parse(data)
    except TlvError:
        return
    assert sum(len(bytes(item)) for item in items) <= len(data)
    for item in items:
        with contextlib.suppress(TlvError):
            list(find_all([item], 0xC4))


def _tags() -> st.SearchStrategy[int]:
    one = st.integers(0x01, 0xFE).filter(lambda b: b & 0x1F != 0x1F)
    first = st.integers(0, 7).map(lambda c: (c << 5) | 0x1F)
    two = st.builds(lambda f, s: (f << 8) | s, first, st.integers(0x1F, 0x7F))
    three = st.builds(
        lambda f, s, t: (f << 16) | (s << 8) | t,
        first,
        st.integers(0x81, 0xFF),
        st.integers(0, 0x7F),
    )
    return st.one_of(one, two, three)


@given(st.lists(st.tuples(_tags(), st.binary(max_size=400)), max_size=6))
def test_build_parse_round_trip(objects: list[tuple[int, bytes]]) -> None:
    data = b"".join(build(tag, value) for tag, value in objects)
    assert parse(data) == [Tlv(tag, value) for tag, value in objects]
    for item in parse(data):
        assert bytes(item) == build(item.tag, item.value)


_PRIMITIVE = st.integers(0x01, 0xFE).filter(lambda b: b & 0x3F != 0x1F and not b & 0x20)


@given(st.lists(st.tuples(_PRIMITIVE, st.binary(max_size=50)), min_size=1, max_size=5))
def test_nested_round_trip(children: list[tuple[int, bytes]]) -> None:
    inner = [Tlv(tag, value) for tag, value in children]
    data = build(0x7F48, inner)
    (outer,) = parse(data)
    assert outer.children == inner
    for tag, _ in children:
        assert find(data, tag) == next(c for c in inner if c.tag == tag)
