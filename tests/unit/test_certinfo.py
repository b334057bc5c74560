"""opcard.certinfo (issue #15): ``opcard status`` reads its certificates without ``cryptography``.

Differential against ``cryptography`` (what ``opcard status`` showed before, and still shows
for what the reader hands over): certificates built with ``CertificateBuilder`` (names drawn
from every NameOID and string type, characters RFC 4514 escapes, multi-valued RDNs, serials,
dates through 9999, extensions, every key and signature algorithm of OpenPGP cards), validity
times spliced in by hand (before 1950, GeneralizedTime, malformed), and mutated or random DER.
Each time: when the reader answers, its answer is cryptography's and cryptography did not warn;
whatever it does, :func:`certinfo.certificate_fields` gives what cryptography gives (fields,
error text, or exception). Plus the guard: ``opcard status`` on a card with ordinary
certificates does not import ``cryptography`` (a subprocess replaying the card's answers).
"""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, x448, x25519
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from opcard import certinfo

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
DER = serialization.Encoding.DER

Outcome = object


# --- the reference and the comparison -------------------------------------------------------


def reference(der: bytes) -> tuple[Outcome, list[str]]:
    """What ``opcard status`` showed before #15 (cryptography), and cryptography's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = x509.load_der_x509_certificate(der)
            out: Outcome = {
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial_number": f"{cert.serial_number:X}",
                "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        except ValueError as e:
            out = {"error": f"not a valid X.509 certificate: {e}"}
        except Exception as e:  # e.g. InvalidVersion: status let it through, and still does
            out = ("raised", type(e).__name__, str(e))
    return out, [str(w.message) for w in caught]


def ours(der: bytes) -> Outcome:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return certinfo.certificate_fields(der)
        except Exception as e:
            return ("raised", type(e).__name__, str(e))


def check(der: bytes) -> dict[str, str] | None:
    """Compare with cryptography; the reader's own answer (None: it handed over)."""
    expected, warned = reference(der)
    try:
        read = certinfo._read(der)  # only _Unsure may come out: anything else is a flaw
    except certinfo._Unsure:
        read = None
    if read is not None:
        assert read == expected
        assert warned == []
    assert certinfo.read_fields(der) == read
    assert ours(der) == expected
    return read


# --- DER by hand (for certificates that CertificateBuilder does not make) -------------------


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | (n.bit_length() + 7) // 8])
        + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + length + value


def children(value: bytes) -> list[tuple[int, bytes]]:
    """The elements of a constructed value built by cryptography (well-formed DER)."""
    out, i = [], 0
    while i < len(value):
        tag, n, i = value[i], value[i + 1], i + 2
        if n & 0x80:
            k = n & 0x7F
            n, i = int.from_bytes(value[i : i + k], "big"), i + k
        out.append((tag, value[i : i + n]))
        i += n
    return out


def with_tbs(
    der: bytes, change: Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]]
) -> bytes:
    """``der`` with its TBSCertificate's elements changed (the signature is left as it was:
    cryptography does not verify it when loading)."""
    ((_, cert),) = children(der)
    (_, tbs), *rest = children(cert)
    elements = change(children(tbs))
    body = tlv(0x30, b"".join(tlv(t, v) for t, v in elements))
    return tlv(0x30, body + b"".join(tlv(t, v) for t, v in rest))


def with_validity(der: bytes, not_before: bytes, not_after: bytes) -> bytes:
    # elements: version, serial, signature, issuer, validity, subject, spki, extensions
    return with_tbs(der, lambda e: [*e[:4], (0x30, not_before + not_after), *e[5:]])


def with_subject(der: bytes, name: bytes) -> bytes:
    return with_tbs(der, lambda e: [*e[:5], (0x30, name), *e[6:]])


# --- keys and certificates ------------------------------------------------------------------

ISSUER_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ISSUER = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opcard test CA")])
NOT_BEFORE = dt.datetime(2025, 1, 1)
NOT_AFTER = dt.datetime(2045, 1, 1)


