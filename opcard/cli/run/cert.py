"""What ``opcard cert export`` does, without click (:mod:`opcard.cli.cert` declares it).

The fast path: neither ``cryptography`` nor the session and object layers nor the PIN input;
PEM is written with :mod:`binascii` (the same text ``openssl x509`` writes; :mod:`base64` would
add itself and :mod:`struct` to the start-up for the same call).
"""

from __future__ import annotations

import binascii

from opcard.cli.state import to_slot, write_output

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from opcard.cli.state import State

__all__ = ["export_certificate", "pem"]


def pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    """PEM text of ``der`` (RFC 7468: 64-column base64 lines)."""
    text = binascii.b2a_base64(der, newline=False).decode("ascii")
    lines = [f"-----BEGIN {label}-----"]
    lines += [text[i : i + 64] for i in range(0, len(text), 64)]
    lines.append(f"-----END {label}-----")
    return ("\n".join(lines) + "\n").encode("ascii")


def export_certificate(state: State, slot: str, fmt: str, output: str | None) -> None:
    """Write the certificate of ``slot`` as PEM or DER to ``output`` (None: standard output)."""
    key_slot = to_slot(slot)
    der = state.card().certificate(key_slot)
    if not der:
        from opcard.errors import ObjectNotFoundError

        raise ObjectNotFoundError(f"there is no certificate in the {key_slot.name} slot")
    write_output(pem(der) if fmt.lower() == "pem" else der, output)
