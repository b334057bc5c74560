"""Key import templates (4D): byte-exact against open-keychain's vector, and checked against
``cryptography``'s own private numbers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from openpgp_vectors import KEYCHAIN_RSA_TEMPLATE

from apdu import tlv
from apdu.openpgp.constants import Curve, EcImportFormat, KeySlot, RsaImportFormat
from apdu.openpgp.keys import ec_import_template, rsa_import_template
from apdu.openpgp.objects import EcAttributes, RsaAttributes

_RAW = serialization.Encoding.Raw


def split(template: bytes) -> tuple[bytes, list[tuple[int, int]], bytes]:
    """CRT, the (tag, length) header list of 7F48, and the 5F48 value."""
    (outer,) = tlv.parse(template)
    assert outer.tag == 0x4D
    crt, header, values = tlv.parse(outer.value)
    assert header.tag == 0x7F48 and values.tag == 0x5F48
    pairs: list[tuple[int, int]] = []
    pos = 0
    data = header.value
    while pos < len(data):
        tag = data[pos]
        first = data[pos + 1]
        if first < 0x80:
            length, pos = first, pos + 2
        else:
            size = first & 0x7F
            length = int.from_bytes(data[pos + 2 : pos + 2 + size], "big")
            pos += 2 + size
        pairs.append((tag, length))
    assert sum(n for _, n in pairs) == len(values.value)
    return bytes(crt), pairs, values.value


def test_open_keychain_vector() -> None:
    template = rsa_import_template(
        KeySlot.AUT,
        RsaAttributes(2048, 0x18, RsaImportFormat.STANDARD),
        e=65537,
        p=int("11" * 128, 16),
        q=int("12" * 128, 16),
    )
    assert template == KEYCHAIN_RSA_TEMPLATE


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize("fmt", list(RsaImportFormat))
def test_rsa_formats_against_cryptography(rsa_key: rsa.RSAPrivateKey, fmt: RsaImportFormat) -> None:
    numbers = rsa_key.private_numbers()
    template = rsa_import_template(
        KeySlot.DEC,
        RsaAttributes(2048, 32, fmt),
        e=numbers.public_numbers.e,
        p=numbers.p,
        q=numbers.q,
    )
    crt, pairs, values = split(template)
    assert crt == bytes.fromhex("B800")
    expected = [(0x91, 4), (0x92, 128), (0x93, 128)]
    parts = [
        numbers.public_numbers.e.to_bytes(4, "big"),
        numbers.p.to_bytes(128, "big"),
        numbers.q.to_bytes(128, "big"),
    ]
    if fmt.crt:
        expected += [(0x94, 128), (0x95, 128), (0x96, 128)]
        parts += [n.to_bytes(128, "big") for n in (numbers.iqmp, numbers.dmp1, numbers.dmq1)]
    if fmt.with_modulus:
        expected.append((0x97, 256))
        parts.append(numbers.public_numbers.n.to_bytes(256, "big"))
    assert pairs == expected
    assert values == b"".join(parts)


def test_rsa_import_format_override_and_errors() -> None:
    attrs = RsaAttributes(2048, 17, None)
    template = rsa_import_template(
        KeySlot.SIG, attrs, e=3, p=7, q=11, import_format=RsaImportFormat.STANDARD_WITH_MODULUS
    )
    crt, pairs, values = split(template)
    assert crt == bytes.fromhex("B600")
    assert pairs == [(0x91, 3), (0x92, 128), (0x93, 128), (0x97, 256)]
    assert values.endswith((77).to_bytes(256, "big")) and values[:3] == b"\x00\x00\x03"
    with pytest.raises(ValueError):  # p too large for 2048/16 bytes
        rsa_import_template(KeySlot.SIG, attrs, e=3, p=1 << 1030, q=11)
    with pytest.raises(ValueError):  # e=3 has no inverse modulo p-1 = 6
        rsa_import_template(
            KeySlot.SIG, RsaAttributes(2048, 17, RsaImportFormat.CRT), e=3, p=7, q=11
        )
    with pytest.raises(ValueError):
        rsa_import_template(KeySlot.SIG, RsaAttributes(2040, 17), e=3, p=7, q=11)


@pytest.mark.parametrize(
    ("curve", "cls"),
    [
        (Curve.NIST_P256, ec.SECP256R1),
        (Curve.NIST_P384, ec.SECP384R1),
        (Curve.NIST_P521, ec.SECP521R1),
        (Curve.SECP256K1, ec.SECP256K1),
        (Curve.BRAINPOOL_P256R1, ec.BrainpoolP256R1),
        (Curve.BRAINPOOL_P384R1, ec.BrainpoolP384R1),
        (Curve.BRAINPOOL_P512R1, ec.BrainpoolP512R1),
    ],
)
def test_ec_weierstrass(curve: Curve, cls: type[ec.EllipticCurve]) -> None:
    key = ec.generate_private_key(cls())
    d = key.private_numbers().private_value
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    template = ec_import_template(KeySlot.SIG, curve, d)
    crt, pairs, values = split(template)
    assert crt == bytes.fromhex("B600")
    assert pairs == [(0x92, curve.size)]
    assert values == d.to_bytes(curve.size, "big")
    as_bytes = ec_import_template(KeySlot.SIG, curve, d.to_bytes(curve.size, "big").lstrip(b"\0"))
    assert as_bytes == template  # short scalars are padded to the field size
    attrs = EcAttributes.for_curve(curve, KeySlot.AUT, EcImportFormat.WITH_PUBLIC_KEY)
    with_pub = ec_import_template(KeySlot.AUT, curve, d, public=point, attributes=attrs)
    _, pairs, values = split(with_pub)
    assert pairs == [(0x92, curve.size), (0x99, len(point))]
    assert values.endswith(point)


def test_ec_25519() -> None:
    xkey = x25519.X25519PrivateKey.generate()
    raw = xkey.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    crt, pairs, values = split(ec_import_template(KeySlot.DEC, Curve.X25519, raw))
    assert crt == bytes.fromhex("B800") and pairs == [(0x92, 32)]
    assert values == raw[::-1]  # OpenPGP stores cv25519 scalars big-endian
    edkey = ed25519.Ed25519PrivateKey.generate()
    seed = edkey.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = edkey.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    _, pairs, values = split(ec_import_template(KeySlot.SIG, Curve.ED25519, seed, public=pub))
    assert pairs == [(0x92, 32), (0x99, 32)] and values == seed + pub
    with pytest.raises(ValueError):
        ec_import_template(KeySlot.SIG, Curve.ED25519, seed[:31])
    with pytest.raises(ValueError):
        ec_import_template(KeySlot.SIG, Curve.ED25519, 5)
    with pytest.raises(ValueError):
        ec_import_template(
            KeySlot.SIG,
            Curve.ED25519,
            seed,
            attributes=EcAttributes.for_curve(
                Curve.ED25519, KeySlot.SIG, EcImportFormat.WITH_PUBLIC_KEY
            ),
        )


def test_ec_x25519_like_yubikey_trace() -> None:
    # go-openpgp-card TestImportKey/ECDH/X25519 sent 4D {B8 03 84 01 02 (Yubico's CRT with a
    # key reference), 7F48 {92 20}, 5F48 {AB…AB}}; with the spec's CRT B8 00 it is:
    template = ec_import_template(KeySlot.DEC, Curve.X25519, b"\xab" * 32)
    assert template == bytes.fromhex("4D2AB8007F480292205F4820") + b"\xab" * 32
