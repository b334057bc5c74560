"""The limits of ``opcard serve`` (opcard.serve.limits) one by one, in process with short
times: the version byte and every frame against a deadline (slowloris), idle connections kept
unless an idle timeout is set, places per process and per server with the idlest or slowest
connection giving way — never one in C_WaitForSlotEvent —, frames bounded before they are
read, large frames drawing on a shared budget, and replies the client does not read.
The same attacks on the ``opcard serve`` process with real clients: test_serve_attacks.py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from serve_support import RawClient, Served, ay, byte_array, captured_log, u32, u64

from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass
from opcard.serve.limits import Limits
from opcard.serve.wire import MAX_BODY

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def connect(s: Served, version: int = 0) -> RawClient:
    c = RawClient(s.path, version)
    c.initialize()
    return c


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading and dropping what it sends), None
    when it did not within ``timeout``."""
    start = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - start < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


def is_open(c: RawClient) -> bool:
    try:
        return c.slots() != []
    except (EOFError, OSError):
        return False


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


SHORT = Limits(handshake_timeout=0.5, frame_timeout=0.6, slow_after=0.2, send_timeout=0.5)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_per_process"):
        Limits(max_connections=4, max_per_process=5)
    with pytest.raises(ValueError, match="frame_budget"):
        Limits(frame_budget=MAX_BODY - 1)
    with pytest.raises(ValueError, match="frame_timeout"):
        Limits(frame_timeout=0)


def test_slowloris_is_cut_at_the_frame_timeout(served: Callable[..., Served]) -> None:
    s = served(limits=SHORT)
    with connect(s) as good, connect(s) as header, connect(s) as body:
        frame = struct.pack(">III", 1, 0, 20) + u32(3) + byte_array(b"") + b"\x00" * 12
        stop = threading.Event()

        def trickle(c: RawClient, data: bytes) -> None:
            for b in data:  # one byte every 0.1 s: 2.4 s for the frame, 4x the timeout
                if stop.wait(0.1):
                    return
                try:
                    c.sock.send(bytes((b,)))
                except OSError:
                    return

        body.sock.sendall(frame[:12])  # the whole header at once, then the body trickles
        threads = [
            threading.Thread(target=trickle, args=(header, frame)),
            threading.Thread(target=trickle, args=(body, frame[12:])),
        ]
        for t in threads:
            t.start()
        try:
            for c in (header, body):
                took = closed_within(c.sock, 3.0)
                assert took is not None, "a frame trickling in was not cut"
                assert took < SHORT.frame_timeout + 0.5
            assert good.slots() == [s.slot.slot_id]  # the others served meanwhile
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert s.server.stats().timed_out == 2


def test_no_version_byte_is_cut_at_the_handshake_timeout(served: Callable[..., Served]) -> None:
    s = served(limits=SHORT)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(os.fspath(s.path))
        took = closed_within(sock, 3.0)
    assert took is not None and SHORT.handshake_timeout - 0.1 <= took < 1.2


def test_idle_connections_stay_unless_an_idle_timeout_is_set(
    served: Callable[..., Served],
) -> None:
    s = served(limits=SHORT)
    with connect(s) as c:
        time.sleep(1.0)  # over every timeout but the (unset) idle one
        assert c.slots() == [s.slot.slot_id]
    s2 = served(limits=Limits(idle_timeout=0.4))
    with connect(s2) as c:
        took = closed_within(c.sock, 3.0)
        assert took is not None and 0.3 <= took < 1.0
    with connect(s2) as c:  # calls in time keep it
        for _ in range(4):
            time.sleep(0.2)
            assert c.slots() == [s2.slot.slot_id]


def test_one_process_gives_up_its_own_idlest_connection(served: Callable[..., Served]) -> None:
    s = served(limits=Limits(max_connections=8, max_per_process=3))
    clients = [connect(s) for _ in range(3)]
    try:
        clients[0].slots()  # the second is now the idlest
        fourth = connect(s)
        clients.append(fourth)
        assert not is_open(clients[1])
        assert is_open(clients[0]) and is_open(clients[2]) and is_open(fourth)
        # another process still finds places: this one holds 3 of 8
        out = subprocess.run(
            [sys.executable, "-c", CLIENT_SCRIPT, os.fspath(s.path)],
            capture_output=True, timeout=30, env=dict(os.environ, PYTHONPATH=f"{HERE}:{REPO}"),
        )  # fmt: skip
        assert out.returncode == 0, out.stderr.decode()
        assert out.stdout.decode().split() == [str(s.slot.slot_id)]
    finally:
        for c in clients:
            c.close()
    assert s.server.stats().evicted == 1


CLIENT_SCRIPT = """
import sys
from serve_support import RawClient
with RawClient(sys.argv[1]) as c:
    c.initialize()
    print(*c.slots())
"""


def blocking_wait(c: RawClient) -> None:
    """Send a blocking C_WaitForSlotEvent (flags 0): its reply comes at a slot event."""
    c.send_frame(u32(65) + byte_array(b"u") + u64(0))


