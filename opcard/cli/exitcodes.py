"""The exit codes of the ``opcard`` command: one table, documented in docs/cli.md.

Every failure the command knows about ends with one of these codes and one or two lines on
standard error (the problem, then what to do); ``--debug`` adds the traceback.
"""

from __future__ import annotations

from enum import IntEnum, unique

__all__ = ["EXIT_CODE_DESCRIPTIONS", "ExitCode"]


@unique
class ExitCode(IntEnum):
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
