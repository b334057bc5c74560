"""Card-family profiles (fixtures/profiles.py, docs/cards.md): each family's distinguishing
answers, byte for byte, in process.

Where a public recording of the real card exists, the fresh emulated card must answer exactly
that (serial number, fingerprints and times masked): the application related data of a
YubiKey 5.7 (openpgp-card crate test data), a YubiKey 4, a YubiKey NEO and a ZeitControl
OpenPGP card 2.1 in a Nitrokey Pro (OpenKeychain's SecurityTokenUtilsTest). Everything else is
pinned from the family's source (Gnuk, SmartPGP, ykneo-openpgp, Ledger app-openpgp, yubikit,
GnuPG); the literals below are the sources' bytes, not the profile fields read back.
"""

from __future__ import annotations

import hashlib

import pytest
from card_apdus import PW1, Driver, apdu, parse_tlv, tlv, tlv_dict
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from fixtures.card import OpenPGPCard
from fixtures.personalize import demo_files, personalize
from fixtures.profiles import (
    FAMILY_PROFILES,
    GENERIC_PROFILES,
    PROFILES,
    personalizations,
    supported_pairs,
    supports,
)

SELECT = bytes.fromhex("00A4040006D27600012401")
SELECT_DATA_SIG = bytes.fromhex("00A5020406 60045C027F21".replace(" ", ""))
GET_NEXT_DATA = bytes.fromhex("00CC7F2100")
MSE_AUT_DEC = bytes.fromhex("0022 41A4 03 830102".replace(" ", ""))
GET_VERSION = bytes.fromhex("00F1000000")

ONE_CERT = ("gnuk12", "yubikey-neo", "yubikey4", "zeitcontrol21")
THREE_CERTS = ("ledger", "nitrokey-pro2", "smartpgp", "yubikey5", "zeitcontrol34")


def card_of(profile: str, personalisation: str | None = None) -> Driver:
    card = OpenPGPCard(profile)
    if personalisation:
        personalize(card, personalisation)
    card.power_on()
    d = Driver(card)
    assert d.select().sw == 0x9000
    return d


def masked(app_data: bytes) -> list[tuple[int, bytes]]:
    """6E content (bare or wrapped) as (tag, value) with 73 expanded; the serial number in 4F
    and the contents of C5/C6/CD (fingerprints, times) zeroed, their lengths kept."""
    if app_data[:1] == b"\x6e":
        app_data = parse_tlv(app_data)[0][1]
    out: list[tuple[int, bytes]] = []
    for tag, value in parse_tlv(app_data):
        if tag == 0x73:
            out.append((tag, b""))
            for t, v in parse_tlv(value):
                out.append((t, bytes(len(v)) if t in (0xC5, 0xC6, 0xCD) else v))
        elif tag == 0x4F:
            out.append((tag, value[:10] + bytes(4) + value[14:]))
        else:
            out.append((tag, value))
    return out


def get_6e(d: Driver) -> bytes:
    r = d.get(0x006E)
    assert r.sw == 0x9000
    return r.data


def discretionary(d: Driver) -> dict[int, bytes]:
    """The DOs in 73, read through 6E (some cards answer GET DATA C0/C1 ... only there)."""
    data = get_6e(d)
    if data[:1] == b"\x6e":
        data = parse_tlv(data)[0][1]
    return tlv_dict(tlv_dict(data)[0x73])


# -- recorded answers of real cards -----------------------------------------------------------
# openpgp-card (Rust crate) tests: "Captured from a real YubiKey 5.7 OpenPGP applet (GET DATA
# 006E ...)" -- the same bytes as its test_tlv_yubi5 recording of a YubiKey 5 NFC
YK57_6E = (
    "6e8201374f10d27600012401030400063780684000005f520800730000e00590007f740381012073820110c00a"
    "7d000bfe080000ff0000c106010800001100c206010800001100c306010800001100da06010800001100c40701"
    "7f7f7f030003c550" + "00" * 80 + "c650" + "00" * 80 + "cd10" + "00" * 16 + "de0801000200030081"
    "027f660802020bfe02020bfed6020020d7020020d8020020d9020020"
)
# OpenKeychain SecurityTokenUtilsTest.java (2016): "yk4"
YK4_6E = (
    "6e81dd4f10d27600012401020100060417430400005f520800730000800590007f74038101207381b7c00a3c00"
    "000004c000ff00ffc106010800001100c206010800001100c306010800001100c407ff7f7f7f030003c53c"
    + "00" * 60
    + "c63c"
    + "00" * 60
    + "cd0c"
    + "00" * 12
)
# OpenKeychain SecurityTokenUtilsTest.java: "yk neo ng"
NEO_6E = (
    "6e81de4f10d27600012401020000060364703400005f520f0073000080000000000000000000007381b7c00af0"
    "0000ff04c000ff00ffc106010800001103c206010800001103c306010800001103c407007f7f7f030303c53c"
    + "00" * 60
    + "c63c"
    + "00" * 60
    + "cd0c"
    + "00" * 12
)
# OpenKeychain SecurityTokenUtilsTest.java: "nitrokey pro" (a ZeitControl OpenPGP card 2.1);
# the card sends 6E without its outer tag
ZC21_6E = (
    "4f10d2760001240102010005000038a100005f520a0031c573c001400590007381b7c00a7c0008000800080008"
    "00c106010800002000c206010800002000c306010800002000c40700202020030003c53c"
    + "00" * 60
    + "c63c"
    + "00" * 60
    + "cd0c"
    + "00" * 12
)


