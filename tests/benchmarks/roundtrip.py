"""APDU round trip pyscard -> pcscd -> vpcd -> emulated card -> back (a figure, not a test).

    .venv/bin/python tests/benchmarks/roundtrip.py [-n 2000] [--slow-n 20] [--port 35963]

Starts pcscd if needed (fixtures/rig/pcscd.sh), starts the emulator on the port, sends a
SELECT and then N tiny GET DATA C4 (PW status) APDUs through pyscard's low-level SCardTransmit,
and prints median / p90 / mean round trip in microseconds and APDUs per second. Then it runs
the same with the emulator started with --no-quickack (few iterations: each costs ~44 ms) to
show the delayed-ACK trap described in docs/rig.md. The emulators it starts are stopped at the
end; pcscd is left as found (stopped again if this script started it).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

SELECT = bytes.fromhex("00A4040006D27600012401")
GET_PW_STATUS = bytes.fromhex("00CA00C400")


def _scard() -> Any:
    try:
        import smartcard.scard as sc
    except ImportError as e:
        sys.exit(f"pyscard is missing ({e}): run bash fixtures/rig/setup.sh")
    return sc


def _wait(sc: Any, ctx: Any, reader: str, present: bool, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    current = sc.SCARD_STATE_UNAWARE
    while time.monotonic() < deadline:
        hr, states = sc.SCardGetStatusChange(ctx, 250, [(reader, current)])
        if hr == sc.SCARD_S_SUCCESS:
            current = states[0][1] & ~sc.SCARD_STATE_CHANGED
            if bool(current & sc.SCARD_STATE_PRESENT) == present:
                return
    raise SystemExit(f"timeout waiting for the card {'in' if present else 'to leave'} {reader}")


def _start_emulator(port: int, quickack: bool, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(port)]
    argv += ["--profile", "extended", "--personalize", "demo"]
    if not quickack:
        argv.append("--no-quickack")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _measure(sc: Any, ctx: Any, reader: str, n: int) -> list[float]:
    hr, card, proto = sc.SCardConnect(
        ctx, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
    )
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit(f"SCardConnect: {sc.SCardGetErrorMessage(hr)}")
    try:
        hr, resp = sc.SCardTransmit(card, proto, list(SELECT))
        if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
            raise SystemExit(f"SELECT failed: {hr:#x} {bytes(resp).hex()}")
        apdu = list(GET_PW_STATUS)
        for _ in range(min(20, n)):  # warm-up
            sc.SCardTransmit(card, proto, apdu)
        samples = []
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            hr, resp = sc.SCardTransmit(card, proto, apdu)
            t1 = clock()
            if hr != sc.SCARD_S_SUCCESS or resp[-2:] != [0x90, 0x00]:
                raise SystemExit(f"GET DATA C4 failed: {hr:#x} {bytes(resp).hex()}")
            samples.append((t1 - t0) / 1000.0)
        return samples
    finally:
        sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)


def _report(label: str, samples: list[float]) -> None:
    samples_sorted = sorted(samples)
    median = statistics.median(samples_sorted)
    p90 = samples_sorted[int(0.9 * (len(samples_sorted) - 1))]
    mean = statistics.fmean(samples_sorted)
    print(
        f"{label:<22} n={len(samples):<5} median {median:9.1f} µs   p90 {p90:9.1f} µs   "
        f"mean {mean:9.1f} µs   {1e6 / mean:8.0f} APDUs/s"
    )


def run_one(sc: Any, port: int, quickack: bool, n: int, log: Path) -> list[float]:
    reader = f"Virtual PCD 00 {port - 35963:02d}"
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit("no PC/SC service: is pcscd running?")
    try:
        _wait(sc, ctx, reader, present=False, timeout=5)
        proc = _start_emulator(port, quickack, log)
        try:
            _wait(sc, ctx, reader, present=True, timeout=20)
            return _measure(sc, ctx, reader, n)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            _wait(sc, ctx, reader, present=False, timeout=5)
    finally:
        sc.SCardReleaseContext(ctx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="APDUs with TCP_QUICKACK (default 2000)")
    ap.add_argument("--slow-n", type=int, default=20, help="APDUs without it (default 20; 0 skips)")
    ap.add_argument("--port", type=int, default=35963, choices=(35963, 35964))
    args = ap.parse_args()
    sc = _scard()
    out = subprocess.run(
        ["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    started = out.startswith("started")
    log = Path(os.environ.get("OPCARD_RIG_DIR", "/tmp/opcard-rig")) / "roundtrip-emulator.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        print("APDU round trip pyscard -> pcscd -> vpcd -> emulator (GET DATA C4, 9000 + 7 bytes)")
        _report("with TCP_QUICKACK", run_one(sc, args.port, True, args.n, log))
        if args.slow_n:
            _report("without TCP_QUICKACK", run_one(sc, args.port, False, args.slow_n, log))
    finally:
        if started:
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
