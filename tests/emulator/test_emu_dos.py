"""PUT DATA / GET DATA of every writable DO with its access rule; certificate occurrences."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from card_apdus import PW1, Driver, apdu, parse_tlv, tlv_dict

SELECT_CERT = bytes.fromhex("60045C027F21")


@pytest.mark.parametrize(
    ("tag", "value", "max_len"),
    [
        (0x005B, b"Doe<<John", 39),
        (0x5F2D, b"deen", 8),
        (0x005E, b"jdoe@example", 255),
        (0x5F50, b"https://example.invalid/k.asc", 255),
    ],
)
def test_admin_dos(fresh: Driver, tag: int, value: bytes, max_len: int) -> None:
    assert fresh.put(tag, value).sw == 0x6982
    fresh.user()
    assert fresh.put(tag, value).sw == 0x6982  # PW1 is not enough
    fresh.admin()
    assert fresh.put(tag, value).sw == 0x9000
    assert fresh.get(tag).data == value
    assert fresh.put(tag, b"x" * (max_len + 1)).sw == 0x6700
    assert fresh.put(tag, b"x" * max_len).sw == 0x9000
    assert fresh.put(tag, b"").sw == 0x9000
    assert fresh.get(tag).data == b""


def test_cardholder_data_in_65(fresh: Driver) -> None:
    fresh.admin()
    fresh.put(0x005B, b"Doe<<Jane")
    fresh.put(0x5F2D, b"en")
    fresh.put(0x5F35, b"2")
    assert fresh.put(0x5F35, b"3").sw == 0x6A80
    assert fresh.put(0x5F35, b"12").sw == 0x6700
    inner = tlv_dict(parse_tlv(fresh.get(0x0065).data)[0][1])
    assert inner == {0x5B: b"Doe<<Jane", 0x5F2D: b"en", 0x5F35: b"2"}
    assert fresh.get(0x5F35).data == b"2"


def test_private_dos_access(fresh: Driver) -> None:
    # reads
    assert fresh.get(0x0101).sw == 0x9000
    assert fresh.get(0x0102).sw == 0x9000
    assert fresh.get(0x0103).sw == 0x6982
    assert fresh.get(0x0104).sw == 0x6982
    # writes
    for tag in (0x0101, 0x0102, 0x0103, 0x0104):
        assert fresh.put(tag, b"v").sw == 0x6982
    fresh.verify(0x81, PW1)  # mode 81 is not 82
    assert fresh.put(0x0101, b"v").sw == 0x6982
    fresh.verify(0x82, PW1)
    assert fresh.put(0x0101, b"one").sw == 0x9000
    assert fresh.put(0x0103, b"three").sw == 0x9000
    assert fresh.put(0x0102, b"two").sw == 0x6982
    assert fresh.put(0x0104, b"four").sw == 0x6982
    assert fresh.get(0x0103).data == b"three"
    fresh.admin()
    assert fresh.put(0x0102, b"two").sw == 0x9000
    assert fresh.put(0x0104, b"four").sw == 0x9000
    assert fresh.get(0x0104).data == b"four"
    assert fresh.put(0x0104, b"y" * 256).sw == 0x6700
    fresh.select()
    assert fresh.get(0x0101).data == b"one"
    assert fresh.get(0x0102).data == b"two"
    assert fresh.get(0x0103).sw == 0x6982
    assert fresh.get(0x0104).sw == 0x6982


def test_fingerprints_times_ca_fingerprints(fresh: Driver) -> None:
    fps = [bytes([i]) * 20 for i in (1, 2, 3)]
    assert fresh.put(0x00C7, fps[0]).sw == 0x6982
    fresh.admin()
    for tag, v in zip((0x00C7, 0x00C8, 0x00C9), fps, strict=True):
        assert fresh.put(tag, v).sw == 0x9000
    assert fresh.get(0x00C5).data == b"".join(fps)
    for tag, v in zip((0x00CA, 0x00CB, 0x00CC), reversed(fps), strict=True):
        assert fresh.put(tag, v).sw == 0x9000
    assert fresh.get(0x00C6).data == b"".join(reversed(fps))
    times = [bytes.fromhex(h) for h in ("683B9800", "683B9801", "683B9802")]
    for tag, v in zip((0x00CE, 0x00CF, 0x00D0), times, strict=True):
        assert fresh.put(tag, v).sw == 0x9000
    assert fresh.get(0x00CD).data == b"".join(times)
    assert fresh.put(0x00C7, bytes(19)).sw == 0x6700
    assert fresh.put(0x00CE, bytes(5)).sw == 0x6700
    # whole lists
    assert fresh.put(0x00C5, bytes(60)).sw == 0x9000
    assert fresh.get(0x00C5).data == bytes(60)
    assert fresh.put(0x00CD, bytes(11)).sw == 0x6700
    # write-only DOs cannot be read; read-only DOs cannot be written
    assert fresh.get(0x00C7).sw == 0x6A88
    for tag in (0x004F, 0x00C0, 0x00DE, 0x006E, 0x0065, 0x00FA, 0x5F52):
        assert fresh.put(tag, b"\x00").sw == 0x6A88


def test_uif(fresh: Driver) -> None:
    fresh.admin()
    assert fresh.put(0x00D6, b"\x01\x20").sw == 0x9000
    assert fresh.get(0x00D6).data == b"\x01\x20"
    assert fresh.put(0x00D7, b"\x05\x20").sw == 0x6A80
    assert fresh.put(0x00D7, b"\x01").sw == 0x6700
    assert fresh.put(0x00D8, b"\x02\x20").sw == 0x9000
    assert fresh.put(0x00D8, b"\x00\x20").sw == 0x6982  # fixed
    dd = tlv_dict(tlv_dict(parse_tlv(fresh.get(0x006E).data)[0][1])[0x73])
    assert (dd[0xD6], dd[0xD7], dd[0xD8]) == (b"\x01\x20", b"\x00\x20", b"\x02\x20")


def test_certificate_occurrences(fresh: Driver) -> None:
    certs = [bytes([0x30, 0x82]) + bytes([i]) * 300 for i in (0xA0, 0xD0, 0x50)]
    assert fresh.put(0x7F21, certs[0]).sw == 0x6982
    fresh.admin()
    for occ, cert in enumerate(certs):
        assert fresh.send(0xA5, occ, 0x04, SELECT_CERT).sw == 0x9000
        assert fresh.put(0x7F21, cert).sw == 0x9000
    # GET DATA reads the selected occurrence
    for occ, cert in enumerate(certs):
        fresh.send(0xA5, occ, 0x04, SELECT_CERT)
        assert fresh.get(0x7F21).data == cert
    # after SELECT: occurrence 0; GET NEXT DATA walks 1, 2, then 6A80
    fresh.select()
    assert fresh.get(0x7F21).data == certs[0]
    assert fresh.send(0xCC, 0x7F, 0x21, le=0).data == certs[1]
    assert fresh.send(0xCC, 0x7F, 0x21, le=0).data == certs[2]
    assert fresh.send(0xCC, 0x7F, 0x21, le=0).sw == 0x6A80
    assert fresh.get(0x7F21).data == certs[2]
    assert fresh.send(0xCC, 0x00, 0x6E, le=0).sw == 0x6A88
    # YubiKey's variant with the extra length byte
    assert fresh.send(0xA5, 0x01, 0x04, b"\x06" + SELECT_CERT).sw == 0x9000
    assert fresh.get(0x7F21).data == certs[1]
    # errors
    assert fresh.send(0xA5, 0x03, 0x04, SELECT_CERT).sw == 0x6A80
    assert fresh.send(0xA5, 0x00, 0x05, SELECT_CERT).sw == 0x6B00
    assert fresh.send(0xA5, 0x00, 0x04, bytes.fromhex("60045C02006E")).sw == 0x6A88
    assert fresh.send(0xA5, 0x00, 0x04, bytes.fromhex("6003")).sw == 0x6A80
    assert fresh.send(0xA5, 0x00, 0x04, b"").sw == 0x6A80


def test_certificate_size_limit(make: Callable[..., Driver], profile: str) -> None:
    d = make(profile)
    limit = d.card.max_cert_size
    assert int.from_bytes(d.get(0x00C0).data[4:6], "big") == limit
    d.admin()
    assert d.put(0x7F21, bytes(limit)).sw == 0x9000
    assert len(d.send(0xCA, 0x7F, 0x21, le=0).data) == limit
    too_big = bytes(limit + 1)
    sw = d.chained(0xDA, 0x7F, 0x21, too_big).sw
    assert sw == 0x6A84
    assert len(d.send(0xCA, 0x7F, 0x21, le=0).data) == limit
    # deleting
    assert d.put(0x7F21, b"").sw == 0x9000
    assert d.send(0xCA, 0x7F, 0x21, le=0).data == b""


def test_put_data_without_select_data_writes_occurrence_0(fresh: Driver) -> None:
    fresh.admin()
    fresh.put(0x7F21, b"aut cert")
    fresh.send(0xA5, 0x00, 0x04, SELECT_CERT)
    assert fresh.get(0x7F21).data == b"aut cert"
    fresh.send(0xA5, 0x02, 0x04, SELECT_CERT)
    assert fresh.get(0x7F21).data == b""


def test_get_data_with_wrong_cla_bits(fresh: Driver) -> None:
    assert fresh.raw(apdu(0xCA, 0x00, 0xC4, le=0, cla=0x01)).sw == 0x6E00
