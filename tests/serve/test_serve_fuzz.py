"""Fuzzing the RPC server: mutated p11-kit frames derived from recorded traces and from
well-formed requests (fuzz_frames.py), deterministic (seed 12), bounded in time.

In process, the frame handler (``Server.answer``, what each connection's thread calls for a
frame) answers 100,000 mutated bodies for clients of every protocol version, with an emulated
card logged in behind it: every answer must be a well-formed reply to that call (or an error
reply), anything else but FrameError (which closes the connection) fails the test. Then a few
thousand mutated frames go through the server's real socket, with oversized headers among
them: each gets a well-formed reply with its message code, or the connection is closed. After
both, the server holds no connection, no frame memory, no extra thread; its memory (this
process's VmRSS) has not grown beyond a bound; and a client still signs.

``OPCARD_FUZZ_FRAMES`` / ``OPCARD_FUZZ_SOCKET_FRAMES`` change the counts (e.g. a longer run
by hand); the figures are printed (``pytest -s``)."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from fuzz_frames import (
    Handles,
    Mutator,
    ReplyError,
    check_reply,
    fuzz_socket,
    live_handles,
    seed_bodies,
    trace_frames,
    vm_rss,
)
from serve_support import RawClient, Served, serving

from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass
from opcard.serve.errors import FrameError
from opcard.serve.functions import Client, SlotWait
from opcard.serve.limits import Limits

SEED = 12
FRAMES = int(os.environ.get("OPCARD_FUZZ_FRAMES", "100000"))
SOCKET_FRAMES = int(os.environ.get("OPCARD_FUZZ_SOCKET_FRAMES", "3000"))
#: Growth of this process's resident memory the fuzzing may cause (the server's sessions,
#: objects and buffers must not accumulate; Python's own allocator keeps some).
RSS_GROWTH_BOUND = 24 * 1024 * 1024

pytestmark = pytest.mark.slow  # 10-25 s; runs in CI like every test


class Connection:
    """One client of the frame handler, in process: what a connection's thread holds."""

    def __init__(self, s: Served, version: int) -> None:
        self.s = s
        self.stack = contextlib.ExitStack()
        events = self.stack.enter_context(s.registry.subscribe())
        self.client = Client(s.registry, version, events, peer="fuzz")
        self.version = version

    def answer(self, body: bytes) -> bytes:
        """The reply body; FrameError when the connection would be closed."""
        answer = self.s.server.answer(self.client, body, "fuzz")
        if isinstance(answer, SlotWait):  # a blocking wait: ended as by a C_Finalize
            self.client.events.interrupt()
            answer = answer.outcome()
        return answer[0]

    def open(self, h: Handles) -> Handles:
        """C_Initialize and C_OpenSession: the seeds' session is this connection's."""
        corpus = seed_bodies(h, self.version)
        self.answer(corpus[0])
        reply = self.answer(corpus[8])
        (session,) = struct.unpack(">Q", reply[-8:])
        return Handles(h.slot, session, h.sig_key, h.dec_key, h.aut_key, h.certificate)

    def close(self) -> None:
        self.client.close()
        self.stack.close()


@pytest.fixture
def fuzzed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The server under fuzzing, logging errors only (pytest would keep thousands of warning
    records, one per closed connection: tens of megabytes of this process's memory), and
    every error logged or exception escaping one of its threads recorded: the test fails on
    any."""
    limits = Limits(frame_timeout=2.0, handshake_timeout=2.0)
    crashes: list[str] = []
    levels: Counter[str] = Counter()

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            levels[record.levelname] += 1
            if record.exc_info:
                crashes.append(self.format(record))

    def excepthook(args: threading.ExceptHookArgs) -> None:
        crashes.append(f"{args.thread}: {args.exc_type.__name__}: {args.exc_value}")

    logger = logging.getLogger("opcard.serve")
    handler = Count()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)  # warnings (one per closed connection) not even made
    monkeypatch.setattr(threading, "excepthook", excepthook)
    try:
        with serving(("demo-rsa",), login=True, limits=limits) as s:
            yield s
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not crashes, crashes
    assert not levels, f"the server logged errors: {dict(levels)}"


def test_fuzz_the_frame_handler_in_process(fuzzed: Served) -> None:
    s = fuzzed
    h = live_handles(s.path, s.slot.slot_id)
    traces = [body for _code, _options, body in trace_frames()]
    wait_until(lambda: s.server.stats().connections == 0)
    threads = threading.active_count()
    rss_before = vm_rss()
    mutator = Mutator(SEED, [])
    outcomes: Counter[str] = Counter()
    answered: Counter[int] = Counter()
    versions = iter(range(1 << 30))
    conn: Connection | None = None
    started = time.perf_counter()
    for _ in range(FRAMES):
        if conn is None:
            conn = Connection(s, next(versions) % 3)
            live = conn.open(h)
            mutator.corpus = seed_bodies(live, conn.version) + traces
        body = mutator.next()
        try:
            reply = conn.answer(body)
        except FrameError:
            outcomes["closed (malformed)"] += 1
            conn.close()
            conn = None
            continue
        except Exception as e:
            raise AssertionError(f"frame body {body.hex()} raised {e!r}") from e
        try:
            rv = check_reply(body, reply)
        except ReplyError as e:
            raise AssertionError(f"frame body {body.hex()}: {e}\nreply {reply.hex()}") from e
        if rv is None:
            outcomes["answered"] += 1
            answered[struct.unpack(">I", body[:4])[0]] += 1
        else:
            outcomes["error reply"] += 1
    elapsed = time.perf_counter() - started
    if conn is not None:
        conn.close()
    rss_after = vm_rss()
    print(
        f"\nfuzz in process: {FRAMES} frames in {elapsed:.1f} s ({FRAMES / elapsed:.0f}/s); "
        f"{dict(outcomes)}; {len(answered)} calls answered; VmRSS {rss_before >> 20} -> "
        f"{rss_after >> 20} MiB; card APDUs {s.apdus()}"
    )
    # the fuzzing reached the handlers, not only the argument checks
    assert outcomes["answered"] >= FRAMES // 50, outcomes
    assert outcomes["error reply"] >= FRAMES // 20, outcomes
    assert len(answered) >= 15, answered
    assert rss_after - rss_before < RSS_GROWTH_BOUND
    wait_until(lambda: threading.active_count() == threads)
    assert_still_serves(s)


def test_fuzz_through_the_socket(fuzzed: Served) -> None:
    s = fuzzed
    h = live_handles(s.path, s.slot.slot_id)
    wait_until(lambda: s.server.stats().connections == 0)
    threads = threading.active_count()
    rss_before = vm_rss()
    outcomes = fuzz_socket(s.path, h, SOCKET_FRAMES, SEED + 1)
    assert outcomes["answered"] >= SOCKET_FRAMES // 50, outcomes
    assert outcomes["closed"] >= SOCKET_FRAMES // 20, outcomes
    wait_until(lambda: s.server.stats().connections == 0)
    wait_until(lambda: threading.active_count() == threads)
    stats = s.server.stats()
    assert stats.buffered == 0
    assert vm_rss() - rss_before < RSS_GROWTH_BOUND
    assert_still_serves(s)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def assert_still_serves(s: Served) -> None:
    """A client of the fuzzed server signs, and the signature verifies."""
    with RawClient(s.path) as c:
        c.initialize()
        session = c.open(s.slot.slot_id)
        key = c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: b"\x03"})[0]
        out = c.sign(session, key, M.SHA256_RSA_PKCS, b"message", 512)
        s.card.demo["aut"].public.verify(out, b"message", padding.PKCS1v15(), hashes.SHA256())
