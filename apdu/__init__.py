"""apdu: the OpenPGP card protocol over PC/SC, byte for byte.

Layers: :mod:`apdu.command` (values), :mod:`apdu.errors` (exceptions), :mod:`apdu.tlv`
(BER-TLV), :mod:`apdu.channel` (framing, chaining, status handling), :mod:`apdu.transport`
(PC/SC and in-process transports), :mod:`apdu.openpgp` (the OpenPGP card application).
"""

from apdu.command import Command, Response
from apdu.errors import ApduError, CardStatusError

__all__ = ["ApduError", "CardStatusError", "Command", "Response"]
