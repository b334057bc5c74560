"""Historical bytes out of real cards' ATRs (ISO/IEC 7816-3 §8.2)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.atr import historical_bytes
from apdu.errors import ApduError, MalformedResponseError

# ATRs as pcsc_scan / the smartcard_list.txt show them for these cards.
CASES = [
    # YubiKey 5 NFC (CCID): 13 historical bytes 80 73 C0 21 C0 "WYubiKey", then TCK 40
    ("3BFD1300008131FE158073C021C057597562694B657940", "8073C021C057597562694B6579"),
    # Gnuk: 10 historical bytes, card capabilities 73 80 01 80
    ("3BDA11FF81B1FE551F0300318473800180009000E4", "00318473800180009000"),
]


@pytest.mark.parametrize(("atr", "expected"), CASES)
def test_real_atrs(atr: str, expected: str) -> None:
    hist = historical_bytes(bytes.fromhex(atr))
    assert hist.hex().upper() == expected
    assert len(hist) == bytes.fromhex(atr)[1] & 0x0F


def test_emulator_atr_equals_5f52() -> None:
    from fixtures.card import OpenPGPCard

    card = OpenPGPCard("extended")
    card.power_on()
    select = bytes.fromhex("00A4040006D27600012401")
    assert card.transmit(select)[-2:] == b"\x90\x00"
    answer = card.transmit(bytes.fromhex("00CA5F5200"))
    assert answer[-2:] == b"\x90\x00"
    assert historical_bytes(card.atr) == answer[:-2]


@pytest.mark.parametrize("atr", ["", "3B", "00FF", "3BFF", "3B8F80", "3BFD1300008131FE1580"])
def test_malformed(atr: str) -> None:
    with pytest.raises(MalformedResponseError):
        historical_bytes(bytes.fromhex(atr))


@given(st.binary(max_size=40))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ApduError):
        historical_bytes(data)
