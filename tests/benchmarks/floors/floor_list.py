"""Floor of ``opcard list``: pyscard alone, the same APDUs, the same output.

    python floor_list.py

Every PC/SC reader (SCardListReaders), whether it holds a card (SCardGetStatusChange, no
APDU), and for each card SELECT and GET DATA 4F (the AID: version, manufacturer, serial), as
opcard sends them; one line per reader. Issue #15 measures opcard's start-up against this
script (tests/benchmarks/startup.py); tests/cli/test_cli_floors.py checks that both send the
same APDUs and print the same lines.
"""

import sys

from floorcard import SELECT, manufacturer_name, sc  # pyscard's scard, as floorcard loads it

GET_AID = bytes.fromhex("00CA004F00")


def describe(ctx: int, reader: str) -> str:
    hr, card, proto = sc.SCardConnect(
        ctx, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
    )
    if hr == sc.SCARD_E_SHARING_VIOLATION:
        return "card in exclusive use by another program (e.g. GnuPG's scdaemon)"
    if hr != sc.SCARD_S_SUCCESS:
        return "card that does not answer (remove it and insert it again)"
    try:
        hr, resp = sc.SCardTransmit(card, proto, list(SELECT))
        if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
            return "card without an OpenPGP application"
        hr, resp = sc.SCardTransmit(card, proto, list(GET_AID))
        if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00] or len(resp) != 18:
            return "card without an OpenPGP application"
    finally:
        sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
    aid = bytes(resp[:16])
    version = f"{aid[6]}.{aid[7]}"
    maker = manufacturer_name(int.from_bytes(aid[8:10]))
    return f"OpenPGP card {version} by {maker}, serial {aid[10:14].hex().upper()}"


def main() -> int:
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit(f"SCardEstablishContext: {sc.SCardGetErrorMessage(hr)}")
    try:
        hr, readers = sc.SCardListReaders(ctx, [])
        if hr != sc.SCARD_S_SUCCESS or not readers:
            print("no PC/SC readers (is pcscd running and a reader connected?)")
            return 0
        hr, states = sc.SCardGetStatusChange(
            ctx, 0, [(reader, sc.SCARD_STATE_UNAWARE) for reader in readers]
        )
        for reader, state, _atr in states:
            if state & sc.SCARD_STATE_PRESENT:
                print(f"{reader}: {describe(ctx, reader)}")
            else:
                print(f"{reader}: empty")
    finally:
        sc.SCardReleaseContext(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
