"""transmit() never raises and always answers at least a status word, whatever the bytes."""

from __future__ import annotations

import time

from card_apdus import PW1, PW3, Driver, apdu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize

_CARDS: dict[str, OpenPGPCard] = {}


def _card(profile: str) -> OpenPGPCard:
    if profile not in _CARDS:
        card = OpenPGPCard(profile)
        personalize(card, "demo-ecc")
        _CARDS[profile] = card
    return _CARDS[profile]


def _check(out: bytes, card: OpenPGPCard) -> None:
    assert isinstance(out, bytes) and len(out) >= 2
    assert card.last_internal_error is None, repr(card.last_internal_error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["extended", "short"]))
def test_random_bytes(raw: bytes, profile: str) -> None:
    card = _card(profile)
    _check(card.transmit(raw), card)


_INS = [
    0xA4,
    0xA5,
    0xCA,
    0xCC,
    0xDA,
    0xDB,
    0x20,
    0x24,
    0x2C,
    0x2A,
    0x88,
    0x47,
    0x84,
    0x22,
    0xE6,
    0x44,
    0xC0,
]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([0x00, 0x10]),
    st.sampled_from(_INS),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=260),
    st.one_of(st.none(), st.integers(0, 256)),
    st.booleans(),
    st.sampled_from(["extended", "short"]),
)
def test_structured_commands(
    cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None, ext: bool, profile: str
) -> None:
    card = OpenPGPCard(profile)  # fresh each time: TERMINATE / PIN blocking must not leak
    personalize(card, "demo-ecc")
    d = Driver(card)
    d.select()
    d.verify(0x81, PW1)
    d.verify(0x82, PW1)
    d.verify(0x83, PW3)
    if not ext and len(data) > 255:
        data = data[:255]
    _check(card.transmit(apdu(ins, p1, p2, data, le, cla=cla, extended=ext)), card)
    _check(card.transmit(apdu(0xC0, 0, 0, le=0)), card)
    # the card still works afterwards
    card.power_on()
    out = card.transmit(apdu(0xA4, 0x04, 0x00, bytes.fromhex("D27600012401")))
    assert out[-2:] in (b"\x90\x00", b"\x62\x85")


def test_internal_authenticate_p256_overhead() -> None:
    """Python overhead around one P-256 signature stays small (a generous bound)."""
    card = OpenPGPCard("extended")
    personalize(card, "demo-ecc")
    d = Driver(card)
    d.select()
    d.verify(0x82, PW1)
    cmd = apdu(0x88, 0, 0, bytes(32), le=0)
    n = 300
    t0 = time.perf_counter()
    for _ in range(n):
        card.transmit(cmd)
    per_op = (time.perf_counter() - t0) / n
    print(f"INTERNAL AUTHENTICATE P-256: {per_op * 1e6:.0f} us per transmit()")
    assert card.transmit(cmd)[-2:] == b"\x90\x00"
    assert per_op < 0.005, f"{per_op * 1e3:.3f} ms per INTERNAL AUTHENTICATE"
