"""Exceptions of the OpenPGP application layer (all derive from :class:`apdu.errors.ApduError`)."""

from __future__ import annotations

from apdu.errors import ProtocolError

__all__ = ["DataObjectError"]


class DataObjectError(ProtocolError):
    """A data object the card returned is well-formed BER-TLV but not a valid value of its
    kind (wrong length, unknown RID, inconsistent fields, …)."""
