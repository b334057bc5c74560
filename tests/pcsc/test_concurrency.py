"""Two processes hammer the same card through pcscd at once: no interleaved or lost APDUs.

Each worker repeats SELECT DATA (occurrence k) then GET DATA 7F21, which must return
certificate k; in the "short" profile the certificate comes back through a 61xx / GET
RESPONSE chain, so a foreign APDU anywhere in the sequence breaks it. The workers run the
sequence inside ``Channel.transaction()``. A control run without transactions shows that the
same load does interleave, so the check is able to fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]

PORT = 35964
REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 300

WORKER = r"""
import json, sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from apdu.command import Command
from apdu.errors import ApduError
from apdu.channel import Channel, Framing
from apdu.transport.pcsc import PcscTransport

reader, worker, iterations, mode, extended = sys.argv[1:6]
worker, iterations, extended = int(worker), int(iterations), extended == "1"
certs = {
    occ: x509.load_pem_x509_certificate(
        open(f"fixtures/demo/demo-rsa/{slot}-cert.pem", "rb").read()
    ).public_bytes(Encoding.DER)
    for occ, slot in ((0, "aut"), (1, "dec"), (2, "sig"))
}
framing = Framing(extended=True, max_command=2048, max_response=2048) if extended else Framing()
t = PcscTransport.open(reader)
ch = Channel(t, framing, auto_transaction=(mode == "transactions"))
ch.send(Command(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("D27600012401")))
print("ready", flush=True)
sys.stdin.readline()  # wait for "go" so that both workers start together
mismatches = 0
errors = []
for i in range(iterations):
    k = (i + worker) % 3
    try:
        if mode == "transactions":
            with ch.transaction():
                ch.send(Command(0x00, 0xA5, k, 0x04, bytes.fromhex("60045C027F21")))
                got = ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0))
        else:
            ch.send(Command(0x00, 0xA5, k, 0x04, bytes.fromhex("60045C027F21")))
            got = ch.send(Command(0x00, 0xCA, 0x7F, 0x21, le=0))
    except ApduError as e:
        errors.append(f"{i}: {type(e).__name__}: {e}")
        continue
    if got != certs[k]:
        mismatches += 1
t.close()
print(json.dumps({"worker": worker, "mismatches": mismatches, "errors": errors[:5],
                  "error_count": len(errors), "apdus": ch.apdu_count}), flush=True)
"""


def run_workers(reader: str, mode: str, extended: bool, iterations: int) -> list[dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, reader, str(w), str(iterations), mode,
             "1" if extended else "0"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]  # fmt: skip
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == "ready", (line, p.stderr.read() if p.stderr else "")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def sequences_are_contiguous(commands: list[str]) -> tuple[int, list[str]]:
    """Check the card saw whole sequences: A5 (SELECT DATA), CA 7F21, then only C0s."""
    problems = []
    blocks = 0
    expect_start = True
    for n, c in enumerate(commands):
        ins = c[2:4]
        if ins == "A5":
            blocks += 1
            if n + 1 >= len(commands) or not commands[n + 1].startswith("00CA7F21"):
                problems.append(f"#{n}: SELECT DATA not followed by GET DATA 7F21")
            expect_start = False
        elif ins == "CA":
            if n == 0 or commands[n - 1][2:4] != "A5":
                problems.append(f"#{n}: GET DATA without its SELECT DATA just before")
        elif ins == "C0":
            if expect_start or commands[n - 1][2:4] not in ("CA", "C0"):
                problems.append(f"#{n}: GET RESPONSE out of sequence")
        else:
            problems.append(f"#{n}: unexpected {c}")
    return blocks, problems


@pytest.mark.parametrize("profile", ["short", "extended"])
def test_two_processes_with_transactions(emulator: Any, profile: str) -> None:
    emu = emulator(profile=profile, port=PORT)
    started = time.monotonic()
    results = run_workers(emu.reader, "transactions", profile == "extended", ITERATIONS)
    elapsed = time.monotonic() - started
    for r in results:
        assert r["error_count"] == 0, r["errors"]
        assert r["mismatches"] == 0, r
    commands = [e.text for e in emu.log_entries() if e.direction == ">"]
    # nothing lost: the card received exactly what the two channels counted
    assert len(commands) == sum(r["apdus"] for r in results)
    work = [c for c in commands if c[2:4] != "A4"]  # the two initial SELECTs
    blocks, problems = sequences_are_contiguous(work)
    assert problems == []
    assert blocks == 2 * ITERATIONS
    if profile == "short":
        assert sum(1 for c in work if c[2:4] == "C0") >= 2 * ITERATIONS  # 61xx chains ran
    print(f"\n{profile}: 2 x {ITERATIONS} sequences, {len(commands)} APDUs in {elapsed:.1f} s")


def test_control_without_transactions_does_interleave(emulator: Any) -> None:
    """Without transactions the same load shows wrong certificates or broken chains, which is
    what the transaction test would detect: proof that the check can fail."""
    emu = emulator(profile="short", port=PORT, apdu_log=None)
    seen = 0
    for _ in range(5):
        results = run_workers(emu.reader, "none", False, ITERATIONS)
        seen = sum(r["mismatches"] + r["error_count"] for r in results)
        if seen:
            break
    assert seen > 0, "two processes without transactions never interleaved"
