"""OpenPGPpy's ``OpenPGPcard`` (own venv: it pins pyscard 2.0.8).

OpenPGPpy opens the card exclusively (SCARD_SHARE_EXCLUSIVE): nothing else may hold the card
during its phases. Its constructor reads 4F, 6E, 7F66 and 7F74 and raises when 7F66 is
missing, so it runs against the emulator's "extended" profile.

Patch (an OpenPGPpy bug): once 7F66 announces extended lengths, OpenPGPpy encodes a command
without data but with Le 65536 as ``CLA INS P1 P2 00 00 00 00 00`` -- an extended Lc of ZERO
followed by Le, which ISO 7816-4 does not allow (case 2E is ``CLA INS P1 P2 00 Le1 Le2``). The
emulated card answers 6700 (a YubiKey tolerates it), so the constructor fails at GET DATA
7F74. The worker wraps the connection's ``transmit`` to drop the empty Lc (9-byte APDUs
``.. 00 00 00 Le1 Le2`` become ``.. 00 Le1 Le2``); nothing else changes and the APDU count is
the same. The number of rewritten APDUs is reported.
OpenPGPpy has no INTERNAL AUTHENTICATE method: the worker sends it through the library's own
``send_apdu`` exactly as its ``sign()`` sends PSO:CDS (no Le; the card answers 61xx and
OpenPGPpy fetches the signature with GET RESPONSE).

Phases: list = OpenPGPcard(reader_index) + get_application_data() + get_public_key() of
B600/B800/A400 + select_data("7F21", occurrence) and get_data("7F21") for SIG, DEC, AUT;
export = OpenPGPcard(...) + select_data("7F21", 0) + get_data("7F21");
login = OpenPGPcard(...) + verify_pin(2, PW1) (VERIFY 82) + one INTERNAL AUTHENTICATE;
sign = N x send_apdu([00, 88, 00, 00], data).
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from _common import PW1, Worker, auth_input


class _Case2EFix:
    """Proxy of a pyscard connection whose transmit drops OpenPGPpy's empty extended Lc."""

    rewritten = 0

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def transmit(self, apdu: list[int], *args: Any) -> Any:
        if len(apdu) == 9 and apdu[4:7] == [0, 0, 0]:
            apdu = apdu[:5] + apdu[7:]
            _Case2EFix.rewritten += 1
        return self._connection.transmit(apdu, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def main() -> None:
    w = Worker("openpgppy", __doc__ or "")
    from OpenPGPpy import OpenPGPcard
    from smartcard.System import readers

    original_send_apdu = OpenPGPcard.send_apdu

    def send_apdu(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self.connection, _Case2EFix):
            self.connection = _Case2EFix(self.connection)
        return original_send_apdu(self, *args, **kwargs)

    OpenPGPcard.send_apdu = send_apdu

    import importlib.metadata as md

    with contextlib.suppress(md.PackageNotFoundError):  # informative only
        w.result["version"] = md.version("OpenPGPpy") + " / pyscard " + md.version("pyscard")

    names = [str(r) for r in readers()]
    index = names.index(w.args.reader)

    def close(card: Any) -> None:
        # OpenPGPpy has no close(): disconnect, or the exclusive hold outlives the phase
        card.connection._connection.disconnect()
        del card
        gc.collect()

    if "list" in w.phases:
        with w.phase("list") as out:
            card = OpenPGPcard(reader_index=index)
            try:
                ard = card.get_application_data()
                keys = [card.get_public_key(crt) for crt in ("B600", "B800", "A400")]
                certs = []
                for occurrence in (2, 1, 0):  # SIG, DEC, AUT
                    card.select_data("7F21", occurrence)
                    certs.append(bytes(card.get_data("7F21")))
            finally:
                close(card)
        out["found"] = {"aid": ard.get("4F", ""), "keys": len(keys), "certificates": len(certs)}

    if "export" in w.phases:
        with w.phase("export") as out:
            card = OpenPGPcard(reader_index=index)
            try:
                opened = w.checkpoint()
                card.select_data("7F21", 0)  # occurrence 0 = AUT
                cert = bytes(card.get_data("7F21"))
                out["call_apdus"] = w.checkpoint() - opened
            finally:
                close(card)
        out["cert_der"] = cert.hex()

    if "sign" in w.phases:
        data = list(auth_input(w.args.variant))
        header = [0x00, 0x88, 0x00, 0x00]
        card = None
        try:
            with w.phase("login") as out:
                card = OpenPGPcard(reader_index=index)
                card.verify_pin(2, PW1)  # VERIFY 82
                out["first_signature"] = bytes(card.send_apdu(header, data)).hex()

            def sign() -> bytes:
                return bytes(card.send_apdu(header, data))

            w.sign_loop(sign, w.args.n)
        finally:
            if card is not None:
                close(card)
    w.note(
        f"patched: {_Case2EFix.rewritten} APDUs with an empty extended Lc (00 0000 + Le) "
        "sent as case 2E"
    )
    w.emit()


if __name__ == "__main__":
    main()