@pytest.mark.parametrize(
    ("profile", "recorded"),
    [
        ("yubikey5", YK57_6E),
        ("yubikey4", YK4_6E),
        ("yubikey-neo", NEO_6E),
        ("zeitcontrol21", ZC21_6E),
    ],
)
def test_application_related_data_is_the_recorded_one(profile: str, recorded: str) -> None:
    d = card_of(profile)
    ours = get_6e(d)
    rec = bytes.fromhex(recorded)
    assert masked(ours) == masked(rec)
    # wrapped or bare exactly as recorded, with the same length encoding
    assert len(ours) == len(rec)
    assert ours[:1] == rec[:1]


def test_gnuk_application_related_data_as_its_source_builds_it() -> None:
    """Gnuk 1.2.1 src/openpgp-do.c: GET DATA answers compound DOs without their tag
    (gpg_do_get_data(tag, 0)); cmp_app_data = 4F, 5F52, 73; cmp_discretionary = C0 C1 C2 C3
    C4 C5 C6 CD; 73 with a 81 length; C0 74 00 0020 0800 00FF 0100 (v2 layout: max command
    and response data); RSA-2048 with a 32-bit exponent field; C4 00 7F7F7F 03 00 03."""
    d = card_of("gnuk12")
    ours = get_6e(d)
    assert ours[:2] == b"\x4f\x10"
    top = parse_tlv(ours)
    assert [t for t, _ in top] == [0x4F, 0x5F52, 0x73]
    aid = top[0][1]
    assert aid[:10] == bytes.fromhex("D276000124010200FFFE")  # version 2.0, vendor FFFE
    assert top[1][1] == bytes.fromhex("00318473800180009000")
    assert ours[ours.index(b"\x73\x81") : ours.index(b"\x73\x81") + 2] == b"\x73\x81"
    disc = parse_tlv(top[2][1])
    assert [t for t, _ in disc] == [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCD]
    assert disc[0][1] == bytes.fromhex("74000020080000FF0100")
    assert disc[1][1] == bytes.fromhex("010800002000")
    assert disc[4][1] == bytes.fromhex("007F7F7F030003")
    # and 65 leaves out what is empty (copy_do of a NULL DO_VAR copies nothing)
    assert d.get(0x0065).data == b""
    assert d.put(0x005B, b"Doe<<Jane").sw == 0x6982  # needs PW3, as on any card
    d.admin()
    assert d.put(0x005B, b"Doe<<Jane").sw == 0x9000
    assert d.get(0x0065).data == tlv(0x5B, b"Doe<<Jane")


def test_ledger_application_related_data_as_its_source_builds_it() -> None:
    """LedgerHQ app-openpgp src/gpg_data.c gpg_apdu_get_data(0x6E): 4F, (no 5F52: the define
    WITH_HISTO_BYTES_IN_ARD is off in the Makefile), 7F66 {02 02 00FE, 02 02 00FE}, 73 {C0 C1
    C2 C3 C4 C5 C6 CD}, no outer tag; src/gpg_init.c: C0 7E 00 00FE 0A00 0200 00 01, RSA-2048
    attributes 01 0800 0020 01, PW status 01 0C 0C 0C."""
    d = card_of("ledger")
    top = parse_tlv(get_6e(d))
    assert [t for t, _ in top] == [0x4F, 0x7F66, 0x73]
    assert top[0][1][:10] == bytes.fromhex("D2760001240103032C97")
    assert top[1][1] == bytes.fromhex("020200FE020200FE")
    disc = tlv_dict(top[2][1])
    assert list(disc) == [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCD]
    assert disc[0xC0] == bytes.fromhex("7E0000FE0A0002000001")
    assert disc[0xC1] == disc[0xC2] == disc[0xC3] == bytes.fromhex("010800002001")
    assert disc[0xC4] == bytes.fromhex("010C0C0C030003")
    # 5F52 on its own: 15 bytes, "zero state" 7F; 7F74: the bare feature byte 20 (button)
    assert d.get(0x5F52).data == bytes.fromhex("0031C573C0018000000000007F9000")
    assert d.get(0x7F74).data == b"\x20"
    # only the DOs gpg_apdu_get_data lists answer on their own
    assert d.get(0x00C0).sw == 0x6A88
    assert d.get(0x00C5).sw == 0x6A88
    assert d.get(0x00C4).data == bytes.fromhex("010C0C0C030003")


