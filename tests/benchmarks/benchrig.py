"""What the benchmark scripts share: the vpcd readers, waiting for a card in one, and a pcscd
of the run's own.

The scripts put the repository root on ``sys.path`` and import this module by name, as they
import ``fixtures``.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The vpcd ports of the Debian package's reader configuration.
PORTS = (35963, 35964)
#: The OpenSC configuration the scripts give OpenSC: only our reader, no file cache.
OPENSC_CONF = (
    "app default {{\n"
    '  ignored_readers = "{other}";\n'
    "  framework pkcs15 {{\n    use_file_caching = no;\n  }}\n}}\n"
)


def reader_of(port: int) -> str:
    """PC/SC reader name of vpcd ``port`` (35963 → "Virtual PCD 00 00")."""
    return f"Virtual PCD 00 {port - PORTS[0]:02d}"


def card_present(reader: str) -> bool:
    """Whether pcscd sees a card in ``reader`` (SCardGetStatusChange: no APDU is sent)."""
    import smartcard.scard as sc

    hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    if hr != sc.SCARD_S_SUCCESS:
        raise SystemExit("no PC/SC service: is pcscd running?")
    try:
        hr, states = sc.SCardGetStatusChange(ctx, 0, [(reader, sc.SCARD_STATE_UNAWARE)])
        return hr == sc.SCARD_S_SUCCESS and bool(states[0][1] & sc.SCARD_STATE_PRESENT)
    finally:
        sc.SCardReleaseContext(ctx)


def wait_for(reader: str, present: bool, timeout: float = 20.0) -> None:
    """Wait until a card is (or is no longer) in ``reader``; SystemExit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while card_present(reader) != present:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"timeout waiting for the card {'in' if present else 'to leave'} {reader}"
            )
        time.sleep(0.05)


def free_port_pair() -> int:
    """A TCP port ``base`` such that ``base`` and ``base + 1`` are both free."""
    for _ in range(200):
        base = random.randrange(40000, 60000)
        socks = []
        try:
            for port in (base, base + 1):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise SystemExit("no two free TCP ports for a private vpcd")


@contextmanager
def private_pcscd(workdir: Path) -> Iterator[int]:
    """A pcscd of this run only, as tests/conftest.py makes one for OPCARD_RIG_PRIVATE=1.

    It runs in its own mount namespace (``unshare --mount``, root only) with a directory of
    ours bind-mounted on /run/pcscd; every PC/SC client of this run (the workers, scdaemon,
    OpenSC) finds its socket through PCSCLITE_CSOCK_NAME. Its vpcd listens on two free ports;
    the reader names stay "Virtual PCD 00 00" / "00 01". Other users of the machine neither
    see our card nor disturb our readers. Yields the vpcd port of reader 00 00.
    """
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("pcscd"):
        raise SystemExit("a private pcscd needs root, unshare and pcscd (or use --shared-pcscd)")
    import smartcard.scard as sc

    rig = workdir / "rig"
    conf, run = rig / "reader.conf.d", rig / "run"
    conf.mkdir(parents=True)
    run.mkdir()
    base = free_port_pair()
    (conf / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:{base:#06x}\n"
        "LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\n"
        f"CHANNELID    {base:#06x}\n"
    )
    os.environ["PCSCLITE_CSOCK_NAME"] = str(run / "pcscd.comm")  # before any PC/SC call
    script = f"mount --bind '{run}' /run/pcscd && exec pcscd --foreground --config '{conf}'"
    with open(rig / "pcscd.log", "ab") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            hr, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
            if hr == sc.SCARD_S_SUCCESS:
                hr, names = sc.SCardListReaders(ctx, [])
                sc.SCardReleaseContext(ctx)
                if hr == sc.SCARD_S_SUCCESS and len(names) >= 2:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (rig / "pcscd.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"the private pcscd did not come up:\n{log}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
