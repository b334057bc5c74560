"""The exit codes of ``opcard`` (and of ``python -m opcard.serve``): one table, documented in
docs/cli.md, and :func:`classify`, which maps an exception to ``(exit code, message, hint)``.

Every failure the command knows about ends with one of these codes and one or two lines on
standard error (the problem, then what to do); ``--debug`` adds the traceback. The mapping sees
opcard exceptions only (:mod:`opcard.errors`; the library translates the protocol layer's at
one boundary); the hints are the command line's — which ``opcard`` command unblocks a PIN,
where the Python API's messages name Python calls. PIN errors say which PIN (``exc.pin``), so
no message is parsed. Library imports happen inside :func:`classify`, only when something
failed.
"""

from __future__ import annotations

from apdu._enums import IntEnumBody, fast_enum

__all__ = ["EXIT_CODE_DESCRIPTIONS", "ExitCode", "classify"]


@fast_enum
class ExitCode(IntEnumBody):
    """Process exit status of ``opcard``."""

    Ok = 0
    Error = 1
    Usage = 2
    NoCard = 3
    SeveralCards = 4
    WrongPin = 5
    PinBlocked = 6
    CertificateTooLarge = 7
    Unsupported = 8
    CardError = 9
    NotFound = 10
    BadInput = 11
    CardInUse = 12
    NotAnswering = 13
    Interrupted = 130


#: What each exit code means (docs/cli.md repeats this table; a test compares them).
EXIT_CODE_DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.Ok: "success",
    ExitCode.Error: "any other error (including a declined confirmation)",
    ExitCode.Usage: "usage error: unknown command or option, missing or invalid argument",
    ExitCode.NoCard: "no OpenPGP card found (or not the one asked for; or pcscd is not running)",
    ExitCode.SeveralCards: "several OpenPGP cards are present: choose with --serial or --reader",
    ExitCode.WrongPin: "the card refused the PIN (the message says how many tries are left)",
    ExitCode.PinBlocked: "the PIN is blocked (unblock it with the reset code or the admin PIN)",
    ExitCode.CertificateTooLarge: "the certificate is larger than the card can store",
    ExitCode.Unsupported: (
        "algorithm, key, mechanism or feature the card cannot do or does not have (e.g. "
        "RSA-PSS, TLS 1.3 with RSA, KDF, touch, a second certificate)"
    ),
    ExitCode.CardError: "the card or the reader failed, or the card refused the operation",
    ExitCode.NotFound: "the slot is empty (no key, or no certificate)",
    ExitCode.BadInput: "the input is not usable: not a certificate or key, a PIN of bad length",
    ExitCode.CardInUse: (
        "the card is in exclusive use by another program (GnuPG's scdaemon): "
        "'gpgconf --kill scdaemon', or 'pcsc-shared' in scdaemon.conf"
    ),
    ExitCode.NotAnswering: (
        "the card (or its reader) does not answer: nothing came back within the card timeout "
        "(--card-timeout, $OPCARD_CARD_TIMEOUT); remove the card and insert it again"
    ),
    ExitCode.Interrupted: "interrupted (Ctrl-C)",
}


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
