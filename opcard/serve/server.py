"""The server's socket: a private directory, the peer's uid checked, one thread per client.

Why threads and not asyncio: every card operation blocks (PC/SC calls into pcscd, the card
takes milliseconds to answer), the card serialises the work anyway (one lock per card), and a
daemon has a handful of clients. A thread per connection keeps each client's conversation a
plain loop — read a frame, answer it — with blocking calls and typed code; asyncio would have
to push every card call to an executor and still take the same per-card lock.

Security: the socket is created mode 0600 inside a directory that must be private (0700,
owned by the server's user; created so when missing). Each connection's peer is checked with
SO_PEERCRED and a peer of another uid is disconnected before a byte is read. Frames are
bounded (:data:`~opcard.serve.wire.MAX_BODY`) and read against a deadline; larger ones draw
on a budget shared by all connections; a malformed frame closes that connection only.
Places are bounded per server and per peer process; when they run out, a new connection takes
the place of the slowest or idlest one (:mod:`opcard.serve.limits` has every limit and its
reason). Nothing that crosses the socket is logged but call names and return values: no PIN,
no data.

A blocking C_WaitForSlotEvent is answered by a thread of its own while the connection goes on
with the client's next calls: p11-kit's client multiplexes an application's threads on one
socket and matches each reply to its call by the frame's message code (docs/serve.md,
*Slot events*). Writes to a connection are serialised by one lock.
"""

from __future__ import annotations

import _socket
import contextlib
import enum
import errno
import os
import stat
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable

from apdu.record import Record, replace
from opcard.pkcs11 import ReturnValue
from opcard.serve.confirm import Confirmation, ConfirmWhen, KeyUse, peer_process
from opcard.serve.errors import FrameError, SocketError
from opcard.serve.functions import Client, SlotWait
from opcard.serve.limits import Limits
from opcard.serve.log import DEBUG, logger
from opcard.serve.slots import Registry
from opcard.serve.wire import (
    HEADER,
    MAX_BODY,
    MAX_OPTIONS,
    PROTOCOL_VERSION_MAX,
    REQUEST_SIGNATURES,
    Call,
    Reader,
    check_arguments,
)

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    import mmap
    import socket
    from pathlib import Path


__all__ = [
    "FrameBudget",
    "Server",
    "ServerStats",
    "default_socket_path",
    "peer_credentials",
    "prepare_directory",
]


#: Seconds a C_Finalize waits for the connection's slot waits to answer first.
_WAIT_JOIN = 10.0
#: Connections the kernel queues for accept().
_BACKLOG = 128
#: Evictions and refusals are logged at most once per this many seconds.
_EVICTION_LOG_INTERVAL = 1.0
_UCRED = struct.Struct("3i")


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/opcard/pkcs11``, else ``/tmp/opcard-<uid>/pkcs11``."""
    from pathlib import Path

    return Path(default_socket_file())


def default_socket_file() -> str:
    """:func:`default_socket_path` as text, without :mod:`pathlib` (3 ms of start-up: the
    on-demand ``--stdio`` server binds no socket)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "opcard", "pkcs11")
    return f"/tmp/opcard-{os.getuid()}/pkcs11"


