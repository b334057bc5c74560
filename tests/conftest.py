"""Shared pytest fixtures: third-party tools, pcscd, and the emulated card behind vpcd.

Tiers (markers from pyproject.toml): ``pcsc`` (pcscd + vpcd + emulator), ``gnupg``, ``opensc``,
``slow``. A test that uses the ``pcscd`` or ``emulator`` fixture is marked ``pcsc``
automatically.

Never skip silently in CI: :func:`require_tool` / :func:`require_module` / :func:`require_file`
skip the test on a developer's machine that lacks the tool, but FAIL it when the environment
variable ``CI`` is set (to anything but "", "0" or "false").

Test modules may import the helpers: ``from conftest import require_tool, PW1`` always
means this file (see :func:`pytest_collectstart`).

Typical use::

    pytestmark = pytest.mark.pcsc

    def test_something(emulator):
        emu = emulator(profile="short", personalize="demo")   # started, card present
        with emu.connect() as conn:                           # raw PC/SC connection
            assert conn.transmit(bytes.fromhex("00A4040006D27600012401"))[-2:] == b"\\x90\\x00"
        emu.restart()                                         # card removed and re-inserted
        assert emu.commands() >= 1                            # count APDUs in its log

Ports: 35963 is reader "Virtual PCD 00 00", 35964 is "Virtual PCD 00 01". One emulator per
port; the fixture refuses to start a second one on a busy port (after waiting a few seconds
for the previous card's removal to reach pcscd).

Several test runs on one machine: ``OPCARD_RIG_PRIVATE=1`` gives the session a pcscd of its
own (own socket, own vpcd ports; see :class:`PrivateRig`), so runs cannot disturb each other.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 35963
PCSC_LIB = "/usr/lib/x86_64-linux-gnu/libpcsclite.so.1"
OPENSC_PKCS11 = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

# Test PINs of every personalisation of the emulated card (the spec's defaults).
PW1 = "123456"
PW3 = "12345678"

__all__ = [
    "DEFAULT_PORT",
    "OPENSC_PKCS11",
    "PCSC_LIB",
    "PW1",
    "PW3",
    "REPO",
    "Emulator",
    "PcscConnection",
    "Pcscd",
    "PrivateRig",
    "in_ci",
    "reader_for_port",
    "require_file",
    "require_module",
    "require_tool",
    "vpcd_port",
]


# --- tool requirements -------------------------------------------------------------------------


def in_ci() -> bool:
    """True when running in CI (env ``CI`` set to anything but "", "0", "false")."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(what: str) -> None:
    hint = "install it with: bash fixtures/rig/setup.sh"
    if in_ci():
        pytest.fail(f"{what} — required in CI ({hint})", pytrace=False)
    pytest.skip(f"{what} ({hint})")


def require_tool(name: str) -> str:
    """Absolute path of command ``name``; skip without it, or FAIL when CI is set."""
    path = shutil.which(name)
    if path is None:
        _unavailable(f"command {name!r} not found on PATH")
        raise AssertionError("unreachable")
    return path


def require_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it exists; skip without it, or FAIL when CI is set."""
    p = Path(path)
    if not p.exists():
        _unavailable(f"file {p} not found")
    return p


def require_module(name: str) -> ModuleType:
    """Import module ``name``; skip without it, or FAIL when CI is set."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        _unavailable(f"Python module {name!r} cannot be imported ({e})")
        raise AssertionError("unreachable") from e


def _scard() -> Any:
    """pyscard's low-level ``smartcard.scard`` module (clear message when it is missing)."""
    return require_module("smartcard.scard")


def reader_for_port(port: int) -> str:
    """PC/SC reader name of vpcd port ``port`` (35963 → "Virtual PCD 00 00")."""
    index = port - DEFAULT_PORT
    if not 0 <= index <= 1:
        raise ValueError(f"vpcd serves ports {DEFAULT_PORT} and {DEFAULT_PORT + 1}, not {port}")
    return f"Virtual PCD 00 {index:02d}"


