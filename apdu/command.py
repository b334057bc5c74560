"""Command and response APDU values (ISO/IEC 7816-4 §5.1), independent of any transport.

A :class:`Command` is a value: class, instruction, parameters, data and the expected length.
How it is framed on the wire (short or extended lengths, command chaining) is decided by
:mod:`apdu.channel` from what the card declares, so builders never choose a framing.
"""

from __future__ import annotations

from apdu.errors import MalformedResponseError, StatusWordParts, Sw
from apdu.record import Record, field

__all__ = ["SHORT_MAX", "EXTENDED_MAX", "Command", "Response"]

#: Largest Lc/Ne of a short APDU (Le byte 00 means 256).
SHORT_MAX = 256
#: Largest Lc/Ne of an extended APDU (Le 0000 means 65536).
EXTENDED_MAX = 65536


class Command(Record):
    """A command APDU.

    ``le`` is the number of response bytes expected (Ne): ``None`` when no response data is
    expected (no Le field), ``0`` for "as many as the card has" (encoded as the maximum of the
    chosen length form). ``sensitive`` marks a payload that carries secrets (PINs, private key
    material): it is never shown in a log, a repr or an exception.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    sensitive: bool = field(default=False, compare=False)

    # Written out (not the generic Record.__init__): one Command per APDU sent.
    def __init__(
        self,
        cla: int,
        ins: int,
        p1: int,
        p2: int,
        data: bytes = b"",
        le: int | None = None,
        sensitive: bool = False,
    ) -> None:
        for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be a byte, got {value!r}")
        if len(data) > EXTENDED_MAX - 1:
            raise ValueError(f"command data too long: {len(data)} bytes")
        if le is not None and not 0 <= le <= EXTENDED_MAX:
            raise ValueError(f"le must be 0..{EXTENDED_MAX}, got {le!r}")
        set_field = object.__setattr__
        set_field(self, "cla", cla)
        set_field(self, "ins", ins)
        set_field(self, "p1", p1)
        set_field(self, "p2", p2)
        set_field(self, "data", data)
        set_field(self, "le", le)
        set_field(self, "sensitive", sensitive)

    @property
    def header(self) -> bytes:
        """The four header bytes CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def needs_extended(self) -> bool:
        """True when the data or the expected length do not fit a short APDU."""
        return len(self.data) > SHORT_MAX - 1 or (self.le is not None and self.le > SHORT_MAX)

    def encode_short(self) -> bytes:
        """Encode as a short APDU (cases 1 to 4S). Raises ValueError when it does not fit."""
        if len(self.data) > SHORT_MAX - 1:
            raise ValueError(f"{len(self.data)} data bytes do not fit a short APDU")
        out = bytearray(self.header)
        if self.data:
            out.append(len(self.data))
            out += self.data
        if self.le is not None:
            if self.le > SHORT_MAX:
                raise ValueError(f"Ne {self.le} does not fit a short APDU")
            out.append(self.le & 0xFF)  # 0 and 256 both encode as 00
        return bytes(out)

    def encode_extended(self) -> bytes:
        """Encode as an extended APDU (cases 2E to 4E); case 1 stays four bytes."""
        out = bytearray(self.header)
        if self.data:
            out += b"\x00" + len(self.data).to_bytes(2, "big")
            out += self.data
            if self.le is not None:
                out += (self.le & 0xFFFF).to_bytes(2, "big")
        elif self.le is not None:
            out += b"\x00" + (self.le & 0xFFFF).to_bytes(2, "big")
        return bytes(out)

    def with_cla(self, cla: int) -> Command:
        """The same command with another class byte (chaining sets bit 0x10)."""
        return Command(cla, self.ins, self.p1, self.p2, self.data, self.le, self.sensitive)

    def describe(self) -> str:
        """A one-line description safe for logs: the payload is hidden when sensitive."""
        parts = [self.header.hex(), f"lc={len(self.data)}"]
        if self.data:
            parts.append(
                f"<{len(self.data)} bytes redacted>" if self.sensitive else self.data.hex()
            )
        if self.le is not None:
            parts.append(f"le={self.le}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Command({self.describe()})"


class Response(StatusWordParts, Record):
    """A response APDU: data and the status word."""

    data: bytes
    sw: int

    # Written out (not the generic Record.__init__): one Response per APDU received.
    def __init__(self, data: bytes, sw: int) -> None:
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "sw", sw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Response:
        """Split raw response bytes into data and status word (the last two bytes)."""
        if len(raw) < 2:
            raise MalformedResponseError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    @property
    def ok(self) -> bool:
        return self.sw == Sw.OK

    def __bytes__(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def __repr__(self) -> str:
        return f"Response(sw={self.sw:04X}, {len(self.data)} bytes)"
