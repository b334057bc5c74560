"""The import rules between the layers, read from the sources with ``ast`` (not at run time).

- only ``apdu/transport/pcsc.py`` imports ``smartcard`` (pyscard);
- ``apdu`` never imports ``opcard`` or ``fixtures``;
- ``fixtures`` never imports ``apdu`` or ``opcard``, and otherwise only the standard library,
  ``cryptography`` and ``asn1crypto``;
- only ``opcard/cli*`` imports ``click``;
- only ``opcard/tls/`` imports ``tlslite`` (the optional TLS feature, the ``tls`` extra);
- within opcard the packages show the layers: ``opcard.cli`` is imported by nothing else of
  the library, ``opcard.serve`` only by the command line (``opcard serve``), ``opcard.tls``
  only by the command line (``opcard tls``);
- ``opcard.pkcs11`` (the PKCS#11 vocabulary, mechanisms, URIs, template matching) imports none
  of the layers above it: not the token (card, session, objects, keys), not OpenPGP export,
  TLS, the server or the command line;
- ``opcard.openpgp.packets`` knows packets, not cards: no card, session, object or transport;
- the command line and the server's PKCS#11 functions catch opcard exceptions only: no
  ``apdu.errors`` in ``opcard.cli`` or ``opcard.serve`` (but its PC/SC card monitor);
- ``opcard.errors`` imports only ``apdu.errors`` and ``opcard.pkcs11.rv`` of the project, so
  that every layer can import it cheaply.

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
        if root == "tlslite" and not rel.startswith("opcard/tls/"):
            found.append(f"{where}: only opcard/tls/ may import tlslite")
        found += _opcard_layers(where, module, name)
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


#: What ``opcard.pkcs11`` and ``opcard.openpgp.packets`` must not import (the layers above).
_TOKEN_AND_ABOVE = (
    "opcard.card",
    "opcard.session",
    "opcard.objects",
    "opcard.keys",
    "opcard.openpgp",
    "opcard.tls",
    "opcard.serve",
    "opcard.cli",
)
_NOT_FOR_PACKETS = (
    "opcard.card",
    "opcard.session",
    "opcard.objects",
    "opcard.keys",
    "opcard.openpgp.card",
    "opcard.tls",
    "opcard.serve",
    "opcard.cli",
    "apdu.channel",
    "apdu.transport",
    "apdu.openpgp.applet",
)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _opcard_layers(where: str, module: str, name: str) -> list[str]:
    """The rules between opcard's own packages for one import of ``name`` by ``module``."""
    found = []
    if _within(name, "opcard.cli") and not _within(module, "opcard.cli"):
        found.append(f"{where}: only the command line imports opcard.cli")
    for feature in ("opcard.serve", "opcard.tls"):
        if (
            _within(name, feature)
            and not _within(module, feature)
            and not _within(module, "opcard.cli")
        ):
            found.append(f"{where}: only {feature} itself and the command line import {feature}")
    if _within(module, "opcard.cli") and _within(name, "apdu.errors"):
        found.append(f"{where}: the command line catches opcard exceptions, not apdu's")
    if (
        _within(module, "opcard.serve")
        and module != "opcard.serve.pcsc"  # the card monitor watches PC/SC readers itself
        and _within(name, "apdu.errors")
    ):
        found.append(f"{where}: the server's functions catch opcard exceptions, not apdu's")
    if _within(module, "opcard.pkcs11") and any(_within(name, p) for p in _TOKEN_AND_ABOVE):
        found.append(f"{where}: opcard.pkcs11 must not depend on the layers above it")
    if module == "opcard.openpgp.packets" and any(_within(name, p) for p in _NOT_FOR_PACKETS):
        found.append(f"{where}: opcard.openpgp.packets must know nothing of cards")
    if (
        module == "opcard.errors"
        and name.partition(".")[0] in ("apdu", "opcard")
        and name not in ("apdu", "opcard", "opcard.pkcs11")
        and not _within(name, "apdu.errors")
        and not _within(name, "opcard.pkcs11.rv")
        and not _within(name, "opcard._translate")  # its translated(), importable without it
        and not _within(name, "opcard._pinkind")  # its PinKind, likewise
    ):
        found.append(f"{where}: opcard.errors imports only apdu.errors and opcard.pkcs11.rv")
    if (
        module == "opcard._translate"
        and name.partition(".")[0] in ("apdu", "opcard")
        and not _within(name, "apdu.errors")
        and not _within(name, "opcard.errors")
    ):
        found.append(f"{where}: opcard._translate imports only apdu.errors and opcard.errors")
    return found