def test_smartpgp_application_related_data_from_its_constants() -> None:
    """SmartPGP Constants.java: HISTORICAL_BYTES 00 C1 C5 73 C0 01 80 05 90 00 (chaining, no
    extended length announced), EXTENDED_CAPABILITIES FF 03 0020 0480 00FF 00 00, 7F66 with
    APDU_MAX_LENGTH 0x400, default attributes RSA-2048 / 17-bit exponent / CRT with modulus."""
    d = card_of("smartpgp")
    top = tlv_dict(parse_tlv(get_6e(d))[0][1])
    assert top[0x4F][:10] == bytes.fromhex("D276000124010304AFAF")
    assert top[0x5F52] == bytes.fromhex("00C1C573C00180059000")
    assert top[0x7F66] == bytes.fromhex("0202040002020400")
    disc = tlv_dict(top[0x73])
    assert disc[0xC0] == bytes.fromhex("FF030020048000FF0000")
    assert disc[0xC1] == bytes.fromhex("010800001103")
    assert disc[0xDE] == bytes.fromhex("010002000300")
    assert 0xD6 not in disc
    # FA: ECDSA/ECDH with FF for every curve, then RSA 2048/3072/4096 in format 03
    # (Common.writeAlgorithmInformation)
    fa = parse_tlv(parse_tlv(d.get(0x00FA).data)[0][1])
    c1 = [v for t, v in fa if t == 0xC1]
    assert c1[0] == bytes.fromhex("132A8648CE3D030107FF")
    assert c1[-3:] == [bytes.fromhex(f"01{b:04X}001103") for b in (2048, 3072, 4096)]
    assert all(v[0] == 0x12 for t, v in fa if t == 0xC2 and v[0] != 0x01)


# -- identification ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "version", "manufacturer", "atr"),
    [
        # ATRs as listed in pcsc-tools' smartcard_list.txt
        ("yubikey5", "0304", "0006", "3BFD1300008131FE158073C021C057597562694B657940"),
        ("yubikey4", "0201", "0006", "3BF81300008131FE15597562696B657934D4"),
        ("yubikey-neo", "0200", "0006", "3BFC1300008131FE15597562696B65794E454F7233E1"),
        ("nitrokey-pro2", "0303", "0005", "3BDA18FF81B1FE751F030031F573C001600090001C"),
        ("zeitcontrol21", "0201", "0005", "3BDA18FF81B1FE751F030031C573C001400090000C"),
        ("zeitcontrol34", "0304", "0005", "3BDA18FF81B1FE751F030031F573C001600090001C"),
        ("gnuk12", "0200", "FFFE", "3BDA11FF81B1FE551F0300318473800180009000E4"),
        # scdaemon log of a Ledger Nano S (LedgerHQ/app-openpgp issue #2): ATR=3B 00
        ("ledger", "0303", "2C97", "3B00"),
        # SmartPGP runs on whatever JavaCard: the emulator's T=1 ATR with SmartPGP's bytes
        ("smartpgp", "0304", "AFAF", "3BDA11FF81B1FE551F0300C1C573C0018005900010"),
    ],
)
def test_aid_version_manufacturer_and_atr(
    profile: str, version: str, manufacturer: str, atr: str
) -> None:
    d = card_of(profile)
    aid = d.get(0x004F).data
    assert aid[:6] == bytes.fromhex("D27600012401")
    assert aid[6:8].hex().upper() == version
    assert aid[8:10].hex().upper() == manufacturer
    assert aid[10:14] == PROFILES[profile].serial.to_bytes(4, "big")
    assert d.card.atr.hex().upper() == atr


def test_yubico_get_version() -> None:
    """yubikit OpenPgpSession._read_version sends INS F1 and gates features on the answer."""
    assert card_of("yubikey5").raw(GET_VERSION).data == bytes([5, 7, 1])
    assert card_of("yubikey4").raw(GET_VERSION).data == bytes([4, 3, 7])
    assert card_of("yubikey-neo").raw(GET_VERSION).data == bytes([1, 0, 0x12])
    for other in ("nitrokey-pro2", "gnuk12", "ledger", "smartpgp", "extended"):
        assert card_of(other).raw(GET_VERSION).sw == 0x6D00, other


