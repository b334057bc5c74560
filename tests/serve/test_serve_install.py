"""``opcard serve --install``, then the card in every application with no variable set, in both
ways of running (issue #13, *Installed once*): through pcscd + vpcd + the emulated card.

One module-scoped set-up per mode, each in a private HOME with OpenSC's system module
disabled there (the card is seen through opcard only):

- **on demand**: ``opcard serve --install --no-systemd`` writes the module file
  ``remote: |PYTHON -m opcard.serve --stdio --reader …``; p11-kit starts that (``opcard serve
  --stdio``'s server without the command line) per application;
- **shared**: ``opcard serve --install --shared --systemd`` writes the module file
  ``remote: unix:path=…`` and the user units ``opcard.socket`` / ``opcard.service``;
  ``systemd-analyze --user verify`` checks them, and the daemon runs as the units say: the
  socket unit's ``ListenStream=`` and the service's ``ExecStart=`` read from the files and given
  to ``systemd-socket-activate`` (no running systemd needed).

Then, for each mode and with no ``P11_KIT_SERVER_ADDRESS``: p11tool lists the token and
exports the AUT certificate byte-identical; gnutls-cli authenticates to gnutls-serv with
``pkcs11:`` URIs; ``ssh-keygen -D p11-kit-proxy.so`` lists the AUT key; NSS with
p11-kit-proxy.so added by modutil lists the card's certificates (Firefox's route); OpenSSL's
``pkeyutl`` with libp11's engine on p11-kit-proxy.so signs, verified with ``cryptography``.

And two applications on one card at once through ``--stdio``: a long-lived ``ssh-agent``
logged in through the proxy module, while other processes list, sign after their own login,
and fail to sign without one; no PIN try is used up.

p11-kit reads no user module files in a program running as root: as root the clients (and
``--install``) run in a user namespace of their own with our uid mapped to 1000, as in
test_serve_stdio.py. A fake ``systemctl`` first on the PATH says no user manager answers, so
that the outcome does not depend on the machine; the ``systemctl --user`` calls themselves are
checked in process (test_install_enables_the_socket_where_a_user_manager_answers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEFAULT_PORT, PW1, Emulator, Pcscd, require_file, require_tool
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from serve_support import (
    ServerCredentials,
    background,
    demo,
    free_port,
    private_dir,
    server_credentials,
)

from opcard.cli.app import cli
from opcard.serve.install import MARKER, MODULE_FILE, SERVICE_UNIT, SOCKET_UNIT, systemd_quote

READER = "Virtual PCD 00 00"
PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
AUT_URI = "pkcs11:token=Jane%20Doe;id=%03"
PROBE = Path(__file__).with_name("p11_probe.py")
USER_NOT_LOGGED_IN = 0x101
INTERNAL_AUTHENTICATE = "88"


@dataclass
class Installed:
    """A private HOME after ``opcard serve --install`` in one mode, and how to run a client
    there (as root: in a user namespace mapping us to uid 1000)."""

    mode: str
    home: Path
    env: dict[str, str]
    prefix: list[str]
    emu: Emulator
    daemon_log: Path | None = None
    units: dict[str, str] = field(default_factory=dict)

    def run(
        self, argv: list[str], *, check: bool = True, input: bytes | None = None, **extra: str
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [*self.prefix, *argv], env={**self.env, **extra}, cwd=self.home,
            capture_output=True, timeout=60, input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, (
                f"{argv[0]} exited {proc.returncode}\nstdout:\n"
                f"{proc.stdout.decode(errors='replace')}\nstderr:\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def popen(self, argv: list[str], **extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*self.prefix, *argv], env={**self.env, **extra}, cwd=self.home,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def unit_value(text: str, key: str) -> str:
    """The value of ``key=`` in a unit file (one occurrence)."""
    values = re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)
    assert len(values) == 1, (key, text)
    return str(values[0])


@pytest.fixture(scope="module")
def card(pcscd: Pcscd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulated ECC card (demo-ecc) for the whole module, with an APDU log."""
    work = tmp_path_factory.mktemp("card")
    emu = Emulator(
        work, profile="extended", personalize="demo-ecc", port=DEFAULT_PORT,
        apdu_log=work / "apdu.log", opts={},
    )  # fmt: skip
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> ServerCredentials:
    return server_credentials(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=["on-demand", "shared"])
