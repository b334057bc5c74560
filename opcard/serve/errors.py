"""The exceptions of :mod:`opcard.serve`: one base, :class:`ServeError` (an OpcardError)."""

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
