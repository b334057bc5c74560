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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from smartcard import scard

from apdu.errors import (
    AmbiguousReaderError,
    CardNotPresentError,
    CardRemovedError,
    NoReaderError,
    NoServiceError,
    SharingViolationError,
    TransportError,
)
from apdu.transport import ReaderStatus

__all__ = [
    "PcscTransport",
    "ReaderStatus",
    "reader_states",
    "list_readers",
    "wait_for_card",
]

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
    """A shared connection to the card in one PC/SC reader."""

    def __init__(self, ctx: Any, reader: str, hcard: Any, protocol: int, atr: bytes) -> None:
        """Use :meth:`open`; this takes ownership of an established context and card handle."""
        self.name = reader
        self._ctx: Any = ctx
        self._hcard: Any = hcard
        self._set_protocol(protocol)
        self._atr = atr
        self._depth = 0
        self._lock = threading.RLock()

    @classmethod
    def open(cls, reader: str | None = None) -> PcscTransport:
        """Connect to ``reader`` (an exact name, or a part matching one reader only).

        Without a name: the only reader holding a card. Raises NoReaderError,
        AmbiguousReaderError, CardNotPresentError, SharingViolationError or NoServiceError.
        """
        ctx = _establish()
        try:
            name = _choose_reader(ctx, reader)
            hcard, protocol = cls._connect(ctx, name)
            try:
                atr = _card_atr(hcard, name)
            except BaseException:
                scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
                raise
            return cls(ctx, name, hcard, protocol, atr)
        except BaseException:
            _release(ctx)
            raise

    @staticmethod
    def _connect(ctx: Any, reader: str) -> tuple[Any, int]:
        hr, hcard, protocol = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS)
        if hr != _SUCCESS:
            raise connect_error(hr, reader, "SCardConnect")
        return hcard, int(protocol)

    def _set_protocol(self, protocol: int) -> None:
        self.protocol = protocol
        self._pci = (
            scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        )

    def _read_atr(self) -> bytes:
        return _card_atr(self._hcard, self.name)

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def closed(self) -> bool:
        return self._hcard is None

    def transmit(self, apdu: bytes) -> bytes:
        hcard = self._hcard
        if hcard is None:
            raise TransportError(f"the connection to {self.name!r} is closed")
        hr, response = scard.SCardTransmit(hcard, self._pci, list(apdu))
        if hr != _SUCCESS:
            raise session_error(hr, self.name, "SCardTransmit")
        return bytes(response)

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
            if self._hcard is None:
                raise TransportError(f"the connection to {self.name!r} is closed")
            hr = scard.SCardBeginTransaction(self._hcard)
            if hr != _SUCCESS:
                raise session_error(hr, self.name, "SCardBeginTransaction")
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                if self._hcard is not None:
                    # A failure to end (card reset or removed meanwhile) shows on the next
                    # command; the work done inside the transaction stands.
                    scard.SCardEndTransaction(self._hcard, scard.SCARD_LEAVE_CARD)

    def reconnect(self, reader: str | None = None) -> None:
        """Reconnect after CardRemovedError, or move to another ``reader``.

        Tries SCardReconnect on the current handle first (the card stays as it is: no reset);
        when the handle, the reader or the service is gone, connects afresh (with a new
        context if needed). Raises CardNotPresentError / NoReaderError / NoServiceError while
        the card is away, leaving the transport reconnectable.
        """
        with self._lock:
            if self._depth:
                raise RuntimeError("cannot reconnect inside a transaction")
            target = self.name if reader is None else reader
            if target == self.name and self._hcard is not None:
                hr, protocol = scard.SCardReconnect(
                    self._hcard, scard.SCARD_SHARE_SHARED, _PROTOCOLS, scard.SCARD_LEAVE_CARD
                )
                if hr == _SUCCESS:
                    self._set_protocol(int(protocol))
                    self._atr = self._read_atr()
                    return
            self._disconnect()
            if self._ctx is None or scard.SCardIsValidContext(self._ctx) != _SUCCESS:
                if self._ctx is not None:
                    _release(self._ctx)
                    self._ctx = None
                self._ctx = _establish()
            if reader is not None:
                target = _choose_reader(self._ctx, reader)
            hcard, protocol = self._connect(self._ctx, target)
            self.name = target
            self._hcard = hcard
            self._set_protocol(protocol)
            self._atr = self._read_atr()

    def _disconnect(self) -> None:
        if self._hcard is not None:
            scard.SCardDisconnect(self._hcard, scard.SCARD_LEAVE_CARD)
            self._hcard = None

    def close(self) -> None:
        """Disconnect (leaving the card as it is) and release the context. Idempotent."""
        with self._lock:
            self._disconnect()
            if self._ctx is not None:
                _release(self._ctx)
                self._ctx = None

    def __enter__(self) -> PcscTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        t = 0 if self.protocol == scard.SCARD_PROTOCOL_T0 else 1
        state = "closed" if self._hcard is None else f"T={t}"
        return f"PcscTransport({self.name!r}, {state})"
