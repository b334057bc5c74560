"""Every exception opcard raises, in one module: one base, :class:`OpcardError`.

Every exception opcard raises for a card, token, mechanism or data condition derives from
:class:`OpcardError`, is defined here and is importable from here and from :mod:`opcard`
(``opcard.WrongPinError``). Exceptions for caller mistakes found before any I/O (a malformed
URI, a mechanism the key cannot do, a digest of the wrong length) also derive from
``ValueError``.

Each class carries the PKCS#11 return value (``return_value``) a PKCS#11 front end (the
p11-kit RPC server) reports for it; an instance may override it. Messages never contain PINs.
The messages of the Python API name Python calls (``session.unblock_pin``); the command line
adds its own hints when it prints them (:mod:`opcard.cli.errors`).

The one boundary between the protocol layer and opcard: an :class:`apdu.errors.ApduError`
becomes an opcard exception in :func:`translate_error` (used through the :func:`translated`
context manager), with the apdu exception as ``__cause__``.

The tree::

    OpcardError
    ├── UriError (ValueError)
    ├── MechanismError (ValueError)
    │   ├── DataLengthError
    │   └── UnsupportedMechanismError
    │       └── TlsVersionError (also a TlsError)
    ├── UnsupportedKeyError (ValueError)
    ├── CertificateFormatError (ValueError)
    ├── CertificateTooLargeError (ValueError)
    ├── OpenPgpError
    │   └── OpenPgpFormatError (ValueError)
    ├── CardError
    │   ├── NoCardError
    │   │   ├── CardInUseError
    │   │   └── PcscUnavailableError
    │   ├── CardRemovedError
    │   ├── CardNotAnsweringError
    │   ├── SeveralCardsError
    │   └── CardOperationError
    │       └── AlgorithmRefusedError
    ├── PinError (``pin``: which PIN, a PinKind, or None)
    │   ├── WrongPinError
    │   ├── PinBlockedError
    │   ├── PinFormatError (ValueError)
    │   └── NotLoggedInError
    ├── ObjectLookupError (LookupError)
    │   ├── ObjectNotFoundError
    │   └── MultipleObjectsError
    ├── NotSupportedByCardError
    └── TlsError
        ├── TlsConnectError
        ├── ServerCertificateError
        └── TlsHandshakeError
            └── ClientRejectedError
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum, unique

from apdu import errors as apdu_errors
from opcard._pinkind import PinKind
from opcard._translate import translated
from opcard.pkcs11.rv import ReturnValue

__all__ = [
    "CARD_IN_USE_REMEDY",
    "CLIENT_REJECTED_ALERTS",
    "AlertCode",
    "AlgorithmRefusedError",
    "CardError",
    "CardInUseError",
    "CardNotAnsweringError",
    "CardOperationError",
    "CardRemovedError",
    "CertificateFormatError",
    "CertificateTooLargeError",
    "ClientRejectedError",
    "DataLengthError",
    "MechanismError",
    "MultipleObjectsError",
    "NoCardError",
    "NotLoggedInError",
    "NotSupportedByCardError",
    "ObjectLookupError",
    "ObjectNotFoundError",
    "OpcardError",
    "OpenPgpError",
    "OpenPgpFormatError",
    "PcscUnavailableError",
    "PinBlockedError",
    "PinError",
    "PinFormatError",
    "PinKind",
    "SeveralCardsError",
    "ServerCertificateError",
    "TlsConnectError",
    "TlsError",
    "TlsHandshakeError",
    "TlsVersionError",
    "UnsupportedKeyError",
    "UnsupportedMechanismError",
    "UriError",
    "WrongPinError",
    "translate_error",
    "translated",
]


class OpcardError(Exception):
    """Base of every exception opcard raises.

    ``return_value`` is the PKCS#11 CK_RV for the condition; pass ``return_value=`` to override
    the class default for one instance.
    """

    default_return_value: ReturnValue = ReturnValue.GENERAL_ERROR

    def __init__(self, *args: object, return_value: ReturnValue | None = None) -> None:
        super().__init__(*args)
        self.return_value: ReturnValue = (
            self.default_return_value if return_value is None else return_value
        )


class UriError(OpcardError, ValueError):
    """A malformed ``pkcs11:`` URI (RFC 7512), or a value that cannot be put into one."""

    default_return_value = ReturnValue.ARGUMENTS_BAD


class MechanismError(OpcardError, ValueError):
    """The input does not suit the mechanism (e.g. a digest of the wrong length)."""

    default_return_value = ReturnValue.DATA_INVALID


class DataLengthError(MechanismError):
    """The input is too long or too short for the mechanism and key."""

    default_return_value = ReturnValue.DATA_LEN_RANGE


class UnsupportedMechanismError(MechanismError):
    """The card cannot do this mechanism with this key; the message says why.

    ``return_value`` is CKR_MECHANISM_INVALID for a mechanism no OpenPGP card offers (RSA-PSS,
    OAEP, raw RSA), CKR_KEY_TYPE_INCONSISTENT for a mechanism of another key type and
    CKR_KEY_FUNCTION_NOT_PERMITTED for an operation the key slot does not do (signing with the
    decryption key).
    """

    default_return_value = ReturnValue.MECHANISM_INVALID


class OpenPgpError(OpcardError):
    """An OpenPGP operation failed (e.g. the card's signature does not verify)."""

    default_return_value = ReturnValue.FUNCTION_FAILED


class OpenPgpFormatError(OpenPgpError, ValueError):
    """Malformed or unsupported OpenPGP data (packets, armor, key material)."""

    default_return_value = ReturnValue.DATA_INVALID


# --- cards, sessions and PINs (the object layer) ---------------------------------------------


class CardError(OpcardError):
    """The card, the reader or the connection failed; the message says what to do."""

    default_return_value = ReturnValue.DEVICE_ERROR


class NoCardError(CardError):
    """No OpenPGP card (or not the one asked for) is present."""

    default_return_value = ReturnValue.TOKEN_NOT_PRESENT


#: What to do when another program holds a card exclusively (GnuPG's scdaemon by default).
#: scdaemon has ``pcsc-shared`` since GnuPG 2.2.28 (2.2.40 of Debian 12 documents it in
#: scdaemon(1), not in ``--help``); ``disable-ccid`` keeps scdaemon's own USB driver off the
#: reader so that it goes through pcscd at all.
CARD_IN_USE_REMEDY = (
    "run 'gpgconf --kill scdaemon' (GnuPG lets go until it needs the card again), or put "
    "'pcsc-shared' and 'disable-ccid' in ~/.gnupg/scdaemon.conf so that GnuPG shares the card"
)


class CardInUseError(NoCardError):
    """A card is in a reader, but another program holds it exclusively (PC/SC answered
    SCARD_E_SHARING_VIOLATION): GnuPG's scdaemon does so unless ``pcsc-shared`` is set.

    ``readers`` names the readers; ``scdaemon_running`` is True when an scdaemon process of
    this user was seen (None: not looked). PC/SC cannot tell which program holds a card. The
    message names the readers and what to do (:attr:`problem` and :attr:`remedy` apart).
    A subclass of :class:`NoCardError`: there is no card opcard can use.
    """

    def __init__(
        self,
        readers: Sequence[str],
        *,
        scdaemon_running: bool | None = None,
        wanted: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.readers = list(readers)
        self.scdaemon_running = scdaemon_running
        self.wanted = wanted
        names = " and ".join(repr(r) for r in self.readers) or "a reader"
        several = len(self.readers) > 1
        who = "other programs" if several else "another program"
        why = "GnuPG's scdaemon holds cards this way"
        if scdaemon_running:
            why += ", and one is running for this user"
        text = (
            f"the card{'s' if several else ''} in {names} {'are' if several else 'is'} in "
            f"exclusive use by {who} ({why})"
        )
        if wanted is not None:
            text = f"{wanted} is not among the cards opcard can use; {text}"
        self.problem = problem if problem is not None else text
        self.remedy = CARD_IN_USE_REMEDY
        self._problem = problem
        super().__init__(f"{self.problem}: {self.remedy}")

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _card_in_use,
            (self.readers, self.scdaemon_running, self.wanted, self._problem),
        )


def _card_in_use(
    readers: list[str],
    scdaemon_running: bool | None,
    wanted: str | None,
    problem: str | None = None,
) -> CardInUseError:
    return CardInUseError(
        readers, scdaemon_running=scdaemon_running, wanted=wanted, problem=problem
    )


class SeveralCardsError(CardError):
    """More than one OpenPGP card is present and none was chosen; ``cards`` lists them."""

    default_return_value = ReturnValue.ARGUMENTS_BAD

    def __init__(self, cards: Sequence[object]) -> None:
        self.cards = list(cards)
        listing = "; ".join(str(c) for c in self.cards)
        super().__init__(
            f"{len(self.cards)} OpenPGP cards are present ({listing}): "
            "choose one by serial or reader"
        )


class PcscUnavailableError(NoCardError):
    """The PC/SC service (pcscd) is not running or cannot be reached: no card can be found."""


class CardRemovedError(CardError):
    """The card was removed or reset during the operation; the next operation reconnects."""

    default_return_value = ReturnValue.DEVICE_REMOVED


class CardNotAnsweringError(CardError):
    """The card (or its reader) gave no answer within the card timeout (``open_card(timeout=)``,
    ``$OPCARD_CARD_TIMEOUT``): the reader stays blocked until the card is removed and inserted
    again. ``reader`` names the reader, ``timeout`` the bound in seconds."""

    def __init__(self, message: str, reader: str = "", timeout: float | None = None) -> None:
        super().__init__(message)
        self.reader = reader
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.reader, self.timeout))


