"""``--stdio``: serve one p11-kit client on standard input/output (the on-demand route).

p11-kit runs the command of a module file line ``remote: |command`` for every application that
loads its modules, with one end of a socketpair as the command's standard input and output.
Two commands do it, and both run :func:`serve_stdio`, so that they cannot drift apart:

- ``python -m opcard.serve --stdio [options]`` (:func:`main`): what ``opcard serve --install``
  writes. It parses its few options itself (argparse) and loads neither click nor the command
  line: it starts some 25 ms sooner, for every application;
- ``opcard serve --stdio`` (:mod:`opcard.cli.serve`), which also takes ``--login`` with a PIN
  file and the ``--confirm`` options.

The order is the one p11-kit needs: the socket is taken from standard input first (standard
output then carries nothing but the protocol), the process p11-kit started exits at once and a
child serves (:func:`~opcard.serve.activation.serve_in_a_child`), then the log goes to
standard error, the cards are attached, and the client is served until it disconnects.
The log level is ``warning`` unless asked otherwise: every application using the card would
otherwise print the server's start and end on its standard error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace

from opcard.serve.log import configure_logging

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    import argparse

    from opcard.serve.confirm import Confirmation
    from opcard.serve.limits import Limits
    from opcard.serve.logformat import EscapingFormatter
    from opcard.serve.slots import Registry

__all__ = [
    "LOG_LEVELS",
    "MAX_IDLE_TIMEOUT",
    "STDIO_LOG_LEVEL",
    "EscapingFormatter",
    "configure_logging",
    "main",
    "serve_stdio",
    "stdio_limits",
]

#: The levels ``--log-level`` takes.
LOG_LEVELS = ("error", "warning", "info", "debug")
#: ``--stdio``'s default log level: errors and warnings only (the daemon's is ``info``).
STDIO_LOG_LEVEL = "warning"

#: The program name in messages (``python -m opcard.serve``).
PROG = "python -m opcard.serve"
#: The longest ``--idle-timeout`` (a year; :data:`opcard.serve.limits.MAX_TIMEOUT`, written
#: here too so that parsing the options loads no server module).
MAX_IDLE_TIMEOUT = 365 * 24 * 3600.0


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """:class:`EscapingFormatter` (:mod:`opcard.serve.logformat`, which loads
        :mod:`logging`), on first use."""
        if name != "EscapingFormatter":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from opcard.serve.logformat import EscapingFormatter

        return EscapingFormatter


def stdio_limits(frame_timeout: float, idle_timeout: float | None) -> Limits:
    """The limits of a ``--stdio`` server (one connection: only the timeouts matter), as
    ``opcard serve`` derives them from ``--frame-timeout`` and ``--idle-timeout``."""
    from opcard.serve.limits import HANDSHAKE_TIMEOUT, SLOW_AFTER, Limits

    return Limits(
        handshake_timeout=min(HANDSHAKE_TIMEOUT, frame_timeout / 2),
        frame_timeout=frame_timeout,
        idle_timeout=idle_timeout,
        slow_after=min(SLOW_AFTER, frame_timeout / 2),
    )


def serve_stdio(
    readers: Sequence[str],
    serials: Sequence[str],
    *,
    log_level: str = STDIO_LOG_LEVEL,
    poll: float = 0.5,
    limits: Limits | None = None,
    confirmation: Confirmation | None = None,
    login_pin: Callable[[], str] | None = None,
    attach: Callable[[Registry], None] | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve the p11-kit client on standard input/output until it disconnects.

    ``readers``/``serials`` choose the cards (none: every card), ``poll`` is how often cards
    coming and going are looked for. ``login_pin``, when given, is asked for the user PIN once
    the cards are attached, and every card present is logged in with it (an operator login:
    the client's C_Logout keeps it). ``attach`` replaces the PC/SC readers by the caller's
    cards (the command line's backend in tests and embedders): it attaches them to the
    registry itself. ``ready`` is called once the cards are attached and the server is made,
    before the client is served.

    Raises :class:`~opcard.serve.errors.SocketError` when standard input is not a stream
    socket (before anything else happens); the library's errors (no card to log in to, a
    wrong PIN, pcscd not running) after the started process has exited and its child goes on.
    """
    from opcard.serve.activation import serve_in_a_child, stdio_socket

    # taken first: standard output must carry nothing but the protocol from here on
    stream = stdio_socket()
    serve_in_a_child()  # p11-kit's C_Finalize then waits for nobody (no PC/SC yet)
    restore_logging = configure_logging(log_level)
    from opcard.serve.log import logger as log
    from opcard.serve.pcsc import PcscMonitor, stop_serving
    from opcard.serve.server import Server, default_socket_file
    from opcard.serve.slots import Registry

    registry = Registry()
    monitor: PcscMonitor | None = None
    server: Server | None = None
    try:
        if attach is None:
            monitor = PcscMonitor(
                registry, readers=tuple(readers), serials=tuple(serials), interval=poll
            )
            monitor.scan()
        else:
            attach(registry)
        if login_pin is not None:
            if monitor is not None and not registry.slots(present_only=True):
                in_use = monitor.in_use_error()  # nothing to log in to: say why
                if in_use is not None:
                    raise in_use
            operator_login(registry, login_pin())
        server = Server(
            registry,
            default_socket_file(),
            limits=limits or stdio_limits(10.0, None),
            confirmation=confirmation,
        )
        if confirmation is not None:
            log.info(
                "every private-key use of %s connections asks %s (%g s to answer)",
                confirmation.when.value,
                confirmation.command[0],
                confirmation.timeout,
            )
        if monitor is not None:
            monitor.start()
        log.info(
            "serving %d card(s) on standard input/output", len(registry.slots(present_only=True))
        )
        if ready is not None:
            ready()
        server.serve_stream(stream)
    finally:
        try:
            stop_serving(monitor, registry, server)
        finally:
            restore_logging()