# -- data objects a family has or lacks -------------------------------------------------------
ABSENT = {
    # profile: (DOs GET DATA refuses, the status word)
    "yubikey4": ((0x00FA, 0x00F9, 0x00DE, 0x7F66, 0x00DA), 0x6A88),
    "yubikey-neo": ((0x00FA, 0x00F9, 0x00D6, 0x7F74, 0x0101, 0x00C0, 0x00C5, 0x0093), 0x6A83),
    "nitrokey-pro2": ((0x00FA, 0x00D6, 0x7F74, 0x00DA), 0x6A88),
    "zeitcontrol21": ((0x00FA, 0x00F9, 0x00D6, 0x7F74, 0x00DE, 0x7F66), 0x6A88),
    "zeitcontrol34": ((0x00FA, 0x00D6, 0x7F74), 0x6A88),
    "gnuk12": ((0x00FA, 0x00F9, 0x00D6, 0x7F74, 0x00DE, 0x7F66, 0x0101, 0x0104), 0x6A88),
    "smartpgp": ((0x00D6, 0x7F74, 0x00DA), 0x6A88),
    "ledger": ((0x00FA, 0x00F9, 0x00DE, 0x00C1, 0x0093), 0x6A88),
}


@pytest.mark.parametrize("profile", sorted(ABSENT))
def test_absent_data_objects(profile: str) -> None:
    tags, sw = ABSENT[profile]
    d = card_of(profile)
    for tag in tags:
        assert d.get(tag).sw == sw, f"GET DATA {tag:04X}"


PRESENT = {
    "yubikey5": (0x00FA, 0x00F9, 0x00D6, 0x00D9, 0x00DA, 0x00DE, 0x7F66, 0x7F74, 0x0101),
    "yubikey4": (0x00D6, 0x00D7, 0x00D8, 0x7F74, 0x0101, 0x00C0, 0x0093),
    "yubikey-neo": (0x004F, 0x5F52, 0x0065, 0x007A, 0x00C4, 0x005E, 0x5F50),
    "nitrokey-pro2": (0x00F9, 0x00DE, 0x7F66, 0x0101),
    "smartpgp": (0x00FA, 0x00F9, 0x00DE, 0x7F66, 0x0101),
    "ledger": (0x7F66, 0x00D6, 0x0101, 0x7F74),
}


@pytest.mark.parametrize("profile", sorted(PRESENT))
def test_present_data_objects(profile: str) -> None:
    d = card_of(profile)
    for tag in PRESENT[profile]:
        assert d.get(tag).sw == 0x9000, f"GET DATA {tag:04X}"


def test_bare_constructed_data_objects() -> None:
    """ZeitControl 2.1 sends 6E and 7A without the outer tag (nitrokey-pro-firmware issue #34:
    '00 CA 00 7A 00' -> '93 03 00 00 00'); Gnuk and Ledger send 6E, 65, 7A bare."""
    assert card_of("zeitcontrol21").get(0x007A).data == bytes.fromhex("9303000000")
    for profile in ("gnuk12", "ledger"):
        d = card_of(profile, "demo")
        assert d.get(0x007A).data == bytes.fromhex("9303000000"), profile
        assert d.get(0x0065).data[:2] == b"\x5b\x09", profile  # 5B "Doe<<Jane", no 65
    for profile in ("yubikey5", "yubikey4", "yubikey-neo", "smartpgp", "nitrokey-pro2"):
        assert card_of(profile).get(0x007A).data == bytes.fromhex("7A059303000000"), profile


def test_yubikey5_attestation_key_and_uif() -> None:
    d = card_of("yubikey5")
    assert d.get(0x00DE).data == bytes.fromhex("0100020003008102")
    assert d.get(0x00DA).data == bytes.fromhex("010800001100")
    assert d.get(0x00D9).data == bytes.fromhex("0020")
    assert len(d.get(0x00C5).data) == 80 and len(d.get(0x00CD).data) == 16
    d.admin()
    for value in (0x00, 0x01, 0x03, 0x04, 0x02):  # 03/04 cached (yubikit: 5.2.1+)
        assert d.put(0x00D6, bytes([value, 0x20])).sw == 0x9000
        assert d.get(0x00D6).data == bytes([value, 0x20])
    assert d.put(0x00D6, b"\x00\x20").sw == 0x6982  # 02 "fixed": only a reset changes it
    assert d.put(0x00D7, b"\x05\x20").sw == 0x6A80


def test_yubikey4_uif_without_cached_values_and_outside_6e() -> None:
    """yubikit: UIF from 4.2.0, cached values from 5.2.1; 'Pre 3.0 the UIF is readable
    separately, but missing from discretionary'."""
    d = card_of("yubikey4")
    d.admin()
    assert d.put(0x00D8, b"\x01\x20").sw == 0x9000
    assert d.get(0x00D8).data == b"\x01\x20"
    assert d.put(0x00D8, b"\x03\x20").sw == 0x6A80
    assert d.get(0x00D8).data == b"\x01\x20"
    assert b"\xd8\x02" not in get_6e(d)