def build(
    subject: x509.Name = ISSUER,
    *,
    issuer: x509.Name = ISSUER,
    serial: int = 0x1234,
    not_before: dt.datetime = NOT_BEFORE,
    not_after: dt.datetime = NOT_AFTER,
    public_key: Any = None,
    key: Any = ISSUER_KEY,
    algorithm: Any = None,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    rsa_padding: Any = None,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .public_key(public_key or ISSUER_KEY.public_key())
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    if rsa_padding is not None:
        return builder.sign(key, algorithm, rsa_padding=rsa_padding).public_bytes(DER)
    return builder.sign(key, algorithm).public_bytes(DER)


#: An ordinary certificate (Ed25519, CN only, UTCTime) to change by hand.
BASE = build()


def demo_der(path: str) -> bytes:
    return x509.load_pem_x509_certificate((DEMO / path).read_bytes()).public_bytes(DER)


DEMO_CERTS = sorted(
    str(p.relative_to(DEMO)) for p in DEMO.rglob("*.pem") if not p.name.endswith("key.pem")
)


# --- ordinary certificates: read without cryptography, as cryptography reads them ----------


@pytest.mark.parametrize("path", DEMO_CERTS)
def test_demo_certificates_are_read_without_cryptography(path: str) -> None:
    der = demo_der(path)
    read = check(der)
    assert read is not None
    assert read["subject"].startswith("CN=opcard demo")


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
EC_CURVES = [
    ec.SECP256R1(),
    ec.SECP384R1(),
    ec.SECP521R1(),
    ec.SECP256K1(),
    ec.BrainpoolP256R1(),
    ec.BrainpoolP384R1(),
    ec.BrainpoolP512R1(),
]
HASHES = [hashes.SHA224(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]


def _signers() -> list[Any]:
    p256 = ec.generate_private_key(ec.SECP256R1())
    out = [
        pytest.param(ISSUER_KEY, None, id="ed25519"),
        pytest.param(ed448.Ed448PrivateKey.generate(), None, id="ed448"),
    ]
    out += [pytest.param(RSA_KEY, h, id=f"rsa-{h.name}") for h in HASHES]
    out += [pytest.param(p256, h, id=f"ecdsa-{h.name}") for h in HASHES]
    return out


@pytest.mark.parametrize(("key", "algorithm"), _signers())
def test_signature_algorithms(key: Any, algorithm: Any) -> None:
    """The signature algorithms of OpenPGP cards are read."""
    assert check(build(key=key, algorithm=algorithm)) is not None


@pytest.mark.parametrize("identifier", sorted(certinfo._SIGNATURE_ALGORITHMS))
def test_every_known_signature_algorithm_identifier(identifier: bytes) -> None:
    """Each AlgorithmIdentifier the reader knows (SHA-1 RSA too, which CertificateBuilder no
    longer signs with), in both places, loads in cryptography without a warning."""
    ((_, value),) = children(identifier)

    def change(e: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        return [*e[:2], (0x30, value), *e[3:]]

    der = with_tbs(BASE, change)
    ((_, cert),) = children(der)
    tbs, _, signature = children(cert)
    der = tlv(0x30, tlv(*tbs) + identifier + tlv(*signature))
    assert check(der) is not None


@pytest.mark.parametrize("identifier", sorted(certinfo._PUBLIC_KEY_ALGORITHMS))
def test_every_known_public_key_algorithm_identifier(identifier: bytes) -> None:
    def change(e: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        (_, bits) = children(e[6][1])[1]
        return [*e[:6], (0x30, identifier + tlv(0x03, bits)), *e[7:]]

    assert check(with_tbs(BASE, change)) is not None


def _public_keys() -> list[Any]:
    keys: list[Any] = [ec.generate_private_key(c).public_key() for c in EC_CURVES]
    keys += [
        RSA_KEY.public_key(),
        ISSUER_KEY.public_key(),
        ed448.Ed448PrivateKey.generate().public_key(),
    ]
    keys += [
        x25519.X25519PrivateKey.generate().public_key(),
        x448.X448PrivateKey.generate().public_key(),
    ]
    return keys


@pytest.mark.parametrize("public_key", _public_keys(), ids=lambda k: type(k).__name__.strip("_"))
def test_public_key_algorithms(public_key: Any) -> None:
    """The subject keys of OpenPGP cards (RSA, the card's curves, 25519/448) are read."""
    assert check(build(public_key=public_key)) is not None


def test_rsa_pss_is_handed_over_with_the_same_result() -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    der = build(key=RSA_KEY, algorithm=hashes.SHA256(), rsa_padding=pss)
    assert check(der) is None
    assert "subject" in ours(der)  # type: ignore[operator]


EXTENSIONS: list[tuple[x509.ExtensionType, bool]] = [
    (x509.BasicConstraints(ca=True, path_length=0), True),
    (x509.BasicConstraints(ca=False, path_length=None), False),
    (x509.SubjectKeyIdentifier(b"\x01" * 20), False),
    (x509.SubjectAlternativeName([x509.DNSName("example.invalid")]), False),
    (
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        True,
    ),
]


# --- names, serials and dates drawn by hypothesis ------------------------------------------

NAME_OIDS = sorted(
    (v for v in vars(NameOID).values() if isinstance(v, ObjectIdentifier)),
    key=lambda o: o.dotted_string,
)
STRING_TYPES = [t for t in _ASN1Type if t is not _ASN1Type.BitString]
#: Characters RFC 4514 escapes (and some it does not), NUL, non-ASCII, beyond the BMP.
SPECIAL = list(' #,+"\\<>;=\0\t\n\x7f\xa0\xe9\u00df\u20ac\ufeff\U0001f600')
CHARACTERS = st.sampled_from(SPECIAL) | st.characters(codec="utf-8")
PRINTABLE = "ABCXYZabcxyz0189 '()+,-./:=?"


@st.composite
def attributes(draw: st.DrawFn, ordinary: bool = False) -> x509.NameAttribute[Any]:
    if ordinary:  # values and types the reader must handle itself
        oid = draw(st.sampled_from(NAME_OIDS).filter(lambda o: o != NameOID.X500_UNIQUE_IDENTIFIER))
        string_type = draw(
            st.sampled_from(
                [_ASN1Type.UTF8String, _ASN1Type.PrintableString, _ASN1Type.IA5String,
                 _ASN1Type.BMPString, _ASN1Type.UniversalString, _ASN1Type.T61String,
                 _ASN1Type.VisibleString, _ASN1Type.NumericString]
            )
        )  # fmt: skip
        if string_type is _ASN1Type.PrintableString:
            value = draw(st.text(alphabet=PRINTABLE, min_size=1, max_size=12))
        elif string_type is _ASN1Type.BMPString:
            value = draw(st.text(alphabet=st.characters(max_codepoint=0xFFFF, codec="utf-8"),
                                 min_size=1, max_size=12))  # fmt: skip
        else:
            value = draw(st.text(alphabet=CHARACTERS, min_size=1, max_size=12))
        if oid in (NameOID.COUNTRY_NAME, NameOID.JURISDICTION_COUNTRY_NAME):
            value = draw(st.sampled_from(["DE", "FR", "US", "SE"]))
        return x509.NameAttribute(oid, value, string_type)
    oid = draw(st.sampled_from(NAME_OIDS))
    if oid == NameOID.X500_UNIQUE_IDENTIFIER and draw(st.booleans()):
        return x509.NameAttribute(oid, draw(st.binary(max_size=8)), _ASN1Type.BitString)
    string_type = draw(st.none() | st.sampled_from(STRING_TYPES))
    value = draw(st.text(alphabet=CHARACTERS, max_size=70 if draw(st.booleans()) else 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lengths out of bounds: wanted here
        return x509.NameAttribute(oid, value, string_type, _validate=False)


def names(ordinary: bool = False) -> st.SearchStrategy[x509.Name]:
    rdn = st.lists(
        attributes(ordinary),
        min_size=1,
        max_size=3,
        unique_by=lambda a: a.oid if ordinary else (a.oid, a.value),
    ).map(x509.RelativeDistinguishedName)
    return st.lists(rdn, min_size=0 if not ordinary else 1, max_size=4).map(x509.Name)


SERIALS = st.integers(1, 2**159 - 1) | st.sampled_from(
    [1, 0x7F, 0x80, 0xFF, 0x8000, 0x80 << 144, 2**159 - 1, 2**128 + 1]
)
DATES = st.datetimes(
    min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0))
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _build_or_reject(**kw: Any) -> bytes:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build(**kw)
    except (ValueError, TypeError, UnicodeError):  # what the builder refuses to write
        assume(False)
        raise AssertionError("unreachable") from None


@HYPOTHESIS
@given(
    subject=names(),
    issuer=names(),
    serial=SERIALS,
    dates=st.lists(DATES, min_size=2, max_size=2).map(sorted),
    extensions=st.lists(st.sampled_from(EXTENSIONS), max_size=3, unique_by=lambda e: type(e[0])),
)
def test_any_name_serial_and_date_equals_cryptography(
    subject: x509.Name, issuer: x509.Name, serial: int, dates: list[dt.datetime], extensions: Any
) -> None:
    der = _build_or_reject(
        subject=subject, issuer=issuer, serial=serial, not_before=dates[0], not_after=dates[1],
        extensions=tuple(extensions),
    )  # fmt: skip
    check(der)


@HYPOTHESIS
@given(
    subject=names(ordinary=True),
    issuer=names(ordinary=True),
    serial=SERIALS,
    dates=st.lists(DATES, min_size=2, max_size=2).map(sorted),
)
@example(
    subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ' #a,b+c"d\\e<f>g;h=i\0j ')]),
    issuer=x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "#x"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, " "),
                ]
            )
        ]
    ),
    serial=2**159 - 1,
    dates=[dt.datetime(1950, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)],
)
def test_ordinary_names_are_read_without_cryptography(
    subject: x509.Name, issuer: x509.Name, serial: int, dates: list[dt.datetime]
) -> None:
    """Names of the usual string types (escaping, non-ASCII, multi-valued RDNs), any positive
    serial up to 20 bytes and any date: the reader answers itself, as cryptography does."""
    der = build(
        subject=subject, issuer=issuer, serial=serial, not_before=dates[0], not_after=dates[1]
    )
    assert check(der) is not None