_LOGIN_CALL = {
    PinKind.USER: "session.login(pin)",
    PinKind.ADMIN: "session.login_admin(admin_pin)",
    PinKind.RESET_CODE: "session.unblock_pin(new_pin, reset_code=code)",
}


class PinError(OpcardError):
    """A PIN problem: wrong, blocked, not logged in, malformed. ``pin`` says which secret
    (:class:`PinKind`; None when the card did not say)."""

    default_return_value = ReturnValue.PIN_INCORRECT

    def __init__(
        self, *args: object, pin: PinKind | None = None, return_value: ReturnValue | None = None
    ) -> None:
        super().__init__(*args, return_value=return_value)
        self.pin = pin

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, vars(self)))


def _rebuild(cls: type[PinError], args: tuple[object, ...], state: dict[str, object]) -> PinError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    vars(exc).update(state)
    return exc


class WrongPinError(PinError):
    """The card refused the PIN ``pin``; ``retries`` tries are left (exactly one was used).
    With none left the PIN is now blocked: the return value is CKR_PIN_LOCKED and the message
    says so and how to unblock it."""

    def __init__(self, pin: PinKind | None, retries: int | None) -> None:
        self.retries = retries
        name = pin.label if pin is not None else "PIN"
        if retries == 0:
            message = f"wrong {name}: no tries left, the {name} is now blocked"
            if pin is not None:
                message += f"; {pin.blocked_remedy}"
        else:
            left = "an unknown number of" if retries is None else str(retries)
            message = f"wrong {name}: {left} {'try' if retries == 1 else 'tries'} left"
        super().__init__(
            message, pin=pin, return_value=ReturnValue.PIN_LOCKED if retries == 0 else None
        )


