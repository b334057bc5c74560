"""What every click command shares: :mod:`opcard.cli.state` (the per-invocation state, output)
and the click pieces — the decorator that passes the state, the slot option."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from opcard.cli.state import (
    SLOTS,
    Failure,
    State,
    UsageProblem,
    binary_stdout,
    echo,
    echo_json,
    shown,
    to_slot,
    write_output,
)

__all__ = [
    "SLOTS",
    "Failure",
    "State",
    "UsageProblem",
    "binary_stdout",
    "echo",
    "echo_json",
    "pass_state",
    "shown",
    "slot_option",
    "to_slot",
    "write_output",
]

F = TypeVar("F", bound=Callable[..., Any])


def pass_state(f: F) -> F:
    """Pass the invocation's :class:`State` as first argument (``click.make_pass_decorator``),
    and turn a :class:`UsageProblem` into click's usage error of this command."""

    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        state = ctx.find_object(State)
        if state is None:  # pragma: no cover - every command runs under the root group
            raise RuntimeError("no opcard State in the click context")
        try:
            return ctx.invoke(f, state, *args, **kwargs)
        except Failure as e:
            from opcard.cli.errors import CliError
            from opcard.exitcodes import ExitCode

            raise CliError(e.message, ExitCode(e.code), e.hint) from e
        except UsageProblem as e:
            if e.invalid_value:
                raise click.BadParameter(e.message, param_hint=e.param_hint) from None
            raise click.UsageError(e.message) from None

    return cast(F, functools.update_wrapper(run, f))


def slot_option(default: str | None = None, help: str = "Key slot.") -> Callable[[F], F]:
    """``--slot sig|dec|aut``: required unless ``default`` is given."""
    # no default=None with required: click 8.5 counts an explicit None as a value given, and
    # the command would run without a slot
    extra: dict[str, Any] = {"default": default} if default is not None else {}
    return click.option(
        "--slot",
        type=click.Choice(SLOTS, case_sensitive=False),
        required=default is None,
        show_default=default is not None,
        help=help,
        **extra,
    )
