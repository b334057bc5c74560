"""``opcard key generate|import|export``: the key pairs of the three slots."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

from opcard.cli.common import pass_state, slot_option, to_slot, write_output
from opcard.cli.errors import CliError
from opcard.cli.exitcodes import ExitCode
from opcard.cli.pin_input import ADMIN, USER, admin_pin_options, read_pin, user_pin_options
from opcard.cli.spinner import Spinner

if TYPE_CHECKING:
    from apdu.openpgp.constants import KeySlot
    from opcard.card import Card
    from opcard.cli.common import State
    from opcard.publickeys import CardPublicKey, KeyAlgorithm

__all__ = ["check_algorithm", "key", "ssh_comment"]


@click.group()
def key() -> None:
    """Generate, import or export the key of a slot."""


def check_algorithm(card: Card, slot: KeySlot, algorithm: KeyAlgorithm) -> None:
    """Refuse (exit code 8), before any PIN is asked, an algorithm the slot cannot take: one
    the card does not list in its algorithm information (FA), or any change on a card whose
    C0 says the algorithm cannot be changed. A card that publishes no list is not refused on
    a guess: the card itself is asked when the key is generated or imported (and its refusal
    is reported with its status word, nothing changed)."""
    from opcard.publickeys import UnsupportedKeyError, attributes_for
    from opcard.session import algorithm_attributes

    attributes_for(algorithm, decryption=slot.name == "DEC")  # e.g. ed25519 cannot decrypt
    supported = card.token_info().algorithms
    if supported is not None and algorithm not in supported.get(slot, ()):
        names = ", ".join(dict.fromkeys(a.name for a in supported.get(slot, ()))) or "none"
        raise UnsupportedKeyError(
            f"this card does not support {algorithm.name} in the {slot.name} slot "
            f"(it supports: {names})"
        )
    algorithm_attributes(card, slot, algorithm)  # C0: may the slot's algorithm change?


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
    check_algorithm(card, key_slot, algorithm)
    _confirm_replace(card, key_slot, yes)
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    with Spinner(f"generating a {algorithm.name} key in the {key_slot.name} slot", sys.stderr):
        public = session.generate_key(key_slot, algorithm)
    click.echo(_describe(key_slot, public, card))


def _load_private_key(data: bytes, name: str) -> object:
    from cryptography.hazmat.primitives import serialization

    pem = b"-----BEGIN" in data

    def load(password: bytes | None) -> object:
        if pem:
            if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
                return serialization.load_ssh_private_key(data, password)
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)

    try:
        try:
            return load(None)
        except TypeError:  # encrypted: ask for the passphrase
            passphrase = click.prompt(
                f"Passphrase of {name}", hide_input=True, err=True, show_default=False
            )
            return load(passphrase.encode("utf-8"))
    except (ValueError, TypeError) as e:
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
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    from opcard.publickeys import CardPublicKey, UnsupportedKeyError

    key_slot = to_slot(slot)
    private = _load_private_key(file.read(), file.name)
    if not isinstance(
        private,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | x25519.X25519PrivateKey,
    ):
        raise UnsupportedKeyError(f"{type(private).__name__} keys cannot go on an OpenPGP card")
    algorithm = CardPublicKey.from_cryptography(private.public_key()).algorithm
    card = state.card()
    from opcard.session import require_feature

    require_feature(card, "key_import")  # C0 bit 20: exit code 8 before any PIN
    check_algorithm(card, key_slot, algorithm)
    _confirm_replace(card, key_slot, yes)
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    public = session.import_key(key_slot, private)
    click.echo(_describe(key_slot, public, card))


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

    from opcard.errors import ObjectNotFoundError
    from opcard.publickeys import UnsupportedKeyError

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
