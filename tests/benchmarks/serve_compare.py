"""``opcard serve`` against OpenSC, side by side on one emulated card (a figure, not a test).

    .venv/bin/python tests/benchmarks/serve_compare.py [-n 10] [--variant demo-ecc|demo-rsa]
                                                        [--shared-pcscd] [--json FILE]

Starts a pcscd of its own (a private mount namespace, as OPCARD_RIG_PRIVATE=1 does for the
tests; ``--shared-pcscd`` uses the machine's), the emulated card (extended profile, with an
APDU log), a ``gnutls-serv`` on 127.0.0.1 that requires a client certificate from the demo CA,
and a private sshd on 127.0.0.1 (throwaway host and user keys). Then these ways to reach the
card, all at once:

- **on demand**: p11-kit starts ``python -m opcard.serve --stdio`` itself from a module file
  ``remote: |python -m opcard.serve --stdio --reader …`` (as ``opcard serve --install`` writes
  it) in a private HOME (OpenSC's and
  the trust store's system modules disabled there); GnuTLS loads p11-kit's registered modules
  itself (it refuses ``p11-kit-proxy.so`` as a ``--provider``), the probe below loads
  ``p11-kit-proxy.so``; no variable. p11-kit reads no user module files in a program running
  as root, so every client (of every route, for fairness) runs in a user namespace of its own
  with our uid mapped to 1000 (``unshare --map-user=1000``);
- **on demand through the command line**: the same with ``remote: |python -m opcard.cli serve
  --stdio --reader …`` (what ``--install`` wrote before 46f1b7e: the same server, after
  click and the command line are loaded), so that the change is measured side by side;
- **daemon**: ``opcard serve --login`` on a Unix socket, the application loading
  ``p11-kit-client.so`` with ``P11_KIT_SERVER_ADDRESS``;
- **OpenSC direct**: ``opensc-pkcs11.so`` loaded by the application (file cache off);
- **p11-kit server + OpenSC**: ``p11-kit server`` wrapping ``opensc-pkcs11.so``, the
  application loading ``p11-kit-client.so``;
- **daemon over ssh**: the same daemon reached through a socket forwarded by
  ``ssh -R REMOTE:LOCAL`` into the private sshd (the application uses REMOTE), once with
  ``-N`` (no session: a background forward) and once with ``-tt`` and a remote command (a
  session with a terminal, as an interactive login).

Each round runs, as separate processes and for every route in a rotated order (the first
round in the order above), these operations:

- ``p11tool [--provider MODULE] --list-all-certs pkcs11:serial=…`` (the card's tokens: OpenSC
  shows an OpenPGP card as two, "User PIN" and "User PIN (sig)");
- a TLS handshake with client authentication: ``gnutls-cli [--provider MODULE]`` with
  ``pkcs11:`` URIs for the AUT certificate and key (ECDSA over TLS 1.3 with demo-ecc, RSA over
  TLS 1.2 with demo-rsa); the PIN from GNUTLS_PIN (the daemon holds it already);
- a ctypes client (this script with ``--probe``) loading the module and timing from inside
  (its own Python start excluded) C_Initialize + the first C_GetSlotList, then 100 more
  C_GetSlotList (the cost of one call once connected), then C_Finalize.

The same handshake with the key in a PEM file is the floor (on this machine gnutls-cli against
gnutls-serv over loopback takes either about 5 ms or about 45 ms, a TCP delayed ACK between
the two with or without a card: compare minima as well as medians). For the on-demand route
each round also takes apart the time to the first C_GetSlotList: ``python -m opcard.serve
--stdio`` (and to that answer ``python -m opcard.cli serve --stdio``) started on a socketpair
as p11-kit does (time to the version byte, to the C_GetSlotList answer, to the serving
process's end after the socket closed), the same under ``python -X importtime`` (self time
summed by top-level package), ``python -c pass``, and the imports and the PC/SC open
(context, card open) measured inside a Python process of their own. Bytecode is cached (in a
directory of the run's), as an installed package has it.

Prints one table: per operation and route the wall time of the first run, then the median
and minimum of the others, the APDUs the card received (from the emulator's APDU log) and
the ratios to OpenSC direct; then the ssh forward's extra cost over the plain daemon, the
early exit's gain, the commands the card saw, and the breakdown. Everything it started is
stopped at the end.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[1:2] == ["--probe"]:
    # the C_GetSlotList probe, before any other import: a fresh process loading MODULE
    import ctypes
    import json
    import time

    lib = ctypes.CDLL(sys.argv[2])
    t0 = time.perf_counter()
    functions = ctypes.POINTER(ctypes.c_void_p)()
    assert lib.C_GetFunctionList(ctypes.byref(functions)) == 0
    rv_t = ctypes.c_ulong
    ulong_p = ctypes.POINTER(ctypes.c_ulong)
    # CK_FUNCTION_LIST: a CK_VERSION (2 bytes, padded to a pointer) then the functions in
    # PKCS#11 2.40 order: C_Initialize is index 1, C_Finalize 2, C_GetSlotList 5
    entries = ctypes.cast(functions, ctypes.POINTER(ctypes.c_void_p))
    initialize = ctypes.CFUNCTYPE(rv_t, ctypes.c_void_p)(entries[1])
    finalize = ctypes.CFUNCTYPE(rv_t, ctypes.c_void_p)(entries[2])
    get_slot_list = ctypes.CFUNCTYPE(rv_t, ctypes.c_ubyte, ulong_p, ulong_p)(entries[5])
    rv = initialize(None)
    t1 = time.perf_counter()
    count = ctypes.c_ulong(0)
    rv2 = get_slot_list(1, None, ctypes.byref(count))
    t2 = time.perf_counter()
    calls = 100  # the cost of one call once connected
    for _ in range(calls):
        rv2 |= get_slot_list(1, None, ctypes.byref(count))
    t3 = time.perf_counter()
    rv3 = finalize(None)
    t4 = time.perf_counter()
    times = [t1 - t0, t2 - t0, (t3 - t2) / calls, t4 - t3]
    print(json.dumps({"rv": [rv, rv2, rv3], "slots": count.value, "t": times}))
    sys.exit(0 if (rv, rv2, rv3) == (0, 0, 0) and count.value > 0 else 1)

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serve")]

from benchrig import (  # noqa: E402
    OPENSC_CONF,
    PORTS,
    card_present,
    private_pcscd,
    reader_of,
    wait_for,
)
from serve_support import RawClient, server_credentials  # noqa: E402

from fixtures.apdulog import read_log  # noqa: E402
from fixtures.personalize import demo_files  # noqa: E402

OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
P11_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
P11_PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
PIN = "123456"
KEY_URI = "pkcs11:id=%03"
#: The card's tokens (opcard: one, serial as `opcard list` prints it; OpenSC: two, "User PIN"
#: and "User PIN (sig)", serial with the manufacturer in front): p11tool wants a token URL
#: when a module has several tokens.
OPCARD_CARD, OPENSC_CARD = "pkcs11:serial=10000001", "pkcs11:serial=ff0010000001"

COLUMNS = ("ondemand", "ondemandcli", "daemon", "opensc", "p11kit", "ssh", "sshtty")
LABELS = {
    "ondemand": "on demand (`-m opcard.serve --stdio` from the module file)",
    "daemon": "daemon (`opcard serve --login`)",
    "opensc": "OpenSC's module direct",
    "p11kit": "p11-kit server + OpenSC",
    "ondemandcli": "on demand (`-m opcard.cli serve --stdio`, before 46f1b7e)",
    "ssh": "daemon over `ssh -N -R` socket",
    "sshtty": "daemon over `ssh -tt -R` socket",
    "floor": "key in a PEM file (floor)",
}
OPS = ("list", "tls", "slots", "call")
CARD_URI = {
    "ondemand": OPCARD_CARD,
    "daemon": OPCARD_CARD,
    "opensc": OPENSC_CARD,
    "p11kit": OPENSC_CARD,
    "ondemandcli": OPCARD_CARD,
    "ssh": OPCARD_CARD,
    "sshtty": OPCARD_CARD,
}

#: What ``python -m opcard.serve --stdio`` imports, for the in-process measure of the imports.
SERVE_IMPORTS = (
    "argparse",
    "logging",
    "opcard.serve.stdio",
    "opcard.serve.activation",
    "opcard.serve.errors",
    "opcard.serve.limits",
    "opcard.serve.server",
    "opcard.serve.slots",
    "opcard.serve.pcsc",
    "opcard.serve.functions",
)

#: The two ``--stdio`` entries: as ``--install`` writes it, and through the command line.
ENTRY = {
    "new": ["-m", "opcard.serve", "--stdio"],
    "cli": ["-m", "opcard.cli", "serve", "--stdio"],
}

#: Run by ``python -c`` in a process of its own: the imports, then the PC/SC context, then the
#: monitor's first look (connect, SELECT, GET DATA 6E); times in seconds as JSON.
PARTS_CODE = """
import json, sys, time
t0 = time.perf_counter()
import importlib
for name in {imports!r}:
    importlib.import_module(name)
