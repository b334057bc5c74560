"""Full vs resumed TLS handshakes: opcard.tls against ``openssl s_client -reconnect`` with the
same card through ``opcard serve`` and libp11's engine (a figure, not a test).

    .venv/bin/python tests/benchmarks/tls_resumption.py [-n 20]

Starts a pcscd of its own (benchrig.private_pcscd: a private mount namespace, root), the
emulated card (extended profile, with its APDU log) on its vpcd, ``opcard serve --login`` on a
Unix socket (the PIN from OPCARD_PIN), and ``openssl s_server`` on 127.0.0.1 requiring and
verifying a client certificate from the demo CA (session IDs and tickets on, OpenSSL's
defaults). For each card key and version — P-256 (demo-ecc) in TLS 1.3 and 1.2, RSA-2048
(demo-rsa) in TLS 1.2 — N rounds, each in turn:

- **opcard**: this process opens the card through pcscd, logs in once, and makes one full
  handshake (the session cache emptied first) and one resumed handshake
  (``TlsClient(session_cache=…)``); the time is ``conn.handshake_seconds``
  (``handshakeClientCert`` alone) and the card's APDUs are counted in the emulator's log;
- **s_client**: ``openssl s_client`` with ``-engine pkcs11 -keyform engine -key pkcs11:…``
  (libp11, ``MODULE_PATH`` = p11-kit-client.so, ``P11_KIT_SERVER_ADDRESS`` = the daemon's
  socket), run once without and once with ``-reconnect`` (a full handshake, then 5
  reconnections offering its session). s_client prints no handshake time: its per-reconnect
  cost is (wall time with -reconnect - wall time without) / 5, TCP connect and shutdown
  included; its APDUs per reconnect likewise from the emulator's log; ``Reused`` in its
  output counts the reconnections the server resumed. The full run writes its session with
  ``-sess_out`` and a third run resumes it with ``-sess_in``: the two process times side by
  side, and their APDUs.

Printed: medians and minima per column, the APDUs, and a Markdown table. Everything it
started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serve"), str(REPO / "tests" / "benchmarks")]

from benchrig import PORTS, private_pcscd, reader_of, wait_for  # noqa: E402
from tls_handshakes import commands_in, start_server, stop  # noqa: E402

DEMO = REPO / "fixtures" / "demo"
P11_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
LIBP11_ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
AUT_URI = "pkcs11:token=Jane%20Doe;id=%03;type=private"
PIN = "123456"
RECONNECTS = 5  # what openssl s_client -reconnect does
PLAN = [("demo-ecc", "1.3"), ("demo-ecc", "1.2"), ("demo-rsa", "1.2")]


def openssl_conf(work: Path) -> Path:
    conf = work / "openssl.cnf"
    conf.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\nengines = engine_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n"
        "[pkcs11_section]\nengine_id = pkcs11\n"
        f"dynamic_path = {LIBP11_ENGINE}\nMODULE_PATH = {P11_CLIENT}\ninit = 0\n"
    )
    return conf


def s_client(
    env: dict[str, str],
    port: int,
    variant: str,
    version: str,
    reconnect: bool,
    work: Path,
    *extra: str,
) -> tuple[float, int, str]:
    """One ``openssl s_client`` run: (wall time, 'Reused' lines, output)."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    argv.append(f"-tls{version.replace('.', '_')}")
    if variant == "demo-rsa":  # PKCS#1 v1.5 only: OpenSSL 3 would pad PSS itself (raw RSA)
        argv += ["-client_sigalgs", "RSA+SHA256:RSA+SHA384"]
    argv += ["-engine", "pkcs11", "-keyform", "engine", "-key", f"{AUT_URI};pin-value={PIN}"]
    argv += ["-cert", str(DEMO / variant / "aut-cert.pem"), "-CAfile", str(DEMO / "ca.pem")]
    argv += ["-verify_return_error", "-servername", "localhost"]
    if reconnect:
        argv.append("-reconnect")
    argv += extra
    out_path = work / "s_client.out"
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            argv, env=env, input=b"", stdout=out, stderr=subprocess.STDOUT, check=False
        )
        elapsed = time.perf_counter() - started
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0 or "Verification: OK" not in text:
        raise SystemExit(f"s_client failed ({proc.returncode}):\n{text[-3000:]}")
    reused = sum(1 for line in text.splitlines() if line.startswith("Reused,"))
    return elapsed, reused, text


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def med_min(samples: list[float]) -> str:
    if not samples:
        return "none"
    return f"{ms(statistics.median(samples))} (min {ms(min(samples))})"


