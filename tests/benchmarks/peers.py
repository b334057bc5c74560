"""opcard and its peers side by side on the same emulated card (a figure, not a test).

    .venv/bin/python tests/benchmarks/peers.py [-n 1000] [--slow-n 200] [--rounds 3]
        [--variants ecc,rsa] [--peers floor,opcard,yubikit,openpgppy,gnupg,opensc]
        [--markdown] [--json FILE] [--keep-logs DIR] [--no-install] [--shared-pcscd]

Measures, through pcscd and vpcd on one emulated OpenPGP card (profile "extended"),
  (a) open the card and list its keys and certificates with their attributes,
  (b) open the card and export the AUT certificate,
  (c) N signatures with the AUT key (INTERNAL AUTHENTICATE) after login,
for the P-256 card (demo-ecc) and the RSA-2048 card (demo-rsa), with:
  floor      the same INTERNAL AUTHENTICATE APDU bytes sent bare with pyscard's SCardTransmit
             on a connected handle after VERIFY 82 (project .venv)
  opcard     this project (project .venv)
  yubikit    yubikey-manager's OpenPgpSession (venv .bench-venvs/yubikit)
  openpgppy  OpenPGPpy (venv .bench-venvs/openpgppy, pinned pyscard 2.0.8)
  gnupg      gpg --card-status; SCD READCERT / SCD PKAUTH through gpg-agent and scdaemon
             (N = --slow-n)
  opensc     pkcs11-tool -O, pkcs15-tool --read-certificate 03, one pkcs11-tool --sign

APDUs are counted in the emulator's APDU log (command lines written during each phase);
times are time.perf_counter() around the phase inside the worker (for gnupg's list and for
opensc: around the tool's process). Each peer runs as a subprocess worker
(tests/benchmarks/peer_workers/<peer>_worker.py) printing JSON; the card is reset
(SCardDisconnect with SCARD_RESET_CARD) before each worker, so every peer starts from a fresh
power-up. The loops run in --rounds rounds (peers in rotated order, N / rounds signatures
each) and are pooled, so that load from elsewhere on the machine spreads over all peers.
Every exported certificate is compared byte for byte with fixtures/demo, and the first and
last signature of every loop are verified with `cryptography` against the AUT certificate.

By default the run has a pcscd of its own (a private mount namespace, as tests/conftest.py
does for OPCARD_RIG_PRIVATE=1: root and unshare needed), so that it neither takes the shared
readers from other users of the machine nor sees their traffic; --shared-pcscd uses the
machine's pcscd (reused, or started and stopped again) and reader "Virtual PCD 00 01".
The peers are NOT project dependencies: the venvs under .bench-venvs/ (git-ignored) are made on
first use (--no-install refuses instead). The emulators, workers and the private GnuPG home's
gpg-agent/scdaemon are stopped at the end. On real cards each APDU costs milliseconds over
USB, so the APDU counts are the figures that carry over; the times are those of this machine
and this emulator. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
WORKERS = Path(__file__).resolve().parent / "peer_workers"
DEMO = REPO / "fixtures" / "demo"
PCSC_LIB = "/usr/lib/x86_64-linux-gnu/libpcsclite.so.1"
OPENSC_PKCS11 = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
FIRST_PORT = 35963

VARIANTS = {"ecc": ("demo-ecc", "P-256"), "rsa": ("demo-rsa", "RSA-2048")}
ALL_PEERS = ("floor", "opcard", "yubikit", "openpgppy", "gnupg", "opensc")
PEER_LABELS = {
    "floor": "floor (bare SCardTransmit)",
    "opcard": "opcard",
    "yubikit": "yubikit OpenPgpSession",
    "openpgppy": "OpenPGPpy",
    "gnupg": "GnuPG (gpg-agent+scdaemon)",
    "opensc": "OpenSC tools (reference)",
}

sys.path.insert(0, str(WORKERS))
from _common import DIGEST, internal_authenticate_apdu  # noqa: E402
from benchrig import private_pcscd  # noqa: E402

# --- venvs of the peers ------------------------------------------------------------------------


def _pip(venv: Path, *args: str, env: dict[str, str] | None = None) -> None:
    log = venv.parent / f"{venv.name}-pip.log"
    with open(log, "ab") as out:
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"pip install {' '.join(args)} failed in {venv}:\n" + "\n".join(tail))


def _has(venv: Path, module: str) -> bool:
    python = venv / "bin" / "python"
    return (
        python.exists()
        and subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode
        == 0
    )


def ensure_venv(peer: str, root: Path, install: bool) -> Path:
    """The venv of ``peer`` (made and filled on first use); returns its python."""
    module = {"yubikit": "yubikit.openpgp", "openpgppy": "OpenPGPpy"}[peer]
    venv = root / peer
    if _has(venv, module):
        return venv / "bin" / "python"
    if not install:
        raise SystemExit(f"{venv} lacks {module} (run without --no-install to make it)")
    print(f"[peers] making {venv} (once; pip output in {venv}-pip.log)", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    if peer == "yubikit":
        _pip(venv, "yubikey-manager")
    else:
        # OpenPGPpy pins pyscard 2.0.8, which has no wheel: its build needs swig, and its
        # SWIG interface no longer compiles with swig >= 4.1 ("$function" in the wrapper).
        # swig 4.0.2 from PyPI builds it; without build isolation so that the build sees it.
        _pip(venv, "swig<4.1", "setuptools", "wheel")
        env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        _pip(venv, "--no-build-isolation", "OpenPGPpy", env=env)
    if not _has(venv, module):
        raise SystemExit(f"{venv}: {module} still cannot be imported")
    return venv / "bin" / "python"


# --- PC/SC and the emulator --------------------------------------------------------------------


def _scard() -> Any:
    try:
        import smartcard.scard as sc
    except ImportError as e:
        raise SystemExit(f"pyscard is missing ({e}): run bash fixtures/rig/setup.sh") from e
    return sc


def wait_card(reader: str, present: bool, timeout: float) -> bool:
    sc = _scard()
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit("no PC/SC service: is pcscd running?")
    try:
        deadline = time.monotonic() + timeout
        current = sc.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            hr, states = sc.SCardGetStatusChange(ctx, 250, [(reader, current)])
            if hr == sc.SCARD_S_SUCCESS:
                event = states[0][1]
                current = event & ~sc.SCARD_STATE_CHANGED
                is_present = bool(event & sc.SCARD_STATE_PRESENT) and not (
                    event & sc.SCARD_STATE_MUTE
                )
                if is_present == present:
                    return True
        return False
    finally:
        sc.SCardReleaseContext(ctx)


def reset_card(reader: str) -> None:
    """Connect and disconnect with SCARD_RESET_CARD: the next peer finds a fresh card."""
    sc = _scard()
    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    try:
        for _ in range(50):
            hr, card, _proto = sc.SCardConnect(
                ctx, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
            )
            if hr == sc.SCARD_S_SUCCESS:
                sc.SCardDisconnect(card, sc.SCARD_RESET_CARD)
                return
            time.sleep(0.1)  # a worker's exclusive hold may still be going away
        raise SystemExit(f"cannot connect to {reader} to reset the card: {hr:#x}")
    finally:
        sc.SCardReleaseContext(ctx)


@dataclass
class Emulator:
    index: int  # reader "Virtual PCD 00 0<index>"
    port: int  # its vpcd TCP port (35963 + index on the shared rig)
    personalize: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / f"apdu-{self.personalize}.log"

    @property
    def reader(self) -> str:
        return f"Virtual PCD 00 {self.index:02d}"

    def start(self, wait_free: float) -> None:
        if not wait_card(self.reader, present=False, timeout=wait_free):
            raise SystemExit(
                f"{self.reader} (port {self.port}) holds another card for more than "
                f"{wait_free:.0f} s: another emulator is connected there (use --reader-index, "
                "or a private pcscd: drop --shared-pcscd)"
            )
        argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(self.port)]
        argv += ["--profile", "extended", "--personalize", self.personalize]
        argv += ["--apdu-log", str(self.log)]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.workdir / f"emulator-{self.personalize}.out", "ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not wait_card(self.reader, present=True, timeout=20):
            self.stop()
            raise SystemExit(f"the emulator did not show up in {self.reader}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wait_card(self.reader, present=False, timeout=5)


@contextmanager
def shared_pcscd() -> Iterator[int]:
    """The machine's pcscd (fixtures/rig/pcscd.sh: reused, or started and stopped again)."""
    script = REPO / "fixtures" / "rig" / "pcscd.sh"
    out = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"pcscd: {out.stderr.strip()}")
    started = out.stdout.startswith("started")
    try:
        yield FIRST_PORT
    finally:
        if started:
            subprocess.run(["bash", str(script), "stop"], capture_output=True)


