"""``opcard serve``: the cards as PKCS#11 tokens for every application, through p11-kit.

The daemon owns the cards, keeps one authenticated session per card and serves them on a
Unix socket in p11-kit's RPC protocol: applications load p11-kit's client module
(``p11-kit-client.so``) with ``P11_KIT_SERVER_ADDRESS`` set to the line this command prints.
It runs in the foreground until SIGTERM or Ctrl-C (see docs/serve.md).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opcard.cli.common import State, echo, pass_state
from opcard.cli.errors import CliError
from opcard.cli.pin_input import USER, read_pin, user_pin_options
from opcard.serve.stdio import MAX_IDLE_TIMEOUT
from opcard.serve.stdio import EscapingFormatter as _EscapingFormatter  # noqa: F401 (tests)

if TYPE_CHECKING:
    from opcard.serve.confirm import Confirmation
    from opcard.serve.pcsc import PcscMonitor

__all__ = ["serve"]

P11_KIT_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"


@click.command("serve")
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Unix socket to serve on [default: $XDG_RUNTIME_DIR/opcard/pkcs11, else "
    "/tmp/opcard-UID/pkcs11]. Its directory must be private (created 0700 when missing); "
    "the socket is created 0600.",
)
@click.option(
    "--reader",
    "readers",
    multiple=True,
    metavar="NAME",
    help="Serve only the cards in this reader (a name or part of one; repeatable). "
    "Default: every reader.",
)
@click.option(
    "--serial",
    "serials",
    multiple=True,
    metavar="SERIAL",
    help="Serve only the card with this serial number (8 hex digits; repeatable).",
)
@click.option(
    "--login",
    is_flag=True,
    help="Ask for the user PIN now and log in to every card present: clients then sign "
    "without asking for it, and their C_Logout keeps this login. (Implied by --pin or "
    "--pin-file.)",
)
@user_pin_options
@click.option(
    "--log-level",
    type=click.Choice(["error", "warning", "info", "debug"], case_sensitive=False),
    default=None,
    help="What to log on standard error (debug: every call; never a PIN or data) "
    "[default: info; warning with --stdio: errors and warnings only].",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for cards inserted and removed.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    metavar="N",
    help="Connections served at once; when all are taken a new one replaces the slowest or "
    "idlest (never one in a call).",
)
@click.option(
    "--max-per-process",
    type=click.IntRange(1, 4096),
    default=16,
    show_default=True,
    metavar="N",
    help="Connections one client process may hold at once.",
)
@click.option(
    "--frame-timeout",
    type=click.FloatRange(0.05, 3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Time a request has from its first byte to its last: slower senders are "
    "disconnected. (A new connection has half of it, at most 5 s, for its version byte.)",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0.05, MAX_IDLE_TIMEOUT),
    default=None,
    metavar="SECONDS",
    help="Close connections without a call for this long [default: never; idle connections "
    "give way when places run out].",
)
@click.option(
    "--confirm",
    type=click.Choice(["never", "forwarded", "all"], case_sensitive=False),
    default="never",
    show_default=True,
    help="Ask before every use of a private key (signature, decryption, ECDH) by these "
    "connections: forwarded = those relayed by ssh/sshd (a socket forwarded with ssh -R). "
    "The --confirm-command is run with the prompt; only exit status 0 allows it, anything "
    "else is CKR_FUNCTION_REJECTED and no APDU (docs/serve.md, Over ssh).",
)
@click.option(
    "--confirm-command",
    metavar="COMMAND",
    help="The program asked (split into words; the prompt is added as its last argument, "
    "SSH_ASKPASS_PROMPT=confirm is set, as ssh-agent does for ssh-add -c) [default: "
    "$SSH_ASKPASS, else ssh-askpass].",
)
@click.option(
    "--confirm-timeout",
    type=click.FloatRange(0.1, 3600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Time the confirmation command has to answer; no answer is a refusal.",
)
@click.option(
    "--stdio",
    is_flag=True,
    help="Serve one client on standard input/output instead of a socket: for p11-kit, which "
    "starts this command itself from a module file line 'remote: |opcard serve --stdio' "
    "(docs/serve.md; --install writes the faster 'python3 -m opcard.serve --stdio'). Exits "
    "when that client disconnects. Logs go to standard error.",
)
@click.option(
    "--install",
    is_flag=True,
    help="Register opcard with p11-kit and exit: a module file (~/.config/pkcs11/modules/"
    "opcard.module; /etc/pkcs11/modules/ for root) whose line 'remote: |... serve --stdio' "
    "makes p11-kit start opcard for every application, and where systemd runs the user "
    "units of a socket-activated daemon (enabled when a user manager answers). "
    "--reader/--serial go into the commands.",
)
@click.option(
    "--shared",
    is_flag=True,
    help="With --install: the module file points p11-kit at one shared daemon's socket "
    "('remote: unix:path=...', the daemon started by systemd socket activation: one login "
    "for every application) instead of starting 'opcard serve --stdio' for each.",
)
@click.option(
    "--systemd/--no-systemd",
    "systemd_units",
    default=None,
    help="With --install: write the systemd user units opcard.socket and opcard.service "
    "(~/.config/systemd/user/) even where systemd does not run / never [default: where "
    "systemd runs; not for root].",
)
@click.option(
    "--uninstall",
    is_flag=True,
    help="Remove the module file and the units --install wrote (disabling opcard.socket), "
    "and exit.",
)
@click.option(
    "--status",
    is_flag=True,
    help="Say whether a daemon is serving on the socket (--socket, else the default) and "
    "which cards, then exit: 0 when one is, 1 when none is.",
)
@pass_state
def serve(
    state: State,
    socket_path: Path | None,
    readers: tuple[str, ...],
    serials: tuple[str, ...],
    login: bool,
    pin: str | None,
    pin_file: str | None,
    log_level: str | None,
    poll: float,
    max_connections: int,
    max_per_process: int,
    frame_timeout: float,
    idle_timeout: float | None,
    confirm: str,
    confirm_command: str | None,
    confirm_timeout: float,
    stdio: bool,
    install: bool,
    shared: bool,
    systemd_units: bool | None,
    uninstall: bool,
    status: bool,
) -> None:
    """Serve the OpenPGP cards to PKCS#11 applications through p11-kit's client module.

    Prints the P11_KIT_SERVER_ADDRESS=unix:path=... line to export for applications:

    \b
      opcard serve --login     # then, where the applications run:
      export P11_KIT_SERVER_ADDRESS=unix:path=...
      p11tool --provider /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so --list-all-certs
      ssh -I /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so host
    """
    from opcard.cli.backend import PcscBackend, current
    from opcard.cli.run.serve import attach_backend_cards, check_limits, serve_stdio
    from opcard.serve.activation import listen_sockets
    from opcard.serve.errors import SocketError
    from opcard.serve.limits import HANDSHAKE_TIMEOUT, SLOW_AFTER, Limits
    from opcard.serve.server import Server, default_socket_path
    from opcard.serve.slots import Registry
    from opcard.serve.stdio import configure_logging, operator_login

    check_limits(max_connections, max_per_process)
    if sum((status, install, uninstall, stdio)) > 1:
        raise click.UsageError("choose one of --status, --install, --uninstall, --stdio")
    if (shared or systemd_units is not None) and not install:
        raise click.UsageError("--shared and --systemd/--no-systemd go with --install")
    if status:
        _status(socket_path or default_socket_path())
        return
    if install or uninstall:
        if state.reader:
            readers = (*readers, state.reader)
        if state.serial:
            serials = (*serials, state.serial)
        from opcard.cli.serve_install import install_command, uninstall_command

        if uninstall:
            uninstall_command()
        else:
            install_command(
                readers, serials, socket_path or default_socket_path(), shared, systemd_units
            )
        return
    confirmation = _confirmation(confirm, confirm_command, confirm_timeout)
    if stdio and socket_path is not None:
        raise click.UsageError("--stdio serves standard input/output, not a --socket")
    if stdio:
        serve_stdio(
            state, readers=readers, serials=serials, login=login, pin=pin, pin_file=pin_file,
            log_level=log_level, poll=poll, max_connections=max_connections,
            max_per_process=max_per_process, frame_timeout=frame_timeout,
            idle_timeout=idle_timeout, confirmation=confirmation,
        )  # fmt: skip
        return
    if state.reader:
        readers = (*readers, state.reader)
    if state.serial:
        serials = (*serials, state.serial)
    try:
        activated = listen_sockets()
    except SocketError as e:
        raise CliError(str(e)) from e
    if activated is not None and len(activated) != 1:
        raise CliError(f"socket activation passed {len(activated)} sockets: opcard serve takes one")
    restore_logging = configure_logging(log_level or "info")
    from opcard.serve.pcsc import stop_serving

    registry = Registry()
    monitor: PcscMonitor | None = None
    server: Server | None = None
    try:
        backend = current()
        if isinstance(backend, PcscBackend):
            from opcard.serve.pcsc import PcscMonitor

            monitor = PcscMonitor(registry, readers=readers, serials=serials, interval=poll)
            monitor.scan()
        else:  # an embedder's (or the tests') cards
            attach_backend_cards(registry, readers, serials)
        if login or pin is not None or pin_file is not None:
            if monitor is not None and not registry.slots(present_only=True):
                in_use = monitor.in_use_error()  # nothing to log in to: say why
                if in_use is not None:
                    raise in_use
            operator_login(registry, read_pin(USER, pin, pin_file, prompt="User PIN"))
        limits = Limits(
            max_connections=max_connections,
            max_per_process=max_per_process,
            handshake_timeout=min(HANDSHAKE_TIMEOUT, frame_timeout / 2),
            frame_timeout=frame_timeout,
            idle_timeout=idle_timeout,
            slow_after=min(SLOW_AFTER, frame_timeout / 2),
        )
        server = Server(
            registry, socket_path or default_socket_path(), limits=limits, confirmation=confirmation
        )
        if confirmation is not None:
            logging.getLogger("opcard.serve").info(
                "every private-key use of %s connections asks %s (%g s to answer)",
                confirmation.when.value,
                confirmation.command[0],
                confirmation.timeout,
            )
        try:
            server.start(activated[0] if activated else None)
        except SocketError as e:
            raise CliError(str(e)) from e
        if activated and socket_path is not None and socket_path.absolute() != server.path:
            logging.getLogger("opcard.serve").warning(
                "--socket %s ignored: serving the socket-activated %s", socket_path, server.path
            )
        if monitor is not None:
            monitor.start()
        click.echo(f"P11_KIT_SERVER_ADDRESS={server.address}")  # exact: for eval/export
        sys.stdout.flush()
        present = len(registry.slots(present_only=True))
        held = (
            ""
            if monitor is None or not monitor.held
            else f", {len(monitor.held)} held by another program"
        )
        echo(
            f"opcard serve: {present} card(s) served{held}; clients load {P11_KIT_CLIENT} "
            "with the variable above (Ctrl-C or SIGTERM stops)",
            err=True,
        )
        _wait_for_a_signal()
    finally:
        try:
            stop_serving(monitor, registry, server)
        finally:
            restore_logging()


def _confirmation(when: str, command: str | None, timeout: float) -> Confirmation | None:
    """``--confirm``/``--confirm-command``/``--confirm-timeout`` as a policy (None: never)."""
    import shlex
    import shutil

    from opcard.serve.confirm import Confirmation, ConfirmWhen

    policy = ConfirmWhen(when.lower())
    if policy is ConfirmWhen.NEVER:
        if command is not None:
            raise click.UsageError("--confirm-command needs --confirm forwarded or all")
        return None
    if command is None:
        command = os.environ.get("SSH_ASKPASS") or shutil.which("ssh-askpass")
        if not command:
            raise click.UsageError(
                f"--confirm {policy.value} needs a command to ask: give --confirm-command "
                "(no $SSH_ASKPASS set and no ssh-askpass on the PATH)"
            )
        words = [command]  # a path, as ssh-agent takes $SSH_ASKPASS: not split
    else:
        try:
            words = shlex.split(command)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--confirm-command") from e
    if not words or shutil.which(words[0]) is None:
        raise click.BadParameter(
            f"{words[0] if words else command!r} is not an executable program",
            param_hint="--confirm-command",
        )
    return Confirmation(policy, tuple(words), timeout)


def _status(path: Path) -> None:
    from opcard.serve.errors import SocketError
    from opcard.serve.status import query

    try:
        found = query(path)
    except SocketError as e:
        raise CliError(str(e), hint="start one with 'opcard serve'") from e
    echo(f"serving on {found.path}: {len(found.tokens)} card(s)")
    echo(f"P11_KIT_SERVER_ADDRESS=unix:path={found.path}")
    for t in found.tokens:
        echo(f"  {t.label}: card {t.serial} ({t.model}, {t.manufacturer}), slot {t.slot:#x}")


def _wait_for_a_signal() -> None:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