# -- certificates: one 7F21 on spec 2.x --------------------------------------------------------
@pytest.mark.parametrize("profile", ONE_CERT)
def test_one_certificate_cards_do_not_know_select_data(profile: str) -> None:
    d = card_of(profile, "demo")
    assert d.raw(SELECT_DATA_SIG).sw == 0x6D00
    assert d.raw(GET_NEXT_DATA).sw == 0x6D00
    # the one certificate is the AUT one (GnuPG reads it as OPENPGP.3, OpenSC as id 03)
    aut = x509.load_pem_x509_certificate(demo_files("demo")["aut_cert"].read_bytes())
    assert d.get(0x7F21).data == aut.public_bytes(serialization.Encoding.DER)
    # and C0 has the v2 layout: bytes 7-10 are the maximum command / response lengths
    assert len(discretionary(d)[0xC0]) == 10


@pytest.mark.parametrize("profile", THREE_CERTS)
def test_three_certificate_cards_select_each(profile: str) -> None:
    d = card_of(profile, "demo")
    assert d.raw(SELECT_DATA_SIG).sw == 0x9000
    sig = x509.load_pem_x509_certificate(demo_files("demo")["sig_cert"].read_bytes())
    assert d.get(0x7F21).data == sig.public_bytes(serialization.Encoding.DER)


def test_gnuk_certificate_is_not_written_by_put_data() -> None:
    """Gnuk 1.2.1: 7F21 is not in gpg_do_table (written with UPDATE BINARY by Gnuk's own tool),
    so PUT DATA answers 6A88 -- before any access check -- and an empty one reads 6A88."""
    d = card_of("gnuk12")
    assert d.get(0x7F21).sw == 0x6A88
    assert d.put(0x7F21, b"\x30\x03\x02\x01\x01").sw == 0x6A88
    d.admin()
    assert d.put(0x7F21, b"\x30\x03\x02\x01\x01").sw == 0x6A88
    assert d.put(0x0101, b"x").sw == 0x6A88  # no private DOs either
    assert d.get(0x7F21).sw == 0x6A88


def test_neo_certificate_limit() -> None:
    d = card_of("yubikey-neo")
    d.admin()
    assert discretionary(d)[0xC0][4:6] == (1216).to_bytes(2, "big")
    assert d.put(0x7F21, bytes(1217)).sw == 0x6A84
    assert d.put(0x7F21, bytes(1216)).sw == 0x9000


# -- algorithm attributes: what each slot accepts ----------------------------------------------
REFUSED = [
    # (profile, DO, attributes, status word)
    ("yubikey4", 0xC1, "132A8648CE3D030107", 0x6A80),  # RSA only before 5.2 (yubikit)
    ("yubikey4", 0xC1, "010800002000", 0x6A80),  # only a 17-bit exponent (OpenSC #1949)
    ("yubikey-neo", 0xC1, "010800001103", 0x6A83),  # attributes not changeable at all
    ("yubikey-neo", 0xC1, "010C00001103", 0x6A83),
    ("zeitcontrol21", 0xC1, "132A8648CE3D030107", 0x6A80),
    ("nitrokey-pro2", 0xC1, "162B06010401DA470F01", 0x6A80),  # no 25519
    ("zeitcontrol34", 0xC2, "122B060104019755010501", 0x6A80),
    ("gnuk12", 0xC1, "132B81040022", 0x6F00),  # rw_algorithm_attr fails -> GPG_ERROR
    ("gnuk12", 0xC1, "010C00002000", 0x6F00),  # RSA-3072 is not in the table
    ("gnuk12", 0xC2, "132A8648CE3D030107", 0x6F00),  # DEC needs ECDH (12)
    ("smartpgp", 0xC1, "010800002000", 0x6A80),  # exponent must be 17 bits
    ("smartpgp", 0xC1, "2A01", 0x6985),  # unknown algorithm id
    ("smartpgp", 0xC3, "162B06010401DA470F01FF", 0x6A80),
    ("ledger", 0xC1, "132B81040022", 0x6A80),  # P-384 not in gpg_oid2curve
    ("yubikey5", 0xC2, "162B06010401DA470F01", 0x6A80),  # EdDSA not for DEC
    ("yubikey5", 0xC1, "122B060104019755010501", 0x6A80),  # X25519 only for DEC
]


