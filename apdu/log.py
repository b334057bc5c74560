"""Traffic logging: one line per transmitted command APDU and per response.

The logger is ``apdu.traffic`` and its level :data:`TRAFFIC` (5, registered as "TRAFFIC") sits
below DEBUG, so nothing is logged unless asked for::

    > 00a4040006 d27600012401
    < 9000 (0 bytes, 0.081 ms)
    > 0020008106 <6 bytes redacted>
    < 9000 (0 bytes, 0.210 ms)
    > 00ca006e00
    < 9000 (237 bytes, 0.120 ms) 6e81ea4f10d2760001240103040006...

A command line shows the header and the Lc field, the data, then the Le field. The payload of a
sensitive command (:attr:`apdu.command.Command.sensitive`: VERIFY, CHANGE REFERENCE DATA, RESET
RETRY COUNTER, PUT DATA of the reset code, key import) is replaced by its length, in every block
of a chain; the data of their responses is redacted as well.

The send path calls :func:`enabled` once per APDU and formats nothing when it is off.

:mod:`logging` is imported only when it is used: by :func:`enable`, by the first use of
:data:`logger` or :data:`session_logger`, or by :func:`enabled` once another module has imported
:mod:`logging` (until then no one can have configured a logger, so nothing is wanted). A
command line without ``-v`` does not load :mod:`logging` at all (issue #15).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    import logging
    from typing import TextIO

    #: One line per APDU and response (the ``apdu.traffic`` logger).
    logger: logging.Logger
    #: Chaining events worth a note (the ``apdu.channel`` logger: a card answering more than
    #: asked, a 6Cxx resend).
    session_logger: logging.Logger

__all__ = [
    "TRAFFIC",
    "logger",
    "session_logger",
    "enabled",
    "emit",
    "note",
    "format_command",
    "format_response",
    "enable",
]

#: Log level of the traffic lines (below DEBUG = 10), registered as "TRAFFIC".
TRAFFIC = 5
_DEBUG = 10

_modules = sys.modules
_loggers: tuple[logging.Logger, logging.Logger] | None = None


def _get() -> tuple[logging.Logger, logging.Logger]:
    """The traffic and session loggers (importing :mod:`logging` the first time)."""
    global _loggers
    if _loggers is None:
        import logging

        logging.addLevelName(TRAFFIC, "TRAFFIC")
        _loggers = (logging.getLogger("apdu.traffic"), logging.getLogger("apdu.channel"))
    return _loggers


if not TYPE_CHECKING:  # type checkers see the two loggers declared above

    def __getattr__(name: str) -> object:
        if name == "logger":
            return _get()[0]
        if name == "session_logger":
            return _get()[1]
        raise AttributeError(f"module 'apdu.log' has no attribute {name!r}")


def enabled() -> bool:
    """Whether traffic lines are wanted (cheap: False while :mod:`logging` is not imported,
    then the logging module's cached answer)."""
    return "logging" in _modules and _get()[0].isEnabledFor(TRAFFIC)


def emit(line: str) -> None:
    """Log one traffic line (check :func:`enabled` first)."""
    _get()[0].log(TRAFFIC, line)


def note(message: str, *args: object) -> None:
    """A session note (DEBUG on ``apdu.channel``), when someone asked for them."""
    if "logging" in _modules:
        session = _get()[1]
        if session.isEnabledFor(_DEBUG):
            session.debug(message, *args)


def format_command(wire: bytes, data_start: int, data_len: int, sensitive: bool) -> str:
    """The log line of a command APDU as sent.

    ``wire[:data_start]`` is the header with the Lc field, ``data_len`` bytes of data follow,
    and whatever remains is the Le field.
    """
    head = wire[:data_start].hex()
    end = data_start + data_len
    tail = wire[end:].hex()
    if not data_len:
        return f"> {head}{tail}"
    payload = f"<{data_len} bytes redacted>" if sensitive else wire[data_start:end].hex()
    return f"> {head} {payload} {tail}".rstrip()


def format_response(raw: bytes, sensitive: bool, seconds: float | None = None) -> str:
    """The log line of a response APDU (status word first, then the data length and data)."""
    if len(raw) < 2:
        return f"< malformed response {raw.hex()!r} ({len(raw)} bytes)"
    n = len(raw) - 2
    sw = raw[-2:].hex()
    timing = "" if seconds is None else f", {seconds * 1000:.3f} ms"
    if not n:
        return f"< {sw} (0 bytes{timing})"
    payload = "<redacted>" if sensitive else raw[:-2].hex()
    return f"< {sw} ({n} bytes{timing}) {payload}"


def enable(stream: TextIO | None = None, level: int = TRAFFIC) -> logging.Handler:
    """Send the traffic lines (and session notes) to ``stream`` (stderr by default).

    A convenience for command-line tools and debugging; returns the handler so the caller can
    remove it again.
    """
    import logging

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for lg in _get():
        lg.addHandler(handler)
        lg.setLevel(level)
    return handler
