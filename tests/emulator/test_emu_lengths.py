"""Extended length, command chaining, 61xx / GET RESPONSE / 6Cxx, per profile."""

from __future__ import annotations

from collections.abc import Callable

from card_apdus import Driver, apdu, parse_tlv

from fixtures.profiles import PROFILES


def test_short_profile_rejects_extended_apdus(make: Callable[..., Driver]) -> None:
    d = make("short")
    assert d.raw(apdu(0xCA, 0x00, 0x6E, le=0, extended=True)).sw == 0x6700
    assert d.raw(apdu(0x20, 0x00, 0x82, b"123456", extended=True)).sw == 0x6700
    assert d.raw(apdu(0x20, 0x00, 0x82, b"123456", le=0, extended=True)).sw == 0x6700
    # malformed: Z byte then a single byte
    assert d.raw(bytes.fromhex("00CA006E0001")).sw == 0x6700


def test_short_profile_response_chaining(make: Callable[..., Driver]) -> None:
    d = make("short", "demo-rsa")
    # FA is longer than 256 bytes: 256 bytes then 61xx
    r = d.raw(apdu(0xCA, 0x00, 0xFA, le=0))
    assert len(r.data) == 256 and r.sw >> 8 == 0x61
    full = bytearray(r.data)
    while r.sw >> 8 == 0x61:
        r = d.raw(apdu(0xC0, 0, 0, le=r.sw & 0xFF))
        full += r.data
    assert r.sw == 0x9000
    assert parse_tlv(bytes(full))[0][0] == 0xFA
    # certificate of ~700 bytes: 61 00 while 256 or more remain
    d.send(0xA5, 0x02, 0x04, bytes.fromhex("60045C027F21"))
    cert = d.card.state.certs[2]
    assert len(cert) > 512
    r = d.raw(apdu(0xCA, 0x7F, 0x21, le=0))
    assert r.sw == 0x6100 and r.data == cert[:256]
    r = d.raw(apdu(0xC0, 0, 0, le=0))
    assert r.data == cert[256:512]
    rest = len(cert) - 512
    assert r.sw == (0x6100 | (rest if rest < 256 else 0))
    # a GET RESPONSE asking for more than remains: 6Cxx, data kept
    r2 = d.raw(apdu(0xC0, 0, 0, le=min(rest + 1, 256) if rest < 255 else 0))
    if rest < 255:
        assert r2.sw == 0x6C00 | rest
        r2 = d.raw(apdu(0xC0, 0, 0, le=rest))
    assert r2.sw == 0x9000 and r2.data == cert[512:]
    # nothing pending any more
    assert d.raw(apdu(0xC0, 0, 0, le=0)).sw == 0x6985


def test_short_le_smaller_than_answer(make: Callable[..., Driver], profile: str) -> None:
    d = make(profile)
    c4 = d.get(0x00C4).data
    r = d.raw(apdu(0xCA, 0x00, 0xC4, le=3))
    assert r.data == c4[:3] and r.sw == 0x6104
    # a GET RESPONSE with a smaller Le returns part of the rest
    r = d.raw(apdu(0xC0, 0, 0, le=2))
    assert r.data == c4[3:5] and r.sw == 0x6102
    r = d.raw(apdu(0xC0, 0, 0, le=2))
    assert r.data == c4[5:] and r.sw == 0x9000


def test_no_le_means_61xx(fresh: Driver) -> None:
    c4 = fresh.get(0x00C4).data
    r = fresh.raw(apdu(0xCA, 0x00, 0xC4))
    assert r.data == b"" and r.sw == 0x6107
    r = fresh.raw(apdu(0xC0, 0, 0, le=7))
    assert r.data == c4 and r.sw == 0x9000


def test_other_command_drops_pending_response(fresh: Driver) -> None:
    r = fresh.raw(apdu(0xCA, 0x00, 0xC4, le=1))
    assert r.sw == 0x6106
    fresh.raw(apdu(0xCA, 0x00, 0x4F, le=0))
    assert fresh.raw(apdu(0xC0, 0, 0, le=6)).sw == 0x6985
    assert fresh.raw(apdu(0xC0, 1, 0, le=6)).sw == 0x6B00


