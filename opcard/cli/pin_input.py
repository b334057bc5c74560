"""The PIN options of the click commands (``--pin``/``--pin-file`` and the admin PIN, reset
code and new PIN ones); reading a PIN is :mod:`opcard.cli.pins` (without click)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from opcard.cli.pins import ADMIN, NEW, RESET_CODE, USER, PinKind
from opcard.cli.pins import read_new_pin as _read_new_pin
from opcard.cli.pins import read_pin as _read_pin
from opcard.cli.state import UsageProblem

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


def _click_error(e: UsageProblem) -> click.UsageError:
    if e.invalid_value:
        return click.BadParameter(e.message, param_hint=e.param_hint)
    return click.UsageError(e.message)


def read_pin(
    kind: PinKind,
    value: str | None,
    file: str | None,
    *,
    prompt: str | None = None,
    confirm: bool = False,
) -> str:
    """:func:`opcard.cli.pins.read_pin`, its usage errors as click's."""
    try:
        return _read_pin(kind, value, file, prompt=prompt, confirm=confirm)
    except UsageProblem as e:
        raise _click_error(e) from None


def read_new_pin(name: str, value: str | None, file: str | None) -> str:
    """:func:`opcard.cli.pins.read_new_pin`, its usage errors as click's."""
    try:
        return _read_new_pin(name, value, file)
    except UsageProblem as e:
        raise _click_error(e) from None
