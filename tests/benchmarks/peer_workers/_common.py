"""Shared helpers of the peer workers (stdlib only: every worker runs in its own venv).

A worker is started by ``tests/benchmarks/peers.py`` as::

    <venv>/bin/python tests/benchmarks/peer_workers/<peer>_worker.py \\
        --reader "Virtual PCD 00 01" --apdu-log FILE --variant ecc|rsa -n 1000 [--phases ...]

and prints ONE line of JSON on stdout (everything else goes to stderr)::

    {"peer": ..., "variant": ..., "phases": {NAME: PHASE, ...}, "notes": [...]}

where every PHASE has ``apdus`` (command APDUs the card received during the phase, counted in
the emulator's APDU log), ``seconds`` (``time.perf_counter()`` around the phase only), the
``commands`` (INS bytes, in order, for the short phases) and phase-specific results
(``cert_der`` hex, ``signatures`` hex, per-signature ``samples_us``...). The main script checks
the results (certificate bytes, signatures verified with ``cryptography``) and aggregates.

Phase names: ``list`` (a: open the card, list keys and certificates), ``export`` (b: open the
card, export the AUT certificate; ``call_apdus`` = the export call alone), ``login`` (open +
PIN + first signature: the one-off cost before the loop), ``sign`` (c: the measured loop).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PW1 = "123456"  # the emulated card's default user PIN (a test PIN, never a real one)
AID = bytes.fromhex("D27600012401")
SELECT = bytes.fromhex("00A4040006D27600012401")
MESSAGE = b"opcard peer benchmark: the same digest for every signature"
DIGEST = hashlib.sha256(MESSAGE).digest()
SHA256_DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420")


def auth_input(variant: str) -> bytes:
    """The INTERNAL AUTHENTICATE data field for ``DIGEST``: raw hash (ECDSA) or DigestInfo (RSA)."""
    return DIGEST if variant == "ecc" else SHA256_DIGEST_INFO + DIGEST


def internal_authenticate_apdu(variant: str) -> bytes:
    """7.2.13 INTERNAL AUTHENTICATE, short APDU with Le = 00 (what the floor sends)."""
    data = auth_input(variant)
    return bytes([0x00, 0x88, 0x00, 0x00, len(data)]) + data + b"\x00"


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


class Meter:
    """Counts the command APDUs the emulator logged since the last :meth:`take`.

    The emulator writes (and flushes) the ``>`` line of a command before it answers it, so
    once a client has its answer the command is in the file. Only the part of the file
    written since the last mark is read.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0

    def reset(self) -> None:
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def take(self) -> list[str]:
        """The command APDUs (hex text as logged) since the last mark; moves the mark."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # complete lines only
        self.offset += end
        commands = []
        for line in chunk[:end].split(b"\n"):
            if line.startswith(b"> "):
                parts = line.decode("ascii").split(" ", 2)
                commands.append(parts[2] if len(parts) == 3 else "")
        return commands


def ins_list(commands: list[str]) -> list[str]:
    """'CLA INS P1 P2' of each logged command (PIN data is redacted in the log anyway)."""
    return [c[:8] for c in commands]


class Worker:
    """Argument parsing, phases and the JSON report of one worker run."""

    def __init__(self, peer: str, description: str) -> None:
        ap = argparse.ArgumentParser(description=description)
        ap.add_argument("--reader", required=True, help="PC/SC reader name")
        ap.add_argument("--apdu-log", required=True, help="the emulator's APDU log")
        ap.add_argument("--variant", choices=("ecc", "rsa"), required=True)
        ap.add_argument("-n", type=int, default=1000, help="signatures in the measured loop")
        ap.add_argument("--phases", default="list,export,sign", help="comma-separated phases")
        ap.add_argument("--gnupghome", help="(gnupg) private GNUPGHOME prepared by peers.py")
        ap.add_argument("--opensc-conf", help="(opensc) OPENSC_CONF file prepared by peers.py")
        ap.add_argument("--pkcs11-module", help="(opensc) the OpenSC PKCS#11 module")
        self.args = ap.parse_args()
        self.peer = peer
        self.meter = Meter(self.args.apdu_log)
        self.result: dict[str, Any] = {
            "peer": peer,
            "variant": self.args.variant,
            "phases": {},
            "notes": [],
        }

    @property
    def phases(self) -> list[str]:
        return [p for p in self.args.phases.split(",") if p]

    def note(self, text: str) -> None:
        if text not in self.result["notes"]:
            self.result["notes"].append(text)

    @contextmanager
    def phase(self, name: str, *, keep_commands: bool = True) -> Iterator[dict[str, Any]]:
        """Count APDUs and time the body; the body may add results to the yielded dict."""
        out: dict[str, Any] = {}
        self.meter.reset()
        self._taken: list[str] = []
        t0 = time.perf_counter()
        yield out
        seconds = time.perf_counter() - t0
        commands = self._taken + self.meter.take()
        out["apdus"] = len(commands)
        out["seconds"] = seconds
        if keep_commands:
            out["commands"] = ins_list(commands)
        else:
            # the sign loop: keep one example of each distinct command header
            seen: dict[str, int] = {}
            for c in commands:
                seen[c[:8]] = seen.get(c[:8], 0) + 1
            out["command_counts"] = seen
            auth = [c for c in commands if c[2:4] == "88"]
            if auth:
                out["auth_apdu"] = auth[0]
        self.result["phases"][name] = out

    def checkpoint(self) -> int:
        """Inside a phase: how many commands the phase has counted so far (reads the log)."""
        self._taken += self.meter.take()
        return len(self._taken)

    def sign_loop(self, sign: Callable[[], bytes], n: int) -> None:
        """The measured loop: ``n`` calls of ``sign``, each timed; keeps first/last result."""
        samples = [0.0] * n
        first = last = b""
        clock = time.perf_counter
        with self.phase("sign", keep_commands=False) as out:
            for i in range(n):
                t0 = clock()
                sig = sign()
                samples[i] = clock() - t0
                if i == 0:
                    first = sig
            last = sig if n else b""
        out["n"] = n
        out["samples_us"] = [round(s * 1e6, 2) for s in samples]
        out["signatures"] = [first.hex(), last.hex()]

    def emit(self) -> None:
        json.dump(self.result, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()

    def fail(self, phase: str, error: BaseException) -> None:
        self.result["phases"][phase] = {"error": f"{type(error).__name__}: {error}"}
        log(f"[{self.peer}] {phase}: {type(error).__name__}: {error}")