t1 = time.perf_counter()
from apdu.transport import pcsc
from opcard.serve.pcsc import PcscMonitor
from opcard.serve.slots import Registry
pcsc.reader_states()
t2 = time.perf_counter()
registry = Registry()
PcscMonitor(registry, readers=[{reader!r}]).scan()
t3 = time.perf_counter()
assert registry.slots(present_only=True), "no card attached"
print(json.dumps({{"imports": t1 - t0, "context": t2 - t1, "open": t3 - t2}}))
"""


@dataclass
class Figures:
    """Wall times (s) and APDU counts of the runs of one operation."""

    times: list[float] = field(default_factory=list)
    apdus: list[int] = field(default_factory=list)
    counted: bool = True  # False: no APDU count of its own (shown as "-")

    @property
    def digits(self) -> int:
        return 1 if max(self.times) >= 0.001 else 3

    def add(self, t: float, a: int) -> None:
        self.times.append(t)
        self.apdus.append(a)

    @property
    def rest_t(self) -> list[float]:
        return self.times[1:] or self.times

    @property
    def median(self) -> float:
        return statistics.median(self.rest_t)

    @property
    def minimum(self) -> float:
        return min(self.rest_t)

    @property
    def apdu_range(self) -> str:
        rest = self.apdus[1:] or self.apdus
        low, high = min(rest), max(rest)
        return str(low) if low == high else f"{low}-{high}"

    def cells(self) -> list[str]:
        """first ms (APDUs) | median ms | min ms | APDUs after the first (lowest-highest)."""
        first = f"{self.times[0] * 1000:.{self.digits}f}"
        return [
            f"{first} ({self.apdus[0]})" if self.counted else first,
            f"{self.median * 1000:.{self.digits}f}",
            f"{self.minimum * 1000:.{self.digits}f}",
            self.apdu_range if self.counted else "-",
        ]


class Log:
    """The emulator's APDU log: commands counted, and the INS bytes of the latest ones."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def commands(self) -> list[str]:
        if not self.path.exists():
            return []
        return [e.text for e in read_log(self.path) if e.direction == ">"]

    def count(self) -> int:
        return len(self.commands())

    def settle(self) -> None:
        time.sleep(0.05)  # the emulator writes its log after answering