def sources() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if ".venv" not in p.parts
    )


def test_there_is_something_to_check() -> None:
    files = {p.relative_to(REPO).as_posix() for p in sources()}
    assert "apdu/transport/pcsc.py" in files
    assert "apdu/channel.py" in files
    # the packages whose boundaries the rules guard
    for package in ("opcard/tls", "opcard/pkcs11", "opcard/openpgp", "opcard/serve", "opcard/cli"):
        assert f"{package}/__init__.py" in files


def test_import_rules() -> None:
    found: list[str] = []
    for path in sources():
        found += violations(path, module_name(path), path.read_text(encoding="utf-8"))
    assert found == [], "\n".join(found)


def test_pcsc_module_really_imports_pyscard() -> None:
    """Guards the checker itself: the one allowed import is seen."""
    path = REPO / "apdu/transport/pcsc.py"
    names = {n for _, n in imported_modules(path.read_text(), "apdu.transport.pcsc", False)}
    assert any(n == "smartcard" or n.startswith("smartcard.") for n in names)


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
        ("opcard/session.py", "import tlslite\n", "only opcard/tls/ may import tlslite"),
        ("opcard/pkcs11/uri.py", "from tlslite.x509 import X509\n", "only opcard/tls/"),
        ("opcard/session.py", "from opcard.cli.common import State\n", "opcard.cli"),
        ("opcard/tls/client.py", "from opcard.cli import errors\n", "opcard.cli"),
        ("opcard/card.py", "from opcard.serve.slots import Registry\n", "opcard.serve"),
        ("opcard/session.py", "from opcard import tls\n", "opcard.tls"),
        ("opcard/pkcs11/mechanisms.py", "from opcard.session import Session\n", "above it"),
        ("opcard/pkcs11/uri.py", "from ..card import TokenInfo\n", "above it"),
        ("opcard/pkcs11/__init__.py", "from opcard.tls import keys\n", "opcard.tls"),
        ("opcard/openpgp/packets.py", "from opcard.card import Card\n", "nothing of cards"),
        ("opcard/openpgp/packets.py", "from apdu.transport import Transport\n", "of cards"),
        ("opcard/errors.py", "from opcard.pkcs11 import constants\n", "imports only"),
        ("opcard/errors.py", "from apdu.openpgp import constants\n", "imports only"),
        ("opcard/cli/status.py", "from apdu.errors import CardStatusError\n", "not apdu's"),
        ("opcard/cli/errors.py", "from apdu import errors\n", "not apdu's"),
        ("opcard/serve/functions.py", "from apdu import errors\n", "not apdu's"),
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
        ("apdu/openpgp/applet.py", "from ..channel import Channel\nfrom apdu import tlv\n"),
        ("opcard/tls/keys.py", "from tlslite.utils.rsakey import RSAKey\n"),
        ("opcard/cli/tls.py", "from opcard.tls import TlsClient\n"),
        ("opcard/cli/serve.py", "from opcard.serve.server import Server\n"),
        ("opcard/serve/functions.py", "from opcard.serve.errors import Pkcs11Error\n"),
        ("opcard/pkcs11/mechanisms.py", "from opcard.errors import MechanismError\n"),
        ("opcard/pkcs11/uri.py", "from .constants import Attribute\n"),
        ("opcard/openpgp/card.py", "from opcard.session import Session\n"),
        ("opcard/errors.py", "from apdu import errors\nfrom opcard.pkcs11.rv import R\n"),
    ],
)
def test_checker_allows(rel: str, source: str) -> None:
    path = REPO / rel
    assert violations(path, module_name(path), source) == []
