"""What the floor scripts share (pyscard alone, as each floor is): the card connection and the
AID's manufacturer names.

``with Connection(reader) as transmit:`` establishes a PC/SC context, connects to the card in
``reader`` (shared, T=0 or T=1) and gives ``transmit(apdu) -> (data, sw)``; leaving it
disconnects and releases the context. A PC/SC failure ends the script with the reader's or the
APDU's name. (A class, not contextlib: a floor loads nothing opcard does not need either.)
"""

import os

if os.environ.get("OPCARD_FLOOR_PYSCARD") == "extension":
    # startup.py --floor-pyscard extension: pyscard's C extension alone, loaded as opcard's PC/SC
    # transport loads it (apdu/transport/pcsc.py): the smartcard and smartcard.scard packages
    # registered without running their __init__ (pyscard's object layer; SWIG's wrapper, which
    # imports typing and with it re). A plain script does not do this: the default floor is
    # ``from smartcard import scard``; this variant shows how much of opcard's margin that is.
    import importlib.util
    import sys

    for _name in ("smartcard", "smartcard.scard"):
        _spec = importlib.util.find_spec(_name)
        assert _spec is not None
        sys.modules[_name] = importlib.util.module_from_spec(_spec)
    import smartcard.scard._scard as sc
else:
    from smartcard import scard as sc

SELECT = bytes.fromhex("00A4040006D27600012401")

#: AID manufacturer ids and their names (GnuPG's scd/app-openpgp.c, as opcard shows them;
#: tests/cli/test_cli_floors.py compares this table with apdu.openpgp.constants.MANUFACTURERS).
MANUFACTURERS = {
    0x0001: "PPC Card Systems",
    0x0002: "Prism",
    0x0003: "OpenFortress",
    0x0004: "Wewid",
    0x0005: "ZeitControl",
    0x0006: "Yubico",
    0x0007: "OpenKMS",
    0x0008: "LogoEmail",
    0x0009: "Fidesmo",
    0x000A: "VivoKey",
    0x000B: "Feitian Technologies",
    0x000D: "Dangerous Things",
    0x000E: "Excelsecu",
    0x002A: "Magrathea",
    0x0042: "GnuPG e.V.",
    0x1337: "Warsaw Hackerspace",
    0x2342: "warpzone",
    0x4354: "Confidential Technologies",
    0x5343: "SSE Carte à puce",
    0x5443: "TIF-IT e.V.",
    0x63AF: "Trustica",
    0xBA53: "c-base e.V.",
    0xBD0E: "Paranoidlabs",
    0xF517: "FSIJ",
    0xF5EC: "F-Secure",
}


def manufacturer_name(mid: int) -> str:
    if mid in MANUFACTURERS:
        return MANUFACTURERS[mid]
    if mid in (0x0000, 0xFFFF):
        return "test card"
    return "unmanaged S/N range" if mid & 0xFF00 == 0xFF00 else "unknown"


class Connection:
    """The card in ``reader``: ``transmit(apdu) -> (data, sw)`` inside ``with``."""

    def __init__(self, reader: str) -> None:
        self.reader = reader

    def __enter__(self):  # gives self.transmit
        hr, self.ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        if hr != sc.SCARD_S_SUCCESS:
            raise SystemExit(f"SCardEstablishContext: {sc.SCardGetErrorMessage(hr)}")
        hr, self.card, self.proto = sc.SCardConnect(
            self.ctx,
            self.reader,
            sc.SCARD_SHARE_SHARED,
            sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1,
        )
        if hr != sc.SCARD_S_SUCCESS:
            sc.SCardReleaseContext(self.ctx)
            raise SystemExit(f"SCardConnect {self.reader}: {sc.SCardGetErrorMessage(hr)}")
        return self.transmit

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        hr, resp = sc.SCardTransmit(self.card, self.proto, list(apdu))
        if hr != sc.SCARD_S_SUCCESS:
            raise SystemExit(f"{apdu[:4].hex()}: {sc.SCardGetErrorMessage(hr)}")
        return bytes(resp[:-2]), resp[-2] << 8 | resp[-1]

    def __exit__(self, *exc: object) -> None:
        sc.SCardDisconnect(self.card, sc.SCARD_LEAVE_CARD)
        sc.SCardReleaseContext(self.ctx)
