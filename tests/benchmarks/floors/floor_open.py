"""Floor of opening the card (``opcard.open_card(reader=R)``, and what ``opcard serve --stdio``
does before it answers its first C_GetSlotList): pyscard alone, the same APDUs.

    python floor_open.py --reader R

SCardEstablishContext, SCardConnect (shared), SELECT and GET DATA 6E (the application related
data: what the card is and can do), then release; prints nothing. Issue #15 measures the
time of ``opcard serve --stdio`` to its first answered C_GetSlotList, and of ``import opcard;
open_card()``, against this script (tests/benchmarks/startup.py); tests/cli/test_cli_floors.py
checks that it sends the APDUs open_card() sends.
"""

import sys

from smartcard import scard as sc

SELECT = bytes.fromhex("00A4040006D27600012401")
GET_ARD = bytes.fromhex("00CA006E000000")


def main(argv: list[str]) -> int:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    reader = opts["--reader"]
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit(f"SCardEstablishContext: {sc.SCardGetErrorMessage(hr)}")
    hr, card, proto = sc.SCardConnect(
        ctx, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
    )
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit(f"SCardConnect {reader}: {sc.SCardGetErrorMessage(hr)}")
    try:
        for apdu in (SELECT, GET_ARD):
            hr, resp = sc.SCardTransmit(card, proto, list(apdu))
            if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
                raise SystemExit(f"{apdu[:4].hex()}: {hr:#x} {bytes(resp[-2:]).hex()}")
    finally:
        sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
        sc.SCardReleaseContext(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
