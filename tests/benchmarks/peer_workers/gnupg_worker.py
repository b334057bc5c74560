"""GnuPG: gpg --card-status, SCD READCERT and SCD PKAUTH through gpg-agent and scdaemon.

Runs with any Python 3.11 (stdlib only) in a private GNUPGHOME made by peers.py
(``--gnupghome``): scdaemon.conf with ``disable-ccid``, ``pcsc-shared`` and ``reader-port``
on the emulator's reader, gpg-agent.conf with a pinentry script that answers GETPIN with the
test PIN. Every phase starts with a fresh scdaemon (``gpgconf --kill scdaemon``, a second's
wait, and for the Assuan phases ``SCD GETINFO version`` so that gpg-agent has started the new
scdaemon before the phase: that sends no APDU, the worker checks; not timed).

Phases: list = ``gpg --card-status`` (a process, timed from outside: includes starting gpg,
not scdaemon); export = ``SCD SERIALNO openpgp`` + ``SCD READCERT OPENPGP.3`` on one Assuan
connection to gpg-agent (``call_apdus`` = READCERT alone); login = the first ``SCD SETDATA`` +
``SCD PKAUTH OPENPGP.3`` (scdaemon opens the card and asks the pinentry for the PIN);
sign = N x (``SCD SETDATA <hex>`` + ``SCD PKAUTH OPENPGP.3``), one connection.

The commands are the ones ``gpg-connect-agent`` sends, but sent by this worker on gpg-agent's
socket: gpg-connect-agent buffers its output when it writes to a pipe, so it cannot be driven
command by command from a script. As a cross-check the worker also runs the same batch
through ``gpg-connect-agent`` itself (N pairs and 1 pair on its standard input, the faster
of three runs each; per signature = difference / (N - 1)) and reports it as ``sign_batch``
(phase ``batch``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from _common import DIGEST, PW1, SHA256_DIGEST_INFO, Worker

PCSC_LIB = "/usr/lib/x86_64-linux-gnu/libpcsclite.so.1"
PINENTRY = """#!/bin/sh
# benchmark pinentry: answers GETPIN with the test PIN stored next to it
echo "OK benchmark pinentry"
while IFS= read -r line; do
  case "$line" in
    GETPIN*) printf 'D %s\\n' "$(cat "$(dirname "$0")/pw1")"; echo OK ;;
    BYE*) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"""


def unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x25:  # %XX
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


class Assuan:
    """A minimal Assuan client on gpg-agent's socket (what gpg-connect-agent is)."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self._reply()  # "OK Pleased to meet you"

    def _reply(self) -> bytes:
        data = bytearray()
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("gpg-agent closed the connection")
            line = line.rstrip(b"\n")
            if line.startswith(b"D "):
                data += unescape(line[2:])
            elif line == b"OK" or line.startswith(b"OK "):
                return bytes(data)
            elif line.startswith(b"ERR "):
                raise RuntimeError(line.decode(errors="replace"))
            elif line.startswith(b"INQUIRE "):
                self.sock.sendall(b"CAN\n")

    def command(self, text: str) -> bytes:
        self.sock.sendall(text.encode() + b"\n")
        return self._reply()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"BYE\n")
        self.file.close()
        self.sock.close()


