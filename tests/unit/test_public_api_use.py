"""The command line and ``opcard serve`` use only opcard's public API (read with ``ast``).

``opcard/cli`` and ``opcard/serve`` are opcard's own first users: what they need from a card or
a session is a documented method of :class:`opcard.Card` / :class:`opcard.Session` (the
reader's name, the APDU count, the signature counter, the algorithm and import checks, …), not
the protocol objects under it. So no module there may

- reach the card's protocol layer: an attribute ``applet``, ``channel`` or ``transport``;
- touch a private member of another object: ``x._name`` where ``x`` is not ``self``/``cls``
  (dunders such as ``__cause__`` are fine), or ``getattr(x, "_name")``;
- import a private name: ``from opcard.session import _helper``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENTS = ("opcard/cli", "opcard/serve")
#: Attributes of opcard's Card and Session that lead below the public API.
PROTOCOL_ATTRIBUTES = frozenset({"applet", "channel", "transport"})
#: Documented standard-library names that start with an underscore.
STDLIB_PUBLIC = frozenset({("os", "_exit"), ("sys", "_getframe")})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) of every use below the public API in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = node.value
            own = isinstance(owner, ast.Name) and (
                owner.id in ("self", "cls") or (owner.id, node.attr) in STDLIB_PUBLIC
            )
            if not own and (node.attr in PROTOCOL_ATTRIBUTES or _private(node.attr)):
                yield node.lineno, f".{node.attr}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and (_private(node.args[1].value) or node.args[1].value in PROTOCOL_ATTRIBUTES)
        ):
            yield node.lineno, f"{node.func.id}(…, {node.args[1].value!r})"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opcard"):
            for alias in node.names:
                if _private(alias.name):
                    yield node.lineno, f"from {node.module} import {alias.name}"


def _sources() -> list[Path]:
    return sorted(p for d in CLIENTS for p in (REPO / d).rglob("*.py"))


def test_there_is_something_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in _sources()}
    assert {"opcard/cli/status.py", "opcard/cli/key.py", "opcard/serve/functions.py"} <= names


def test_cli_and_serve_use_only_the_public_api() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in _sources()
        for line, what in violations(path.read_text(encoding="utf-8"))
    ]
    assert not found, "below opcard's public API:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("card.applet.get_data(0x7A)", ".applet"),
        ("x = state.card().channel.apdu_count", ".channel"),
        ("name = card.session.transport.name", ".transport"),
        ("session._ensure(pw)", "._ensure"),
        ("card._ard = None", "._ard"),
        ("getattr(card, '_aid')", "getattr(…, '_aid')"),
        ("from opcard.session import _slot", "from opcard.session import _slot"),
    ],
)
def test_checker_catches(source: str, expected: str) -> None:
    assert [what for _, what in violations(source)] == [expected]


@pytest.mark.parametrize(
    "source",
    [
        "self._lock = threading.Lock()",
        "cls._instances = {}",
        "cause = error.__cause__",
        "name = card.reader",
        "count = card.apdu_count",
        "from opcard.session import load_private_key",
        "getattr(module, 'abort', None)",
    ],
)
def test_checker_allows(source: str) -> None:
    assert list(violations(source)) == []


def test_the_digest_signer_uses_the_sessions_public_interface() -> None:
    """DigestSigner (the TLS hot path) reaches no private member of its session: it uses
    ``Session.key_info``, ``prepare`` and ``perform``, as any user's signer could."""
    tree = ast.parse((REPO / "opcard/session.py").read_text(encoding="utf-8"))
    (signer,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DigestSigner"]
    used = {
        node.attr
        for node in ast.walk(signer)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute | ast.Name)
        and (getattr(node.value, "attr", None) or getattr(node.value, "id", None)) == "session"
    }
    assert used and not {name for name in used if _private(name)}
    assert {"key_info", "prepare", "perform"} <= used
