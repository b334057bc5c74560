"""What the benchmark scripts share: the vpcd readers and waiting for a card in one.

The scripts put the repository root on ``sys.path`` and import this module by name, as they
import ``fixtures``.
"""

from __future__ import annotations

import time

#: The vpcd ports of the Debian package's reader configuration.
PORTS = (35963, 35964)
#: The OpenSC configuration the scripts give OpenSC: only our reader, no file cache.
OPENSC_CONF = (
    "app default {{\n"
    '  ignored_readers = "{other}";\n'
    "  framework pkcs15 {{\n    use_file_caching = no;\n  }}\n}}\n"
)


def reader_of(port: int) -> str:
    """PC/SC reader name of vpcd ``port`` (35963 → "Virtual PCD 00 00")."""
    return f"Virtual PCD 00 {port - PORTS[0]:02d}"


def card_present(reader: str) -> bool:
    """Whether pcscd sees a card in ``reader`` (SCardGetStatusChange: no APDU is sent)."""
    import smartcard.scard as sc

    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit("no PC/SC service: is pcscd running?")
    try:
        hr, states = sc.SCardGetStatusChange(ctx, 0, [(reader, sc.SCARD_STATE_UNAWARE)])
        return hr == sc.SCARD_S_SUCCESS and bool(states[0][1] & sc.SCARD_STATE_PRESENT)
    finally:
        sc.SCardReleaseContext(ctx)


def wait_for(reader: str, present: bool, timeout: float = 20.0) -> None:
    """Wait until a card is (or is no longer) in ``reader``; SystemExit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while card_present(reader) != present:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"timeout waiting for the card {'in' if present else 'to leave'} {reader}"
            )
        time.sleep(0.05)
