"""opcard, this project (project .venv; PYTHONPATH = the repository).

Phases: list = open_card(reader=R) + a session + every object of ``session.objects()`` with
all of its ``attributes()`` (keys, certificates and data objects: more than the peers read);
export = open_card(reader=R) + a session + ``get_key("aut",
object_class=ObjectClass.CERTIFICATE).der`` (``call_apdus`` = the lookup and read alone);
login = open_card + session + ``login(PW1)`` + ``digest_signer("aut")`` + one signature;
sign = N x ``signer.sign_digest(digest, "sha256")`` (the fast TLS path).

When the opcard object layer cannot be imported or lacks these calls, the worker reports
``unavailable`` with the reason instead of figures.
"""

from __future__ import annotations

from typing import Any

from _common import DIGEST, PW1, Worker


def main() -> None:
    w = Worker("opcard", __doc__ or "")
    try:
        import opcard

        # opcard imports its layers on first use (PEP 562, for a fast CLI start); import
        # them now, as the other workers import their libraries before the phases
        import opcard.card
        import opcard.objects
        import opcard.publickeys
        import opcard.session
        from apdu.transport import pcsc  # noqa: F401
        from opcard.pkcs11 import ObjectClass

        open_card: Any = opcard.open_card
    except (ImportError, AttributeError) as e:
        w.result["unavailable"] = f"the opcard object layer is not there yet ({e})"
        w.emit()
        return

    reader = w.args.reader

    if "list" in w.phases:
        with (
            w.phase("list") as out,
            open_card(reader=reader) as card,
            card.session() as session,
        ):
            listing = [(obj.label, obj.attributes()) for obj in session.objects()]
        out["found"] = {
            "objects": len(listing),
            "attributes": sum(len(attrs) for _label, attrs in listing),
            "labels": [label for label, _attrs in listing],
        }

    if "export" in w.phases:
        with (
            w.phase("export") as out,
            open_card(reader=reader) as card,
            card.session() as session,
        ):
            opened = w.checkpoint()
            cert = session.get_key("aut", object_class=ObjectClass.CERTIFICATE).der
            out["call_apdus"] = w.checkpoint() - opened
        out["cert_der"] = cert.hex()

    if "sign" in w.phases:
        card = session = None
        try:
            with w.phase("login") as out:
                card = open_card(reader=reader)
                session = card.session()
                session.login(PW1)
                signer = session.digest_signer("aut")
                out["first_signature"] = signer.sign_digest(DIGEST, "sha256").hex()

            def sign() -> bytes:
                result: bytes = signer.sign_digest(DIGEST, "sha256")
                return result

            w.sign_loop(sign, w.args.n)
        finally:
            if session is not None:
                session.close()
            if card is not None:
                card.close()
    w.emit()


if __name__ == "__main__":
    main()
