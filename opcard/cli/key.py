"""``opcard key generate|import|export``: the key pairs of the three slots."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

from opcard.cli.common import echo, pass_state, slot_option, to_slot, write_output
from opcard.cli.errors import CliError
from opcard.cli.pin_input import ADMIN, USER, admin_pin_options, read_pin, user_pin_options
from opcard.cli.spinner import Spinner
from opcard.exitcodes import ExitCode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from apdu.openpgp.constants import KeySlot
    from opcard.card import Card
    from opcard.cli.common import State
    from opcard.publickeys import CardPublicKey

__all__ = ["key", "ssh_comment"]


@click.group()
def key() -> None:
    """Generate, import or export the key of a slot."""


def _confirm_replace(card: Card, slot: KeySlot, yes: bool) -> None:
    if yes or not card.key_present(slot):
        return
    click.confirm(
        f"The {slot.name} slot of card {card.serial} holds a key; replace it "
        "(the old key is lost)?",
        abort=True,
        err=True,
    )


def _describe(slot: KeySlot, public: CardPublicKey, card: Card) -> str:
    fingerprint = card.application_data().fingerprint(slot)
    text = f"{slot.name} key: {public.algorithm.name}"
    if fingerprint is not None:
        text += f", fingerprint {fingerprint.hex().upper()}"
    return text


@key.command("generate")
@slot_option(help="Key slot to generate the key in.")
@click.option(
    "--algo",
    "algo",
    required=True,
    metavar="ALGORITHM",
    help="rsa2048, rsa3072, rsa4096, nistp256, nistp384, nistp521, brainpoolP256r1, "
    "brainpoolP384r1, brainpoolP512r1, secp256k1, ed25519 (SIG/AUT), cv25519 (DEC).",
)
@click.option("--yes", "-y", is_flag=True, help="Replace an existing key without asking.")
@admin_pin_options
@pass_state
def generate_command(
    state: State,
    slot: str,
    algo: str,
    yes: bool,
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Generate a key pair on the card (needs the admin PIN; can take minutes on RSA)."""
    from opcard.publickeys import parse_algorithm

    key_slot = to_slot(slot)
    algorithm = parse_algorithm(algo)
    card = state.card()
    session = state.session()
    session.check_algorithm(key_slot, algorithm)  # exit code 8 before any PIN
    _confirm_replace(card, key_slot, yes)
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    with Spinner(f"generating a {algorithm.name} key in the {key_slot.name} slot", sys.stderr):
        public = session.generate_key(key_slot, algorithm)
    echo(_describe(key_slot, public, card))


def _load_private_key(data: bytes, name: str) -> PrivateKeyTypes:
    """The key in FILE (:func:`opcard.session.load_private_key`), asking for the passphrase
    only when it is encrypted; exit code 11 when it cannot be read."""
    from opcard.errors import UnsupportedKeyError
    from opcard.session import load_private_key

    def passphrase() -> bytes:
        text = click.prompt(f"Passphrase of {name}", hide_input=True, err=True, show_default=False)
        return str(text).encode("utf-8")

    try:
        return load_private_key(data, passphrase)
    except UnsupportedKeyError as e:
        raise CliError(f"{name}: cannot load the private key: {e}", ExitCode.BadInput) from e


@key.command("import")
@slot_option(help="Key slot to import the key into.")
@click.option("--yes", "-y", is_flag=True, help="Replace an existing key without asking.")
@admin_pin_options
@click.argument("file", type=click.File("rb"))
@pass_state
def import_command(
    state: State,
    slot: str,
    yes: bool,
    admin_pin: str | None,
    admin_pin_file: str | None,
    file: IO[bytes],
) -> None:
    """Import the private key in FILE (PEM, DER or OpenSSH; needs the admin PIN)."""
    key_slot = to_slot(slot)
    private = _load_private_key(file.read(), file.name)
    card = state.card()
    session = state.session()
    session.check_import(key_slot, private)  # key type, C0, FA: exit code 8 before any PIN
    _confirm_replace(card, key_slot, yes)
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    public = session.import_key(key_slot, private)
    echo(_describe(key_slot, public, card))


def ssh_comment(card: Card) -> str:
    """``cardno:`` and the manufacturer and serial, as gpg-agent names card keys for ssh."""
    aid = card.aid
    return f"cardno:{aid.manufacturer:04X}{aid.serial:08X}"


@key.command("export")
@slot_option("aut", "Key slot whose public key to export (ignored for openpgp).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pem", "ssh", "openpgp"], case_sensitive=False),
    default="pem",
    show_default=True,
    help="pem: SubjectPublicKeyInfo; ssh: an OpenSSH public key line; openpgp: the card's "
    "three keys as an armored OpenPGP certificate (signed on the card: needs the user PIN).",
)
@click.option("--comment", help="Comment of the ssh line (default: cardno:<manufacturer+serial>).")
@click.option("--user-id", help="User ID of the OpenPGP certificate (default: from the card).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of standard output.")
@user_pin_options
@pass_state
def export_command(
    state: State,
    slot: str,
    fmt: str,
    comment: str | None,
    user_id: str | None,
    output: str | None,
    pin: str | None,
    pin_file: str | None,
) -> None:
    """Write a slot's public key (PEM, an OpenSSH line) or the OpenPGP certificate."""
    from cryptography.hazmat.primitives import serialization

    from opcard.errors import ObjectNotFoundError, UnsupportedKeyError

    card = state.card()
    fmt = fmt.lower()
    if fmt == "openpgp":
        write_output(_openpgp_export(state, user_id, pin, pin_file), output)
        return
    key_slot = to_slot(slot)
    public = card.public_key(key_slot)
    if public is None:
        raise ObjectNotFoundError(f"there is no key in the {key_slot.name} slot")
    crypto_key = public.to_cryptography()
    if fmt == "pem":
        data = crypto_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        try:
            line = crypto_key.public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        except ValueError as e:
            raise UnsupportedKeyError(
                f"the {key_slot.name} key ({public.algorithm.name}) has no OpenSSH form: {e}"
            ) from e
        data = line + b" " + (comment or ssh_comment(card)).encode("utf-8") + b"\n"
    write_output(data, output)


def default_user_id(card: Card) -> str | None:
    """The cardholder's name, with the login data as e-mail address when it is one."""
    from apdu.openpgp.constants import Do
    from opcard.errors import OpcardError

    name = card.cardholder().name_text
    try:
        login = card.data_object(Do.LOGIN_DATA).decode("utf-8", errors="replace").strip()
    except OpcardError:
        login = ""
    if name and "@" in login and " " not in login:
        return f"{name} <{login}>"
    return name or None


def _openpgp_export(
    state: State, user_id: str | None, pin: str | None, pin_file: str | None
) -> bytes:
    from opcard.openpgp import export_openpgp

    card = state.card()
    uid = user_id or default_user_id(card)
    if not uid:
        raise click.UsageError("the card holds no cardholder name: give --user-id 'Name <mail>'")
    session = state.session()
    session.login(read_pin(USER, pin, pin_file))
    return export_openpgp(session, uid)
