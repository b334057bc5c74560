"""What the wheel installs and what it depends on, read from pyproject.toml with setuptools' own
package discovery (the wheel itself is built by hand: ``pip wheel --no-deps -w /tmp/w .``;
building it here would need the network for setuptools and wheel).

- The wheel installs the top-level packages ``apdu`` and ``opcard`` only, with every
  subpackage and their ``py.typed``. The emulated card stays in ``fixtures/`` in the
  repository: a top-level ``fixtures`` in site-packages would shadow the ``fixtures``
  distribution of the package index for every project installed beside opcard.
- The runtime dependencies are exactly what ``apdu`` and ``opcard`` import at run time
  (tlslite-ng only in the ``tls`` extra, for ``opcard.tls``); pgpy, used by the tests as a
  judge, is in the ``test`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from setuptools.discovery import PackageFinder

REPO = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))

#: import name -> distribution name, for every third-party module apdu and opcard import.
DISTRIBUTION = {
    "smartcard": "pyscard",
    "cryptography": "cryptography",
    "asn1crypto": "asn1crypto",
    "click": "click",
    "tlslite": "tlslite-ng",
}


def wheel_packages() -> list[str]:
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    return PackageFinder.find(
        where=str(REPO),
        include=tuple(find.get("include", ("*",))),
        exclude=tuple(find.get("exclude", ())),
    )


def requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(match.group(0).lower())
    return names


def third_party_imports(package: str) -> dict[str, set[str]]:
    """Top-level third-party module -> the files of ``package`` that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.partition(".")[0]
                if root in sys.stdlib_module_names or root in ("__future__", "apdu", "opcard"):
                    continue
                found.setdefault(root, set()).add(path.relative_to(REPO).as_posix())
    return found


def test_wheel_installs_apdu_and_opcard_only() -> None:
    packages = wheel_packages()
    assert {p.partition(".")[0] for p in packages} == {"apdu", "opcard"}
    assert not any(p == "fixtures" or p.startswith("fixtures.") for p in packages)


def test_wheel_has_every_subpackage() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("apdu", "opcard")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert {
        "opcard.tls",
        "opcard.pkcs11",
        "opcard.openpgp",
        "opcard.cli",
        "opcard.serve",
    } <= on_disk
    assert set(wheel_packages()) == on_disk


def test_wheel_ships_py_typed() -> None:
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for top in ("apdu", "opcard"):
        assert "py.typed" in data[top]
        assert (REPO / top / "py.typed").is_file()


def test_fixtures_are_found_from_the_repository() -> None:
    """The tests import the emulator from the repository root, not from site-packages."""
    assert "." in PYPROJECT["tool"]["pytest"]["ini_options"]["pythonpath"]
    import fixtures

    assert Path(fixtures.__file__).resolve().parent == REPO / "fixtures"


def test_runtime_dependencies_are_what_the_runtime_imports() -> None:
    imports = {**third_party_imports("apdu")}
    for name, files in third_party_imports("opcard").items():
        imports.setdefault(name, set()).update(files)
    unknown = set(imports) - set(DISTRIBUTION)
    assert not unknown, f"imported, but not in DISTRIBUTION: {unknown}"
    # tlslite is imported by opcard.tls only, the optional TLS feature
    assert {f.rpartition("/")[0] for f in imports.pop("tlslite")} == {"opcard/tls"}
    project = PYPROJECT["project"]
    assert requirement_names(project["dependencies"]) == {DISTRIBUTION[m] for m in imports}
    assert "tlslite-ng" in requirement_names(project["optional-dependencies"]["tls"])


def test_pgpy_is_a_test_dependency_only() -> None:
    project = PYPROJECT["project"]
    assert "pgpy" not in requirement_names(project["dependencies"])
    assert "pgpy" in requirement_names(project["optional-dependencies"]["test"])
    assert "pgpy" not in third_party_imports("opcard")
    assert "pgpy" not in third_party_imports("apdu")