# --- validity times by hand: before 1950, GeneralizedTime, malformed --------------------------


def _time_text(d: dt.datetime, generalized: bool) -> bytes:
    year = f"{d.year:04d}" if generalized else f"{d.year % 100:02d}"
    return f"{year}{d:%m%d%H%M%S}Z".encode()


@st.composite
def time_elements(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["utc", "generalized", "mangled", "raw"]))
    d = draw(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
    if how == "utc":
        return tlv(0x17, _time_text(d, False))
    if how == "generalized":
        return tlv(0x18, _time_text(d, True))
    if how == "mangled":  # leap second, fractions, offsets, no Z, day 31 of any month, hour 24
        tag = draw(st.sampled_from([0x17, 0x18]))
        text = _time_text(d, tag == 0x18)
        text = draw(
            st.sampled_from(
                [
                    text[:-3] + b"60Z",
                    text[:-1] + b".5Z",
                    text[:-1] + b".000Z",
                    text[:-1] + b"+0100",
                    text[:-1],
                    text[:-3] + b"Z",
                    text[: len(text) - 11] + b"0231000000Z",
                    text[: len(text) - 9] + b"31000000Z",
                    text[: len(text) - 7] + b"240000Z",
                    text[: len(text) - 11] + b"0229120000Z",
                    text[: len(text) - 11] + b"1300000000Z",
                    text[: len(text) - 11] + b"0000000000Z",
                    b" " + text[1:],
                ]
            )
        )
        return tlv(tag, text)
    tag = draw(st.sampled_from([0x17, 0x18, 0x13, 0x0C, 0x02]))
    return tlv(tag, draw(st.binary(max_size=17)))


@HYPOTHESIS
@given(not_before=time_elements(), not_after=time_elements())
@example(not_before=tlv(0x18, b"19490101000000Z"), not_after=tlv(0x18, b"20500101000000Z"))
@example(not_before=tlv(0x18, b"10000101000000Z"), not_after=tlv(0x18, b"99991231235959Z"))
@example(not_before=tlv(0x18, b"09990101000000Z"), not_after=tlv(0x18, b"20000101000000Z"))
@example(not_before=tlv(0x17, b"500101000000Z"), not_after=tlv(0x17, b"491231235959Z"))
@example(not_before=tlv(0x17, b"000229000000Z"), not_after=tlv(0x18, b"21000229000000Z"))
def test_validity_times_equal_cryptography(not_before: bytes, not_after: bytes) -> None:
    check(with_validity(BASE, not_before, not_after))


@pytest.mark.parametrize(
    ("not_before", "not_after", "shown"),
    [
        (b"19490101000000Z", b"20500101000000Z", ("1949-01-01T00:00:00Z", "2050-01-01T00:00:00Z")),
        (b"10000101000000Z", b"99991231235959Z", ("1000-01-01T00:00:00Z", "9999-12-31T23:59:59Z")),
        (b"16000229120000Z", b"24000229120000Z", ("1600-02-29T12:00:00Z", "2400-02-29T12:00:00Z")),
    ],
)
def test_generalized_time_outside_utctime_years_is_read(
    not_before: bytes, not_after: bytes, shown: tuple[str, str]
) -> None:
    read = check(with_validity(BASE, tlv(0x18, not_before), tlv(0x18, not_after)))
    assert read is not None
    assert (read["not_before"], read["not_after"]) == shown


# --- names by hand: string types cryptography reads its own way, DER order ------------------


def _attribute(oid: bytes, tag: int, value: bytes) -> bytes:
    return tlv(0x30, tlv(0x06, oid) + tlv(tag, value))


CN = bytes([0x55, 4, 3])
O_ = bytes([0x55, 4, 10])


@pytest.mark.parametrize(
    "name",
    [
        tlv(0x31, _attribute(CN, 0x14, b"caf\xc3\xa9")),  # T61String read as UTF-8
        tlv(0x31, _attribute(CN, 0x14, b"caf\xe9")),  # T61String, Latin-1: an error
        tlv(0x31, _attribute(CN, 0x16, b"\xed\xa0\x80")),  # an encoded surrogate
        tlv(0x31, _attribute(CN, 0x13, b"a*b")),  # not a PrintableString character
        tlv(0x31, _attribute(CN, 0x1E, b"\xd8\x3d\xde\x00")),  # BMPString, a surrogate pair
        tlv(0x31, _attribute(CN, 0x1E, b"\x00")),  # BMPString, odd length
        tlv(0x31, _attribute(CN, 0x1C, b"\x00\x00\xd8\x00")),  # UniversalString, surrogate
        tlv(0x31, _attribute(CN, 0x1C, b"\x00\x11\x00\x00")),  # UniversalString, > U+10FFFF
        tlv(0x31, _attribute(CN, 0x04, b"ab")),  # OCTET STRING: cryptography reads text
        tlv(0x31, _attribute(CN, 0x02, b"\x01")),  # INTEGER: an error
        tlv(0x31, _attribute(CN, 0x2C, b"")),  # constructed UTF8String: an error
        tlv(0x31, _attribute(CN, 0x0C, b"")),  # empty CN: cryptography warns
        tlv(0x31, _attribute(bytes([0x55, 4, 6]), 0x13, b"DEU")),  # 3-letter country: warns
        tlv(0x31, _attribute(bytes([0x2A, 3, 0x81, 0x80, 5]), 0x0C, b"z")),  # 1.2.3.16389
        tlv(0x31, _attribute(bytes([0x88, 0x37, 3]), 0x0C, b"z")),  # 2.999.3
        tlv(0x31, _attribute(bytes([0x2A, 0x80, 1]), 0x0C, b"z")),  # non-minimal arc
        tlv(0x31, _attribute(bytes([0x2A, 0x83]), 0x0C, b"z")),  # OID cut short
        tlv(0x31, _attribute(b"", 0x0C, b"z")),  # empty OID
        tlv(0x31, _attribute(CN, 0x0C, b"x") + _attribute(O_, 0x0C, b"y")),  # DER order
        tlv(0x31, _attribute(O_, 0x0C, b"y") + _attribute(CN, 0x0C, b"x")),  # not DER order
        # DER orders whole encodings (the shorter O=y first), not the values (CN first)
        tlv(0x31, _attribute(CN, 0x0C, b"xxxxx") + _attribute(O_, 0x0C, b"y")),
        tlv(0x31, _attribute(O_, 0x0C, b"y") + _attribute(CN, 0x0C, b"xxxxx")),
        tlv(0x31, _attribute(CN, 0x0C, b"x") * 2),  # repeated
        tlv(0x31, _attribute(CN, 0x0C, b"x") + _attribute(CN, 0x13, b"x")),  # same value
        tlv(0x31, _attribute(CN, 0x0C, b"x") + _attribute(CN, 0x0C, b"y")),  # same type
        tlv(0x31, b""),  # empty RDN
        b"",  # empty name
        tlv(0x30, b""),  # not a SET
    ],
    ids=lambda name: name.hex()[:48] or "empty",
)
def test_hand_made_names_equal_cryptography(name: bytes) -> None:
    check(with_subject(BASE, name))


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (tlv(0x31, _attribute(CN, 0x14, b"caf\xc3\xa9")), "CN=caf\xe9"),
        (tlv(0x31, _attribute(bytes([0x2A, 3, 0x81, 0x80, 5]), 0x0C, b"z")), "1.2.3.16389=z"),
        (tlv(0x31, _attribute(bytes([0x88, 0x37, 3]), 0x0C, b"=#")), "2.999.3==#"),
        (tlv(0x31, _attribute(CN, 0x0C, b"x") + _attribute(O_, 0x0C, b"y")), "CN=x+O=y"),
        (tlv(0x31, _attribute(O_, 0x0C, b"y") + _attribute(CN, 0x0C, b"xxxxx")), "O=y+CN=xxxxx"),
        (b"", ""),
    ],
)
def test_hand_made_names_read(name: bytes, shown: str) -> None:
    read = check(with_subject(BASE, name))
    assert read is not None
    assert read["subject"] == shown