def run_checked(argv: list[str], env: dict[str, str], expect: str) -> tuple[float, str]:
    """Run ``argv`` to its exit; (wall time, standard output). Its output goes to files, not
    pipes: the time ends when the program exits, not when every process that inherited its
    output (``opcard serve --stdio``'s serving child) has closed it. The wait is a blocking
    waitpid (a timer kills a program stuck for 60 s): ``subprocess.run(timeout=…)`` with no
    pipe to read polls with sleeps doubling from 0.5 ms to 50 ms, which rounds every time up
    to 15.5, 31.5, 63.5, 113.5 … ms."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        # standard input at its end: gnutls-cli exits after the handshake
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(60, proc.kill)
        watchdog.start()
        try:
            proc.wait()
        finally:
            watchdog.cancel()
        elapsed = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        text = stdout + err.read().decode(errors="replace")
    if proc.returncode != 0 or expect not in text:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{text}")
    return elapsed, stdout


@contextlib.contextmanager
def process(
    argv: list[str], env: dict[str, str], output: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args[0]} did not start:\n{output.read_text()}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PairClient(RawClient):
    """The tests' RPC client on one end of a socketpair (as p11-kit talks to ``--stdio``)."""

    def __init__(self, sock: socket.socket) -> None:  # no connect, no handshake yet
        self.sock = sock
        self.code = 0

    def handshake(self) -> None:
        self.sock.sendall(b"\x00")
        self.version = self.recv(1)[0]


