"""Review fixes of the daemon's edges: which peers ``--confirm forwarded`` asks, and what
``opcard serve --install`` writes for unusual ``--reader`` values.

- A peer whose ``/proc/PID/exe`` its own user may not read (a process that is not dumpable:
  sshd's session process after it changed its user from root) is taken as forwarded; an
  OpenSSH program replaced since it started (``/usr/bin/ssh (deleted)`` after an upgrade) is
  still OpenSSH.
- The module file's ``remote: |`` line is read back by p11-kit's own parser word for word
  (a real ``p11-kit list-modules`` starts it); a word p11-kit would read otherwise, or one
  that is not UTF-8, is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import require_tool

from opcard.cli.app import cli
from opcard.serve import confirm
from opcard.serve.confirm import PROTECTED, PeerProcess, peer_process
from opcard.serve.install import MODULE_FILE, module_text

# -- --confirm forwarded: which peers are OpenSSH -------------------------------------------------


def test_replaced_openssh_program_is_still_forwarded() -> None:
    assert PeerProcess(1, "/usr/bin/ssh (deleted)", "ssh -R x:y host").forwarded
    assert PeerProcess(1, "/usr/lib/openssh/sshd-session (deleted)", "").forwarded
    assert not PeerProcess(1, "/usr/bin/socat (deleted)", "").forwarded


def test_protected_peer_is_taken_as_forwarded(monkeypatch: pytest.MonkeyPatch) -> None:
    # what a user sees of its own sshd-session (not dumpable): /proc/PID/exe is EACCES, the
    # command line is readable
    def refused(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(confirm.os, "readlink", refused)
    peer = peer_process(os.getpid())
    assert peer.exe == PROTECTED and peer.forwarded
    assert peer.command  # still shown in the prompt
    assert "protected process" in peer.describe()
    # a process that is gone is still not taken for ssh
    monkeypatch.undo()
    gone = peer_process(2**22 + 1)
    assert gone.exe is None and not gone.forwarded


# -- --install: the module file's command line ------------------------------------------------


READERS = ["Reader 'A'", 'Reader "B"', "", "$HOME %h", "back\\slash", "tab\there", "é€ reader"]


def test_p11_kit_reads_the_module_line_word_for_word(tmp_path: Path) -> None:
    p11_kit = require_tool("p11-kit")
    unshare = require_tool("unshare") if os.getuid() == 0 else None
    home = tmp_path / "home"
    modules = home / ".config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    dump = tmp_path / "argv.json"
    script = tmp_path / "dump.py"
    script.write_text(
        f"import json, sys\nopen({str(dump)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    words = [a for r in READERS for a in ("--reader", r)]
    (modules / MODULE_FILE).write_text(module_text([sys.executable, str(script), *words]))
    # p11-kit reads no user module file as root: uid 1000 in a user namespace
    prefix = [unshare, "--map-user=1000", "--map-group=1000"] if unshare else []
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    subprocess.run(
        [*prefix, p11_kit, "list-modules"], env=env, capture_output=True, timeout=30, check=False
    )
    assert json.loads(dump.read_text()) == words


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME for a user (uid 1000) on a machine where systemd runs; systemctl
    answers nothing (no user manager)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr("opcard.serve.install.systemd_booted", lambda: True)
    return home


def _files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        # bytes that are not UTF-8 on the command line reach Python as lone surrogates
        ("caf\udce9 reader", "'caf\\udce9 reader' is not valid UTF-8"),
        # p11-kit takes \' inside quotes as a quote: the words after would be swallowed
        ("tail\\", "backslash before a ' or at its end"),
        ("x\\' --log-level debug '", "backslash before a ' or at its end"),
        # p11-kit drops an empty word at the end of the line
        ("", "an empty last command-line word"),
    ],
)
def test_install_refuses_a_reader_it_cannot_write_and_writes_nothing(
    user_home: Path, reader: str, message: str
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--install", "--systemd", "--reader", reader])
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert _files(user_home) == []  # no unit, no module file, no temporary file


def test_install_writes_unusual_readers(user_home: Path) -> None:
    args = [a for r in READERS for a in ("--reader", r)]
    result = CliRunner().invoke(cli, ["serve", "--install", "--systemd", *args])
    assert result.exit_code == 0, result.output
    module = user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE
    line = module.read_text().splitlines()[1]
    assert shlex.split(line.removeprefix("remote: |"))[-len(args) :] == args
    assert _files(user_home) == [
        ".config/pkcs11/modules/opcard.module",
        ".config/systemd/user/opcard.service",
        ".config/systemd/user/opcard.socket",
    ]


def test_a_fifo_in_place_of_the_module_file_is_foreign(user_home: Path) -> None:
    module = user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE
    module.parent.mkdir(parents=True)
    os.mkfifo(module)
    # open() of a FIFO waits for a writer: --install hung there
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from opcard.serve.install import ours; "
         "print(ours(__import__('pathlib').Path(sys.argv[1])))", str(module)],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert result.stdout.strip() == "False", result.stderr


# -- --idle-timeout: a socket's timeout must fit the platform's time_t ----------------------------


@pytest.mark.parametrize("value", ["inf", "1e300"])
def test_stdio_idle_timeout_too_large_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from opcard.serve.stdio import main

    # accepted before: each connection then died in settimeout() with OverflowError
    with pytest.raises(SystemExit) as caught:
        main(["--stdio", "--idle-timeout", value])
    assert caught.value.code == 2
    assert f"--idle-timeout: {value} is not between 0.05 and 31536000" in capsys.readouterr().err


def test_daemon_idle_timeout_too_large_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--idle-timeout", "1e300"])
    assert result.exit_code == 2
    assert "Invalid value for '--idle-timeout'" in result.output, result.output


def test_limits_refuse_a_timeout_no_socket_takes() -> None:
    from opcard.serve.limits import MAX_TIMEOUT, Limits
    from opcard.serve.stdio import MAX_IDLE_TIMEOUT

    assert MAX_IDLE_TIMEOUT == MAX_TIMEOUT
    Limits(idle_timeout=MAX_TIMEOUT, frame_timeout=MAX_TIMEOUT)
    for name in ("idle_timeout", "frame_timeout", "send_timeout", "handshake_timeout"):
        with pytest.raises(ValueError, match=f"{name} must be positive and at most 3.1536e"):
            Limits(**{name: 1e300})
