"""``opcard cert export|import|delete``: the cardholder certificates of the three slots.

A spec 2 card holds one certificate, for the AUT key: the other slots are refused (exit code 8)
before any PIN is asked and without any command the card would not know.

What ``cert export`` does is :mod:`opcard.cli.run.cert` (the fast path, which
:mod:`opcard.cli.fast` runs without click). ``cert import`` and ``cert delete`` (admin PIN) live in
:mod:`opcard.cli.cert_admin`, imported when one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opcard.cli.app import LazyGroup
from opcard.cli.common import pass_state, slot_option
from opcard.cli.run.cert import export_certificate, pem

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["cert", "pem"]


@click.group(
    cls=LazyGroup,
    lazy={
        "import": ("opcard.cli.cert_admin", "import_command"),
        "delete": ("opcard.cli.cert_admin", "delete_command"),
    },
    # the first paragraph of each command's help (a test compares): listed and completed
    # without importing cert_admin and the PIN input
    summaries={
        "import": "Store the certificate in FILE (PEM or DER) in a slot (needs the admin PIN).",
        "delete": "Delete a slot's certificate (needs the admin PIN).",
    },
)
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
    export_certificate(state, slot, fmt, output)
