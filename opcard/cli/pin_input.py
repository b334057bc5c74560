"""The PIN options of the click commands (``--pin``/``--pin-file`` and the admin PIN, reset
code and new PIN ones); reading a PIN is :mod:`opcard.cli.pins` (without click; its usage
errors become click's in :func:`opcard.cli.common.pass_state`, which every command using a PIN
goes through)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from opcard.cli.pins import ADMIN, NEW, RESET_CODE, USER, PinKind, read_new_pin, read_pin

__all__ = [
    "ADMIN",
    "NEW",
    "RESET_CODE",
    "USER",
    "PinKind",
    "admin_pin_options",
    "read_pin",
    "new_pin_options",
    "read_new_pin",
    "reset_code_options",
    "user_pin_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def _options(kind: PinKind) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option(
            kind.file_option,
            kind.file_param,
            metavar="FILE",
            type=click.Path(dir_okay=False, allow_dash=True),
            help=f"Read the {kind.name} from the first line of FILE ('-': standard input).",
        )(f)
        f = click.option(
            kind.option,
            kind.param,
            metavar="VALUE",
            help=f"The {kind.name} itself (visible to other users: prefer {kind.file_option} "
            f"or ${kind.env}).",
        )(f)
        return f

    return decorate


def user_pin_options(f: F) -> F:
    """``--pin`` / ``--pin-file`` (environment: ``OPCARD_PIN``)."""
    return _options(USER)(f)


def admin_pin_options(f: F) -> F:
    """``--admin-pin`` / ``--admin-pin-file`` (environment: ``OPCARD_ADMIN_PIN``)."""
    return _options(ADMIN)(f)


def reset_code_options(f: F) -> F:
    return _options(RESET_CODE)(f)


def new_pin_options(f: F) -> F:
    return _options(NEW)(f)
