"""The server's log format (loads :mod:`logging`: imported when the log is set up, see
:mod:`opcard.serve.log`)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["EscapingFormatter"]


class EscapingFormatter(logging.Formatter):
    """Log lines with control and format characters escaped (:func:`opcard.text.escape`):
    reader names, card text and client data never reach the terminal or the log raw, and a
    newline in them cannot forge a log line. Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from opcard.text import escape

        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        from opcard.text import escape

        return escape(super().formatException(ei), keep="\n")
