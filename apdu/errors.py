"""The apdu package's exceptions: one base, status words mapped to subclasses by a table.

Every exception raised by the package for a card, transport or protocol condition derives from
:class:`ApduError`. ``ValueError``/``TypeError`` are kept for caller mistakes found before any
I/O. Messages never contain PINs or other sensitive payloads.
"""

from __future__ import annotations

__all__ = [
    "ApduError",
    "TransportError",
    "NoReaderError",
    "CardNotPresentError",
    "CardRemovedError",
    "CardNotAnsweringError",
    "SharingViolationError",
    "AmbiguousReaderError",
    "NoServiceError",
    "ProtocolError",
    "MalformedResponseError",
    "TlvError",
    "ChainingError",
    "CardStatusError",
    "WarningStatusError",
    "WrongPinError",
    "PinBlockedError",
    "SecurityStatusNotSatisfiedError",
    "ConditionsNotSatisfiedError",
    "WrongDataError",
    "NotFoundError",
    "WrongLengthError",
    "WrongParametersError",
    "InsNotSupportedError",
    "ClaNotSupportedError",
    "NotEnoughMemoryError",
    "TerminatedError",
    "UnknownStatusError",
    "error_for_status",
]


class ApduError(Exception):
    """Base of every exception this package raises for card, transport or protocol trouble."""


# --- transport -----------------------------------------------------------------------------


class TransportError(ApduError):
    """The reader, the PC/SC service or the connection failed."""


class NoReaderError(TransportError):
    """No reader (or not the named one) is available."""


class CardNotPresentError(TransportError):
    """The reader holds no card."""


class CardRemovedError(TransportError):
    """The card was removed or reset during the session; the next operation reconnects."""


class CardNotAnsweringError(TransportError):
    """The card (or its reader) gave no answer within the transport's time bound.

    The command may have reached the card or not. PC/SC cannot take back a command in flight:
    until the card is removed (or answers after all), the reader stays busy and further
    commands to it fail at once with this error. ``reader`` names the reader, ``timeout`` the
    bound in seconds."""

    def __init__(self, message: str, reader: str = "", timeout: float | None = None) -> None:
        super().__init__(message)
        self.reader = reader
        self.timeout = timeout

    def __reduce__(self) -> tuple[type[CardNotAnsweringError], tuple[str, str, float | None]]:
        return (type(self), (str(self), self.reader, self.timeout))


class SharingViolationError(TransportError):
    """Another process holds the card exclusively."""


class AmbiguousReaderError(NoReaderError):
    """No reader was named and several readers hold a card (or several names match)."""


class NoServiceError(TransportError):
    """The PC/SC service (pcscd) is not running or not reachable."""


# --- protocol (the card answered something that is not a valid answer) ---------------------


class ProtocolError(ApduError):
    """The card's answer breaks the protocol: garbage, too long, or an unbounded loop."""


class MalformedResponseError(ProtocolError):
    """A response APDU that cannot be parsed (e.g. shorter than a status word)."""


class TlvError(ProtocolError):
    """Malformed BER-TLV data."""


class ChainingError(ProtocolError):
    """Command or response chaining went wrong (61xx forever, more data than asked, …)."""


# --- status words --------------------------------------------------------------------------


class CardStatusError(ApduError):
    """The card answered a status word other than 9000. Keeps the status word and the data."""

    default_message = "card returned an error status"

    def __init__(self, sw: int, data: bytes = b"", message: str | None = None) -> None:
        self.sw = sw
        self.data = data
        self.message = message or self.default_message
        super().__init__(f"{self.message} (SW={sw:04X})")

    def __reduce__(self) -> tuple[type[CardStatusError], tuple[int, bytes, str]]:
        # Keeps sw/data/message across pickling (multiprocessing, concurrent.futures).
        return (type(self), (self.sw, self.data, self.message))

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


class WarningStatusError(CardStatusError):
    """A warning status (62xx/63xx other than a PIN counter), e.g. 6285 terminated state."""

    default_message = "card returned a warning"


class WrongPinError(CardStatusError):
    """63Cx: verification failed; ``retries`` attempts remain."""

    default_message = "wrong PIN"

    def __init__(self, sw: int, data: bytes = b"", message: str | None = None) -> None:
        self.retries = sw & 0x0F
        super().__init__(sw, data, message or f"wrong PIN, {self.retries} attempt(s) left")