def installed(
    request: pytest.FixtureRequest, card: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    with installed_home(
        request.param, card, tmp_path_factory.mktemp(f"home-{request.param}")
    ) as setup:
        yield setup


@contextlib.contextmanager
def installed_home(mode: str, card: Emulator, home: Path) -> Iterator[Installed]:
    """``opcard serve --install`` in ``mode`` into the empty directory ``home``, and (shared)
    the daemon as its units say; stopped and cleaned up at the end."""
    short = private_dir("opcard-install-")  # the socket path must stay short
    runtime = short / "runtime"
    runtime.mkdir(mode=0o700)
    # OpenSC's system-wide module, disabled in this HOME: the card is seen through opcard only
    modules = home / ".config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    (modules / "opensc-pkcs11.module").write_text(
        "module: opensc-pkcs11.so\nenable-in: opcard-test-nothing\n"
    )
    # no user manager answers here, whatever the machine: the outcome is the same everywhere
    fake = home / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text("#!/bin/sh\necho 'no user manager (test)' >&2\nexit 1\n")
    (fake / "systemctl").chmod(0o755)
    env = dict(os.environ)
    for key in ("XDG_CONFIG_HOME", "P11_KIT_SERVER_ADDRESS", "GNUTLS_PIN", "OPCARD_PIN",
                "OPENSSL_CONF", "SSH_AUTH_SOCK"):  # fmt: skip
        env.pop(key, None)
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PATH=f"{fake}:{env.get('PATH', '')}")
    prefix: list[str] = []
    if os.getuid() == 0:
        prefix = [require_tool("unshare"), "--map-user=1000", "--map-group=1000"]
    setup = Installed(mode, home, env, prefix, card)
    opcard = [sys.executable, "-m", "opcard.cli", "serve", "--install", "--reader", READER]
    activator: subprocess.Popen[bytes] | None = None
    try:
        if mode == "on-demand":
            out = setup.run([*opcard, "--no-systemd"]).stdout.decode()
            assert "p11-kit starts 'opcard serve --stdio'" in out, out
            module = home / ".config" / "pkcs11" / "modules" / MODULE_FILE
            line = shlex.join([sys.executable, "-m", "opcard.serve", "--stdio", "--reader", READER])
            assert module.read_text() == f"{MARKER}\nremote: |{line}\n"
            assert not (home / ".config" / "systemd").exists()
        else:
            out = setup.run([*opcard, "--shared", "--systemd"]).stdout.decode()
            assert "no systemd user manager answers" in out, out
            activator = start_units(setup, runtime, short / "daemon.log")
        yield setup
    finally:
        if activator is not None and activator.poll() is None:
            os.killpg(activator.pid, signal.SIGTERM)
            try:
                activator.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(activator.pid, signal.SIGKILL)
                activator.wait()
        shutil.rmtree(short, ignore_errors=True)


