"""Property tests: every parser returns a value or raises ApduError, for any bytes; what it
returns serialises and parses back to the same value; built values round-trip."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpgp_vectors import ALL_ARD
from parsers import PARSERS, reparse

from apdu import tlv
from apdu.errors import ApduError
from apdu.openpgp.constants import (
    AlgorithmId,
    Curve,
    EcImportFormat,
    ExtendedCapability,
    KdfAlgorithm,
    KdfHash,
    RsaImportFormat,
)
from apdu.openpgp.objects import (
    Aid,
    AlgorithmInformation,
    ApplicationRelatedData,
    CardholderData,
    EcAttributes,
    ExtendedCapabilities,
    ExtendedLengthInfo,
    Fingerprints,
    GenerationTimes,
    KdfDo,
    KeyInformation,
    PwStatus,
    RsaAttributes,
    SecuritySupportTemplate,
    Uif,
    parse_algorithm_attributes,
)

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(name: str, data: bytes) -> None:
    try:
        value = PARSERS[name](data)
    except ApduError:
        return
    assert reparse(name, value) == value


@pytest.mark.parametrize("name", sorted(PARSERS))
@_SETTINGS
@given(data=st.binary(max_size=300))
def test_parsers_total_on_arbitrary_bytes(name: str, data: bytes) -> None:
    _check(name, data)


_TAGS = [
    0x4F,
    0x5F52,
    0x73,
    0x7F66,
    0x7F74,
    0xC0,
    0xC1,
    0xC4,
    0xC5,
    0xC6,
    0xCD,
    0xDE,
    0xD6,
    0xDA,
    0x81,
    0x82,
    0x83,
    0x84,
    0x86,
    0x93,
    0x5B,
    0x5F2D,
    0x5F35,
    0x02,
    0x6E,
    0x65,
    0x7A,
    0xF9,
    0xFA,
    0x7F49,
]


@st.composite
def tlv_soup(draw: st.DrawFn, depth: int = 2) -> bytes:
    """Concatenated TLVs with tags the parsers look for (constructed ones may nest)."""
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        tag = draw(st.sampled_from(_TAGS))
        if depth and tlv.Tlv(tag, b"").constructed and draw(st.booleans()):
            value = draw(tlv_soup(depth - 1))
        else:
            value = draw(st.binary(max_size=40))
        parts.append(tlv.build(tag, value))
    return b"".join(parts)


@pytest.mark.parametrize("name", sorted(PARSERS))
@_SETTINGS
@given(data=tlv_soup())
def test_parsers_total_on_tlv_soup(name: str, data: bytes) -> None:
    _check(name, data)


@pytest.mark.parametrize("name", sorted(ALL_ARD))
@_SETTINGS
@given(data=st.data())
def test_ard_parser_total_on_mutated_real_cards(name: str, data: st.DataObject) -> None:
    raw = bytearray(ALL_ARD[name])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    _check("ApplicationRelatedData", bytes(raw))


# --- build, serialise, parse -----------------------------------------------------------------

_u8 = st.integers(0, 0xFF)
_u16 = st.integers(0, 0xFFFF)


@_SETTINGS
@given(st.tuples(_u8, _u8), _u16, st.integers(0, 0xFFFFFFFF), st.binary(min_size=2, max_size=2))
def test_aid_round_trip(
    version: tuple[int, int], manufacturer: int, serial: int, rfu: bytes
) -> None:
    aid = Aid(version, manufacturer, serial, rfu)
    assert Aid.parse(bytes(aid)) == aid
    assert len(aid.serial_hex) == 8


_rsa = st.builds(
    RsaAttributes,
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.one_of(st.none(), st.sampled_from(list(RsaImportFormat))),
)
_ec = st.builds(
    EcAttributes,
    st.sampled_from([AlgorithmId.ECDH, AlgorithmId.ECDSA, AlgorithmId.EDDSA]),
    st.sampled_from([c.oid for c in Curve]),
    st.one_of(st.none(), st.sampled_from(list(EcImportFormat))),
)


@_SETTINGS
@given(st.one_of(_rsa, _ec))
def test_attributes_round_trip(attrs: RsaAttributes | EcAttributes) -> None:
    assert parse_algorithm_attributes(bytes(attrs)) == attrs


@_SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from([0xC1, 0xC2, 0xC3, 0xDA]), st.one_of(_rsa, _ec)), max_size=30
    )
)
def test_algorithm_information_round_trip(entries: list[tuple[int, RsaAttributes]]) -> None:
    info = AlgorithmInformation(tuple(entries))
    assert AlgorithmInformation.parse(bytes(info)) == info


@_SETTINGS
@given(st.lists(_u8, min_size=7, max_size=7), st.binary(max_size=3))
def test_pw_status_round_trip(values: list[int], extra: bytes) -> None:
    a, b, c, d, e, f, g = values
    status = PwStatus(a, b, c, d, e, f, g, extra=extra)
    assert PwStatus.parse(bytes(status)) == status


@_SETTINGS
@given(
    st.lists(st.binary(min_size=20, max_size=20), max_size=4),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=4),
    st.lists(st.tuples(_u8, _u8), max_size=5),
)
def test_lists_round_trip(fps: list[bytes], times: list[int], info: list[tuple[int, int]]) -> None:
    assert Fingerprints.parse(bytes(Fingerprints(tuple(fps)))) == Fingerprints(tuple(fps))
    assert GenerationTimes.parse(bytes(GenerationTimes(tuple(times)))).entries == tuple(times)
    assert KeyInformation.parse(bytes(KeyInformation(tuple(info)))).entries == tuple(info)


@_SETTINGS
@given(
    st.one_of(st.none(), st.binary(max_size=39)),
    st.one_of(st.none(), st.binary(max_size=8)),
    st.one_of(st.none(), st.binary(max_size=1)),
    st.integers(0, 0xFFFFFF),
    st.tuples(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF)),
    _u8,
    st.one_of(st.none(), _u8),
)
def test_small_objects_round_trip(
    name: bytes | None,
    language: bytes | None,
    sex: bytes | None,
    counter: int,
    lengths: tuple[int, int],
    mode: int,
    feature: int | None,
) -> None:
    holder = CardholderData(name, language, sex)
    assert CardholderData.parse(bytes(holder)) == holder
    sst = SecuritySupportTemplate(counter)
    assert SecuritySupportTemplate.parse(bytes(sst)) == sst
    eli = ExtendedLengthInfo(*lengths)
    assert ExtendedLengthInfo.parse(bytes(eli)) == eli
    uif = Uif(mode, feature)
    assert Uif.parse(bytes(uif)) == uif


@_SETTINGS
@given(_u8, _u8, _u16, _u16, _u16, _u8, _u8, st.booleans())
def test_extended_capabilities_round_trip(
    flags: int, sm: int, challenge: int, cert: int, special: int, pin2: int, mse: int, v3: bool
) -> None:
    if v3:
        caps = ExtendedCapabilities(
            ExtendedCapability(flags), sm, challenge, cert, special, pin2, mse
        )
    else:
        caps = ExtendedCapabilities(
            ExtendedCapability(flags),
            sm,
            challenge,
            cert,
            max_command_length=special,
            max_response_length=pin2 << 8 | mse,
        )
    assert ExtendedCapabilities.parse(bytes(caps), v3=v3) == caps


@_SETTINGS
@given(
    st.sampled_from(list(KdfHash)),
    st.integers(1, 0xFFFFFFFF),
    st.binary(min_size=1, max_size=16),
    st.one_of(st.none(), st.binary(max_size=16)),
    st.one_of(st.none(), st.binary(max_size=16)),
    st.one_of(st.none(), st.binary(min_size=32, max_size=64)),
)
def test_kdf_do_round_trip(
    hash_algorithm: KdfHash,
    count: int,
    salt1: bytes,
    salt2: bytes | None,
    salt3: bytes | None,
    initial: bytes | None,
) -> None:
    kdf = KdfDo(
        KdfAlgorithm.ITERSALTED_S2K, hash_algorithm, count, salt1, salt2, salt3, initial, initial
    )
    assert KdfDo.parse(bytes(kdf)) == kdf


@_SETTINGS
@given(st.sampled_from(sorted(ALL_ARD)), st.data())
def test_ard_with_replaced_children_round_trips(name: str, data: st.DataObject) -> None:
    ard = ApplicationRelatedData.parse(ALL_ARD[name])
    changed = ApplicationRelatedData(
        aid=ard.aid,
        historical_bytes=ard.historical_bytes,
        extended_length_info=data.draw(
            st.one_of(
                st.none(),
                st.builds(ExtendedLengthInfo, st.integers(1, 0xFFFF), st.integers(1, 0xFFFF)),
            )
        ),
        attributes_sig=data.draw(st.one_of(st.none(), _rsa, _ec)),
        attributes_dec=data.draw(st.one_of(st.none(), _rsa, _ec)),
        pw_status=ard.pw_status,
        fingerprints=ard.fingerprints,
        uif_aut=data.draw(st.one_of(st.none(), st.builds(Uif, _u8, _u8))),
    )
    assert ApplicationRelatedData.parse(bytes(changed)) == changed