def prepare_directory(directory: Path) -> None:
    """Make sure ``directory`` is private: create it (mode 0700) when missing, else check it
    is a real directory (no symbolic link) owned by us that nobody else can enter."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise SocketError(f"cannot create the socket directory {directory}: {e}") from e
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise SocketError(f"{directory} is not a directory (a symbolic link?)")
    if info.st_uid != os.getuid():
        raise SocketError(f"{directory} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise SocketError(
            f"{directory} is open to other users (mode {stat.S_IMODE(info.st_mode):o}): the "
            "socket must be in a private directory (chmod 700, or choose another --socket)"
        )


def peer_credentials(conn: _socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    raw = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def _bind(path: Path) -> socket.socket:
    import socket

    prepare_directory(path.parent)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(info.st_mode):
            raise SocketError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            os.unlink(path)  # a stale socket: nobody listens
        else:
            raise SocketError(f"another server is listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    except OSError as e:
        sock.close()
        raise SocketError(f"cannot listen on {path}: {e}") from e
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    # room for a burst of connections while the accept thread catches up (a client
    # connecting in a loop must not make the others' connect fail)
    sock.listen(_BACKLOG)
    return sock


class _LogLimiter:
    """At most one line per ``interval`` seconds (the accept thread's evictions and refusals:
    a client reconnecting in a loop must not flood the log)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -interval
        self._skipped = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        self._skipped += 1
        return False

    def suppressed(self) -> str:
        """A note on the lines left out since the last one (and resets the count)."""
        skipped, self._skipped = self._skipped, 0
        return f" (and {skipped} more since the last such line)" if skipped else ""


class _Slow(Exception):
    """A connection missed a deadline (its version byte, a frame, a reply, or idle)."""


class _Phase(enum.Enum):
    HANDSHAKE = "waiting for the version byte"
    IDLE = "idle"
    FRAME = "sending a frame"
    CALL = "in a call"


class FrameBudget:
    """The bytes of large frames all connections may have buffered at once
    (:data:`~opcard.serve.limits.FRAME_BUDGET`)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        #: The most ever in use at once (for tests and the docs' figures).
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, deadline: float, cancelled: threading.Event) -> bool:
        """Take ``n`` bytes, waiting for others to give theirs back until ``deadline``
        (time.monotonic()) or until ``cancelled`` is set; False when it could not."""
        with self._cond:
            while self.used + n > self.total:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or cancelled.is_set():
                    return False
                self._cond.wait(min(remaining, 0.2))
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class ServerStats(Record):
    """What a server holds now and has done (tests, and ``--log-level debug``)."""

    connections: int
    #: Bytes of large frames buffered now (:class:`FrameBudget`).
    buffered: int
    #: The most large-frame bytes ever buffered at once.
    buffered_peak: int
    #: Connections closed to make room for new ones.
    evicted: int
    #: New connections refused: every place busy, or a peer of another uid.
    refused: int
    #: Connections closed for missing a deadline (version byte, frame, reply, idle).
    timed_out: int
    #: Blocking C_WaitForSlotEvent calls in progress, over all connections.
    waits: int


class _Connection:
    """One client connection as the accept thread sees it (for places and eviction)."""

    def __init__(self, sock: _socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.peer = f"pid {pid}"
        #: (phase, since when): written by the connection's thread, read under the server's
        #: lock by the accept thread (one tuple: always consistent).
        self.phase = (_Phase.HANDSHAKE, time.monotonic())
        #: Blocking C_WaitForSlotEvent calls in progress (under the server's lock).
        self.waits = 0
        self.evicted = threading.Event()
        self.thread: threading.Thread | None = None

    def enter(self, phase: _Phase) -> None:
        self.phase = (phase, time.monotonic())


def _dup(sock: _socket.socket) -> _socket.socket:
    """A second socket object on ``sock``'s connection (``socket.socket.dup`` for the C type:
    a new descriptor, not inheritable)."""
    return _socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))


def _send(sock: _socket.socket, data: bytes) -> None:
    """Write ``data`` whole. MSG_NOSIGNAL: a client that went away makes this raise
    BrokenPipeError for its connection only — without it, the SIGPIPE would end the whole
    daemon wherever SIGPIPE is not ignored (``opcard``'s command line restores its default so
    that ``opcard status | head`` ends quietly)."""
    sock.sendall(data, _socket.MSG_NOSIGNAL)


def _recv_into(
    conn: _Connection, view: memoryview, deadline: float, what: str, *, eof_ok: bool = False
) -> bool:
    """Fill ``view`` from the socket before ``deadline``; False on EOF before the first byte
    when ``eof_ok``. A short read then EOF is a :class:`FrameError`, a missed deadline
    :class:`_Slow`."""
    got = 0
    while got < len(view):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Slow(f"{what} not complete within its time ({got} of {len(view)} bytes)")
        conn.sock.settimeout(remaining)
        try:
            n = conn.sock.recv_into(view[got:])
        except TimeoutError:
            continue  # the loop's check raises
        if not n:
            if eof_ok and not got:
                return False
            if conn.evicted.is_set():
                raise _Slow("evicted")
            raise FrameError(f"connection closed inside {what} ({got} of {len(view)} bytes)")
        got += n
    return True


class _Body:
    """A frame's body: small ones in a bytearray, large ones in an anonymous mapping (pages
    are touched only as bytes arrive, and all go back to the system when it is closed — a
    bytearray of a megabyte would stay in the allocator's arenas)."""

    def __init__(self, length: int, small: int) -> None:
        self.length = length
        self._map: mmap.mmap | None = None
        self.data: bytearray | mmap.mmap
        if length > small:
            import mmap  # with the first large frame: not at start-up

            self._map = mmap.mmap(-1, length)
            self.data = self._map
        else:
            self.data = bytearray(length)

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view still held: freed when it goes
                self._map.close()


