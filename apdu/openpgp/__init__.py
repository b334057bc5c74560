"""The OpenPGP card application (v3.4), byte for byte.

- :mod:`apdu.openpgp.constants` — instructions, data object tags, key slots, curves, names.
- :mod:`apdu.openpgp.commands` — one pure builder per command (§7.2).
- :mod:`apdu.openpgp.objects` — typed data objects with ``parse`` and ``bytes()``.
- :mod:`apdu.openpgp.keys` — private key import templates (4D).
- :mod:`apdu.openpgp.kdf` — PIN derivation with the KDF-DO (iterated salted S2K).
- :mod:`apdu.openpgp.quirks` — known deviations of real cards, each naming its cards.
- :mod:`apdu.openpgp.applet` — :class:`OpenPgpApplet`, which sends the commands.

The names below are imported on first use (PEP 562): ``import apdu.openpgp.constants`` does not
load the applet, the data objects or the session layer.
"""

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from apdu.openpgp.applet import OpenPgpApplet, PinState
    from apdu.openpgp.constants import Do, KeySlot, Pw, Secret
    from apdu.openpgp.errors import DataObjectError
    from apdu.openpgp.objects import ApplicationRelatedData

_LAZY = {
    **dict.fromkeys(("OpenPgpApplet", "PinState"), "apdu.openpgp.applet"),
    **dict.fromkeys(("Do", "KeySlot", "Pw", "Secret"), "apdu.openpgp.constants"),
    "DataObjectError": "apdu.openpgp.errors",
    "ApplicationRelatedData": "apdu.openpgp.objects",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'apdu.openpgp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
