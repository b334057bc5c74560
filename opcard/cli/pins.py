"""Getting PINs, without click (:mod:`opcard.cli.pin_input` adds the options): from a file,
the environment, a prompt without echo, or (with a warning) the
command line.

Order: ``--pin VALUE`` (warns: other users see it in ``ps``, the shell keeps it in its
history), ``--pin-file FILE`` (first line; ``-`` is standard input), the environment variable
(``OPCARD_PIN`` for the user PIN, ``OPCARD_ADMIN_PIN`` for the admin PIN, ``OPCARD_RESET_CODE``
and ``OPCARD_NEW_PIN`` for the others), then a prompt without echo. PINs are never printed.
"""

from __future__ import annotations

import os
import sys

from apdu.record import Record
from opcard.cli.state import UsageProblem

__all__ = ["ADMIN", "NEW", "RESET_CODE", "USER", "PinKind", "read_new_pin", "read_pin"]


class PinKind(Record):
    """One kind of secret: its name, its option names and its environment variable."""

    name: str
    option: str  # "--pin"
    env: str

    @property
    def file_option(self) -> str:
        return f"{self.option}-file"

    @property
    def param(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    @property
    def file_param(self) -> str:
        return f"{self.param}_file"


USER = PinKind("user PIN", "--pin", "OPCARD_PIN")
ADMIN = PinKind("admin PIN", "--admin-pin", "OPCARD_ADMIN_PIN")
RESET_CODE = PinKind("reset code", "--reset-code", "OPCARD_RESET_CODE")
NEW = PinKind("new PIN", "--new-pin", "OPCARD_NEW_PIN")


def _from_file(path: str) -> str:
    if path == "-":
        line = sys.stdin.readline()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                line = f.readline()
        except OSError as e:
            raise UsageProblem(f"cannot read {path}: {e.strerror}", invalid_value=True) from e
    return line.rstrip("\r\n")


def _warn_command_line(kind: PinKind) -> None:
    if sys.stderr is None:  # no standard error (2>&-): click.echo wrote nothing either
        return
    sys.stderr.write(
        f"opcard: warning: the {kind.name} on the command line is visible to other users and "
        f"stays in the shell history; use {kind.file_option} FILE or ${kind.env}\n"
    )
    sys.stderr.flush()


def read_pin(
    kind: PinKind,
    value: str | None,
    file: str | None,
    *,
    prompt: str | None = None,
    confirm: bool = False,
) -> str:
    """The secret of ``kind`` from the command line, a file, the environment or a prompt."""
    if value is not None and file is not None:
        raise UsageProblem(f"give {kind.option} or {kind.file_option}, not both")
    if value is not None:
        _warn_command_line(kind)
        return value
    if file is not None:
        return _from_file(file)
    from_env = os.environ.get(kind.env)
    if from_env is not None:
        return from_env
    text = prompt or kind.name[0].upper() + kind.name[1:]
    import click  # the prompt only: the rest of the command line runs without click

    result: str = click.prompt(
        text, hide_input=True, confirmation_prompt=confirm, err=True, show_default=False
    )
    return result


def read_new_pin(name: str, value: str | None, file: str | None) -> str:
    """The new value of a secret (prompted twice when it comes from the terminal)."""
    return read_pin(NEW, value, file, prompt=f"New {name}", confirm=True)
