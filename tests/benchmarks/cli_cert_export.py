"""``opcard cert export`` against ``pkcs15-tool --read-certificate`` (a figure, not a test).

    .venv/bin/python tests/benchmarks/cli_cert_export.py [-n 20] [--port 35963|35964]

Starts pcscd if needed (fixtures/rig/pcscd.sh) and the emulated card (extended profile, demo
personalisation, with an APDU log) on a free vpcd port, then runs each command N times,
alternating, reading the authentication certificate:

    opcard --reader R cert export --slot aut --format der
    pkcs15-tool --reader R --read-certificate 03          (OpenSC file cache off)

It checks that both give the same certificate, and prints the wall time of each (median, min,
mean over N process runs), the ratio of the medians, the number of APDUs each run sends (from
the emulator's APDU log) with their instructions, and Python's own start-up for reference.
The emulator is stopped at the end; pcscd is left as found (stopped if this script started it).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchrig import OPENSC_CONF, PORTS, card_present, reader_of, wait_for  # noqa: E402

from fixtures.apdulog import read_log  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed, proc.stdout


def pem_to_der(pem: bytes) -> bytes:
    lines = pem.decode("ascii").strip().splitlines()
    return base64.b64decode("".join(lines[1:-1]))


def apdus(log: Path, action: Callable[[], object]) -> list[str]:
    """The command APDUs (INS bytes, hex) the card receives during ``action``."""
    before = len(read_log(log)) if log.exists() else 0
    action()
    time.sleep(0.05)  # the emulator writes its log after answering
    entries = read_log(log)[before:]
    return [e.text[2:4].upper() for e in entries if e.direction == ">"]


def summary(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms   min {min(samples) * 1000:7.1f} ms"
        f"   mean {statistics.fmean(samples) * 1000:7.1f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="runs of each command (default 20)")
    ap.add_argument("--port", type=int, choices=PORTS, help="vpcd port (default: a free one)")
    args = ap.parse_args()
    opcard = Path(sys.executable).parent / "opcard"
    pkcs15 = shutil.which("pkcs15-tool")
    if not opcard.exists() or pkcs15 is None:
        raise SystemExit(
            "needs the opcard console script and pkcs15-tool: bash fixtures/rig/setup.sh"
        )
    out = subprocess.run(
        ["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    started_pcscd = out.startswith("started")
    work = Path(tempfile.mkdtemp(prefix="opcard-bench-"))
    log = work / "apdu.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        ports = [args.port] if args.port else list(PORTS)
        port = next((p for p in ports if not card_present(reader_of(p))), None)
        if port is None:
            raise SystemExit(f"no free vpcd port among {ports}: stop the other emulator")
        reader = reader_of(port)
        other = reader_of(PORTS[1] if port == PORTS[0] else PORTS[0])
        conf = work / "opensc.conf"
        conf.write_text(OPENSC_CONF.format(other=other))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
        env.update(OPENSC_CONF=str(conf), LC_ALL="C")
        argv = [
            sys.executable,
            "-m",
            "fixtures.emulator",
            "--port",
            str(port),
            "--profile",
            "extended",
            "--personalize",
            "demo",
            "--apdu-log",
            str(log),
        ]
        with open(work / "emulator.out", "wb") as output:
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=dict(env, PYTHONPATH=str(REPO)),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(reader, present=True)

        ours = [
            str(opcard),
            "--reader",
            reader,
            "cert",
            "export",
            "--slot",
            "aut",
            "--format",
            "der",
        ]
        theirs = [pkcs15, "--reader", reader, "--read-certificate", "03"]
        # warm-up (page cache, pcscd), and the same certificate from both
        _, der = timed(ours, env)
        _, pem = timed(theirs, env)
        if der != pem_to_der(pem):
            raise SystemExit("opcard and pkcs15-tool returned different certificates")
        times: dict[str, list[float]] = {"opcard": [], "pkcs15-tool": []}
        for _ in range(args.n):
            times["opcard"].append(timed(ours, env)[0])
            times["pkcs15-tool"].append(timed(theirs, env)[0])
        python_start = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.n)]
        ins = {
            "opcard": apdus(log, lambda: timed(ours, env)),
            "pkcs15-tool": apdus(log, lambda: timed(theirs, env)),
        }

        print(
            f"Reading the AUT certificate ({len(der)} bytes) from the emulated card in {reader!r}"
        )
        print(f"through pcscd + vpcd, {args.n} process runs each (alternating):")
        for name, samples in times.items():
            print(f"  {name:<12} {summary(samples)}   {len(ins[name]):3d} APDUs")
        print(f"  {'python -c pass':<12} {summary(python_start)}")
        ratio = statistics.median(times["opcard"]) / statistics.median(times["pkcs15-tool"])
        print(f"ratio of medians opcard / pkcs15-tool: {ratio:.1f}")
        print(f"APDU ratio opcard / pkcs15-tool: {len(ins['opcard'])} / {len(ins['pkcs15-tool'])}")
        for name, sequence in ins.items():
            print(f"  {name:<12} INS: {' '.join(sequence)}")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        if started_pcscd:
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
