"""Every ```python example of every page of the documentation (docs/*.md and README.md) runs.

Each block runs in a fresh namespace, in a temporary directory, with ``card``: an opcard.Card
on a fresh in-process emulated card (extended profile, demo-ecc; a first line
``# card: <variant>`` chooses another demo variant). A block that opens a card as a user
would — ``opcard.open_card()``, ``PcscTransport.open()`` — gets that emulated card: it is the
only card present.

Exceptions, each listed here by page and a line of the block:

- blocks that need real hardware (a reader of a given name, a card with a given serial, a card
  another program holds) start with ``# needs a reader`` and are in :data:`NEEDS_A_READER`:
  they are compiled, not run;
- docs/tls.md's blocks need a TLS server: tests/tls/test_tls_docs.py runs them against
  ``openssl s_server`` (:data:`RUN_ELSEWHERE`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from opcard_support import make_rig

import opcard
from apdu.transport.loopback import LoopbackTransport

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: (page, a line of the block) of the blocks that need a real reader; each says so in its
#: first line (``# needs a reader``).
NEEDS_A_READER = {
    ("docs/opcard.md", "for info in opcard.list_cards():"),
    ("docs/opcard.md", "except opcard.CardInUseError as e:"),
}
#: Pages whose blocks another test runs.
RUN_ELSEWHERE = {"docs/tls.md": "tests/tls/test_tls_docs.py"}


class Block:
    def __init__(self, page: Path, line: int, code: str) -> None:
        self.page = page.relative_to(REPO).as_posix()
        self.line = line
        self.code = code

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def needs_reader(self) -> bool:
        return self.code.startswith("# needs a reader")

    @property
    def skip_key(self) -> tuple[str, str] | None:
        for page, line in NEEDS_A_READER:
            if page == self.page and line in self.code:
                return (page, line)
        return None


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            found.append(Block(page, text[: m.start()].count("\n") + 1, m.group(1)))
    return found


BLOCKS = blocks()


def test_the_pages_have_examples() -> None:
    per_page: dict[str, int] = {}
    for block in BLOCKS:
        per_page[block.page] = per_page.get(block.page, 0) + 1
    assert per_page["docs/opcard.md"] >= 15
    for page in ("README.md", "docs/uri.md", "docs/openpgp-export.md", "docs/tls.md"):
        assert per_page.get(page, 0) >= 1, page


def test_the_skip_list_is_exact() -> None:
    """Only blocks that say they need a reader are skipped, and each is listed here."""
    skipped = {b.skip_key for b in BLOCKS if b.skip_key is not None}
    assert skipped == NEEDS_A_READER, "a listed block is gone: update NEEDS_A_READER"
    for block in BLOCKS:
        assert block.needs_reader == (block.skip_key is not None), (
            f"{block.id}: a block is skipped exactly when it starts with '# needs a reader' "
            "and is listed in NEEDS_A_READER"
        )


class _OpenableTransport(LoopbackTransport):
    """What ``PcscTransport.open()`` gives in the examples: the emulated card."""

    def __enter__(self) -> _OpenableTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_example(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile(block.code, f"{REPO / block.page}:{block.line}", "exec")
    if block.needs_reader or block.page in RUN_ELSEWHERE:
        return
    variant = "demo-ecc"
    first = block.code.splitlines()[0]
    if first.startswith("# card:"):
        variant = first.split(":", 1)[1].strip()
    rig = make_rig("extended", variant)
    from apdu.transport import pcsc

    def open_transport(*_: Any, **__: Any) -> _OpenableTransport:
        return _OpenableTransport(rig.emu.transmit, rig.emu.atr, "Virtual PCD 00 00")

    monkeypatch.setattr(opcard, "open_card", lambda **_: rig.card)
    monkeypatch.setattr(pcsc.PcscTransport, "open", open_transport)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compiled, {"card": rig.card, "__name__": "docs_example"})
    finally:
        rig.card.close()


def test_readme_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python example, with ``open_card()`` answering the in-process card; the
    signature it makes verifies with the AUT certificate's key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from fixtures.personalize import demo_files

    (code,) = [b.code for b in BLOCKS if b.page == "README.md"]
    rig = make_rig("extended", "demo-ecc")
    monkeypatch.setattr(opcard, "open_card", lambda **_: rig.card)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code, str(REPO / "README.md"), "exec"), namespace)
    cert = x509.load_pem_x509_certificate(demo_files("demo-ecc")["aut_cert"].read_bytes())
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signature = namespace["signature"]
    assert isinstance(signature, bytes)
    public.verify(signature, b"hello", ec.ECDSA(hashes.SHA256()))
