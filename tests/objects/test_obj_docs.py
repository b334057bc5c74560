"""The examples of docs/opcard.md run against the emulated card.

Each ```python block runs in a fresh namespace with ``card``: an opcard.Card on a fresh
in-process emulated card (extended profile, demo-ecc; a first line ``# card: <variant>``
chooses another demo variant). Blocks whose first line is ``# needs a reader`` are only
compiled.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opcard_support import make_rig

DOC = Path(__file__).resolve().parents[2] / "docs" / "opcard.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_page_has_examples() -> None:
    found = blocks()
    assert len(found) >= 10
    assert sum(1 for _, code in found if not code.startswith("# needs a reader")) >= 8


@pytest.mark.parametrize(
    ("line", "code"), blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else ""
)
def test_example(line: int, code: str) -> None:
    compiled = compile(code, f"{DOC}:{line}", "exec")
    if code.startswith("# needs a reader"):
        return
    variant = "demo-ecc"
    first = code.splitlines()[0]
    if first.startswith("# card:"):
        variant = first.split(":", 1)[1].strip()
    rig = make_rig("extended", variant)
    try:
        exec(compiled, {"card": rig.card, "__name__": "docs_example"})
    finally:
        rig.card.close()
