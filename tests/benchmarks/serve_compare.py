"""``opcard serve`` against OpenSC, side by side on one emulated card (a figure, not a test).

    .venv/bin/python tests/benchmarks/serve_compare.py [-n 10] [--variant demo-ecc|demo-rsa]
                                                        [--port 35963|35964]

Starts pcscd if needed (fixtures/rig/pcscd.sh), the emulated card (extended profile, with an
APDU log) on a free vpcd port and a ``gnutls-serv`` on 127.0.0.1 that requires a client
certificate from the demo CA. Then, for each of three ways to reach the card:

- ``opensc-pkcs11.so`` loaded directly by the application (OpenSC's file cache off);
- ``p11-kit server`` wrapping ``opensc-pkcs11.so``, the application loading
  ``p11-kit-client.so``;
- ``opcard serve --login``, the application loading ``p11-kit-client.so``;

it runs, as separate processes, N times each:

- ``p11tool --list-all-certs`` for every token of the card (OpenSC shows an OpenPGP card as
  two tokens, "User PIN" and "User PIN (sig)": both are listed, the figures are the sum), and
- a TLS handshake with client authentication: ``gnutls-cli`` with ``pkcs11:`` URIs for the
  AUT certificate and key (ECDSA over TLS 1.3 with demo-ecc, RSA over TLS 1.2 with demo-rsa),

and prints the wall time of each operation (the first one after the server started, then the
median and minimum of the others) and the APDUs the card received for it (from the
emulator's APDU log). The same handshake with the key in a PEM file is the floor: on this
machine gnutls-cli against gnutls-serv over loopback takes either about 5 ms or about 45 ms
(a TCP delayed ACK between the two, with or without a card), so compare minima as well as
medians. Servers and the emulator are stopped at the end; pcscd is left as found.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serve")]

from benchrig import OPENSC_CONF, PORTS, card_present, reader_of, wait_for  # noqa: E402
from serve_support import server_credentials  # noqa: E402

from fixtures.apdulog import read_log  # noqa: E402
from fixtures.personalize import demo_files  # noqa: E402

OPENSC = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
P11_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
PIN = "123456"
OPCARD_TOKENS = ["pkcs11:token=Jane%20Doe"]
OPENSC_TOKENS = [
    "pkcs11:token=OpenPGP%20card%20%28User%20PIN%29",
    "pkcs11:token=OpenPGP%20card%20%28User%20PIN%20%28sig%29%29",
]
KEY_URI = "pkcs11:id=%03"


@dataclass
class Figures:
    """Wall times (s) and APDU counts of the runs of one operation."""

    times: list[float] = field(default_factory=list)
    apdus: list[int] = field(default_factory=list)

    def line(self) -> str:
        first_t, rest_t = self.times[0], self.times[1:] or self.times
        first_a, rest_a = self.apdus[0], self.apdus[1:] or self.apdus
        return (
            f"first {first_t * 1000:7.1f} ms {first_a:4d} APDUs | then median "
            f"{statistics.median(rest_t) * 1000:7.1f} ms  min {min(rest_t) * 1000:7.1f} ms  "
            f"{statistics.median(rest_a):5.0f} APDUs"
        )


class Bench:
    def __init__(self, log: Path) -> None:
        self.log = log

    def commands(self) -> int:
        return sum(1 for e in read_log(self.log) if e.direction == ">") if self.log.exists() else 0

    def run(
        self, argvs: list[list[str]], env: dict[str, str], expect: str, stdin: bytes | None = None
    ) -> tuple[float, int]:
        """Run the commands one after the other; (total wall time, APDUs the card saw)."""
        before = self.commands()
        total = 0.0
        for argv in argvs:
            t0 = time.perf_counter()
            proc = subprocess.run(
                argv, env=env, capture_output=True, input=stdin, timeout=60, check=False
            )
            total += time.perf_counter() - t0
            out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
            if proc.returncode != 0 or expect not in out:
                raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{out}")
        time.sleep(0.05)  # the emulator writes its log after answering
        return total, self.commands() - before


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
            raise SystemExit(f"server did not start:\n{output.read_text()}")
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=10, help="runs of each operation (default 10)")
    ap.add_argument("--variant", choices=["demo-ecc", "demo-rsa"], default="demo-ecc")
    ap.add_argument("--port", type=int, choices=PORTS, help="vpcd port (default: a free one)")
    args = ap.parse_args()
    tools = {t: shutil.which(t) for t in ("p11tool", "gnutls-cli", "gnutls-serv", "p11-kit")}
    missing = [t for t, p in tools.items() if p is None]
    if missing or not Path(OPENSC).exists() or not Path(P11_CLIENT).exists():
        raise SystemExit(f"missing {missing or 'OpenSC / p11-kit modules'}: fixtures/rig/setup.sh")
    out = subprocess.run(
        ["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    started_pcscd = out.startswith("started")
    work = Path(tempfile.mkdtemp(prefix="opcard-bench-"))
    os.chmod(work, 0o700)
    log = work / "apdu.log"
    bench = Bench(log)
    results: dict[str, dict[str, Figures]] = {}
    try:
        ports = [args.port] if args.port else list(PORTS)
        port = next((p for p in ports if not card_present(reader_of(p))), None)
        if port is None:
            raise SystemExit(f"no free vpcd port among {ports}: stop the other emulator")
        reader, other = reader_of(port), reader_of(PORTS[1] if port == PORTS[0] else PORTS[0])
        (work / "opensc.conf").write_text(OPENSC_CONF.format(other=other))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPCARD_", "P11_KIT_", "GNUTLS_"))
        }
        env.update(OPENSC_CONF=str(work / "opensc.conf"), LC_ALL="C", PYTHONPATH=str(REPO))
        creds = server_credentials(work)
        tls_port = next(p for p in range(44400, 44500) if not _in_use(p))
        priority = "NORMAL" if args.variant == "demo-ecc" else "NORMAL:-VERS-TLS1.3"
        emulator = [
            sys.executable,
            "-m",
            "fixtures.emulator",
            "--port",
            str(port),
            "--profile",
            "extended",
            "--personalize",
            args.variant,
            "--apdu-log",
            str(log),
        ]
        serv = [
            tools["gnutls-serv"] or "",
            "--port",
            str(tls_port),
            "--echo",
            "--require-client-cert",
            "--verify-client-cert",
            "--x509cafile",
            str(creds.ca),
            "--x509certfile",
            str(creds.cert),
            "--x509keyfile",
            str(creds.key),
        ]
        with (
            process(emulator, env, work / "emulator.out"),
            process(serv, env, work / "gnutls-serv.out"),
        ):
            wait_for(reader, present=True)
            time.sleep(0.3)

            def measure(name: str, provider: str, tokens: list[str], env: dict[str, str]) -> None:
                lister = [
                    [tools["p11tool"] or "", "--provider", provider, "--list-all-certs", t]
                    for t in tokens
                ]
                client = [
                    [
                        tools["gnutls-cli"] or "",
                        "--provider",
                        provider,
                        "--priority",
                        priority,
                        "--x509cafile",
                        str(creds.ca),
                        "--x509certfile",
                        f"{KEY_URI};type=cert",
                        "--x509keyfile",
                        f"{KEY_URI};type=private",
                        "-p",
                        str(tls_port),
                        "127.0.0.1",
                    ]
                ]
                figures = {"list": Figures(), "tls": Figures()}
                for _ in range(args.n + 1):
                    t, a = bench.run(lister, env, "type=cert")
                    figures["list"].times.append(t)
                    figures["list"].apdus.append(a)
                for _ in range(args.n + 1):
                    # no data after the handshake: gnutls-cli exits at the end of its input
                    t, a = bench.run(client, env, "Handshake was completed", stdin=b"")
                    figures["tls"].times.append(t)
                    figures["tls"].apdus.append(a)
                results[name] = figures

            # the floor: the same handshake with the AUT key in a PEM file (no card at all)
            files = demo_files(args.variant)
            software = [
                [
                    tools["gnutls-cli"] or "",
                    "--priority",
                    priority,
                    "--x509cafile",
                    str(creds.ca),
                    "--x509certfile",
                    str(files["aut_cert"]),
                    "--x509keyfile",
                    str(files["aut_key"]),
                    "-p",
                    str(tls_port),
                    "127.0.0.1",
                ]
            ]
            floor = Figures()
            for _ in range(args.n + 1):
                t, _a = bench.run(software, env, "Handshake was completed", stdin=b"")
                floor.times.append(t)
                floor.apdus.append(0)

            direct = dict(env, GNUTLS_PIN=PIN)
            measure("opensc-pkcs11.so (direct)", OPENSC, OPENSC_TOKENS, direct)

            sock = work / "p11kit" / "pkcs11"
            sock.parent.mkdir(mode=0o700)
            p11kit = [
                tools["p11-kit"] or "",
                "server",
                "-f",
                "--provider",
                OPENSC,
                "-n",
                str(sock),
                "pkcs11:model=PKCS%2315%20emulated",
            ]
            with process(p11kit, env, work / "p11-kit-server.out") as proc:
                wait_for_file(sock, proc, work / "p11-kit-server.out")
                client_env = dict(env, GNUTLS_PIN=PIN, P11_KIT_SERVER_ADDRESS=f"unix:path={sock}")
                measure("p11-kit server + OpenSC", P11_CLIENT, OPENSC_TOKENS, client_env)

            sock = work / "opcard" / "pkcs11"
            ours = [
                sys.executable,
                "-m",
                "opcard.cli",
                "serve",
                "--socket",
                str(sock),
                "--reader",
                reader,
                "--login",
                "--log-level",
                "warning",
            ]
            with process(ours, dict(env, OPCARD_PIN=PIN), work / "opcard-serve.out") as proc:
                wait_for_file(sock, proc, work / "opcard-serve.out")
                client_env = dict(env, P11_KIT_SERVER_ADDRESS=f"unix:path={sock}")
                measure("opcard serve --login", P11_CLIENT, OPCARD_TOKENS, client_env)
        what = "ECDSA P-256, TLS 1.3" if args.variant == "demo-ecc" else "RSA-2048, TLS 1.2"
        print(
            f"Emulated card ({args.variant}, extended profile) in {reader!r} through pcscd + "
            f"vpcd; {args.n} runs after the first, each a separate process."
        )
        titles = {
            "list": "p11tool --list-all-certs (every token of the card)",
            "tls": f"TLS handshake with client authentication ({what})",
        }
        for op, title in titles.items():
            print(f"\n{title}:")
            for name, figures in results.items():
                print(f"  {name:<27} {figures[op].line()}")
            if op == "tls":
                print(f"  {'key in a PEM file (floor)':<27} {floor.line()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_pcscd:
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)
    return 0


def _in_use(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
