"""The server's socket: a private directory, the peer's uid checked, one thread per client.

Why threads and not asyncio: every card operation blocks (PC/SC calls into pcscd, the card
takes milliseconds to answer), the card serialises the work anyway (one lock per card), and a
daemon has a handful of clients. A thread per connection keeps each client's conversation a
plain loop — read a frame, answer it — with blocking calls and typed code; asyncio would have
to push every card call to an executor and still take the same per-card lock.

Security: the socket is created mode 0600 inside a directory that must be private (0700,
owned by the server's user; created so when missing). Each connection's peer is checked with
SO_PEERCRED and a peer of another uid is disconnected before a byte is read. Frames are
bounded (:data:`~opcard.serve.wire.MAX_BODY`); a malformed frame closes that connection only.
Nothing that crosses the socket is logged but call names and return values: no PIN, no data.

A blocking C_WaitForSlotEvent is answered by a thread of its own while the connection goes on
with the client's next calls: p11-kit's client multiplexes an application's threads on one
socket and matches each reply to its call by the frame's message code (docs/serve.md,
*Slot events*). Writes to a connection are serialised by one lock.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import socket
import stat
import struct
import threading
from pathlib import Path

from opcard.pkcs11 import ReturnValue
from opcard.serve.errors import FrameError, SocketError
from opcard.serve.functions import Client, SlotWait
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

__all__ = ["Server", "default_socket_path", "peer_credentials", "prepare_directory"]

logger = logging.getLogger("opcard.serve")

#: Seconds a new connection has to send its version byte.
HANDSHAKE_TIMEOUT = 10.0
#: Connections served at once; more are closed at once.
MAX_CONNECTIONS = 64
_UCRED = struct.Struct("3i")


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/opcard/pkcs11``, else ``/tmp/opcard-<uid>/pkcs11``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "opcard" / "pkcs11"
    return Path("/tmp") / f"opcard-{os.getuid()}" / "pkcs11"


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


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def _bind(path: Path) -> socket.socket:
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
    sock.listen(16)
    return sock


def _recv_exact(conn: socket.socket, n: int, *, eof_ok: bool = False) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = conn.recv(min(n - len(chunks), 1 << 20))
        if not chunk:
            if eof_ok and not chunks:
                return None
            raise FrameError(f"connection closed inside a frame ({len(chunks)} of {n} bytes)")
        chunks += chunk
    return bytes(chunks)


class Server:
    """Serves the slots of ``registry`` on a Unix socket at ``path``.

    ``start()`` binds and returns; connections are served by background threads until
    ``stop()`` (also on leaving the ``with`` block)."""

    def __init__(
        self, registry: Registry, path: Path | str, *, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.registry = registry
        self.path = Path(path).absolute()
        self.max_connections = max_connections
        self.uid = os.getuid()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        #: Connections refused because the peer is another user (for tests and logs).
        self.refused = 0

    @property
    def address(self) -> str:
        """The value for ``P11_KIT_SERVER_ADDRESS``."""
        return f"unix:path={self.path}"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._listener = _bind(self.path)
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
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        with self._lock:
            connections = dict(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()
        logger.info("stopped serving on %s", self.path)

    # -- connections --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
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
                        continue
                    self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        with self._lock:
            if len(self._connections) >= self.max_connections:
                logger.warning("too many connections: refusing one")
                conn.close()
                return
            thread = threading.Thread(
                target=self._serve_connection,
                args=(conn,),
                name="opcard-serve-client",
                daemon=True,
            )
            self._connections[conn] = thread
        thread.start()

    def _serve_connection(self, conn: socket.socket) -> None:
        peer = "a client"
        try:
            pid, uid, _gid = peer_credentials(conn)
            peer = f"pid {pid}"
            if uid != self.uid:
                self.refused += 1
                logger.warning(
                    "refused %s of uid %d (only uid %d may connect)", peer, uid, self.uid
                )
                return
            conn.settimeout(HANDSHAKE_TIMEOUT)
            offered = _recv_exact(conn, 1, eof_ok=True)
            if offered is None:
                return
            version = min(offered[0], PROTOCOL_VERSION_MAX)
            conn.sendall(bytes((version,)))
            conn.settimeout(None)
            logger.debug("%s connected (protocol version %d)", peer, version)
            with self.registry.subscribe() as events:
                client = Client(self.registry, version, events, peer=peer)
                try:
                    self._conversation(conn, client, peer)
                finally:
                    client.close()
        except FrameError as e:
            logger.warning("closing the connection of %s: malformed frame (%s)", peer, e)
        except TimeoutError:
            logger.warning("closing the connection of %s: no version byte", peer)
        except OSError as e:
            logger.debug("connection of %s ended: %s", peer, e)
        finally:
            conn.close()
            with self._lock:
                self._connections.pop(conn, None)

    def _conversation(self, conn: socket.socket, client: Client, peer: str) -> None:
        """Read requests and answer them in turn; a blocking C_WaitForSlotEvent is answered
        by a thread of its own (:meth:`_finish_wait`) while the loop goes on. Every frame is
        written under ``write_lock``: frames never interleave."""
        write_lock = threading.Lock()
        closing = threading.Event()
        waits: list[threading.Thread] = []
        try:
            while not self._stopping.is_set():
                header = _recv_exact(conn, HEADER.size, eof_ok=True)
                if header is None:
                    logger.debug("%s disconnected", peer)
                    return
                code, options_length, body_length = HEADER.unpack(header)
                if options_length > MAX_OPTIONS or body_length > MAX_BODY:
                    raise FrameError(f"frame too large ({options_length} + {body_length} bytes)")
                _recv_exact(conn, options_length)
                body = _recv_exact(conn, body_length)
                assert body is not None
                answer = self._answer(client, body, peer)
                waits[:] = [t for t in waits if t.is_alive()]
                if isinstance(answer, SlotWait):
                    thread = threading.Thread(
                        target=self._finish_wait,
                        args=(conn, write_lock, closing, answer, code, peer),
                        name="opcard-serve-wait",
                        daemon=True,
                    )
                    waits.append(thread)
                    thread.start()
                    continue
                reply, rv = answer
                if rv == ReturnValue.OK and Reader(body).u32() == Call.FINALIZE:
                    # C_Finalize ended the waits in progress (CKR_CRYPTOKI_NOT_INITIALIZED):
                    # their replies go first, so that p11-kit's client reads each before
                    # it closes the socket after the C_Finalize reply.
                    for thread in waits:
                        thread.join(HANDSHAKE_TIMEOUT)
                with write_lock:
                    conn.sendall(HEADER.pack(code, 0, len(reply)) + reply)
        finally:
            closing.set()
            client.events.interrupt()
            for thread in waits:
                thread.join(HANDSHAKE_TIMEOUT)

    def _finish_wait(
        self,
        conn: socket.socket,
        write_lock: threading.Lock,
        closing: threading.Event,
        wait: SlotWait,
        code: int,
        peer: str,
    ) -> None:
        reply, rv = wait.outcome()
        _log_result(peer, Call.WAIT_FOR_SLOT_EVENT, Call.WAIT_FOR_SLOT_EVENT, rv)
        with write_lock:
            if closing.is_set():
                return  # the connection is going away: nobody reads the reply
            try:
                conn.sendall(HEADER.pack(code, 0, len(reply)) + reply)
            except OSError as e:
                logger.debug("cannot answer the wait of %s: %s", peer, e)

    def _answer(self, client: Client, body: bytes, peer: str) -> tuple[bytes, int] | SlotWait:
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
    if logger.isEnabledFor(logging.DEBUG):
        name = call.function if call is not None else f"call {call_id}"
        try:
            result = ReturnValue(rv).name
        except ValueError:
            result = f"{rv:#x}"
        logger.debug("%s: %s -> CKR_%s", peer, name, result)