class PinBlockedError(CardStatusError):
    """6983: the PIN (or key) is blocked."""

    default_message = "PIN blocked (authentication method blocked)"


class SecurityStatusNotSatisfiedError(CardStatusError):
    """6982: the needed PIN has not been verified."""

    default_message = "security status not satisfied (PIN not verified)"


class ConditionsNotSatisfiedError(CardStatusError):
    """6985: conditions of use not satisfied."""

    default_message = "conditions of use not satisfied"


class WrongDataError(CardStatusError):
    """6A80: incorrect parameters in the command data."""

    default_message = "incorrect data"


class NotFoundError(CardStatusError):
    """6A82/6A88: file, application or referenced data not found."""

    default_message = "not found"


class WrongLengthError(CardStatusError):
    """6700 (or 6Cxx left unresolved): wrong length."""

    default_message = "wrong length"


class WrongParametersError(CardStatusError):
    """6B00/6A86: incorrect P1-P2."""

    default_message = "incorrect parameters P1-P2"


class InsNotSupportedError(CardStatusError):
    """6D00: instruction not supported."""

    default_message = "instruction not supported"


class ClaNotSupportedError(CardStatusError):
    """6E00/6881/6882: class (or a CLA function such as chaining) not supported."""

    default_message = "class not supported"


class NotEnoughMemoryError(CardStatusError):
    """6A84: not enough memory space in the file (e.g. certificate too large)."""

    default_message = "not enough memory on the card"


class TerminatedError(CardStatusError):
    """6285 / 6581-style: the application is terminated (factory reset pending)."""

    default_message = "the card application is terminated"


class UnknownStatusError(CardStatusError):
    """Any status word not in the table."""

    default_message = "unknown card status"


_EXACT: dict[int, tuple[type[CardStatusError], str | None]] = {
    0x6285: (TerminatedError, "selected file in termination state"),
    0x6283: (TerminatedError, "selected file deactivated"),
    0x6400: (CardStatusError, "execution error"),
    0x6581: (CardStatusError, "memory failure"),
    0x6700: (WrongLengthError, None),
    0x6881: (ClaNotSupportedError, "logical channel not supported"),
    0x6882: (ClaNotSupportedError, "secure messaging not supported"),
    0x6883: (ClaNotSupportedError, "last command of the chain expected"),
    0x6884: (ClaNotSupportedError, "command chaining not supported"),
    0x6982: (SecurityStatusNotSatisfiedError, None),
    0x6983: (PinBlockedError, None),
    0x6984: (ConditionsNotSatisfiedError, "referenced data invalidated"),
    0x6985: (ConditionsNotSatisfiedError, None),
    0x6986: (ConditionsNotSatisfiedError, "command not allowed"),
    0x6A80: (WrongDataError, None),
    0x6A81: (InsNotSupportedError, "function not supported"),
    0x6A82: (NotFoundError, "file or application not found"),
    0x6A83: (NotFoundError, "record not found"),
    0x6A84: (NotEnoughMemoryError, None),
    0x6A85: (WrongLengthError, "Lc inconsistent with the TLV structure"),
    0x6A86: (WrongParametersError, None),
    0x6A87: (WrongLengthError, "Lc inconsistent with P1-P2"),
    0x6A88: (NotFoundError, "referenced data not found"),
    0x6B00: (WrongParametersError, None),
    0x6D00: (InsNotSupportedError, None),
    0x6E00: (ClaNotSupportedError, None),
    0x6F00: (CardStatusError, "no precise diagnosis"),
}


def error_for_status(sw: int, data: bytes = b"") -> CardStatusError:
    """The exception for a status word other than 9000 (not raised, returned)."""
    if (sw & 0xFFF0) == 0x63C0:
        return WrongPinError(sw, data)
    exact = _EXACT.get(sw)
    if exact is not None:
        cls, message = exact
        return cls(sw, data, message)
    sw1 = sw >> 8
    if sw1 == 0x6C:
        ne = (sw & 0xFF) or 256
        return WrongLengthError(sw, data, f"wrong Le, the card has {ne} bytes")
    if sw1 == 0x61:
        return UnknownStatusError(sw, data, "response data left unread (61xx)")
    if sw1 in (0x62, 0x63):
        return WarningStatusError(sw, data)
    return UnknownStatusError(sw, data)
