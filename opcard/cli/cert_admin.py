"""``opcard cert import|delete``: store or delete a slot's certificate (admin PIN).

Sub-commands of :data:`opcard.cli.cert.cert`, kept apart from ``cert export`` so that the
export loads neither the PIN input nor ``cryptography``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import click

from opcard.cli.common import echo, pass_state, slot_option, to_slot
from opcard.cli.errors import CliError
from opcard.cli.pin_input import ADMIN, admin_pin_options, read_pin
from opcard.exitcodes import ExitCode

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["delete_command", "import_command", "load_certificate"]


@click.command("import")
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


@click.command("delete")
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