@dataclass
class Breakdown:
    """The on-demand route taken apart, one list per measure (seconds)."""

    version: list[float] = field(default_factory=list)  # spawn → version byte answered
    slots: list[float] = field(default_factory=list)  # spawn → C_GetSlotList answered
    slots_cli: list[float] = field(default_factory=list)  # the same, ``-m opcard.cli``
    exit: list[float] = field(default_factory=list)  # socket closed → process gone
    apdus: list[int] = field(default_factory=list)
    ins: list[str] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)  # python -c pass
    imports: list[float] = field(default_factory=list)  # in process, SERVE_IMPORTS
    context: list[float] = field(default_factory=list)  # SCardEstablishContext + status
    open: list[float] = field(default_factory=list)  # connect + SELECT + 6E
    importtime: list[dict[str, float]] = field(default_factory=list)  # package → s (self)


def stdio_run(
    python: str, reader: str, env: dict[str, str], log: Log, importtime: bool, entry: str = "new"
) -> tuple[float, float, float, int, str, str]:
    """``serve --stdio`` (:data:`ENTRY`) on a socketpair: (to the version byte, to the
    C_GetSlotList answer, exit after close, APDUs, INS sequence, stderr)."""
    ours, theirs = socket.socketpair()
    before = log.count()
    argv = [python, *(["-X", "importtime"] if importtime else [])]
    argv += [*ENTRY[entry], "--reader", reader, "--log-level", "warning"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    theirs.close()
    client = PairClient(ours)
    client.handshake()
    t1 = time.perf_counter()
    client.initialize()
    if not client.slots():
        raise SystemExit("opcard serve --stdio: no slot with a token")
    t2 = time.perf_counter()
    ours.close()
    t3 = time.perf_counter()
    _, err = proc.communicate(timeout=30)
    t4 = time.perf_counter()
    log.settle()
    commands = log.commands()[before:]
    return t1 - t0, t2 - t0, t4 - t3, len(commands), ins_of(commands), err.decode()


def ins_of(commands: list[str]) -> str:
    """``A4 CA:6E …``: the INS (and P1P2 of GET DATA) of each command APDU."""
    out = []
    for text in commands:
        raw = text.replace(" ", "")
        ins = raw[2:4].upper()
        out.append(f"{ins}:{raw[4:8].upper()}" if ins in ("CA", "CB", "20") else ins)
    return " ".join(out)


def importtime_by_package(stderr: str) -> dict[str, float]:
    """``-X importtime`` output → self time (s) summed by top-level package."""
    totals: Counter[str] = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header
        totals[fields[2].strip().split(".")[0]] += int(fields[0]) / 1e6
    return dict(totals)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="rounds after the first (default 10)")
    ap.add_argument("--variant", choices=["demo-ecc", "demo-rsa"], default="demo-ecc")
    ap.add_argument("--shared-pcscd", action="store_true", help="use the machine's pcscd")
    ap.add_argument("--json", type=Path, help="write every raw figure to this file")
    ap.add_argument("--keep", type=Path, help="copy the APDU log and server outputs here")
    args = ap.parse_args()
    tools = {
        t: shutil.which(t) or ""
        for t in ("p11tool", "gnutls-cli", "gnutls-serv", "p11-kit", "ssh", "sshd", "ssh-keygen")
    }
    missing = [t for t, p in tools.items() if not p]
    modules = (OPENSC, P11_CLIENT, P11_PROXY)
    if missing or not all(Path(m).exists() for m in modules):
        raise SystemExit(f"missing {missing or 'OpenSC / p11-kit modules'}: fixtures/rig/setup.sh")
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = [shutil.which("unshare") or "unshare", "--map-user=1000", "--map-group=1000"]
    work = Path(tempfile.mkdtemp(prefix="opcard-bench-"))
    os.chmod(work, 0o700)
    log = Log(work / "apdu.log")
    load_start = os.getloadavg()
    started_pcscd = False
    try:
        if args.shared_pcscd:
            out = subprocess.run(
                ["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            started_pcscd = out.startswith("started")
            rig: contextlib.AbstractContextManager[int] = contextlib.nullcontext(PORTS[0])
        else:
            rig = private_pcscd(work)
        with rig as vpcd_base:
            if args.shared_pcscd:
                port = next((p for p in PORTS if not card_present(reader_of(p))), None)
                if port is None:
                    raise SystemExit(f"no free vpcd port among {PORTS}: stop the other emulator")
            else:
                port = vpcd_base
            index = port - vpcd_base if not args.shared_pcscd else port - PORTS[0]
            reader = f"Virtual PCD 00 {index:02d}"
            other = f"Virtual PCD 00 {1 - index:02d}"
            result = bench(args, tools, prefix, work, log, port, reader, other)
        load_end = os.getloadavg()
        report(args, result, reader, load_start, load_end)
        if args.json:
            args.json.write_text(json.dumps(result.raw(), indent=1))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for f in work.glob("*.out"):
                shutil.copy(f, args.keep)
            if log.path.exists():
                shutil.copy(log.path, args.keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_pcscd:
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)
    return 0


@dataclass
class Result:
    figures: dict[str, dict[str, Figures]]
    floor: Figures
    breakdown: Breakdown
    daemon_start_apdus: int
    daemon_start_ins: str
    certs: dict[str, int]
    sequences: dict[tuple[str, str], str]

    def raw(self) -> dict[str, object]:
        return {
            "figures": {
                c: {op: {"times": f.times, "apdus": f.apdus} for op, f in ops.items()}
                for c, ops in self.figures.items()
            },
            "floor": self.floor.times,
            "breakdown": self.breakdown.__dict__,
            "daemon_start": [self.daemon_start_apdus, self.daemon_start_ins],
            "certs": self.certs,
            "sequences": {f"{c} {op}": seq for (c, op), seq in self.sequences.items()},
        }


def bench(
    args: argparse.Namespace,
    tools: dict[str, str],
    prefix: list[str],
    work: Path,
    log: Log,
    port: int,
    reader: str,
    other: str,
) -> Result:
    (work / "opensc.conf").write_text(OPENSC_CONF.format(other=other))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPCARD_", "P11_KIT_S", "GNUTLS_"))
    }
    # private HOMEs: the on-demand route's module file, and the system's modules (OpenSC,
    # the trust store) disabled there, so that p11-kit-proxy.so loads opcard only. The second
    # starts the same server through the command line (what --install wrote before 46f1b7e)
    lines = {
        "home": [sys.executable, *ENTRY["new"], "--reader", reader],
        "homecli": [sys.executable, *ENTRY["cli"], "--reader", reader],
    }
    for name, line in lines.items():
        modules = work / name / ".config" / "pkcs11" / "modules"
        modules.mkdir(parents=True)
        (modules / "opcard.module").write_text(f"remote: |{shlex.join(line)}\n")
        for mod, so in (
            ("opensc-pkcs11", "opensc-pkcs11.so"),
            ("p11-kit-trust", "p11-kit-trust.so"),
        ):
            (modules / f"{mod}.module").write_text(f"module: {so}\nenable-in: opcard-bench-none\n")
    env.update(
        OPENSC_CONF=str(work / "opensc.conf"),
        LC_ALL="C",
        PYTHONPATH=str(REPO),
        HOME=str(work / "home"),
    )
    env.pop("XDG_CONFIG_HOME", None)
    # bytecode cached, as an installed package has it (the rig's PYTHONDONTWRITEBYTECODE=1
    # would have every Python process compile opcard from source), in a directory of ours
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    warm = PARTS_CODE.split("t1 = ")[0].format(imports=SERVE_IMPORTS)
    run_checked([sys.executable, "-c", warm + "import fixtures.emulator"], env, "")
    creds = server_credentials(work)
    tls_port = free_port()
    priority = "NORMAL" if args.variant == "demo-ecc" else "NORMAL:-VERS-TLS1.3"
    emulator = [sys.executable, "-m", "fixtures.emulator", "--port", str(port)]
    emulator += ["--profile", "extended", "--personalize", args.variant]
    emulator += ["--apdu-log", str(log.path)]
    serv = [tools["gnutls-serv"], "--port", str(tls_port), "--echo", "--require-client-cert"]
    serv += ["--verify-client-cert", "--x509cafile", str(creds.ca)]
    serv += ["--x509certfile", str(creds.cert), "--x509keyfile", str(creds.key)]

    p11kit_sock = work / "p11kit" / "pkcs11"
    p11kit_sock.parent.mkdir(mode=0o700)
    p11kit = [tools["p11-kit"], "server", "-f", "--provider", OPENSC, "-n", str(p11kit_sock)]
    p11kit.append("pkcs11:model=PKCS%2315%20emulated")
    daemon_sock = work / "opcard" / "pkcs11"
    daemon = [sys.executable, "-m", "opcard.cli", "serve", "--socket", str(daemon_sock)]
    daemon += ["--reader", reader, "--login", "--log-level", "warning"]

    # sshd on 127.0.0.1 with throwaway keys; ssh -R forwards a socket to the daemon's
    ssh_dir = work / "ssh"
    ssh_dir.mkdir(mode=0o700)
    for key in ("host", "user"):
        subprocess.run(
            [tools["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / key)],
            check=True,
        )
    (ssh_dir / "authorized_keys").write_text((ssh_dir / "user.pub").read_text())
    ssh_port = free_port()
    (ssh_dir / "sshd_config").write_text(
        f"Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {ssh_dir / 'host'}\n"
        f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"PidFile {ssh_dir / 'sshd.pid'}\nLogLevel INFO\nStreamLocalBindUnlink yes\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    forwarded = work / "remote" / "pkcs11"
    forwarded_tty = work / "remote" / "pkcs11-tty"
    forwarded.parent.mkdir(mode=0o700)
    user = os.environ.get("USER") or ("root" if os.geteuid() == 0 else str(os.getuid()))
    ssh = [tools["ssh"], "-F", "/dev/null", "-i", str(ssh_dir / "user"), "-p", str(ssh_port)]
    ssh += ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes"]
    ssh += ["-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={ssh_dir / 'kh'}"]
    ssh += ["-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes"]
    # no session (-N), as a background forward; and a session with a terminal (-tt), as an
    # interactive login: OpenSSH sets TCP_NODELAY on its connection only for the latter
    ssh_n = [*ssh, "-N", "-R", f"{forwarded}:{daemon_sock}", f"{user}@127.0.0.1"]
    ssh_tty = [*ssh, "-tt", "-R", f"{forwarded_tty}:{daemon_sock}", f"{user}@127.0.0.1"]
    ssh_tty.append("sleep 100000")

    files = demo_files(args.variant)
    pin_env = dict(env, GNUTLS_PIN=PIN)
    envs = {
        "ondemand": pin_env,
        "ondemandcli": dict(pin_env, HOME=str(work / "homecli")),
        "daemon": dict(env, P11_KIT_SERVER_ADDRESS=f"unix:path={daemon_sock}"),
        "opensc": pin_env,
        "p11kit": dict(pin_env, P11_KIT_SERVER_ADDRESS=f"unix:path={p11kit_sock}"),
        "ssh": dict(env, P11_KIT_SERVER_ADDRESS=f"unix:path={forwarded}"),
        "sshtty": dict(env, P11_KIT_SERVER_ADDRESS=f"unix:path={forwarded_tty}"),
    }
    provider = {
        "ondemand": P11_PROXY,
        "ondemandcli": P11_PROXY,
        "daemon": P11_CLIENT,
        "opensc": OPENSC,
        "p11kit": P11_CLIENT,
        "ssh": P11_CLIENT,
        "sshtty": P11_CLIENT,
    }
    figures = {c: {op: Figures(counted=op != "call") for op in OPS} for c in COLUMNS}
    floor = Figures()
    parts = Breakdown()
    certs: dict[str, int] = {}
    sequences: dict[tuple[str, str], str] = {}

    def tls_argv(cert: str, key: str, extra: list[str]) -> list[str]:
        argv = [*prefix, tools["gnutls-cli"], *extra, "--priority", priority]
        argv += ["--x509cafile", str(creds.ca), "--x509certfile", cert, "--x509keyfile", key]
        return [*argv, "-p", str(tls_port), "127.0.0.1"]

    def measure(column: str) -> None:
        e, p = envs[column], provider[column]
        # GnuTLS refuses p11-kit-proxy.so as a --provider: without one it loads p11-kit's
        # registered modules itself (those of the private HOME: opcard's only)
        gnutls = [] if p == P11_PROXY else ["--provider", p]

        def card_saw(op: str, before: int, t: float) -> None:
            log.settle()
            commands = log.commands()[before:]
            figures[column][op].add(t, len(commands))
            sequences[(column, op)] = ins_of(commands)

        before = log.count()
        t, out = run_checked(
            [*prefix, tools["p11tool"], *gnutls, "--list-all-certs", CARD_URI[column]],
            e,
            "type=cert",
        )
        card_saw("list", before, t)
        certs[column] = out.count("type=cert")
        before = log.count()
        argv = tls_argv(f"{KEY_URI};type=cert", f"{KEY_URI};type=private", gnutls)
        t, _ = run_checked(argv, e, "Handshake was completed")
        card_saw("tls", before, t)
        before = log.count()
        _, out = run_checked([*prefix, sys.executable, __file__, "--probe", p], e, '"rv"')
        probe = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
        card_saw("slots", before, probe["t"][1])  # APDUs: the whole probe, its 100 calls too
        figures[column]["call"].add(probe["t"][2], 0)

    def take_apart() -> None:
        v, s, x, a, ins, _ = stdio_run(sys.executable, reader, env, log, importtime=False)
        parts.version.append(v)
        parts.slots.append(s)
        parts.exit.append(x)
        parts.apdus.append(a)
        parts.ins.append(ins)
        parts.slots_cli.append(stdio_run(sys.executable, reader, env, log, False, "cli")[1])
        *_, err = stdio_run(sys.executable, reader, env, log, importtime=True)
        parts.importtime.append(importtime_by_package(err))
        t, _ = run_checked([sys.executable, "-c", "pass"], env, "")
        parts.bare.append(t)
        code = PARTS_CODE.format(imports=SERVE_IMPORTS, reader=reader)
        _, out = run_checked([sys.executable, "-c", code], env, "imports")
        got = json.loads(out.splitlines()[-1])
        parts.imports.append(got["imports"])
        parts.context.append(got["context"])
        parts.open.append(got["open"])

    def floor_run() -> None:
        argv = tls_argv(str(files["aut_cert"]), str(files["aut_key"]), [])
        t, _ = run_checked(argv, env, "Handshake was completed")
        floor.add(t, 0)

    with (
        process(emulator, env, work / "emulator.out"),
        process(serv, env, work / "gnutls-serv.out"),
        process(
            [tools["sshd"], "-D", "-e", "-f", str(ssh_dir / "sshd_config")], env, work / "sshd.out"
        ),
        process(p11kit, env, work / "p11-kit-server.out") as p11kit_proc,
    ):
        wait_for(reader, present=True)
        wait_for_file(p11kit_sock, p11kit_proc, work / "p11-kit-server.out")
        time.sleep(0.3)
        before = log.count()
        with process(daemon, dict(env, OPCARD_PIN=PIN), work / "opcard-serve.out") as daemon_proc:
            wait_for_file(daemon_sock, daemon_proc, work / "opcard-serve.out")
            log.settle()
            daemon_start = log.commands()[before:]
            with (
                process(ssh_n, env, work / "ssh.out") as ssh_proc,
                process(ssh_tty, env, work / "ssh-tty.out") as ssh_tty_proc,
            ):
                wait_for_file(forwarded, ssh_proc, work / "ssh.out")
                wait_for_file(forwarded_tty, ssh_tty_proc, work / "ssh-tty.out")
                steps: dict[str, Callable[[], None]] = {
                    c: (lambda c=c: measure(c)) for c in COLUMNS
                }
                steps["floor"] = floor_run
                steps["parts"] = take_apart
                order = [*COLUMNS, "floor", "parts"]
                for rnd in range(args.n + 1):
                    for name in order[rnd % len(order) :] + order[: rnd % len(order)]:
                        steps[name]()
                    print(f"round {rnd} done", file=sys.stderr, flush=True)
    return Result(figures, floor, parts, len(daemon_start), ins_of(daemon_start), certs, sequences)


def ms(x: float) -> str:
    return f"{x * 1000:.1f}" if abs(x) >= 0.001 else f"{x * 1000:.3f}"


def table(r: Result, what: str) -> str:
    """One Markdown table: every operation and route, OpenSC direct as the reference."""
    titles = {
        "list": "`p11tool --list-all-certs`",
        "tls": f"TLS handshake, client auth ({what})",
        "slots": "first C_GetSlotList (fresh process)",
        "call": "one more C_GetSlotList (mean of 100)",
    }
    opensc = r.figures["opensc"]
    lines = [
        "| operation | route | first ms (APDUs) | median ms | min ms | APDUs after the first "
        "| vs OpenSC direct: median, min |",
        "|---|---|---|---|---|---|---|",
    ]
    for op, title in titles.items():
        rows = [(LABELS[c], r.figures[c][op]) for c in COLUMNS]
        if op == "tls":
            rows.append((LABELS["floor"], r.floor))
        for i, (label, f) in enumerate(rows):
            ratio = f"{f.median / opensc[op].median:.2f}, {f.minimum / opensc[op].minimum:.2f}"
            lines.append(
                f"| {title if i == 0 else ''} | {label} | "
                + " | ".join(f.cells())
                + f" | {ratio} |"
            )
    return "\n".join(lines)


def report(
    args: argparse.Namespace,
    r: Result,
    reader: str,
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
) -> None:
    what = "ECDSA P-256, TLS 1.3" if args.variant == "demo-ecc" else "RSA-2048, TLS 1.2"
    print(
        f"Emulated card ({args.variant}, extended profile) in {reader!r} through "
        f"{'the shared' if args.shared_pcscd else 'a private'} pcscd + vpcd; {args.n} rounds "
        "after the first, columns interleaved (rotated order), each operation a separate "
        f"process. Load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end."
    )
    print()
    print(table(r, what))
    print("\nssh forward, extra over the plain daemon (median / min):")
    for column in ("ssh", "sshtty"):
        for op in OPS:
            d, s = r.figures["daemon"][op], r.figures[column][op]
            print(f"  {column} {op}: {ms(s.median - d.median)} / {ms(s.minimum - d.minimum)} ms")
    print("\non demand, -m opcard.cli serve --stdio - -m opcard.serve --stdio (median / min):")
    for op in OPS:
        after, before = r.figures["ondemand"][op], r.figures["ondemandcli"][op]
        print(
            f"  {op}: {ms(before.median - after.median)} / {ms(before.minimum - after.minimum)} ms"
        )
    print(f"\ncertificates listed: {r.certs}")
    print("commands the card saw, last run (INS, and P1P2 of GET DATA / VERIFY):")
    for (column, op), seq in r.sequences.items():
        if column in ("ondemand", "daemon", "opensc"):
            print(f"  {column} {op}: {seq}")
    print(f"daemon start (scan + --login): {r.daemon_start_apdus} APDUs: {r.daemon_start_ins}")
    b = r.breakdown

    def med(xs: list[float]) -> str:
        return f"{ms(statistics.median(xs))} (min {ms(min(xs))})"

    print("\nOn demand, taken apart (median over all rounds, ms):")
    print(f"  -m opcard.serve --stdio on a socketpair: version byte answered {med(b.version)}")
    print(f"    C_Initialize + C_GetSlotList answered {med(b.slots)} after the spawn")
    print(f"    the same through -m opcard.cli serve --stdio: {med(b.slots_cli)}")
    print(f"    exit after the socket closed {med(b.exit)}; APDUs {statistics.median(b.apdus):g}")
    print(f"    commands: {Counter(b.ins).most_common(2)}")
    print(f"  python -c pass: {med(b.bare)}")
    print(f"  imports of -m opcard.serve --stdio in process: {med(b.imports)}")
    print(f"  PC/SC context (establish + reader states): {med(b.context)}")
    print(f"  card open (connect, SELECT, GET DATA 6E): {med(b.open)}")
    packages = sorted({p for d in b.importtime for p in d})
    per = {p: statistics.median([d.get(p, 0.0) for d in b.importtime]) for p in packages}
    total = statistics.median([sum(d.values()) for d in b.importtime])
    print(f"  -X importtime, self time by top-level package (median; total {ms(total)}):")
    for p, t in sorted(per.items(), key=lambda kv: -kv[1])[:15]:
        print(f"    {p:<24} {ms(t)}")


if __name__ == "__main__":
    sys.exit(main())