# --- versions, serials, structure -----------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e[1:],  # v1: no version
        lambda e: [(0xA0, b"\x02\x01\x00"), *e[1:]],  # v1 encoded: an error (DEFAULT)
        lambda e: [(0xA0, b"\x02\x01\x01"), *e[1:]],  # v2: InvalidVersion
        lambda e: [(0xA0, b"\x02\x01\x03"), *e[1:]],  # "v4": InvalidVersion
        lambda e: [e[0], (0x02, b"\x00"), *e[2:]],  # zero serial: cryptography warns
        lambda e: [e[0], (0x02, b"\x80"), *e[2:]],  # negative serial: warns
        lambda e: [e[0], (0x02, b"\x00\x05"), *e[2:]],  # non-minimal serial
        lambda e: [e[0], (0x02, b""), *e[2:]],  # empty INTEGER
        lambda e: [e[0], (0x02, b"\x01" * 65), *e[2:]],  # 65 bytes: handed over
        lambda e: [e[0], (0x02, b"\x7f" + b"\xff" * 63), *e[2:]],  # 64 bytes: read
        lambda e: [*e, (0xA3, tlv(0x30, b""))],  # empty extensions
        lambda e: [*e, (0xA3, tlv(0x30, tlv(0x30, tlv(6, b"\x55\x1d\x13") + tlv(4, b"\x30\x00"))))],
        lambda e: [
            *e,
            (0xA3, tlv(0x30, tlv(0x30, tlv(6, b"\x55\x1d\x13") + tlv(1, b"\x00") + tlv(4, b"")))),
        ],
        lambda e: [
            *e,
            (0xA3, tlv(0x30, tlv(0x30, tlv(6, b"\x55\x1d\x13") + tlv(1, b"\xff") + tlv(4, b"")))),
        ],
        lambda e: [
            *e,
            (0xA3, tlv(0x30, tlv(0x30, tlv(6, b"\x55\x1d\x13") + tlv(1, b"\x01") + tlv(4, b"")))),
        ],
        lambda e: [*e, (0x81, b"\x00\x01")],  # issuerUniqueID
        lambda e: [*e[:2], (0x30, bytes.fromhex("06032b6570") + b"\x05\x00"), *e[3:]],  # params
        lambda e: [*e[:2], (0x30, bytes.fromhex("06082a8648ce3d040302") + b"\x05\x00"), *e[3:]],
        lambda e: [*e[:2], (0x30, bytes.fromhex("06082a8648ce3d040302")), *e[3:]],  # mismatch
        lambda e: [*e[:6], (0x30, e[6][1][:-1] + b"\x01"), *e[7:]],  # BIT STRING padding
    ],
)
def test_structure_equals_cryptography(change: Callable[[list[tuple[int, bytes]]], Any]) -> None:
    check(with_tbs(BASE, change))


