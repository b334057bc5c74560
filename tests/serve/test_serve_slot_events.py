"""C_WaitForSlotEvent, blocking and not: the wait runs beside the client's other calls on
the same connection (p11-kit multiplexes a client's threads on one socket and matches replies
by message code), ends with the slot of a token that came or went, and ends with
CKR_CRYPTOKI_NOT_INITIALIZED when the client finalizes — checked with the raw client frame by
frame and with p11-kit's own client module driven through ctypes."""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from serve_support import CK_ULONG, Module, ModuleCall, RawClient, Served, byte_array, u32, u64

from opcard.pkcs11 import ReturnValue

WAIT = 65
FINALIZE = 2
GET_SLOT_LIST = 4
DONT_BLOCK = 1


def connect(s: Served) -> RawClient:
    c = RawClient(s.path, 0, timeout=5.0)
    c.initialize()
    return c


def wait_frame(flags: int) -> bytes:
    return u32(WAIT) + byte_array(b"u") + u64(flags)


def slot_list_frame() -> bytes:
    return u32(GET_SLOT_LIST) + byte_array(b"yfu") + b"\x00" + u32(8)


def decode(body: bytes) -> tuple[int, int]:
    """(call id, slot id) of a C_WaitForSlotEvent reply, or (0, CK_RV) of an error reply."""
    call, n = struct.unpack(">II", body[:8])
    signature = body[8 : 8 + n]
    assert signature == b"u", signature
    (value,) = struct.unpack(">Q", body[8 + n :])
    return call, value


def slot_ids(body: bytes) -> list[int]:
    call, n = struct.unpack(">II", body[:8])
    assert (call, body[8 : 8 + n]) == (GET_SLOT_LIST, b"au")
    rest = body[8 + n :]
    assert rest[0] == 1
    (count,) = struct.unpack(">I", rest[1:5])
    return list(struct.unpack(f">{count}Q", rest[5:]))


def nothing_to_read(c: RawClient, seconds: float = 0.3) -> bool:
    c.sock.settimeout(seconds)
    try:
        c.sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        c.sock.settimeout(5.0)
    return False


def wait_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "opcard-serve-wait"]


def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- the raw client ---------------------------------------------------------------------------


def test_blocking_wait_runs_beside_other_calls(served: Callable[..., Served]) -> None:
    s = served()
    slot = s.slot.slot_id
    with connect(s) as c:
        c.send_frame(wait_frame(0), code=0x100)
        c.send_frame(slot_list_frame(), code=0x101)  # pipelined behind the wait
        code, body = c.read_frame()
        assert code == 0x101  # answered while the wait is pending
        assert slot_ids(body) == [slot]
        assert nothing_to_read(c)  # the wait is still waiting
        s.card.transport.remove()
        s.registry.detach(slot)
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x100, (WAIT, slot))
        # an event already pending answers a blocking wait at once
        s.registry.attach(s.card.reinsert())
        c.send_frame(wait_frame(0), code=0x102)
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x102, (WAIT, slot))
        # and with CKF_DONT_BLOCK, nothing pending: CKR_NO_EVENT
        c.send_frame(wait_frame(DONT_BLOCK), code=0x103)
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x103, (0, ReturnValue.NO_EVENT))


