"""The server's log, with :mod:`logging` loaded when a line is written, not at start-up.

``logging`` brings ``traceback``, ``string`` and ``weakref``: some 5 ms for every process
p11-kit starts on demand (``python -m opcard.serve --stdio``), which logs nothing at its
default level (``warning``) unless something goes wrong (issue #15). So:

- the server's modules log through :data:`logger`, a :class:`LazyLogger` with the methods of a
  :class:`logging.Logger` they use (``debug`` … ``exception``, ``isEnabledFor``), which hands
  every call to ``logging.getLogger("opcard.serve")``;
- :func:`configure_logging` (standard error, :class:`~opcard.serve.logformat.EscapingFormatter`)
  sets the logger up at once when :mod:`logging` is already loaded (the daemon, an embedder,
  the tests: the same logger, handler and level as always). When it is not, it keeps the level
  only: a line below it is dropped without loading anything (what the logger's level would
  do), and the first line at or above it loads :mod:`logging`, makes the same set-up, and is
  written.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    import logging
    from typing import Any

__all__ = ["LOGGER_NAME", "LazyLogger", "configure_logging", "logger"]

#: The server's logger.
LOGGER_NAME = "opcard.serve"
#: ``logging``'s level numbers (the same values, without importing it).
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_LEVELS = {"DEBUG": DEBUG, "INFO": INFO, "WARNING": WARNING, "ERROR": ERROR}


class _Pending:
    """A :func:`configure_logging` whose set-up waits for the first line at ``level``."""

    __slots__ = ("level", "restore")

    def __init__(self, level: str) -> None:
        self.level = level
        #: What undoes the set-up, once it is made.
        self.restore: Callable[[], None] | None = None

    @property
    def threshold(self) -> int:
        return _LEVELS.get(self.level.upper(), 0)


#: The set-up waiting for its first line (None: none; :mod:`logging` decides).
_pending: _Pending | None = None
#: Held while the waiting set-up is made (two threads' first lines make it once).
_setting_up = threading.Lock()


def _set_up(level: str) -> Callable[[], None]:
    """The log on standard error at ``level``; returns what undoes it."""
    import logging

    from opcard.serve.logformat import EscapingFormatter

    target = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s opcard serve: %(message)s"))
    old_level, old_propagate = target.level, target.propagate
    target.addHandler(handler)
    target.setLevel(level.upper())
    target.propagate = False

    def restore() -> None:
        target.removeHandler(handler)
        target.setLevel(old_level)
        target.propagate = old_propagate

    return restore


def configure_logging(level: str) -> Callable[[], None]:
    """The server's log on standard error; returns what undoes it (for embedders and tests
    running the command in process). Without :mod:`logging` loaded yet, the set-up is made
    by the first line at ``level`` or above (see the module's docstring)."""
    global _pending
    if "logging" in sys.modules or level.upper() not in _LEVELS:
        return _set_up(level)  # (an unknown level: logging's own ValueError, at once)
    pending = _pending = _Pending(level)

    def restore() -> None:
        global _pending
        if _pending is pending:
            _pending = None
        if pending.restore is not None:
            pending.restore()

    return restore


def _logger() -> logging.Logger:
    """The real logger, the waiting set-up made first."""
    global _pending
    if _pending is not None:
        with _setting_up:
            pending = _pending
            if pending is not None:
                pending.restore = _set_up(pending.level)
                _pending = None
    import logging

    return logging.getLogger(LOGGER_NAME)


class LazyLogger:
    """``logging.getLogger("opcard.serve")``'s methods, loading :mod:`logging` only for a
    line that a waiting :func:`configure_logging` would write."""

    __slots__ = ()

    def isEnabledFor(self, level: int) -> bool:
        pending = _pending
        if pending is not None and level < pending.threshold:
            return False
        return _logger().isEnabledFor(level)

    def _log(self, level: int, msg: object, args: tuple[object, ...], **kwargs: Any) -> None:
        pending = _pending
        if pending is not None and level < pending.threshold:
            return
        kwargs.setdefault("stacklevel", 3)  # the caller's line, as logging's own methods
        _logger().log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(DEBUG, msg, args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(INFO, msg, args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(WARNING, msg, args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(ERROR, msg, args, **kwargs)


#: What the server's modules log with.
logger = LazyLogger()
