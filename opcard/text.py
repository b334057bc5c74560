"""Text from a card (or a certificate, a reader, a peer) made safe to show on a terminal.

A card holds text anyone with the admin PIN — or the card itself — chose: cardholder name,
login data, URL, language, certificate subjects and issuers (X.509 strings may hold any
character), and PC/SC reader names come from drivers. Printed as they are, escape sequences in
them retitle the terminal, clear it, move the cursor or rewrite what was shown before; bidi
overrides and zero-width characters make one text look like another.

:func:`escape` shows such characters as escapes, as ``ls`` and ``git`` do: every character of
Unicode category Cc (C0 controls 0x00-0x1F, DEL 0x7F, C1 controls 0x80-0x9F), Cf (format
characters: bidi embeddings, overrides and isolates U+202A-202E / U+2066-2069, LRM/RLM/ALM,
zero-width space/joiners, soft hyphen, BOM, tag characters), Zl/Zp (U+2028/U+2029: line and
paragraph separators) and Cs (lone surrogates: the bytes of invalid UTF-8 kept by
``surrogateescape``). They are written ``\\xNN`` (below U+0100), ``\\uNNNN`` or ``\\UNNNNNNNN``
(lone surrogates from ``surrogateescape`` as the original byte, ``\\xNN``), as Python and
GNU ``ls --quoting-style=c`` write them; ESC is ``\\x1b``. A backslash in the text itself is
left as it is. Everything else, including every printable character of any script, stays.

:func:`escape_json` does the same inside a JSON document with JSON's own ``\\uNNNN`` escapes:
the document still decodes to the exact values (JSON already escapes C0 controls; this adds
DEL, C1, format characters and separators, which ``json.dumps(..., ensure_ascii=False)``
leaves raw).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

__all__ = ["escape", "escape_json", "is_unsafe"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


@lru_cache(maxsize=4096)
def is_unsafe(char: str) -> bool:
    """True for a character :func:`escape` escapes (one character)."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of invalid UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, *, keep: str = "") -> str:
    """``text`` with every control, format and separator character escaped (see the module
    docstring); the characters in ``keep`` (e.g. ``"\\n"`` for a text of several lines) stay.
    """
    if text.isprintable():  # fast path: no character of Cc, Cf, Cs, Zl, Zp (nor Zs, Co, Cn)
        return text
    return "".join(
        _escaped(c) if not c.isprintable() and c not in keep and is_unsafe(c) else c for c in text
    )


def _json_escaped(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def escape_json(document: str) -> str:
    """A JSON document (from ``json.dumps(..., ensure_ascii=False)``) with the characters
    :func:`escape` escapes written as JSON ``\\u`` escapes: it decodes to the same values.
    (Outside strings a JSON document holds only ASCII punctuation, digits, letters and
    whitespace; the whitespace between tokens — newline, space — stays.)"""
    if document.isprintable():
        return document
    return "".join(
        _json_escaped(c) if not c.isprintable() and c not in "\n\t\r" and is_unsafe(c) else c
        for c in document
    )
