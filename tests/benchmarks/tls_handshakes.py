"""TLS handshakes with the card key vs the same key in software (a figure, not a test).

    .venv/bin/python tests/benchmarks/tls_handshakes.py [-n 50] [--port 35963|35964]

Starts pcscd if needed (fixtures/rig/pcscd.sh), makes a server certificate for 127.0.0.1 /
localhost issued by the demo CA, and starts ``openssl s_server`` on 127.0.0.1 requiring and
verifying a client certificate (``-Verify 1 -verify_return_error -CAfile fixtures/demo/ca.pem``).
For each card key — P-256 (demo-ecc; TLS 1.3 and TLS 1.2) and RSA-2048 (demo-rsa; TLS 1.2) —
it starts the emulated card on a free vpcd port with an APDU log, opens it through pcscd,
logs in, and runs N handshakes with the card key, alternating with N handshakes with the same
key read from fixtures/demo/<variant>/aut-key.pem as a tlslite-ng software key (pure Python,
tlslite's own implementation), in the same TLS stack: the same connection class with the same
settings and the same server-certificate verification; only the key object differs. A third
series uses opcard's own tlslite key classes with the signature made by ``cryptography`` in
software (OpenSSL) instead of the card: the card path minus the card.

Printed per configuration: the handshake time (median, p90, mean; ``handshakeClientCert``
only, without the TCP connect), the ratios card / software of the medians, the card's APDUs per
handshake counted in the emulator's own log (the target: exactly 1 after login), and the round
trip of one card signature alone (the digest signer, N times). The emulators are stopped at the
end, the s_server killed; pcscd is left as found (stopped if this script started it).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serve")]

from benchrig import PORTS, card_present, reader_of, wait_for  # noqa: E402
from serve_support import free_port, server_credentials  # noqa: E402

from fixtures.apdulog import read_log  # noqa: E402

DEMO = REPO / "fixtures" / "demo"


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    credentials = server_credentials(work)  # the same server certificate the tests use
    cert, key = credentials.cert, credentials.key
    port = free_port()
    argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet", "-naccept", "100000"]
    argv += ["-Verify", "1", "-verify_return_error", "-CAfile", str(DEMO / "ca.pem")]
    argv += ["-cert", str(cert), "-key", str(key)]
    log = work / "s_server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"openssl s_server did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"median {statistics.median(samples) * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms"
        f"  mean {statistics.fmean(samples) * 1000:6.1f} ms"
    )


def commands_in(log: Path) -> int:
    time.sleep(0.05)  # the emulator writes its log after answering
    return sum(1 for e in read_log(log) if e.direction == ">") if log.exists() else 0


def software_handshake(client: Any, key: Any, port: int) -> float:
    """One handshake with ``key`` in tlslite, through opcard's connection class and checks."""
    from opcard.tls import client as tls

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    hook = tls._Verify(client.verifier, "localhost")
    conn = tls._CardTLSConnection(sock, hook)
    started = time.perf_counter()
    conn.handshakeClientCert(client._chain, key, settings=client.settings(), serverName="localhost")
    elapsed = time.perf_counter() - started
    if hook.path is None:
        raise SystemExit("the server certificate was not verified")
    conn.close()
    return elapsed


class SoftwareSigner:
    """The digest signer's interface over a ``cryptography`` private key: with it, opcard's
    own tlslite key classes sign in software (the card path minus the card)."""

    def __init__(self, key: Any) -> None:
        from apdu.openpgp.constants import KeySlot

        self.key = key
        self.slot = KeySlot.AUT

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        from opcard.pkcs11.mechanisms import HASH_ALGORITHMS

        prehashed = utils.Prehashed(HASH_ALGORITHMS[hash_name])
        signature: bytes = self.key.sign(digest, padding.PKCS1v15(), prehashed)
        return signature

    def sign_digest_der(self, digest: bytes, hash_name: str) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        from opcard.pkcs11.mechanisms import HASH_ALGORITHMS

        signature: bytes = self.key.sign(
            digest, ec.ECDSA(utils.Prehashed(HASH_ALGORITHMS[hash_name]))
        )
        return signature


