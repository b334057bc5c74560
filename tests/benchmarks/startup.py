"""Start-up of every opcard command against its floor, in one run (issue #15; a figure, not a test).

    .venv/bin/python tests/benchmarks/startup.py [-n 30] [--markdown] [--shared-pcscd]

What it does, in one run:

1. Builds opcard as a wheel from the commit checked out (``git archive HEAD``: what is not
   committed is not measured) with ``pip wheel`` (build isolation; ``--no-build-isolation``
   when that fails), installs it into a fresh venv with the dependencies at the versions of the
   running interpreter's environment (``pip --python``; when that fails, the wheel alone with a
   ``.pth`` to this environment's site-packages, said in the output), and compiles the bytecode
   (``compileall``). Every command then runs with the venv's interpreter, the same for opcard
   and the floors, without ``PYTHONDONTWRITEBYTECODE`` (a user's installed opcard has its
   bytecode cached).
2. Starts a pcscd of its own (``--shared-pcscd``: the machine's) and the emulated card
   (``extended`` profile, ``demo`` personalisation, RSA 2048, with an APDU log) in reader
   "Virtual PCD 00 00"; a private GNUPGHOME whose scdaemon shares the card (``pcsc-shared``)
   with its gpg-agent running, and an OpenSC configuration limited to that reader.
3. Checks once that each opcard command and its floor (tests/benchmarks/floors/) print the same
   bytes, and counts the APDUs of each command in the emulator's log.
4. Runs every command N times, interleaved (one of each per round, the order rotated every
   round), timing the wall time of each process run (``serve --stdio``, both ``opcard serve
   --stdio`` and ``python -m opcard.serve --stdio``, the line ``opcard serve --install``
   writes: from the start of the process to the answer of its first C_GetSlotList, sent over
   the socketpair p11-kit gives it by a small client of p11-kit's RPC protocol here), and
   prints median and minimum, and the ratios to the floors with the targets of issue #15.

Everything it started is stopped at the end (emulator, gpg-agent and scdaemon, the private
pcscd); the venv and wheel are removed (``--keep DIR`` keeps them there).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(REPO)]

from benchrig import OPENSC_CONF, card_present, private_pcscd, wait_for  # noqa: E402

FLOORS = HERE / "floors"
READER = "Virtual PCD 00 00"
OTHER_READER = "Virtual PCD 00 01"
PIN = "123456"  # the emulated card's default user PIN (a test PIN)
DEPENDENCIES = ("pyscard", "click", "cryptography", "asn1crypto", "cffi", "pycparser")
HANDSHAKE = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


# --- the wheel in a fresh venv ------------------------------------------------------------------


def install_wheel(work: Path) -> tuple[Path, str, list[str]]:
    """Build the wheel of HEAD and install it with compiled bytecode into a new venv.

    Returns the venv's python, the commit, and notes on how it was installed."""
    notes: list[str] = []
    commit = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]).stdout
    if dirty.strip():
        notes.append("uncommitted changes in the work tree are not measured (git archive HEAD)")
    src = work / "src"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(dist), str(src)], capture_output=True, text=True
    )
    if built.returncode != 0:
        notes.append("wheel built without build isolation")
        run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)])
    wheel = next(dist.glob("opcard-*.whl"))
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in DEPENDENCIES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    installed = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-compile", *pins, str(wheel)],
        capture_output=True,
        text=True,
    )
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    if installed.returncode != 0:
        notes.append(
            "dependencies taken from this environment's site-packages through a .pth "
            f"(pip could not install them: {installed.stderr.strip().splitlines()[-1:]})"
        )
        run([*pip, "--python", str(python), "install", "--no-compile", "--no-deps", str(wheel)])
        import sysconfig

        (site / "zz-bench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([str(python), "-m", "compileall", "-q", "-j", "0", str(site)])
    run([str(python), "-m", "compileall", "-q", str(FLOORS)])
    check = run([str(python), "-c", "import opcard, sys; print(opcard.__file__)"]).stdout.strip()
    if not check.startswith(str(venv)):
        raise SystemExit(f"the venv's opcard is not the wheel's: {check}")
    return python, commit, notes


# --- the card, GnuPG, OpenSC ----------------------------------------------------------------------


@contextmanager
def pcscd(shared: bool, work: Path) -> Iterator[int]:
    if not shared:
        with private_pcscd(work) as base:
            yield base
        return
    out = run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"]).stdout
    try:
        yield 35963
    finally:
        if out.startswith("started"):
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)