def test_extended_profile(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-rsa")
    r = d.raw(apdu(0xCA, 0x00, 0x6E, le=0, extended=True))
    assert r.sw == 0x9000 and len(r.data) > 256
    # extended command data: a 600-byte URL is too long for the DO (max 255) -> 6700,
    # a 1000-byte certificate in one extended APDU works
    d.admin()
    assert d.raw(apdu(0xDA, 0x5F, 0x50, b"u" * 600, extended=True)).sw == 0x6700
    cert = bytes(range(256)) * 4
    assert d.raw(apdu(0xDA, 0x7F, 0x21, cert[:1000], extended=True)).sw == 0x9000
    r = d.raw(apdu(0xCA, 0x7F, 0x21, le=0, extended=True))
    assert r.data == cert[:1000]
    # extended Le smaller than the answer: Ne bytes then 61xx
    r = d.raw(apdu(0xCA, 0x7F, 0x21, le=300, extended=True))
    assert r.data == cert[:300] and r.sw == 0x6100
    # Lc above the maximum in 7F66
    p = PROFILES["extended"]
    big = bytes(p.max_command_len + 1)
    assert d.raw(apdu(0xDA, 0x7F, 0x21, big, extended=True)).sw == 0x6700
    # Lc = 0 in extended form is malformed
    assert d.raw(bytes.fromhex("00DA7F2100000041")).sw == 0x6700


def test_extended_response_limit(make: Callable[..., Driver]) -> None:
    d = make("extended", max_cert_size=4000)
    d.admin()
    cert = bytes(range(256)) * 12  # 3072 bytes > max response 2048
    assert d.chained(0xDA, 0x7F, 0x21, cert).sw == 0x9000
    r = d.raw(apdu(0xCA, 0x7F, 0x21, le=0, extended=True))
    assert r.data == cert[:2048] and r.sw == 0x6100
    rest = d.send(0xC0, 0, 0, le=0)
    assert r.data + rest.data == cert


def test_command_chaining(make: Callable[..., Driver], profile: str) -> None:
    d = make(profile)
    d.admin()
    cert = bytes((i * 7) & 0xFF for i in range(1100))
    # intermediate blocks answer 9000 and nothing is written before the last block
    assert d.raw(apdu(0xDA, 0x7F, 0x21, cert[:254], cla=0x10)).sw == 0x9000
    assert d.card.state.certs[0] == b""
    assert d.raw(apdu(0xDA, 0x7F, 0x21, cert[254:508], cla=0x10)).sw == 0x9000
    # a last block for another DO drops the chain; nothing was written
    assert d.raw(apdu(0xDA, 0x00, 0x5E, b"login")).sw == 0x9000
    assert d.card.state.certs[0] == b""
    # restart the chain properly
    r = d.chained(0xDA, 0x7F, 0x21, cert, block=254)
    assert r.sw == 0x9000
    assert d.send(0xCA, 0x7F, 0x21, le=0).data == cert


def test_chain_interrupted_by_other_command(fresh: Driver) -> None:
    fresh.admin()
    assert fresh.raw(apdu(0xDA, 0x00, 0x5E, b"abc", cla=0x10)).sw == 0x9000
    # another command: the chain is dropped, the command is processed on its own
    assert fresh.get(0x00C4).ok
    assert fresh.raw(apdu(0xDA, 0x00, 0x5E, b"def")).sw == 0x9000
    assert fresh.get(0x005E).data == b"def"
    # a chain for another DO does not mix with the first
    assert fresh.raw(apdu(0xDA, 0x00, 0x5E, b"abc", cla=0x10)).sw == 0x9000
    assert fresh.raw(apdu(0xDA, 0x5F, 0x50, b"xyz")).sw == 0x9000
    assert fresh.get(0x5F50).data == b"xyz"


def test_chain_limit(fresh: Driver) -> None:
    fresh.admin()
    block = bytes(255)
    sw = 0x9000
    for _ in range(20):
        sw = fresh.raw(apdu(0xDA, 0x7F, 0x21, block, cla=0x10)).sw
        if sw != 0x9000:
            break
    assert sw == 0x6700


def test_decipher_rsa_chained_like_gnupg(make: Callable[..., Driver]) -> None:
    """GnuPG sends the 257-byte cryptogram as 254 + 3 on a chaining-only card."""
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from test_emu_crypto import read_public

    d = make("short", "demo-rsa")
    pub = read_public(d, "dec")
    assert isinstance(pub, rsa.RSAPublicKey)
    ct = pub.encrypt(b"session key", padding.PKCS1v15())
    d.verify(0x82, b"123456")
    r = d.chained(0x2A, 0x80, 0x86, b"\x00" + ct, le=0, block=254)
    assert r.sw == 0x9000 and r.data == b"session key"
