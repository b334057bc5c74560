"""``opcard serve --install`` / ``--uninstall``: register opcard with p11-kit for the user.

The registration is one p11-kit module file, ``opcard.module``, in one of two forms:

- **on demand** (the default): ``remote: |PYTHON -m opcard.serve --stdio …`` makes p11-kit
  start ``opcard serve --stdio``'s server (:mod:`opcard.serve.stdio`, without the command
  line's start-up) for every application that loads p11-kit's modules (docs/serve.md,
  *Without a daemon*); installing again replaces the line of an earlier ``--install`` (older
  ones wrote ``PYTHON -m opcard.cli serve --stdio``, which still works);
- **shared** (``--shared``): ``remote: unix:path=SOCKET`` points p11-kit at the socket of one
  daemon, which systemd starts on the first connection (socket activation).

Where systemd runs (or when asked), two systemd user units go with it, in
``~/.config/systemd/user/`` (``$XDG_CONFIG_HOME/systemd/user``): ``opcard.socket`` listening
on the daemon's socket and ``opcard.service`` running ``… serve`` on it. With the on-demand
module file they give a daemon for ``opcard serve --status`` and for a socket forwarded with
``ssh -R``; with ``--shared`` every application goes through them.

p11-kit reads user module files from ``~/.config/pkcs11/modules/``, but not in a program
running as root: root's file goes to ``/etc/pkcs11/modules/``, which every user's
applications read. A daemon serves only its own user (its socket is private, its peers are
checked), so root gets the on-demand file only: no units, no ``--shared``.

A file we wrote starts with :data:`MARKER`; a file of the same name without it is someone
else's and is neither replaced nor removed. Failures raise
:class:`~opcard.serve.errors.ServeError` with a message saying why.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opcard.serve.errors import ServeError

__all__ = [
    "MARKER",
    "MODULE_FILE",
    "SERVICE_UNIT",
    "SOCKET_UNIT",
    "UNITS",
    "Systemctl",
    "install",
    "install_socket",
    "install_units",
    "module_directory",
    "module_text",
    "ours",
    "refuse_foreign",
    "systemd_booted",
    "systemd_quote",
    "uninstall",
    "uninstall_units",
    "unit_directory",
    "unit_texts",
]

MODULE_FILE = "opcard.module"
SOCKET_UNIT = "opcard.socket"
SERVICE_UNIT = "opcard.service"
UNITS = (SOCKET_UNIT, SERVICE_UNIT)
MARKER = "# written by 'opcard serve --install'; 'opcard serve --uninstall' removes it"

#: characters a socket path in ``remote: unix:path=…`` may hold (p11-kit takes the rest of the
#: line as the path: no quoting, no escapes)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._+@,:=-]+")


def module_directory() -> Path:
    """Where p11-kit looks for this user's module files: ``/etc/pkcs11/modules`` for root
    (p11-kit skips user configuration in programs running as root), else
    ``~/.config/pkcs11/modules``."""
    if os.getuid() == 0:
        return Path("/etc/pkcs11/modules")
    return Path.home() / ".config" / "pkcs11" / "modules"


def unit_directory() -> Path:
    """Where the systemd user manager looks for the user's own units:
    ``$XDG_CONFIG_HOME/systemd/user``, else ``~/.config/systemd/user``."""
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "systemd" / "user"


def systemd_booted() -> bool:
    """systemd runs this machine (``sd_booted(3)``: ``/run/systemd/system`` exists)."""
    return os.path.isdir("/run/systemd/system")


def ours(path: Path) -> bool:
    """``path`` is a file ``--install`` wrote (its first line is :data:`MARKER`)."""
    if not path.is_file():  # a directory, a FIFO (open would wait for a writer), a device
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(len(MARKER) + 2).rstrip("\n") == MARKER
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def refuse_foreign(path: Path) -> None:
    """:class:`ServeError` when ``path`` exists and is not a file ``--install`` wrote."""
    if (path.exists() or path.is_symlink()) and not ours(path):
        raise ServeError(
            f"{path} exists and was not written by 'opcard serve --install': remove it "
            "yourself if opcard should replace it"
        )


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (mode 0644), creating its directory."""
    directory = path.parent
    temporary = directory / f".{path.name}.{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ServeError(f"cannot write {path}: {e.strerror or e}") from e


