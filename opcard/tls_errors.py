"""The exceptions of :mod:`opcard.tls`: one base, :class:`TlsError` (an
:class:`~opcard.errors.OpcardError`).

- :class:`TlsVersionError` — the TLS versions asked for cannot work with the card key (TLS 1.3
  with an RSA key), refused before any connection; also a ``ValueError``.
- :class:`TlsConnectError` — the TCP connection failed or broke (refused, timeout, reset).
- :class:`ServerCertificateError` — opcard refused the server's certificate chain; the client
  sent the TLS alert ``alert`` and closed.
- :class:`TlsHandshakeError` — the handshake failed with a TLS alert (``alert``, ``remote``:
  sent by the server) or a protocol error; :class:`ClientRejectedError` when the server's
  alert says it refused the client certificate.

Card and PIN problems during a handshake keep their own opcard exceptions
(:class:`~opcard.errors.WrongPinError`, :class:`~opcard.errors.NotLoggedInError`, …).
"""

from __future__ import annotations

from enum import IntEnum, unique

from opcard.errors import OpcardError, UnsupportedMechanismError
from opcard.pkcs11 import ReturnValue

__all__ = [
    "AlertCode",
    "ClientRejectedError",
    "ServerCertificateError",
    "TlsConnectError",
    "TlsError",
    "TlsHandshakeError",
    "TlsVersionError",
]


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

    def __init__(self, message: str, alert: AlertCode = AlertCode.BadCertificate) -> None:
        self.alert = alert
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
