"""The RPC server's private exceptions: one base, :class:`ServeError` (an OpcardError).

Private to :mod:`opcard.serve` (and the ``opcard serve`` command that starts it): they carry
the CK_RV a PKCS#11 function returns to the p11-kit client (:class:`Pkcs11Error`), end one
connection (:class:`FrameError`) or refuse an unsafe socket (:class:`SocketError`). Every
exception of the library is in :mod:`opcard.errors`; the server maps them to CK_RVs through
their ``return_value``.
"""

from __future__ import annotations

from opcard.errors import OpcardError
from opcard.pkcs11 import ReturnValue

__all__ = ["FrameError", "Pkcs11Error", "ServeError", "SocketError"]


class ServeError(OpcardError):
    """Base of every exception the server raises."""


class FrameError(ServeError):
    """A malformed or truncated frame: the server closes that connection (and only that one)."""

    default_return_value = ReturnValue.DEVICE_ERROR


class Pkcs11Error(ServeError):
    """A PKCS#11 function fails with ``return_value``: the client gets an error reply."""

    def __init__(self, return_value: ReturnValue, message: str = "") -> None:
        super().__init__(message or return_value.name, return_value=return_value)


class SocketError(ServeError):
    """The socket cannot be created safely (directory not private, another server running)."""

    default_return_value = ReturnValue.GENERAL_ERROR