# --- PC/SC helpers -----------------------------------------------------------------------------


class _Context:
    """A PC/SC context (SCardEstablishContext / SCardReleaseContext)."""

    def __init__(self) -> None:
        self.sc = _scard()
        hr, self.handle = self.sc.SCardEstablishContext(self.sc.SCARD_SCOPE_USER)
        if hr != self.sc.SCARD_S_SUCCESS:
            raise ConnectionError(
                f"SCardEstablishContext: {self.sc.SCardGetErrorMessage(hr)} (is pcscd running?)"
            )

    def close(self) -> None:
        self.sc.SCardReleaseContext(self.handle)

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def readers(self) -> list[str]:
        hr, names = self.sc.SCardListReaders(self.handle, [])
        if hr != self.sc.SCARD_S_SUCCESS:
            return []
        return list(names)

    def state(self, reader: str) -> tuple[int, bytes]:
        """Current (event state, ATR) of ``reader``, without waiting."""
        hr, states = self.sc.SCardGetStatusChange(
            self.handle, 0, [(reader, self.sc.SCARD_STATE_UNAWARE)]
        )
        if hr != self.sc.SCARD_S_SUCCESS:
            raise ConnectionError(f"SCardGetStatusChange({reader!r}): {hr:#x}")
        _, event, atr = states[0]
        return int(event), bytes(atr)

    def wait(
        self,
        reader: str,
        present: bool,
        timeout: float,
        alive: Callable[[], str | None] | None = None,
    ) -> bytes:
        """Wait (SCardGetStatusChange, no sleeping) until a card is present / absent.

        Returns the ATR when waiting for a card. ``alive`` is polled every 0.25 s and may
        return an error text (e.g. the emulator died) to stop waiting. Raises TimeoutError.
        """
        sc = self.sc
        deadline = time.monotonic() + timeout
        current = sc.SCARD_STATE_UNAWARE
        while True:
            step = min(0.25, max(0.0, deadline - time.monotonic()))
            hr, states = sc.SCardGetStatusChange(self.handle, int(step * 1000), [(reader, current)])
            if hr == sc.SCARD_S_SUCCESS:
                _, event, atr = states[0]
                current = event & ~sc.SCARD_STATE_CHANGED
                if event & sc.SCARD_STATE_UNKNOWN:
                    raise ConnectionError(f"pcscd has no reader {reader!r}")
                is_present = bool(event & sc.SCARD_STATE_PRESENT) and not (
                    event & sc.SCARD_STATE_MUTE
                )
                if is_present == present:
                    return bytes(atr)
            elif hr != sc.SCARD_E_TIMEOUT:
                raise ConnectionError(f"SCardGetStatusChange({reader!r}): {hr:#x}")
            if alive is not None:
                problem = alive()
                if problem:
                    raise TimeoutError(problem)
            if time.monotonic() >= deadline:
                what = "a card" if present else "the card to go"
                raise TimeoutError(f"waited {timeout:.1f} s for {what} in {reader!r}")


