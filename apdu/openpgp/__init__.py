"""The OpenPGP card application (v3.4), byte for byte.

- :mod:`apdu.openpgp.constants` — instructions, data object tags, key slots, curves, names.
- :mod:`apdu.openpgp.commands` — one pure builder per command (§7.2).
- :mod:`apdu.openpgp.objects` — typed data objects with ``parse`` and ``bytes()``.
- :mod:`apdu.openpgp.keys` — private key import templates (4D).
- :mod:`apdu.openpgp.kdf` — PIN derivation with the KDF-DO (iterated salted S2K).
- :mod:`apdu.openpgp.quirks` — known deviations of real cards, each naming its cards.
- :mod:`apdu.openpgp.applet` — :class:`OpenPgpApplet`, which sends the commands.
"""

from apdu.openpgp.applet import OpenPgpApplet, PinState
from apdu.openpgp.constants import Do, KeySlot, Pw, Secret
from apdu.openpgp.errors import DataObjectError
from apdu.openpgp.objects import ApplicationRelatedData

__all__ = [
    "ApplicationRelatedData",
    "DataObjectError",
    "Do",
    "KeySlot",
    "OpenPgpApplet",
    "PinState",
    "Pw",
    "Secret",
]
