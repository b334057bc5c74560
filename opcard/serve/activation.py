"""Sockets handed to ``opcard serve`` by whoever started it, instead of one it binds itself.

- **Socket activation** (systemd's ``LISTEN_FDS`` protocol, as ``sd_listen_fds(3)``
  describes it): the listening sockets are file descriptors 3, 4, … ; ``LISTEN_FDS`` says how
  many and ``LISTEN_PID`` names the process they are meant for (a child that inherited the
  variables must not take them). The variables are removed once read, so that programs the
  daemon starts do not see them.
- **Standard input/output** (``opcard serve --stdio``): p11-kit runs the command of a
  ``remote: |command`` module line with one end of a socketpair as its standard input and
  output; the daemon speaks the RPC on that socket to that one client. The process p11-kit
  started exits at once and a child of it serves (:func:`serve_in_a_child`).
"""

from __future__ import annotations

import _socket
import contextlib
import os
import stat
import threading

from opcard.serve.errors import SocketError

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    import socket

__all__ = ["LISTEN_FDS_START", "listen_sockets", "serve_in_a_child", "stdio_socket"]

#: The first file descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3


def listen_sockets() -> list[socket.socket] | None:
    """The listening sockets passed by socket activation, or None when the process was not
    socket-activated (no ``LISTEN_FDS``, or a ``LISTEN_PID`` that is not this process). The
    ``LISTEN_*`` variables are removed from the environment in both cases."""
    fds = os.environ.pop("LISTEN_FDS", None)
    pid = os.environ.pop("LISTEN_PID", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if fds is None or pid is None:
        return None
    import socket  # the daemon's: not loaded by --stdio

    try:
        count, owner = int(fds), int(pid)
    except ValueError:
        raise SocketError(
            f"socket activation: LISTEN_FDS={fds!r} and LISTEN_PID={pid!r} must be numbers"
        ) from None
    if owner != os.getpid():
        return None  # meant for the process that started us
    if count < 1:
        raise SocketError("socket activation: LISTEN_FDS passes no socket")
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        try:
            info = os.fstat(fd)
        except OSError as e:
            raise SocketError(f"socket activation: file descriptor {fd}: {e}") from e
        if not stat.S_ISSOCK(info.st_mode):
            raise SocketError(f"socket activation: file descriptor {fd} is not a socket")
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise SocketError(
                f"socket activation: file descriptor {fd} is not a Unix stream socket "
                "(ListenStream=PATH in the socket unit)"
            )
        os.set_inheritable(fd, False)
        sockets.append(sock)
    return sockets


def stdio_socket() -> _socket.socket:
    """The socket on standard input (p11-kit's ``remote: |command``); standard input and
    output are then pointed at /dev/null and standard error, so that nothing written to them
    by mistake can corrupt the protocol."""
    try:
        info = os.fstat(0)
    except OSError as e:
        raise SocketError(f"--stdio: no standard input ({e})") from e
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketError(
            "--stdio: standard input is not a socket; this mode is for p11-kit, which starts "
            "the command of a module file line 'remote: |opcard serve --stdio' on a socketpair"
        )
    # the C socket type: socket.py costs 3 ms of start-up (issue #15); the server needs only
    # its methods
    sock = _socket.socket(fileno=os.dup(0))
    if sock.type != _socket.SOCK_STREAM:
        sock.close()
        raise SocketError("--stdio: standard input is not a stream socket")
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    with contextlib.suppress(OSError):
        os.dup2(2, 1)
    return sock


def _other_threads() -> bool:
    """Whether another thread of this process runs: the system's count, which also sees the
    threads started without :mod:`threading` (the PC/SC watchdog: ``_thread``), and
    :func:`threading.active_count` where there is no /proc."""
    try:
        return len(os.listdir("/proc/self/task")) > 1
    except OSError:
        return threading.active_count() > 1


def serve_in_a_child() -> bool:
    """Fork: the process that was started exits at once (status 0), the child carries on and
    serves. For ``--stdio``: at C_Finalize p11-kit closes the socket, then waits for the
    process it started by polling ``waitpid(WNOHANG)`` every 100 ms (``rpc-transport.c``,
    ``rpc_exec_wait_or_terminate``, p11-kit 0.24 to 0.26); a Python process needs some 30 ms
    to exit, so every application waited 100 ms in C_Finalize. Now the started process is
    gone before p11-kit looks, and the child ends by itself when the socket closes, as before.

    Only before any other thread runs (a fork keeps the calling thread only) and before any
    PC/SC context exists (the caller's duty); returns False and does nothing when another
    thread runs, True in the child."""
    if _other_threads():
        return False
    if os.fork():
        os._exit(0)  # no atexit handlers, no buffers: nothing of ours was written yet
    return True