class PcscConnection:
    """A raw PC/SC connection to the card in a reader: bytes in, bytes out (SW included).

    No GET RESPONSE handling, no chaining: exactly what the card answers. Shared mode, T=1 or
    T=0 as the card offers. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, reader: str, *, exclusive: bool = False) -> None:
        self.reader = reader
        self._ctx = _Context()
        sc = self._ctx.sc
        mode = sc.SCARD_SHARE_EXCLUSIVE if exclusive else sc.SCARD_SHARE_SHARED
        hr, self._card, self.protocol = sc.SCardConnect(
            self._ctx.handle, reader, mode, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        if hr != sc.SCARD_S_SUCCESS:
            self._ctx.close()
            raise ConnectionError(f"SCardConnect({reader!r}): {sc.SCardGetErrorMessage(hr)}")
        self._open = True

    @property
    def atr(self) -> bytes:
        sc = self._ctx.sc
        hr, _reader, _state, _proto, atr = sc.SCardStatus(self._card)
        if hr != sc.SCARD_S_SUCCESS:
            raise ConnectionError(f"SCardStatus: {sc.SCardGetErrorMessage(hr)}")
        return bytes(atr)

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU; return the whole response APDU (data ‖ SW1 SW2)."""
        sc = self._ctx.sc
        hr, response = sc.SCardTransmit(self._card, self.protocol, list(apdu))
        if hr != sc.SCARD_S_SUCCESS:
            raise ConnectionError(f"SCardTransmit: {sc.SCardGetErrorMessage(hr)} ({hr:#x})")
        return bytes(response)

    def transceive(self, apdu: bytes, *, max_rounds: int = 64) -> tuple[bytes, int]:
        """Send ``apdu``; follow 61xx with GET RESPONSE and 6Cxx with a resend (bounded).

        Returns (data, SW). A test helper for reading what the card holds (expected values),
        not a driver: no command chaining, the APDU must fit the card's length limits.
        """
        command = apdu
        response = self.transmit(command)
        data = bytearray()
        for _ in range(max_rounds):
            sw1, sw2 = response[-2], response[-1]
            if sw1 == 0x6C:  # wrong Le: resend the same header with Le = SW2
                command = command[:4] + bytes([sw2])
                response = self.transmit(command)
                continue
            data += response[:-2]
            if sw1 != 0x61:
                return bytes(data), (sw1 << 8) | sw2
            command = bytes([apdu[0] & 0x0C, 0xC0, 0x00, 0x00, sw2])
            response = self.transmit(command)
        raise ConnectionError(f"card kept answering 61xx/6Cxx after {max_rounds} rounds")

    def get_data(self, tag: int) -> bytes:
        """GET DATA (short APDU, Le 00) with 61xx handling; raises unless SW 9000."""
        data, sw = self.transceive(bytes([0x00, 0xCA, tag >> 8, tag & 0xFF, 0x00]))
        if sw != 0x9000:
            raise ConnectionError(f"GET DATA {tag:04X}: SW {sw:04X}")
        return data

    def reconnect(self) -> None:
        """SCardReconnect with a cold reset (after the card was removed and inserted)."""
        sc = self._ctx.sc
        hr, self.protocol = sc.SCardReconnect(
            self._card,
            sc.SCARD_SHARE_SHARED,
            sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1,
            sc.SCARD_RESET_CARD,
        )
        if hr != sc.SCARD_S_SUCCESS:
            raise ConnectionError(f"SCardReconnect: {sc.SCardGetErrorMessage(hr)} ({hr:#x})")

    def close(self) -> None:
        if self._open:
            self._ctx.sc.SCardDisconnect(self._card, self._ctx.sc.SCARD_LEAVE_CARD)
            self._ctx.close()
            self._open = False

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- pcscd -------------------------------------------------------------------------------------


def _pcscd_pids() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != "pcscd":
                continue
            if "\nState:\tZ" in (d / "status").read_text():
                continue
        except OSError:
            continue
        pids.append(int(d.name))
    return pids


def _wait_readers(timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with _Context() as ctx:
                names = ctx.readers()
                if any(n.startswith("Virtual PCD") for n in names):
                    return names
                last = f"readers: {names}"
        except ConnectionError as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"pcscd shows no vpcd reader after {timeout} s ({last})")
        time.sleep(0.1)


@dataclass
class Pcscd:
    """The pcscd the tests use: ``started`` tells whether this session started it."""

    pid: int | None
    started: bool
    readers: list[str] = field(default_factory=list)
    log: Path | None = None


VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


