"""Tiny APDU byte helpers for the emulator tests (independent of apdu/ and of fixtures.ber)."""

from __future__ import annotations

from dataclasses import dataclass

from fixtures.card import OpenPGPCard

AID_PREFIX = bytes.fromhex("D27600012401")
PW1 = b"123456"
PW3 = b"12345678"


def apdu(
    ins: int,
    p1: int = 0,
    p2: int = 0,
    data: bytes = b"",
    le: int | None = None,
    *,
    cla: int = 0x00,
    extended: bool = False,
) -> bytes:
    """Encode a command APDU (ISO 7816-3 12.1). ``le``: None absent, 0 = max."""
    head = bytes([cla, ins, p1, p2])
    if not extended:
        assert len(data) <= 255 and (le is None or le <= 256)
        body = (bytes([len(data)]) + data) if data else b""
        tail = b"" if le is None else bytes([le & 0xFF])
        return head + body + tail
    assert len(data) <= 65535 and (le is None or le <= 65536)
    body = (b"\x00" + len(data).to_bytes(2, "big") + data) if data else b""
    tail = b""
    if le is not None:
        tail = (b"" if data else b"\x00") + (le & 0xFFFF).to_bytes(2, "big")
    return head + body + tail


def tlv(tag: int, value: bytes) -> bytes:
    t = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82]) + n.to_bytes(2, "big")
    return t + ln + value


def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """One level of BER-TLV (test-side parser)."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                b = data[i]
                i += 1
                tag = (tag << 8) | b
                if not b & 0x80:
                    break
        n = data[i]
        i += 1
        if n == 0x81:
            n = data[i]
            i += 1
        elif n == 0x82:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        assert i + n <= len(data), "TLV runs past the end"
        out.append((tag, data[i : i + n]))
        i += n
    return out


def tlv_dict(data: bytes) -> dict[int, bytes]:
    return dict(parse_tlv(data))


@dataclass
class Resp:
    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000


class Driver:
    """Sends APDUs to an in-process card, with explicit GET RESPONSE handling."""

    def __init__(self, card: OpenPGPCard) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def raw(self, command: bytes) -> Resp:
        self.sent.append(command)
        out = self.card.transmit(command)
        assert len(out) >= 2
        assert self.card.last_internal_error is None, repr(self.card.last_internal_error)
        return Resp(out[:-2], int.from_bytes(out[-2:], "big"))

    def send(self, *args: object, **kw: object) -> Resp:
        """Send one APDU and follow 61xx with GET RESPONSE (bounded)."""
        r = self.raw(apdu(*args, **kw))  # type: ignore[arg-type]
        data = r.data
        for _ in range(64):
            if r.sw >> 8 != 0x61:
                break
            r = self.raw(apdu(0xC0, 0, 0, le=r.sw & 0xFF))
            data += r.data
        else:
            raise AssertionError("61xx loop")
        return Resp(data, r.sw)

    def chained(
        self, ins: int, p1: int, p2: int, data: bytes, le: int | None = None, block: int = 255
    ) -> Resp:
        """Command chaining with CLA 10 on all blocks but the last."""
        chunks = [data[i : i + block] for i in range(0, len(data), block)] or [b""]
        for c in chunks[:-1]:
            r = self.raw(apdu(ins, p1, p2, c, cla=0x10))
            assert r.sw == 0x9000, hex(r.sw)
        r = self.raw(apdu(ins, p1, p2, chunks[-1], le))
        data_out = r.data
        while r.sw >> 8 == 0x61:
            r = self.raw(apdu(0xC0, 0, 0, le=r.sw & 0xFF))
            data_out += r.data
        return Resp(data_out, r.sw)

    # conveniences
    def select(self) -> Resp:
        return self.send(0xA4, 0x04, 0x00, AID_PREFIX)

    def get(self, tag: int, le: int = 0) -> Resp:
        return self.send(0xCA, tag >> 8, tag & 0xFF, le=le)

    def put(self, tag: int, value: bytes) -> Resp:
        if len(value) > 255:
            if self.card.profile.extended_length:
                return self.send(0xDA, tag >> 8, tag & 0xFF, value, extended=True)
            return self.chained(0xDA, tag >> 8, tag & 0xFF, value)
        return self.send(0xDA, tag >> 8, tag & 0xFF, value)

    def verify(self, ref: int, pin: bytes) -> Resp:
        return self.send(0x20, 0x00, ref, pin)

    def admin(self) -> None:
        assert self.verify(0x83, PW3).sw == 0x9000

    def user(self) -> None:
        assert self.verify(0x81, PW1).sw == 0x9000
        assert self.verify(0x82, PW1).sw == 0x9000

    def long(self, ins: int, p1: int, p2: int, data: bytes, le: int = 0) -> Resp:
        """Send data of any length the profile's way (extended or chained)."""
        if self.card.profile.extended_length:
            return self.send(ins, p1, p2, data, le, extended=True)
        if len(data) > 255:
            return self.chained(ins, p1, p2, data, le)
        return self.send(ins, p1, p2, data, le)


def constructed(d: Driver, tag: int) -> bytes:
    """GET DATA of a constructed DO -> its content, checking the profile's expected form."""
    r = d.get(tag)
    assert r.ok, hex(r.sw)
    p = d.card.profile
    if p.bare_constructed and tag in (0x6E, 0x65, 0x7A, 0x73):
        assert r.data[:1] != bytes([tag])
        return r.data
    assert r.data[0] == tag
    i = 1
    n = r.data[i]
    i += 1
    if n == 0x81:
        n = r.data[i]
        i += 1
    elif n == 0x82:
        n = int.from_bytes(r.data[i : i + 2], "big")
        i += 2
    content = r.data[i:]
    excess = p.fa_length_excess if tag == 0xFA else 0
    assert n == len(content) + excess
    return content


def application_data(d: Driver) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """(6E level, 73 level) dictionaries; 7F66 is placed where the profile puts it."""
    top = tlv_dict(constructed(d, 0x6E))
    disc = tlv_dict(top[0x73])
    return top, disc


def fpr_list(d: Driver, values: list[bytes], size: int) -> bytes:
    """What C5/C6/CD hold for these entries on this profile (zero-padded to its entry count)."""
    return b"".join(values) + bytes(size * (d.card.profile.fingerprint_entries - len(values)))