# --- workers -----------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    pythons: dict[str, str]
    reader_index: int
    vpcd_base: int


def run_worker(
    ctx: Context, peer: str, emu: Emulator, variant: str, n: int, phases: str
) -> dict[str, Any]:
    python = ctx.pythons.get(peer, sys.executable)
    argv = [python, str(WORKERS / f"{peer}_worker.py"), "--reader", emu.reader]
    argv += ["--apdu-log", str(emu.log), "--variant", variant, "-n", str(n), "--phases", phases]
    if peer == "gnupg":
        argv += ["--gnupghome", str(ctx.workdir / "gnupg")]
    if peer == "opensc":
        argv += ["--opensc-conf", str(ctx.workdir / "opensc.conf")]
        argv += ["--pkcs11-module", OPENSC_PKCS11]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if peer == "opcard":
        env["PYTHONPATH"] = str(REPO)  # the working tree's opcard and apdu
    reset_card(emu.reader)
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=ctx.args.worker_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker's own process group
        proc.communicate()
        return {"peer": peer, "error": f"timed out after {ctx.args.worker_timeout} s"}
    except BaseException:  # Ctrl-C: the worker is in a session of its own, stop it too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    lines = stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(stderr.decode(errors="replace").strip().splitlines()[-12:])
        return {"peer": peer, "error": f"exit {proc.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- checking the results ----------------------------------------------------------------------


def _aut_cert(personalize: str) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate((DEMO / personalize / "aut-cert.pem").read_bytes())


def verify_signature(personalize: str, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    key = _aut_cert(personalize).public_key()
    signature = bytes.fromhex(signature_hex)
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * size:  # raw r || s, as the card answers
                signature = utils.encode_dss_signature(
                    int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
                )
            key.verify(signature, DIGEST, ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, DIGEST, padding.PKCS1v15(), prehashed)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def check(result: dict[str, Any], personalize: str) -> list[str]:
    """Problems with a worker's results (certificate bytes, signatures); [] when all good."""
    from cryptography.hazmat.primitives.serialization import Encoding

    problems = []
    phases = result.get("phases", {})
    for name, phase in phases.items():
        if "error" in phase:
            problems.append(f"{name}: {phase['error']}")
    export = phases.get("export", {})
    if "cert_der" in export:
        expected = _aut_cert(personalize).public_bytes(Encoding.DER).hex()
        if export["cert_der"] != expected:
            problems.append("export: the certificate differs from fixtures/demo aut-cert.pem")
    signatures = list(phases.get("sign", {}).get("signatures", []))
    first = phases.get("login", {}).get("first_signature")
    if first:
        signatures.append(first)
    for sig in signatures:
        if not verify_signature(personalize, sig):
            problems.append(f"a signature does not verify: {sig[:24]}...")
            break
    return problems


def parse_apdu(text: str) -> tuple[bytes, bytes, str]:
    """(header, data, Le description) of a logged command APDU (hex)."""
    apdu = bytes.fromhex(text)
    body = apdu[4:]
    if not body:
        return apdu[:4], b"", "no Le"
    if body[0] != 0 or len(body) == 1:  # short
        lc = body[0] if len(body) > 1 else 0
        data = body[1 : 1 + lc] if len(body) > 1 else b""
        rest = body[1 + lc :] if len(body) > 1 else body
        return apdu[:4], data, f"short Le {rest.hex().upper()}" if rest else "no Le"
    lc = int.from_bytes(body[1:3], "big")
    data, rest = body[3 : 3 + lc], body[3 + lc :]
    return apdu[:4], data, f"extended Le {rest.hex().upper()}" if rest else "no Le (extended Lc)"


def describe_difference(sent: str, floor: str) -> str:
    """How a peer's INTERNAL AUTHENTICATE differs from the floor's (same data, other Le...)."""
    header, data, le = parse_apdu(sent)
    floor_header, floor_data, floor_le = parse_apdu(floor)
    same = (
        "same header and data"
        if (header, data) == (floor_header, floor_data)
        else (f"OTHER data ({len(data)} bytes)")
    )
    return f"differs from the floor's: {same}, {le} (the floor: {floor_le})"


# --- figures -----------------------------------------------------------------------------------


@dataclass
class Row:
    peer: str
    list_apdus: int | None = None
    list_ms: float | None = None
    export_apdus: int | None = None
    export_call: int | None = None
    export_ms: float | None = None
    login_apdus: int | None = None
    sig_apdus: float | None = None
    sig_apdus_no_c0: float | None = None
    n: int = 0
    sig_per_s: float | None = None
    median_us: float | None = None
    p90_us: float | None = None
    ratio_median: float | None = None
    ratio_mean: float | None = None
    batch_us: float | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def make_row(result: dict[str, Any]) -> Row:
    row = Row(result.get("peer", "?"))
    if "error" in result:
        row.problems.append(result["error"])
        return row
    if "unavailable" in result:
        row.notes.append(f"not measured: {result['unavailable']}")
    row.notes += result.get("notes", [])
    phases = result.get("phases", {})
    if (p := phases.get("list")) and "apdus" in p:
        row.list_apdus, row.list_ms = p["apdus"], p["seconds"] * 1e3
    if (p := phases.get("export")) and "apdus" in p:
        row.export_apdus, row.export_ms = p["apdus"], p["seconds"] * 1e3
        row.export_call = p.get("call_apdus")
    if (p := phases.get("login")) and "apdus" in p:
        row.login_apdus = p["apdus"]
    if (p := phases.get("sign")) and "apdus" in p and p.get("n"):
        n = row.n = p["n"]
        row.sig_apdus = p["apdus"] / n
        counts = p.get("command_counts", {})
        c0 = sum(v for k, v in counts.items() if k[2:4] == "C0")
        row.sig_apdus_no_c0 = (p["apdus"] - c0) / n
        samples = sorted(p["samples_us"])
        row.sig_per_s = n / p["seconds"]
        row.median_us = statistics.median(samples)
        row.p90_us = samples[int(0.9 * (len(samples) - 1))]
    if (p := phases.get("sign_batch")) and "us_per_signature" in p:
        row.batch_us = p["us_per_signature"]
    return row


def _f(value: float | int | None, fmt: str = "{:.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def _apdus_per_sig(row: Row) -> str:
    if row.sig_apdus is None:
        return "—"
    text = f"{row.sig_apdus:g}"
    if row.sig_apdus_no_c0 is not None and row.sig_apdus_no_c0 != row.sig_apdus:
        text += f" ({row.sig_apdus_no_c0:g} w/o C0)"
    return text


HEADERS = (
    "peer",
    "(a) APDUs",
    "(a) ms",
    "(b) APDUs (call)",
    "(b) ms",
    "open+PIN+1st sig",
    "(c) APDUs/sig",
    "n",
    "sig/s",
    "µs/sig med",
    "µs p90",
    "vs floor med",
    "vs floor mean",
)


def cells(row: Row) -> list[str]:
    export = _f(row.export_apdus)
    if row.export_call is not None:
        export += f" ({row.export_call})"
    return [
        PEER_LABELS.get(row.peer, row.peer),
        _f(row.list_apdus),
        _f(row.list_ms, "{:.1f}"),
        export,
        _f(row.export_ms, "{:.1f}"),
        _f(row.login_apdus),
        _apdus_per_sig(row),
        str(row.n) if row.n else "—",
        _f(row.sig_per_s),
        _f(row.median_us, "{:.0f}"),
        _f(row.p90_us, "{:.0f}"),
        _f(row.ratio_median, "{:.2f}"),
        _f(row.ratio_mean, "{:.2f}"),
    ]


def text_table(rows: list[Row]) -> str:
    table = [list(HEADERS)] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    out = []
    for k, line in enumerate(table):
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: list[Row]) -> str:
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One peer's worker results of all rounds as one: the sign loops pooled."""
    base: dict[str, Any] = json.loads(json.dumps(results[0]))
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        base.setdefault("error", "; ".join(errors))
    total = base.get("phases", {}).get("sign")
    for extra in results[1:]:
        sign = extra.get("phases", {}).get("sign")
        if "error" in extra or not sign or total is None or "apdus" not in sign:
            continue
        for key in ("apdus", "seconds", "n"):
            total[key] += sign[key]
        total["samples_us"] += sign["samples_us"]
        total["signatures"] += sign["signatures"]
        for ins, count in sign.get("command_counts", {}).items():
            total["command_counts"][ins] = total["command_counts"].get(ins, 0) + count
        base["phases"].setdefault("login_later_rounds", []).append(
            extra["phases"].get("login", {}).get("apdus")
        )
    base["rounds"] = len(results)
    return base


def measure_variant(ctx: Context, variant: str) -> tuple[list[Row], list[dict[str, Any]]]:
    """All peers on one card: round 1 with every phase, then sign-only rounds in rotated
    order; each round signs n / rounds times per peer, and the loops are pooled, so that a
    burst of load from elsewhere on the machine spreads over every peer alike."""
    args = ctx.args
    personalize, _label = VARIANTS[variant]
    emu = Emulator(ctx.reader_index, ctx.vpcd_base + ctx.reader_index, personalize, ctx.workdir)
    by_peer: dict[str, list[dict[str, Any]]] = {p: [] for p in args.peers}
    emu.start(args.wait_reader)
    try:
        for round_no in range(args.rounds):
            order = (
                args.peers[round_no % len(args.peers) :] + args.peers[: round_no % len(args.peers)]
            )
            for peer in order:
                if round_no and peer == "opensc":
                    continue  # no loop to repeat
                total = args.slow_n if peer == "gnupg" else args.n
                n = total // args.rounds + (total % args.rounds if round_no == 0 else 0)
                phases = "sign" if peer == "floor" or round_no else "list,export,sign"
                if peer == "gnupg" and round_no == 0:
                    phases += ",batch"
                print(
                    f"[peers] {personalize} round {round_no + 1}/{args.rounds}: {peer} (n={n})",
                    file=sys.stderr,
                    flush=True,
                )
                by_peer[peer].append(run_worker(ctx, peer, emu, variant, n, phases))
    finally:
        emu.stop()
        if args.keep_logs:
            dest = Path(args.keep_logs)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(emu.log, dest / emu.log.name)

    results = [merge(r) for r in by_peer.values() if r]
    floor_apdu = internal_authenticate_apdu(variant).hex().upper()
    rows: list[Row] = []
    floor: Row | None = None
    for result in results:
        row = make_row(result)
        row.problems += check(result, personalize) if "error" not in result else []
        sign = result.get("phases", {}).get("sign", {})
        sent = sign.get("auth_apdu")
        if sent and result.get("peer") != "floor" and sent != floor_apdu:
            row.notes.append(f"its INTERNAL AUTHENTICATE {describe_difference(sent, floor_apdu)}")
        if result.get("peer") == "floor":
            floor = row
        else:
            rows.append(row)
    if floor is not None and floor.median_us and floor.sig_per_s:
        for row in rows:
            if row.median_us is not None and row.sig_per_s:
                row.ratio_median = row.median_us / floor.median_us
                row.ratio_mean = floor.sig_per_s / row.sig_per_s
        floor.ratio_median = floor.ratio_mean = 1.0
    ordered = ([floor] if floor else []) + sorted(rows, key=lambda r: ALL_PEERS.index(r.peer))
    return ordered, results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "-n",
        type=int,
        default=1000,
        help="signatures per peer and card, over all rounds (default 1000)",
    )
    ap.add_argument(
        "--slow-n", type=int, default=200, help="signatures for GnuPG, the slow peer (200)"
    )
    ap.add_argument("--variants", default="ecc,rsa", help="ecc (P-256), rsa (RSA-2048)")
    ap.add_argument("--peers", default=",".join(ALL_PEERS), help="comma-separated peers")
    ap.add_argument(
        "--rounds", type=int, default=3,
        help="sign loops per peer, in rotated order, pooled (default 3: n/3 signatures each)",
    )  # fmt: skip
    ap.add_argument(
        "--shared-pcscd", action="store_true",
        help="use the machine's pcscd and its vpcd ports 35963/35964 (default: a private "
        "pcscd of this run, so that other users of the machine and this run do not meet)",
    )  # fmt: skip
    ap.add_argument(
        "--reader-index", type=int, default=None, choices=(0, 1),
        help="reader 'Virtual PCD 00 0N' (default 0 with a private pcscd, 1 with the shared "
        "one: the tests use 0)",
    )  # fmt: skip
    ap.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    ap.add_argument("--json", metavar="FILE", help="write all raw results (samples included)")
    ap.add_argument("--venvs", default=str(REPO / ".bench-venvs"), help="the peers' venvs")
    ap.add_argument("--no-install", action="store_true", help="never create the peers' venvs")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy the emulators' APDU logs to DIR")
    ap.add_argument(
        "--wait-reader", type=float, default=120.0,
        help="seconds to wait for the reader to be free (another emulator on the port)",
    )  # fmt: skip
    ap.add_argument("--worker-timeout", type=float, default=600.0, help="per worker (s)")
    args = ap.parse_args()
    args.peers = [p for p in args.peers.split(",") if p]
    variants = [v for v in args.variants.split(",") if v]
    for p in args.peers:
        if p not in ALL_PEERS:
            ap.error(f"unknown peer {p!r} (known: {', '.join(ALL_PEERS)})")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r} (known: ecc, rsa)")
    if "gnupg" in args.peers and not shutil.which("gpg-connect-agent"):
        raise SystemExit("GnuPG is missing: run bash fixtures/rig/setup.sh (or drop --peers gnupg)")
    if "opensc" in args.peers and not shutil.which("pkcs11-tool"):
        raise SystemExit("OpenSC is missing: run bash fixtures/rig/setup.sh")

    pythons = {}
    for peer in ("yubikit", "openpgppy"):
        if peer in args.peers:
            pythons[peer] = str(ensure_venv(peer, Path(args.venvs), not args.no_install))

    workdir = Path(tempfile.mkdtemp(prefix="opcard-peers-", dir="/tmp"))
    workdir.chmod(0o700)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.reader_index is None:
        args.reader_index = 1 if args.shared_pcscd else 0
    other = f"Virtual PCD 00 {1 - args.reader_index:02d}"
    (workdir / "opensc.conf").write_text(
        "app default {\n"
        f'  ignored_readers = "{other}";\n'
        "  reader_driver pcsc {\n  }\n"
        "  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n"
    )
    load = os.getloadavg()
    all_rows: dict[str, list[Row]] = {}
    raw: dict[str, Any] = {}
    try:
        rig = shared_pcscd() if args.shared_pcscd else private_pcscd(workdir)
        with rig as vpcd_base:
            ctx = Context(args, workdir, pythons, args.reader_index, vpcd_base)
            for variant in variants:
                all_rows[variant], raw[variant] = measure_variant(ctx, variant)
    finally:
        gnupghome = workdir / "gnupg"
        if gnupghome.exists():
            subprocess.run(
                ["gpgconf", "--kill", "all"],
                env=dict(os.environ, GNUPGHOME=str(gnupghome)),
                capture_output=True,
            )
        shutil.rmtree(workdir, ignore_errors=True)

    load_end = os.getloadavg()
    print()
    print(
        "Peers on the emulated OpenPGP card (profile extended, APDU log on), through "
        + ("the machine's pcscd" if args.shared_pcscd else "a private pcscd")
        + f" and vpcd; {args.rounds} round(s) per loop, pooled; {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at start, {load_end[0]:.2f} at the end."
    )
    print(
        "(a) open + list keys and certificates   (b) open + export the AUT certificate "
        "((call) = the export call alone)\n"
        "open+PIN+1st sig = the one-off cost before the loop   (c) the loop after login: "
        "APDUs per signature (w/o C0 = not counting GET RESPONSE),\n"
        "signatures/s = n / loop time; µs median and p90 of the per-signature times; "
        "vs floor = time per signature / the floor's (median, and mean)"
    )
    problems = 0
    for variant, rows in all_rows.items():
        personalize, label = VARIANTS[variant]
        print(f"\n== {label} ({personalize}) ==")
        print(text_table(rows))
        for row in rows:
            for note in row.notes:
                print(f"  {row.peer}: {note}")
            if row.batch_us is not None:
                print(
                    f"  {row.peer}: the same batch through gpg-connect-agent itself: "
                    f"{row.batch_us:.0f} µs per signature"
                )
            for problem in row.problems:
                problems += 1
                print(f"  {row.peer}: PROBLEM: {problem}")
    if args.markdown:
        for variant, rows in all_rows.items():
            personalize, label = VARIANTS[variant]
            print(f"\n### {label} (`{personalize}`)\n")
            print(markdown_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
