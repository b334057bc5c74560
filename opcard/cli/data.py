"""``opcard data get|set``: cardholder name, URL, login data and the four private DOs."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

from apdu.openpgp.constants import PRIVATE_DOS, Do, Pw
from opcard.cli.common import binary_stdout, echo, pass_state, shown
from opcard.cli.pin_input import (
    ADMIN,
    USER,
    admin_pin_options,
    read_pin,
    user_pin_options,
)

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["FIELDS", "data"]

#: Field name → (DO tag, text field, PIN to read it, PIN to write it); "" = no PIN.
_PIN_KINDS = {None: "", Pw.PW1_OTHER: "user", Pw.PW3: "admin"}
FIELDS: dict[str, tuple[int, bool, str, str]] = {
    "name": (Do.NAME, True, "", "admin"),
    "url": (Do.URL, True, "", "admin"),
    "login": (Do.LOGIN_DATA, True, "", "admin"),
    **{
        f"private-{n}": (do, False, _PIN_KINDS[read], _PIN_KINDS[write])
        for n, (do, (read, write)) in enumerate(PRIVATE_DOS.items(), 1)
    },
}

_FIELD = click.argument("field", type=click.Choice(list(FIELDS), case_sensitive=False))


@click.group()
def data() -> None:
    """Read or write the cardholder name, URL, login data and private data objects.

    \b
    name       cardholder name ("Given Surname"), written with the admin PIN
    url        URL of the public key, admin PIN to write
    login      login data, admin PIN to write
    private-1  free data, user PIN to write
    private-2  free data, admin PIN to write
    private-3  free data, user PIN to read and write
    private-4  free data, admin PIN to read and write
    """


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _login(state: State, need: str, pins: tuple[str | None, ...]) -> None:
    pin, pin_file, admin_pin, admin_pin_file = pins
    if need == "user":
        state.session().login(read_pin(USER, pin, pin_file))
    elif need == "admin":
        state.session().login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))


@data.command("get")
@_FIELD
@user_pin_options
@admin_pin_options
@pass_state
def get_command(
    state: State,
    field: str,
    pin: str | None,
    pin_file: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Print a field (private data objects: their raw bytes)."""
    tag, text, read_pin_kind, _ = FIELDS[field.lower()]
    card = state.card()
    if field.lower().startswith("private-"):  # exit code 8 before any PIN on a card without
        from opcard.session import require_feature

        require_feature(card, "private_dos", f"private DO {field[-1]}")
    if tag == Do.NAME:
        value = card.cardholder().name_text.encode("utf-8")
    else:
        _login(state, read_pin_kind, (pin, pin_file, admin_pin, admin_pin_file))
        value = card.data_object(tag)
    if text:
        if value:
            # escaped on a terminal (card text never reaches one raw), exact into a pipe or file
            text_value = value.decode("utf-8", errors="replace")
            if _is_terminal():
                echo(shown(text_value))
            else:  # not click.echo: it would strip ANSI sequences from a pipe
                out = binary_stdout()
                out.write(text_value.encode("utf-8") + b"\n")
                out.flush()
        return
    out = binary_stdout()
    out.write(value)
    out.flush()


@data.command("set")
@_FIELD
@click.argument("value", required=False)
@click.option(
    "--file",
    "value_file",
    type=click.File("rb"),
    help="Take the value from FILE ('-': standard input).",
)
@click.option("--clear", is_flag=True, help="Empty the field.")
@user_pin_options
@admin_pin_options
@pass_state
def set_command(
    state: State,
    field: str,
    value: str | None,
    value_file: IO[bytes] | None,
    clear: bool,
    pin: str | None,
    pin_file: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Write a field: VALUE, or --file FILE, or --clear."""
    given = [x for x in (value is not None, value_file is not None, clear) if x]
    if len(given) != 1:
        raise click.UsageError("give exactly one of VALUE, --file FILE or --clear")
    if value_file is not None:
        raw = value_file.read()
    elif value is not None:
        raw = value.encode("utf-8")
    else:
        raw = b""
    key = field.lower()
    tag, _, _, write_pin_kind = FIELDS[key]
    if key.startswith("private-"):  # exit code 8 before any PIN on a card without them
        from opcard.session import require_feature

        require_feature(state.card(), "private_dos", f"private DO {key[-1]}")
    session = state.session()
    _login(state, write_pin_kind, (pin, pin_file, admin_pin, admin_pin_file))
    if key == "name":
        text = raw.decode("utf-8").strip()
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as e:
            raise click.BadParameter(
                "the card stores names in ISO 8859-1 (Latin-1)", param_hint="VALUE"
            ) from e
        if text:
            session.set_name(text)
        else:
            session.set_data(tag, b"")
    else:
        session.set_data(tag, raw)
    echo(f"{key} {'cleared' if not raw else 'written'}", err=True)