def test_cryptography_errors_and_exceptions_are_kept() -> None:
    assert ours(b"\x30\x00") == reference(b"\x30\x00")[0]
    assert ours(b"\x30\x00")["error"].startswith("not a valid X.509 certificate: ")  # type: ignore[index]
    v2 = with_tbs(BASE, lambda e: [(0xA0, b"\x02\x01\x01"), *e[1:]])
    assert ours(v2) == ("raised", "InvalidVersion", "1 is not a valid X509 version")


# --- mutated and random DER -----------------------------------------------------------------

MUTATED = demo_der("demo-ecc/aut-cert.pem")


def test_every_byte_of_a_real_certificate_changed_or_cut() -> None:
    """Every byte of a real certificate changed four ways, and every truncation."""
    answered = 0
    for i, byte in enumerate(MUTATED):
        for new in {byte ^ 0x01, byte ^ 0x80, 0x00, 0xFF} - {byte}:
            answered += check(MUTATED[:i] + bytes([new]) + MUTATED[i + 1 :]) is not None
    for i in range(len(MUTATED)):
        check(MUTATED[:i])
    check(MUTATED + b"\x00")
    assert answered > len(MUTATED)  # the changes inside values are still read


@HYPOTHESIS
@given(
    base=st.sampled_from([MUTATED, demo_der("demo-rsa/sig-cert.pem"), BASE]),
    edits=st.lists(
        st.tuples(st.integers(0, 2000), st.sampled_from("xids"), st.binary(min_size=1, max_size=4)),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_certificates_equal_cryptography(
    base: bytes, edits: list[tuple[int, str, bytes]]
) -> None:
    der = bytearray(base)
    for position, how, data in edits:
        i = position % (len(der) + 1)
        if how == "x":
            der[i : i + len(data)] = bytes(
                a ^ b for a, b in zip(der[i : i + len(data)], data, strict=False)
            )
        elif how == "i":
            der[i:i] = data
        elif how == "d":
            del der[i : i + len(data)]
        else:
            der[i : i + len(data)] = data
    check(bytes(der))


def der_trees() -> st.SearchStrategy[bytes]:
    """DER-like trees: any tag, right or wrong lengths (long form, indefinite, past the end)."""

    def element(value: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        def make(tag: int, body: bytes, length: str) -> bytes:
            if length == "right":
                return tlv(tag, body)
            if length == "indefinite":
                return bytes([tag, 0x80]) + body + b"\x00\x00"
            if length == "long":
                return bytes([tag, 0x82]) + len(body).to_bytes(2, "big") + body
            return bytes([tag, min(len(body) + 5, 0x7F)]) + body  # past the end

        tags = st.sampled_from(
            [0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17, 0x18, 0xA0, 0xA3, 0x1F]
        )
        lengths = st.sampled_from(["right", "right", "right", "indefinite", "long", "short"])
        return st.builds(make, tags, value, lengths)

    leaves = st.binary(max_size=12)
    return st.recursive(
        leaves, lambda inner: element(st.lists(inner, max_size=4).map(b"".join)), max_leaves=20
    )


@HYPOTHESIS
@given(der=der_trees() | st.binary(max_size=64))
def test_random_der_equals_cryptography(der: bytes) -> None:
    check(der)


@pytest.mark.parametrize(
    "der",
    [
        b"\x30\x80" * 30000,  # deep indefinite nesting
        b"\x30\x82\xff\xff" * 16000,  # deep nesting, lengths past the end
        b"\x30\x84\xff\xff\xff\xff" + b"\x00" * 16,  # 4 GiB claimed
        b"\x30\x89" + b"\xff" * 9 + b"\x30\x00",  # a 72-bit length
        b"\x30\x81\x05" + b"\x00" * 5,  # non-minimal length
        b"\x3f\x81\x01\x00",  # high tag number
        tlv(0x30, b"\x00" * 70000),  # above MAX_SIZE: handed over
    ],
)
def test_hostile_input_is_handed_over_quickly(der: bytes) -> None:
    start = time.perf_counter()
    assert certinfo.read_fields(der) is None
    assert time.perf_counter() - start < 0.05
    assert ours(der) == reference(der)[0]


def test_a_flaw_of_the_reader_is_a_hand_over(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(der: bytes) -> dict[str, str]:
        raise IndexError("a flaw")

    monkeypatch.setattr(certinfo, "_read", broken)
    der = demo_der("demo-ecc/aut-cert.pem")
    assert certinfo.read_fields(der) is None
    assert ours(der) == reference(der)[0]


@pytest.mark.parametrize("data", [b"", b"abc", b"\x00" * 1000, MUTATED])
def test_sha256_hex_is_hashlibs(data: bytes) -> None:
    import hashlib

    assert certinfo.sha256_hex(data) == hashlib.sha256(data).hexdigest().upper()


def test_sha256_hex_without_the_builtin_module() -> None:
    """Where CPython's own SHA-2 module is missing (another interpreter), hashlib gives it."""
    code = (
        "import sys\n"
        "sys.modules['_sha2'] = sys.modules['_sha256'] = None\n"
        "from opcard.certinfo import sha256_hex\n"
        "print(sha256_hex(b'abc'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert proc.stdout.strip() == (
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    )


def test_reading_loads_nothing_else() -> None:
    """certinfo brings no module of its own to the command that uses it (not even typing)."""
    der = demo_der("demo-rsa/aut-cert.pem")
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from opcard.certinfo import read_fields, sha256_hex\n"
        f"assert read_fields({der!r}) is not None\n"
        f"sha256_hex({der!r})\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert set(ast.literal_eval(proc.stdout)) - {"_sha2", "_sha256"} == {
        "__future__",
        "opcard",
        "opcard.certinfo",
    }


# --- the guard: opcard status does not import cryptography ---------------------------------

REPLAY = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n"))
script = {script!r}
atr = bytes.fromhex({atr!r})
from apdu.transport.loopback import LoopbackTransport
from opcard.card import Card
from opcard.cli.backend import use_backend

def transmit(apdu):
    sent, answer = script.pop(0)
    assert apdu.hex() == sent, (apdu.hex(), sent)
    return bytes.fromhex(answer)

class Replay:
    def open_card(self, *, serial, reader):
        return Card(LoopbackTransport(transmit, atr, "Replay 00"))

    def readers(self):
        return []

with use_backend(Replay()):
    from opcard.cli import main
    main(sys.argv[1:])
"""


@pytest.mark.parametrize("variant", ["demo-ecc", "demo-rsa"])
@pytest.mark.parametrize("args", [["status"], ["status", "--json"]])
def test_status_does_not_import_cryptography(variant: str, args: list[str]) -> None:
    """``opcard status`` (text and JSON) on a card with ordinary certificates, in a fresh
    interpreter replaying the emulated card's answers: the certificates are shown as
    cryptography shows them, and ``cryptography`` is never imported."""
    from fixtures.card import OpenPGPCard
    from fixtures.personalize import personalize

    card = OpenPGPCard("extended")
    personalize(card, variant)
    card.power_on()
    script: list[tuple[str, str]] = []

    def transmit(apdu: bytes) -> bytes:
        answer = bytes(card.transmit(apdu))
        script.append((apdu.hex(), answer.hex()))
        return answer

    # the exchange opcard status has with this card (recorded by running it once here)
    from click.testing import CliRunner

    from apdu.transport.loopback import LoopbackTransport
    from opcard.card import Card
    from opcard.cli.app import cli
    from opcard.cli.backend import use_backend

    class Recording:
        def open_card(self, *, serial: str | None, reader: str | None) -> Card:
            return Card(LoopbackTransport(transmit, card.atr, "Replay 00"))

        def readers(self) -> list[Any]:
            return []

    with use_backend(Recording()):
        recorded = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert recorded.exit_code == 0, recorded.output

    code = REPLAY.format(script=script, atr=card.atr.hex())
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, check=False, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == recorded.output
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("MODULES ")]
    modules = set(line.split()[1:])
    assert "opcard.certinfo" in modules  # the certificates were read
    assert sorted(m for m in modules if m.split(".")[0] in {"cryptography", "asn1crypto"}) == []
    assert "_hashlib" not in modules  # the SHA-256 without OpenSSL's hashlib (2.5 ms)
    for slot in ("sig", "dec", "aut"):  # each certificate as cryptography shows it
        cert = x509.load_pem_x509_certificate((DEMO / variant / f"{slot}-cert.pem").read_bytes())
        assert cert.subject.rfc4514_string() in proc.stdout
        assert cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ") in proc.stdout
        if "--json" in args:
            assert f'"serial_number": "{cert.serial_number:X}"' in proc.stdout