@contextmanager
def emulator(port: int, work: Path, apdu_log: Path) -> Iterator[None]:
    if card_present(READER):
        raise SystemExit(
            f"{READER} already holds a card: stop that emulator (or drop --shared-pcscd)"
        )
    argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(port)]
    argv += ["--profile", "extended", "--personalize", "demo", "--apdu-log", str(apdu_log)]
    with open(work / "emulator.out", "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(READER, present=True)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def gnupg_home(work: Path, env: dict[str, str]) -> Iterator[dict[str, str] | None]:
    """A private GNUPGHOME (short path: the agent's socket) with gpg-agent running and an
    scdaemon sharing the card; None when GnuPG is missing."""
    if not shutil.which("gpg") or not shutil.which("gpg-connect-agent"):
        yield None
        return
    home = Path(tempfile.mkdtemp(prefix="opcard-gpg-", dir="/tmp"))
    home.chmod(0o700)
    (home / "scdaemon.conf").write_text(
        "disable-ccid\npcsc-driver /usr/lib/x86_64-linux-gnu/libpcsclite.so.1\npcsc-shared\n"
        f'reader-port "{READER}"\n'
    )
    genv = dict(env, GNUPGHOME=str(home))
    try:
        run(["gpg-connect-agent", "/bye"], env=genv)
        yield genv
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=genv, capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def apdus(apdu_log: Path, action: Callable[[], object]) -> int:
    """How many command APDUs the card received during ``action``."""
    before = apdu_log.read_bytes().count(b"\n> ") if apdu_log.exists() else 0
    action()
    time.sleep(0.05)
    return apdu_log.read_bytes().count(b"\n> ") - before


# --- timing ---------------------------------------------------------------------------------------


def timed_process(
    argv: list[str], env: dict[str, str], stdin: bytes | None = None
) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return elapsed, proc.stdout


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise SystemExit("serve --stdio closed the connection")
        out += chunk
    return out


def _call(sock: socket.socket, code: int, call: int, signature: bytes, args: bytes) -> bytes:
    """One p11-kit RPC call (frame: code, options length, body length; body: call id, the
    signature as a byte array, the arguments); returns the reply's body."""
    body = struct.pack(">II", call, len(signature)) + signature + args
    sock.sendall(struct.pack(">III", code, 6, len(body)) + b"client" + body)
    got, options, length = struct.unpack(">III", _recv(sock, 12))
    _recv(sock, options)
    reply = _recv(sock, length)
    if got != code or struct.unpack(">I", reply[:4])[0] != call:
        raise SystemExit(f"serve --stdio: unexpected reply to call {call}: {reply[:16].hex()}")
    return reply


def serve_first_slot_list(argv: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    """Start ``argv`` (a serve --stdio) on a socketpair as p11-kit does and time it to the answer
    of its first C_GetSlotList (after the version byte and C_Initialize); returns the slot
    list's reply body."""
    ours, theirs = socket.socketpair()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, env=env)
    theirs.close()
    try:
        ours.sendall(b"\x00")
        _recv(ours, 1)
        init = (
            b"\x01"
            + struct.pack(">I", len(HANDSHAKE))
            + HANDSHAKE
            + b"\x00\x01\x00\x00\x00\x01\x00"
        )
        _call(ours, 1, 1, b"ayyay", init)
        slots = _call(ours, 2, 4, b"yfu", b"\x01" + struct.pack(">I", 16))
        elapsed = time.perf_counter() - t0
    finally:
        ours.close()
        _, err = proc.communicate(timeout=30)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}: {err.decode()[-2000:]}")
    return elapsed, slots


