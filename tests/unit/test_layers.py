"""The import rules between the layers, read from the sources with ``ast`` (not at run time).

- only ``apdu/transport/pcsc.py`` imports ``smartcard`` (pyscard);
- ``apdu`` never imports ``opcard`` or ``fixtures``;
- ``fixtures`` never imports ``apdu`` or ``opcard``, and otherwise only the standard library,
  ``cryptography`` and ``asn1crypto``;
- only ``opcard/cli*`` imports ``click``.

The rules apply to the library packages (apdu, opcard, fixtures); tests and benchmarks may
import what they need (a benchmark compares against bare pyscard).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("apdu", "opcard", "fixtures")
FIXTURES_ALLOWED = {"fixtures", "cryptography", "asn1crypto"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` — static imports, relative
    ones resolved, and ``importlib.import_module("…")`` / ``__import__("…")`` with a literal."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # "from apdu import transport" may import a submodule
                yield node.lineno, f"{target}.{alias.name}" if target else alias.name
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
            ):
                yield node.lineno, arg.value


def top(name: str) -> str:
    return name.partition(".")[0]


def violations(path: Path, module: str, source: str) -> list[str]:
    rel = path.relative_to(REPO).as_posix()
    layer = top(module)
    found = []
    for line, name in imported_modules(source, module, path.name == "__init__.py"):
        root = top(name)
        where = f"{rel}:{line} imports {name}"
        if root == "smartcard" and rel != "apdu/transport/pcsc.py":
            found.append(f"{where}: only apdu/transport/pcsc.py may import pyscard")
        if root == "click" and not (rel.startswith("opcard/cli/") or rel.startswith("opcard/cli")):
            found.append(f"{where}: only opcard/cli* may import click")
        if layer == "apdu" and root in ("opcard", "fixtures"):
            found.append(f"{where}: apdu must not depend on {root}")
        if layer == "fixtures":
            if root in ("apdu", "opcard"):
                found.append(f"{where}: the emulator must not share code with the driver")
            elif (
                root
                and root not in FIXTURES_ALLOWED
                and root not in sys.stdlib_module_names
                and root != "__future__"
            ):
                found.append(f"{where}: fixtures may use only the stdlib, cryptography, asn1crypto")
    return found


def sources() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if ".venv" not in p.parts
    )


def test_there_is_something_to_check() -> None:
    files = {p.relative_to(REPO).as_posix() for p in sources()}
    assert "apdu/transport/pcsc.py" in files
    assert "apdu/channel.py" in files


def test_import_rules() -> None:
    found: list[str] = []
    for path in sources():
        found += violations(path, module_name(path), path.read_text(encoding="utf-8"))
    assert found == [], "\n".join(found)


def test_pcsc_module_really_imports_pyscard() -> None:
    """Guards the checker itself: the one allowed import is seen."""
    path = REPO / "apdu/transport/pcsc.py"
    names = {n for _, n in imported_modules(path.read_text(), "apdu.transport.pcsc", False)}
    assert "smartcard" in names or "smartcard.scard" in names


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("apdu/channel.py", "import smartcard.scard\n", "only apdu/transport/pcsc.py"),
        ("apdu/x.py", "from smartcard import scard\n", "only apdu/transport/pcsc.py"),
        ("apdu/x.py", "import opcard.token\n", "apdu must not depend on opcard"),
        ("apdu/openpgp/x.py", "from fixtures import card\n", "must not depend on fixtures"),
        ("apdu/openpgp/x.py", "from ... import opcard\n", "must not depend on opcard"),
        ("fixtures/card.py", "from apdu.tlv import parse\n", "must not share code"),
        ("fixtures/card.py", "from ..apdu import tlv\n", "must not share code"),
        ("fixtures/card.py", "import importlib\nimportlib.import_module('opcard')\n", "share"),
        ("fixtures/card.py", "import click\n", "only opcard/cli"),
        ("fixtures/card.py", "import pgpy\n", "only the stdlib"),
        ("opcard/token.py", "import click\n", "only opcard/cli"),
        ("opcard/token.py", "__import__('smartcard')\n", "only apdu/transport/pcsc.py"),
    ],
)
def test_checker_catches(rel: str, source: str, expected: str) -> None:
    path = REPO / rel
    found = violations(path, module_name(path), source)
    assert found and expected in found[0], found


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("apdu/transport/pcsc.py", "from smartcard import scard\n"),
        ("opcard/cli.py", "import click\n"),
        ("opcard/cli/main.py", "import click\n"),
        ("fixtures/card.py", "import hashlib\nfrom cryptography.hazmat import primitives\n"),
        ("apdu/openpgp/applet.py", "from ..session import Channel\nfrom apdu import tlv\n"),
    ],
)
def test_checker_allows(rel: str, source: str) -> None:
    path = REPO / rel
    assert violations(path, module_name(path), source) == []
