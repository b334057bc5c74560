"""PC/SC transport through pyscard's low-level ``smartcard.scard`` API.

The only module of the project that imports pyscard. It uses the raw SCard* calls (not
pyscard's object layer): they are faster and return the real PC/SC codes, which are mapped to
the :class:`~apdu.errors.TransportError` subclasses with messages naming the reader::

    with PcscTransport.open() as t:          # the only reader holding a card
        print(t.name, t.atr.hex())
        with t.transaction():
            t.transmit(bytes.fromhex("00A4040006D27600012401"))

Connections are shared (SCARD_SHARE_SHARED, T=0 or T=1): other processes may use the card
between our transactions. A card reset by another process, a removed card, a vanished reader or
a stopped pcscd surface as :class:`~apdu.errors.CardRemovedError`; :meth:`PcscTransport.reconnect`
then reconnects (SCardReconnect, or a fresh connection — and context — when that is not
possible).

**Time bound.** A card or reader that stops answering leaves SCardTransmit (and, for every
other client of that reader, SCardConnect and SCardBeginTransaction) blocked inside pcscd until
the card is removed; no PC/SC call unblocks it (SCardCancel only ends SCardGetStatusChange,
and SCardDisconnect/SCardReleaseContext on the same context wait for the blocked call's lock).
So every call that may reach the card is bounded: :attr:`PcscTransport.timeout` seconds
(default :data:`DEFAULT_TIMEOUT`, ``$OPCARD_CARD_TIMEOUT``), or
:attr:`PcscTransport.generate_timeout` for GENERATE ASYMMETRIC KEY PAIR (INS 47: RSA 4096
generation takes minutes on some cards; :data:`GENERATE_TIMEOUT`, ``$OPCARD_GENERATE_TIMEOUT``).
Then :class:`~apdu.errors.CardNotAnsweringError` ("the card in READER does not answer") is
raised. Until pcscd lets go of the reader, every further call fails at once with the same
error; after, the next call raises :class:`~apdu.errors.CardRemovedError` and
:meth:`~PcscTransport.reconnect` works again.

How: pcsc-lite talks to pcscd over one Unix socket per context. The transport finds its
context's socket (the one that appeared during SCardEstablishContext) and calls on the
caller's thread with a deadline; one watchdog thread per process shuts the socket down under a
call past its deadline, pcsc-lite returns at once and the context is dropped. The hot path
costs two attribute writes (docs/apdu.md: no measurable change to a signature). Where the
socket cannot be found (not Linux/pcsc-lite, or another thread opened sockets at that very
moment) the calls run on a thread of the transport's own and the caller waits for it with a
timeout instead (about 30 µs more per call on the test machine); a call that times out is
left to that thread, which closes the connection when pcscd lets go.

A zero-byte answer (what pcscd hands back when the card is pulled while a command is in
flight) is checked against the reader: when the card is gone it is a CardRemovedError.
"""

from __future__ import annotations

# The C socket type, not the socket module: socket.py also loads selectors, about 2.5 ms of every
# command's start-up for two calls (find the context's socket, shut it down past a deadline).
import _socket
import _thread
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from apdu.errors import (
    AmbiguousReaderError,
    CardNotAnsweringError,
    CardNotPresentError,
    CardRemovedError,
    NoReaderError,
    NoServiceError,
    SharingViolationError,
    TransportError,
)
from apdu.transport import ReaderStatus

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from queue import SimpleQueue
    from typing import Any, Final, TypeVar

    _T = TypeVar("_T")

__all__ = [
    "DEFAULT_TIMEOUT",
    "GENERATE_TIMEOUT",
    "PcscTransport",
    "default_timeout",
    "resolve_timeout",
    "ReaderStatus",
    "reader_states",
    "list_readers",
    "wait_for_card",
]


