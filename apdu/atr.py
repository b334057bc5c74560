"""Answer-to-reset parsing (ISO/IEC 7816-3 §8.2): the historical bytes.

Only what a driver needs before its first command: where the interface bytes end and the
historical bytes (with the card's capabilities, ISO/IEC 7816-4 §8.1.1) begin.
"""

from __future__ import annotations

from apdu.errors import MalformedResponseError

__all__ = ["historical_bytes"]

_TS_DIRECT = 0x3B
_TS_INVERSE = 0x3F


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes T1…TK of ``atr``; MalformedResponseError when it is not an ATR."""
    if len(atr) < 2 or atr[0] not in (_TS_DIRECT, _TS_INVERSE):
        raise MalformedResponseError(f"not an ATR: {atr.hex().upper() or '(empty)'}")
    t0 = atr[1]
    count = t0 & 0x0F
    y = t0 >> 4
    pos = 2
    while True:
        # TAi, TBi, TCi present per bits 5-7 of the Y nibble; TDi per bit 8.
        pos += bin(y & 0x07).count("1")
        if not y & 0x08:
            break
        if pos >= len(atr):
            raise MalformedResponseError(f"ATR {atr.hex().upper()} ends inside its interface bytes")
        td = atr[pos]
        pos += 1
        y = td >> 4
    end = pos + count
    if end > len(atr):
        raise MalformedResponseError(
            f"ATR {atr.hex().upper()} declares {count} historical bytes, {len(atr) - pos} present"
        )
    return bytes(atr[pos:end])