def test_two_waits_two_events(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", "demo-ecc")
    ids = [x.slot_id for x in s.registry.slots()]
    with connect(s) as c:
        c.send_frame(wait_frame(0), code=0x200)
        c.send_frame(wait_frame(0), code=0x201)
        until(lambda: len(wait_threads()) == 2)
        for card, slot_id in zip(s.cards, ids, strict=True):
            card.transport.remove()
            s.registry.detach(slot_id)
        got = dict(c.read_frame() for _ in range(2))
        assert set(got) == {0x200, 0x201}
        assert sorted(decode(b)[1] for b in got.values()) == sorted(ids)
        assert {decode(b)[0] for b in got.values()} == {WAIT}


def test_finalize_ends_a_pending_wait(served: Callable[..., Served]) -> None:
    s = served()
    with connect(s) as c:
        c.send_frame(wait_frame(0), code=0x300)
        c.send_frame(u32(FINALIZE) + byte_array(b""), code=0x301)
        # the wait's reply comes first, then C_Finalize's
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x300, (0, ReturnValue.CRYPTOKI_NOT_INITIALIZED))
        code, body = c.read_frame()
        assert code == 0x301
        assert body == u32(FINALIZE) + byte_array(b"")
        until(lambda: not wait_threads())
        # initialised again on the same connection, waits work again
        c.initialize()
        c.send_frame(wait_frame(0), code=0x302)
        until(lambda: len(wait_threads()) == 1)
        s.card.transport.remove()
        s.registry.detach(s.slot.slot_id)
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x302, (WAIT, s.slot.slot_id))


def test_disconnect_ends_a_pending_wait(served: Callable[..., Served]) -> None:
    s = served()
    c = connect(s)
    c.send_frame(wait_frame(0), code=0x400)
    until(lambda: len(wait_threads()) == 1)
    c.close()
    until(lambda: not wait_threads())
    with connect(s) as other:  # the daemon goes on
        assert other.slots() == [s.slot.slot_id]


def test_waits_per_connection_are_bounded(served: Callable[..., Served]) -> None:
    from opcard.serve.functions import MAX_WAITS

    s = served()
    with connect(s) as c:
        for i in range(MAX_WAITS):
            c.send_frame(wait_frame(0), code=0x500 + i)
        c.send_frame(wait_frame(0), code=0x5FF)
        code, body = c.read_frame()
        assert (code, decode(body)) == (0x5FF, (0, ReturnValue.FUNCTION_FAILED))
        assert len(wait_threads()) == MAX_WAITS
    until(lambda: not wait_threads())


# --- p11-kit's client module --------------------------------------------------------------


@pytest.fixture
def module(
    served: Callable[..., Served], p11_client: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Served, Module]]:
    s = served()
    monkeypatch.setenv("P11_KIT_SERVER_ADDRESS", s.address)
    m = Module(p11_client)
    assert ModuleCall(lambda: m.f["C_Initialize"](None)).result() == 0
    yield s, m


def start_wait(m: Module) -> tuple[ModuleCall, Any]:
    slot = CK_ULONG(0)
    call = ModuleCall(lambda: m.f["C_WaitForSlotEvent"](0, ctypes.byref(slot), None))
    until(lambda: len(wait_threads()) == 1)  # the daemon is waiting for this client
    return call, slot


def test_real_client_waits_while_its_other_threads_work(
    module: tuple[Served, Module],
) -> None:
    s, m = module
    slot_id = s.slot.slot_id
    wait, slot = start_wait(m)
    started = time.monotonic()
    labels: list[bytes] = []

    def other_thread() -> int:  # another application thread, while the wait is pending
        labels.append(m.token_label(m.slots()[0]))
        return 0

    assert ModuleCall(other_thread).result() == 0
    assert time.monotonic() - started < 2.0
    assert labels == [b"Jane Doe"]  # the demo card's cardholder
    assert wait.thread.is_alive()  # still waiting
    s.card.transport.remove()
    s.registry.detach(slot_id)
    assert wait.result() == 0
    assert slot.value == slot_id
    assert m.slots() == []
    assert ModuleCall(lambda: m.f["C_Finalize"](None)).result() == 0


def test_real_client_finalize_ends_the_wait(module: tuple[Served, Module]) -> None:
    s, m = module
    wait, _slot = start_wait(m)
    assert ModuleCall(lambda: m.f["C_Finalize"](None)).result() == 0
    assert wait.result() == ReturnValue.CRYPTOKI_NOT_INITIALIZED
    until(lambda: not wait_threads())
    assert s.slot.present  # nothing happened to the card