def _register_unexecuted(name: str) -> None:
    """Put the package ``name`` in ``sys.modules`` without running its ``__init__``, which runs
    the first time someone asks the package for an attribute (PEP 562), under a lock."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    loader = spec.loader if spec is not None else None
    if spec is None or loader is None or not spec.submodule_search_locations:
        return  # not a package as pyscard's: imported as usual
    package = importlib.util.module_from_spec(spec)
    lock = threading.Lock()

    def finish_import(attribute: str) -> object:
        with lock:
            if package.__dict__.pop("__getattr__", None) is not None:
                loader.exec_module(package)
        return getattr(package, attribute)

    package.__dict__["__getattr__"] = finish_import
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system binds a sub-module (no __getattr__ of the parent's runs)
        setattr(sys.modules[parent], child, package)


def _import_scard() -> ModuleType:
    """pyscard's SCard* calls and constants: its C extension ``smartcard.scard._scard``,
    without running the ``__init__`` of the ``smartcard`` and ``smartcard.scard`` packages
    first when nothing has imported them yet.

    The ``smartcard`` package's ``__init__`` loads pyscard's object layer (Session, System, the
    reader factories, the observer machinery: about 5 ms, a tenth of a command's start-up)
    which this module does not use. ``smartcard.scard``'s is ``from smartcard.scard.scard
    import *``: SWIG's wrapper of the extension, whose functions only call the extension's with
    the same arguments, and whose one import, ``typing`` (unused), brings :mod:`re` with it
    (about 3.5 ms together). Both packages are registered unexecuted; each ``__init__`` runs
    the first time someone asks its package for an attribute (``import smartcard;
    smartcard.listReaders()``, ``from smartcard import Session``, ``from smartcard.scard import
    *`` work as always, the wrapper then using the extension loaded here).
    """
    for package in ("smartcard", "smartcard.scard"):
        if package not in sys.modules:
            _register_unexecuted(package)
    try:
        import smartcard.scard._scard as module  # the attribute: bound by the import
    except ImportError:  # a pyscard built otherwise: its public module (its __init__ runs)
        import smartcard.scard as module
    if not hasattr(module, "SCardTransmit"):  # an extension of that name with other calls
        import smartcard.scard as module

    assert isinstance(module, ModuleType)
    return module


scard = _import_scard()

#: Seconds a command may take before the card counts as not answering ($OPCARD_CARD_TIMEOUT).
DEFAULT_TIMEOUT: Final = 30.0
#: Seconds for GENERATE ASYMMETRIC KEY PAIR, INS 47 ($OPCARD_GENERATE_TIMEOUT): RSA 4096 key
#: generation takes more than a minute on some cards.
GENERATE_TIMEOUT: Final = 300.0
_TIMEOUT_ENV: Final = "OPCARD_CARD_TIMEOUT"
_GENERATE_ENV: Final = "OPCARD_GENERATE_TIMEOUT"
_INS_GENERATE: Final = 0x47
#: math.inf, without the math module (a command that never meets a bound does without it).
_INFINITY: Final = float("inf")
#: After a zero-byte answer: how long to look for the card's removal (pcscd notices it on its
#: next poll of the reader).
_REMOVAL_GRACE: Final = 1.0

_SUCCESS: Final = scard.SCARD_S_SUCCESS
_PROTOCOLS: Final = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_PNP_READER: Final = "\\\\?PnP?\\Notification"

# PC/SC return codes by name, for messages: built with the first message that names one.
_names: dict[int, str] | None = None

# Codes meaning "the connection to the card is gone" while connected: CardRemovedError.
_LOST: Final[dict[int, str]] = {
    scard.SCARD_W_RESET_CARD: "the card in {reader!r} was reset (by another process?)",
    scard.SCARD_W_REMOVED_CARD: "the card was removed from {reader!r}",
    scard.SCARD_E_NO_SMARTCARD: "no card in {reader!r} any more",
    scard.SCARD_W_UNPOWERED_CARD: "the card in {reader!r} is not powered",
    scard.SCARD_W_UNRESPONSIVE_CARD: "the card in {reader!r} does not respond",
    scard.SCARD_E_READER_UNAVAILABLE: "reader {reader!r} is gone",
    scard.SCARD_E_UNKNOWN_READER: "reader {reader!r} is gone",
    scard.SCARD_E_NO_READERS_AVAILABLE: "reader {reader!r} is gone",
    scard.SCARD_E_INVALID_HANDLE: "the connection to {reader!r} is no longer valid",
    scard.SCARD_E_NO_SERVICE: "the PC/SC service (pcscd) went away",
    scard.SCARD_E_SERVICE_STOPPED: "the PC/SC service (pcscd) stopped",
    scard.SCARD_F_COMM_ERROR: "communication with the card in {reader!r} failed",
}

# Codes when connecting or listing (no connection yet).
_CONNECT: Final[dict[int, tuple[type[TransportError], str]]] = {
    scard.SCARD_E_NO_SERVICE: (NoServiceError, "the PC/SC service (pcscd) is not running"),
    scard.SCARD_E_SERVICE_STOPPED: (NoServiceError, "the PC/SC service (pcscd) stopped"),
    scard.SCARD_E_NO_READERS_AVAILABLE: (NoReaderError, "no smartcard reader is connected"),
    scard.SCARD_E_UNKNOWN_READER: (NoReaderError, "no reader named {reader!r}"),
    scard.SCARD_E_READER_UNAVAILABLE: (NoReaderError, "reader {reader!r} is not available"),
    scard.SCARD_E_NO_SMARTCARD: (CardNotPresentError, "no card in {reader!r}"),
    scard.SCARD_W_REMOVED_CARD: (CardNotPresentError, "no card in {reader!r}"),
    scard.SCARD_W_UNPOWERED_CARD: (CardNotPresentError, "the card in {reader!r} is unpowered"),
    scard.SCARD_W_UNRESPONSIVE_CARD: (
        CardNotPresentError,
        "the card in {reader!r} does not respond (inserted the wrong way?)",
    ),
    scard.SCARD_E_SHARING_VIOLATION: (
        SharingViolationError,
        "another program holds the card in {reader!r} exclusively (GnuPG's scdaemon does, "
        "unless 'pcsc-shared' is in its scdaemon.conf)",
    ),
}


def _code_name(code: int) -> str:
    global _names
    if _names is None:
        _names = {
            getattr(scard, n) & 0xFFFFFFFF: n
            for n in dir(scard)
            if n.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_"))
            and isinstance(getattr(scard, n), int)
        }
    code &= 0xFFFFFFFF
    return _names.get(code, f"0x{code:08X}")


def _suffix(code: int, during: str) -> str:
    return f" ({during}: {_code_name(code)})"


def session_error(code: int, reader: str, during: str) -> TransportError:
    """The exception for PC/SC ``code`` returned by ``during`` on an open connection."""
    if code == scard.SCARD_E_SHARING_VIOLATION:
        cls, template = _CONNECT[code]
        return cls(template.format(reader=reader) + _suffix(code, during))
    lost = _LOST.get(code)
    if lost is not None:
        return CardRemovedError(lost.format(reader=reader) + _suffix(code, during))
    return TransportError(f"PC/SC error on {reader!r}" + _suffix(code, during))


def connect_error(code: int, reader: str, during: str) -> TransportError:
    """The exception for PC/SC ``code`` returned by ``during`` while connecting or listing."""
    known = _CONNECT.get(code)
    if known is not None:
        cls, template = known
        return cls(template.format(reader=reader) + _suffix(code, during))
    return TransportError(f"PC/SC error on {reader or 'the readers'!r}" + _suffix(code, during))


def _parse_timeout(text: str, name: str) -> float | None:
    value = text.strip().lower()
    if value in ("0", "none", "off", "inf", "infinity"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"${name} must be a number of seconds (or 0/none for no bound), not {text!r}"
        ) from None
    if not 0 <= seconds < _INFINITY:  # NaN too
        raise ValueError(f"${name} must be a positive number of seconds, not {text!r}")
    return seconds or None


def default_timeout(*, generate: bool = False) -> float | None:
    """The time bound for card commands: ``$OPCARD_CARD_TIMEOUT`` (or, with ``generate``,
    ``$OPCARD_GENERATE_TIMEOUT``) when set, else :data:`DEFAULT_TIMEOUT` /
    :data:`GENERATE_TIMEOUT`. ``0`` or ``none`` mean no bound (None). Raises ValueError for a
    value that is not a number of seconds."""
    name = _GENERATE_ENV if generate else _TIMEOUT_ENV
    text = os.environ.get(name)
    if text is None or not text.strip():
        return GENERATE_TIMEOUT if generate else DEFAULT_TIMEOUT
    return _parse_timeout(text, name)


def resolve_timeout(value: float | None, *, generate: bool = False) -> float | None:
    """A time bound as the transport keeps it: seconds, or None for no bound. ``value`` None
    is the default (:func:`default_timeout`), ``math.inf`` no bound. Raises ValueError /
    TypeError for anything but a positive number of seconds."""
    what = "generate_timeout" if generate else "timeout"
    if value is None:
        return default_timeout(generate=generate)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if not value > 0:  # NaN too
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return None if value == _INFINITY else float(value)


class _Link:
    """One PC/SC context (and card handle), and how its calls are bounded in time.

    *Direct* (``fd`` known: the context's socket to pcscd, found by :func:`_establish_link`):
    calls run on the caller's thread, each with a :attr:`deadline` that the watchdog thread
    (:data:`_WATCHDOG`) checks; a call past it gets the socket shut down under it, which makes
    pcsc-lite return at once (SCARD_F_COMM_ERROR), and the context is dead. Nothing is handed
    between threads: the hot path costs two attribute writes.

    *Worker* (``fd`` unknown — not pcsc-lite on Linux, or another thread opened sockets at the
    same moment): :meth:`call` hands the function to the link's own thread and waits at most
    ``timeout`` seconds; a call that does not return in time leaves the link *abandoned*: its
    thread finishes the blocked call whenever pcscd lets go, then disconnects and releases the
    context itself (nobody else may touch them: their calls would wait for the blocked one),
    and sets :attr:`finished`.
    """

    def __init__(self, ctx: Any, name: str, fd: int | None = None) -> None:
        self.ctx: Any = ctx
        self.hcard: Any = None
        self.name = name
        self.fd = fd
        #: Direct mode: monotonic time by which the call in flight must return (0: no call in
        #: flight, or no bound).
        self.deadline = 0.0
        #: Direct mode: the socket was shut down (deadline passed, or :meth:`abort`).
        self.killed = False
        self.aborted = False
        self.abandoned = False
        #: Worker mode: set when the thread has ended (after an abandoned call: pcscd let go).
        self.finished = threading.Event()
        self._kill_lock = threading.Lock()
        #: Worker mode (fixed at creation; :attr:`fd` becomes None when a direct link dies).
        self.worker = fd is None
        if self.worker:
            from queue import SimpleQueue  # worker mode only: not on a command's start-up

            self._requests: SimpleQueue[Callable[[], Any] | None] = SimpleQueue()
            self._replies: SimpleQueue[tuple[bool, Any]] = SimpleQueue()
            threading.Thread(target=self._run, name=f"opcard-pcsc {name}", daemon=True).start()
        else:
            _WATCHDOG.add(self)

    def call(self, timeout: float | None, fn: Callable[[], _T]) -> _T:
        """``fn()``, bounded by ``timeout``. Raises TimeoutError (the link is then given up),
        or what ``fn`` raised; after :meth:`abort`, TransportError."""
        if self.abandoned:
            raise TimeoutError
        if self.fd is not None:
            self.deadline = time.monotonic() + timeout if timeout is not None else 0.0
            try:
                result = fn()
            except BaseException:
                self.deadline = 0.0
                if self.killed:
                    raise self.after_kill() from None
                raise
            self.deadline = 0.0
            if self.killed:
                raise self.after_kill()
            return result
        from queue import Empty

        self._requests.put(fn)
        try:
            ok, value = self._replies.get(timeout=timeout)
        except Empty:
            self.abandon()
            raise TimeoutError from None
        if not ok:
            raise value
        worker_result: _T = value
        return worker_result

    def expire(self) -> None:
        """(Watchdog) Shut the socket down under a call past its deadline."""
        with self._kill_lock:
            deadline = self.deadline
            if self.fd is not None and deadline and time.monotonic() >= deadline:
                self._shut()

    def _shut(self) -> None:
        if self.killed or self.fd is None:
            return
        self.killed = True
        try:
            sock = _socket.socket(fileno=os.dup(self.fd))
        except OSError:
            return
        try:
            sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()  # the duplicate only: pcsc-lite still owns its descriptor

    def after_kill(self) -> BaseException:
        """The call returned because its socket was shut down: release the dead context and
        say why (TimeoutError, or TransportError after :meth:`abort`)."""
        self._forget()
        if self.aborted:
            return TransportError(f"the connection to {self.name!r} was closed")
        return TimeoutError()

    def _forget(self) -> None:
        with self._kill_lock:
            self.fd = None  # never shut down again: the descriptor number may be reused
        _WATCHDOG.remove(self)
        self.abandoned = True
        ctx, self.ctx, self.hcard = self.ctx, None, None
        if ctx is not None:
            _release(ctx)

    def abandon(self) -> None:
        """Give the link up: (worker mode) its thread cleans up after its current call."""
        if not self.abandoned:
            self.abandoned = True
            if self.worker:
                self._requests.put(None)

    def abort(self, error: BaseException) -> None:
        """From any thread: a call in progress returns at once with ``error`` (direct mode:
        TransportError "closed"); the link is given up."""
        self.aborted = True
        if not self.worker:
            with self._kill_lock:
                self._shut()  # nothing to do once the direct link is dead (fd None)
            self.abandoned = True
            return
        self.abandon()
        self._replies.put((False, error))

    def close(self, timeout: float | None) -> None:
        """Disconnect (leaving the card) and release the context, within ``timeout``."""
        if self.abandoned:
            return

        def disconnect() -> None:
            if self.hcard is not None:
                scard.SCardDisconnect(self.hcard, scard.SCARD_LEAVE_CARD)
                self.hcard = None
            if self.fd is None and self.ctx is not None:
                _release(self.ctx)
                self.ctx = None

        try:
            self.call(timeout, disconnect)
        except (TimeoutError, TransportError):
            return
        if self.fd is not None:
            self._forget()
        else:
            self.abandon()

    def _run(self) -> None:
        requests, replies = self._requests, self._replies
        try:
            while True:
                fn = requests.get()
                if fn is None:
                    break
                try:
                    replies.put((True, fn()))
                except BaseException as e:  # handed to the caller, raised there
                    replies.put((False, e))
        finally:
            if self.hcard is not None:
                scard.SCardDisconnect(self.hcard, scard.SCARD_LEAVE_CARD)
                self.hcard = None
            if self.ctx is not None:
                _release(self.ctx)
                self.ctx = None
            self.finished.set()


class _Watchdog:
    """One thread for the process: every :data:`WATCHDOG_INTERVAL` seconds, while direct
    links exist, it shuts down the socket of a call past its deadline (:meth:`_Link.expire`);
    without links it sleeps until one comes."""

    def __init__(self) -> None:
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._started = False

    def add(self, link: _Link) -> None:
        with self._lock:
            self._links.add(link)
            if not self._started:
                # A daemon thread of the low-level API: threading.Thread.start() would wait
                # until the new thread runs, which costs the first connection (every command's
                # start-up) 0.2 ms on an idle machine and often milliseconds on a busy one
                # (the system must schedule the thread first); the watchdog matters only once
                # a call has waited for seconds.
                _thread.start_new_thread(self._run, ())
                self._started = True
        self._wake.set()

    def remove(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _run(self) -> None:
        while True:
            with self._lock:
                links = list(self._links)
            if not links:
                self._wake.wait()
                self._wake.clear()
                continue
            now = time.monotonic()
            for link in links:
                deadline = link.deadline
                if deadline and now >= deadline:
                    link.expire()
            time.sleep(WATCHDOG_INTERVAL)


#: Seconds between the watchdog's looks: a bound is kept to within this much.
WATCHDOG_INTERVAL: Final = 0.25
_WATCHDOG: Final = _Watchdog()


class _Probe:
    """After a call the card never answered (direct mode: its context is dead): a thread that
    connects to the reader, which pcscd lets happen only when the stuck command is over (the
    card answered at last, or was removed); then :attr:`finished` is set."""

    def __init__(self, reader: str) -> None:
        self.finished = threading.Event()
        threading.Thread(
            target=self._run, args=(reader,), name=f"opcard-pcsc-probe {reader}", daemon=True
        ).start()

    def _run(self, reader: str) -> None:
        try:
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hr != _SUCCESS:
                return
            try:
                hr, hcard, _protocol = scard.SCardConnect(
                    ctx, reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS
                )
                if hr == _SUCCESS:
                    scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
            finally:
                _release(ctx)
        finally:
            self.finished.set()


_ESTABLISH_LOCK: Final = threading.Lock()
_monotonic: Final = time.monotonic


def _socket_fds() -> set[int] | None:
    """The process's open socket descriptors (None where /proc cannot tell)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    fds = set()
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except (OSError, ValueError):
            continue
    return fds


def _is_pcscd(peer: object) -> bool:
    """Is ``peer`` (a Unix socket's peer address: the path pcscd bound, as pcscd saw it) a
    pcscd socket? pcsc-lite's ``pcscd.comm``, or the name ``$PCSCLITE_CSOCK_NAME`` gives."""
    if not isinstance(peer, str) or not peer:
        return False
    names = {"pcscd.comm", os.path.basename(os.environ.get("PCSCLITE_CSOCK_NAME", ""))}
    return os.path.basename(peer) in names - {""}


def _establish_link(name: str) -> _Link:
    """A new context for a connection to ``name``, as a :class:`_Link`: direct when its
    socket to pcscd is found (pcsc-lite opens one per context: the one socket that appeared
    during SCardEstablishContext, a Unix socket connected to a peer), else worker."""
    with _ESTABLISH_LOCK:
        before = _socket_fds()
        ctx = _establish()
        after = _socket_fds()
    fd: int | None = None
    if before is not None and after is not None and len(after - before) == 1:
        (candidate,) = after - before
        try:
            probe = _socket.socket(fileno=os.dup(candidate))
            try:
                if probe.family == _socket.AF_UNIX and _is_pcscd(probe.getpeername()):
                    fd = candidate
            finally:
                probe.close()
        except OSError:
            fd = None
    return _Link(ctx, name, fd)


# --- contexts and listing --------------------------------------------------------------------


def _establish() -> Any:
    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != _SUCCESS:
        raise connect_error(hr, "", "SCardEstablishContext")
    return ctx


def _release(ctx: Any) -> None:
    scard.SCardReleaseContext(ctx)


def _readers(ctx: Any) -> list[str]:
    hr, names = scard.SCardListReaders(ctx, [])
    if hr in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_READER_UNAVAILABLE):
        return []
    if hr != _SUCCESS:
        raise connect_error(hr, "", "SCardListReaders")
    return [str(n) for n in names if n != _PNP_READER]


def _states(ctx: Any, readers: list[str]) -> list[ReaderStatus]:
    if not readers:
        return []
    hr, states = scard.SCardGetStatusChange(
        ctx, 0, [(r, scard.SCARD_STATE_UNAWARE) for r in readers]
    )
    if hr != _SUCCESS:
        raise connect_error(hr, "", "SCardGetStatusChange")
    out = []
    for reader, event, atr in states:
        present = bool(event & scard.SCARD_STATE_PRESENT) and not event & (
            scard.SCARD_STATE_MUTE | scard.SCARD_STATE_UNAVAILABLE
        )
        out.append(
            ReaderStatus(
                reader=str(reader),
                atr=bytes(atr) if present else None,
                exclusive=bool(event & scard.SCARD_STATE_EXCLUSIVE),
            )
        )
    return out


def list_readers() -> list[str]:
    """The names of the readers PC/SC knows (empty when none)."""
    ctx = _establish()
    try:
        return _readers(ctx)
    finally:
        _release(ctx)


def reader_states() -> list[ReaderStatus]:
    """Every reader with its card's ATR (None for an empty reader)."""
    ctx = _establish()
    try:
        return _states(ctx, _readers(ctx))
    finally:
        _release(ctx)


def wait_for_card(reader: str, timeout: float) -> bytes:
    """Wait until ``reader`` holds a responsive card; return its ATR.

    Raises :class:`~apdu.errors.CardNotPresentError` after ``timeout`` seconds and
    :class:`~apdu.errors.NoReaderError` when the reader does not exist.
    """
    ctx = _establish()
    try:
        deadline = time.monotonic() + timeout
        current = scard.SCARD_STATE_UNAWARE
        while True:
            left = max(0.0, deadline - time.monotonic())
            hr, states = scard.SCardGetStatusChange(ctx, int(left * 1000), [(reader, current)])
            if hr == scard.SCARD_E_TIMEOUT:
                raise CardNotPresentError(f"no card in {reader!r} after {timeout:g} s")
            if hr != _SUCCESS:
                raise connect_error(hr, reader, "SCardGetStatusChange")
            _, event, atr = states[0]
            if event & scard.SCARD_STATE_UNKNOWN:
                raise NoReaderError(f"no reader named {reader!r}")
            if event & scard.SCARD_STATE_PRESENT and not event & scard.SCARD_STATE_MUTE:
                return bytes(atr)
            current = event & ~scard.SCARD_STATE_CHANGED
            if time.monotonic() >= deadline:
                raise CardNotPresentError(f"no card in {reader!r} after {timeout:g} s")
    finally:
        _release(ctx)


def _choose_reader(ctx: Any, wanted: str | None) -> str:
    readers = _readers(ctx)
    if not readers:
        raise NoReaderError("no smartcard reader is connected")
    if wanted is not None:
        if wanted in readers:
            return wanted
        matches = [r for r in readers if wanted.lower() in r.lower()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NoReaderError(f"no reader named {wanted!r} (readers: {', '.join(readers)})")
        raise AmbiguousReaderError(f"{wanted!r} matches several readers: {', '.join(matches)}")
    with_card = [s.reader for s in _states(ctx, readers) if s.present]
    if len(with_card) == 1:
        return with_card[0]
    if not with_card:
        raise CardNotPresentError(f"no card in any reader ({', '.join(readers)})")
    raise AmbiguousReaderError(
        f"several readers hold a card ({', '.join(with_card)}); name the one to use"
    )


def _card_atr(hcard: Any, reader: str) -> bytes:
    hr, _reader, _state, _protocol, atr = scard.SCardStatus(hcard)
    if hr != _SUCCESS:
        raise session_error(hr, reader, "SCardStatus")
    return bytes(atr)


# --- the transport ---------------------------------------------------------------------------


class PcscTransport:
    """A shared connection to the card in one PC/SC reader, each call bounded in time.

    ``timeout`` (seconds, None: no bound) bounds every call that may reach the card,
    ``generate_timeout`` a GENERATE ASYMMETRIC KEY PAIR (INS 47); both may be changed at any
    time. Defaults: :func:`default_timeout`."""

    def __init__(
        self,
        link: _Link,
        reader: str,
        protocol: int,
        atr: bytes,
        *,
        timeout: float | None,
        generate_timeout: float | None,
    ) -> None:
        """Use :meth:`open`; this takes ownership of a link holding a connected card handle."""
        self.name = reader
        self._link: _Link | None = link
        #: What tells when pcscd lets go of a call the card never answered (its ``finished``
        #: event): the abandoned link (worker mode) or a probe (direct mode).
        self._stuck: _Link | _Probe | None = None
        self.timeout = timeout
        self.generate_timeout = generate_timeout
        self._set_protocol(protocol)
        self._atr = atr
        self._depth = 0
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        reader: str | None = None,
        *,
        timeout: float | None = None,
        generate_timeout: float | None = None,
    ) -> PcscTransport:
        """Connect to ``reader`` (an exact name, or a part matching one reader only).

        Without a name: the only reader holding a card. Raises NoReaderError,
        AmbiguousReaderError, CardNotPresentError, SharingViolationError, NoServiceError, or
        CardNotAnsweringError when the reader does not let us connect within ``timeout``.
        ``timeout`` / ``generate_timeout``: seconds (``math.inf``: no bound); None takes
        :func:`default_timeout` (``$OPCARD_CARD_TIMEOUT``, ``$OPCARD_GENERATE_TIMEOUT``).
        """
        bound = resolve_timeout(timeout)
        long_bound = resolve_timeout(generate_timeout, generate=True)
        link = _establish_link(reader or "")
        try:
            name = link.name = _choose_reader(link.ctx, reader)
            protocol, atr = cls._connect(link, name, bound)
        except BaseException:
            link.close(bound)
            raise
        return cls(link, name, protocol, atr, timeout=bound, generate_timeout=long_bound)

    @staticmethod
    def _connect(link: _Link, reader: str, timeout: float | None) -> tuple[int, bytes]:
        """SCardConnect + SCardStatus on ``link``'s thread; the handle stays on the link."""

        def connect() -> tuple[int, bytes]:
            hr, hcard, protocol = scard.SCardConnect(
                link.ctx, reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS
            )
            if hr != _SUCCESS:
                raise connect_error(hr, reader, "SCardConnect")
            link.hcard = hcard
            return int(protocol), _card_atr(hcard, reader)

        return _bounded(link, timeout, connect, reader, "SCardConnect")

    def _set_protocol(self, protocol: int) -> None:
        self.protocol = protocol
        self._pci = (
            scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        )

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def watchdog(self) -> bool:
        """True when calls are bounded by the watchdog (on the caller's thread), False when
        they run on the transport's own thread (see the module docstring)."""
        link = self._link
        return link is not None and link.fd is not None

    @property
    def closed(self) -> bool:
        return self._link is None and self._stuck is None

    def _live(self) -> _Link:
        """The usable link, or the error saying why there is none."""
        link = self._link
        if link is not None and not link.abandoned:
            return link
        stuck = self._stuck
        if stuck is not None:
            if not stuck.finished.is_set():
                raise CardNotAnsweringError(
                    f"the card in {self.name!r} does not answer (an earlier command is still "
                    "waiting for its answer)",
                    self.name,
                    self.timeout,
                )
            raise CardRemovedError(
                f"the card in {self.name!r} did not answer and was reset or removed since"
            )
        raise TransportError(f"the connection to {self.name!r} is closed")

    def transmit(self, apdu: bytes) -> bytes:
        link = self._link
        if link is None or link.abandoned:
            link = self._live()
        timeout = self.generate_timeout if apdu[1:2] == b"\x47" else self.timeout
        if link.fd is not None:  # direct: the watchdog bounds the call (the hot path)
            link.deadline = _monotonic() + timeout if timeout is not None else 0.0
            try:
                hr, response = scard.SCardTransmit(link.hcard, self._pci, list(apdu))
            finally:
                link.deadline = 0.0
            if link.killed:
                error = link.after_kill()
                if isinstance(error, TimeoutError):
                    raise self._not_answering(link, "SCardTransmit", timeout)
                raise error
        else:
            hcard, pci, data = link.hcard, self._pci, list(apdu)
            try:
                hr, response = link.call(timeout, lambda: scard.SCardTransmit(hcard, pci, data))
            except TimeoutError:
                raise self._not_answering(link, "SCardTransmit", timeout) from None
        if hr != _SUCCESS:
            if hr not in _LOST and self._card_gone(link):
                raise CardRemovedError(
                    f"the card was removed from {self.name!r}" + _suffix(hr, "SCardTransmit")
                )
            raise session_error(hr, self.name, "SCardTransmit")
        if len(response) < 2 and self._card_gone(link):
            # pcscd answers a command in flight when the card is pulled with zero bytes
            raise CardRemovedError(
                f"the card was removed from {self.name!r} during a command (no answer)"
            )
        return bytes(response)

    def _not_answering(
        self, link: _Link, during: str, timeout: float | None
    ) -> CardNotAnsweringError:
        with self._lock:
            if self._link is link:
                # worker mode: the link's own thread waits for pcscd; direct: a probe does
                self._stuck = _Probe(self.name) if link.killed else link
                self._link = None
        return _not_answering(self.name, during, timeout)

    def _card_gone(self, link: _Link) -> bool:
        """After a failed or empty answer: is the card gone from the reader? Looks for up to
        :data:`_REMOVAL_GRACE` seconds (pcscd notices a removal on its next poll)."""
        reader = self.name

        def look() -> bool:
            deadline = time.monotonic() + _REMOVAL_GRACE
            current = scard.SCARD_STATE_UNAWARE
            while True:
                left = max(0, int((deadline - time.monotonic()) * 1000))
                hr, states = scard.SCardGetStatusChange(link.ctx, left, [(reader, current)])
                if hr != _SUCCESS:
                    return bool(hr != scard.SCARD_E_TIMEOUT)
                _, event, _atr = states[0]
                if event & (scard.SCARD_STATE_EMPTY | scard.SCARD_STATE_UNKNOWN):
                    return True
                if event & scard.SCARD_STATE_UNAVAILABLE:
                    return True
                current = event & ~scard.SCARD_STATE_CHANGED
                if time.monotonic() >= deadline:
                    return False

        try:
            return link.call(_REMOVAL_GRACE + 5.0, look)
        except (TimeoutError, TransportError):
            return False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """SCardBeginTransaction … SCardEndTransaction (re-entrant within this object)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            link = self._live()
            hcard = link.hcard
            try:
                hr = link.call(self.timeout, lambda: scard.SCardBeginTransaction(hcard))
            except TimeoutError:
                raise self._not_answering(link, "SCardBeginTransaction", self.timeout) from None
            if hr != _SUCCESS:
                raise session_error(hr, self.name, "SCardBeginTransaction")
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                if self._link is link:
                    # A failure to end (card reset or removed meanwhile) shows on the next
                    # command; the work done inside the transaction stands.
                    try:
                        link.call(
                            self.timeout,
                            lambda: scard.SCardEndTransaction(hcard, scard.SCARD_LEAVE_CARD),
                        )
                    except TimeoutError:
                        self._not_answering(link, "SCardEndTransaction", self.timeout)
                    except TransportError:
                        pass

    def reconnect(self, reader: str | None = None) -> None:
        """Reconnect after CardRemovedError, or move to another ``reader``.

        Tries SCardReconnect on the current handle first (the card stays as it is: no reset);
        when the handle, the reader or the service is gone, connects afresh (with a new
        context if needed). Raises CardNotPresentError / NoReaderError / NoServiceError while
        the card is away, leaving the transport reconnectable; CardNotAnsweringError while a
        command the card never answered still holds the reader.
        """
        with self._lock:
            if self._depth:
                raise RuntimeError("cannot reconnect inside a transaction")
            stuck = self._stuck
            if stuck is not None:
                if not stuck.finished.is_set() and (reader is None or reader == self.name):
                    self._live()  # raises CardNotAnsweringError
                self._stuck = None
            target = self.name if reader is None else reader
            link = self._link
            if target == self.name and link is not None and link.hcard is not None:
                hcard, name = link.hcard, self.name

                def again() -> tuple[int, int, bytes]:
                    hr, protocol = scard.SCardReconnect(
                        hcard, scard.SCARD_SHARE_SHARED, _PROTOCOLS, scard.SCARD_LEAVE_CARD
                    )
                    if hr != _SUCCESS:
                        return hr, 0, b""
                    return hr, int(protocol), _card_atr(hcard, name)

                hr, protocol, atr = _bounded(link, self.timeout, again, name, "SCardReconnect")
                if hr == _SUCCESS:
                    self._set_protocol(protocol)
                    self._atr = atr
                    return
            if link is not None:
                self._link = None
                link.close(self.timeout)
            link = _establish_link(target)
            try:
                if reader is not None:
                    target = link.name = _choose_reader(link.ctx, reader)
                protocol, atr = self._connect(link, target, self.timeout)
            except CardNotAnsweringError:
                self._stuck = _Probe(target) if link.killed else link
                raise
            except BaseException:
                link.close(self.timeout)
                raise
            self.name = target
            self._link = link
            self._set_protocol(protocol)
            self._atr = atr

    def abort(self) -> None:
        """From any thread: a call in progress returns at once (TransportError "closed"), and
        the transport is closed (its connection is left to its thread to close). For shutting
        down while a card does not answer."""
        link, self._link = self._link, None
        if link is not None:
            link.abort(TransportError(f"the connection to {self.name!r} was closed"))

    def close(self) -> None:
        """Disconnect (leaving the card as it is) and release the context. Idempotent; a
        connection blocked by a card that does not answer is left to close itself."""
        with self._lock:
            link, self._link, self._stuck = self._link, None, None
            if link is not None:
                link.close(self.timeout)

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        t = 0 if self.protocol == scard.SCARD_PROTOCOL_T0 else 1
        state = "not answering" if self._stuck else "closed" if self._link is None else f"T={t}"
        return f"PcscTransport({self.name!r}, {state})"


def _bounded(
    link: _Link, timeout: float | None, fn: Callable[[], _T], reader: str, during: str
) -> _T:
    try:
        return link.call(timeout, fn)
    except TimeoutError:
        raise _not_answering(reader, during, timeout) from None


def _not_answering(reader: str, during: str, timeout: float | None) -> CardNotAnsweringError:
    within = "" if timeout is None else f" within {timeout:g} s"
    return CardNotAnsweringError(
        f"the card in {reader!r} does not answer ({during}: no answer{within})", reader, timeout
    )
