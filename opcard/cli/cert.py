"""``opcard cert export|import|delete``: the cardholder certificates of the three slots.

A spec 2 card holds one certificate, for the AUT key: the other slots are refused (exit code 8)
before any PIN is asked and without any command the card would not know.

``cert export`` is the fast path: it imports neither ``cryptography`` nor the session and
object layers; PEM is written with :mod:`base64` (the same text ``openssl x509`` writes).
"""

from __future__ import annotations

import base64
from typing import IO, TYPE_CHECKING

import click

from opcard.cli.common import echo, pass_state, slot_option, to_slot, write_output
from opcard.cli.errors import CliError
from opcard.cli.exitcodes import ExitCode
from opcard.cli.pin_input import ADMIN, admin_pin_options, read_pin

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["cert", "load_certificate", "pem"]


def pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    """PEM text of ``der`` (RFC 7468: 64-column base64 lines)."""
    text = base64.b64encode(der).decode("ascii")
    lines = [f"-----BEGIN {label}-----"]
    lines += [text[i : i + 64] for i in range(0, len(text), 64)]
    lines.append(f"-----END {label}-----")
    return ("\n".join(lines) + "\n").encode("ascii")


@click.group()
def cert() -> None:
    """Export, import or delete the certificate of a key slot."""


@cert.command("export")
@slot_option("aut", "Key slot whose certificate to export.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pem", "der"], case_sensitive=False),
    default="pem",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
@pass_state
def export_command(state: State, slot: str, fmt: str, output: str | None) -> None:
    """Write a slot's certificate (default: the authentication certificate, PEM)."""
    key_slot = to_slot(slot)
    der = state.card().certificate(key_slot)
    if not der:
        from opcard.errors import ObjectNotFoundError

        raise ObjectNotFoundError(f"there is no certificate in the {key_slot.name} slot")
    write_output(pem(der) if fmt.lower() == "pem" else der, output)


@cert.command("import")
@slot_option(help="Key slot the certificate belongs to.")
@admin_pin_options
@click.argument("file", type=click.File("rb"))
@pass_state
def import_command(
    state: State,
    slot: str,
    file: IO[bytes],
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Store the certificate in FILE (PEM or DER) in a slot (needs the admin PIN)."""
    key_slot = to_slot(slot)
    state.card().check_certificate_slot(key_slot)  # spec 2 cards: AUT only, before the PIN
    der = load_certificate(file.read(), file.name)
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    session.store_certificate(key_slot, der)
    echo(f"certificate stored in the {slot.upper()} slot", err=True)


def load_certificate(data: bytes, name: str) -> bytes:
    """The DER of the X.509 certificate in ``data`` (PEM or DER); exit code 11 otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise CliError(
            f"{name} is not an X.509 certificate (PEM or DER): {e}", ExitCode.BadInput
        ) from e
    return data


@cert.command("delete")
@slot_option(help="Key slot whose certificate to delete.")
@admin_pin_options
@pass_state
def delete_command(
    state: State, slot: str, admin_pin: str | None, admin_pin_file: str | None
) -> None:
    """Delete a slot's certificate (needs the admin PIN)."""
    key_slot = to_slot(slot)
    state.card().check_certificate_slot(key_slot)  # spec 2 cards: AUT only, before the PIN
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    session.delete_certificate(key_slot)
    echo(f"certificate deleted from the {slot.upper()} slot", err=True)
