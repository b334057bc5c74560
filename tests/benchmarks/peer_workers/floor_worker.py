"""THE FLOOR: the INTERNAL AUTHENTICATE APDU sent bare through pyscard's SCardTransmit.

Runs in the project's .venv (pyscard). One SCardConnect (shared), SELECT, VERIFY 82 and one
first INTERNAL AUTHENTICATE (the one-off ``login`` phase), then the measured loop sends the
same pre-built APDU bytes N times on the already-connected handle and checks SW 9000. No
parsing, no object layer: nothing a driver could do costs less per signature.
Phases ``list`` and ``export`` are not defined for the floor.
"""

from __future__ import annotations

from typing import Any

from _common import PW1, SELECT, Worker, internal_authenticate_apdu


def main() -> None:
    w = Worker("floor", __doc__ or "")
    import smartcard.scard as sc

    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit(f"SCardEstablishContext: {sc.SCardGetErrorMessage(hr)}")
    card: Any = None
    try:
        if "sign" in w.phases:
            apdu = list(internal_authenticate_apdu(w.args.variant))
            transmit = sc.SCardTransmit

            with w.phase("login") as out:
                hr, card, proto = sc.SCardConnect(
                    ctx, w.args.reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T1
                )
                if hr != sc.SCARD_S_SUCCESS:
                    raise SystemExit(f"SCardConnect: {sc.SCardGetErrorMessage(hr)}")
                verify = [0x00, 0x20, 0x00, 0x82, len(PW1), *PW1.encode()]
                for command in (list(SELECT), verify, apdu):
                    hr, resp = transmit(card, proto, command)
                    if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
                        raise SystemExit(
                            f"{bytes(command[:4]).hex()}: {hr:#x} {bytes(resp[-2:]).hex()}"
                        )
                out["first_signature"] = bytes(resp[:-2]).hex()

            def sign() -> bytes:
                hr, resp = transmit(card, proto, apdu)
                if hr != sc.SCARD_S_SUCCESS or resp[-2] != 0x90 or resp[-1] != 0x00:
                    raise SystemExit(f"INTERNAL AUTHENTICATE: {hr:#x} {bytes(resp[-2:]).hex()}")
                return bytes(resp[:-2])

            w.sign_loop(sign, w.args.n)
    finally:
        if card is not None:
            sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
        sc.SCardReleaseContext(ctx)
    w.emit()


if __name__ == "__main__":
    main()