class PinBlockedError(PinError):
    """The PIN ``pin`` is blocked; the message says how to unblock it (user PIN: with the
    reset code or the admin PIN; admin PIN: only a factory reset)."""

    default_return_value = ReturnValue.PIN_LOCKED

    def __init__(self, pin: PinKind | None, what: str | None = None) -> None:
        name = pin.label if pin is not None else "PIN"
        message = f"the {name} is blocked"
        if what:
            message = f"{what}: {message}"
        if pin is not None:
            message += f": {pin.blocked_remedy}"
        super().__init__(message, pin=pin)


class PinFormatError(PinError, ValueError):
    """A PIN of the wrong length or form, refused before anything is sent to the card."""

    default_return_value = ReturnValue.PIN_LEN_RANGE


class NotLoggedInError(PinError):
    """The operation needs a login (``pin``: the user PIN, or the admin PIN for writes); the
    message names the call that logs in."""

    default_return_value = ReturnValue.USER_NOT_LOGGED_IN

    @classmethod
    def needs(cls, pin: PinKind, what: str = "this") -> NotLoggedInError:
        """``this needs the admin PIN: log in with session.login_admin(admin_pin)``."""
        return cls(f"{what} needs the {pin.label}: log in with {_LOGIN_CALL[pin]}", pin=pin)


