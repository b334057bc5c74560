"""SELECT, GET DATA of the application related data and friends, APDU-level errors."""

from __future__ import annotations

from collections.abc import Callable

from card_apdus import AID_PREFIX, Driver, apdu, application_data, constructed, parse_tlv, tlv_dict

from fixtures.card import OpenPGPCard
from fixtures.profiles import PROFILES


def test_commands_before_select_are_refused() -> None:
    card = OpenPGPCard("extended")
    card.power_on()
    d = Driver(card)
    assert d.raw(apdu(0xCA, 0x00, 0x6E, le=0)).sw == 0x6D00
    assert d.raw(apdu(0x20, 0x00, 0x81, b"123456")).sw == 0x6D00
    assert d.raw(apdu(0xA4, 0x04, 0x00, bytes.fromhex("A000000308"))).sw == 0x6A82
    assert d.select().sw == 0x9000
    assert d.get(0x004F).ok


def test_select_variants(fresh: Driver) -> None:
    aid = fresh.get(0x004F).data
    assert len(aid) == 16 and aid.startswith(AID_PREFIX)
    assert aid[6:8] == b"\x03\x04"  # version 3.4
    # full AID, prefixes between 6 and 16 bytes, P2 0C and 00
    for data in (aid, aid[:6], aid[:10]):
        for p2 in (0x00, 0x0C):
            assert fresh.raw(apdu(0xA4, 0x04, p2, data)).sw == 0x9000
    assert fresh.raw(apdu(0xA4, 0x04, 0x00, AID_PREFIX, le=0)).sw == 0x9000
    assert fresh.raw(apdu(0xA4, 0x04, 0x00, AID_PREFIX[:5])).sw == 0x6A82
    assert fresh.raw(apdu(0xA4, 0x04, 0x00, aid[:15] + b"\x01")).sw == 0x6A82
    assert fresh.raw(apdu(0xA4, 0x00, 0x00, b"\x3f\x00")).sw == 0x6A82
    # a failed SELECT of another application keeps OpenPGP selected
    assert fresh.get(0x00C4).ok


def test_select_resets_verification(fresh: Driver) -> None:
    fresh.admin()
    assert fresh.verify(0x83, b"").sw == 0x9000
    fresh.select()
    assert fresh.verify(0x83, b"").sw == 0x63C3


def test_application_related_data(make: Callable[..., Driver], profile: str) -> None:
    d = make(profile)
    p = PROFILES[profile]
    top, dd = application_data(d)
    assert top[0x4F] == d.card.aid
    assert top[0x4F][8:10] == p.manufacturer.to_bytes(2, "big")
    assert top[0x4F][10:14] == p.serial.to_bytes(4, "big")
    hist = top[0x5F52]
    assert hist == d.card.atr[10:-1]  # ATR historical bytes == 5F52
    assert hist[0] == 0x00 and hist[-3:] == b"\x05\x90\x00"
    caps = hist[hist.index(0x73) + 3]
    assert bool(caps & 0x80) is p.command_chaining
    assert bool(caps & 0x40) is p.extended_length
    if p.extended_length:
        info = parse_tlv(dd[0x7F66] if p.ext_length_in_73 else top[0x7F66])
        assert (0x7F66 in top) is not p.ext_length_in_73
        assert info == [
            (0x02, p.max_command_len.to_bytes(2, "big")),
            (0x02, p.max_response_len.to_bytes(2, "big")),
        ]
    else:
        assert 0x7F66 not in top and 0x7F66 not in dd
        assert d.get(0x7F66).sw == 0x6A88
    assert top[0x7F74] == b"\x81\x01\x20"
    c0 = dd[0xC0]
    assert len(c0) == 10
    assert c0[0] == 0x7D
    assert int.from_bytes(c0[4:6], "big") == p.max_cert_size
    assert c0[9] == 0x01
    assert dd[0xC1] == dd[0xC2] == dd[0xC3] == bytes.fromhex("010800002000")
    assert dd[0xC4] == bytes([0x00 if p.pw1_single_use else 0x01, 0x7F, 0x7F, 0x7F, 3, 0, 3])
    n = p.fingerprint_entries
    assert dd[0xC5] == bytes(20 * n) and dd[0xC6] == bytes(20 * n) and dd[0xCD] == bytes(4 * n)
    assert dd[0xDE] == bytes.fromhex("010002000300")
    assert dd[0xD6] == dd[0xD7] == dd[0xD8] == b"\x00\x20"
    # every simple DO can also be read by itself, with the same value
    for tag in (0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCD, 0xDE, 0xD6, 0xD7, 0xD8):
        assert d.get(tag).data == dd[tag]
    assert d.get(0x5F52).data == hist
    assert constructed(d, 0x0073) == top[0x73]


