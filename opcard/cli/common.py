"""What every command shares: the per-invocation state (card, session), slot options, output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    import logging

    from apdu.openpgp.constants import KeySlot
    from opcard.card import Card
    from opcard.session import Session

__all__ = [
    "SLOTS",
    "State",
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


pass_state = click.make_pass_decorator(State)


def to_slot(name: str) -> KeySlot:
    from apdu.openpgp.constants import KeySlot

    return KeySlot[name.upper()]


def slot_option(default: str | None = None, help: str = "Key slot.") -> Callable[[F], F]:
    """``--slot sig|dec|aut``: required unless ``default`` is given."""
    return click.option(
        "--slot",
        type=click.Choice(SLOTS, case_sensitive=False),
        default=default,
        required=default is None,
        show_default=default is not None,
        help=help,
    )


def binary_stdout() -> IO[bytes]:
    """Standard output for bytes (the one click's test runner installs, too)."""
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # pragma: no cover - a text-only stream
        raise click.ClickException("standard output cannot take binary data")
    return buffer


def shown(value: object) -> str:
    """One value from a card, a certificate, a reader or a peer, for a person: every control,
    format and separator character escaped, newlines too (:func:`opcard.text.escape`)."""
    from opcard.text import escape

    return escape(str(value))


def echo(text: str, *, err: bool = False) -> None:
    """``click.echo`` for text meant for a person: control and format characters are escaped
    (newlines and tabs stay). Every line the command line prints goes through here (or
    :func:`echo_json`), so that text a card chose never reaches the terminal raw even where a
    field was not escaped with :func:`shown` (which also escapes newlines)."""
    from opcard.text import escape

    click.echo(escape(text, keep="\n\t"), err=err)


def echo_json(value: Any) -> None:
    """``value`` as JSON: exact values, with control and format characters as JSON escapes
    (:func:`opcard.text.escape_json`; C0 controls JSON escapes itself)."""
    import json

    from opcard.text import escape_json

    click.echo(escape_json(json.dumps(value, indent=2, ensure_ascii=False)))


def write_output(data: bytes, output: str | None) -> None:
    """``data`` to the file ``output`` (``-`` or None: standard output)."""
    if output is None or output == "-":
        out = binary_stdout()
        out.write(data)
        out.flush()
        return
    with open(output, "wb") as f:
        f.write(data)