class ObjectLookupError(OpcardError, LookupError):
    """Looking up one object (by slot, label, id, template or URI) failed: none or several
    match. Catch this for both; the two cases are :class:`ObjectNotFoundError` and
    :class:`MultipleObjectsError` (python-pkcs11's ``NoSuchKey`` and
    ``MultipleObjectsReturned``)."""

    default_return_value = ReturnValue.OBJECT_HANDLE_INVALID


class ObjectNotFoundError(ObjectLookupError):
    """No object matches (no key in the slot, no certificate, no object with that label)."""


class MultipleObjectsError(ObjectLookupError):
    """Several objects match where exactly one was asked for: name it more precisely (slot,
    ``object_class``, ``id``)."""

    default_return_value = ReturnValue.ARGUMENTS_BAD


class CardOperationError(CardError):
    """The card refused an operation; ``sw`` is its status word."""

    default_return_value = ReturnValue.FUNCTION_FAILED

    def __init__(self, message: str, sw: int | None = None) -> None:
        self.sw = sw
        super().__init__(message)


class CertificateFormatError(OpcardError, ValueError):
    """The bytes given as a certificate are no X.509 certificate (nothing was written)."""

    default_return_value = ReturnValue.DATA_INVALID


class UnsupportedKeyError(OpcardError, ValueError):
    """A key or algorithm this card (or opcard) cannot use; the message names it."""


class CertificateTooLargeError(OpcardError, ValueError):
    """The certificate exceeds the card's maximum certificate size (nothing was written)."""

    default_return_value = ReturnValue.DATA_LEN_RANGE


class NotSupportedByCardError(OpcardError):
    """The card lacks a feature (KDF, touch/UIF, attestation, reset code, private DOs, a
    certificate slot, changeable algorithms, …), as the card itself declares it (C0, the spec
    version, the DOs of 6E): refused before any PIN is asked or anything is written.
    ``feature`` names the feature (the keys of :class:`opcard.card.CardFeatures`)."""

    default_return_value = ReturnValue.FUNCTION_NOT_SUPPORTED

    def __init__(self, message: str, feature: str) -> None:
        self.feature = feature
        super().__init__(message)


class AlgorithmRefusedError(CardOperationError):
    """The card refused the algorithm attributes (PUT DATA C1/C2/C3) for a slot: it does not
    take that algorithm there. This is the card's own answer (``sw``), given before any key
    was generated or imported: nothing on the card changed."""

    default_return_value = ReturnValue.TEMPLATE_INCONSISTENT


# --- TLS (opcard.tls) ---------------------------------------------------------------------


@unique
class AlertCode(IntEnum):
    """RFC 8446 §6 alert descriptions (the ones opcard sends or explains)."""

    CloseNotify = 0
    UnexpectedMessage = 10
    HandshakeFailure = 40
    BadCertificate = 42
    UnsupportedCertificate = 43
    CertificateRevoked = 44
    CertificateExpired = 45
    CertificateUnknown = 46
    IllegalParameter = 47
    UnknownCa = 48
    AccessDenied = 49
    DecodeError = 50
    DecryptError = 51
    ProtocolVersion = 70
    InsufficientSecurity = 71
    InternalError = 80
    NoApplicationProtocol = 120
    CertificateRequired = 116
    UnrecognizedName = 112
    BadCertificateStatusResponse = 113

    @property
    def label(self) -> str:
        """The RFC name: ``bad_certificate``."""
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name).lstrip("_")


#: Alerts a server sends when it does not accept the client's certificate or signature.
CLIENT_REJECTED_ALERTS = frozenset(
    {
        AlertCode.BadCertificate,
        AlertCode.UnsupportedCertificate,
        AlertCode.CertificateRevoked,
        AlertCode.CertificateExpired,
        AlertCode.CertificateUnknown,
        AlertCode.UnknownCa,
        AlertCode.AccessDenied,
        AlertCode.DecryptError,
        AlertCode.CertificateRequired,
    }
)


class TlsError(OpcardError):
    """A TLS connection failed (opcard.tls); the message says why."""

    default_return_value = ReturnValue.FUNCTION_FAILED


class TlsVersionError(TlsError, UnsupportedMechanismError):
    """The TLS versions asked for cannot work with this card key (refused before connecting)."""

    default_return_value = ReturnValue.MECHANISM_INVALID