@pytest.mark.parametrize(("profile", "tag", "attrs", "sw"), REFUSED)
def test_unsupported_attributes_are_refused_and_nothing_changes(
    profile: str, tag: int, attrs: str, sw: int
) -> None:
    d = card_of(profile, "demo")
    d.admin()
    before = get_6e(d)
    public = d.send(0x47, 0x81, 0x00, bytes([0xB6, 0x00]), le=0)
    assert d.put(tag, bytes.fromhex(attrs)).sw == sw
    assert get_6e(d) == before
    assert d.send(0x47, 0x81, 0x00, bytes([0xB6, 0x00]), le=0) == public


ACCEPTED = [
    # (profile, DO, attributes sent, attributes the card then shows)
    ("yubikey5", 0xC1, "132B81040022", "132B81040022"),
    ("yubikey5", 0xC2, "122B060104019755010501", "122B060104019755010501"),
    ("yubikey5", 0xC3, "132B8104000A", "132B8104000A"),  # secp256k1
    ("nitrokey-pro2", 0xC3, "132B240303020801010D", "132B240303020801010D"),  # brainpool 512
    ("gnuk12", 0xC2, "122B8104000A", "122B8104000A"),
    ("gnuk12", 0xC1, "011000002000", "011000002000"),  # RSA-4096
    ("smartpgp", 0xC1, "132B81040023", "132B81040023FF"),  # stored with FF (setAttributes)
    ("ledger", 0xC1, "162B06010401DA470F01", "162B06010401DA470F01"),
    ("yubikey4", 0xC1, "010C00001100", "010C00001100"),
]


@pytest.mark.parametrize(("profile", "tag", "sent", "shown"), ACCEPTED)
def test_supported_attributes_are_taken_and_a_key_can_be_generated(
    profile: str, tag: int, sent: str, shown: str
) -> None:
    d = card_of(profile)
    d.admin()
    assert d.put(tag, bytes.fromhex(sent)).sw == 0x9000
    assert discretionary(d)[tag] == bytes.fromhex(shown)
    crt = {0xC1: 0xB6, 0xC2: 0xB8, 0xC3: 0xA4}[tag]
    r = d.long(0x47, 0x80, 0x00, bytes([crt, 0x00]))
    assert r.sw == 0x9000
    assert r.data[:2] == b"\x7f\x49"


def test_factory_attributes_are_the_family_form() -> None:
    expected = {
        "yubikey5": "010800001100",
        "yubikey4": "010800001100",
        "yubikey-neo": "010800001103",
        "smartpgp": "010800001103",
        "ledger": "010800002001",
        "gnuk12": "010800002000",
        "zeitcontrol21": "010800002000",
    }
    for profile, attrs in expected.items():
        assert discretionary(card_of(profile))[0xC1].hex().upper() == attrs, profile


# -- PINs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "c4", "too_long", "sw"),
    [
        ("ledger", "010C0C0C030003", 13, 0x6A80),  # GPG_MAX_PW_LENGTH 12
        ("nitrokey-pro2", "00404040030003", 65, 0x6700),  # gpg: Max. PIN lengths 64 64 64
        ("zeitcontrol21", "00202020030003", 33, 0x6700),
        ("yubikey4", "FF7F7F7F030003", 128, 0x6700),
        ("yubikey-neo", "007F7F7F030303", 128, 0x6A80),  # ykneo: SW_WRONG_DATA
    ],
)
def test_pin_status_and_length_limits(profile: str, c4: str, too_long: int, sw: int) -> None:
    d = card_of(profile)
    assert d.get(0x00C4).data.hex().upper() == c4
    d.admin()
    # a new PW1 (RESET RETRY COUNTER after PW3) one longer than C4 allows is refused ...
    pin = b"7" * too_long
    assert d.send(0x2C, 0x02, 0x81, pin).sw == sw
    assert d.verify(0x81, PW1).sw == 0x9000  # ... and the old one still works
    # so is one shorter than 6; the longest allowed is taken
    assert d.send(0x2C, 0x02, 0x81, b"12345").sw == sw
    assert d.send(0x2C, 0x02, 0x81, pin[:-1]).sw == 0x9000
    assert d.verify(0x81, pin[:-1]).sw == 0x9000


def test_neo_reset_code_counter_reads_3_without_a_reset_code() -> None:
    """OpenKeychain's NEO recordings: C4 ... 03 03 03; the reset code still cannot be used."""
    d = card_of("yubikey-neo")
    assert d.get(0x00C4).data[4:7] == b"\x03\x03\x03"
    assert d.send(0x2C, 0x00, 0x81, b"12345678" + b"654321").sw == 0x6983