def run_variant(
    variant: str, versions: list[str], n: int, port: int, server_port: int, work: Path,
    env: dict[str, str],
) -> list[dict[str, Any]]:  # fmt: skip
    import opcard
    from opcard.tls import SessionCache, TlsClient, TlsVersion

    reader = reader_of(PORTS[0])  # the private pcscd's reader names are the usual ones
    log = work / f"apdu-{variant}.log"
    argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(port)]
    argv += ["--profile", "extended", "--personalize", variant, "--apdu-log", str(log)]
    emu_env = {k: v for k, v in env.items() if not k.startswith("OPCARD_")}
    with open(work / f"emulator-{variant}.out", "wb") as output:
        emu = subprocess.Popen(
            argv, cwd=REPO, env=dict(emu_env, PYTHONPATH=str(REPO)), stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    daemon: subprocess.Popen[bytes] | None = None
    results = []
    try:
        wait_for(reader, present=True)
        sock = work / f"serve-{variant}" / "pkcs11"
        sock.parent.mkdir(mode=0o700)
        with open(work / f"serve-{variant}.log", "wb") as err:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "opcard.cli", "serve", "--socket", str(sock),
                 "--reader", reader, "--login", "--log-level", "warning"],
                cwd=REPO, env=dict(env, OPCARD_PIN=PIN), stdout=subprocess.PIPE, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        assert daemon.stdout is not None
        line = daemon.stdout.readline().decode().strip()
        if not line.startswith("P11_KIT_SERVER_ADDRESS="):
            raise SystemExit(f"opcard serve did not start: {line!r}")
        client_env = dict(env, P11_KIT_SERVER_ADDRESS=line.split("=", 1)[1])
        client_env["OPENSSL_CONF"] = str(openssl_conf(work))
        with opcard.open_card(reader=reader) as card, card.session() as session:
            session.login(PIN)
            for version in versions:
                cache = SessionCache()
                client = TlsClient(
                    session, cafile=DEMO / "ca.pem", min_version=version, max_version=version,
                    session_cache=cache,
                )  # fmt: skip
                with client.connect("localhost", server_port) as conn:  # warm-up
                    if conn.version is not TlsVersion.parse(version):
                        raise SystemExit(f"negotiated {conn.version.label}, not TLS {version}")
                s_client(client_env, server_port, variant, version, False, work)  # warm-up
                row: dict[str, Any] = {
                    "key": client.key_algorithm, "version": f"TLS {version}",
                    "full": [], "resumed": [], "full_apdus": 0, "resumed_apdus": 0,
                    "resumed_count": 0, "sc_full": [], "sc_reconnect": [],
                    "sc_full_apdus": 0, "sc_reconnect_apdus": 0, "sc_reused": 0,
                    "sc_sess_in": [], "sc_sess_in_apdus": 0, "sc_sess_in_reused": 0,
                }  # fmt: skip
                sess = work / "s_client.session"
                for _ in range(n):
                    cache.clear()
                    a = commands_in(log)
                    with client.connect("localhost", server_port) as conn:
                        if conn.resumed:
                            raise SystemExit("resumed with an empty cache")
                        row["full"].append(conn.handshake_seconds)
                    b = commands_in(log)
                    with client.connect("localhost", server_port) as conn:
                        row["resumed"].append(conn.handshake_seconds)
                        row["resumed_count"] += conn.resumed
                    c = commands_in(log)
                    row["full_apdus"] += b - a
                    row["resumed_apdus"] += c - b
                    t1, _, _ = s_client(
                        client_env, server_port, variant, version, False, work,
                        "-sess_out", str(sess),
                    )  # fmt: skip
                    d = commands_in(log)
                    t2, reused, _ = s_client(client_env, server_port, variant, version, True, work)
                    e = commands_in(log)
                    row["sc_full"].append(t1)
                    row["sc_reconnect"].append((t2 - t1) / RECONNECTS)
                    row["sc_full_apdus"] += d - c
                    row["sc_reconnect_apdus"] += (e - d) - (d - c)
                    row["sc_reused"] += reused
                    if not sess.exists():  # s_client ended before a session was there
                        continue
                    t3, reused, _ = s_client(
                        client_env, server_port, variant, version, False, work,
                        "-sess_in", str(sess),
                    )  # fmt: skip
                    sess.unlink()
                    row["sc_sess_in"].append(t3)
                    row["sc_sess_in_apdus"] += commands_in(log) - e
                    row["sc_sess_in_reused"] += reused
                results.append(row)
    finally:
        if daemon is not None:
            stop(daemon)
            if daemon.stdout is not None:
                daemon.stdout.close()
        stop(emu)
        wait_for(reader, present=False)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="rounds per configuration (default 20)")
    args = ap.parse_args()
    for tool in ("openssl", "pcscd", "unshare"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing")
    for path in (P11_CLIENT, LIBP11_ENGINE):
        if not Path(path).exists():
            raise SystemExit(f"{path} is missing")
    work = Path(tempfile.mkdtemp(prefix="opcard-resume-"))
    server: subprocess.Popen[bytes] | None = None
    results: list[dict[str, Any]] = []
    try:
        with private_pcscd(work) as port:
            env = dict(os.environ)
            server, server_port = start_server(work)
            by_variant: dict[str, list[str]] = {}
            for variant, version in PLAN:
                by_variant.setdefault(variant, []).append(version)
            for variant, versions in by_variant.items():
                results += run_variant(variant, versions, args.n, port, server_port, work, env)
    finally:
        stop(server)
    n = args.n
    print(
        f"{n} rounds per row; the card through a private pcscd + vpcd (extended profile); "
        "openssl s_server on 127.0.0.1 requiring a client certificate."
    )
    for r in results:
        print(f"\n{r['key']} {r['version']}:")
        print(f"  opcard full      {med_min(r['full'])}  APDUs {r['full_apdus'] / n:.2f}")
        print(
            f"  opcard resumed   {med_min(r['resumed'])}  APDUs {r['resumed_apdus'] / n:.2f}"
            f"  (resumed {r['resumed_count']} of {n})"
        )
        print(f"  s_client full run (process)     {med_min(r['sc_full'])}  APDUs "
              f"{r['sc_full_apdus'] / n:.2f}")  # fmt: skip
        print(
            f"  s_client -sess_in run (process) {med_min(r['sc_sess_in'])}  APDUs "
            f"{r['sc_sess_in_apdus'] / max(1, len(r['sc_sess_in'])):.2f}  (-sess_out wrote "
            f"{len(r['sc_sess_in'])} of {n}; Reused {r['sc_sess_in_reused']})"
        )
        print(
            f"  s_client per reconnect          {med_min(r['sc_reconnect'])}  APDUs "
            f"{r['sc_reconnect_apdus'] / (n * RECONNECTS):.2f}  (Reused {r['sc_reused']} of "
            f"{n * RECONNECTS})"
        )
    print(
        "\n| key | version | opcard full | opcard resumed | card APDUs full / resumed "
        "| s_client + libp11: full run | -sess_in run | card APDUs full / -sess_in "
        "| -sess_in resumed | per -reconnect | card APDUs per reconnect | reconnects resumed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['key']} | {r['version']} | {med_min(r['full'])} | {med_min(r['resumed'])} "
            f"| {r['full_apdus'] / n:.2f} / {r['resumed_apdus'] / n:.2f} "
            f"| {med_min(r['sc_full'])} | {med_min(r['sc_sess_in'])} "
            f"| {r['sc_full_apdus'] / n:.2f} / "
            f"{r['sc_sess_in_apdus'] / max(1, len(r['sc_sess_in'])):.2f} "
            f"| {r['sc_sess_in_reused']} of {len(r['sc_sess_in'])} | {med_min(r['sc_reconnect'])} "
            f"| {r['sc_reconnect_apdus'] / (n * RECONNECTS):.2f} "
            f"| {r['sc_reused']} of {n * RECONNECTS} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