class TlsConnectError(TlsError):
    """The TCP connection to the server failed or broke."""

    default_return_value = ReturnValue.DEVICE_ERROR


class ServerCertificateError(TlsError):
    """opcard refused the server's certificate chain; the client sent ``alert`` and closed
    before sending its own certificate or signing anything on the card."""

    def __init__(
        self, message: str, alert: AlertCode = AlertCode.BadCertificate, cause: str = "other"
    ) -> None:
        self.alert = alert
        #: what was wrong, for a hint: "name", "expired", "unknown_ca", "no_ca", "pin",
        #: "weak", "revoked" (a CRL or OCSP answer lists it), "crl" (no usable CRL decides:
        #: missing, expired, bad signature), "ocsp" (no usable OCSP answer) or "other"
        self.cause = cause
        super().__init__(message)


class TlsHandshakeError(TlsError):
    """The TLS handshake (or the connection after it) ended with an alert or a protocol error.

    ``alert`` is the alert's description (None for other failures); ``remote`` is True when
    the server sent it."""

    def __init__(self, message: str, alert: int | None = None, *, remote: bool = False) -> None:
        self.alert = alert
        self.remote = remote
        super().__init__(message)


class ClientRejectedError(TlsHandshakeError):
    """The server refused the client: its alert (``bad_certificate``, ``unknown_ca``,
    ``certificate_required``, …) says it did not accept the card's certificate or signature."""


# --- the boundary: apdu exceptions become opcard exceptions ----------------------------------


def translate_error(
    err: apdu_errors.ApduError, what: str, pin: PinKind | None = None
) -> OpcardError:
    """The opcard exception for an apdu-layer exception raised while doing ``what``
    (``"reading the URL"``); ``pin`` names the secret a PIN status word is about. Raise it
    ``from err`` (:func:`translated` does), so the apdu exception stays as ``__cause__``.

    ===================================== ====================================
    apdu exception                        opcard exception
    ===================================== ====================================
    WrongPinError (63Cx)                  WrongPinError (``pin``, ``retries``)
    PinBlockedError (6983)                PinBlockedError (``pin``)
    SecurityStatusNotSatisfiedError       NotLoggedInError (``pin``)
    (6982)
    other CardStatusError                 CardOperationError (``sw``)
    NoServiceError                        PcscUnavailableError
    SharingViolationError                 CardInUseError
    NoReaderError, CardNotPresentError    NoCardError
    CardRemovedError                      CardRemovedError
    CardNotAnsweringError                 CardNotAnsweringError
    other TransportError                  CardError
    ProtocolError (malformed answers)     CardError
    ===================================== ====================================
    """
    if isinstance(err, apdu_errors.WrongPinError):
        return WrongPinError(pin, err.retries)
    if isinstance(err, apdu_errors.PinBlockedError):
        return PinBlockedError(pin, what if pin is None else None)
    if isinstance(err, apdu_errors.SecurityStatusNotSatisfiedError):
        if pin is None:
            return NotLoggedInError(f"{what}: the card wants a PIN first (log in)")
        return NotLoggedInError(
            f"{what}: the card wants the {pin.label} first: log in with {_LOGIN_CALL[pin]}",
            pin=pin,
        )
    if isinstance(err, apdu_errors.CardStatusError):
        return CardOperationError(f"{what}: {err}", err.sw)
    if isinstance(err, apdu_errors.NoServiceError):  # says it all: pcscd is not running
        return PcscUnavailableError(str(err))
    if isinstance(err, apdu_errors.SharingViolationError):  # taken during the operation
        return CardInUseError([], problem=f"{what}: {err}")
    if isinstance(err, apdu_errors.NoReaderError | apdu_errors.CardNotPresentError):
        return NoCardError(f"{what}: {err}")
    if isinstance(err, apdu_errors.CardRemovedError):
        return CardRemovedError(f"{what}: {err}")
    if isinstance(err, apdu_errors.CardNotAnsweringError):
        return CardNotAnsweringError(f"{what}: {err}", err.reader, err.timeout)
    if isinstance(err, apdu_errors.TransportError):
        return CardError(f"{what}: {err}")
    return CardError(f"{what}: the card's answer is malformed: {err}")
