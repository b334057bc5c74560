"""``opcard sign``: a raw signature of a file (RSA PKCS#1 v1.5, ECDSA DER, Ed25519), or an
OpenPGP detached signature with ``--openpgp``."""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

import click

from opcard.cli.common import pass_state, slot_option, to_slot, write_output
from opcard.cli.pin_input import USER, read_pin, user_pin_options

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
    from opcard.errors import ObjectNotFoundError
    from opcard.pkcs11 import KeyType, Mechanism
    from opcard.pkcs11.mechanisms import ecdsa_raw_to_der

    key_slot = to_slot(slot)
    if key_slot.name == "DEC":
        raise click.BadParameter("the DEC key decrypts; sign with sig or aut", param_hint="--slot")
    card = state.card()
    if openpgp:
        if key_slot.name != "SIG":
            raise click.BadParameter("OpenPGP signatures are made by the sig key")
        from opcard.openpgp import detached_signature

        session = state.session()
        session.login(read_pin(USER, pin, pin_file))
        write_output(detached_signature(session, file, hash_name=hash_name), output)
        return
    public = card.public_key(key_slot)
    if public is None:
        raise ObjectNotFoundError(f"there is no key in the {key_slot.name} slot")
    name = (hash_name or "sha256").lower()
    if padding.lower() == "pss":
        # the mechanism rules refuse it with the reason (no RSA-PSS on OpenPGP cards)
        from opcard.pkcs11 import MechanismFlag
        from opcard.pkcs11.mechanisms import check_mechanism

        info = state.session().key_info(key_slot)
        check_mechanism(Mechanism[f"{name.upper()}_RSA_PKCS_PSS"], info, MechanismFlag.SIGN)
        raise AssertionError("the mechanism rules accepted RSA-PSS")  # pragma: no cover
    session = state.session()
    if public.key_type is KeyType.EC_EDWARDS:
        data = file.read()
        session.login(read_pin(USER, pin, pin_file))
        write_output(session.sign(key_slot, data, Mechanism.EDDSA), output)
        return
    import hashlib

    hasher = hashlib.new(name)
    while block := file.read(65536):
        hasher.update(block)
    session.login(read_pin(USER, pin, pin_file))
    signature = session.sign_digest(key_slot, hasher.digest(), name)
    if public.key_type is KeyType.EC:
        signature = ecdsa_raw_to_der(signature)
    write_output(signature, output)