def test_a_full_table_evicts_the_slowest_then_the_idlest_never_a_wait(
    served: Callable[..., Served],
) -> None:
    s = served(limits=Limits(max_connections=4, max_per_process=4, slow_after=0.2))
    slot = s.slot.slot_id
    waiting = connect(s)
    blocking_wait(waiting)
    wait_until(lambda: s.server.stats().waits == 1)
    idle = [connect(s), connect(s)]
    slow = connect(s)
    slow.sock.sendall(b"\x00\x00\x00")  # a header begun and never finished
    time.sleep(0.3)
    idle[1].slots()  # idle[0] is now the idlest
    first = connect(s)  # the table is full: the slow one gives way first
    assert closed_within(slow.sock, 1.0) is not None
    assert s.server.stats().evicted == 1
    second = connect(s)  # then the idlest
    assert closed_within(idle[0].sock, 1.0) is not None
    assert is_open(idle[1]) and is_open(first) and is_open(second)
    third = connect(s)  # and again the idlest: idle[1], the first of the three to answer
    assert closed_within(idle[1].sock, 1.0) is not None
    assert is_open(first) and is_open(second) and is_open(third)
    assert s.server.stats().evicted == 3
    # the connection in C_WaitForSlotEvent kept its place through every eviction, and its
    # wait goes on: the token goes, the reply comes with the wait's message code and slot
    s.card.transport.remove()
    s.registry.detach(slot)
    waiting.sock.settimeout(5)
    code, body = waiting.read_frame()
    assert code == waiting.code
    assert body == u32(65) + byte_array(b"u") + u64(slot)
    for c in (waiting, *idle, slow, first, second, third):
        c.close()


def test_a_table_of_waits_refuses_a_newcomer(served: Callable[..., Served]) -> None:
    s = served(limits=Limits(max_connections=3, max_per_process=3))
    waits = [connect(s) for _ in range(3)]
    for c in waits:
        blocking_wait(c)
    wait_until(lambda: s.server.stats().waits == 3)
    with socket.socket(socket.AF_UNIX) as late:
        late.connect(os.fspath(s.path))
        assert closed_within(late, 2.0) is not None
    stats = s.server.stats()
    assert (stats.refused, stats.evicted, stats.waits) == (1, 0, 3)
    for c in waits:
        c.close()


def test_frames_over_the_bound_are_refused_before_they_are_read(
    served: Callable[..., Served],
) -> None:
    s = served(login=True)
    with connect(s) as c:
        c.sock.sendall(struct.pack(">III", 1, 0, MAX_BODY + 1))  # the header alone
        assert closed_within(c.sock, 1.0) is not None
    with connect(s) as c:
        c.sock.sendall(struct.pack(">III", 1, 0, 16 << 20))
        assert closed_within(c.sock, 1.0) is not None
    # a frame of exactly MAX_BODY is a call like any other: a single-part C_Sign of almost
    # 1 MiB with a hashing mechanism, its signature verified
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        key = c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: b"\x03"})[0]
        c.call(42, u64(session) + c.mechanism(M.SHA256_RSA_PKCS) + u64(key)).end()
        overhead = len(u32(43) + byte_array(b"uayfy") + u64(session) + ay(b"") + u32(512))
        data = os.urandom(MAX_BODY - overhead)
        out, _ = c.call(43, u64(session) + ay(data) + u32(512)).ay()
        assert out is not None
        s.card.demo["aut"].public.verify(out, data, padding.PKCS1v15(), hashes.SHA256())
        digest = hashlib.sha256(data).digest()
        s.card.demo["aut"].public.verify(
            out, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )


def test_large_frames_share_a_budget(served: Callable[..., Served]) -> None:
    limits = Limits(frame_budget=2 * MAX_BODY, frame_timeout=1.5, max_per_process=16)
    s = served(limits=limits)
    senders = [connect(s) for _ in range(6)]
    stop = threading.Event()

    def send_almost_all(c: RawClient) -> None:
        c.sock.settimeout(5)
        with contextlib.suppress(OSError):  # the last byte never comes
            c.sock.sendall(struct.pack(">III", 1, 0, MAX_BODY) + b"\x00" * (MAX_BODY - 1))
        stop.wait(5)

    threads = [threading.Thread(target=send_almost_all, args=(c,)) for c in senders]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: s.server.stats().buffered == 2 * MAX_BODY)
        with connect(s) as small:  # small frames never wait for the budget
            started = time.monotonic()
            assert small.slots() == [s.slot.slot_id]
            assert time.monotonic() - started < 0.5
        time.sleep(0.3)
        assert s.server.stats().buffered_peak == 2 * MAX_BODY  # never more than the budget
        for c in senders:  # every one closed within its frame time (plus waiting for room)
            assert closed_within(c.sock, 4.0) is not None
        wait_until(lambda: s.server.stats().buffered == 0)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for c in senders:
            c.close()


def test_a_client_that_does_not_read_its_replies_is_closed(
    served: Callable[..., Served],
) -> None:
    s = served(limits=SHORT)
    c = connect(s)
    body = u32(6) + byte_array(b"u") + u64(s.slot.slot_id)
    request = struct.pack(">III", 7, 0, len(body)) + body
    flood = request * 4000  # C_GetTokenInfo: 4000 replies of 260 bytes, none read
    sender = threading.Thread(target=lambda: _send_quietly(c.sock, flood))
    sender.start()
    try:
        wait_until(lambda: s.server.stats().timed_out == 1, timeout=5)
        wait_until(lambda: s.server.stats().connections == 0)
    finally:
        c.sock.close()
        sender.join()
    with connect(s) as good:
        assert good.slots() == [s.slot.slot_id]


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.sendall(data)


def test_a_bug_in_a_handler_closes_that_connection_only(
    served: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opcard.serve.functions import Client

    s = served()
    handle = Client.handle

    def buggy(self: Client, call: int, reader: object) -> object:
        if call == 3:  # C_GetInfo
            raise RuntimeError("a bug")
        return handle(self, call, reader)  # type: ignore[arg-type]

    monkeypatch.setattr(Client, "handle", buggy)
    with captured_log() as log, connect(s) as good, connect(s) as victim:
        victim.send_frame(u32(3) + byte_array(b""))
        assert closed_within(victim.sock, 2.0) is not None
        assert good.slots() == [s.slot.slot_id]
    assert any("internal error serving pid" in line for line in log), log
    wait_until(lambda: s.server.stats().connections == 0)
