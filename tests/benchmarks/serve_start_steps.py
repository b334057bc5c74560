"""Start-up of the on-demand server across commits, side by side (issue #15; a figure, not a test).

    .venv/bin/python tests/benchmarks/serve_start_steps.py [-n 25] [--importtime] COMMIT ...

For each COMMIT, its ``apdu/`` and ``opcard/`` (``git archive``) go into a directory of their
own, bytecode compiled; this environment's interpreter runs them with that directory first on
``PYTHONPATH`` (ahead of the editable install). Then N rounds, interleaved (the commits' order
rotated every round), of two measures in fresh processes:

- ``route``: ``python -m opcard.serve --stdio --reader "no such reader"`` on a socketpair, as
  p11-kit starts it, from the start of the process to its answer to the first C_GetSlotList
  (after the version byte and C_Initialize); wall time. No reader matches, so no card is
  needed and no pcscd is touched beyond the reader listing.
- ``imports``: ``import opcard.serve.stdio, opcard.serve.server, opcard.serve.pcsc,
  opcard.serve.confirm`` timed inside a fresh process (``time.perf_counter``).

It prints the median and minimum of each per commit and, with ``--importtime``, the median
``python -X importtime`` self and cumulative times of the server's modules and of
``dataclasses`` for the same import, and their top-level total.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMPORTS = "opcard.serve.stdio, opcard.serve.server, opcard.serve.pcsc, opcard.serve.confirm"
TIMED_IMPORT = (
    "import time\nt = time.perf_counter()\n"
    f"import {IMPORTS}\nprint((time.perf_counter() - t) * 1000)\n"
)
BREAKDOWN = [
    "dataclasses",
    "apdu.record",
    "opcard.serve.wire",
    "opcard.serve.limits",
    "opcard.serve.confirm",
    "opcard.serve.slots",
    "opcard.serve.functions",
    "opcard.serve.server",
]


def _frame(code: int, call: int, signature: bytes, args: bytes) -> bytes:
    body = struct.pack(">II", call, len(signature)) + signature + args
    return struct.pack(">III", code, 0, len(body)) + body


def _ay(data: bytes) -> bytes:
    return b"\x01" + struct.pack(">I", len(data)) + data


HANDSHAKE = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"
INITIALIZE = _frame(1, 1, b"ayyay", _ay(HANDSHAKE) + b"\x00" + _ay(b"\x00"))
GET_SLOT_LIST = _frame(2, 4, b"yfu", b"\x00" + struct.pack(">I", 16))


def _answer(sock: socket.socket, call: int) -> None:
    data, options, body = b"", 0, 0
    while len(data) < 12 + options + body:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        data += chunk
        if len(data) >= 12:
            _, options, body = struct.unpack(">III", data[:12])
    if data[12 + options : 16 + options] != struct.pack(">I", call):
        raise SystemExit(f"call {call} answered with an error: {data.hex()}")


def _env(tree: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(tree))


def route(tree: Path) -> float:
    """Milliseconds from the start of the process to the answer to C_GetSlotList."""
    ours, theirs = socket.socketpair()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "opcard.serve", "--stdio", "--reader", "no such reader"],
        stdin=theirs.fileno(), stdout=theirs.fileno(), stderr=subprocess.PIPE, cwd=tree,
        env=_env(tree),
    )  # fmt: skip
    theirs.close()
    try:
        ours.sendall(b"\x00")
        if ours.recv(1) != b"\x00":
            raise SystemExit("no version byte")
        ours.sendall(INITIALIZE)
        _answer(ours, 1)
        ours.sendall(GET_SLOT_LIST)
        _answer(ours, 4)
        elapsed = time.perf_counter() - start
    finally:
        ours.close()
    assert proc.stderr is not None
    proc.stderr.read()  # to the end of the serving child (it holds the pipe)
    proc.wait()
    return elapsed * 1000


def imports(tree: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMED_IMPORT],
        capture_output=True, text=True, check=True, cwd=tree, env=_env(tree),
    ).stdout  # fmt: skip
    return float(out)


def importtime(tree: Path) -> dict[str, tuple[int, int]]:
    """``-X importtime``: module -> (self, cumulative) µs, and "total" (top level)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {IMPORTS}"],
        capture_output=True, text=True, check=True, cwd=tree, env=_env(tree),
    ).stderr  # fmt: skip
    found: dict[str, tuple[int, int]] = {}
    total = 0
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m is None:
            continue
        if len(m[3]) == 1:
            total += int(m[2])
        if m[4] in BREAKDOWN:
            found[m[4]] = (int(m[1]), int(m[2]))
    found["total"] = (0, total)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="+")
    parser.add_argument("-n", type=int, default=25, help="rounds (default 25)")
    parser.add_argument("--importtime", action="store_true", help="the module breakdown too")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-steps-") as tmp:
        trees: dict[str, Path] = {}
        for commit in options.commits:
            tree = Path(tmp) / commit
            tree.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", commit, "apdu", "opcard"],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True)
            trees[commit] = tree
        load = os.getloadavg()[0]
        results: dict[tuple[str, str], list[float]] = {}
        breakdown: dict[str, list[dict[str, tuple[int, int]]]] = {c: [] for c in trees}
        for i in range(options.n):
            order = list(trees)[i % len(trees) :] + list(trees)[: i % len(trees)]
            for measure in (route, imports):
                for commit in order:
                    key = (measure.__name__, commit)
                    results.setdefault(key, []).append(measure(trees[commit]))
            if options.importtime:
                for commit in order:
                    breakdown[commit].append(importtime(trees[commit]))
        print(
            f"{options.n} rounds, load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
            "ms, median (min)"
        )
        for measure_name in ("route", "imports"):
            for commit in trees:
                values = results[(measure_name, commit)]
                print(
                    f"{measure_name:8} {commit:12} {statistics.median(values):7.1f} "
                    f"({min(values):.1f})"
                )
        if options.importtime:
            print("-X importtime, median self / cumulative ms:")
            for module in [*BREAKDOWN, "total"]:
                cells = []
                for commit in trees:
                    runs = [run.get(module, (0, 0)) for run in breakdown[commit]]
                    own = statistics.median(r[0] for r in runs) / 1000
                    cumulative = statistics.median(r[1] for r in runs) / 1000
                    cells.append(f"{commit}: {own:5.2f} / {cumulative:6.2f}")
                print(f"  {module:24} " + "   ".join(cells))


if __name__ == "__main__":
    main()
