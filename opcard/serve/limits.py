"""What ``opcard serve`` allows its clients: connections, time and memory (docs/serve.md,
*Security*). Every limit is here, with its reason; :class:`Limits` carries them to the
:class:`~opcard.serve.server.Server` (``opcard serve`` sets some from its options, the tests
shorten the times).

The threat is a process of the daemon's own user (SO_PEERCRED keeps every other uid out)
that misbehaves — by bug or on purpose — and would otherwise lock the other applications out
or grow the daemon without bound. What matters is that a well-behaved client always gets
through: idle and slow connections give way when places run out, no process holds more than
its share of places, and the memory all connections can make the daemon hold is bounded.
The frame-size bounds themselves are in :mod:`opcard.serve.wire` (``MAX_BODY``,
``MAX_OPTIONS``)."""

from __future__ import annotations

from apdu.record import Record
from opcard.serve.wire import MAX_BODY

__all__ = [
    "FRAME_BUDGET",
    "FRAME_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "IDLE_TIMEOUT",
    "Limits",
    "MAX_CONNECTIONS",
    "MAX_PER_PROCESS",
    "SEND_TIMEOUT",
    "SLOW_AFTER",
    "SMALL_FRAME",
]

#: Connections served at once. A p11-kit client keeps one connection per application for the
#: application's life (ssh-agent, Firefox, a shell's gnutls-cli), so a desktop needs a handful;
#: each costs a thread. When the table is full a new connection takes the place of an idle or
#: slow one (see :class:`~opcard.serve.server.Server`), and is refused only when every place is
#: in a call or in C_WaitForSlotEvent.
MAX_CONNECTIONS = 64
#: Connections one peer process (SO_PEERCRED pid) may hold at once: a quarter of the table, so
#: that one process cannot take every place. p11-kit's client opens one connection per
#: C_Initialize; 16 is far above any application's need. A process at its limit that connects
#: again gives up its own idlest connection (or is refused when all of them are busy).
MAX_PER_PROCESS = 16
#: Seconds a new connection has to send its version byte (p11-kit's client sends it at once).
HANDSHAKE_TIMEOUT = 5.0
#: Seconds a frame has from its first byte to its last. p11-kit's client writes each frame in
#: one go: over a Unix socket even a frame of MAX_BODY (1 MiB) takes milliseconds. A client
#: trickling a frame (slowloris) is disconnected after this time, whatever its rate.
FRAME_TIMEOUT = 10.0
#: Seconds a connection may stay without a call before it is closed; None: never. Off by
#: default, because p11-kit's client keeps its connection for the application's whole life (a
#: closed connection makes the application's next call fail); idle connections are instead
#: among the first to give way when places run out.
IDLE_TIMEOUT: float | None = None
#: Seconds a reply may wait for the client to read it: a client that sends calls and never
#: reads the answers would otherwise hold its thread (and the reply) forever.
SEND_TIMEOUT = 30.0
#: A connection whose version byte or frame has been on its way for longer than this is slow:
#: it gives way before idle connections when places run out. (A frame younger than this is
#: about to become a call and is never evicted.)
SLOW_AFTER = 1.0
#: Frames with a body up to this size are read without drawing on :data:`FRAME_BUDGET`: every
#: call but a large single-part C_Sign/C_SignUpdate of hashed data (the largest template, one
#: holding a certificate, is under 64 KiB: an OpenPGP card's certificate DO is at most 65535
#: bytes and in practice a few KiB). At most MAX_CONNECTIONS x 64 KiB = 4 MiB: so a client
#: with ordinary calls never waits for memory.
SMALL_FRAME = 64 * 1024
#: Bytes of larger frames (above SMALL_FRAME, up to MAX_BODY each) the daemon buffers at once,
#: over all connections: 8 frames of the largest size. A frame that does not fit waits (without
#: being read) until others are done, or until its FRAME_TIMEOUT. Together with the small
#: frames, the daemon never holds more than 12 MiB of request bytes.
FRAME_BUDGET = 8 * 1024 * 1024


#: The longest timeout a server takes (a year): a socket's timeout must fit the platform's
#: time_t (``settimeout(1e300)`` raises OverflowError in the connection's thread).
MAX_TIMEOUT = 365 * 24 * 3600.0


class Limits(Record):
    """The limits of one server (defaults: the constants above)."""

    max_connections: int = MAX_CONNECTIONS
    max_per_process: int = MAX_PER_PROCESS
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    frame_timeout: float = FRAME_TIMEOUT
    idle_timeout: float | None = IDLE_TIMEOUT
    send_timeout: float = SEND_TIMEOUT
    slow_after: float = SLOW_AFTER
    small_frame: int = SMALL_FRAME
    frame_budget: int = FRAME_BUDGET

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections}")
        if not 1 <= self.max_per_process <= self.max_connections:
            raise ValueError(
                f"max_per_process must be between 1 and max_connections "
                f"({self.max_connections}), not {self.max_per_process}"
            )
        for name in ("handshake_timeout", "frame_timeout", "send_timeout"):
            if not 0 < getattr(self, name) <= MAX_TIMEOUT:
                raise ValueError(
                    f"{name} must be positive and at most {MAX_TIMEOUT:g}, not "
                    f"{getattr(self, name)}"
                )
        if self.idle_timeout is not None and not 0 < self.idle_timeout <= MAX_TIMEOUT:
            raise ValueError(
                f"idle_timeout must be positive and at most {MAX_TIMEOUT:g} (or None), not "
                f"{self.idle_timeout}"
            )
        if self.slow_after < 0:
            raise ValueError(f"slow_after must not be negative, not {self.slow_after}")
        if not 0 <= self.small_frame <= MAX_BODY:
            raise ValueError(f"small_frame must be between 0 and {MAX_BODY}")
        if self.frame_budget < MAX_BODY:
            raise ValueError(
                f"frame_budget must hold at least one frame of MAX_BODY ({MAX_BODY} bytes), "
                f"not {self.frame_budget}"
            )
