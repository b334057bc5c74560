"""A spinner with the elapsed time for long card operations (on-card key generation can take
minutes). It draws only when its stream is a terminal; on a pipe or a file it writes nothing."""

from __future__ import annotations

import threading
import time
from typing import TextIO

__all__ = ["Spinner"]

_FRAMES = "|/-\\"


class Spinner:
    """``with Spinner("generating rsa4096 key"):`` — ``message  / 12 s`` redrawn every
    ``interval`` seconds on a terminal, erased at the end."""

    def __init__(self, message: str, stream: TextIO, *, interval: float = 0.1) -> None:
        self.message = message
        self.stream = stream
        self.interval = interval
        self.active = _is_tty(stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self.frames = 0

    def __enter__(self) -> Spinner:
        self._start = time.monotonic()
        if self.active:
            self._thread = threading.Thread(target=self._run, name="opcard-spinner", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def line(self, frame: int) -> str:
        """The text drawn for ``frame``."""
        return f"\r{self.message}  {_FRAMES[frame % len(_FRAMES)]} {int(self.elapsed)} s"

    def _run(self) -> None:
        while True:
            self.stream.write(self.line(self.frames))
            self.stream.flush()
            self.frames += 1
            if self._stop.wait(self.interval):
                return


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
