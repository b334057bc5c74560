"""The channel to a card: framing, command and response chaining, status words, reconnects.

A :class:`Channel` turns a :class:`~apdu.command.Command` into the APDUs the card can take and
the card's answers back into data or an exception:

- **Length form.** Short APDUs unless :attr:`Framing.extended` is set *and* the command needs
  more than a short APDU carries (more than 255 data bytes, or an expected length above 256 —
  ``le=0``, "everything", counts as :attr:`Framing.max_response`). Lc per APDU is bounded by
  :attr:`Framing.max_command`, Ne by :attr:`Framing.max_response`.
- **Command chaining** (ISO 7816-4 §5.1.1.1): data longer than one APDU is split into blocks of
  at most ``max_command`` bytes (255 for short APDUs); every block but the last carries
  CLA | 0x10 and no Le. A status other than 9000 on an intermediate block ends the chain and
  is the answer.
- **Response chaining**: 61xx is followed with GET RESPONSE (``00 C0 00 00 xx``, Le 00 for 6100)
  and the pieces are concatenated; 6Cxx resends the same APDU once with Le = xx (a GET RESPONSE
  answered 6Cxx is resent the same way). Both loops are bounded: at most
  :data:`MAX_GET_RESPONSE` GET RESPONSE rounds and :data:`MAX_RESPONSE_TOTAL` bytes, a second
  6Cxx in a row is refused; each bound raises :class:`~apdu.errors.ChainingError`.
- **More data than asked**: accepted (several real cards do it) and noted on the
  ``apdu.channel`` logger at DEBUG; the total bound still applies. A response shorter than a
  status word raises :class:`~apdu.errors.MalformedResponseError`.
- **Status words**: :meth:`Channel.send` returns the data of a 9000 answer and raises
  :func:`~apdu.errors.error_for_status` for any other final status; :meth:`Channel.send_raw`
  returns the :class:`~apdu.command.Response` whatever its status.
- **Transactions**: :meth:`Channel.transaction` holds a PC/SC transaction (re-entrant: inner
  levels are free). A ``send`` outside any transaction opens one for itself (unless
  ``auto_transaction=False``), so that its chain of APDUs cannot interleave with another
  process's; several sends in one ``with channel.transaction():`` cost one.
- **Reconnects**: when the transport reports :class:`~apdu.errors.CardRemovedError` (card
  removed, reset by someone else, reader or service gone) the error reaches the caller and the
  channel becomes *stale*. The next transaction (or send outside one) reconnects the transport
  and calls ``on_reconnect`` (the applet re-selects itself) before anything else. Inside the
  transaction that saw the loss, every further send raises CardRemovedError again.

The channel is thread-safe: a re-entrant lock serialises its users.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apdu._enums import IntEnumBody, fast_enum
from apdu.command import EXTENDED_MAX, SHORT_MAX, Command, Response
from apdu.errors import (
    CardRemovedError,
    ChainingError,
    MalformedResponseError,
    Sw,
    Sw1,
    error_for_status,
)
from apdu.log import emit as _log_line
from apdu.log import enabled as _traffic_enabled
from apdu.log import format_command, format_response, note
from apdu.record import Record

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from apdu.transport import Transport

__all__ = [
    "MAX_GET_RESPONSE",
    "MAX_RESPONSE_TOTAL",
    "Channel",
    "Framing",
    "IsoIns",
    "encode",
]

#: Largest answer (all GET RESPONSE pieces together) the channel accepts, in bytes.
MAX_RESPONSE_TOTAL = EXTENDED_MAX
#: Most GET RESPONSE commands sent for one command: a full 64 KiB in 256-byte pieces, plus
#: room for cards that hand out smaller pieces.
MAX_GET_RESPONSE = MAX_RESPONSE_TOTAL // SHORT_MAX + 44


@fast_enum
class IsoIns(IntEnumBody):
    """ISO 7816-4 instructions the channel sends by itself."""

    GET_RESPONSE = 0xC0


_CHAINING_BIT = 0x10
_SHORT_LC_MAX = SHORT_MAX - 1
_EXTENDED_LC_MAX = EXTENDED_MAX - 1
# the status words the channel acts on, as plain ints (compared for every response)
_OK = Sw.OK.value
_MORE = Sw1.MORE_DATA.value
_WRONG_LE = Sw1.WRONG_LE.value
_GET_RESPONSE_HEADER = bytes((0x00, IsoIns.GET_RESPONSE.value, 0x00, 0x00))


class Framing(Record):
    """What the card accepts: length forms, chaining and the per-APDU limits.

    The defaults suit any card (short APDUs, chaining); the OpenPGP applet replaces them with
    what the card declares in its historical bytes and in 7F66.
    """

    #: Extended Lc/Le allowed.
    extended: bool = False
    #: Command chaining (CLA | 0x10) allowed.
    chaining: bool = True
    #: Largest Lc per APDU (capped at 255 for short APDUs).
    max_command: int = _SHORT_LC_MAX
    #: Largest Ne per APDU (capped at 256 for short APDUs).
    max_response: int = SHORT_MAX

    def __post_init__(self) -> None:
        if not 1 <= self.max_command <= _EXTENDED_LC_MAX:
            raise ValueError(f"max_command must be 1..{_EXTENDED_LC_MAX}, got {self.max_command}")
        if not 1 <= self.max_response <= EXTENDED_MAX:
            raise ValueError(f"max_response must be 1..{EXTENDED_MAX}, got {self.max_response}")

    @property
    def command_block(self) -> int:
        """Data bytes per APDU: ``max_command`` within the chosen length form."""
        return min(self.max_command, _EXTENDED_LC_MAX if self.extended else _SHORT_LC_MAX)

    @property
    def response_block(self) -> int:
        """Ne asked for by ``le=0``: ``max_response`` within the chosen length form."""
        return min(self.max_response, EXTENDED_MAX if self.extended else SHORT_MAX)


#: The framing any card takes (the default of a new channel).
_ANY_CARD = Framing()


def encode(header: bytes, data: bytes, ne: int | None, extended: bool) -> bytes:
    """The wire bytes of one APDU (ISO 7816-4 §5.1, cases 1 to 4, short or extended).

    The extended form is used only when ``extended`` is allowed and needed: more than 255 data
    bytes or ``ne`` above 256. ``ne`` is the expected length 1..65536 (None: no Le field).
    """
    n = len(data)
    if extended and (n > _SHORT_LC_MAX or (ne is not None and ne > SHORT_MAX)):
        if n:
            out = header + b"\x00" + n.to_bytes(2, "big") + data
            if ne is not None:
                out += (ne & 0xFFFF).to_bytes(2, "big")
            return out
        return header + b"\x00" + ((ne or 0) & 0xFFFF).to_bytes(2, "big")
    if n > _SHORT_LC_MAX:
        raise ValueError(f"{n} data bytes do not fit a short APDU")
    out = header + bytes((n,)) + data if n else header
    if ne is not None:
        if ne > SHORT_MAX:
            raise ValueError(f"Ne {ne} does not fit a short APDU")
        out += bytes((ne & 0xFF,))
    return out


class Channel:
    """Sends commands to a card over a transport, with framing, chaining and error mapping."""

    def __init__(
        self,
        transport: Transport,
        framing: Framing = _ANY_CARD,
        *,
        on_reconnect: Callable[[], None] | None = None,
        auto_transaction: bool = True,
        max_response_total: int = MAX_RESPONSE_TOTAL,
        max_get_response: int = MAX_GET_RESPONSE,
    ) -> None:
        self.transport = transport
        self.framing = framing
        #: Called inside the first transaction after a reconnect (the applet re-selects).
        self.on_reconnect = on_reconnect
        #: Wrap a ``send`` made outside any transaction in a transaction of its own.
        self.auto_transaction = auto_transaction
        self.max_response_total = max_response_total
        self.max_get_response = max_get_response
        #: APDUs transmitted (chained blocks, GET RESPONSE and resends included).
        self.apdu_count = 0
        #: Successful reconnects of the transport.
        self.reconnects = 0
        self._stale = False
        self._reselect = False
        self._depth = 0
        self._lock = threading.RLock()

    # -- framing ----------------------------------------------------------------------------

    @property
    def framing(self) -> Framing:
        return self._framing

    @framing.setter
    def framing(self, framing: Framing) -> None:
        self._framing = framing
        self._extended = framing.extended
        self._block = framing.command_block
        self._ne_max = framing.response_block

    @property
    def stale(self) -> bool:
        """The connection was lost; the next transaction reconnects."""
        return self._stale

    def invalidate(self) -> None:
        """Mark the connection lost: the next transaction reconnects and re-selects."""
        with self._lock:
            self._stale = True

    # -- sending ----------------------------------------------------------------------------

    def send(self, cmd: Command) -> bytes:
        """Send ``cmd``; return the response data of a 9000 answer, raise for anything else.

        Raises :class:`~apdu.errors.CardStatusError` subclasses for status words,
        :class:`~apdu.errors.ProtocolError` for broken answers and
        :class:`~apdu.errors.TransportError` for the connection.
        """
        data, sw = self._guarded(cmd)
        if sw != _OK:
            raise error_for_status(sw, data)
        return data

    def send_atomic(self, cmd: Command) -> bytes:
        """Like :meth:`send`, but without a PC/SC transaction when ``cmd`` fits one APDU.

        One SCardTransmit is atomic in the PC/SC service, so a single-APDU command cannot
        interleave with another process; skipping SCardBeginTransaction/EndTransaction saves
        two service round trips per call (the signature hot path). A command that needs
        chaining, a stale channel or a call inside a transaction take the :meth:`send` path.
        (A card that still answers 61xx sends the GET RESPONSEs right after, outside a
        transaction.)
        """
        if self._depth or self._stale or len(cmd.data) > self._block:
            return self.send(cmd)
        with self._lock:
            data, sw = self._exchange(cmd)
        if sw != _OK:
            raise error_for_status(sw, data)
        return data

    def send_raw(self, cmd: Command) -> Response:
        """Send ``cmd`` like :meth:`send` but return the final response whatever its status."""
        data, sw = self._guarded(cmd)
        return Response(data, sw)

    def _guarded(self, cmd: Command) -> tuple[bytes, int]:
        with self._lock:
            if self._depth:
                if self._stale:
                    raise CardRemovedError(
                        f"the card in {self.transport.name!r} was removed or reset during this "
                        "transaction; end it and start a new one to reconnect"
                    )
                return self._exchange(cmd)
            if self.auto_transaction or self._stale:
                with self.transaction():
                    return self._exchange(cmd)
            return self._exchange(cmd)

    def _exchange(self, cmd: Command) -> tuple[bytes, int]:
        data = cmd.data
        ne = cmd.le
        if ne is not None and (ne == 0 or ne > self._ne_max):
            ne = self._ne_max
        header = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2))
        sensitive = cmd.sensitive
        extended = self._extended
        if len(data) > self._block:
            data, refused = self._send_chain(cmd, sensitive)
            if refused is not None:
                return refused
        wire = encode(header, data, ne, extended)
        raw = self._transmit(wire, len(data), sensitive)
        if len(raw) - 2 > (ne or 0):
            self._note_extra(len(raw) - 2, ne)
        sw1 = raw[-2]
        if sw1 == _WRONG_LE:
            ne = raw[-1] or SHORT_MAX
            raw = self._transmit(encode(header, data, ne, extended), len(data), sensitive)
            sw1 = raw[-2]
            if sw1 == _WRONG_LE:
                raise ChainingError(
                    f"the card answered {raw[-2:].hex().upper()} to a resend with the Le it "
                    f"asked for ({ne}); giving up"
                )
        if sw1 == _MORE:
            return self._get_response(raw, sensitive)
        if len(raw) - 2 > self.max_response_total:
            raise ChainingError(
                f"response of {len(raw) - 2} bytes exceeds {self.max_response_total}"
            )
        return raw[:-2], (sw1 << 8) | raw[-1]

    def _send_chain(self, cmd: Command, sensitive: bool) -> tuple[bytes, tuple[bytes, int] | None]:
        """Send every block of a command chain but the last.

        Returns the last block's data, and the card's answer when it refused a block (then the
        chain stops there and that answer is the command's answer).
        """
        if not self._framing.chaining:
            raise ValueError(
                f"{len(cmd.data)} data bytes need command chaining or a larger max_command "
                f"({self._block}), and the card supports neither"
            )
        block = self._block
        data = cmd.data
        header = bytes((cmd.cla | _CHAINING_BIT, cmd.ins, cmd.p1, cmd.p2))
        pos = 0
        while len(data) - pos > block:
            chunk = data[pos : pos + block]
            pos += block
            raw = self._transmit(encode(header, chunk, None, self._extended), block, sensitive)
            sw = (raw[-2] << 8) | raw[-1]
            if sw != _OK:
                return b"", (raw[:-2], sw)
        return data[pos:], None

    def _get_response(self, first: bytes, sensitive: bool) -> tuple[bytes, int]:
        """Follow 61xx with GET RESPONSE until another status, within the bounds."""
        parts = [first[:-2]]
        total = len(parts[0])
        sw1, sw2 = first[-2], first[-1]
        rounds = 0
        if total > self.max_response_total:
            raise ChainingError(f"response of {total} bytes exceeds {self.max_response_total}")
        while sw1 == _MORE:
            if rounds >= self.max_get_response:
                raise ChainingError(
                    f"the card still answered {sw1:02X}{sw2:02X} after {rounds} GET RESPONSE "
                    f"commands ({total} bytes received); giving up"
                )
            rounds += 1
            ne = sw2 or SHORT_MAX
            raw = self._transmit(_GET_RESPONSE_HEADER + bytes((sw2,)), 0, sensitive)
            if raw[-2] == _WRONG_LE:
                ne = raw[-1] or SHORT_MAX
                raw = self._transmit(_GET_RESPONSE_HEADER + raw[-1:], 0, sensitive)
                if raw[-2] == _WRONG_LE:
                    raise ChainingError(
                        f"the card answered {raw[-2:].hex().upper()} to GET RESPONSE twice in "
                        "a row; giving up"
                    )
            piece = raw[:-2]
            if len(piece) > ne:
                self._note_extra(len(piece), ne)
            total += len(piece)
            if total > self.max_response_total:
                raise ChainingError(
                    f"response chaining exceeded {self.max_response_total} bytes "
                    f"after {rounds} GET RESPONSE commands; giving up"
                )
            parts.append(piece)
            sw1, sw2 = raw[-2], raw[-1]
        return b"".join(parts), (sw1 << 8) | sw2

    def _transmit(self, wire: bytes, data_len: int, sensitive: bool) -> bytes:
        """One APDU through the transport; the only place that calls ``transmit``."""
        log = _traffic_enabled()
        t0 = 0.0
        if log:
            start = 7 if data_len and wire[4] == 0 else 5
            _log_line(format_command(wire, start, data_len, sensitive))
            t0 = time.perf_counter()
        try:
            raw = self.transport.transmit(wire)
        except CardRemovedError:
            self._stale = True
            raise
        self.apdu_count += 1
        if log:
            _log_line(format_response(raw, sensitive, time.perf_counter() - t0))
        if len(raw) < 2:
            raise MalformedResponseError(
                f"response of {len(raw)} byte(s) has no status word (to {wire[:4].hex().upper()})"
            )
        return raw

    def _note_extra(self, n: int, ne: int | None) -> None:
        note("card answered %d data bytes where Ne was %s", n, ne or 0)

    # -- transactions and reconnects --------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One PC/SC transaction (re-entrant: nested uses cost nothing).

        After a lost connection, the outermost level reconnects the transport first and calls
        ``on_reconnect`` inside the new transaction, before the body runs.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self._stale:
                self._reconnect()
            try:
                with self.transport.transaction():
                    self._depth = 1
                    try:
                        if self._reselect:
                            self._run_on_reconnect()
                        yield
                    finally:
                        self._depth = 0
            except CardRemovedError:
                self._stale = True
                raise

    def reconnect(self) -> None:
        """Reconnect now (and re-select through ``on_reconnect``), whatever the state."""
        with self._lock:
            if self._depth:
                raise RuntimeError("cannot reconnect inside a transaction")
            self._stale = True
            with self.transaction():
                pass

    def _reconnect(self) -> None:
        self.transport.reconnect()  # raises while the card is away: the channel stays stale
        self._stale = False
        self.reconnects += 1
        self._reselect = self.on_reconnect is not None

    def _run_on_reconnect(self) -> None:
        callback = self.on_reconnect
        self._reselect = False
        if callback is None:
            return
        try:
            callback()
        except BaseException:
            self._reselect = True
            raise

    def __repr__(self) -> str:
        state = " stale" if self._stale else ""
        return f"Channel({self.transport.name!r}, {self._framing}{state})"
