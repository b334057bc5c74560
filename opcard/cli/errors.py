"""The click exception of a failed command: :class:`CliError`, shown as one or two lines
with an exit code. Which exception gets which code, message and hint is
:func:`opcard.exitcodes.classify` (the table ``python -m opcard.serve`` uses too).
"""

from __future__ import annotations

from typing import IO, Any

import click

from opcard.exitcodes import ExitCode

__all__ = ["CliError"]


class CliError(click.ClickException):
    """A failure shown as ``opcard: error: <message>`` plus an optional hint line."""

    def __init__(self, message: str, code: ExitCode = ExitCode.Error, hint: str = "") -> None:
        super().__init__(message)
        # click reads the exit code from the exception; an instance value shadows the class's
        vars(self)["exit_code"] = int(code)
        self.code = code
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        from opcard.cli.state import error_lines

        for line in error_lines(self.message, self.hint):
            click.echo(line, file=file, err=file is None)