@dataclass
class PrivateRig:
    """A pcscd of this test session only (``OPCARD_RIG_PRIVATE=1``).

    pcscd always serves ``/run/pcscd/pcscd.comm``; the private one runs in its own mount
    namespace (``unshare --mount``, root only) with a directory of ours bind-mounted on
    /run/pcscd, so its socket is ``<dir>/run/pcscd.comm`` for us. Every PC/SC client of the
    session (pyscard here, scdaemon, OpenSC, subprocesses) finds it through
    ``PCSCLITE_CSOCK_NAME``. Its vpcd listens on two free ports instead of 35963/35964; the
    reader names stay "Virtual PCD 00 00" / "Virtual PCD 00 01".
    """

    directory: Path
    port_base: int

    @property
    def socket(self) -> Path:
        return self.directory / "run" / "pcscd.comm"


def _private_mode() -> bool:
    return os.environ.get("OPCARD_RIG_PRIVATE", "").strip().lower() not in ("", "0", "false", "no")


def _free_port_pair() -> int:
    import random
    import socket

    for _ in range(200):
        base = random.randrange(40000, 60000)
        socks = []
        try:
            for port in (base, base + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no two free TCP ports for a private vpcd")


_PRIVATE: PrivateRig | None = None


def pytest_configure(config: pytest.Config) -> None:
    """In private mode, point every PC/SC client of the session at the private pcscd.

    Done before any test runs: libpcsclite reads PCSCLITE_CSOCK_NAME once per process.
    """
    global _PRIVATE
    if _private_mode() and _PRIVATE is None:
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="opcard-rig-"))
        _PRIVATE = PrivateRig(directory, _free_port_pair())
        os.environ["PCSCLITE_CSOCK_NAME"] = str(_PRIVATE.socket)