def test_discretionary_do_alone(fresh: Driver) -> None:
    r = fresh.get(0x0073)
    assert parse_tlv(r.data)[0][0] == 0x73
    inner = tlv_dict(parse_tlv(r.data)[0][1])
    assert set(inner) >= {0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCD, 0xDE}


def test_cardholder_and_security_template(fresh: Driver) -> None:
    assert fresh.get(0x0065).data == bytes.fromhex("65085B005F2D005F3500")
    assert fresh.get(0x007A).data == bytes.fromhex("7A05930300 0000".replace(" ", ""))
    assert fresh.get(0x0093).data == b"\x00\x00\x00"
    for tag in (0x005E, 0x5F50, 0x005B, 0x5F2D, 0x5F35, 0x0101, 0x0102):
        r = fresh.get(tag)
        assert r.sw == 0x9000 and r.data == b""
    assert fresh.get(0x7F21).sw == 0x9000 and fresh.get(0x7F21).data == b""
    assert fresh.get(0x00F9).data == bytes.fromhex("810100")


def test_algorithm_information(fresh: Driver) -> None:
    entries = parse_tlv(constructed(fresh, 0x00FA))
    by_slot: dict[int, list[bytes]] = {}
    for tag, value in entries:
        by_slot.setdefault(tag, []).append(value)
    assert set(by_slot) == {0xC1, 0xC2, 0xC3}
    rsa = [bytes([1]) + bits.to_bytes(2, "big") + b"\x00\x20\x00" for bits in (2048, 3072, 4096)]
    p256 = bytes.fromhex("2A8648CE3D030107")
    ed = bytes.fromhex("2B06010401DA470F01")
    cv = bytes.fromhex("2B060104019755010501")
    for slot in (0xC1, 0xC3):
        assert all(a in by_slot[slot] for a in rsa)
        assert b"\x13" + p256 in by_slot[slot]
        assert b"\x16" + ed in by_slot[slot]
        assert len(by_slot[slot]) == 3 + 7 + 1
    assert b"\x12" + p256 in by_slot[0xC2]
    assert b"\x12" + cv in by_slot[0xC2]
    assert len(by_slot[0xC2]) == 3 + 7 + 1


def test_unknown_do_and_ins_and_cla(fresh: Driver) -> None:
    assert fresh.get(0x1234).sw == 0x6A88
    assert fresh.get(0x00D3).sw == 0x6A88  # reset code is write-only
    assert fresh.raw(apdu(0xB0, 0, 0, le=0)).sw == 0x6D00
    assert fresh.raw(apdu(0xF1, 0, 0, le=0)).sw == 0x6D00
    assert fresh.raw(apdu(0xCA, 0, 0x6E, le=0, cla=0x80)).sw == 0x6E00
    assert fresh.raw(apdu(0xCA, 0, 0x6E, le=0, cla=0x0C)).sw == 0x6E00
    assert fresh.raw(b"\x00\xca").sw == 0x6700
    assert fresh.raw(b"").sw == 0x6700
    # Lc inconsistent with the length
    assert fresh.raw(bytes.fromhex("00DA005B05414243")).sw == 0x6700
    # GET DATA with a data field
    assert fresh.raw(apdu(0xCA, 0x00, 0x6E, b"\x00", le=0)).sw == 0x6700


def test_atr(make: Callable[..., Driver], profile: str) -> None:
    d = make(profile)
    atr = d.card.atr
    assert atr[0] == 0x3B
    k = atr[1] & 0x0F
    assert k == 10
    tck = 0
    for b in atr[1:]:
        tck ^= b
    assert tck == 0  # TCK makes the XOR of T0..TCK zero
    assert atr[-1 - k : -1] == d.get(0x5F52).data


def test_get_challenge(fresh: Driver) -> None:
    a = fresh.send(0x84, 0, 0, le=16)
    b = fresh.send(0x84, 0, 0, le=16)
    assert a.ok and len(a.data) == 16 and a.data != b.data
    c = fresh.send(0x84, 0, 0, le=0)
    assert c.ok and len(c.data) == 255  # the maximum advertised in C0
    assert fresh.raw(apdu(0x84, 0, 0)).sw == 0x6700
    assert fresh.raw(apdu(0x84, 1, 0, le=8)).sw == 0x6B00


def test_serial_override_and_options() -> None:
    card = OpenPGPCard("short", serial=0x12345678, pw1_single_use=False, max_cert_size=999)
    d = Driver(card)
    d.select()
    assert d.get(0x004F).data[10:14] == bytes.fromhex("12345678")
    assert d.get(0x00C4).data[0] == 0x01
    assert int.from_bytes(d.get(0x00C0).data[4:6], "big") == 999
