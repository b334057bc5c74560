"""A client process that misbehaves against ``opcard serve`` (test_serve_attacks.py).

    python serve_attacker.py SOCKET --idle N --slow M [--trickle SECONDS]

holds N connections that sent the version byte and then nothing, and M connections that
trickle a frame one byte every ``--trickle`` seconds (slowloris); every connection the server
closes is opened again 0.1 s later, so the pressure stays. Prints ``ready`` when all are
connected once; on SIGTERM prints ``reopened K`` (how many were closed by the server) and
exits."""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
import struct
import sys
import time

#: A C_GetInfo frame, sent one byte at a time.
FRAME = struct.pack(">III", 1, 0, 8) + struct.pack(">I", 3) + struct.pack(">I", 0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--trickle", type=float, default=0.2)
    args = p.parse_args()
    selector = selectors.DefaultSelector()
    slow: dict[socket.socket, int] = {}  # slow connection -> next byte of FRAME
    wanted = {"idle": args.idle, "slow": args.slow}
    held = {"idle": 0, "slow": 0}
    reopened = 0
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)

    def open_one(kind: str) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(args.socket)
            sock.sendall(b"\x00")  # the version byte, and then nothing (or a trickle)
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, kind)
        held[kind] += 1
        if kind == "slow":
            slow[sock] = 0
        return True

    for kind in ("idle", "slow"):
        for _ in range(wanted[kind]):
            while not open_one(kind):
                time.sleep(0.05)
    print("ready", flush=True)
    next_trickle = time.monotonic()
    next_reopen = 0.0
    while not stop:
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server
                selector.unregister(sock)
                sock.close()
                held[key.data] -= 1
                slow.pop(sock, None)
                reopened += 1
        now = time.monotonic()
        if now >= next_reopen:
            next_reopen = now + 0.1
            for kind in ("idle", "slow"):
                while held[kind] < wanted[kind] and open_one(kind):
                    pass
        if now >= next_trickle:
            next_trickle = now + args.trickle
            for sock, at in list(slow.items()):
                with contextlib.suppress(OSError):
                    sock.send(FRAME[at : at + 1])
                slow[sock] = (at + 1) % len(FRAME)
    print(f"reopened {reopened}", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
