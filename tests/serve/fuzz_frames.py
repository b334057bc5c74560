"""Mutated p11-kit RPC frames for the fuzz tests of ``opcard serve`` (test_serve_fuzz.py,
test_serve_attacks.py): seeds, a deterministic mutator, and a check of every reply.

Seeds: the complete client frames recorded from p11-kit-client.so 0.24.1 (p11tool,
gnutls-cli, ssh-keygen, ssh-agent; data/p11kit-trace-frames.txt, taken from
shared/design/p11kit-traces), and well-formed requests for every call the server answers,
built with the test client's own encodings (serve_support) and live handles, so that
mutations reach the handlers behind the argument checks. Replies are checked against the
response signatures of p11-kit's rpc-message.h (serve_support.CALLS), not the server's table.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from serve_support import (
    BOOL_ATTRS,
    CALLS,
    HANDSHAKE,
    ULONG_ATTRS,
    RawClient,
    ay,
    byte_array,
    u32,
    u64,
)

from opcard.serve.wire import MAX_BODY, MAX_OPTIONS

TRACE_FRAMES = Path(__file__).parent / "data" / "p11kit-trace-frames.txt"
#: Response signatures by call id (rpc-message.h): the test client's table, plus the two
#: calls it does not make.
RESPONSES = {call: resp for call, (_name, _req, resp) in CALLS.items()}
RESPONSES |= {12: "", 63: ""}  # C_CloseAllSessions, C_SeedRandom
REQUESTS = {call: req for call, (_name, req, _resp) in CALLS.items()}
REQUESTS |= {12: "u", 63: "uay"}
#: Attribute types whose values are attribute arrays / mechanism arrays (pkcs11.h).
TEMPLATE_ATTRS = {0x40000211, 0x40000212, 0x40000213}
MECHANISM_ARRAY_ATTRS = {0x40000600}
INTERESTING_U32 = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF,
                   0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)  # fmt: skip
INTERESTING_BYTES = (0, 1, 0x7F, 0x80, 0xFF)


def trace_frames() -> list[tuple[int, bytes, bytes]]:
    """(message code, options, body) of every recorded frame."""
    out = []
    for line in TRACE_FRAMES.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        raw = bytes.fromhex(line.split()[1])
        code, options_length, body_length = struct.unpack(">III", raw[:12])
        options = raw[12 : 12 + options_length]
        body = raw[12 + options_length :]
        assert len(body) == body_length, line
        out.append((code, options, body))
    return out


def request(call: int, args: bytes = b"") -> bytes:
    signature = REQUESTS[call].encode()
    return u32(call) + byte_array(signature) + args


def mechanism(kind: int, version: int) -> bytes:
    return u32(kind) if version >= 2 else u32(kind) + byte_array(None)


@dataclass(frozen=True)
class Handles:
    """What the seeds refer to: a slot, an open session, key and certificate handles."""

    slot: int
    session: int
    sig_key: int
    dec_key: int
    aut_key: int
    certificate: int


def seed_bodies(h: Handles, version: int) -> list[bytes]:
    """A well-formed request for every call the server answers (and a few it refuses)."""
    s = u64(h.session)
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
    digest_info += hashlib.sha256(b"fuzz").digest()
    template = u32(2) + u32(0) + b"\x01" + u32(8) + u64(3) + u32(0x102) + b"\x01"
    template += u32(1) + byte_array(b"\x03")
    return [
        request(1, ay(HANDSHAKE) + b"\x00" + ay(b"\x00")),
        request(3),
        request(4, b"\x01" + u32(8)),
        request(4, b"\x00" + u32(0)),
        request(5, u64(h.slot)),
        request(6, u64(h.slot)),
        request(7, u64(h.slot) + b"\x01" + u32(32)),
        request(8, u64(h.slot) + u64(0x1)),
        request(10, u64(h.slot) + u64(0x6)),
        request(13, s),
        request(18, s + u64(1) + ay(b"123456")),
        request(23, s + u64(h.certificate)),
        request(
            24,
            s
            + u64(h.certificate)
            + u32(3)
            + u32(0x0)
            + u32(8)
            + u32(0x11)
            + u32(0)
            + u32(0x102)
            + u32(1),
        ),
        request(
            24,
            s
            + u64(h.aut_key)
            + u32(4)
            + u32(0x120)
            + u32(0)
            + u32(0x122)
            + u32(0)
            + u32(0x40000600)
            + u32(0)
            + u32(0x40000212)
            + u32(0),
        ),
        request(26, s + template),
        request(27, s + u32(16)),
        request(28, s),
        request(42, s + mechanism(0x1, version) + u64(h.aut_key)),  # CKM_RSA_PKCS
        request(43, s + ay(digest_info) + u32(512)),
        request(43, s + ay(digest_info) + u32(0)),
        request(42, s + mechanism(0x40, version) + u64(h.sig_key)),  # CKM_SHA256_RSA_PKCS
        request(44, s + ay(b"part one")),
        request(45, s + u32(512)),
        request(33, s + mechanism(0x1, version) + u64(h.dec_key)),
        request(34, s + ay(b"\x00" * 256) + u32(512)),
        request(62, s + mechanism(0x1050, version) + u64(h.dec_key) + template),
        request(64, s + u32(32)),
        request(63, s + ay(b"seed")),
        request(65, u64(1)),  # CKF_DONT_BLOCK
        request(22, s + u64(0x80000001)),
        request(11, s),
        request(12, u64(h.slot)),
        request(19, s),
        request(2),
        request(29, s + mechanism(0x1, version) + u64(h.aut_key)),  # refused: C_EncryptInit
        u32(200) + byte_array(b"u") + u64(1),  # an unknown call id
    ]


class Mutator:
    """Deterministic mutations of request bodies (``random.Random(seed)``)."""

    def __init__(self, seed: int, corpus: Sequence[bytes]) -> None:
        self.rng = random.Random(seed)
        self.corpus = list(corpus)
        self._ops: list[Callable[[bytearray], None]] = [
            self._flip_bit,
            self._set_byte,
            self._set_u32,
            self._set_u32,
            self._truncate,
            self._extend,
            self._delete,
            self._duplicate,
            self._splice,
            self._other_call,
        ]

    def mutate(self, body: bytes) -> bytes:
        data = bytearray(body)
        for _ in range(self.rng.choice((1, 1, 1, 1, 2, 3))):
            self.rng.choice(self._ops)(data)
        return bytes(data)

    def next(self) -> bytes:
        """A mutation of a random seed (one in 8 unchanged: the conversation goes on)."""
        body = self.rng.choice(self.corpus)
        if self.rng.randrange(8) == 0:
            return body
        return self.mutate(body)

    def _pos(self, data: bytearray) -> int:
        return self.rng.randrange(len(data)) if data else 0

    def _flip_bit(self, data: bytearray) -> None:
        if data:
            data[self._pos(data)] ^= 1 << self.rng.randrange(8)

    def _set_byte(self, data: bytearray) -> None:
        if data:
            data[self._pos(data)] = self.rng.choice(INTERESTING_BYTES)

    def _set_u32(self, data: bytearray) -> None:
        if len(data) < 4:
            return
        value = self.rng.choice((*INTERESTING_U32, len(data), len(data) + 1, len(data) - 1))
        at = self.rng.randrange(len(data) - 3)
        data[at : at + 4] = struct.pack(">I", value & 0xFFFFFFFF)

    def _truncate(self, data: bytearray) -> None:
        del data[self._pos(data) :]

    def _extend(self, data: bytearray) -> None:
        data += self.rng.randbytes(self.rng.choice((1, 4, 8, 64)))

    def _delete(self, data: bytearray) -> None:
        if data:
            at = self._pos(data)
            del data[at : at + self.rng.randrange(1, 9)]

    def _duplicate(self, data: bytearray) -> None:
        if data:
            at = self._pos(data)
            data[at:at] = data[at : at + self.rng.randrange(1, 17)]

    def _splice(self, data: bytearray) -> None:
        other = self.rng.choice(self.corpus)
        cut = self._pos(data)
        data[cut:] = other[self.rng.randrange(len(other) + 1) :]

    def _other_call(self, data: bytearray) -> None:
        """Another call's id and signature in front of this call's arguments."""
        if len(data) < 8:
            return
        (n,) = struct.unpack(">I", data[4:8])
        args = data[8 + n :] if n <= len(data) - 8 else data[8:]
        call = self.rng.choice(sorted(REQUESTS))
        data[:] = request(call) + args


class ReplyError(AssertionError):
    pass


class _Walk:
    def __init__(self, data: bytes) -> None:
        self.data, self.o = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.o + n > len(self.data):
            raise ReplyError(f"reply truncated: {n} bytes wanted at {self.o} of {len(self.data)}")
        chunk = self.data[self.o : self.o + n]
        self.o += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def barr(self, *, null_ok: bool = True) -> bytes | None:
        n = self.u32()
        if n == 0xFFFFFFFF:
            if not null_ok:
                raise ReplyError("NULL string")
            return None
        return self.take(n)

    def attrs(self, depth: int = 0) -> None:
        if depth > 8:
            raise ReplyError("attribute arrays nested too deep")
        for _ in range(self.u32()):
            kind = self.u32()
            if not self.take(1)[0]:
                continue
            self.u32()  # the value's length
            if kind in BOOL_ATTRS:
                self.take(1)
            elif kind in ULONG_ATTRS:
                self.take(8)
            elif kind in TEMPLATE_ATTRS:
                self.attrs(depth + 1)
            elif kind in MECHANISM_ARRAY_ATTRS:
                self.take(8 * self.u32())
            else:
                self.barr()

    def values(self, signature: str) -> None:
        i = 0
        while i < len(signature):
            pair = signature[i : i + 2]
            if pair == "ay":
                if self.take(1)[0]:
                    self.barr()
                else:
                    self.u32()
                i += 2
            elif pair == "au":
                valid = self.take(1)[0]
                count = self.u32()
                if valid:
                    self.take(8 * count)
                i += 2
            elif pair == "aA":
                self.attrs()
                i += 2
            else:
                c = signature[i]
                i += 1
                if c == "y":
                    self.take(1)
                elif c == "u":
                    self.take(8)
                elif c == "v":
                    self.take(2)
                elif c in "sz":
                    self.barr(null_ok=False)
                else:
                    raise ReplyError(f"unexpected type {c!r} in reply signature {signature!r}")
        if self.o != len(self.data):
            raise ReplyError(f"{len(self.data) - self.o} trailing bytes in the reply")


def check_reply(request_body: bytes, reply: bytes) -> int | None:
    """Raise :class:`ReplyError` unless ``reply`` is a well-formed answer to the request:
    an error reply (call 0, ``u``, the CK_RV) or the call's own reply with the response
    signature of rpc-message.h and exactly the values it announces. Returns the CK_RV of an
    error reply, None for a call's reply."""
    w = _Walk(reply)
    call = w.u32()
    signature = w.barr()
    if signature is None:
        raise ReplyError("reply without a signature")
    if call == 0:
        if signature != b"u":
            raise ReplyError(f"error reply with signature {signature!r}")
        rv = int(struct.unpack(">Q", w.take(8))[0])
        if w.o != len(reply):
            raise ReplyError("trailing bytes after an error reply")
        if rv == 0:
            raise ReplyError("an error reply with CKR_OK")
        return rv
    (asked,) = struct.unpack(">I", request_body[:4])
    if call != asked:
        raise ReplyError(f"reply for call {call} to a request for call {asked}")
    expected = RESPONSES.get(call)
    if expected is None:
        raise ReplyError(f"call {call} answered, but it is not served")
    if signature.decode(errors="replace") != expected:
        raise ReplyError(f"call {call}: reply signature {signature!r}, not {expected!r}")
    if "P" not in expected:  # C_DeriveKey2's parameter update: not walked here
        w.values(expected)
    return None


