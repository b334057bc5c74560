"""Start-up of opcard commands across commits, side by side (issue #15; a figure, not a test).

    .venv/bin/python tests/benchmarks/startup_steps.py [-n 25] COMMIT [COMMIT ...]
        [--command "cert export --slot aut"] ...

What each change of a series saves: for each COMMIT, its ``apdu/`` and ``opcard/`` (``git
archive``) go into a venv of their own — a ``.pth`` puts them and this environment's
site-packages on ``sys.path``, as a wheel install would (no editable-install finder), with a
console script ``opcard`` as pip writes it and the bytecode compiled — and every command runs
N rounds interleaved (one run per commit per round, the order rotated every round, two rounds
of warm-up not counted), against the emulated card (``extended`` profile, ``demo-ecc``
personalisation) in a pcscd of the run's own. It prints, per command and commit, the median and
minimum wall time of the process and the median and minimum CPU time of the child (user +
system: less sensitive to other load on the machine than the wall time), and each commit's
change of the CPU median against the commit before it. Nothing is left running afterwards.

The default commands: ``--help``, ``list``, ``cert export --slot aut``, ``status`` and
``sign --pin-file F --output O DATA``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchrig import card_present, private_pcscd, wait_for  # noqa: E402

READER = "Virtual PCD 00 00"
DEFAULT_COMMANDS = ["--help", "list", "cert export --slot aut", "status", "sign"]
#: What pip writes as the ``opcard`` console script of a wheel.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from opcard.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def snapshot(commit: str, work: Path) -> Path:
    """A venv running ``commit``'s apdu/ and opcard/; returns its console script."""
    src, venv = work / f"src-{commit}", work / f"venv-{commit}"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "apdu", "opcard"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    purelib = sysconfig.get_path("purelib")  # this environment's click, pyscard, cryptography
    (site / "opcard-src.pth").write_text(f"{src}\n{purelib}\n")
    script = venv / "bin" / "opcard"
    script.write_text(CONSOLE_SCRIPT.format(python=venv / "bin" / "python"))
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(venv / "bin/python"), "-m", "compileall", "-q", str(src)], env=env)
    return script


def run_rounds(
    scripts: dict[str, Path], argv: list[str], n: int, env: dict[str, str]
) -> dict[str, tuple[list[float], list[float]]]:
    commits = list(scripts)
    out: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in commits}
    for i in range(n + 2):
        k = i % len(commits)
        for commit in commits[k:] + commits[:k]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [str(scripts[commit]), *argv],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                check=False,
            )
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                raise SystemExit(f"{commit}: opcard {' '.join(argv)}: {proc.stderr.decode()}")
            if i >= 2:
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                out[commit][0].append(wall * 1000)
                out[commit][1].append(cpu * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("commits", nargs="+", help="commits, oldest first")
    ap.add_argument("-n", type=int, default=25, help="rounds (default 25)")
    ap.add_argument("--command", action="append", help="opcard arguments (repeatable)")
    args = ap.parse_args()
    commands = args.command or DEFAULT_COMMANDS
    work = Path(tempfile.mkdtemp(prefix="opcard-steps-"))
    try:
        scripts = {c: snapshot(c, work) for c in args.commits}
        (work / "pin").write_text("123456\n")
        (work / "data").write_bytes(b"opcard start-up\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with private_pcscd(work) as port:
            env["PCSCLITE_CSOCK_NAME"] = os.environ["PCSCLITE_CSOCK_NAME"]
            if card_present(READER):
                raise SystemExit(f"{READER} already holds a card")
            card = ["--port", str(port), "--profile", "extended", "--personalize", "demo-ecc"]
            emu = subprocess.Popen(
                [sys.executable, "-m", "fixtures.emulator", *card],
                cwd=REPO,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                wait_for(READER, present=True)
                load = os.getloadavg()[0]
                for command in commands:
                    argv = command.split()
                    if argv == ["sign"]:
                        argv += ["--pin-file", str(work / "pin"), "--output", str(work / "sig")]
                        argv.append(str(work / "data"))
                    print(f"opcard {command}  ({args.n} interleaved rounds)")
                    results = run_rounds(scripts, argv, args.n, env)
                    previous = None
                    for commit, (wall, cpu) in results.items():
                        median = statistics.median(cpu)
                        delta = "" if previous is None else f"  {median - previous:+6.1f}"
                        print(
                            f"  {commit[:10]:10}  wall median {statistics.median(wall):6.1f} "
                            f"min {min(wall):6.1f}   CPU median {median:6.1f} "
                            f"min {min(cpu):6.1f} ms{delta}"
                        )
                        previous = median
                print(f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
            finally:
                emu.terminate()
                emu.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