def vpcd_port(port: int) -> int:
    """The TCP port an emulator for reader index ``port - 35963`` must connect to."""
    reader_for_port(port)  # validates
    if _PRIVATE is not None:
        return _PRIVATE.port_base + (port - DEFAULT_PORT)
    return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_private_pcscd(rig: PrivateRig, log: Path) -> subprocess.Popen[bytes]:
    require_tool("unshare")
    conf = rig.directory / "reader.conf.d"
    conf.mkdir(exist_ok=True)
    (rig.directory / "run").mkdir(exist_ok=True)
    (conf / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:{rig.port_base:#06x}\n"
        f"LIBPATH      {VPCD_DRIVER}\n"
        f"CHANNELID    {rig.port_base:#06x}\n"
    )
    script = (
        f"mount --bind '{rig.directory / 'run'}' /run/pcscd "
        f"&& exec pcscd --foreground --config '{conf}'"
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """pcscd with the vpcd readers: reuses a running one, else starts one for the session.

    A pcscd started here is stopped (SIGTERM, by PID) when the session ends; a reused one is
    left alone. Fails (in CI) / skips (elsewhere) when pcscd, vpcd or pyscard are missing.
    With ``OPCARD_RIG_PRIVATE=1`` the session always starts its own pcscd, invisible to
    other users of the machine (see :class:`PrivateRig`): use it when several people or
    test runs share one machine.
    """
    require_tool("pcscd")
    require_file(VPCD_DRIVER)
    _scard()
    log = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
    if _PRIVATE is not None:
        proc = _start_private_pcscd(_PRIVATE, log)
        try:
            try:
                readers = _wait_readers(10)
            except TimeoutError as e:
                raise RuntimeError(f"private pcscd: {e}\n{log.read_text()[-2000:]}") from e
            yield Pcscd(pid=proc.pid, started=True, readers=readers, log=log)
        finally:
            _stop(proc)
            shutil.rmtree(_PRIVATE.directory, ignore_errors=True)
        return
    running = _pcscd_pids()
    if running:
        readers = _wait_readers(10)
        yield Pcscd(pid=running[0], started=False, readers=readers)
        return
    for stale in ("/run/pcscd/pcscd.comm", "/run/pcscd/pcscd.pid"):
        with contextlib.suppress(OSError):
            os.unlink(stale)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["pcscd", "--foreground"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        readers = _wait_readers(10)
        yield Pcscd(pid=proc.pid, started=True, readers=readers, log=log)
    finally:
        _stop(proc)


# --- the emulator ------------------------------------------------------------------------------


def _option_args(opts: dict[str, Any]) -> list[str]:
    """Keyword options → emulator command-line options (``max_cert_size=1216`` →
    ``--max-cert-size 1216``; ``x=True`` → ``--x``; ``x=False`` → ``--no-x``; None → omitted)."""
    args: list[str] = []
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + key.replace("_", "-"))
        else:
            args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return args


class Emulator:
    """One ``python -m fixtures.emulator`` process serving a card to a vpcd reader.

    Attributes: ``reader`` (PC/SC reader name), ``port`` (35963 or 35964: which reader),
    ``vpcd_port`` (the TCP port it connects to: ``port``, except with a private rig),
    ``profile``, ``personalize``,
    ``apdu_log`` (Path of its APDU log, or None), ``output`` (its stdout/stderr file),
    ``atr`` (as pcscd reports it, once present), ``argv``.

    Without ``state=FILE`` the card lives in the process's memory: :meth:`restart` then gives a
    fresh card (personalised again). With ``state`` the card comes back as it was.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        profile: str,
        personalize: str | None,
        port: int,
        apdu_log: Path | None,
        opts: dict[str, Any],
    ) -> None:
        self.workdir = workdir
        self.profile = profile
        self.personalize = personalize
        self.port = port
        self.reader = reader_for_port(port)
        self.apdu_log = apdu_log
        self.output = workdir / f"emulator-{port}.out"
        self.atr = b""
        self.vpcd_port = vpcd_port(port)  # differs from port with OPCARD_RIG_PRIVATE
        self.argv = [sys.executable, "-m", "fixtures.emulator", "--port", str(self.vpcd_port)]
        self.argv += ["--profile", profile]
        if personalize:
            self.argv += ["--personalize", personalize]
        if apdu_log is not None:
            self.argv += ["--apdu-log", str(apdu_log)]
        ready = opts.pop("ready_file", None)
        self.ready_file = Path(ready) if ready else workdir / f"ready-{port}-{id(self):x}"
        self.argv += ["--ready-file", str(self.ready_file)]
        self.argv += _option_args(opts)
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Emulator {self.profile} on {self.reader!r} ({state})>"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _problem(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            return (
                f"emulator exited with status {self.process.returncode}:\n"
                + self.output.read_text(errors="replace")[-4000:]
            )
        return None

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until pcscd reports its card present in the reader.

        Refuses a reader that already holds a card; then waits for the emulator's ready file
        (vpcd talks to this process, not to another one connected to the same port) and for
        the card with SCardGetStatusChange.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        with _Context() as ctx:
            try:
                ctx.wait(self.reader, present=False, timeout=5.0)
            except TimeoutError:
                raise RuntimeError(
                    f"reader {self.reader!r} already holds a card: another emulator is "
                    f"connected to port {self.vpcd_port} (stop it, use the other port, or run "
                    "the tests with OPCARD_RIG_PRIVATE=1 for a pcscd of their own)"
                ) from None
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
            with open(self.output, "ab") as out:
                self.process = subprocess.Popen(
                    self.argv,
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_ready(timeout)
                self.atr = ctx.wait(self.reader, present=True, timeout=timeout, alive=self._problem)
            except (TimeoutError, ConnectionError):
                self.stop()
                raise

    def _wait_ready(self, timeout: float) -> None:
        """Wait for the ready file: vpcd serves THIS emulator (not one connected before it)."""
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            problem = self._problem()
            if problem:
                raise TimeoutError(problem)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"vpcd did not serve the emulator on port {self.vpcd_port} within "
                    f"{timeout:.0f} s: another emulator connected to it first? (run the tests "
                    "with OPCARD_RIG_PRIVATE=1 for a pcscd of their own)"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process, wait for it, and wait until pcscd sees the card removed."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None
        with contextlib.suppress(ConnectionError, TimeoutError), _Context() as ctx:
            ctx.wait(self.reader, present=False, timeout=5.0)

    def restart(self) -> None:
        """Stop and start again: PC/SC clients see the card removed and inserted."""
        self.stop()
        self.start()

    def connect(self, *, exclusive: bool = False) -> PcscConnection:
        """A raw PC/SC connection to this card (context manager)."""
        return PcscConnection(self.reader, exclusive=exclusive)

    def log_entries(self) -> list[Any]:
        """Parsed APDU log (``fixtures.apdulog.LogEntry`` items)."""
        from fixtures.apdulog import read_log

        if self.apdu_log is None:
            raise RuntimeError("this emulator was started without an APDU log")
        return list(read_log(self.apdu_log)) if self.apdu_log.exists() else []

    def commands(self) -> int:
        """How many command APDUs the card received so far (from its APDU log)."""
        return sum(1 for e in self.log_entries() if e.direction == ">")


StartEmulator = Callable[..., Emulator]


@pytest.fixture
def emulator(pcscd: Pcscd, tmp_path: Path) -> Iterator[StartEmulator]:
    """Factory: ``emulator(profile="extended", personalize="demo", port=35963,
    apdu_log=<tmp file>|None|path, **opts) -> Emulator``, started and present in its reader.

    ``opts`` become emulator options: ``state=path``, ``serial=0x1234``,
    ``pw1_single_use=False``, ``max_cert_size=1216``, ``reconnect=True``, ``quickack=False``.
    By default the APDU log goes to a file in the test's tmp_path (``apdu_log=None`` turns it
    off). Every emulator started through the factory is stopped at the end of the test, even
    when it fails.
    """
    started: list[Emulator] = []

    def start(
        profile: str = "extended",
        personalize: str | None = "demo",
        port: int = DEFAULT_PORT,
        apdu_log: Path | str | bool | None = True,
        **opts: Any,
    ) -> Emulator:
        log: Path | None
        if apdu_log is True:
            log = tmp_path / f"apdu-{port}-{len(started)}.log"
        elif apdu_log is None or apdu_log is False:
            log = None
        else:
            log = Path(apdu_log)
        emu = Emulator(
            tmp_path, profile=profile, personalize=personalize, port=port, apdu_log=log, opts=opts
        )
        started.append(emu)
        emu.start()
        return emu

    try:
        yield start
    finally:
        for emu in reversed(started):
            emu.stop()


@pytest.fixture
def pcsc_connect(pcscd: Pcscd) -> Iterator[Callable[..., PcscConnection]]:
    """Factory: ``pcsc_connect(reader, exclusive=False) -> PcscConnection`` (closed at the end)."""
    opened: list[PcscConnection] = []

    def connect(reader: str, *, exclusive: bool = False) -> PcscConnection:
        conn = PcscConnection(reader, exclusive=exclusive)
        opened.append(conn)
        return conn

    try:
        yield connect
    finally:
        for conn in opened:
            conn.close()


@pytest.fixture
def reader_state(pcscd: Pcscd) -> Callable[[str], tuple[int, bytes]]:
    """``reader_state(reader) -> (event_state, atr)`` as SCardGetStatusChange reports it now.

    pcsc-lite keeps a count of card events (insertions and removals) in the upper 16 bits of
    the event state: ``reader_state(r)[0] >> 16``.
    """

    def state(reader: str) -> tuple[int, bytes]:
        with _Context() as ctx:
            return ctx.state(reader)

    return state


_THIS_MODULE = sys.modules[__name__]


def pytest_collectstart(collector: pytest.Collector) -> None:
    """Make ``from conftest import require_tool, ...`` in a test module mean THIS file.

    Without a package (``tests/`` has no ``__init__.py``) every conftest.py is imported under
    the name ``conftest`` and the last one loaded (e.g. ``tests/emulator/conftest.py``) would
    shadow this one by the time a later test module is imported.
    """
    if isinstance(collector, pytest.Module):
        sys.modules["conftest"] = _THIS_MODULE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests using pcscd (directly or through ``emulator``) get the ``pcsc`` marker."""
    for item in items:
        if "pcscd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pcsc)
