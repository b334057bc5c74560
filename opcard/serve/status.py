"""Is a daemon serving on a socket, and which cards (``opcard serve --status``).

A client of p11-kit's RPC protocol as small as it can be: the version byte, C_Initialize,
C_GetSlotList(tokenPresent), C_GetTokenInfo for each slot, C_Finalize — nothing that touches
a card's keys or logins. (The daemon answers from what it holds; the first C_GetTokenInfo of
a card reads a few data objects, which it then keeps.)
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from opcard.serve.errors import FrameError, SocketError
from opcard.serve.wire import HANDSHAKE, HEADER, Call, Reader, Writer

__all__ = ["DaemonStatus", "ServedToken", "query"]

#: Seconds the whole query may take (a daemon answers these calls from memory).
TIMEOUT = 5.0


@dataclass(frozen=True)
class ServedToken:
    slot: int
    label: str
    manufacturer: str
    model: str
    serial: str


@dataclass(frozen=True)
class DaemonStatus:
    path: Path
    version: int
    tokens: list[ServedToken]


class _Conversation:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.code = 0

    def recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise SocketError("the daemon closed the connection")
            data += chunk
        return bytes(data)

    def call(self, request: Writer, call: Call) -> Reader:
        self.code += 1
        body = request.getvalue()
        self.sock.sendall(HEADER.pack(self.code, 0, len(body)) + body, socket.MSG_NOSIGNAL)
        code, options, length = HEADER.unpack(self.recv(HEADER.size))
        if code != self.code or options > 4096 or length > 1024 * 1024:
            raise SocketError("the daemon's reply is not p11-kit's RPC")
        self.recv(options)
        reader = Reader(self.recv(length))
        answered = reader.u32()
        reader.byte_array()  # the reply's signature
        if answered == Call.ERROR:
            raise SocketError(f"{call.function} failed: CK_RV {reader.ulong():#x}")
        if answered != call:
            raise SocketError("the daemon answered another call")
        return reader


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").rstrip(" ")


def query(path: Path, timeout: float = TIMEOUT) -> DaemonStatus:
    """Ask the daemon on ``path`` for its tokens. :class:`SocketError` when nothing serves
    there (no socket, nobody listening, not the RPC protocol)."""
    if not path.exists():
        raise SocketError(f"no daemon is serving on {path} (no socket there)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(os.fspath(path))
        except OSError as e:
            raise SocketError(f"no daemon is serving on {path} ({e.strerror or e})") from e
        conv = _Conversation(sock)
        sock.sendall(b"\x00", socket.MSG_NOSIGNAL)  # version 0: every p11-kit speaks it
        version = conv.recv(1)[0]
        conv.call(
            Writer(Call.INITIALIZE, "ayyay")
            .array_of_bytes(HANDSHAKE)
            .byte(0)
            .array_of_bytes(b"\0"),
            Call.INITIALIZE,
        )
        r = conv.call(Writer(Call.GET_SLOT_LIST, "yfu").byte(1).u32(64), Call.GET_SLOT_LIST)
        slots = [r.ulong() for _ in range(r.u32())] if r.byte() else []
        tokens = []
        for slot in slots:
            t = conv.call(Writer(Call.GET_TOKEN_INFO, "u").ulong(slot), Call.GET_TOKEN_INFO)
            label, manufacturer, model, serial = (_text(t.string()) for _ in range(4))
            tokens.append(ServedToken(slot, label, manufacturer, model, serial))
        with contextlib.suppress(SocketError, OSError):
            conv.call(Writer(Call.FINALIZE, ""), Call.FINALIZE)
        return DaemonStatus(path, version, tokens)
    except TimeoutError as e:
        raise SocketError(f"the daemon on {path} did not answer within {timeout:g} s") from e
    except FrameError as e:
        raise SocketError(f"the answer on {path} is not p11-kit's RPC ({e})") from e
    except OSError as e:
        raise SocketError(f"cannot ask the daemon on {path}: {e}") from e
    finally:
        sock.close()
