"""Turning exceptions into one or two lines and an exit code (see :mod:`opcard.cli.exitcodes`).

:func:`classify` maps an exception to ``(exit code, message, hint)``; :class:`CliError` is the
click exception the root command raises with them. Library imports happen inside
:func:`classify`, only when something failed.

The command line sees opcard exceptions only (:mod:`opcard.errors`; the library translates the
protocol layer's at one boundary): what is private to this module is the mapping to exit codes
and the command-line hints — which ``opcard`` command unblocks a PIN, where the Python API's
messages name Python calls. PIN errors say which PIN (``exc.pin``), so no message is parsed.
"""

from __future__ import annotations

from typing import IO, Any

import click

from opcard.cli.exitcodes import ExitCode

__all__ = ["CliError", "classify"]


class CliError(click.ClickException):
    """A failure shown as ``opcard: error: <message>`` plus an optional hint line."""

    def __init__(self, message: str, code: ExitCode = ExitCode.Error, hint: str = "") -> None:
        super().__init__(message)
        # click reads the exit code from the exception; an instance value shadows the class's
        vars(self)["exit_code"] = int(code)
        self.code = code
        self.hint = hint

    def show(self, file: IO[Any] | None = None) -> None:
        # messages quote card, reader and file content: escaped (opcard.text)
        from opcard.text import escape

        click.echo(
            f"opcard: error: {escape(self.message, keep=chr(10))}", file=file, err=file is None
        )
        if self.hint:
            click.echo(f"opcard: {escape(self.hint, keep=chr(10))}", file=file, err=file is None)


#: What to do on the command line when a PIN is blocked (by ``PinKind`` value).
_BLOCKED_HINT = {
    "user PIN": "unblock it with 'opcard pin unblock' (reset code or admin PIN)",
    "admin PIN": "the admin PIN cannot be unblocked: 'opcard reset' erases the card",
    "reset code": "set a new reset code with 'opcard pin set-reset-code' (admin PIN)",
}


def classify(exc: BaseException) -> tuple[ExitCode, str, str]:
    """(exit code, message, hint) for an exception raised by a command."""
    from opcard import errors as e

    unsupported: tuple[type[BaseException], ...] = (
        e.UnsupportedMechanismError,
        e.UnsupportedKeyError,
        e.NotSupportedByCardError,
        e.AlgorithmRefusedError,
    )

    if isinstance(exc, e.CardNotAnsweringError):
        return (
            ExitCode.NotAnswering,
            str(exc),
            "remove the card and insert it again (its reader stays blocked until then); "
            "--card-timeout SECONDS or $OPCARD_CARD_TIMEOUT sets how long opcard waits",
        )
    if isinstance(exc, e.CardInUseError):
        return ExitCode.CardInUse, exc.problem, exc.remedy
    if isinstance(exc, e.SeveralCardsError):
        listing = "\n".join(f"  {card}" for card in exc.cards)
        return (
            ExitCode.SeveralCards,
            f"{len(exc.cards)} OpenPGP cards are present:\n{listing}",
            "choose one with --serial SERIAL or --reader NAME",
        )
    if isinstance(exc, e.PcscUnavailableError):
        return (
            ExitCode.NoCard,
            str(exc),
            "start pcscd (e.g. 'systemctl start pcscd.socket', or 'pcscd')",
        )
    if isinstance(exc, e.NoCardError):
        return (
            ExitCode.NoCard,
            str(exc),
            "insert the card, check 'opcard list', or choose another with --serial / --reader",
        )
    if isinstance(exc, e.WrongPinError):
        name = exc.pin.label if exc.pin is not None else "PIN"
        if exc.retries == 0:
            return (
                ExitCode.WrongPin,
                f"wrong {name}: no tries left, the {name} is now blocked",
                "only a factory reset ('opcard reset') makes the card usable again"
                if exc.pin is e.PinKind.ADMIN
                else _BLOCKED_HINT.get(name, _BLOCKED_HINT["user PIN"]),
            )
        left = "an unknown number of" if exc.retries is None else str(exc.retries)
        tries = "try" if exc.retries == 1 else "tries"
        return (
            ExitCode.WrongPin,
            f"wrong {name}: {left} {tries} left",
            f"check the {name}; when no tries are left it is blocked",
        )
    if isinstance(exc, e.PinBlockedError):
        name = exc.pin.label if exc.pin is not None else "PIN"
        hint = _BLOCKED_HINT.get(name, "unblock it with 'opcard pin unblock'")
        return ExitCode.PinBlocked, f"the {name} is blocked", hint
    if isinstance(exc, e.PinFormatError):
        return ExitCode.BadInput, str(exc), ""
    if isinstance(exc, e.CertificateTooLargeError):
        return (
            ExitCode.CertificateTooLarge,
            str(exc),
            "use a smaller certificate (an ECC key, fewer extensions or a shorter chain of names)",
        )
    if isinstance(exc, unsupported):
        return ExitCode.Unsupported, str(exc), ""
    if isinstance(exc, e.ObjectNotFoundError):  # not MultipleObjectsError: that is exit code 1
        return ExitCode.NotFound, str(exc), ""
    if isinstance(exc, e.MechanismError | e.OpenPgpFormatError):
        return ExitCode.BadInput, str(exc), ""
    if isinstance(exc, e.NotLoggedInError):
        return ExitCode.CardError, str(exc), ""
    if isinstance(exc, e.CardError):
        return ExitCode.CardError, str(exc), ""
    if isinstance(exc, e.OpcardError):
        return ExitCode.Error, str(exc), ""
    if isinstance(exc, OSError):
        return ExitCode.Error, str(exc), ""
    return (
        ExitCode.Error,
        f"internal error: {type(exc).__name__}: {exc}",
        "run again with --debug for the traceback, and report it",
    )