# -- lengths: extended APDUs, chaining, 61xx ----------------------------------------------------
@pytest.mark.parametrize("profile", ["yubikey-neo", "gnuk12", "ledger"])
def test_short_only_cards_refuse_extended_apdus(profile: str) -> None:
    d = card_of(profile)
    assert d.raw(apdu(0xCA, 0x00, 0x6E, le=0, extended=True)).sw == 0x6700
    # and chain instead
    d.admin()
    assert d.chained(0xDA, 0x00, 0x5E, b"x" * 200, block=100).sw == 0x9000


@pytest.mark.parametrize("profile", ["zeitcontrol21", "nitrokey-pro2", "zeitcontrol34"])
def test_extended_cards_without_chaining(profile: str) -> None:
    d = card_of(profile)
    d.admin()
    assert d.raw(apdu(0xDA, 0x00, 0x5E, b"abc", cla=0x10)).sw == 0x6884
    assert d.raw(apdu(0xDA, 0x00, 0x5E, b"x" * 250, extended=True)).sw == 0x9000


def test_yubikey4_and_smartpgp_take_extended_apdus_their_historical_bytes_do_not_announce() -> None:
    for profile in ("yubikey4", "smartpgp"):
        d = card_of(profile)
        hist = d.get(0x5F52).data
        caps = hist[hist.index(0x73) + 3]
        assert caps & 0x80 and not caps & 0x40, profile
        r = d.raw(apdu(0xCA, 0x00, 0x6E, le=0, extended=True))
        assert r.sw == 0x9000 and r.data[:1] == b"\x6e", profile


@pytest.mark.parametrize(("profile", "piece"), [("yubikey-neo", 255), ("ledger", 254)])
def test_long_answers_come_in_the_cards_piece_size(profile: str, piece: int) -> None:
    """ykneo-openpgp: RESPONSE_MAX_LENGTH 255 then 61xx; Ledger: 7F66 says 254."""
    d = card_of(profile, "demo")
    r = d.raw(apdu(0xCA, 0x7F, 0x21, le=0))
    assert len(r.data) == piece
    assert r.sw >> 8 == 0x61
    cert = d.get(0x7F21).data
    assert cert[:piece] == r.data


# -- commands the family does not know ----------------------------------------------------------
@pytest.mark.parametrize(
    ("profile", "command", "sw"),
    [
        ("gnuk12", bytes.fromhex("00E60000"), 0x6D00),  # no TERMINATE DF in 1.2.1
        ("gnuk12", bytes.fromhex("00440000"), 0x6D00),
        ("gnuk12", MSE_AUT_DEC, 0x6D00),
        ("yubikey5", MSE_AUT_DEC, 0x6D00),  # C0 byte 10 = 00
        ("ledger", MSE_AUT_DEC, 0x9000),  # C0 byte 10 = 01
        ("smartpgp", MSE_AUT_DEC, 0x6D00),
        ("yubikey4", bytes.fromhex("0084000008"), 0x6D00),  # C0 without GET CHALLENGE
        ("yubikey-neo", bytes.fromhex("00440000"), 0x6985),  # ACTIVATE on an active card
        ("yubikey-neo", bytes.fromhex("00E60000"), 0x6985),  # only with both PINs blocked
    ],
)
def test_commands_answered_as_the_family_does(profile: str, command: bytes, sw: int) -> None:
    d = card_of(profile)
    d.admin()
    assert d.raw(command).sw == sw


def _block(d: Driver, ref: int) -> None:
    for _ in range(3):
        d.verify(ref, b"00000000")
    assert d.verify(ref, b"").sw == 0x63C0


def test_terminate_rules() -> None:
    # NEO: TERMINATE only when PW1 and PW3 are blocked, not after PW3
    d = card_of("yubikey-neo")
    d.admin()
    assert d.raw(bytes.fromhex("00E60000")).sw == 0x6985
    _block(d, 0x81)
    _block(d, 0x83)
    assert d.raw(bytes.fromhex("00E60000")).sw == 0x9000
    assert d.raw(bytes.fromhex("00440000")).sw == 0x9000
    # Ledger: only after PW3, blocked PINs are not enough (GnuPG's factory-reset would fail)
    d = card_of("ledger")
    _block(d, 0x81)
    _block(d, 0x83)
    assert d.raw(bytes.fromhex("00E60000")).sw == 0x6982
    # SmartPGP: PW3 blocked is enough (processTerminateDf)
    d = card_of("smartpgp")
    _block(d, 0x83)
    assert d.raw(bytes.fromhex("00E60000")).sw == 0x9000