@dataclass
class Process:
    """One command as a process: called, it runs once and returns (seconds, stdout)."""

    argv: list[str]
    env: dict[str, str]

    def __call__(self) -> tuple[float, bytes]:
        return timed_process(self.argv, self.env)


def import_profile(python: Path, process: Process, top: int) -> str:
    """Where the command's imports go (``-X importtime``, bytecode cached): the total, and the
    self time summed per top-level package, largest first."""
    argv = process.argv[1:] if process.argv[0] == str(python) else process.argv
    proc = subprocess.run(
        [str(python), "-X", "importtime", *argv], capture_output=True, env=process.env, check=False
    )
    per_package: dict[str, int] = {}
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if not self_us.isdigit():
            continue
        package = name.split(".")[0]
        per_package[package] = per_package.get(package, 0) + int(self_us)
    total = sum(per_package.values())
    largest = sorted(per_package.items(), key=lambda item: -item[1])[:top]
    parts = ", ".join(f"{name} {us / 1000:.1f}" for name, us in largest)
    return f"imports {total / 1000:.1f} ms: {parts}"


@dataclass
class Row:
    name: str
    run: Callable[[], tuple[float, bytes]]
    floor: str | None = None  # name of the row it is compared with
    target: float | None = None
    apdus: int | None = None
    samples: list[float] = field(default_factory=list)
    run_apdus: list[int] = field(default_factory=list)  # APDUs of each timed run

    @property
    def apdu_text(self) -> str:
        """The APDUs of the timed runs (median; "first→then" when the first check run differs,
        as for scdaemon, which keeps what it read)."""
        timed = int(statistics.median(self.run_apdus)) if self.run_apdus else self.apdus
        return str(timed) if timed == self.apdus else f"{self.apdus}→{timed}"

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=30, help="rounds (runs of each command; default 30)")
    ap.add_argument("--shared-pcscd", action="store_true", help="use the machine's pcscd")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--keep", type=Path, help="build the venv in DIR and keep it")
    ap.add_argument(
        "--floor-pyscard",
        choices=("package", "extension"),
        default="package",
        help="how the floors load pyscard: 'from smartcard import scard' as a plain script does\n"
        "(default), or its C extension alone as opcard's transport does (the package __init__s\n"
        "and SWIG's wrapper, with typing and re, not run)",
    )
    ap.add_argument(
        "--importtime",
        action="store_true",
        help="also print where each command's imports go (-X importtime, per package, ms)",
    )
    args = ap.parse_args()
    if args.n < 1:
        ap.error("-n must be at least 1")
    load_start = os.getloadavg()
    work = args.keep or Path(tempfile.mkdtemp(prefix="opcard-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # not the repository: `python -c` must not import its opcard
    try:
        log("building the wheel and its venv ...")
        python, commit, notes = install_wheel(work)
        bindir = python.parent
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OPCARD_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
        }
        conf = work / "opensc.conf"
        conf.write_text(OPENSC_CONF.format(other=OTHER_READER))
        env.update(OPENSC_CONF=str(conf), LC_ALL="C")
        pin_file, message = work / "pin.txt", work / "hello.txt"
        pin_file.write_text(PIN + "\n")
        message.write_bytes(b"hello, start-up\n")
        apdu_log = work / "apdu.log"
        with pcscd(args.shared_pcscd, work) as port:
            if "PCSCLITE_CSOCK_NAME" in os.environ:
                env["PCSCLITE_CSOCK_NAME"] = os.environ["PCSCLITE_CSOCK_NAME"]
            with emulator(port, work, apdu_log), gnupg_home(work, env) as genv:
                floor_env = {"OPCARD_FLOOR_PYSCARD": args.floor_pyscard}
                rows = measure(
                    args.n, python, bindir, env, genv, pin_file, message, apdu_log, floor_env
                )
                profiles = [
                    f"{row.name}: {import_profile(python, row.run, 8)}"
                    for row in rows
                    if args.importtime
                    and isinstance(row.run, Process)
                    and Path(row.run.argv[0]).parent == bindir  # Python, not the C tools
                ]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    load_end = os.getloadavg()
    header = (
        f"opcard start-up (issue #15): commit {commit}, wheel install with bytecode compiled; "
        f"{args.n} interleaved runs of each; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end; the emulated card through "
        f"{'the machine' if args.shared_pcscd else 'a private'} pcscd; the floors load pyscard "
        + (
            "as a plain script does (from smartcard import scard)"
            if args.floor_pyscard == "package"
            else "'s C extension alone, as opcard does"
        )
    )
    print(header)
    for note in notes:
        print(f"note: {note}")
    print(table(rows, markdown=args.markdown))
    for profile in profiles:
        print(profile)
    return 0


def measure(
    n: int,
    python: Path,
    bindir: Path,
    env: dict[str, str],
    genv: dict[str, str] | None,
    pin_file: Path,
    message: Path,
    apdu_log: Path,
    floor_env: dict[str, str] | None = None,
) -> list[Row]:
    py = str(python)
    opcard = [str(bindir / "opcard")]
    at = [*opcard, "--reader", READER]

    def proc(argv: list[str], extra: dict[str, str] | None = None) -> Process:
        return Process(argv, dict(env, **(extra or {})))

    def floor(name: str, *fargs: str) -> Callable[[], tuple[float, bytes]]:
        return proc([py, str(FLOORS / f"floor_{name}.py"), *fargs], floor_env)

    sign_args = ["--slot", "sig", "--pin-file", str(pin_file), str(message)]
    complete = {"_OPCARD_COMPLETE": "bash_complete"}
    rows = [
        Row("python -c pass", proc([py, "-c", "pass"])),
        Row("opcard --help", proc([*opcard, "--help"]), "python -c pass", 1.5),
        Row(
            "completion: opcard <TAB>",
            proc(opcard, dict(complete, COMP_WORDS="opcard ", COMP_CWORD="1")),
            "python -c pass",
            1.5,
        ),
        Row(
            "completion: opcard cert export --slot <TAB>",
            proc(opcard, dict(complete, COMP_WORDS="opcard cert export --slot ", COMP_CWORD="4")),
            "python -c pass",
            1.5,
        ),
        Row("floor cert export", floor("cert_export", "--reader", READER, "--slot", "aut")),
        Row(
            "opcard cert export --slot aut",
            proc([*at, "cert", "export", "--slot", "aut"]),
            "floor cert export",
            1.3,
        ),
        Row("floor status", floor("status", "--reader", READER)),
        Row("opcard status", proc([*at, "status"]), "floor status", 1.5),
        Row("floor list", floor("list")),
        Row("opcard list", proc([*opcard, "list"]), "floor list", 1.5),
        Row("floor sign", floor("sign", "--reader", READER, *sign_args)),
        Row("opcard sign --pin-file", proc([*at, "sign", *sign_args]), "floor sign", 1.5),
        Row("floor open card", floor("open", "--reader", READER)),
        Row(
            "opcard serve --stdio → 1st C_GetSlotList",
            lambda: serve_first_slot_list([*at, "serve", "--stdio"], env),
            "floor open card",
            1.5,
        ),
        Row(
            "python -m opcard.serve --stdio → 1st C_GetSlotList",
            lambda: serve_first_slot_list(
                [py, "-m", "opcard.serve", "--stdio", "--reader", READER], env
            ),
            "floor open card",
            1.5,
        ),
        Row(
            "import opcard; open_card()",
            proc([py, "-c", f"import opcard; opcard.open_card(reader={READER!r}).close()"]),
            "floor open card",
        ),
        Row(
            "pkcs15-tool --read-certificate 03",
            proc(["pkcs15-tool", "--reader", READER, "--read-certificate", "03"]),
            "floor cert export",
        ),
    ]
    if genv is not None:
        rows.append(
            Row(
                "gpg --card-status (agent running)",
                proc(["gpg", "--card-status"], genv),
                "floor status",
            )
        )
    else:
        log("GnuPG missing: no gpg --card-status row")
    if not shutil.which("pkcs15-tool"):
        raise SystemExit("pkcs15-tool is missing: bash fixtures/rig/setup.sh")

    by_name = {row.name: row for row in rows}
    log("checking outputs and counting APDUs ...")
    outputs: dict[str, bytes] = {}
    for row in rows:
        outputs[row.name] = b""

        def once(row: Row = row) -> None:
            outputs[row.name] = row.run()[1]

        row.apdus = apdus(apdu_log, once)
    same = [
        ("floor cert export", "opcard cert export --slot aut"),
        ("floor cert export", "pkcs15-tool --read-certificate 03"),
        ("floor status", "opcard status"),
        ("floor list", "opcard list"),
        ("floor sign", "opcard sign --pin-file"),
    ]
    for a, b in same:
        if outputs[a] != outputs[b]:
            raise SystemExit(
                f"{a!r} and {b!r} printed different output:\n{outputs[a]!r}\n{outputs[b]!r}"
            )
    for name in outputs:
        if name.endswith("1st C_GetSlotList"):
            # call id, signature "au", then the array: a valid flag, the count, the ids (u64)
            reply = outputs[name]
            if reply[4:10] != b"\0\0\0\x02au" or struct.unpack(">I", reply[11:15])[0] != 1:
                raise SystemExit(f"{name}: C_GetSlotList did not list the card: {reply.hex()}")
    if genv is not None and b"10000001" not in outputs["gpg --card-status (agent running)"]:
        raise SystemExit("gpg --card-status does not show the card's serial")
    if outputs["completion: opcard cert export --slot <TAB>"].split() != [
        b"plain,sig",
        b"plain,dec",
        b"plain,aut",
    ]:
        raise SystemExit("the completion of --slot is not sig/dec/aut")
    log(f"{n} rounds of {len(rows)} commands ...")
    offset = apdu_log.stat().st_size
    for round_no in range(n):
        shift = round_no % len(rows)
        for row in rows[shift:] + rows[:shift]:
            row.samples.append(row.run()[0])
            with open(apdu_log, "rb") as f:  # the emulator logs a command before answering it
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            offset += end
            row.run_apdus.append(chunk[:end].count(b"\n> ") + chunk.startswith(b"> "))
    for row in rows:
        if row.floor is not None:
            assert row.floor in by_name
    return rows


def table(rows: list[Row], *, markdown: bool) -> str:
    by_name = {row.name: row for row in rows}
    head = [
        "command",
        "median ms",
        "min ms",
        "APDUs",
        "vs",
        "ratio (median)",
        "ratio (min)",
        "target",
        "met",
    ]
    lines = []
    for row in rows:
        cells = [row.name, f"{row.median * 1000:.1f}", f"{row.best * 1000:.1f}", row.apdu_text]
        if row.floor is None:
            cells += ["", "", "", "", ""]
        else:
            ref = by_name[row.floor]
            ratio, ratio_min = row.median / ref.median, row.best / ref.best
            target = "" if row.target is None else f"≤ {row.target:g}x"
            met = "" if row.target is None else ("yes" if ratio <= row.target else "no")
            cells += [row.floor, f"{ratio:.2f}", f"{ratio_min:.2f}", target, met]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c or "" for c in cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*cells) for cells in [head, *lines])


if __name__ == "__main__":
    sys.exit(main())
