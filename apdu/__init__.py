"""apdu: the OpenPGP card protocol over PC/SC, byte for byte.

Layers: :mod:`apdu.command` (values), :mod:`apdu.errors` (exceptions), :mod:`apdu.tlv`
(BER-TLV), :mod:`apdu.channel` (framing, chaining, status handling), :mod:`apdu.transport`
(PC/SC and in-process transports), :mod:`apdu.openpgp` (the OpenPGP card application).
"""

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from apdu.command import Command, Response
    from apdu.errors import ApduError, CardStatusError

__all__ = ["ApduError", "CardStatusError", "Command", "Response"]

# Imported on first use (PEP 562): ``import apdu.errors`` (every layer above needs it) does not
# load the command values and the record machinery with it.
_LAZY = {
    "ApduError": "apdu.errors",
    "CardStatusError": "apdu.errors",
    "Command": "apdu.command",
    "Response": "apdu.command",
}

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'apdu' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
