"""Status words → exception classes, and PC/SC return codes → transport exceptions."""

from __future__ import annotations

import inspect
import pickle

import pytest

import apdu.errors as errors
from apdu.errors import (
    AmbiguousReaderError,
    ApduError,
    CardNotPresentError,
    CardRemovedError,
    CardStatusError,
    ClaNotSupportedError,
    ConditionsNotSatisfiedError,
    InsNotSupportedError,
    NoReaderError,
    NoServiceError,
    NotEnoughMemoryError,
    NotFoundError,
    PinBlockedError,
    SecurityStatusNotSatisfiedError,
    SharingViolationError,
    TerminatedError,
    TransportError,
    UnknownStatusError,
    WarningStatusError,
    WrongDataError,
    WrongLengthError,
    WrongParametersError,
    WrongPinError,
    error_for_status,
)

STATUS_TABLE = [
    (0x63C0, WrongPinError),
    (0x63C2, WrongPinError),
    (0x63CF, WrongPinError),
    (0x6983, PinBlockedError),
    (0x6982, SecurityStatusNotSatisfiedError),
    (0x6985, ConditionsNotSatisfiedError),
    (0x6984, ConditionsNotSatisfiedError),
    (0x6986, ConditionsNotSatisfiedError),
    (0x6A80, WrongDataError),
    (0x6A82, NotFoundError),
    (0x6A83, NotFoundError),
    (0x6A88, NotFoundError),
    (0x6700, WrongLengthError),
    (0x6A85, WrongLengthError),
    (0x6A87, WrongLengthError),
    (0x6C10, WrongLengthError),
    (0x6C00, WrongLengthError),
    (0x6B00, WrongParametersError),
    (0x6A86, WrongParametersError),
    (0x6D00, InsNotSupportedError),
    (0x6A81, InsNotSupportedError),
    (0x6E00, ClaNotSupportedError),
    (0x6881, ClaNotSupportedError),
    (0x6882, ClaNotSupportedError),
    (0x6883, ClaNotSupportedError),
    (0x6884, ClaNotSupportedError),
    (0x6A84, NotEnoughMemoryError),
    (0x6285, TerminatedError),
    (0x6283, TerminatedError),
    (0x6281, WarningStatusError),
    (0x6300, WarningStatusError),
    (0x6F00, CardStatusError),
    (0x6581, CardStatusError),
    (0x6400, CardStatusError),
    (0x6110, UnknownStatusError),
    (0x9001, UnknownStatusError),
    (0x6A89, UnknownStatusError),
    (0x0000, UnknownStatusError),
    (0xFFFF, UnknownStatusError),
]


@pytest.mark.parametrize(("sw", "cls"), STATUS_TABLE)
def test_status_table(sw: int, cls: type[CardStatusError]) -> None:
    err = error_for_status(sw, b"\x01\x02")
    assert type(err) is cls
    assert isinstance(err, ApduError)
    assert (err.sw, err.data, err.sw1, err.sw2) == (sw, b"\x01\x02", sw >> 8, sw & 0xFF)
    assert f"SW={sw:04X}" in str(err)


def test_wrong_pin_retries() -> None:
    err = error_for_status(0x63C2)
    assert isinstance(err, WrongPinError)
    assert err.retries == 2
    assert str(err) == "wrong PIN, 2 attempt(s) left (SW=63C2)"


def test_wrong_le_message() -> None:
    assert "256 bytes" in str(error_for_status(0x6C00))
    assert "16 bytes" in str(error_for_status(0x6C10))


@pytest.mark.parametrize(("sw", "cls"), STATUS_TABLE[:8])
def test_status_errors_pickle(sw: int, cls: type[CardStatusError]) -> None:
    err = pickle.loads(pickle.dumps(error_for_status(sw, b"\xaa")))
    assert type(err) is cls
    assert (err.sw, err.data, str(err)) == (sw, b"\xaa", str(error_for_status(sw)))


def test_one_base_for_everything() -> None:
    for _, obj in inspect.getmembers(errors, inspect.isclass):
        if issubclass(obj, Exception):
            assert issubclass(obj, ApduError), obj
    assert issubclass(AmbiguousReaderError, NoReaderError)
    assert issubclass(NoServiceError, TransportError)


# --- PC/SC codes (pure mapping; no pcscd needed) -------------------------------------------

# pyscard is a hard dependency of the project: no skipping here.
from smartcard import scard  # noqa: E402

import apdu.transport.pcsc as pcsc  # noqa: E402

SESSION_TABLE = [
    ("SCARD_W_RESET_CARD", CardRemovedError, "was reset"),
    ("SCARD_W_REMOVED_CARD", CardRemovedError, "was removed"),
    ("SCARD_E_NO_SMARTCARD", CardRemovedError, "no card"),
    ("SCARD_E_READER_UNAVAILABLE", CardRemovedError, "is gone"),
    ("SCARD_E_NO_SERVICE", CardRemovedError, "pcscd"),
    ("SCARD_E_SERVICE_STOPPED", CardRemovedError, "pcscd"),
    ("SCARD_E_INVALID_HANDLE", CardRemovedError, "no longer valid"),
    ("SCARD_F_COMM_ERROR", CardRemovedError, "communication"),
    ("SCARD_W_UNRESPONSIVE_CARD", CardRemovedError, "does not respond"),
    ("SCARD_E_SHARING_VIOLATION", SharingViolationError, "exclusively"),
    ("SCARD_E_NOT_TRANSACTED", TransportError, "PC/SC error"),
]

CONNECT_TABLE = [
    ("SCARD_E_NO_SERVICE", NoServiceError, "not running"),
    ("SCARD_E_NO_READERS_AVAILABLE", NoReaderError, "no smartcard reader"),
    ("SCARD_E_UNKNOWN_READER", NoReaderError, "no reader named"),
    ("SCARD_E_READER_UNAVAILABLE", NoReaderError, "not available"),
    ("SCARD_E_NO_SMARTCARD", CardNotPresentError, "no card"),
    ("SCARD_W_REMOVED_CARD", CardNotPresentError, "no card"),
    ("SCARD_W_UNRESPONSIVE_CARD", CardNotPresentError, "does not respond"),
    ("SCARD_E_SHARING_VIOLATION", SharingViolationError, "exclusively"),
    ("SCARD_E_PROTO_MISMATCH", TransportError, "PC/SC error"),
]


@pytest.mark.parametrize(("name", "cls", "text"), SESSION_TABLE)
def test_pcsc_session_codes(name: str, cls: type[TransportError], text: str) -> None:
    err = pcsc.session_error(getattr(scard, name), "Virtual PCD 00 00", "SCardTransmit")
    assert type(err) is cls
    message = str(err)
    assert text in message
    assert "Virtual PCD 00 00" in message or "pcscd" in message
    assert f"SCardTransmit: {name}" in message


@pytest.mark.parametrize(("name", "cls", "text"), CONNECT_TABLE)
def test_pcsc_connect_codes(name: str, cls: type[TransportError], text: str) -> None:
    err = pcsc.connect_error(getattr(scard, name), "Virtual PCD 00 01", "SCardConnect")
    assert type(err) is cls
    assert text in str(err)
    assert f"SCardConnect: {name}" in str(err)


def test_pcsc_unknown_code_is_named_in_hex() -> None:
    err = pcsc.session_error(0x12345678, "R", "SCardTransmit")
    assert type(err) is TransportError
    assert "0x12345678" in str(err)
