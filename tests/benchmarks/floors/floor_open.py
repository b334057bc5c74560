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

from floorcard import SELECT, Connection

GET_ARD = bytes.fromhex("00CA006E000000")


def main(argv: list[str]) -> int:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    reader = opts["--reader"]
    with Connection(reader) as transmit:
        for apdu in (SELECT, GET_ARD):
            _, sw = transmit(apdu)
            if sw != 0x9000:
                raise SystemExit(f"{apdu[:4].hex()}: {sw:04x}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