def frame(code: int, body: bytes, options: bytes = b"client") -> bytes:
    return struct.pack(">III", code, len(options), len(body)) + options + body


def vm_rss(pid: int | str = "self") -> int:
    """A process's resident memory in bytes (/proc/PID/status VmRSS)."""
    return proc_status(pid)["VmRSS"] * 1024


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The numeric fields of /proc/PID/status (VmRSS in kB, Threads …)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            first = value.split()[:1]
            if first and first[0].isdigit():
                out[key] = int(first[0])
    return out


def live_handles(path: str | os.PathLike[str], slot: int) -> Handles:
    """Handles of the card in ``slot`` (its three private keys, the AUT certificate) and a
    session of a connection that is closed again (so: an invalid one, for the seeds)."""
    with RawClient(path) as c:
        c.initialize()
        session = c.open(slot)

        def one(cls: int, key_id: int) -> int:
            found = c.find(session, {0x0: cls, 0x102: bytes((key_id,))})  # CKA_CLASS, CKA_ID
            assert len(found) == 1, found
            return found[0]

        return Handles(slot, session, one(3, 1), one(3, 2), one(3, 3), one(1, 3))


def read_frame(sock: socket.socket, timeout: float = 10.0) -> tuple[int, bytes] | None:
    """The next reply (code, body), or None when the server closed the connection."""
    sock.settimeout(timeout)

    def exact(n: int) -> bytes | None:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = sock.recv(n - len(out))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            out += chunk
        return bytes(out)

    header = exact(12)
    if header is None:
        return None
    code, options_length, body_length = struct.unpack(">III", header)
    assert options_length == 0 and body_length < 2 << 20, (options_length, body_length)
    body = exact(body_length)
    assert body is not None, "the server closed the connection inside a reply"
    return code, body


