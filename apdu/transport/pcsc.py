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
So every call that may reach the card runs on a thread of the transport's own, and the caller
waits for it at most :attr:`PcscTransport.timeout` seconds (default :data:`DEFAULT_TIMEOUT`,
``$OPCARD_CARD_TIMEOUT``), or :attr:`PcscTransport.generate_timeout` for GENERATE ASYMMETRIC KEY
PAIR (INS 47: RSA 4096 generation takes minutes on some cards; :data:`GENERATE_TIMEOUT`,
``$OPCARD_GENERATE_TIMEOUT``). Then :class:`~apdu.errors.CardNotAnsweringError` ("the card in
READER does not answer") is raised and the blocked connection is abandoned to its thread, which
closes it when pcscd lets go. Until then every call fails at once with the same error; after,
the next call raises :class:`~apdu.errors.CardRemovedError` and :meth:`reconnect` works again.
The hand-over to the thread costs two thread wake-ups per call (docs/rig.md has the figure).

A zero-byte answer (what pcscd hands back when the card is pulled while a command is in
flight) is checked against the reader: when the card is gone it is a CardRemovedError.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from smartcard import scard

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

#: Seconds a command may take before the card counts as not answering ($OPCARD_CARD_TIMEOUT).
DEFAULT_TIMEOUT: Final = 30.0
#: Seconds for GENERATE ASYMMETRIC KEY PAIR, INS 47 ($OPCARD_GENERATE_TIMEOUT): RSA 4096 key
#: generation takes more than a minute on some cards.
GENERATE_TIMEOUT: Final = 300.0
_TIMEOUT_ENV: Final = "OPCARD_CARD_TIMEOUT"
_GENERATE_ENV: Final = "OPCARD_GENERATE_TIMEOUT"
_INS_GENERATE: Final = 0x47
#: After a zero-byte answer: how long to look for the card's removal (pcscd notices it on its
#: next poll of the reader).
_REMOVAL_GRACE: Final = 1.0

_SUCCESS: Final = scard.SCARD_S_SUCCESS
_PROTOCOLS: Final = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_PNP_READER: Final = "\\\\?PnP?\\Notification"

# PC/SC return codes by name, for messages.
_NAMES: Final[dict[int, str]] = {
    getattr(scard, n) & 0xFFFFFFFF: n
    for n in dir(scard)
    if n.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_"))
    and isinstance(getattr(scard, n), int)
}

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
    code &= 0xFFFFFFFF
    return _NAMES.get(code, f"0x{code:08X}")


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
    if not math.isfinite(seconds) or seconds < 0:
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
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return None if math.isinf(value) else float(value)


_T = TypeVar("_T")


class _Link:
    """One PC/SC context (and card handle) with the thread that makes its blocking calls.

    :meth:`call` hands a function to the thread and waits for its result at most ``timeout``
    seconds. A call that does not return in time leaves the link *abandoned*: its thread
    finishes the blocked call whenever pcscd lets go, then disconnects and releases the
    context itself (nobody else may touch them: their calls would wait for the blocked one).
    """

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx: Any = ctx
        self.hcard: Any = None
        self.abandoned = False
        #: Set when the thread has ended (after an abandoned call: pcscd let go of it).
        self.finished = threading.Event()
        self._requests: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"opcard-pcsc {name}", daemon=True)
        self._thread.start()

    def call(self, timeout: float | None, fn: Callable[[], _T]) -> _T:
        """``fn()`` on the link's thread. Raises TimeoutError (the link is then abandoned),
        or what ``fn`` raised; after :meth:`abort`, TransportError."""
        if self.abandoned:
            raise TimeoutError
        self._requests.put(fn)
        try:
            ok, value = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.abandon()
            raise TimeoutError from None
        if not ok:
            raise value
        result: _T = value
        return result

    def abandon(self) -> None:
        """Give the link up: its thread cleans up after its current call and ends."""
        if not self.abandoned:
            self.abandoned = True
            self._requests.put(None)

    def abort(self, error: BaseException) -> None:
        """Make a call in progress (on any thread) return at once with ``error``; abandon."""
        self.abandon()
        self._replies.put((False, error))

    def close(self, timeout: float | None) -> None:
        """Disconnect (leaving the card) and release the context, within ``timeout``."""
        if self.abandoned:
            return

        def close() -> None:
            if self.hcard is not None:
                scard.SCardDisconnect(self.hcard, scard.SCARD_LEAVE_CARD)
                self.hcard = None
            if self.ctx is not None:
                _release(self.ctx)
                self.ctx = None

        try:
            self.call(timeout, close)
        except TimeoutError:
            return
        except TransportError:
            return
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
        #: The link abandoned to a call the card never answered (until its thread ends).
        self._stuck: _Link | None = None
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
        ctx = _establish()
        try:
            name = _choose_reader(ctx, reader)
        except BaseException:
            _release(ctx)
            raise
        link = _Link(ctx, name)
        try:
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
        hcard, pci, data = link.hcard, self._pci, list(apdu)
        timeout = self.generate_timeout if apdu[1:2] == b"\x47" else self.timeout
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
                self._stuck, self._link = link, None
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
            ctx = _establish()
            try:
                if reader is not None:
                    target = _choose_reader(ctx, reader)
            except BaseException:
                _release(ctx)
                raise
            link = _Link(ctx, target)
            try:
                protocol, atr = self._connect(link, target, self.timeout)
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
