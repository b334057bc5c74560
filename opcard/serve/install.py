"""``opcard serve --install`` / ``--uninstall``: register opcard with p11-kit for the user.

The registration is one p11-kit module file, ``opcard.module``, whose line
``remote: |… serve --stdio`` makes p11-kit start ``opcard serve --stdio`` for every
application that loads p11-kit's modules (docs/serve.md, *Without a daemon*). p11-kit reads
user module files from ``~/.config/pkcs11/modules/``, but not in a program running as root:
root's file goes to ``/etc/pkcs11/modules/`` (for every user of the machine).

A file we wrote starts with :data:`MARKER`; a file of the same name without it is someone
else's and is neither replaced nor removed. Failures raise
:class:`~opcard.serve.errors.ServeError` with a message saying why.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from opcard.serve.errors import ServeError

__all__ = ["MARKER", "MODULE_FILE", "install", "module_directory", "uninstall"]

MODULE_FILE = "opcard.module"
MARKER = "# written by 'opcard serve --install'; 'opcard serve --uninstall' removes it"


def module_directory() -> Path:
    """Where p11-kit looks for this user's module files: ``/etc/pkcs11/modules`` for root
    (p11-kit skips user configuration in programs running as root), else
    ``~/.config/pkcs11/modules``."""
    if os.getuid() == 0:
        return Path("/etc/pkcs11/modules")
    return Path.home() / ".config" / "pkcs11" / "modules"


def _ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\n") == MARKER
    except FileNotFoundError:
        return False


def install(command: Sequence[str], directory: Path) -> Path:
    """Write ``directory/opcard.module`` with ``remote: |command`` (replacing a file we
    wrote before); returns its path."""
    path = directory / MODULE_FILE
    if path.exists() and not _ours(path):
        raise ServeError(
            f"{path} exists and was not written by 'opcard serve --install': remove it "
            "yourself if opcard should replace it"
        )
    line = shlex.join(command)
    if "\n" in line:
        raise ServeError("the command for the module file must not contain a newline")
    text = f"{MARKER}\nremote: |{line}\n"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{MODULE_FILE}.{os.getpid()}"
        temporary.write_text(text, encoding="utf-8")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as e:
        raise ServeError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def uninstall(directory: Path) -> Path | None:
    """Remove ``directory/opcard.module`` when we wrote it; returns its path, or None when
    there was none."""
    path = directory / MODULE_FILE
    if not path.exists():
        return None
    if not _ours(path):
        raise ServeError(f"{path} was not written by 'opcard serve --install': left in place")
    try:
        path.unlink()
    except OSError as e:
        raise ServeError(f"cannot remove {path}: {e.strerror or e}") from e
    return path
