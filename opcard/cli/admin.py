"""``opcard kdf enable|disable``, ``opcard touch`` and ``opcard reset``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opcard.cli.common import SLOTS, echo, pass_state, to_slot
from opcard.cli.pin_input import ADMIN, admin_pin_options, read_pin

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["kdf", "reset", "touch"]

_DEFAULT_PINS = "the PINs are now the defaults: user 123456, admin 12345678 (change them)"


@click.group()
def kdf() -> None:
    """Turn the PIN key derivation (KDF-DO) on or off."""


def _kdf_supported(state: State) -> None:
    """Exit code 8 before any PIN when the card's C0 does not declare the KDF-DO."""
    from opcard.session import require_feature

    require_feature(state.card(), "kdf")


@kdf.command("enable")
@admin_pin_options
@pass_state
def kdf_enable(state: State, admin_pin: str | None, admin_pin_file: str | None) -> None:
    """Store PINs as iterated-salted hashes (resets both PINs to their defaults)."""
    _kdf_supported(state)
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    session.enable_kdf()
    echo(f"KDF enabled; {_DEFAULT_PINS}")


@kdf.command("disable")
@admin_pin_options
@pass_state
def kdf_disable(state: State, admin_pin: str | None, admin_pin_file: str | None) -> None:
    """Send PINs as they are typed (resets both PINs to their defaults)."""
    _kdf_supported(state)
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    session.disable_kdf()
    echo(f"KDF disabled; {_DEFAULT_PINS}")


#: Touch policy names (as ykman spells them) → UIF mode.
TOUCH_POLICIES = {"off": 0, "on": 1, "fixed": 2, "cached": 3, "cached-fixed": 4}


@click.command()
@click.option(
    "--slot",
    type=click.Choice(SLOTS, case_sensitive=False),
    help="Key slot whose touch policy to set (without --policy: show all).",
)
@click.option(
    "--policy",
    type=click.Choice(list(TOUCH_POLICIES), case_sensitive=False),
    help="off, on, fixed (on, cannot be turned off without a reset), cached, cached-fixed.",
)
@admin_pin_options
@pass_state
def touch(
    state: State,
    slot: str | None,
    policy: str | None,
    admin_pin: str | None,
    admin_pin_file: str | None,
) -> None:
    """Show or set the touch (user interaction flag) policy of the keys."""
    from apdu.openpgp.constants import KeySlot, UifMode
    from opcard.errors import NotSupportedByCardError

    names = {v: k for k, v in TOUCH_POLICIES.items()}
    card = state.card()
    if policy is None:
        if slot is not None:
            raise click.UsageError("--slot needs --policy (without both: show the policies)")
        for s in KeySlot:
            uif = card.uif(s)
            shown = (
                "not supported by this card" if uif is None else names.get(uif.mode, hex(uif.mode))
            )
            echo(f"{s.name}: {shown}")
        return
    if slot is None:
        raise click.UsageError("--policy needs --slot")
    key_slot = to_slot(slot)
    if key_slot not in card.touch_slots():
        raise NotSupportedByCardError(
            f"touch (UIF) is not supported by this card for the {key_slot.name} key", "touch"
        )
    session = state.session()
    session.login_admin(read_pin(ADMIN, admin_pin, admin_pin_file))
    session.set_touch(key_slot, UifMode(TOUCH_POLICIES[policy.lower()]))
    echo(f"{key_slot.name}: {policy.lower()}")


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@admin_pin_options
@pass_state
def reset(state: State, yes: bool, admin_pin: str | None, admin_pin_file: str | None) -> None:
    """Factory reset: erase keys, certificates and data; PINs back to the defaults.

    With the admin PIN (--admin-pin-file, $OPCARD_ADMIN_PIN; never prompted for) the card is
    reset after verifying it; without, both PINs are blocked first where the card allows that.
    """
    import os

    card = state.card()
    if not yes:
        click.confirm(
            f"Erase every key, certificate and data object of card {card.serial} and set the "
            "PINs back to 123456 / 12345678?",
            abort=True,
            err=True,
        )
    pin = None
    if admin_pin is not None or admin_pin_file is not None or os.environ.get(ADMIN.env):
        pin = read_pin(ADMIN, admin_pin, admin_pin_file)
    state.session().factory_reset(pin)
    echo(f"card {card.serial} reset; {_DEFAULT_PINS}")