def fuzz_socket(path: str | os.PathLike[str], h: Handles, count: int, seed: int) -> Counter[str]:
    """``count`` mutated frames through the server's socket, one at a time, connections of
    every protocol version (a new one whenever the server closes one); one frame in 50 has a
    header over the bounds (MAX_BODY + 1, MAX_OPTIONS + 1, 2 GiB) and must be refused.
    Each frame gets a well-formed reply with its message code, or the connection closed.
    Prints the figures; returns the outcomes."""
    traces = [body for _code, _options, body in trace_frames()]
    mutator = Mutator(seed, [])
    outcomes: Counter[str] = Counter()
    client: RawClient | None = None
    code = 0
    started = time.perf_counter()
    for i in range(count):
        if client is None:
            version = i % 3
            client = RawClient(path, version)
            client.initialize()
            session = client.open(h.slot)
            live = Handles(h.slot, session, h.sig_key, h.dec_key, h.aut_key, h.certificate)
            mutator.corpus = seed_bodies(live, version) + traces
        sock = client.sock
        body = mutator.next()
        if body[:4] == struct.pack(">I", 65) and not (len(body) >= 16 and body[15] & 1):
            body = mutator.corpus[3]  # a blocking C_WaitForSlotEvent would wait for an event
        code = (code + 1) & 0xFFFFFFFF
        oversized = mutator.rng.randrange(50) == 0
        if oversized:  # a header the server refuses before reading on
            big = mutator.rng.choice(((0, MAX_BODY + 1), (MAX_OPTIONS + 1, 0), (0, 1 << 31)))
            sock.sendall(struct.pack(">III", code, big[0], big[1] + len(body)) + body)
        else:
            sock.sendall(frame(code, body))
        reply = read_frame(sock)
        if reply is None:
            outcomes["closed"] += 1
            client.close()
            client = None
            continue
        assert not oversized, "a frame over the bounds was answered"
        got, reply_body = reply
        assert got == code, "the reply must carry the request's message code"
        try:
            rv = check_reply(body, reply_body)
        except ReplyError as e:
            raise AssertionError(f"frame body {body.hex()}: {e}\nreply {reply_body.hex()}") from e
        outcomes["answered" if rv is None else "error reply"] += 1
    elapsed = time.perf_counter() - started
    if client is not None:
        client.close()
    print(
        f"\nfuzz through the socket: {count} frames in {elapsed:.1f} s "
        f"({count / elapsed:.0f}/s); {dict(outcomes)}"
    )
    return outcomes
