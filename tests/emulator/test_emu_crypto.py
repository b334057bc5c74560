"""PSO:CDS, INTERNAL AUTHENTICATE, PSO:DECIPHER, MSE, key generation and key import."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from card_apdus import PW1, Driver, parse_tlv, tlv, tlv_dict
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)

from fixtures.personalize import demo_files

SHA256_DIGESTINFO = bytes.fromhex("3031300d060960864801650304020105000420")
CRT = {"sig": b"\xb6\x00", "dec": b"\xb8\x00", "aut": b"\xa4\x00"}
OID = {
    "nistp256": bytes.fromhex("2A8648CE3D030107"),
    "nistp384": bytes.fromhex("2B81040022"),
    "nistp521": bytes.fromhex("2B81040023"),
    "brainpoolP256r1": bytes.fromhex("2B2403030208010107"),
    "brainpoolP384r1": bytes.fromhex("2B240303020801010B"),
    "brainpoolP512r1": bytes.fromhex("2B240303020801010D"),
    "secp256k1": bytes.fromhex("2B8104000A"),
    "ed25519": bytes.fromhex("2B06010401DA470F01"),
    "cv25519": bytes.fromhex("2B060104019755010501"),
}
EC_CURVES: dict[str, ec.EllipticCurve] = {
    "nistp256": ec.SECP256R1(),
    "nistp384": ec.SECP384R1(),
    "nistp521": ec.SECP521R1(),
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
    "brainpoolP512r1": ec.BrainpoolP512R1(),
    "secp256k1": ec.SECP256K1(),
}


def read_public(d: Driver, slot: str) -> object:
    """GENERATE ASYMMETRIC KEY PAIR P1=81 -> a cryptography public key."""
    attrs = d.get({"sig": 0xC1, "dec": 0xC2, "aut": 0xC3}[slot]).data
    r = d.send(0x47, 0x81, 0x00, CRT[slot], le=0)
    assert r.ok, hex(r.sw)
    return public_from_template(attrs, r.data)


def public_from_template(attrs: bytes, data: bytes) -> object:
    outer = parse_tlv(data)
    assert outer[0][0] == 0x7F49
    inner = tlv_dict(outer[0][1])
    if attrs[0] == 0x01:
        return rsa.RSAPublicNumbers(
            int.from_bytes(inner[0x82], "big"), int.from_bytes(inner[0x81], "big")
        ).public_key()
    oid = attrs[1:]
    if oid[-1] in (0x00, 0xFF) and oid not in OID.values():
        oid = oid[:-1]  # import-format byte
    point = inner[0x86]
    if oid == OID["ed25519"]:
        return ed25519.Ed25519PublicKey.from_public_bytes(point)
    if oid == OID["cv25519"]:
        return x25519.X25519PublicKey.from_public_bytes(point)
    name = next(n for n, o in OID.items() if o == oid)
    return ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[name], point)


def pem_public(variant: str, slot: str) -> object:
    key = serialization.load_pem_private_key(demo_files(variant)[f"{slot}_key"].read_bytes(), None)
    return key.public_key()  # type: ignore[union-attr]


def verify_sig(pub: object, sig: bytes, message: bytes) -> None:
    """Verify a card signature over ``message`` (RSA: DigestInfo SHA-256; ECDSA: SHA-256)."""
    if isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        n = len(sig) // 2
        der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
        pub.verify(der, message, ec.ECDSA(hashes.SHA256()))
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, message)
    else:
        raise AssertionError(f"cannot verify with {pub!r}")


def card_input(pub: object, message: bytes) -> bytes:
    if isinstance(pub, rsa.RSAPublicKey):
        return SHA256_DIGESTINFO + hashlib.sha256(message).digest()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return hashlib.sha256(message).digest()
    return message


def test_pso_cds_all_variants(make: Callable[..., Driver], variant: str) -> None:
    d = make("extended", variant)
    pub = read_public(d, "sig")
    assert pub == pem_public(variant, "sig")
    msg = b"opcard emulator signature test"
    # needs PW1 in mode 81; 82 is not enough
    d.verify(0x82, PW1)
    assert d.send(0x2A, 0x9E, 0x9A, card_input(pub, msg), le=0).sw == 0x6982
    d.verify(0x81, PW1)
    counter0 = int.from_bytes(d.get(0x0093).data, "big")
    r = d.send(0x2A, 0x9E, 0x9A, card_input(pub, msg), le=0)
    assert r.ok
    verify_sig(pub, r.data, msg)
    assert int.from_bytes(d.get(0x0093).data, "big") == counter0 + 1
    assert tlv_dict(parse_tlv(d.get(0x007A).data)[0][1])[0x93] == (counter0 + 1).to_bytes(3, "big")
    with pytest.raises(InvalidSignature):
        verify_sig(pub, r.data, msg + b"!")


def test_internal_authenticate_all_variants(make: Callable[..., Driver], variant: str) -> None:
    d = make("short", variant)
    pub = read_public(d, "aut")
    assert pub == pem_public(variant, "aut")
    msg = b"TLS client handshake transcript"
    assert d.send(0x88, 0, 0, card_input(pub, msg), le=0).sw == 0x6982
    d.verify(0x81, PW1)
    assert d.send(0x88, 0, 0, card_input(pub, msg), le=0).sw == 0x6982
    d.verify(0x82, PW1)
    r = d.send(0x88, 0, 0, card_input(pub, msg), le=0)
    assert r.ok
    verify_sig(pub, r.data, msg)
    assert d.send(0x88, 1, 0, card_input(pub, msg), le=0).sw == 0x6B00
    assert d.send(0x88, 0, 0, b"", le=0).sw == 0x6700


def test_rsa_internal_authenticate_raw_input_and_40_percent_limit(
    make: Callable[..., Driver],
) -> None:
    d = make("extended", "demo-rsa")
    d.verify(0x82, PW1)
    pub = read_public(d, "aut")
    assert isinstance(pub, rsa.RSAPublicKey)
    # TLS 1.0/1.1 style MD5||SHA1 without DigestInfo: PKCS#1 type 1 over the raw bytes
    raw = os.urandom(36)
    sig = d.send(0x88, 0, 0, raw, le=0).data
    em = pow(int.from_bytes(sig, "big"), 65537, pub.public_numbers().n).to_bytes(256, "big")
    assert em == b"\x00\x01" + b"\xff" * (256 - 3 - 36) + b"\x00" + raw
    assert d.send(0x88, 0, 0, bytes(102), le=0).ok
    assert d.send(0x88, 0, 0, bytes(103), le=0).sw == 0x6700


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha384", "sha512"])
def test_ecdsa_takes_any_hash_length(make: Callable[..., Driver], hash_name: str) -> None:
    d = make("extended", "demo-ecc")
    d.verify(0x82, PW1)
    pub = read_public(d, "aut")
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    msg = b"hash me"
    h = hashlib.new(hash_name, msg).digest()
    sig = d.send(0x88, 0, 0, h, le=0).data
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    algo = {
        "sha1": hashes.SHA1(),
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }[hash_name]
    pub.verify(der, h, ec.ECDSA(Prehashed(algo)))


def test_decipher_rsa(make: Callable[..., Driver]) -> None:
    d = make("short", "demo-rsa")
    pub = read_public(d, "dec")
    assert isinstance(pub, rsa.RSAPublicKey)
    secret = os.urandom(32)
    ct = pub.encrypt(secret, padding.PKCS1v15())
    assert d.long(0x2A, 0x80, 0x86, b"\x00" + ct).sw == 0x6982
    d.verify(0x82, PW1)
    r = d.long(0x2A, 0x80, 0x86, b"\x00" + ct)
    assert r.ok and r.data == secret
    # bad padding / missing indicator byte / wrong length
    assert d.long(0x2A, 0x80, 0x86, b"\x00" + bytes(255) + b"\x05").sw == 0x6A80
    assert d.long(0x2A, 0x80, 0x86, b"\x02" + ct).sw == 0x6A80
    assert d.long(0x2A, 0x80, 0x86, b"\x00" + ct[:-1]).sw == 0x6700


@pytest.mark.parametrize("variant", ["demo-ecc", "demo-25519"])
def test_decipher_ecdh(make: Callable[..., Driver], variant: str) -> None:
    d = make("extended", variant)
    pub = read_public(d, "dec")
    d.verify(0x82, PW1)
    if isinstance(pub, x25519.X25519PublicKey):
        eph = x25519.X25519PrivateKey.generate()
        point = eph.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        expected = eph.exchange(pub)
    else:
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        eph_ec = ec.generate_private_key(pub.curve)
        point = eph_ec.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        expected = eph_ec.exchange(ec.ECDH(), pub)
    r = d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x7F49, tlv(0x86, point))), le=0)
    assert r.ok and r.data == expected
    assert (
        d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x7F49, tlv(0x86, point[:-1]))), le=0).sw == 0x6A80
    )
    assert d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x86, point)), le=0).sw == 0x6A80
    assert d.send(0x2A, 0x80, 0x86, b"\x00" + point, le=0).sw == 0x6A80


def test_mse_swaps_keys(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-rsa")
    d.verify(0x82, PW1)
    dec_pub = read_public(d, "dec")
    aut_pub = read_public(d, "aut")
    msg = b"mse"
    # INTERNAL AUTHENTICATE with the DEC key
    assert d.send(0x22, 0x41, 0xA4, b"\x83\x01\x02").ok
    sig = d.send(0x88, 0, 0, card_input(dec_pub, msg), le=0).data
    verify_sig(dec_pub, sig, msg)
    # DECIPHER with the AUT key
    assert d.send(0x22, 0x41, 0xB8, b"\x83\x01\x03").ok
    assert isinstance(aut_pub, rsa.RSAPublicKey)
    ct = aut_pub.encrypt(b"to aut", padding.PKCS1v15())
    assert d.long(0x2A, 0x80, 0x86, b"\x00" + ct).data == b"to aut"
    assert d.send(0x22, 0x41, 0xB6, b"\x83\x01\x02").sw == 0x6B00
    assert d.send(0x22, 0x41, 0xA4, b"\x83\x01\x01").sw == 0x6A80
    # SELECT restores the defaults
    d.select()
    d.verify(0x82, PW1)
    sig = d.send(0x88, 0, 0, card_input(aut_pub, msg), le=0).data
    verify_sig(aut_pub, sig, msg)


def test_no_key(fresh: Driver) -> None:
    fresh.user()
    assert fresh.send(0x2A, 0x9E, 0x9A, bytes(51), le=0).sw == 0x6A88
    assert fresh.send(0x88, 0, 0, bytes(51), le=0).sw == 0x6A88
    assert fresh.send(0x47, 0x81, 0, b"\xb6\x00", le=0).sw == 0x6A88


def set_attrs(d: Driver, slot: str, attrs: bytes) -> None:
    r = d.put({"sig": 0xC1, "dec": 0xC2, "aut": 0xC3}[slot], attrs)
    assert r.ok, hex(r.sw)
    assert d.get({"sig": 0xC1, "dec": 0xC2, "aut": 0xC3}[slot]).data == attrs


ECC_GEN_CASES = [("sig", b"\x13" + OID[n]) for n in EC_CURVES] + [
    ("sig", b"\x16" + OID["ed25519"]),
    ("dec", b"\x12" + OID["cv25519"]),
    ("dec", b"\x12" + OID["brainpoolP384r1"]),
    ("aut", b"\x13" + OID["nistp521"]),
]


@pytest.mark.parametrize(("slot", "attrs"), ECC_GEN_CASES)
def test_generate_ecc(make: Callable[..., Driver], slot: str, attrs: bytes) -> None:
    d = make("short")
    assert d.send(0x47, 0x80, 0x00, CRT[slot], le=0).sw == 0x6982
    d.admin()
    set_attrs(d, slot, attrs)
    r = d.send(0x47, 0x80, 0x00, CRT[slot], le=0)
    assert r.ok
    pub = public_from_template(attrs, r.data)
    assert d.send(0x47, 0x81, 0x00, CRT[slot], le=0).data == r.data
    idx = {"sig": 0, "dec": 1, "aut": 2}[slot]
    assert d.get(0x00DE).data[2 * idx + 1] == 0x01
    # generation does not write fingerprints: the host does
    assert d.get(0x00C5).data == bytes(60)
    if slot != "dec":
        d.user()
        msg = b"generated"
        ins = (0x2A, 0x9E, 0x9A) if slot == "sig" else (0x88, 0, 0)
        sig = d.send(*ins, card_input(pub, msg), le=0).data
        verify_sig(pub, sig, msg)


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_generate_rsa(make: Callable[..., Driver], bits: int) -> None:
    d = make("short" if bits == 3072 else "extended")
    d.admin()
    set_attrs(d, "aut", b"\x01" + bits.to_bytes(2, "big") + b"\x00\x20\x00")
    r = d.long(0x47, 0x80, 0x00, CRT["aut"])
    assert r.ok
    pub = public_from_template(d.get(0x00C3).data, r.data)
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == bits
    assert pub.public_numbers().e == 65537
    d.verify(0x82, PW1)
    msg = b"rsa generated"
    sig = d.send(0x88, 0, 0, card_input(pub, msg), le=0).data
    verify_sig(pub, sig, msg)


def test_generate_resets_signature_counter(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-25519")
    d.verify(0x81, PW1)
    d.send(0x2A, 0x9E, 0x9A, b"m", le=0)
    assert d.get(0x0093).data == b"\x00\x00\x01"
    d.admin()
    assert d.send(0x47, 0x80, 0, CRT["sig"], le=0).ok
    assert d.get(0x0093).data == b"\x00\x00\x00"


def test_put_algorithm_attributes(fresh: Driver) -> None:
    assert fresh.put(0x00C1, b"\x13" + OID["nistp256"]).sw == 0x6982
    fresh.admin()
    assert fresh.put(0x00C1, b"\x12" + OID["nistp256"]).sw == 0x6A80  # ECDH for SIG
    assert fresh.put(0x00C2, b"\x13" + OID["nistp256"]).sw == 0x6A80  # ECDSA for DEC
    assert fresh.put(0x00C1, b"\x01\x04\x00\x00\x20\x00").sw == 0x6A80  # RSA-1024
    assert fresh.put(0x00C1, b"\x13\x2b\x01").sw == 0x6A80  # unknown curve
    assert fresh.put(0x00C1, b"\x16" + OID["cv25519"]).sw == 0x6A80
    assert fresh.put(0x00C1, b"").sw == 0x6A80
    assert fresh.put(0x00C1, b"\x13" + OID["nistp256"] + b"\xff").sw == 0x9000
    assert fresh.put(0x00C1, b"\x01\x0c\x00\x00\x11\x02").sw == 0x9000  # RSA-3072, e 17 bits
    # changing the attributes removes the key
    fresh.send(0x47, 0x80, 0, CRT["sig"], le=0)
    assert fresh.get(0x00DE).data[1] == 0x01
    fresh.put(0x00C1, b"\x01\x08\x00\x00\x20\x00")
    assert fresh.get(0x00DE).data[1] == 0x00
    assert fresh.send(0x47, 0x81, 0, CRT["sig"], le=0).sw == 0x6A88


# -- key import ------------------------------------------------------------------------------
def import_template(slot: str, parts: list[tuple[int, bytes]]) -> bytes:
    header = b"".join(
        (
            bytes([t])
            + (
                bytes([len(v)])
                if len(v) < 0x80
                else (
                    b"\x81" + bytes([len(v)])
                    if len(v) < 256
                    else b"\x82" + len(v).to_bytes(2, "big")
                )
            )
        )
        for t, v in parts
    )
    values = b"".join(v for _, v in parts)
    return tlv(0x4D, CRT[slot] + tlv(0x7F48, header) + tlv(0x5F48, values))


def rsa_parts(key: rsa.RSAPrivateKey, crt: bool, with_n: bool) -> list[tuple[int, bytes]]:
    pn = key.private_numbers()
    half = key.key_size // 16
    parts = [
        (0x91, pn.public_numbers.e.to_bytes(3, "big")),
        (0x92, pn.p.to_bytes(half, "big")),
        (0x93, pn.q.to_bytes(half, "big")),
    ]
    if crt:
        parts += [
            (0x94, pn.iqmp.to_bytes(half, "big")),
            (0x95, pn.dmp1.to_bytes(half, "big")),
            (0x96, pn.dmq1.to_bytes(half, "big")),
        ]
    if with_n:
        parts.append((0x97, pn.public_numbers.n.to_bytes(key.key_size // 8, "big")))
    return parts


@pytest.mark.parametrize(("crt", "with_n"), [(False, False), (True, False), (True, True)])
def test_import_rsa(make: Callable[..., Driver], profile: str, crt: bool, with_n: bool) -> None:
    d = make(profile)
    key = rsa.generate_private_key(65537, 2048)
    data = import_template("sig", rsa_parts(key, crt, with_n))
    assert d.long(0xDB, 0x3F, 0xFF, data).sw == 0x6982
    d.admin()
    assert d.long(0xDB, 0x3F, 0xFF, data).sw == 0x9000
    assert d.get(0x00DE).data[:2] == b"\x01\x02"
    assert read_public(d, "sig") == key.public_key()
    d.verify(0x81, PW1)
    sig = d.send(0x2A, 0x9E, 0x9A, card_input(key.public_key(), b"imp"), le=0).data
    verify_sig(key.public_key(), sig, b"imp")


def test_import_rsa_rejects_mismatches(make: Callable[..., Driver]) -> None:
    d = make("extended")
    d.admin()
    key = rsa.generate_private_key(65537, 2048)
    parts = rsa_parts(key, True, True)
    bad_n = [(t, v if t != 0x97 else bytes(255) + b"\x01") for t, v in parts]
    assert d.long(0xDB, 0x3F, 0xFF, import_template("sig", bad_n)).sw == 0x6A80
    key3072 = rsa.generate_private_key(65537, 3072)  # attributes still say 2048
    assert (
        d.long(0xDB, 0x3F, 0xFF, import_template("sig", rsa_parts(key3072, False, False))).sw
        == 0x6A80
    )
    assert d.long(0xDB, 0x3F, 0xFE, import_template("sig", parts)).sw == 0x6B00
    assert d.long(0xDB, 0x3F, 0xFF, tlv(0x4D, b"\xb6\x00")).sw == 0x6A80
    assert d.long(0xDB, 0x3F, 0xFF, b"\x4d\x05\xb6").sw == 0x6A80


@pytest.mark.parametrize(
    ("slot", "curve", "algo"),
    [
        ("sig", "nistp256", 0x13),
        ("aut", "brainpoolP512r1", 0x13),
        ("dec", "nistp384", 0x12),
        ("sig", "secp256k1", 0x13),
        ("aut", "ed25519", 0x16),
        ("dec", "cv25519", 0x12),
    ],
)
@pytest.mark.parametrize("with_pub", [False, True])
def test_import_ecc(
    make: Callable[..., Driver], slot: str, curve: str, algo: int, with_pub: bool
) -> None:
    d = make("short")
    d.admin()
    set_attrs(d, slot, bytes([algo]) + OID[curve] + (b"\xff" if with_pub else b""))
    key: object
    if curve == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        scalar = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    elif curve == "cv25519":
        key = x25519.X25519PrivateKey.generate()
        native = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        scalar = native[::-1]  # OpenPGP MPI order
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        key = ec.generate_private_key(EC_CURVES[curve])
        size = (key.curve.key_size + 7) // 8
        scalar = key.private_numbers().private_value.to_bytes(size, "big")
        pub = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    parts = [(0x92, scalar)] + ([(0x99, pub)] if with_pub else [])
    assert d.send(0xDB, 0x3F, 0xFF, import_template(slot, parts)).sw == 0x9000
    got = read_public(d, slot)
    assert got == key.public_key()  # type: ignore[attr-defined]
    idx = {"sig": 0, "dec": 1, "aut": 2}[slot]
    assert d.get(0x00DE).data[2 * idx + 1] == 0x02
    if with_pub:
        wrong = [(0x92, scalar), (0x99, bytes(len(pub)))]
        assert d.send(0xDB, 0x3F, 0xFF, import_template(slot, wrong)).sw == 0x6A80


def test_import_cv25519_then_decipher(make: Callable[..., Driver]) -> None:
    d = make("extended")
    d.admin()
    set_attrs(d, "dec", b"\x12" + OID["cv25519"])
    key = x25519.X25519PrivateKey.generate()
    native = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert d.send(0xDB, 0x3F, 0xFF, import_template("dec", [(0x92, native[::-1])])).ok
    eph = x25519.X25519PrivateKey.generate()
    point = eph.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    d.verify(0x82, PW1)
    r = d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x7F49, tlv(0x86, point))), le=0)
    assert r.data == eph.exchange(key.public_key())


@pytest.mark.parametrize("curve", [*EC_CURVES, "cv25519"])
def test_ecdh_every_curve(make: Callable[..., Driver], curve: str) -> None:
    d = make("short")
    d.admin()
    set_attrs(d, "dec", b"\x12" + OID[curve])
    r = d.send(0x47, 0x80, 0x00, CRT["dec"], le=0)
    pub = public_from_template(b"\x12" + OID[curve], r.data)
    if isinstance(pub, x25519.X25519PublicKey):
        eph = x25519.X25519PrivateKey.generate()
        point = eph.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        expected = eph.exchange(pub)
    else:
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        eph_ec = ec.generate_private_key(pub.curve)
        point = eph_ec.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        expected = eph_ec.exchange(ec.ECDH(), pub)
    d.verify(0x82, PW1)
    out = d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x7F49, tlv(0x86, point))), le=0)
    assert out.ok and out.data == expected


@pytest.mark.parametrize("curve", list(EC_CURVES))
def test_ecdsa_every_curve_with_sha512(make: Callable[..., Driver], curve: str) -> None:
    d = make("extended")
    d.admin()
    set_attrs(d, "aut", b"\x13" + OID[curve])
    pub = public_from_template(
        b"\x13" + OID[curve], d.send(0x47, 0x80, 0x00, CRT["aut"], le=0).data
    )
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    d.verify(0x82, PW1)
    h = hashlib.sha512(b"every curve").digest()
    sig = d.send(0x88, 0, 0, h, le=0).data
    olen = (pub.curve.key_size + 7) // 8
    assert len(sig) == 2 * olen
    der = encode_dss_signature(int.from_bytes(sig[:olen], "big"), int.from_bytes(sig[olen:], "big"))
    # the card truncates a hash longer than the field, as ECDSA itself does
    used = h[:olen] if len(h) > olen else h
    algo = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(used)]
    pub.verify(der, used, ec.ECDSA(Prehashed(algo)))


def test_mse_with_keys_that_cannot_do_it(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-25519")
    d.verify(0x82, PW1)
    # INTERNAL AUTHENTICATE with the X25519 DEC key: not a signing key
    assert d.send(0x22, 0x41, 0xA4, b"\x83\x01\x02").ok
    assert d.send(0x88, 0, 0, b"msg", le=0).sw == 0x6985
    # DECIPHER with the Ed25519 AUT key
    assert d.send(0x22, 0x41, 0xB8, b"\x83\x01\x03").ok
    point = bytes(range(32))
    assert d.send(0x2A, 0x80, 0x86, tlv(0xA6, tlv(0x7F49, tlv(0x86, point))), le=0).sw == 0x6985
    # an ECDH P-256 DEC key can still sign after MSE (it is an EC key)
    e = make("extended", "demo-ecc")
    e.verify(0x82, PW1)
    assert e.send(0x22, 0x41, 0xA4, b"\x83\x01\x02").ok
    pub = read_public(e, "dec")
    sig = e.send(0x88, 0, 0, card_input(pub, b"m"), le=0).data
    verify_sig(pub, sig, b"m")
