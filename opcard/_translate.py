"""``opcard.errors.translated``, defined where it costs nothing to import.

:mod:`opcard.errors` (about 40 exception classes and the CK_RV table, about 2 ms) is imported
only when an apdu exception is to be translated, so that a command that meets no error
(``opcard cert export``, ``opcard list``) does not load it. Use it as
:func:`opcard.errors.translated` (the same function).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from apdu.errors import ApduError

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms per command)

if TYPE_CHECKING:
    from opcard.errors import PinKind

__all__ = ["translated"]


@contextmanager
def translated(what: str, pin: PinKind | None = None) -> Iterator[None]:
    """``with translated("reading the URL"):`` — an apdu exception inside becomes the opcard
    exception :func:`~opcard.errors.translate_error` gives, raised from it. opcard exceptions
    pass through."""
    try:
        yield
    except ApduError as e:
        from opcard.errors import translate_error

        raise translate_error(e, what, pin) from e
