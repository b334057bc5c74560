"""Confirmation of private-key use (``opcard serve --confirm``), as ``ssh-agent -c`` does.

With a policy other than ``never``, every use of a private key by a connection the policy
covers — a signature (C_Sign, C_SignFinal), a decryption (C_Decrypt) or an ECDH key
agreement (C_DeriveKey) — first runs a command with a prompt naming the operation, the key,
the card and the peer; only exit status 0 lets the operation reach the card. Anything else
(another status, a signal, the command not starting, no answer within the timeout) answers
CKR_FUNCTION_REJECTED ("the signature request is rejected by the user", PKCS#11 2.20) and
sends no APDU. The command is run as ``ssh-agent`` runs ``ssh-askpass`` for a key added with
``ssh-add -c``: the prompt as its one argument and ``SSH_ASKPASS_PROMPT=confirm`` in its
environment, so ``ssh-askpass`` itself shows a yes/no dialog.

Which connections are *forwarded* (``--confirm forwarded``): those whose peer process — the
SO_PEERCRED pid of the connection, its ``/proc/PID/exe`` — is an OpenSSH program (``ssh``,
``sshd``, ``sshd-session``). A socket forwarded with ``ssh -R`` (or reached through
``ssh -L`` on this machine) is connected to by the local ssh process (or sshd), whoever uses
it at the far end. docs/serve.md (*Over ssh*) says what this cannot tell: a local ``ssh -I``
loads p11-kit's client into the ssh process and is asked too; relays that are not OpenSSH
(socat, a container's bind mount) are not recognised (``--confirm all`` covers them).

The prompt runs on the connection's own thread without any lock another connection needs
(the card is locked only once the answer is yes), bounded by the timeout; its text has every
control and format character escaped (:func:`opcard.text.escape`): a card's cardholder name
or a peer's command line cannot put a newline or an escape sequence into it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading

from apdu.record import Record, field
from opcard.serve.log import logger

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    import subprocess


__all__ = [
    "CONFIRM_TIMEOUT",
    "FORWARDERS",
    "PROTECTED",
    "Confirmation",
    "ConfirmWhen",
    "KeyUse",
    "PeerProcess",
    "peer_process",
    "prompt_text",
]


#: Seconds the command has to answer before the operation is refused (``ssh-askpass`` has
#: no timeout of its own; a prompt nobody answers must not hold the client forever).
CONFIRM_TIMEOUT = 60.0
#: Programs (basenames of ``/proc/PID/exe``) whose connections are forwarded ones.
FORWARDERS = frozenset({"ssh", "sshd", "sshd-session"})
#: Characters of a peer's command line shown in the prompt.
_COMMAND_SHOWN = 160
#: :attr:`PeerProcess.exe` of a live peer whose ``/proc/PID/exe`` its own user cannot read:
#: a process that is not dumpable — sshd's session process, which changed its user from
#: root, and programs that forbid tracing. Taken as forwarded (fail closed): sshd cannot be
#: recognised by its program.
PROTECTED = "(a protected process: its program cannot be read)"


class ConfirmWhen(enum.Enum):
    """``--confirm``: which connections must have each private-key use confirmed."""

    NEVER = "never"
    FORWARDED = "forwarded"
    ALL = "all"


class PeerProcess(Record):
    """The process at the other end of a connection, as the daemon sees it at accept."""

    pid: int
    #: ``/proc/PID/exe``'s target; None when the process is gone, :data:`PROTECTED` when
    #: its user may not read it.
    exe: str | None
    #: Its command line, arguments joined by spaces (raw: escape before showing).
    command: str

    @property
    def forwarded(self) -> bool:
        """An OpenSSH program: the connection relays a forwarded socket (or is a local
        ``ssh -I``, which cannot be told apart)."""
        if self.exe == PROTECTED:
            return True
        # a program replaced since it started (an OpenSSH upgrade): "/usr/bin/ssh (deleted)"
        if self.exe is None:
            return False
        return os.path.basename(self.exe.removesuffix(" (deleted)")) in FORWARDERS

    def describe(self) -> str:
        """``pid 1234, /usr/bin/ssh: ssh -N -R … host`` (escaped, shortened)."""
        from opcard.text import escape  # (unicodedata: not at the server's start-up)

        program = escape(self.exe) if self.exe is not None else "unknown program"
        command = escape(self.command)
        if len(command) > _COMMAND_SHOWN:
            command = command[: _COMMAND_SHOWN - 1] + "…"
        return f"pid {self.pid}, {program}" + (f": {command}" if command else "")


def peer_process(pid: int) -> PeerProcess:
    """What /proc says of ``pid`` (the peer of a connection: same uid, so readable)."""
    exe: str | None
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:  # alive, but not dumpable (sshd's session process)
        exe = PROTECTED
    except OSError:
        exe = None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:  # not pathlib: 3 ms of start-up
            raw = f.read()
    except OSError:
        raw = b""
    command = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "surrogateescape")
    return PeerProcess(pid, exe, command)


class KeyUse(Record):
    """What a confirmation is asked for."""

    #: "sign", "decrypt" or "derive".
    operation: str
    #: "SIG", "DEC" or "AUT".
    slot: str
    #: The key's label ("Authentication key").
    key_label: str
    #: The token's label (the cardholder name: text from the card).
    token: str
    #: The card's serial (8 hex digits).
    serial: str


_OPERATIONS = {
    "sign": "a signature",
    "decrypt": "a decryption",
    "derive": "an ECDH key agreement",
}


def prompt_text(use: KeyUse, peer: PeerProcess, *, forwarded: bool) -> str:
    """The prompt: the operation, the key, the card and the peer; every part escaped."""
    from opcard.text import escape

    what = _OPERATIONS.get(use.operation, escape(use.operation))
    kind = "a forwarded connection" if forwarded else "a connection"
    return (
        f"opcard: allow {what} with the {escape(use.key_label)} ({escape(use.slot)}) of card "
        f'"{escape(use.token)}" (serial {escape(use.serial)}), asked through {kind} '
        f"({peer.describe()})?"
    )


class Confirmation(Record):
    """A confirmation policy: ``when`` it applies, the ``command`` asked, its ``timeout``.
    One per server: :meth:`cancel` (the server stopping) refuses every later question too."""

    when: ConfirmWhen
    command: tuple[str, ...] = ()
    timeout: float = CONFIRM_TIMEOUT
    #: The commands running now (for :meth:`cancel`).
    _running: set[subprocess.Popen[bytes]] = field(
        default_factory=set, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _cancelled: threading.Event = field(
        default_factory=threading.Event, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.when is not ConfirmWhen.NEVER and not self.command:
            raise ValueError("a confirmation policy needs a command to ask")
        if self.timeout <= 0:
            raise ValueError("the confirmation timeout must be positive")

    def covers(self, peer: PeerProcess) -> bool:
        """Must this peer's private-key uses be confirmed?"""
        if self.when is ConfirmWhen.ALL:
            return True
        return self.when is ConfirmWhen.FORWARDED and peer.forwarded

    def ask(self, use: KeyUse, peer: PeerProcess) -> bool:
        """Run the command with the prompt; True only when it exits 0 within the timeout
        (and :meth:`cancel` was not called)."""
        if self._cancelled.is_set():
            return False
        from opcard.text import escape

        prompt = prompt_text(use, peer, forwarded=peer.forwarded)
        env = dict(os.environ)
        env.update(
            {
                "SSH_ASKPASS_PROMPT": "confirm",
                "OPCARD_CONFIRM_OPERATION": use.operation,
                "OPCARD_CONFIRM_KEY": use.slot,
                "OPCARD_CONFIRM_SERIAL": escape(use.serial),
                "OPCARD_CONFIRM_PEER_PID": str(peer.pid),
                "OPCARD_CONFIRM_FORWARDED": "1" if peer.forwarded else "0",
            }
        )
        import subprocess  # only when a confirmation runs (with signal: 1 ms of start-up)

        try:
            proc = subprocess.Popen(
                [*self.command, prompt],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # its own group: a timeout ends it and its children
            )
        except OSError as e:
            logger.error("cannot run the confirmation command %s: %s", self.command[0], e)
            return False
        with self._lock:
            self._running.add(proc)
            if self._cancelled.is_set():  # the server stopped meanwhile
                _kill(proc)
        try:
            status = proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.wait()
            logger.warning(
                "%s for pid %d refused: no answer within %g s",
                _OPERATIONS.get(use.operation, use.operation),
                peer.pid,
                self.timeout,
            )
            return False
        finally:
            with self._lock:
                self._running.discard(proc)
        allowed = status == 0 and not self._cancelled.is_set()
        logger.info(
            "%s with the %s key for pid %d %s (confirmation command exit status %d)",
            _OPERATIONS.get(use.operation, use.operation),
            use.slot,
            peer.pid,
            "allowed" if allowed else "refused",
            status,
        )
        return allowed

    def cancel(self) -> None:
        """End every confirmation command still running (the server stops): each is taken
        as a refusal by the operation waiting for it."""
        with self._lock:
            self._cancelled.set()
            running = list(self._running)
        for proc in running:
            _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL for the command's process group (it runs in a session of its own)."""
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
