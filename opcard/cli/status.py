"""``opcard list`` and ``opcard status``: the click commands. What they do is
:mod:`opcard.cli.run.status` (which :mod:`opcard.cli.fast` runs without click)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opcard.cli.common import pass_state
from opcard.cli.run.status import SCHEMA_VERSION, card_status, list_readers, show_status

if TYPE_CHECKING:
    from opcard.cli.common import State

__all__ = ["SCHEMA_VERSION", "card_status", "list_command", "status"]


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output (with schema_version).")
def list_command(as_json: bool) -> None:
    """List the PC/SC readers and the OpenPGP cards in them."""
    list_readers(as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="JSON output (with schema_version).")
@pass_state
def status(state: State, as_json: bool) -> None:
    """Show the card: holder, PIN counters, and per slot the key and its certificate."""
    show_status(state, as_json)
