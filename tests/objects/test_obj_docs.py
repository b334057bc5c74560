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


README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python example, with ``open_card()`` answering the in-process card; the
    signature it makes verifies with the AUT certificate's key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    import opcard
    from fixtures.personalize import demo_files

    (code,) = [m.group(1) for m in BLOCK.finditer(README.read_text())]
    rig = make_rig("extended", "demo-ecc")
    monkeypatch.setattr(opcard, "open_card", lambda **_: rig.card)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    cert = x509.load_pem_x509_certificate(demo_files("demo-ecc")["aut_cert"].read_bytes())
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signature = namespace["signature"]
    assert isinstance(signature, bytes)
    public.verify(signature, b"hello", ec.ECDSA(hashes.SHA256()))
