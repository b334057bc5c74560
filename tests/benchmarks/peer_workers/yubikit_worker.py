"""yubikey-manager's ``yubikit.openpgp.OpenPgpSession`` over ``ykman.pcsc`` (own venv).

Patches (a non-Yubico card, see docs/benchmarks.md):
- ``OpenPgpSession._read_version`` returns 5.7.0 instead of sending Yubico's GET VERSION
  (INS F1), which the emulated card (like any non-Yubico card) does not know. 5.7.0 makes
  yubikit use the standard SELECT DATA for certificates (>= 5.2.0, without the extra length
  byte of <= 5.4.3 firmware).
- The connection is opened as ykman opens a YubiKey (exclusive, falling back to shared), but
  directly on the reader: ykman's own device path would kill scdaemon/yubikey-agent when the
  card is busy, and would only list readers whose name contains "yubico".

Phases: list = OpenPgpSession(conn) + get_application_related_data() + get_public_key() and
get_certificate() of SIG, DEC, AUT; export = OpenPgpSession(conn) + get_certificate(AUT);
login = OpenPgpSession(conn) + verify_pin(PW1, extended=True) + one authenticate();
sign = authenticate(message, SHA256()) N times (yubikit hashes the message itself: its RSA
padding refuses a ``Prehashed`` hash, so the message form is used for both key types).
"""

from __future__ import annotations

import contextlib
from typing import Any

from _common import MESSAGE, PW1, Worker


def main() -> None:
    w = Worker("yubikit", __doc__ or "")
    from cryptography.hazmat.primitives import hashes, serialization
    from smartcard.Exceptions import CardConnectionException
    from smartcard.ExclusiveConnectCardConnection import ExclusiveConnectCardConnection
    from smartcard.System import readers
    from ykman.pcsc import ScardSmartCardConnection
    from yubikit.core import Version
    from yubikit.openpgp import KEY_REF, OpenPgpSession

    OpenPgpSession._read_version = lambda self: Version(5, 7, 0)  # type: ignore[method-assign]
    w.note("patched OpenPgpSession._read_version -> 5.7.0 (no GET VERSION F1)")
    import importlib.metadata as md

    with contextlib.suppress(md.PackageNotFoundError):  # informative only
        w.result["version"] = md.version("yubikey-manager")

    def connect() -> Any:
        (reader,) = [r for r in readers() if str(r) == w.args.reader]
        try:
            return ScardSmartCardConnection(
                ExclusiveConnectCardConnection(reader.createConnection())
            )
        except CardConnectionException:
            return ScardSmartCardConnection(reader.createConnection())

    slots = (KEY_REF.SIG, KEY_REF.DEC, KEY_REF.AUT)

    if "list" in w.phases:
        with w.phase("list") as out:
            conn = connect()
            try:
                session = OpenPgpSession(conn)
                ard = session.get_application_related_data()
                keys = [session.get_public_key(k) for k in slots]
                certs = [session.get_certificate(k) for k in slots]
            finally:
                conn.close()
        out["found"] = {
            "aid": bytes(ard.aid).hex(),
            "keys": len(keys),
            "certificates": len(certs),
        }
        out["aut_public_key"] = (
            keys[2]
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .hex()
        )
        w.result["transport"] = str(conn.transport)
        if "NFC" in str(conn.transport):
            w.note(
                "yubikit takes the transport from ATR byte 1 (F0 = USB): this card's ATR says "
                "NFC, so it sends short APDUs, and never an Le: each answer with data comes "
                "as 61xx + GET RESPONSE"
            )

    if "export" in w.phases:
        with w.phase("export") as out:
            conn = connect()
            try:
                session = OpenPgpSession(conn)
                opened = w.checkpoint()
                cert = session.get_certificate(KEY_REF.AUT)
                out["call_apdus"] = w.checkpoint() - opened
            finally:
                conn.close()
        out["cert_der"] = cert.public_bytes(serialization.Encoding.DER).hex()

    if "sign" in w.phases:
        conn = connect()
        try:
            sha256 = hashes.SHA256()
            with w.phase("login") as out:
                session = OpenPgpSession(conn)
                session.verify_pin(PW1, extended=True)
                out["first_signature"] = session.authenticate(MESSAGE, sha256).hex()

            def sign() -> bytes:
                return session.authenticate(MESSAGE, sha256)

            w.sign_loop(sign, w.args.n)
        finally:
            conn.close()
    w.emit()


if __name__ == "__main__":
    main()