class Server:
    """Serves the slots of ``registry`` on a Unix socket at ``path``.

    ``start()`` binds and returns; connections are served by background threads until
    ``stop()`` (also on leaving the ``with`` block). ``limits`` bounds what clients can take
    (:mod:`opcard.serve.limits`); ``max_connections`` overrides its table size.
    ``confirmation``: which connections must have every private-key use confirmed, and how
    (:mod:`opcard.serve.confirm`; default: none)."""

    def __init__(
        self,
        registry: Registry,
        path: Path | str,
        *,
        max_connections: int | None = None,
        limits: Limits | None = None,
        confirmation: Confirmation | None = None,
    ) -> None:
        limits = limits or Limits()
        if max_connections is not None:
            limits = replace(
                limits,
                max_connections=max_connections,
                max_per_process=min(limits.max_per_process, max_connections),
            )
        self.registry = registry
        self._path: Path | None = None
        self._path_text = ""
        self.path = path
        self.limits = limits
        self.confirmation = confirmation
        self.max_connections = limits.max_connections
        self.uid = os.getuid()
        self.budget = FrameBudget(limits.frame_budget)
        self._listener: socket.socket | None = None
        # the C socket type: socket.py (its enumerations, selectors) costs the on-demand
        # server 3 ms of start-up, and it listens on no socket (issue #15)
        self._wake_r, self._wake_w = _socket.socketpair()
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[_socket.socket, _Connection] = {}
        #: False for a socket handed over by socket activation: not ours to remove.
        self._owns_path = True
        #: Connections refused: a peer of another uid, or no place (for tests and logs).
        self.refused = 0
        self._log_limiter = _LogLimiter(_EVICTION_LOG_INTERVAL)
        self.evicted = 0
        self.timed_out = 0

    @property
    def path(self) -> Path:
        """The socket's absolute path (a :class:`~pathlib.Path`, made when first asked for:
        the ``--stdio`` server never binds it, and does not load :mod:`pathlib`)."""
        if self._path is None:
            from pathlib import Path

            self._path = Path(self._path_text)
        return self._path

    @path.setter
    def path(self, path: Path | str) -> None:
        # Path(path).absolute(), as text: the same path once made a Path
        text = os.fspath(path)
        self._path_text = text if os.path.isabs(text) else os.path.join(os.getcwd(), text)
        self._path = None

    @property
    def address(self) -> str:
        """The value for ``P11_KIT_SERVER_ADDRESS``."""
        return f"unix:path={self.path}"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> ServerStats:
        with self._lock:
            connections = len(self._connections)
            waits = sum(c.waits for c in self._connections.values())
        return ServerStats(
            connections,
            self.budget.used,
            self.budget.peak,
            self.evicted,
            self.refused,
            self.timed_out,
            waits,
        )

    def start(self, listener: socket.socket | None = None) -> None:
        """Bind the socket at ``path`` and serve it; or serve ``listener``, a listening Unix
        socket handed over by socket activation (:mod:`opcard.serve.activation`): its path
        replaces ``path``, and it is left in place when the server stops (it belongs to
        whoever created it)."""
        if listener is None:
            self._listener = _bind(self.path)
        else:
            name = listener.getsockname()
            if isinstance(name, str) and name:
                self.path = name
            self._owns_path = False
            self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="opcard-serve-accept", daemon=True
        )
        self._accept_thread.start()
        logger.info("serving on %s", self.path)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, disconnect every client, remove the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        served = self._listener is not None
        if self._listener is not None:
            self._listener.close()
            if self._owns_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        with self._lock:
            connections = list(self._connections.values())
        if self.confirmation is not None:
            self.confirmation.cancel()  # a pending prompt would hold its connection's thread
        for c in connections:
            with contextlib.suppress(OSError):
                c.sock.shutdown(_socket.SHUT_RDWR)
        for c in connections:
            if c.thread is not None and c.thread is not threading.current_thread():
                c.thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()
        if served:  # not when it never started (the socket could not be created)
            logger.info("stopped serving on %s", self.path)

    def serve_stream(self, sock: _socket.socket) -> None:
        """Serve one client on ``sock``, an already connected stream socket (``opcard serve
        --stdio``: the socketpair p11-kit starts us on), in this thread, until the client
        disconnects or :meth:`stop` is called; ``sock`` is closed afterwards. The peer is the
        process that gave us the socket: no uid check, no places to compete for."""
        try:
            pid, _uid, _gid = peer_credentials(sock)
        except OSError:
            pid = os.getppid()
        conn = _Connection(sock, pid)
        conn.thread = threading.current_thread()
        with self._lock:
            self._connections[sock] = conn
        self._serve_connection(conn)

    # -- connections --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        import selectors

        listener = self._listener
        assert listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, _ = listener.accept()
                    except OSError as e:
                        if e.errno in (errno.EMFILE, errno.ENFILE):
                            logger.error("cannot accept a connection: %s", e)
                            time.sleep(0.1)  # until a connection ends: no busy loop
                        continue
                    try:
                        self._admit(conn)
                    except OSError as e:  # the peer went away at once
                        logger.debug("cannot admit a connection: %s", e)
                        conn.close()

    def _admit(self, sock: _socket.socket) -> None:
        """Check the peer's uid, find it a place (evicting an idle or slow connection when
        there is none left, for the table or for the peer process), start its thread."""
        pid, uid, _gid = peer_credentials(sock)
        if uid != self.uid:
            self.refused += 1
            logger.warning("refused pid %d of uid %d (only uid %d may connect)", pid, uid, self.uid)
            sock.close()
            return
        conn = _Connection(sock, pid)
        limits = self.limits
        with self._lock:
            mine = [c for c in self._connections.values() if c.pid == pid]
            if len(mine) >= limits.max_per_process and not self._make_room(
                mine, conn, f"{conn.peer} has {len(mine)} connections (its limit)"
            ):
                return
            if len(self._connections) >= limits.max_connections and not self._make_room(
                list(self._connections.values()),
                conn,
                f"all {len(self._connections)} places are taken",
            ):
                return
            thread = threading.Thread(
                target=self._serve_connection,
                args=(conn,),
                name="opcard-serve-client",
                daemon=True,
            )
            conn.thread = thread
            self._connections[sock] = conn
        thread.start()

    def _make_room(self, candidates: list[_Connection], new: _Connection, why: str) -> bool:
        """Evict the best candidate for ``new`` (under the lock); False (and ``new`` closed)
        when none may go."""
        victim = self._victim(candidates)
        if victim is None:
            self.refused += 1
            if self._log_limiter.allow():
                logger.warning(
                    "refused a connection of %s: %s, and every one is in a call or waiting "
                    "for a slot event%s",
                    new.peer,
                    why,
                    self._log_limiter.suppressed(),
                )
            new.sock.close()
            return False
        phase, since = victim.phase
        if self._log_limiter.allow():
            logger.warning(
                "closed the connection of %s (%s for %.1f s) to make room for %s: %s%s",
                victim.peer,
                phase.value,
                time.monotonic() - since,
                new.peer,
                why,
                self._log_limiter.suppressed(),
            )
        self.evicted += 1
        victim.evicted.set()
        del self._connections[victim.sock]
        with contextlib.suppress(OSError):
            victim.sock.shutdown(_socket.SHUT_RDWR)
        return True

    def _victim(self, candidates: list[_Connection]) -> _Connection | None:
        """Which connection gives way: one that has not sent its version byte for
        ``slow_after`` (the oldest first), then one trickling a frame for ``slow_after``, then
        an idle one — of the process holding the most connections, the longest idle first —
        then a connection younger than ``slow_after`` still before its version byte. Never a
        connection in a call, nor an idle one with a C_WaitForSlotEvent in progress (a
        legitimate long wait), nor a frame younger than ``slow_after`` (a call on its way)."""
        now = time.monotonic()
        counts = Counter(c.pid for c in self._connections.values())
        best: tuple[tuple[float, ...], _Connection] | None = None
        for c in candidates:
            phase, since = c.phase
            slow = now - since >= self.limits.slow_after
            key: tuple[float, ...]
            if phase is _Phase.HANDSHAKE:
                key = (0, since) if slow else (3, since)
            elif phase is _Phase.FRAME and slow:
                key = (1, since)
            elif phase is _Phase.IDLE and not c.waits:
                key = (2, -counts[c.pid], since)
            else:
                continue
            if best is None or key < best[0]:
                best = (key, c)
        return None if best is None else best[1]

    def _serve_connection(self, conn: _Connection) -> None:
        peer = conn.peer
        wsock: _socket.socket | None = None
        try:
            offered = bytearray(1)
            deadline = time.monotonic() + self.limits.handshake_timeout
            if not _recv_into(conn, memoryview(offered), deadline, "the version byte", eof_ok=True):
                return
            version = min(offered[0], PROTOCOL_VERSION_MAX)
            # replies go through a socket object of their own: its timeout (SEND_TIMEOUT) is
            # not the reading side's, which changes with every deadline
            wsock = _dup(conn.sock)
            wsock.settimeout(self.limits.send_timeout)
            conn.enter(_Phase.IDLE)  # before the answer: the client may go on at once
            _send(wsock, bytes((version,)))
            logger.debug("%s connected (protocol version %d)", peer, version)
            confirm = self._confirmation_for(conn)
            peer = conn.peer
            with self.registry.subscribe() as events:
                client = Client(self.registry, version, events, peer=peer, confirm=confirm)
                try:
                    self._conversation(conn, wsock, client)
                finally:
                    client.close()
        except FrameError as e:
            logger.warning("closing the connection of %s: malformed frame (%s)", peer, e)
        except _Slow as e:
            if not conn.evicted.is_set():
                self._count_timeout()
                logger.warning("closing the connection of %s: %s", peer, e)
        except TimeoutError:  # a reply not read within SEND_TIMEOUT
            self._count_timeout()
            logger.warning(
                "closing the connection of %s: it did not read its reply within %.0f s",
                peer,
                self.limits.send_timeout,
            )
        except OSError as e:
            logger.debug("connection of %s ended: %s", peer, e)
        except Exception:  # a bug: in the log (not a thread's dying words), that client only
            logger.exception("internal error serving %s: its connection is closed", peer)
        finally:
            if wsock is not None:
                wsock.close()
            conn.sock.close()
            with self._lock:
                if self._connections.get(conn.sock) is conn:
                    del self._connections[conn.sock]

    def _confirmation_for(self, conn: _Connection) -> Callable[[KeyUse], bool] | None:
        """How this connection's private-key uses are confirmed (None: they are not). The
        peer process is looked at once, when the connection starts: its SO_PEERCRED pid's
        /proc/PID/exe (an OpenSSH program: a forwarded connection)."""
        policy = self.confirmation
        if policy is None or policy.when is ConfirmWhen.NEVER:
            return None
        process = peer_process(conn.pid)
        if process.forwarded:
            conn.peer = f"{conn.peer} (forwarded, {os.path.basename(process.exe or '?')})"
        if not policy.covers(process):
            return None
        logger.debug("%s: every private-key use asks for a confirmation", conn.peer)
        return lambda use: policy.ask(use, process)

    def _count_timeout(self) -> None:
        with self._lock:
            self.timed_out += 1

    def _read_frame(self, conn: _Connection) -> tuple[int, _Body, int] | None:
        """The next request: (message code, body, bytes drawn from the budget); None when
        the client disconnected between frames. The wait for the first byte is bounded by
        ``idle_timeout`` (None: unbounded), the rest of the frame by ``frame_timeout``."""
        limits = self.limits
        header = bytearray(HEADER.size)
        view = memoryview(header)
        conn.sock.settimeout(limits.idle_timeout)
        try:
            first = conn.sock.recv_into(view)
        except TimeoutError:
            raise _Slow(f"no call for {limits.idle_timeout:g} s") from None
        if not first:
            if conn.evicted.is_set():
                raise _Slow("evicted")
            return None
        conn.enter(_Phase.FRAME)
        deadline = time.monotonic() + limits.frame_timeout
        _recv_into(conn, view[first:], deadline, "a frame header")
        code, options_length, body_length = HEADER.unpack(header)
        if options_length > MAX_OPTIONS or body_length > MAX_BODY:
            raise FrameError(
                f"frame too large ({options_length} + {body_length} bytes; at most "
                f"{MAX_OPTIONS} + {MAX_BODY})"
            )
        if options_length:
            _recv_into(conn, memoryview(bytearray(options_length)), deadline, "a frame")
        drawn = 0
        if body_length > limits.small_frame:
            if not self.budget.acquire(body_length, deadline, conn.evicted):
                if conn.evicted.is_set():
                    raise _Slow("evicted")
                raise _Slow(
                    f"no room for a frame of {body_length} bytes within its time (other "
                    "connections hold the memory for large frames)"
                )
            drawn = body_length
        try:
            body = _Body(body_length, limits.small_frame)
            try:
                _recv_into(conn, memoryview(body.data), deadline, "a frame")
            except BaseException:
                body.close()
                raise
        except BaseException:
            self.budget.release(drawn)
            raise
        conn.enter(_Phase.CALL)
        return code, body, drawn

    def _conversation(self, conn: _Connection, wsock: _socket.socket, client: Client) -> None:
        """Read requests and answer them in turn; a blocking C_WaitForSlotEvent is answered
        by a thread of its own (:meth:`_finish_wait`) while the loop goes on. Every frame is
        written under ``write_lock``: frames never interleave."""
        peer = conn.peer
        write_lock = threading.Lock()
        closing = threading.Event()
        waits: list[threading.Thread] = []
        try:
            while not self._stopping.is_set():
                frame = self._read_frame(conn)
                if frame is None:
                    logger.debug("%s disconnected", peer)
                    return
                code, body, drawn = frame
                try:
                    # read in place (Reader takes any buffer), no copy of a large body
                    data: bytes = memoryview(body.data)  # type: ignore[assignment]
                    answer = self.answer(client, data, peer)
                    finalize = isinstance(answer, tuple) and answer[1] == ReturnValue.OK
                    finalize = finalize and Reader(data).u32() == Call.FINALIZE
                    del data
                finally:
                    body.close()
                    self.budget.release(drawn)
                waits[:] = [t for t in waits if t.is_alive()]
                if isinstance(answer, SlotWait):
                    thread = threading.Thread(
                        target=self._finish_wait,
                        args=(conn, wsock, write_lock, closing, answer, code),
                        name="opcard-serve-wait",
                        daemon=True,
                    )
                    with self._lock:
                        conn.waits += 1
                    waits.append(thread)
                    thread.start()
                    conn.enter(_Phase.IDLE)
                    continue
                reply, _rv = answer
                if finalize:
                    # C_Finalize ended the waits in progress (CKR_CRYPTOKI_NOT_INITIALIZED):
                    # their replies go first, so that p11-kit's client reads each before
                    # it closes the socket after the C_Finalize reply.
                    for thread in waits:
                        thread.join(_WAIT_JOIN)
                # idle from now: set before the reply, so that the order of the connections'
                # idle times is the order their clients saw their replies in
                conn.enter(_Phase.IDLE)
                with write_lock:
                    _send(wsock, HEADER.pack(code, 0, len(reply)) + reply)
        finally:
            closing.set()
            client.events.interrupt()
            for thread in waits:
                thread.join(_WAIT_JOIN)

    def _finish_wait(
        self,
        conn: _Connection,
        wsock: _socket.socket,
        write_lock: threading.Lock,
        closing: threading.Event,
        wait: SlotWait,
        code: int,
    ) -> None:
        try:
            reply, rv = wait.outcome()
            _log_result(conn.peer, Call.WAIT_FOR_SLOT_EVENT, Call.WAIT_FOR_SLOT_EVENT, rv)
            with write_lock:
                if closing.is_set():
                    return  # the connection is going away: nobody reads the reply
                try:
                    _send(wsock, HEADER.pack(code, 0, len(reply)) + reply)
                except OSError as e:  # TimeoutError included: the reading side ends it
                    logger.debug("cannot answer the wait of %s: %s", conn.peer, e)
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(_socket.SHUT_RDWR)
        finally:
            with self._lock:
                conn.waits -= 1

    def answer(self, client: Client, body: bytes, peer: str) -> tuple[bytes, int] | SlotWait:
        """Answer one request body for ``client``: (reply body, CK_RV), or a blocking
        C_WaitForSlotEvent to finish on a thread of its own. A malformed body raises
        :class:`FrameError` (the connection is then closed). This is the frame handler the
        fuzz test drives in process."""
        reader = Reader(body)
        call_id = reader.u32()
        signature = reader.byte_array()
        if signature is None:
            raise FrameError("no signature")
        try:
            call = Call(call_id)
        except ValueError:
            call = None
        if call is Call.ERROR:
            raise FrameError("a request with the error call id")
        if call is not None:
            expected = REQUEST_SIGNATURES[call]
            if signature.decode("ascii", "replace") != expected:
                raise FrameError(f"{call.function}: wrong signature {signature!r}")
            # the whole body first: a malformed one closes the connection even when the
            # call would fail before reading all of it (an invalid session, say)
            check_arguments(Reader(body, reader.offset), expected, client.version)
        answer = client.handle(call_id, reader)
        if isinstance(answer, SlotWait):
            logger.debug("%s: C_WaitForSlotEvent: waiting", peer)
        else:
            _log_result(peer, call, call_id, answer[1])
        return answer


def _log_result(peer: str, call: Call | None, call_id: int, rv: int) -> None:
    if logger.isEnabledFor(DEBUG):
        name = call.function if call is not None else f"call {call_id}"
        try:
            result = ReturnValue(rv).name
        except ValueError:
            result = f"{rv:#x}"
        logger.debug("%s: %s -> CKR_%s", peer, name, result)
