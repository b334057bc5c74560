"""The apdu package's exceptions: one base, status words mapped to subclasses by a table.

Every exception raised by the package for a card, transport or protocol condition derives from
:class:`ApduError`. ``ValueError``/``TypeError`` are kept for caller mistakes found before any
I/O. Messages never contain PINs or other sensitive payloads.
"""

from __future__ import annotations

from apdu._enums import IntEnumBody, fast_enum

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
    "StatusWordParts",
    "Sw",
    "Sw1",
    "error_for_status",
    "pin_retries",
]


@fast_enum
class Sw(IntEnumBody):
    """Status words by name (ISO 7816-4 §5.1.3, OpenPGP card §7.3): every status word the
    driver names is here; :func:`error_for_status` maps them to exceptions."""

    OK = 0x9000
    DEACTIVATED = 0x6283
    TERMINATED = 0x6285
    #: 63C0: verification failed, no try left (63Cx: x tries left, :func:`pin_retries`).
    PIN_NO_TRY_LEFT = 0x63C0
    EXECUTION_ERROR = 0x6400
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCED_DATA_INVALIDATED = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    LC_INCONSISTENT_WITH_TLV = 0x6A85
    WRONG_P1_P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1_P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_PARAMETERS = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


@fast_enum
class Sw1(IntEnumBody):
    """First bytes that name a family of status words (ISO 7816-4 §5.1.3)."""

    MORE_DATA = 0x61  # SW2 more bytes to GET RESPONSE (00: 256 or more)
    WARNING_UNCHANGED = 0x62
    WARNING_CHANGED = 0x63  # also 63Cx, a wrong PIN
    WRONG_LE = 0x6C  # resend with Le = SW2


_PIN_COUNTER_MASK = 0xFFF0


def pin_retries(sw: int) -> int | None:
    """The tries left that a 63Cx answer tells (x); None for any other status word."""
    if sw & _PIN_COUNTER_MASK == Sw.PIN_NO_TRY_LEFT:
        return sw & 0x0F
    return None


class StatusWordParts:
    """``sw1`` and ``sw2`` of anything that keeps a status word ``sw``."""

    __slots__ = ()
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


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


class CardStatusError(ApduError, StatusWordParts):
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
    Sw.TERMINATED: (TerminatedError, "selected file in termination state"),
    Sw.DEACTIVATED: (TerminatedError, "selected file deactivated"),
    Sw.EXECUTION_ERROR: (CardStatusError, "execution error"),
    Sw.MEMORY_FAILURE: (CardStatusError, "memory failure"),
    Sw.WRONG_LENGTH: (WrongLengthError, None),
    Sw.LOGICAL_CHANNEL_NOT_SUPPORTED: (ClaNotSupportedError, "logical channel not supported"),
    Sw.SECURE_MESSAGING_NOT_SUPPORTED: (ClaNotSupportedError, "secure messaging not supported"),
    Sw.LAST_COMMAND_OF_CHAIN_EXPECTED: (
        ClaNotSupportedError,
        "last command of the chain expected",
    ),
    Sw.CHAINING_NOT_SUPPORTED: (ClaNotSupportedError, "command chaining not supported"),
    Sw.SECURITY_STATUS_NOT_SATISFIED: (SecurityStatusNotSatisfiedError, None),
    Sw.AUTHENTICATION_METHOD_BLOCKED: (PinBlockedError, None),
    Sw.REFERENCED_DATA_INVALIDATED: (ConditionsNotSatisfiedError, "referenced data invalidated"),
    Sw.CONDITIONS_NOT_SATISFIED: (ConditionsNotSatisfiedError, None),
    Sw.COMMAND_NOT_ALLOWED: (ConditionsNotSatisfiedError, "command not allowed"),
    Sw.WRONG_DATA: (WrongDataError, None),
    Sw.FUNCTION_NOT_SUPPORTED: (InsNotSupportedError, "function not supported"),
    Sw.FILE_NOT_FOUND: (NotFoundError, "file or application not found"),
    Sw.RECORD_NOT_FOUND: (NotFoundError, "record not found"),
    Sw.NOT_ENOUGH_MEMORY: (NotEnoughMemoryError, None),
    Sw.LC_INCONSISTENT_WITH_TLV: (WrongLengthError, "Lc inconsistent with the TLV structure"),
    Sw.WRONG_P1_P2: (WrongParametersError, None),
    Sw.LC_INCONSISTENT_WITH_P1_P2: (WrongLengthError, "Lc inconsistent with P1-P2"),
    Sw.REFERENCED_DATA_NOT_FOUND: (NotFoundError, "referenced data not found"),
    Sw.WRONG_PARAMETERS: (WrongParametersError, None),
    Sw.INS_NOT_SUPPORTED: (InsNotSupportedError, None),
    Sw.CLA_NOT_SUPPORTED: (ClaNotSupportedError, None),
    Sw.NO_PRECISE_DIAGNOSIS: (CardStatusError, "no precise diagnosis"),
}


def error_for_status(sw: int, data: bytes = b"") -> CardStatusError:
    """The exception for a status word other than 9000 (not raised, returned)."""
    if pin_retries(sw) is not None:
        return WrongPinError(sw, data)
    exact = _EXACT.get(sw)
    if exact is not None:
        cls, message = exact
        return cls(sw, data, message)
    sw1 = sw >> 8
    if sw1 == Sw1.WRONG_LE:
        ne = (sw & 0xFF) or 256
        return WrongLengthError(sw, data, f"wrong Le, the card has {ne} bytes")
    if sw1 == Sw1.MORE_DATA:
        return UnknownStatusError(sw, data, "response data left unread (61xx)")
    if sw1 in (Sw1.WARNING_UNCHANGED, Sw1.WARNING_CHANGED):
        return WarningStatusError(sw, data)
    return UnknownStatusError(sw, data)
