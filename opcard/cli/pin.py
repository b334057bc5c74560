"""``opcard pin status|verify|change|unblock|set-reset-code``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opcard.cli.common import echo, echo_json, pass_state
from opcard.cli.pin_input import (
    ADMIN,
    NEW,
    RESET_CODE,
    USER,
    admin_pin_options,
    new_pin_options,
    read_new_pin,
    read_pin,
    reset_code_options,
    user_pin_options,
)

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["pin"]


@click.group()
def pin() -> None:
    """PIN counters, verification, changes and unblocking."""


@pin.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@pass_state
def status_command(state: State, as_json: bool) -> None:
    """Tries left for the user PIN, the reset code and the admin PIN."""
    session = state.session()
    tries = session.pin_status()
    several = session.pw1_valid_for_several()
    if as_json:
        echo_json({"tries_left": tries, "user_pin_valid_for_several_signatures": several})
        return
    echo(f"user PIN ..: {tries['user']} tries left")
    echo(f"reset code : {tries['reset_code']} tries left")
    echo(f"admin PIN .: {tries['admin']} tries left")
    echo(
        "signature PIN: "
        + ("valid for several signatures" if several else "asked for every signature")
    )


@pin.command("verify")
@click.option("--admin", is_flag=True, help="Verify the admin PIN instead of the user PIN.")
@user_pin_options
@admin_pin_options
@pass_state
def verify_command(
    state: State,
    admin: bool,
    pin: str | None,
    pin_file: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Check a PIN (a wrong one uses up a try)."""
    admin = admin or admin_pin is not None or admin_pin_file is not None
    session = state.session()
    if admin:
        session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    else:
        session.login(read_pin(USER, pin, pin_file))
    echo(f"{'admin' if admin else 'user'} PIN correct")


@pin.command("change")
@click.option("--admin", is_flag=True, help="Change the admin PIN instead of the user PIN.")
@user_pin_options
@admin_pin_options
@new_pin_options
@pass_state
def change_command(
    state: State,
    admin: bool,
    pin: str | None,
    pin_file: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
    new_pin: str | None,
    new_pin_file: str | None,
) -> None:
    """Change the user PIN (or the admin PIN with --admin)."""
    admin = admin or admin_pin is not None or admin_pin_file is not None
    session = state.session()
    if admin:
        old = read_pin(ADMIN, admin_pin, admin_pin_file, prompt="Current admin PIN")
        new = read_new_pin("admin PIN", new_pin, new_pin_file)
    else:
        old = read_pin(USER, pin, pin_file, prompt="Current user PIN")
        new = read_new_pin("user PIN", new_pin, new_pin_file)
    session.change_pin(old, new, admin=admin)
    echo(f"{'admin' if admin else 'user'} PIN changed")


@pin.command("unblock")
@click.option(
    "--admin",
    is_flag=True,
    help="Use the admin PIN instead of the reset code.",
)
@reset_code_options
@admin_pin_options
@new_pin_options
@pass_state
def unblock_command(
    state: State,
    admin: bool,
    reset_code: str | None,
    reset_code_file: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
    new_pin: str | None,
    new_pin_file: str | None,
) -> None:
    """Set a new user PIN and its tries, with the reset code (or the admin PIN)."""
    admin = admin or admin_pin is not None or admin_pin_file is not None
    session = state.session()
    if admin:
        session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
        session.unblock_pin(read_new_pin("user PIN", new_pin, new_pin_file))
    else:
        from opcard.session import require_feature

        require_feature(state.card(), "reset_code")  # exit code 8 before any PIN
        code = read_pin(RESET_CODE, reset_code, reset_code_file)
        session.unblock_pin(read_new_pin("user PIN", new_pin, new_pin_file), reset_code=code)
    echo("user PIN unblocked")


@pin.command("set-reset-code")
@click.option("--clear", is_flag=True, help="Remove the reset code instead of setting one.")
@admin_pin_options
@new_pin_options
@pass_state
def set_reset_code_command(
    state: State,
    clear: bool,
    admin_pin: str | None,
    admin_pin_file: str | None,
    new_pin: str | None,
    new_pin_file: str | None,
) -> None:
    """Set the reset code, which unblocks the user PIN (needs the admin PIN)."""
    from opcard.session import require_feature

    require_feature(state.card(), "reset_code")  # exit code 8 before any PIN
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    if clear:
        session.set_reset_code(None)
        echo("reset code removed")
        return
    code = read_pin(NEW, new_pin, new_pin_file, prompt="New reset code", confirm=True)
    session.set_reset_code(code)
    echo("reset code set")
