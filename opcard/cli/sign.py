"""``opcard sign``: a raw signature of a file (RSA PKCS#1 v1.5, ECDSA DER, Ed25519), or an
OpenPGP detached signature with ``--openpgp``. What it does is :mod:`opcard.cli.run.sign`."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

import click

from opcard.cli.common import pass_state, slot_option
from opcard.cli.pin_input import user_pin_options
from opcard.cli.run import sign as run

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["sign"]

_HASHES = ("sha256", "sha384", "sha512", "sha224", "sha1")


@click.command()
@slot_option("sig", "Key slot to sign with (sig or aut).")
@click.option(
    "--hash",
    "hash_name",
    type=click.Choice(_HASHES, case_sensitive=False),
    default=None,
    help="Hash of the file [default: sha256; for --openpgp the key's preferred hash]. Not "
    "used by Ed25519, which signs the file itself.",
)
@click.option(
    "--padding",
    type=click.Choice(["pkcs1", "pss"], case_sensitive=False),
    default="pkcs1",
    show_default=True,
    help="RSA padding. OpenPGP cards only do PKCS#1 v1.5: pss always fails (exit code 8).",
)
@click.option("--openpgp", is_flag=True, help="Make an OpenPGP detached signature (armored).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
@user_pin_options
@click.argument("file", type=click.File("rb"))
@pass_state
def sign(
    state: State,
    slot: str,
    hash_name: str | None,
    padding: str,
    openpgp: bool,
    output: str | None,
    pin: str | None,
    pin_file: str | None,
    file: BinaryIO,
) -> None:
    """Sign FILE ('-': standard input) with the card's key.

    The raw signature is written as is: RSA PKCS#1 v1.5, ECDSA as DER (what 'openssl dgst
    -verify' reads), Ed25519 64 bytes (of the file itself: PureEdDSA).
    """
    run.sign(state, slot, hash_name, padding, openpgp, output, pin, pin_file, file)
