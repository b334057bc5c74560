"""apdu.errors.Sw is the one table of named status words: every name maps to its exception,
the 63Cx counter is read in one place, and the channel and the applet compare against it."""

from __future__ import annotations

import pytest

from apdu.errors import (
    CardStatusError,
    PinBlockedError,
    SecurityStatusNotSatisfiedError,
    Sw,
    Sw1,
    UnknownStatusError,
    WrongPinError,
    error_for_status,
    pin_retries,
)

# ISO 7816-4 §5.1.3 / OpenPGP card §7.3, as printed.
PRINTED = {
    "OK": 0x9000,
    "SECURITY_STATUS_NOT_SATISFIED": 0x6982,
    "AUTHENTICATION_METHOD_BLOCKED": 0x6983,
    "CONDITIONS_NOT_SATISFIED": 0x6985,
    "WRONG_DATA": 0x6A80,
    "REFERENCED_DATA_NOT_FOUND": 0x6A88,
    "INS_NOT_SUPPORTED": 0x6D00,
    "CLA_NOT_SUPPORTED": 0x6E00,
}


def test_printed_values() -> None:
    for name, value in PRINTED.items():
        assert Sw[name] == value
    assert (Sw1.MORE_DATA, Sw1.WRONG_LE) == (0x61, 0x6C)


@pytest.mark.parametrize("sw", [s for s in Sw if s is not Sw.OK])
def test_every_named_status_word_has_its_own_exception(sw: Sw) -> None:
    err = error_for_status(sw, b"\x01")
    assert isinstance(err, CardStatusError) and not isinstance(err, UnknownStatusError)
    assert (err.sw, err.sw1, err.sw2, err.data) == (sw, sw >> 8, sw & 0xFF, b"\x01")


def test_pin_counter() -> None:
    assert [pin_retries(0x63C0 | n) for n in range(16)] == list(range(16))
    for other in (Sw.OK, Sw.AUTHENTICATION_METHOD_BLOCKED, 0x6300, 0x63D1, 0x64C0):
        assert pin_retries(other) is None
    wrong = error_for_status(0x63C2)
    assert isinstance(wrong, WrongPinError) and wrong.retries == 2
    assert isinstance(error_for_status(Sw.AUTHENTICATION_METHOD_BLOCKED), PinBlockedError)
    assert isinstance(
        error_for_status(Sw.SECURITY_STATUS_NOT_SATISFIED), SecurityStatusNotSatisfiedError
    )
