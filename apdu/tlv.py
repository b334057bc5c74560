"""BER-TLV (ISO/IEC 7816-4 §5.2, X.690 §8.1) parsing and building, strict on malformed input.

Tags are handled as integers of their encoded bytes (``0x7F49``, ``0x5F52``, ``0x9F7F``);
a tag is *constructed* when bit 6 (0x20) of its first byte is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from apdu.errors import TlvError
from apdu.record import Record

__all__ = [
    "MAX_DEPTH",
    "Tlv",
    "build",
    "encode_length",
    "encode_tag",
    "find",
    "find_all",
    "iter_tlv",
    "parse",
    "parse_one",
]

_MAX_TAG_BYTES = 3
_MAX_LENGTH_BYTES = 3  # up to 16 MiB: far beyond any card object
#: Deepest nesting of constructed objects :func:`find_all` descends into.
MAX_DEPTH = 16


class Tlv(Record):
    """One BER-TLV data object: an integer tag and its value bytes."""

    tag: int
    value: bytes

    # Written out (not the generic Record.__init__): parsing makes one per data object.
    def __init__(self, tag: int, value: bytes) -> None:
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "value", value)

    @property
    def constructed(self) -> bool:
        return bool(_first_tag_byte(self.tag) & 0x20)

    @property
    def children(self) -> list[Tlv]:
        """The nested objects of a constructed tag (strictly parsed)."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive and has no children")
        return parse(self.value)

    def __bytes__(self) -> bytes:
        return build(self.tag, self.value)

    def __repr__(self) -> str:
        return f"Tlv({self.tag:X}, {self.value.hex()})"


def _first_tag_byte(tag: int) -> int:
    return tag >> (8 * ((tag.bit_length() - 1) // 8)) if tag else 0


def encode_tag(tag: int) -> bytes:
    """The bytes of a tag given as the integer of its encoding."""
    if tag < 0:
        raise ValueError(f"negative tag {tag}")
    length = max(1, (tag.bit_length() + 7) // 8)
    if length > _MAX_TAG_BYTES:
        raise ValueError(f"tag {tag:X} longer than {_MAX_TAG_BYTES} bytes")
    encoded = tag.to_bytes(length, "big")
    multi = (encoded[0] & 0x1F) == 0x1F
    if multi != (length > 1):
        raise ValueError(f"tag {tag:X} is not a valid BER tag encoding")
    for i, b in enumerate(encoded[1:], start=1):
        last = i == length - 1
        if bool(b & 0x80) == last:
            raise ValueError(f"tag {tag:X} is not a valid BER tag encoding")
    return encoded


def encode_length(length: int) -> bytes:
    """BER definite length: one byte below 128, else 81 xx / 82 xxxx / 83 xxxxxx."""
    if length < 0:
        raise ValueError(f"negative length {length}")
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    if size > _MAX_LENGTH_BYTES:
        raise ValueError(f"length {length} too large")
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def build(tag: int, value: bytes | Iterable[Tlv | bytes] = b"") -> bytes:
    """Encode one data object. ``value`` may be bytes or an iterable of children."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        body = bytes(value)
    else:
        body = b"".join(bytes(child) for child in value)
    return encode_tag(tag) + encode_length(len(body)) + body


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated tag")
    first = data[pos]
    tag = first
    pos += 1
    if (first & 0x1F) == 0x1F:
        for count in range(1, _MAX_TAG_BYTES):
            if pos >= len(data):
                raise TlvError("truncated multi-byte tag")
            b = data[pos]
            pos += 1
            tag = (tag << 8) | b
            if not b & 0x80:
                break
            if count == _MAX_TAG_BYTES - 1:
                raise TlvError("tag longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("truncated length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    size = first & 0x7F
    if size == 0:
        raise TlvError("indefinite length is not allowed")
    if size > _MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {size} bytes")
    if pos + size > len(data):
        raise TlvError("truncated length")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def parse_one(data: bytes, pos: int = 0) -> tuple[Tlv, int]:
    """Parse the object starting at ``pos``; returns it and the offset after it."""
    tag, pos = _read_tag(data, pos)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TlvError(f"tag {tag:X} declares {length} bytes, {len(data) - pos} present")
    return Tlv(tag, bytes(data[pos:end])), end


def iter_tlv(data: bytes) -> Iterator[Tlv]:
    """Iterate over the concatenated objects in ``data`` (strict: no trailing garbage)."""
    pos = 0
    while pos < len(data):
        item, pos = parse_one(data, pos)
        yield item


def parse(data: bytes) -> list[Tlv]:
    """Parse concatenated BER-TLV objects; raises TlvError on any malformation."""
    return list(iter_tlv(data))


def find(data: bytes | Iterable[Tlv], tag: int, *, recursive: bool = True) -> Tlv | None:
    """The first object with ``tag``, searching constructed objects depth-first if asked."""
    for item in find_all(data, tag, recursive=recursive):
        return item
    return None


def find_all(data: bytes | Iterable[Tlv], tag: int, *, recursive: bool = True) -> Iterator[Tlv]:
    """Every object with ``tag``, in document order.

    The search descends at most :data:`MAX_DEPTH` levels of constructed objects; deeper nesting
    (never seen on a card, easy to forge) raises :class:`TlvError` instead of exhausting the
    stack.
    """
    items = parse(bytes(data)) if isinstance(data, (bytes, bytearray, memoryview)) else data
    stack: list[Iterator[Tlv]] = [iter(items)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        if item.tag == tag:
            yield item
        elif recursive and item.constructed:
            if len(stack) > MAX_DEPTH:
                raise TlvError(f"constructed objects nested deeper than {MAX_DEPTH} levels")
            stack.append(iter(item.children))