def start_units(setup: Installed, runtime: Path, log: Path) -> subprocess.Popen[bytes]:
    """Check the units ``--install --shared`` wrote and run them as systemd would: the socket
    unit's ListenStream through ``systemd-socket-activate``, the service's ExecStart (read from
    the files, not repeated here) as the command it starts on the first connection."""
    directory = setup.home / ".config" / "systemd" / "user"
    paths = [directory / SOCKET_UNIT, directory / SERVICE_UNIT]
    setup.units = {p.name: p.read_text() for p in paths}
    verify = subprocess.run(
        [require_tool("systemd-analyze"), "--user", "verify", *map(str, paths)],
        env=setup.env, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert verify.returncode == 0 and not verify.stderr.strip(), verify
    socket_unit, service = setup.units[SOCKET_UNIT], setup.units[SERVICE_UNIT]
    listen = Path(unit_value(socket_unit, "ListenStream"))
    assert listen == runtime / "opcard" / "pkcs11"  # the daemon's default socket there
    module = (setup.home / ".config" / "pkcs11" / "modules" / MODULE_FILE).read_text()
    assert module == f"{MARKER}\nremote: unix:path={listen}\n"
    exec_start = unit_value(service, "ExecStart")
    assert "%" not in exec_start and "$" not in exec_start  # shlex reads it as systemd does
    argv = shlex.split(exec_start)
    assert os.path.isabs(argv[0])
    listen.parent.mkdir(mode=0o700)  # DirectoryMode=0700: systemd creates it
    # what the user manager gives a service: HOME and XDG_RUNTIME_DIR; the private pcscd's
    # socket is the test rig's, not the unit's
    passed = ["HOME", "XDG_RUNTIME_DIR", "PCSCLITE_CSOCK_NAME"]
    with open(log, "wb") as err:
        activator = subprocess.Popen(
            [
                require_tool("systemd-socket-activate"), f"--listen={listen}",
                *(f"--setenv={k}" for k in passed if k in setup.env), *argv,
            ],
            env=setup.env, cwd="/", stdout=subprocess.DEVNULL, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while not listen.exists():
        assert activator.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
        time.sleep(0.02)
    setup.daemon_log = log
    return activator


# -- the five kinds of client, no variable set ---------------------------------------------------


def test_p11tool_lists_the_token_and_exports_the_certificate(installed: Installed) -> None:
    p11tool = require_tool("p11tool")
    tokens = installed.run([p11tool, "--list-tokens"]).stdout.decode()
    assert "Label: Jane Doe" in tokens and "Serial: 10000001" in tokens, tokens
    der = installed.run([p11tool, "--export", "--outder", f"{AUT_URI};type=cert"]).stdout
    assert der == demo("demo-ecc")["aut"].cert_der


def test_gnutls_cli_authenticates_with_pkcs11_uris(
    installed: Installed, credentials: ServerCredentials
) -> None:
    port = free_port()
    output = installed.home / f"gnutls-serv-{port}.out"
    server_argv = [
        require_tool("gnutls-serv"), "--port", str(port), "--echo", "--require-client-cert",
        "--verify-client-cert", "--x509cafile", str(credentials.ca),
        "--x509certfile", str(credentials.cert), "--x509keyfile", str(credentials.key),
    ]  # fmt: skip
    with background(server_argv, output, port=port) as server:
        proc = installed.run(
            [
                require_tool("gnutls-cli"), "--x509cafile", str(credentials.ca),
                "--x509certfile", f"{AUT_URI};type=cert",
                "--x509keyfile", f"{AUT_URI};type=private", "-p", str(port), "127.0.0.1",
            ],
            input=b"hello through the installed module\n", GNUTLS_PIN=PW1,
        )  # fmt: skip
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert "Successfully sent 1 certificate(s) to server" in out, out
    assert "hello through the installed module" in out, out
    log = server.text()
    assert "Client Signature: ECDSA-SECP256R1-SHA256" in log, log
    assert "The certificate is trusted" in log, log


def test_ssh_keygen_lists_the_aut_key_through_the_proxy(installed: Installed) -> None:
    require_file(PROXY)
    out = installed.run([require_tool("ssh-keygen"), "-D", PROXY]).stdout.decode()
    blob = " ".join(demo("demo-ecc")["aut"].openssh.split()[:2])
    assert blob in out, out


def test_ssh_logs_into_sshd_through_the_proxy(installed: Installed, tmp_path: Path) -> None:
    """``ssh -I p11-kit-proxy.so`` into an sshd on 127.0.0.1 that knows only the card's AUT
    key (as in test_serve_ssh.py); the PIN through SSH_ASKPASS."""
    sshd = require_tool("sshd")
    host_key = tmp_path / "host_ed25519"
    subprocess.run(
        [require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(demo("demo-ecc")["aut"].openssh + "\n")
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"PidFile {tmp_path / 'sshd.pid'}\nLogLevel VERBOSE\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    user = os.environ.get("USER", "root") if os.getuid() else "root"
    with background([sshd, "-D", "-e", "-f", str(config)], tmp_path / "sshd.out", port=port) as s:
        proc = installed.run(
            [
                require_tool("ssh"), "-F", "/dev/null", "-I", PROXY, "-p", str(port),
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
                "-o", "IdentityAgent=none", "-o", "PreferredAuthentications=publickey",
                f"{user}@127.0.0.1", "echo opcard-installed-ssh-ok",
            ],
            **askpass(tmp_path),
        )  # fmt: skip
        assert proc.stdout.decode().strip() == "opcard-installed-ssh-ok"
    log = s.text()
    assert "Accepted publickey" in log and "ECDSA" in log, log


def test_nss_with_p11_kit_proxy_lists_the_certificates(installed: Installed) -> None:
    db = installed.home / f"nssdb-{installed.mode}"
    db.mkdir()
    spec = f"sql:{db}"
    certutil, modutil = require_tool("certutil"), require_tool("modutil")
    installed.run([certutil, "-N", "-d", spec, "--empty-password"])
    installed.run([modutil, "-dbdir", spec, "-add", "p11-kit", "-libfile", PROXY, "-force"])
    out = installed.run([certutil, "-L", "-h", "all", "-d", spec]).stdout.decode()
    for label in ("Signature", "Encryption", "Authentication"):
        assert f"Jane Doe:{label} certificate" in out, out
    pin = installed.home / "pin"
    pin.write_text(PW1 + "\n")  # certutil -n 'token:…' authenticates to the token first
    der = installed.run(
        [certutil, "-L", "-d", spec, "-h", "Jane Doe", "-f", str(pin),
         "-n", "Jane Doe:Authentication certificate", "-r"]
    ).stdout  # fmt: skip
    assert der == demo("demo-ecc")["aut"].cert_der


def test_openssl_engine_signs_through_the_proxy(installed: Installed) -> None:
    require_file(ENGINE)
    conf = installed.home / "openssl.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
        f"dynamic_path = {ENGINE}\nMODULE_PATH = {PROXY}\ninit = 0\n"
    )
    message = f"signed by OpenSSL through the installed module ({installed.mode})".encode()
    digest = installed.home / "digest"
    digest.write_bytes(hashlib.sha256(message).digest())
    signature = installed.home / "signature"
    signature.unlink(missing_ok=True)
    installed.run(
        [
            require_tool("openssl"), "pkeyutl", "-engine", "pkcs11", "-keyform", "engine",
            "-inkey", f"{AUT_URI};type=private;pin-value={PW1}", "-sign",
            "-in", str(digest), "-out", str(signature),
        ],
        OPENSSL_CONF=str(conf),
    )  # fmt: skip
    der = signature.read_bytes()
    if len(der) == 64:  # r || s
        der = utils.encode_dss_signature(int.from_bytes(der[:32]), int.from_bytes(der[32:]))
    demo("demo-ecc")["aut"].public.verify(der, message, ec.ECDSA(hashes.SHA256()))


def test_how_the_clients_reached_the_card(installed: Installed) -> None:
    """On demand: no daemon (``opcard serve --status`` says so). Shared: one daemon, started by
    the first client, served all, and ``--status`` finds it on the default socket."""
    status = installed.run([sys.executable, "-m", "opcard.cli", "serve", "--status"], check=False)
    out = status.stdout.decode() + status.stderr.decode()
    if installed.mode == "on-demand":
        assert installed.daemon_log is None
        assert status.returncode == 1 and "no daemon is serving" in out, out
        return
    assert status.returncode == 0, out
    assert "1 card(s)" in out and "Jane Doe: card 10000001" in out, out
    assert installed.daemon_log is not None
    text = installed.daemon_log.read_text()
    assert text.count("serving on") == 1, text
    assert "--socket" not in text and "ignored" not in text, text


# -- two --stdio applications on one card at once ------------------------------------------------


# -- in process: what --install asks of systemctl, and what it refuses ---------------------------


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME for a user (uid 1000) on a machine where systemd runs, with a
    ``systemctl`` that answers and records its arguments (in ``calls``)."""
    home = tmp_path / "home"
    home.mkdir()
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "calls"}\n')
    (fake / "systemctl").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ.get('PATH', '')}")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr("opcard.serve.install.systemd_booted", lambda: True)
    return home


def calls(home: Path) -> list[str]:
    path = home.parent / "calls"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_install_enables_the_socket_where_a_user_manager_answers(user_home: Path) -> None:
    units = user_home / ".config" / "systemd" / "user"
    module = user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE
    # the line an earlier --install wrote (through the command line) is replaced: ours
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(f"{MARKER}\nremote: |{sys.executable} -m opcard.cli serve --stdio\n")
    result = CliRunner().invoke(cli, ["serve", "--install", "--reader", "Reader 1"])
    assert result.exit_code == 0, result.output
    # on demand: the module file starts opcard itself; the units give a daemon all the same
    assert module.read_text() == (
        f"{MARKER}\nremote: |"
        + shlex.join([sys.executable, "-m", "opcard.serve", "--stdio", "--reader", "Reader 1"])
        + "\n"
    )
    socket_unit, service = (units / SOCKET_UNIT).read_text(), (units / SERVICE_UNIT).read_text()
    assert unit_value(socket_unit, "ListenStream") == "/run/user/1000/opcard/pkcs11"
    assert unit_value(service, "ExecStart") == systemd_quote(
        [sys.executable, "-m", "opcard.cli", "serve", "--reader", "Reader 1"]
    )
    assert calls(user_home) == [
        "--user show --property=Version",
        "--user daemon-reload",
        "--user enable --now opcard.socket",
    ]
    assert "enabled and started opcard.socket" in result.output, result.output

    result = CliRunner().invoke(cli, ["serve", "--install", "--shared"])
    assert result.exit_code == 0, result.output
    assert module.read_text() == f"{MARKER}\nremote: unix:path=/run/user/1000/opcard/pkcs11\n"
    assert "--reader" not in (units / SERVICE_UNIT).read_text()  # replaced: ours
    # the service's command changed: the running daemon goes, the socket starts again
    assert calls(user_home)[-2:] == ["--user stop opcard.service", "--user restart opcard.socket"]
    assert "the units changed" in result.output
    result = CliRunner().invoke(cli, ["serve", "--install", "--shared"])
    assert "restart" not in " ".join(calls(user_home))  # the same units: nothing restarted

    result = CliRunner().invoke(cli, ["serve", "--uninstall"])
    assert result.exit_code == 0, result.output
    assert calls(user_home) == [
        "--user show --property=Version",
        "--user disable --now opcard.socket",
        "--user stop opcard.service",
        "--user daemon-reload",
    ]
    assert not module.exists() and not list(units.iterdir())
    for path in (module, units / SOCKET_UNIT, units / SERVICE_UNIT):
        assert f"removed {path}" in result.output, result.output


def test_install_never_replaces_a_unit_it_did_not_write(user_home: Path) -> None:
    units = user_home / ".config" / "systemd" / "user"
    units.mkdir(parents=True)
    theirs = "[Service]\nExecStart=/usr/bin/their-opcard serve\n"
    (units / SERVICE_UNIT).write_text(theirs)
    result = CliRunner().invoke(cli, ["serve", "--install", "--shared"])
    assert result.exit_code == 1
    assert f"{units / SERVICE_UNIT} exists and was not written by" in result.output
    assert (units / SERVICE_UNIT).read_text() == theirs
    assert not (units / SOCKET_UNIT).exists()  # nothing half-installed
    assert not (user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE).exists()
    assert calls(user_home) == []
    result = CliRunner().invoke(cli, ["serve", "--uninstall"])
    assert result.exit_code == 1 and "left in place" in result.output
    assert (units / SERVICE_UNIT).read_text() == theirs
    # a module file of someone else's: no unit written either
    (units / SERVICE_UNIT).unlink()
    module = user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text("remote: unix:path=/elsewhere\n")
    result = CliRunner().invoke(cli, ["serve", "--install"])
    assert result.exit_code == 1 and f"{module} exists and was not written" in result.output
    assert not units.joinpath(SOCKET_UNIT).exists() and not units.joinpath(SERVICE_UNIT).exists()


def test_where_systemd_does_not_run_no_units_unless_asked(
    user_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("opcard.serve.install.systemd_booted", lambda: False)
    monkeypatch.delenv("XDG_RUNTIME_DIR")  # the daemon's default socket: /tmp/opcard-1000/…
    units = user_home / ".config" / "systemd" / "user"
    result = CliRunner().invoke(cli, ["serve", "--install", "--shared"])
    assert result.exit_code == 0, result.output
    assert not units.exists()
    module = user_home / ".config" / "pkcs11" / "modules" / MODULE_FILE
    assert module.read_text().endswith("remote: unix:path=/tmp/opcard-1000/pkcs11\n")
    assert "note: /tmp/opcard-1000/pkcs11 is not under $XDG_RUNTIME_DIR" in result.output
    assert "start the daemon yourself" in result.output and "opcard serve" in result.output
    result = CliRunner().invoke(cli, ["serve", "--install", "--systemd"])
    assert result.exit_code == 0, result.output
    assert (units / SOCKET_UNIT).exists()
    assert "systemctl --user daemon-reload && systemctl --user enable --now" in result.output
    assert calls(user_home) == []  # no manager: systemctl is not even asked


def test_root_gets_the_module_file_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 0)
    for option in ("--shared", "--systemd"):
        result = CliRunner().invoke(cli, ["serve", "--install", option])
        assert result.exit_code == 1
        assert "a daemon serves only its own user" in result.output, result.output
    result = CliRunner().invoke(cli, ["serve", "--shared"])
    assert result.exit_code == 2 and "go with --install" in result.output


def test_exec_start_quoting() -> None:
    assert systemd_quote(["/usr/bin/python3", "-m", "opcard.cli", "serve"]) == (
        "/usr/bin/python3 -m opcard.cli serve"
    )
    assert systemd_quote(["--reader", 'Reader "A" 100% $HOME\\x']) == (
        '--reader "Reader \\"A\\" 100%% $$HOME\\\\x"'
    )


# -- two --stdio applications on one card at once ------------------------------------------------


def askpass(directory: Path) -> dict[str, str]:
    """SSH_ASKPASS answering with the user PIN (ssh-add -s asks for "the PKCS#11 passphrase")."""
    script = directory / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho {PW1}\n")
    script.chmod(0o755)
    return {"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}


def pw1_tries(emu: Emulator) -> int:
    """The user PIN's tries left, from the card's C4 over a PC/SC connection of our own."""
    with emu.connect() as conn:
        assert conn.transmit(bytes.fromhex("00A4040006D27600012401"))[-2:] == b"\x90\x00"
        return conn.get_data(0xC4)[4]


@pytest.mark.parametrize("installed", ["on-demand"], indirect=True)
def test_two_stdio_applications_share_the_card_not_the_login(installed: Installed) -> None:
    """A long-lived application (ssh-agent's PKCS#11 helper, logged in through the proxy module:
    its own ``opcard serve --stdio``) and short ones started beside it, at the same time: each
    sees the token, each that logs in signs (signatures verified), one that did not log in
    cannot sign although the card itself is verified by the others, and no PIN try is used."""
    tries = pw1_tries(installed.emu)
    work = installed.home / "two"
    work.mkdir()
    env = {**askpass(work), "SSH_AUTH_SOCK": str(work / "agent.sock")}
    agent = installed.popen([require_tool("ssh-agent"), "-D", "-a", env["SSH_AUTH_SOCK"]], **env)
    try:
        deadline = time.monotonic() + 10
        while not (work / "agent.sock").exists():
            assert agent.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.02)
        ssh_add = require_tool("ssh-add")
        installed.run([ssh_add, "-s", PROXY], **env)  # the agent's helper logs in
        aut = demo("demo-ecc")["aut"]
        (work / "aut.pub").write_text(aut.openssh + "\n")
        installed.run([ssh_add, "-T", str(work / "aut.pub")], **env)

        message = b"signed beside ssh-agent"
        (work / "in").write_bytes(hashlib.sha256(message).digest())
        tool = [require_tool("pkcs11-tool"), "--module", PROXY, "--token-label", "Jane Doe"]
        sign = ["--sign", "--id", "03", "-m", "ECDSA", "--input-file", str(work / "in")]
        # the private keys' handles, as a process that logs in finds them
        found = installed.run([sys.executable, str(PROBE), PROXY, "Jane Doe", f"login={PW1}"])
        keys = json.loads(found.stdout)["private_keys"]
        assert len(keys) == 3, found
        handles = ",".join(map(str, keys))
        for round_ in range(2):
            out = work / f"sig-{round_}"
            started = {
                "logged in": installed.popen(
                    [*tool, "--login", "--pin", PW1, *sign, "--output-file", str(out)]
                ),
                "not logged in": installed.popen(
                    [sys.executable, str(PROBE), PROXY, "Jane Doe", f"try={handles}"]
                ),
                "listing": installed.popen(
                    [require_tool("p11tool"), "--export", "--outder", f"{AUT_URI};type=cert"]
                ),
                "agent": installed.popen([ssh_add, "-T", str(work / "aut.pub")], **env),
            }
            results = {
                name: (p.communicate(timeout=60), p.returncode) for name, p in started.items()
            }
            for name in ("logged in", "listing", "agent"):
                (stdout, stderr), rc = results[name]
                assert rc == 0, (name, stdout, stderr.decode(errors="replace"))
            assert results["listing"][0][0] == aut.cert_der
            (stdout, stderr), rc = results["not logged in"]
            assert rc == 0, stderr.decode(errors="replace")
            probe = json.loads(stdout)  # the card is verified (by the others) meanwhile
            assert probe["private_keys"] == [] and probe["accepted"] == probe["signed"] == []
            # the three keys' handles: refused for want of a login
            assert probe["refusals"].get(hex(USER_NOT_LOGGED_IN), 0) >= 3, probe
            raw = out.read_bytes()
            der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
            aut.public.verify(der, message, ec.ECDSA(hashes.SHA256()))
        # the agent's login outlived every other process and their logouts
        installed.run([ssh_add, "-T", str(work / "aut.pub")], **env)
    finally:
        agent.terminate()
        agent.wait(10)
    assert pw1_tries(installed.emu) == tries == 3


#: another program: on its own PC/SC connection, SELECTs the OpenPGP applet and logs out
#: (VERIFY P1=FF, as an application's opcard does when it ends after a login) until told to stop
SELECTING = """
import os, sys
from smartcard import scard
hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
hr, card, protocol = scard.SCardConnect(ctx, sys.argv[1], scard.SCARD_SHARE_SHARED, 3)
assert hr == 0, hr
pci = scard.SCARD_PCI_T1 if protocol == 2 else scard.SCARD_PCI_T0
commands = [list(bytes.fromhex(c)) for c in ("00A4040006D27600012401", "0020FF82")]
print("selecting", flush=True)
n = 0
while not os.path.exists(sys.argv[2]):
    hr, answer = scard.SCardTransmit(card, pci, commands[n % 2])
    assert hr == 0 and answer[-2:] == [0x90, 0], (hr, answer)
    n += 1
print(n)
"""
SIGNATURES = 40


def test_a_login_survives_other_programs_on_the_card(card: Emulator) -> None:
    """What another application's ``opcard serve --stdio`` does to this one's login: its start
    SELECTs the applet, and its logout (VERIFY P1=FF) makes the card forget the user PIN
    between this process's commands. The session verifies again with the PIN it holds, and
    that VERIFY and the command it is for go in one PC/SC transaction, so that no third
    command lands between them. Here another process SELECTs and logs out without pause while
    this one signs: every signature is made and verifies, no PIN try is used."""
    import opcard

    aut = demo("demo-ecc")["aut"]
    tries = pw1_tries(card)
    failures = []
    stop = card.workdir / "stop-selecting"
    stop.unlink(missing_ok=True)
    other = subprocess.Popen(
        [sys.executable, "-c", SELECTING, card.reader, str(stop)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    logged = len(card.log_entries())
    try:
        assert other.stdout is not None
        assert other.stdout.readline() == b"selecting\n", other.stderr
        with opcard.open_card(reader=card.reader) as opened, opened.session() as session:
            session.login(PW1)
            for i in range(SIGNATURES):
                time.sleep(0.01)  # back to back, pcscd would not let the other program in
                message = f"signature {i} beside another program".encode()
                try:
                    raw = session.sign("aut", hashlib.sha256(message).digest())
                except opcard.OpcardError as e:
                    failures.append(repr(e))
                    continue
                der = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
                aut.public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    finally:
        stop.touch()
        out, err = other.communicate(timeout=20)
    selects = int(out.split()[-1])
    assert selects >= 10, (out, err)
    verifies = [e.text for e in card.log_entries()[logged:] if e.text.startswith("00200082")]
    assert len(verifies) >= 2, verifies  # the login, then again after the other's logouts
    assert failures == [], failures
    assert pw1_tries(card) == tries == 3
