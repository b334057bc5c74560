"""What a command does, without click: the per-invocation state (card, session) and output.

The commands :mod:`opcard.cli.fast` runs without click (``list``, ``status``, ``cert export``,
``sign``) do their work with these alone; :mod:`opcard.cli.common` re-exports them for the click
commands. Output goes to ``sys.stdout``/``sys.stderr`` as ``click.echo`` writes it (a line, then
a flush), so a command prints the same bytes whichever front end runs it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import IO, Any

    from apdu.openpgp.constants import KeySlot
    from opcard.card import Card
    from opcard.session import Session

__all__ = [
    "SLOTS",
    "State",
    "Failure",
    "UsageProblem",
    "begin",
    "binary_stdout",
    "echo",
    "echo_json",
    "error_lines",
    "shown",
    "to_slot",
    "write_output",
]

#: Slot names as the command line spells them.
SLOTS = ("sig", "dec", "aut")


class State:
    """One invocation: global options, and the card and session opened on first use."""

    def __init__(
        self, *, reader: str | None, serial: str | None, debug: bool, log_apdus: bool
    ) -> None:
        self.reader = reader
        self.serial = serial
        self.debug = debug
        self.log_apdus = log_apdus
        self._card: Card | None = None
        self._session: Session | None = None
        self._log_handler: logging.Handler | None = None
        if log_apdus:
            from apdu import log

            self._log_handler = log.enable(sys.stderr)

    def card(self) -> Card:
        """The card chosen by ``--reader`` / ``--serial`` (opened once)."""
        if self._card is None:
            from opcard.cli.backend import current

            self._card = current().open_card(serial=self.serial, reader=self.reader)
        return self._card

    def session(self) -> Session:
        """A session on the card (logged out and closed when the command ends)."""
        if self._session is None:
            self._session = self.card().session()
        return self._session

    def close(self) -> None:
        session, card = self._session, self._card
        self._session = self._card = None
        try:
            if session is not None:
                session.close()
        finally:
            if card is not None:
                card.close()
            if self._log_handler is not None:
                import logging

                from apdu import log

                for lg in (log.logger, log.session_logger):
                    lg.removeHandler(self._log_handler)
                    lg.setLevel(logging.NOTSET)
                self._log_handler = None


class UsageProblem(Exception):
    """A usage error a command finds while it runs (a slot that cannot do what was asked, a PIN
    file that cannot be read): shown as click shows its ``UsageError`` — the usage line, a hint,
    ``Error: MESSAGE`` — with exit code 2. With ``invalid_value`` it reads as click's
    ``BadParameter``: ``Invalid value[ for HINT]: MESSAGE``."""

    def __init__(
        self, message: str, *, invalid_value: bool = False, param_hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_value = invalid_value
        self.param_hint = param_hint

    def text(self) -> str:
        """The text after ``Error: `` (click's ``format_message``)."""
        if not self.invalid_value:
            return self.message
        if self.param_hint is None:
            return f"Invalid value: {self.message}"
        return f"Invalid value for {self.param_hint}: {self.message}"


def begin(
    *,
    reader: str | None,
    serial: str | None,
    log_apdus: bool,
    card_timeout: float | None,
    debug: bool,
) -> tuple[State, Callable[[], None] | None]:
    """What the root options do, in both front ends: the invocation's :class:`State`, and with
    ``--card-timeout`` the variable the PC/SC transport reads its time bound from
    ($OPCARD_CARD_TIMEOUT, also read by the daemon's card monitor) set for this command; the
    function returned (None without ``--card-timeout``) puts it back as it was."""
    state = State(reader=reader, serial=serial, debug=debug, log_apdus=log_apdus)
    if card_timeout is None:
        return state, None
    import os

    name = "OPCARD_CARD_TIMEOUT"
    old = os.environ.get(name)
    os.environ[name] = f"{card_timeout:g}"

    def restore() -> None:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

    return state, restore


class Failure(Exception):
    """A failure the command itself describes: ``opcard: error: MESSAGE`` (and the hint) with
    ``code`` as exit code — click's :class:`opcard.cli.errors.CliError`, without click."""

    def __init__(self, message: str, code: int = 1, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


def to_slot(name: str) -> KeySlot:
    from apdu.openpgp.constants import KeySlot

    return KeySlot[name.upper()]


def binary_stdout() -> IO[bytes]:
    """Standard output for bytes (the one click's test runner installs, too)."""
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # no standard output (>&-), or a text-only stream
        import click  # click's error, as before the commands ran without click: exit code 1

        raise click.ClickException("standard output cannot take binary data")
    return buffer


def shown(value: object) -> str:
    """One value from a card, a certificate, a reader or a peer, for a person: every control,
    format and separator character escaped, newlines too (:func:`opcard.text.escape`)."""
    from opcard.text import escape

    return escape(str(value))


def _write(text: str, err: bool) -> None:
    stream = sys.stderr if err else sys.stdout
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str) or encoding.lower() not in ("utf-8", "utf8"):
        # No stream (>&-: click.echo writes nothing), or one click.echo handles its own way
        # (an ASCII one gets UTF-8): click's echo, which opcard.cli.fast leaves such streams to
        import click

        click.echo(text, err=err)
        return
    stream.write(text + "\n")
    stream.flush()


def echo(text: str, *, err: bool = False) -> None:
    """A line for a person, as ``click.echo`` writes it, with control and format characters
    escaped (newlines and tabs stay). Every line the command line prints goes through here (or
    :func:`echo_json`), so that text a card chose never reaches the terminal raw even where a
    field was not escaped with :func:`shown` (which also escapes newlines)."""
    from opcard.text import escape

    _write(escape(text, keep="\n\t"), err)


def echo_json(value: Any) -> None:
    """``value`` as JSON: exact values, with control and format characters as JSON escapes
    (:func:`opcard.text.escape_json`; C0 controls JSON escapes itself)."""
    import json

    from opcard.text import escape_json

    _write(escape_json(json.dumps(value, indent=2, ensure_ascii=False)), False)


def error_lines(message: str, hint: str = "") -> list[str]:
    """How a failed command reports: ``opcard: error: MESSAGE`` and an optional hint line
    (escaped: messages quote card, reader and file content)."""
    from opcard.text import escape

    lines = [f"opcard: error: {escape(message, keep=chr(10))}"]
    if hint:
        lines.append(f"opcard: {escape(hint, keep=chr(10))}")
    return lines


def write_output(data: bytes, output: str | None) -> None:
    """``data`` to the file ``output`` (``-`` or None: standard output)."""
    if output is None or output == "-":
        out = binary_stdout()
        out.write(data)
        out.flush()
        return
    with open(output, "wb") as f:
        f.write(data)
