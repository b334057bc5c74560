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
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

__all__ = [
    "TRAFFIC",
    "logger",
    "session_logger",
    "enabled",
    "format_command",
    "format_response",
    "enable",
]

#: Log level of the traffic lines (below DEBUG = 10).
TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")

#: One line per APDU and response.
logger = logging.getLogger("apdu.traffic")
#: Chaining events worth a note (a card answering more than asked, a 6Cxx resend).
session_logger = logging.getLogger("apdu.channel")


def enabled() -> bool:
    """Whether traffic lines are wanted (cheap: the logging module caches the answer)."""
    return logger.isEnabledFor(TRAFFIC)


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
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    for lg in (logger, session_logger):
        lg.addHandler(handler)
        lg.setLevel(level)
    return handler