def _check_words(argv: Sequence[str]) -> None:
    """Every word can be written into a UTF-8 file (a --reader given in bytes that are not
    UTF-8 reaches Python as lone surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise ServeError(
                f"the command-line word {arg!r} is not valid UTF-8: it cannot go into a p11-kit "
                "module file or a systemd unit"
            ) from None


def _remove(path: Path) -> bool:
    """Remove ``path`` when we wrote it; False when there is none. :class:`ServeError` for a
    file of that name we did not write (left in place)."""
    if not (path.exists() or path.is_symlink()):
        return False
    if not ours(path):
        raise ServeError(f"{path} was not written by 'opcard serve --install': left in place")
    try:
        path.unlink()
    except OSError as e:
        raise ServeError(f"cannot remove {path}: {e.strerror or e}") from e
    return True


def install(command: Sequence[str], directory: Path) -> Path:
    """Write ``directory/opcard.module`` with ``remote: |command`` (the on-demand route,
    replacing a file we wrote before); returns its path."""
    path = directory / MODULE_FILE
    refuse_foreign(path)
    _write(path, module_text(command))
    return path


def module_text(command: Sequence[str]) -> str:
    """The on-demand module file's text, ``remote: |command``; :class:`ServeError` for a
    command p11-kit would not read back word for word."""
    _check_words(command)
    line = shlex.join(command)
    if "\n" in line:
        raise ServeError("the command for the module file must not contain a newline")
    if "\\'" in line:
        # p11-kit's p11_argv_parse takes a backslash before a quote inside quotes as an
        # escaped quote: a word with a backslash before a ' or at its end would swallow the
        # words after it (or split into others)
        raise ServeError(
            "a command-line word with a backslash before a ' or at its end cannot go into a "
            f"p11-kit module file: {next(a for a in command if chr(92) in a)!r}"
        )
    if command and not command[-1]:
        # p11_argv_parse drops an empty word at the end of the line
        raise ServeError(
            "an empty last command-line word (an empty --reader or --serial) cannot go into a "
            "p11-kit module file: p11-kit would drop it"
        )
    return f"{MARKER}\nremote: |{line}\n"


def install_socket(socket_path: Path, directory: Path) -> Path:
    """Write ``directory/opcard.module`` with ``remote: unix:path=SOCKET`` (the shared
    daemon's route, replacing a file we wrote before); returns its path."""
    path = directory / MODULE_FILE
    refuse_foreign(path)
    _check_socket_path(socket_path)
    _write(path, f"{MARKER}\nremote: unix:path={socket_path}\n")
    return path


def uninstall(directory: Path) -> Path | None:
    """Remove ``directory/opcard.module`` when we wrote it; returns its path, or None when
    there was none."""
    path = directory / MODULE_FILE
    return path if _remove(path) else None


def _check_socket_path(socket_path: Path) -> None:
    text = os.fspath(socket_path)
    if not socket_path.is_absolute() or not _PLAIN_PATH.fullmatch(text):
        raise ServeError(
            f"the socket path {text!r} cannot go into a p11-kit module file or a socket unit: "
            "it must be absolute, without spaces, quotes, '%' or '$' (choose another --socket)"
        )
    if len(text.encode()) > 107:
        raise ServeError(f"the socket path {text!r} is longer than a Unix socket path can be")


# -- systemd user units --------------------------------------------------------------------------


def systemd_quote(argv: Sequence[str]) -> str:
    """A command line for ``ExecStart=`` (``systemd.service(5)``, *Command lines*): each word
    in double quotes when it needs them, ``\\`` and ``"`` escaped, ``%`` written ``%%``
    (specifiers) and ``$`` written ``$$`` (variables)."""
    words = []
    for arg in argv:
        if any(c in arg for c in "\n\r\0"):
            raise ServeError(f"a command-line word for the unit contains a line break: {arg!r}")
        word = arg.replace("%", "%%").replace("$", "$$")
        if word and not re.search(r"[\s\"'\\;]", word):
            words.append(word)
        else:
            escaped = word.replace("\\", "\\\\").replace('"', '\\"')
            words.append(f'"{escaped}"')
    return " ".join(words)


def unit_texts(command: Sequence[str], socket_path: Path) -> dict[str, str]:
    """The two units: ``opcard.socket`` listening on ``socket_path`` (the directory created
    0700, the socket 0600, as ``opcard serve`` makes them) and ``opcard.service`` running
    ``command`` (an absolute program path: the user manager's PATH is not the shell's)."""
    _check_socket_path(socket_path)
    _check_words(command)
    if not command or not os.path.isabs(command[0]):
        raise ServeError("the unit's command must start with an absolute program path")
    socket_unit = (
        f"{MARKER}\n"
        "[Unit]\n"
        "Description=opcard: OpenPGP cards as PKCS#11 tokens (p11-kit RPC socket)\n"
        "\n"
        "[Socket]\n"
        f"ListenStream={os.fspath(socket_path).replace('%', '%%')}\n"
        "SocketMode=0600\n"
        "DirectoryMode=0700\n"
        "RemoveOnStop=yes\n"
        "\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )
    service_unit = (
        f"{MARKER}\n"
        "[Unit]\n"
        "Description=opcard serve: OpenPGP cards as PKCS#11 tokens for p11-kit\n"
        f"Requires={SOCKET_UNIT}\n"
        f"After={SOCKET_UNIT}\n"
        "\n"
        "[Service]\n"
        f"ExecStart={systemd_quote(command)}\n"
    )
    return {SOCKET_UNIT: socket_unit, SERVICE_UNIT: service_unit}


def install_units(command: Sequence[str], socket_path: Path, directory: Path) -> list[Path]:
    """Write ``opcard.socket`` and ``opcard.service`` into ``directory`` (replacing units we
    wrote before; nothing is written when either name is taken by a unit we did not write)."""
    texts = unit_texts(command, socket_path)
    paths = [directory / name for name in texts]
    for path in paths:
        refuse_foreign(path)
    for path in paths:
        _write(path, texts[path.name])
    return paths


def uninstall_units(directory: Path) -> tuple[list[Path], list[str]]:
    """Remove the units we wrote from ``directory``: the paths removed, and a message for each
    unit of ours' name we did not write (left in place)."""
    removed, left = [], []
    for name in UNITS:
        path = directory / name
        try:
            if _remove(path):
                removed.append(path)
        except ServeError as e:
            left.append(str(e))
    return removed, left


@dataclass
class Systemctl:
    """``systemctl --user`` when a user manager answers (else :attr:`available` is False)."""

    program: str | None = None
    timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.program is None:
            self.program = shutil.which("systemctl")

    def run(self, *args: str) -> tuple[int, str]:
        if self.program is None:
            return 127, "systemctl not found"
        try:
            proc = subprocess.run(
                [self.program, "--user", *args],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return 1, str(e)
        text = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        return proc.returncode, text

    @functools.cached_property
    def available(self) -> bool:
        """A user manager answers (``systemctl --user show --property=Version``; asked once)."""
        return systemd_booted() and self.run("show", "--property=Version")[0] == 0