def main() -> None:
    w = Worker("gnupg", __doc__ or "")
    home = Path(w.args.gnupghome)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "pw1").write_text(PW1)
    pinentry = home / "pinentry.sh"
    pinentry.write_text(PINENTRY)
    pinentry.chmod(0o700)
    (home / "scdaemon.conf").write_text(
        f'disable-ccid\npcsc-driver {PCSC_LIB}\npcsc-shared\nreader-port "{w.args.reader}"\n'
    )
    (home / "gpg-agent.conf").write_text(f"allow-loopback-pinentry\npinentry-program {pinentry}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPG_")}
    env.update(GNUPGHOME=str(home), LC_ALL="C")

    def run(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.decode(errors='replace')}")
        return proc

    try:
        w.result["version"] = run("gpg", "--version").stdout.decode().splitlines()[0]
    except (OSError, RuntimeError) as e:
        raise SystemExit(f"gpg is not usable: {e}") from e

    def fresh_scdaemon() -> None:
        """Kill scdaemon and have gpg-agent start a new one (that does not touch the card).

        Without the restart the agent answers the next SCD command with "Broken pipe" (it
        still holds the connection to the scdaemon that was killed).
        """
        subprocess.run(["gpgconf", "--kill", "scdaemon"], env=env, capture_output=True)
        time.sleep(1.0)  # the rig notes: wait about a second after killing scdaemon
        w.meter.reset()
        deadline = time.monotonic() + 20
        while True:  # gpg-agent notices the dead scdaemon only after a second or two
            proc = subprocess.run(
                ["gpg-connect-agent", "SCD GETINFO version", "/bye"],
                env=env,
                capture_output=True,
            )
            if proc.stdout.startswith(b"D ") and b"\nOK" in proc.stdout:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"scdaemon does not come back: {proc.stdout!r}")
            time.sleep(0.5)
        if w.meter.take():
            raise RuntimeError("starting scdaemon sent APDUs: the phases would miss them")

    run("gpg-connect-agent", "/bye")  # start gpg-agent now, outside every measured phase
    socket_path = run("gpgconf", "--list-dirs", "agent-socket").stdout.decode().strip()

    if "list" in w.phases:
        fresh_scdaemon()
        with w.phase("list") as out:
            status = run("gpg", "--batch", "--no-tty", "--card-status", "--with-colons")
        out["found"] = {
            line.split(":")[0]: line.split(":")[1:4]
            for line in status.stdout.decode().splitlines()
            if line.startswith(("Reader", "version", "fpr"))
        }

    if "export" in w.phases:
        fresh_scdaemon()
        agent = Assuan(socket_path)
        try:
            with w.phase("export") as out:
                agent.command("SCD SERIALNO openpgp")
                opened = w.checkpoint()
                cert = agent.command("SCD READCERT OPENPGP.3")
                out["call_apdus"] = w.checkpoint() - opened
        finally:
            agent.close()
        out["cert_der"] = cert.hex()

    # gpg-agent hands scdaemon a DigestInfo for every key type; for an ECDSA key scdaemon's
    # PKAUTH strips the 19-byte SHA-2 DigestInfo prefix (of a 51/67/83-byte input; anything
    # else loses 15 bytes), so the card gets the same 32-byte hash.
    data_hex = (SHA256_DIGEST_INFO + DIGEST).hex().upper()

    if "sign" in w.phases:
        fresh_scdaemon()
        agent = Assuan(socket_path)
        try:
            with w.phase("login") as out:
                agent.command(f"SCD SETDATA {data_hex}")
                out["first_signature"] = agent.command("SCD PKAUTH OPENPGP.3").hex()

            def sign() -> bytes:
                agent.command(f"SCD SETDATA {data_hex}")
                return agent.command("SCD PKAUTH OPENPGP.3")

            w.sign_loop(sign, w.args.n)
        finally:
            agent.close()

    if "batch" in w.phases:
        # cross-check with gpg-connect-agent itself: N pairs vs 1 pair in one batch each,
        # the faster of three runs of each (the difference of two process runs is noisy)
        pair = f"SCD SETDATA {data_hex}\nSCD PKAUTH OPENPGP.3\n"
        timings: dict[int, tuple[float, int]] = {}
        for count in (1, w.args.n):
            script = (pair * count + "/bye\n").encode()
            for _ in range(3):
                w.meter.reset()
                t0 = time.perf_counter()
                proc = run("gpg-connect-agent", stdin=script)
                elapsed, apdus = time.perf_counter() - t0, len(w.meter.take())
                oks = proc.stdout.count(b"\nOK") + proc.stdout.startswith(b"OK")
                if oks < 2 * count:
                    raise RuntimeError(f"gpg-connect-agent batch: {proc.stdout[-300:]!r}")
                if count not in timings or elapsed < timings[count][0]:
                    timings[count] = (elapsed, apdus)
        n = w.args.n
        if n > 1:
            w.result["phases"]["sign_batch"] = {
                "n": n,
                "us_per_signature": (timings[n][0] - timings[1][0]) / (n - 1) * 1e6,
                "apdus_per_signature": (timings[n][1] - timings[1][1]) / (n - 1),
            }
    # no daemons left behind: peers.py also kills them, by GNUPGHOME, if this worker dies
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)
    w.emit()


if __name__ == "__main__":
    main()
