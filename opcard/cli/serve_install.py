"""``opcard serve --install`` and ``--uninstall`` (loaded only by those options).

What is written where, and why, is in :mod:`opcard.serve.install` and docs/serve.md
(*Install once*). This module decides from the options and the machine (root or not, does
systemd run, does a user manager answer), calls ``systemctl --user`` and says what it did and
what is left to the user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from opcard.cli.common import echo
from opcard.cli.errors import CliError

__all__ = ["daemon_command", "install_command", "stdio_command", "uninstall_command"]


def _selection(readers: tuple[str, ...], serials: tuple[str, ...]) -> list[str]:
    return [arg for r in readers for arg in ("--reader", r)] + [
        arg for s in serials for arg in ("--serial", s)
    ]


def stdio_command(readers: tuple[str, ...], serials: tuple[str, ...]) -> list[str]:
    """The module file's ``remote: |`` command: this Python with ``-m opcard.serve --stdio``
    (works from a virtual environment and whatever the applications' PATH; the same server as
    ``opcard serve --stdio`` without loading the command line, :mod:`opcard.serve.stdio`)."""
    return [sys.executable, "-m", "opcard.serve", "--stdio", *_selection(readers, serials)]


def daemon_command(readers: tuple[str, ...], serials: tuple[str, ...]) -> list[str]:
    """The service unit's ``ExecStart``: the daemon, which takes its socket from systemd."""
    return [sys.executable, "-m", "opcard.cli", "serve", *_selection(readers, serials)]


def install_command(
    readers: tuple[str, ...],
    serials: tuple[str, ...],
    socket_path: Path,
    shared: bool,
    systemd_units: bool | None,
) -> None:
    from opcard.serve.errors import ServeError
    from opcard.serve.install import (
        MODULE_FILE,
        SERVICE_UNIT,
        SOCKET_UNIT,
        UNITS,
        Systemctl,
        install,
        install_socket,
        install_units,
        module_directory,
        module_text,
        refuse_foreign,
        systemd_booted,
        unit_directory,
    )

    root = os.getuid() == 0
    if root and (shared or systemd_units):
        raise CliError(
            "as root, --install writes /etc/pkcs11/modules/opcard.module for every user of the "
            "machine, and a daemon serves only its own user: --shared and --systemd are for "
            "each user's own --install (run it as that user)"
        )
    socket_path = socket_path.absolute()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if (shared or systemd_units) and not (runtime and socket_path.is_relative_to(runtime)):
        echo(
            f"note: {socket_path} is not under $XDG_RUNTIME_DIR (unset here?): the daemon "
            "checks that its directory is private, systemd's socket unit does not; prefer "
            "running --install in a login session, or give --socket in a directory of yours",
            err=True,
        )
    want_units = (not root and systemd_booted()) if systemd_units is None else systemd_units
    directory = module_directory()
    before = _texts(unit_directory())
    try:
        # nothing is written when any of the files is someone else's
        refuse_foreign(directory / MODULE_FILE)
        for name in UNITS if want_units else ():
            refuse_foreign(unit_directory() / name)
        if not shared:  # a command p11-kit cannot read back is refused before any unit
            module_text(stdio_command(readers, serials))
        units = (
            install_units(daemon_command(readers, serials), socket_path, unit_directory())
            if want_units
            else []
        )
        if shared:
            path = install_socket(socket_path, directory)
        else:
            path = install(stdio_command(readers, serials), directory)
    except ServeError as e:
        raise CliError(str(e)) from e
    if shared:
        echo(f"wrote {path}: p11-kit connects every application to the daemon on {socket_path}")
    else:
        echo(
            f"wrote {path}: p11-kit starts 'opcard serve --stdio' (python -m opcard.serve "
            "--stdio) for every application"
        )
    if not units:
        if shared:
            echo(
                f"no systemd units written: start the daemon yourself (it listens on "
                f"{socket_path}): opcard serve{_shell_selection(readers, serials)}"
            )
        return
    echo("wrote " + " and ".join(str(u) for u in units))
    systemctl = Systemctl()
    if not systemctl.available:
        echo(
            "no systemd user manager answers here: in your session run 'systemctl --user "
            f"daemon-reload && systemctl --user enable --now {SOCKET_UNIT}'"
            + (", or start the daemon yourself: opcard serve" if shared else "")
        )
        return
    # units of ours that changed (other options, another socket): a running daemon and the
    # listening socket start again from the new ones
    changed = bool(before) and before != _texts(unit_directory())
    steps = [("daemon-reload",), ("enable", "--now", SOCKET_UNIT)]
    if changed:
        steps += [("stop", SERVICE_UNIT), ("restart", SOCKET_UNIT)]
    for args in steps:
        rc, text = systemctl.run(*args)
        if rc != 0:
            raise CliError(f"systemctl --user {' '.join(args)} failed: {text}")
    echo(
        f"enabled and started {SOCKET_UNIT} (systemctl --user enable --now): the daemon starts "
        f"with the first connection to {socket_path}"
    )
    if changed:
        echo(f"the units changed: stopped {SERVICE_UNIT} and restarted {SOCKET_UNIT}")


def _texts(directory: Path) -> dict[str, str]:
    """Our units' texts in ``directory`` (none when they are not ours)."""
    from opcard.serve.install import UNITS, ours

    texts = {}
    for name in UNITS:
        path = directory / name
        if ours(path):
            texts[name] = path.read_text(encoding="utf-8", errors="replace")
    return texts


def _shell_selection(readers: tuple[str, ...], serials: tuple[str, ...]) -> str:
    import shlex

    words = _selection(readers, serials)
    return " " + shlex.join(words) if words else ""


def uninstall_command() -> None:
    from opcard.serve.errors import ServeError
    from opcard.serve.install import (
        SERVICE_UNIT,
        SOCKET_UNIT,
        Systemctl,
        module_directory,
        ours,
        uninstall,
        uninstall_units,
        unit_directory,
    )

    problems: list[str] = []
    units = unit_directory()
    systemctl = Systemctl()
    if ours(units / SOCKET_UNIT) and systemctl.available:
        for args in (("disable", "--now", SOCKET_UNIT), ("stop", SERVICE_UNIT)):
            rc, text = systemctl.run(*args)
            if rc != 0:
                problems.append(f"systemctl --user {' '.join(args)} failed: {text}")
        if not problems:
            echo(f"stopped and disabled {SOCKET_UNIT} and {SERVICE_UNIT}")
    removed_units, left = uninstall_units(units)
    problems += left
    if removed_units and systemctl.available:
        systemctl.run("daemon-reload")
    try:
        module = uninstall(module_directory())
    except ServeError as e:
        module = None
        problems.append(str(e))
    for path in [*([module] if module else []), *removed_units]:
        echo(f"removed {path}")
    if module is None and not removed_units and not problems:
        echo(f"nothing to remove in {module_directory()} and {units}")
    if problems:
        raise CliError("; ".join(problems))