def cryptography_key(variant: str) -> Any:
    """opcard's tlslite key class for ``variant``'s AUT key, signing with cryptography."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from opcard.tls.keys import CardTlsEcdsaKey, CardTlsRsaKey

    key = serialization.load_pem_private_key((DEMO / variant / "aut-key.pem").read_bytes(), None)
    if isinstance(key, rsa.RSAPrivateKey):
        return CardTlsRsaKey(SoftwareSigner(key), key.public_key())  # type: ignore[arg-type]
    return CardTlsEcdsaKey(SoftwareSigner(key), key.public_key())  # type: ignore[arg-type]


def card_handshake(client: Any, port: int) -> float:
    with client.connect("localhost", port) as conn:
        if conn.card_signatures != 1:
            raise SystemExit(f"{conn.card_signatures} card signatures in one handshake")
        return float(conn.handshake_seconds)


def run_configuration(
    variant: str, versions: list[str], n: int, port: int, server_port: int, work: Path
) -> list[dict[str, Any]]:
    import opcard
    from opcard.tls import TlsClient, TlsVersion

    with warnings.catch_warnings():  # tlslite-ng imports asyncore
        warnings.simplefilter("ignore", DeprecationWarning)
        from tlslite.utils.keyfactory import parsePEMKey

    reader = reader_of(port)
    log = work / f"apdu-{variant}.log"
    argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(port)]
    argv += ["--profile", "extended", "--personalize", variant, "--apdu-log", str(log)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    with open(work / f"emulator-{variant}.out", "wb") as output:
        emu = subprocess.Popen(
            argv, cwd=REPO, env=dict(env, PYTHONPATH=str(REPO)), stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    results = []
    try:
        wait_for(reader, present=True)
        software_key = parsePEMKey(
            (DEMO / variant / "aut-key.pem").read_text(), private=True, implementations=["python"]
        )
        fast_key = cryptography_key(variant)
        with opcard.open_card(reader=reader) as card, card.session() as session:
            session.login("123456")
            for version in versions:
                client = TlsClient(
                    session,
                    cafile=DEMO / "ca.pem",
                    min_version=version,
                    max_version=version,
                )
                # warm-up: a handshake each, and the same version negotiated
                with client.connect("localhost", server_port) as conn:
                    if conn.version is not TlsVersion.parse(version):
                        raise SystemExit(f"negotiated {conn.version.label}, not TLS {version}")
                software_handshake(client, software_key, server_port)
                card_times: list[float] = []
                soft_times: list[float] = []
                fast_times: list[float] = []
                before = commands_in(log)
                for _ in range(n):
                    card_times.append(card_handshake(client, server_port))
                    soft_times.append(software_handshake(client, software_key, server_port))
                    fast_times.append(software_handshake(client, fast_key, server_port))
                apdus = commands_in(log) - before
                signer = session.digest_signer("aut")
                digest = bytes(32)
                sign_times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    signer.sign_digest(digest, "sha256")
                    sign_times.append(time.perf_counter() - t0)
                results.append(
                    {
                        "key": client.key_algorithm,
                        "version": f"TLS {version}",
                        "card": card_times,
                        "software": soft_times,
                        "cryptography": fast_times,
                        "apdus": apdus,
                        "sign": sign_times,
                    }
                )
    finally:
        stop(emu)
        wait_for(reader, present=False)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=50, help="handshakes of each kind (default 50)")
    ap.add_argument("--port", type=int, choices=PORTS, help="vpcd port (default: a free one)")
    args = ap.parse_args()
    out = subprocess.run(
        ["bash", str(REPO / "fixtures/rig/pcscd.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    started_pcscd = out.startswith("started")
    work = Path(tempfile.mkdtemp(prefix="opcard-tls-bench-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        ports = [args.port] if args.port else list(PORTS)
        port = next((p for p in ports if not card_present(reader_of(p))), None)
        if port is None:
            raise SystemExit(f"no free vpcd port among {ports}: stop the other emulator")
        server, server_port = start_server(work)
        results: list[dict[str, Any]] = []
        plan: list[tuple[str, list[str]]] = [("demo-ecc", ["1.3", "1.2"]), ("demo-rsa", ["1.2"])]
        for variant, versions in plan:
            results += run_configuration(variant, versions, args.n, port, server_port, work)
        print(
            f"{args.n} handshakes each, card through pcscd + vpcd ({reader_of(port)!r}, "
            "extended profile) vs the same key in tlslite-ng (pure Python), alternating;"
        )
        print("openssl s_server on 127.0.0.1 requiring a client certificate.")
        median: Callable[[list[float]], float] = statistics.median
        for r in results:
            print(f"\n{r['key']} {r['version']}:")
            print(f"  card key      {summary(r['card'])}")
            print(f"  software key  {summary(r['software'])}")
            print(f"  cryptography  {summary(r['cryptography'])}")
            ratio = median(r["card"]) / median(r["software"])
            print(f"  ratio card / software (medians): {ratio:.2f}")
            ratio = median(r["card"]) / median(r["cryptography"])
            print(f"  ratio card / cryptography-backed key (medians): {ratio:.2f}")
            print(
                f"  card APDUs per handshake: {r['apdus'] / args.n:.2f} ({r['apdus']} in {args.n})"
            )
            print(f"  one card signature alone (digest signer): {summary(r['sign'])}")
        print(
            "\n| key | version | card | tlslite software key | ratio | cryptography key "
            "| ratio | card APDUs/handshake | one card signature |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            card, soft, fast = median(r["card"]), median(r["software"]), median(r["cryptography"])
            print(
                f"| {r['key']} | {r['version']} | {card * 1000:.1f} ms | {soft * 1000:.1f} ms "
                f"| {card / soft:.2f} | {fast * 1000:.1f} ms | {card / fast:.2f} "
                f"| {r['apdus'] / args.n:.2f} | {median(r['sign']) * 1000:.2f} ms |"
            )
    finally:
        stop(server)
        if started_pcscd:
            subprocess.run(["bash", str(REPO / "fixtures/rig/pcscd.sh"), "stop"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