def operator_login(registry: Registry, pin: str) -> None:
    """Log in every card present with the user PIN (:class:`~opcard.errors.NoCardError`
    when there is none)."""
    from opcard.errors import NoCardError

    slots = registry.slots(present_only=True)
    if not slots:
        raise NoCardError("no card to log in to")
    for slot in slots:
        slot.login_operator(pin)


# -- python -m opcard.serve ----------------------------------------------------------------------


def _in_range(text: str, low: float, high: float | None) -> float | None:
    """``text`` as a number in [low, high]; None when it is not one (or NaN)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value < low or (high is not None and value > high):
        return None
    return value


def _number(low: float, high: float | None) -> Callable[[str], float]:
    """An argparse type: a number in [low, high] (argparse shows the message it raises)."""

    def parse(text: str) -> float:
        value = _in_range(text, low, high)
        if value is not None:
            return value
        import argparse

        try:
            float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        bound = f"at least {low:g}" if high is None else f"between {low:g} and {high:.10g}"
        raise argparse.ArgumentTypeError(f"{text} is not {bound}")

    return parse


#: The options :func:`_fast_args` reads: option → (destination, its check of a value: the
#: value to store, or None when argparse must say what is wrong).
_FAST_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "--reader": ("readers", lambda text: text),
    "--serial": ("serials", lambda text: text),
    "--log-level": ("log_level", lambda text: text.lower() if text.lower() in LOG_LEVELS else None),
    "--card-timeout": ("card_timeout", lambda text: _in_range(text, 0, None)),
    "--poll": ("poll", lambda text: _in_range(text, 0.05, 60)),
    "--frame-timeout": ("frame_timeout", lambda text: _in_range(text, 0.05, 3600)),
    "--idle-timeout": ("idle_timeout", lambda text: _in_range(text, 0.05, MAX_IDLE_TIMEOUT)),
}


def _fast_args(argv: Sequence[str]) -> SimpleNamespace | None:
    """The options of a plain command line — ``--stdio`` and known options each with a valid
    value (``--reader NAME`` or ``--reader=NAME``), what ``opcard serve --install`` writes —
    read without argparse, which costs every on-demand process some 4 ms (argparse, gettext,
    locale, and shutil for the help's width); the same values :func:`_parser` gives
    (tests/unit/test_lazy_imports_serve.py compares them). Anything else (no ``--stdio``,
    ``--help``, an unknown or abbreviated option, a value argparse could take for an option
    or refuses): None, and argparse parses the command line, with its messages."""
    found: dict[str, object] = {
        "stdio": False,
        "readers": [],
        "serials": [],
        "log_level": STDIO_LOG_LEVEL,
        "card_timeout": None,
        "poll": 0.5,
        "frame_timeout": 10.0,
        "idle_timeout": None,
    }
    words = iter(argv)
    for word in words:
        if word == "--stdio":
            found["stdio"] = True
            continue
        option, equals, text = word.partition("=")
        if not equals:
            text = next(words, "-")  # none: argparse's "expected one argument"
            if text.startswith("-"):  # an option, a negative number: argparse decides
                return None
        entry = _FAST_OPTIONS.get(option)
        if entry is None:
            return None
        destination, check = entry
        value = check(text)
        if value is None:
            return None
        if destination in ("readers", "serials"):
            appended = found[destination]
            assert isinstance(appended, list)
            appended.append(value)
        else:
            found[destination] = value
    if not found["stdio"]:
        return None
    return SimpleNamespace(**found)


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        allow_abbrev=False,
        description="Serve the OpenPGP cards as PKCS#11 tokens to the one p11-kit client on "
        "standard input/output: the command of a p11-kit module file line 'remote: |python3 -m "
        "opcard.serve --stdio', which 'opcard serve --install' writes (docs/serve.md). Exits "
        "when that client disconnects; logs go to standard error. The same as 'opcard serve "
        "--stdio', without the command line's start-up; --login, --pin-file and --confirm "
        "are there.",
    )
    parser.add_argument(
        "--stdio",
        action="store_true",
        required=True,
        help="Serve the client on standard input/output (required: the daemon is 'opcard serve').",
    )
    parser.add_argument(
        "--reader",
        dest="readers",
        action="append",
        default=[],
        metavar="NAME",
        help="Serve only the cards in this reader (a name or part of one; repeatable). "
        "Default: every reader.",
    )
    parser.add_argument(
        "--serial",
        dest="serials",
        action="append",
        default=[],
        metavar="SERIAL",
        help="Serve only the card with this serial number (8 hex digits; repeatable).",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=STDIO_LOG_LEVEL,
        help=f"What to log on standard error (debug: every call; never a PIN or data) "
        f"[default: {STDIO_LOG_LEVEL}].",
    )
    parser.add_argument(
        "--card-timeout",
        type=_number(0, None),
        metavar="SECONDS",
        help="How long to wait for the card's answer to a command (0: for ever) "
        "[default: $OPCARD_CARD_TIMEOUT, else 30].",
    )
    parser.add_argument(
        "--poll",
        type=_number(0.05, 60),
        default=0.5,
        metavar="SECONDS",
        help="How often to look for cards inserted and removed [default: 0.5].",
    )
    parser.add_argument(
        "--frame-timeout",
        type=_number(0.05, 3600),
        default=10.0,
        metavar="SECONDS",
        help="Time a request has from its first byte to its last [default: 10].",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_number(0.05, MAX_IDLE_TIMEOUT),
        metavar="SECONDS",
        help="Close the connection after this long without a call [default: never].",
    )
    return parser


def _fail(code: int, message: str, hint: str = "") -> int:
    from opcard.text import escape

    print(f"opcard: error: {escape(message, keep=chr(10))}", file=sys.stderr)
    if hint:
        print(f"opcard: {escape(hint, keep=chr(10))}", file=sys.stderr)
    return code


def collect_again() -> None:
    """The garbage collector back on after the start-up (:mod:`opcard.serve.__main__` and
    :func:`opcard.cli.main` turn it off), what the start-up made frozen first: modules,
    classes and tables that live as long as the server, which collections need not look at
    again (``gc.freeze``)."""
    import gc

    gc.freeze()
    gc.enable()


def main(argv: Sequence[str] | None = None, *, collector_off: bool = False) -> int:
    """``python -m opcard.serve --stdio …``: the exit code (2 for a usage error, 1 when
    standard input is not a socket; after the fork the started process has exited 0 and a
    failure of the serving child is its exit code with the command line's message).

    ``collector_off``: the garbage collector was turned off for the start-up; it is turned
    back on when the server is ready (:func:`collect_again`)."""
    fast = _fast_args(sys.argv[1:] if argv is None else argv)
    # else argparse: it exits 2 with the usage on standard error when something is wrong
    args = fast if fast is not None else _parser().parse_args(argv)
    if args.card_timeout is not None:
        # the PC/SC transport and the card monitor read their time bound from there
        os.environ["OPCARD_CARD_TIMEOUT"] = f"{args.card_timeout:g}"
    from opcard.serve.errors import SocketError

    try:
        serve_stdio(
            args.readers,
            args.serials,
            log_level=args.log_level,
            poll=args.poll,
            limits=stdio_limits(args.frame_timeout, args.idle_timeout),
            ready=collect_again if collector_off else None,
        )
    except SocketError as e:
        from opcard.exitcodes import ExitCode  # (the exit codes: when something failed)

        return _fail(ExitCode.Error, str(e))
    except KeyboardInterrupt:
        from opcard.exitcodes import ExitCode

        return _fail(ExitCode.Interrupted, "interrupted")
    except Exception as exc:  # one or two lines and the command line's exit code
        from opcard.exitcodes import classify

        return _fail(*classify(exc))
    return 0