# -- personalisations ---------------------------------------------------------------------------
def test_which_demo_variants_each_family_holds() -> None:
    assert {n: personalizations(n) for n in FAMILY_PROFILES} == {
        "yubikey5": ("demo-rsa", "demo-ecc", "demo-25519"),
        "yubikey4": ("demo-rsa",),
        "yubikey-neo": ("demo-rsa",),
        "nitrokey-pro2": ("demo-rsa", "demo-ecc"),
        "gnuk12": ("demo-rsa", "demo-ecc", "demo-25519"),
        "smartpgp": ("demo-rsa", "demo-ecc"),
        "zeitcontrol21": ("demo-rsa",),
        "zeitcontrol34": ("demo-rsa", "demo-ecc"),
        "ledger": ("demo-rsa", "demo-ecc", "demo-25519"),
    }
    for n in GENERIC_PROFILES:
        assert personalizations(n) == ("demo-rsa", "demo-ecc", "demo-25519")
    assert supports("yubikey4", "demo") and not supports("yubikey4", "demo-25519")
    assert ("smartpgp", "demo-ecc") in supported_pairs(["demo", "demo-ecc"])
    assert ("smartpgp", "demo-25519") not in supported_pairs(["demo-25519"])


def test_personalising_what_a_family_cannot_hold_is_refused_clearly() -> None:
    card = OpenPGPCard("yubikey4")
    before = card.state.to_json()
    with pytest.raises(ValueError, match=r"yubikey4.*demo-ecc.*SIG slot.*ecdsa-nistp256"):
        personalize(card, "demo-ecc")
    assert card.state.to_json() == before
    with pytest.raises(ValueError, match="unknown personalisation"):
        supports("yubikey5", "demo-rsa4096")


@pytest.mark.parametrize(
    ("profile", "variant", "c1", "c2"),
    [
        ("yubikey5", "demo", "010800001100", "010800001100"),
        ("yubikey-neo", "demo", "010800001103", "010800001103"),
        ("ledger", "demo", "010800002001", "010800002001"),
        ("smartpgp", "demo-ecc", "132A8648CE3D030107FF", "122A8648CE3D030107FF"),
        ("gnuk12", "demo-25519", "162B06010401DA470F01", "122B060104019755010501"),
    ],
)
def test_personalisation_writes_the_family_attribute_form(
    profile: str, variant: str, c1: str, c2: str
) -> None:
    dd = discretionary(card_of(profile, variant))
    assert dd[0xC1].hex().upper() == c1
    assert dd[0xC2].hex().upper() == c2


def test_private_do_only_where_the_family_has_them() -> None:
    assert card_of("yubikey5", "demo").get(0x0101).data == b"opcard demo private DO 1"
    assert card_of("gnuk12", "demo").get(0x0101).sw == 0x6A88
    assert card_of("yubikey-neo", "demo").get(0x0101).sw == 0x6A83


# -- the keys work in the family's attribute forms ---------------------------------------------
def _digest_info_sha256(message: bytes) -> bytes:
    prefix = bytes.fromhex("3031300D060960864801650304020105000420")
    return prefix + hashlib.sha256(message).digest()


@pytest.mark.parametrize("profile", ["yubikey5", "yubikey-neo", "ledger", "zeitcontrol21"])
def test_rsa_signature_on_family_cards(profile: str) -> None:
    d = card_of(profile, "demo")
    assert d.verify(0x81, PW1).sw == 0x9000
    msg = f"signed by the {profile} card".encode()
    r = d.long(0x2A, 0x9E, 0x9A, _digest_info_sha256(msg))
    assert r.sw == 0x9000
    key = x509.load_pem_x509_certificate(demo_files("demo")["sig_cert"].read_bytes()).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(r.data, msg, padding.PKCS1v15(), hashes.SHA256())


def test_ecdsa_signature_with_ff_attributes_on_smartpgp() -> None:
    d = card_of("smartpgp", "demo-ecc")
    assert d.verify(0x81, PW1).sw == 0x9000
    digest = hashlib.sha256(b"smartpgp").digest()
    r = d.send(0x2A, 0x9E, 0x9A, digest, le=0)
    assert r.sw == 0x9000 and len(r.data) == 64
    key = x509.load_pem_x509_certificate(
        demo_files("demo-ecc")["sig_cert"].read_bytes()
    ).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(
        int.from_bytes(r.data[:32], "big"), int.from_bytes(r.data[32:], "big")
    )
    key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_generic_profiles_are_unchanged_full_v3_4_cards() -> None:
    """The four generic profiles keep the v3.4 card every other test was written for."""
    for name in GENERIC_PROFILES:
        d = card_of(name)
        assert d.get(0x004F).data[6:8] == b"\x03\x04"
        assert d.get(0x00C0).data[0] == 0x7D
        assert d.get(0x00FA).sw == 0x9000
        assert d.raw(SELECT_DATA_SIG).sw == 0x9000
        assert d.get(0x00C1).data == bytes.fromhex("010800002000")
        assert d.raw(GET_VERSION).sw == 0x6D00
