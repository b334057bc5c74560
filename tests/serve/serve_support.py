"""Helpers for the ``opcard serve`` tests: an emulated card served in process, the demo
material, and a small p11-kit RPC client of our own for protocol-level tests.

The raw client is written from p11-kit's sources and the traces in shared/design, apart from
``opcard.serve.wire``: a misunderstanding of the protocol written once and used on both sides
would pass every test. The real judges are the unmodified clients (p11tool, gnutls-cli,
OpenSSH, OpenSSL) the other test modules run.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import opcard
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import demo_files, personalize
from opcard.serve.limits import Limits
from opcard.serve.server import Server
from opcard.serve.slots import Registry, Slot

P11_CLIENT = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
PW1 = "123456"
SLOTS = ("sig", "dec", "aut")
SLOT_ID = {"sig": 1, "dec": 2, "aut": 3}


@dataclass(frozen=True)
class SlotMaterial:
    private: Any
    certificate: x509.Certificate

    @property
    def public(self) -> Any:
        return self.private.public_key()

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def openssh(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()


@functools.cache
def demo(variant: str) -> dict[str, SlotMaterial]:
    """A demo variant's keys and certificates, straight from the PEM files."""
    files = demo_files(variant)
    out = {}
    for name in SLOTS:
        key = serialization.load_pem_private_key(files[f"{name}_key"].read_bytes(), None)
        cert = x509.load_pem_x509_certificate(files[f"{name}_cert"].read_bytes())
        out[name] = SlotMaterial(key, cert)
    return out


def demo_ca() -> Path:
    return demo_files("demo-rsa")["ca"]


def start_serve(
    args: Sequence[str], env: Mapping[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``opcard serve ARGS`` as a subprocess in a session of its own (stderr into ``log``),
    once it printed its address: the process and the value of P11_KIT_SERVER_ADDRESS."""
    from conftest import REPO

    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "opcard.cli", "serve", *args],
            cwd=REPO, env=dict(env), stdout=subprocess.PIPE, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("P11_KIT_SERVER_ADDRESS=unix:path="), (line, log.read_text())
    return proc, line.split("=", 1)[1]


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (then SIGKILL after ``timeout``) for a daemon :func:`start_serve` started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def private_dir(prefix: str = "opcard-serve-") -> Path:
    """A short private directory under /tmp (socket paths must stay under 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@dataclass
class EmulatedCard:
    emu: OpenPGPCard
    transport: LoopbackTransport
    card: opcard.Card
    variant: str
    #: every command APDU the card received
    sent: list[bytes] = field(default_factory=list)

    @property
    def demo(self) -> dict[str, SlotMaterial]:
        return demo(self.variant)

    def reinsert(self) -> opcard.Card:
        """The card put back in its reader: a new connection and a new opcard.Card (the old
        transport was closed when the token went away)."""
        self.transport = LoopbackTransport(
            self._transmit, self.emu.atr, self.transport.name, on_power=self.emu.reset
        )
        self.emu.reset()
        self.card = opcard.Card(self.transport)
        return self.card

    def _transmit(self, apdu: bytes) -> bytes:
        self.sent.append(bytes(apdu))
        return self.emu.transmit(apdu)


def emulated_card(
    variant: str = "demo-rsa",
    profile: str = "extended",
    *,
    name: str = "Emulated reader 0",
    **options: Any,
) -> EmulatedCard:
    emu = OpenPGPCard(profile, **options)
    personalize(emu, variant)
    emu.power_on()
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return emu.transmit(apdu)

    transport = LoopbackTransport(transmit, emu.atr, name, on_power=emu.reset)
    return EmulatedCard(emu, transport, opcard.Card(transport), variant, sent)


@dataclass
class Served:
    """Emulated cards behind a running server (in this process)."""

    registry: Registry
    server: Server
    cards: list[EmulatedCard]
    directory: Path

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def path(self) -> Path:
        return self.server.path

    @property
    def card(self) -> EmulatedCard:
        return self.cards[0]

    @property
    def slot(self) -> Slot:
        return self.registry.slots()[0]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a client: P11_KIT_SERVER_ADDRESS, no user module configs."""
        env = dict(os.environ)
        env["P11_KIT_SERVER_ADDRESS"] = self.address
        for key in ("GNUTLS_PIN", "SSH_AUTH_SOCK", "OPENSSL_CONF"):
            env.pop(key, None)
        env.update(extra)
        return env

    def apdus(self) -> int:
        return sum(len(c.sent) for c in self.cards)


@contextlib.contextmanager
def serving(
    variants: Sequence[str] = ("demo-rsa",),
    profile: str = "extended",
    *,
    login: bool = False,
    limits: Limits | None = None,
    **options: Any,
) -> Iterator[Served]:
    """Emulated cards (one per variant, serials 0x10000001, 0x10000002, …) behind a server
    on a socket in a fresh private directory; everything is stopped afterwards. ``limits``:
    the server's (default: the production ones)."""
    directory = private_dir()
    registry = Registry()
    cards = []
    for i, variant in enumerate(variants):
        extra = dict(options)
        if len(variants) > 1:
            extra.setdefault("serial", 0x10000001 + i)
        ec = emulated_card(variant, profile, name=f"Emulated reader {i}", **extra)
        cards.append(ec)
        slot = registry.attach(ec.card)
        if login:
            slot.login_operator(PW1)
    server = Server(registry, directory / "pkcs11", limits=limits)
    server.start()
    try:
        yield Served(registry, server, cards, directory)
    finally:
        server.stop()
        registry.close()
        shutil.rmtree(directory, ignore_errors=True)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 30,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client; on failure the assertion shows its output."""
    proc = subprocess.run(
        list(argv),
        env=dict(env),
        input=input,
        capture_output=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, (
            f"{argv[0]} exited {proc.returncode}\nstdout:\n{proc.stdout.decode(errors='replace')}"
            f"\nstderr:\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


@contextlib.contextmanager
def captured_log() -> Iterator[list[str]]:
    """Everything the server logs (every level) while the block runs."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.getLogger("opcard.serve")
    handler = Keep(logging.DEBUG)
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


# --- a raw p11-kit RPC client ---------------------------------------------------------------

HANDSHAKE = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"

# call id: (name, request signature, response signature) — p11-kit rpc-message.h
CALLS = {
    1: ("C_Initialize", "ayyay", ""),
    2: ("C_Finalize", "", ""),
    3: ("C_GetInfo", "", "vsusv"),
    4: ("C_GetSlotList", "yfu", "au"),
    5: ("C_GetSlotInfo", "u", "ssuvv"),
    6: ("C_GetTokenInfo", "u", "ssssuuuuuuuuuuuvvs"),
    7: ("C_GetMechanismList", "ufu", "au"),
    8: ("C_GetMechanismInfo", "uu", "uuu"),
    10: ("C_OpenSession", "uu", "u"),
    11: ("C_CloseSession", "u", ""),
    13: ("C_GetSessionInfo", "u", "uuuu"),
    18: ("C_Login", "uuay", ""),
    19: ("C_Logout", "u", ""),
    22: ("C_DestroyObject", "uu", ""),
    23: ("C_GetObjectSize", "uu", "u"),
    24: ("C_GetAttributeValue", "uufA", "aAu"),
    26: ("C_FindObjectsInit", "uaA", ""),
    27: ("C_FindObjects", "ufu", "au"),
    28: ("C_FindObjectsFinal", "u", ""),
    29: ("C_EncryptInit", "uMu", ""),
    33: ("C_DecryptInit", "uMu", ""),
    34: ("C_Decrypt", "uayfy", "ay"),
    42: ("C_SignInit", "uMu", ""),
    43: ("C_Sign", "uayfy", "ay"),
    44: ("C_SignUpdate", "uay", ""),
    45: ("C_SignFinal", "ufy", "ay"),
    62: ("C_DeriveKey", "uMuaA", "u"),
    64: ("C_GenerateRandom", "ufy", "ay"),
    65: ("C_WaitForSlotEvent", "u", "u"),
    89: ("C_DeriveKey2", "uMuaA", "uPu"),
}
BOOL_ATTRS = {
    0x1,
    0x2,
    0x86,
    0x103,
    0x104,
    0x105,
    0x106,
    0x107,
    0x108,
    0x109,
    0x10A,
    0x10B,
    0x10C,
    0x162,
    0x163,
    0x164,
    0x165,
    0x170,
    0x171,
    0x202,
}
ULONG_ATTRS = {0x0, 0x80, 0x87, 0x100, 0x121, 0x161, 0x166}


class RpcError(Exception):
    """The server answered with an error reply (``rv``)."""

    def __init__(self, rv: int) -> None:
        super().__init__(f"CKR {rv:#x}")
        self.rv = rv


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def byte_array(b: bytes | None) -> bytes:
    return u32(0xFFFFFFFF) if b is None else u32(len(b)) + b


def ay(b: bytes | None) -> bytes:
    return b"\x01" + byte_array(b) if b is not None else b"\x00" + u32(0)


def attr_value(kind: int, value: Any) -> bytes:
    """One ``aA`` entry with a value (template)."""
    if kind in BOOL_ATTRS:
        return u32(kind) + b"\x01" + u32(1) + bytes((int(value),))
    if kind in ULONG_ATTRS:
        return u32(kind) + b"\x01" + u32(8) + u64(int(value))
    return u32(kind) + b"\x01" + u32(len(value)) + byte_array(value)


def template(attrs: Mapping[int, Any]) -> bytes:
    return u32(len(attrs)) + b"".join(attr_value(k, v) for k, v in attrs.items())


class Parser:
    def __init__(self, data: bytes) -> None:
        self.data, self.o = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.o : self.o + n]
        assert len(chunk) == n, "short reply"
        self.o += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def byte(self) -> int:
        return self.take(1)[0]

    def barr(self) -> bytes | None:
        n = self.u32()
        return None if n == 0xFFFFFFFF else self.take(n)


@dataclass
class Reply:
    call: int
    signature: str
    p: Parser

    def ulong(self) -> int:
        return self.p.u64()

    def ay(self) -> tuple[bytes | None, int]:
        """(bytes or None, length)."""
        if not self.p.byte():
            return None, self.p.u32()
        b = self.p.barr()
        assert b is not None
        return b, len(b)

    def au(self) -> tuple[list[int] | None, int]:
        valid = self.p.byte()
        n = self.p.u32()
        if not valid:
            return None, n
        return [self.p.u64() for _ in range(n)], n

    def string(self) -> bytes:
        b = self.p.barr()
        assert b is not None
        return b

    def version(self) -> tuple[int, int]:
        return self.p.byte(), self.p.byte()

    def attrs(self) -> list[tuple[int, int | None, Any]]:
        """aA: (type, length or None, value)."""
        out: list[tuple[int, int | None, Any]] = []
        for _ in range(self.p.u32()):
            kind = self.p.u32()
            if not self.p.byte():
                out.append((kind, None, None))
                continue
            length = self.p.u32()
            if kind in BOOL_ATTRS:
                value: Any = self.p.byte()
            elif kind in ULONG_ATTRS:
                value = self.p.u64()
            else:
                value = self.p.barr()
            out.append((kind, length, value))
        return out

    def end(self) -> None:
        assert self.p.o == len(self.p.data), "trailing bytes in the reply"


def _connect(path: Path | str, timeout: float) -> socket.socket:
    """A connected Unix socket with ``timeout`` set. A connect that finds the server's listen
    backlog full fails at once with EAGAIN (BlockingIOError) on a socket with a timeout, where
    a blocking client (p11-kit's) would wait: wait the same way, up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class RawClient:
    """A connection speaking p11-kit's RPC protocol, one call at a time."""

    def __init__(self, path: Path | str, version: int = 0, *, timeout: float = 10.0) -> None:
        self.sock = _connect(path, timeout)
        self.sock.sendall(bytes((version,)))
        self.version = self.recv(1)[0]
        self.code = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("server closed the connection")
            out += chunk
        return out

    def send_frame(
        self, body: bytes, *, code: int | None = None, options: bytes = b"client"
    ) -> int:
        self.code += 1
        code = self.code if code is None else code
        self.sock.sendall(struct.pack(">III", code, len(options), len(body)) + options + body)
        return code

    def read_frame(self) -> tuple[int, bytes]:
        code, olen, blen = struct.unpack(">III", self.recv(12))
        self.recv(olen)
        return code, self.recv(blen)

    def raw_call(self, call: int, signature: str, args: bytes = b"") -> Reply:
        sig = signature.encode()
        code = self.send_frame(u32(call) + u32(len(sig)) + sig + args)
        got, body = self.read_frame()
        assert got == code, "the reply must echo the message code"
        p = Parser(body)
        rcall = p.u32()
        rsig = p.barr()
        assert rsig is not None
        if rcall == 0:
            assert rsig == b"u"
            rv = p.u64()
            assert p.o == len(body)
            raise RpcError(rv)
        assert rcall == call, f"reply for call {rcall}, not {call}"
        return Reply(rcall, rsig.decode(), p)

    def call(self, call: int, args: bytes = b"") -> Reply:
        name, req, resp = CALLS[call]
        reply = self.raw_call(call, req, args)
        assert reply.signature == resp, f"{name}: reply signature {reply.signature!r}"
        return reply

    # -- conveniences ----------------------------------------------------------------------

    def initialize(self) -> None:
        self.call(1, ay(HANDSHAKE) + b"\x00" + ay(b"\x00")).end()

    def slots(self, present: bool = True) -> list[int]:
        r = self.call(4, bytes((int(present),)) + u32(16))
        ids, _ = r.au()
        assert ids is not None
        return ids

    def open(self, slot: int, rw: bool = False) -> int:
        r = self.call(10, u64(slot) + u64(0x4 | (0x2 if rw else 0)))
        return r.ulong()

    def login(self, session: int, pin: bytes | None, user: int = 1) -> None:
        self.call(18, u64(session) + u64(user) + ay(pin)).end()

    def find(self, session: int, attrs: Mapping[int, Any]) -> list[int]:
        self.call(26, u64(session) + template(attrs)).end()
        handles, _ = self.call(27, u64(session) + u32(64)).au()
        self.call(28, u64(session)).end()
        assert handles is not None
        return handles

    def attributes(
        self, session: int, handle: int, wanted: Sequence[tuple[int, int]]
    ) -> tuple[list[tuple[int, int | None, Any]], int]:
        body = u64(session) + u64(handle) + u32(len(wanted))
        body += b"".join(u32(k) + u32(n) for k, n in wanted)
        r = self.call(24, body)
        attrs = r.attrs()
        rv = r.ulong()
        r.end()
        return attrs, rv

    def mechanism(self, kind: int, parameter: bytes | None = None) -> bytes:
        """``M`` for a mechanism without a parameter, in this connection's encoding."""
        if self.version >= 2:
            return u32(kind)  # CKM_RSA_PKCS, CKM_ECDSA*, CKM_SHA*_RSA_PKCS take none
        return u32(kind) + byte_array(parameter)

    def sign(
        self, session: int, key: int, mechanism: int, data: bytes, capacity: int = 1024
    ) -> bytes:
        self.call(42, u64(session) + self.mechanism(mechanism) + u64(key)).end()
        out, _ = self.call(43, u64(session) + ay(data) + u32(capacity)).ay()
        assert out is not None
        return out


# --- p11-kit's client module through ctypes ------------------------------------------------

CK_RV = ctypes.c_ulong
CK_ULONG = ctypes.c_ulong
#: Indexes in CK_FUNCTION_LIST (after the version), PKCS#11 2.40 order.
_INDEX = {"C_Initialize": 0, "C_Finalize": 1, "C_GetSlotList": 4, "C_GetTokenInfo": 6}
_INDEX["C_WaitForSlotEvent"] = 67
_PROTOTYPES: dict[str, tuple[Any, ...]] = {
    "C_Initialize": (ctypes.c_void_p,),
    "C_Finalize": (ctypes.c_void_p,),
    "C_GetSlotList": (ctypes.c_ubyte, ctypes.POINTER(CK_ULONG), ctypes.POINTER(CK_ULONG)),
    "C_GetTokenInfo": (CK_ULONG, ctypes.c_char_p),
    "C_WaitForSlotEvent": (CK_ULONG, ctypes.POINTER(CK_ULONG), ctypes.c_void_p),
}


class Module:
    """p11-kit-client.so's function list (C_GetFunctionList reads P11_KIT_SERVER_ADDRESS)."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        table = ctypes.POINTER(ctypes.c_void_p)()
        rv = lib.C_GetFunctionList(ctypes.byref(table))
        assert rv == 0
        # CK_FUNCTION_LIST: a CK_VERSION (2 bytes, padded to 8), then the pointers
        pointers = ctypes.cast(table, ctypes.POINTER(ctypes.c_void_p))
        self.f: dict[str, Any] = {}
        for name, index in _INDEX.items():
            address = pointers[1 + index]
            self.f[name] = ctypes.CFUNCTYPE(CK_RV, *_PROTOTYPES[name])(address)

    def slots(self) -> list[int]:
        ids = (CK_ULONG * 8)()
        count = CK_ULONG(8)
        rv = self.f["C_GetSlotList"](1, ids, ctypes.byref(count))
        assert rv == 0, hex(rv)
        return list(ids[: count.value])

    def token_label(self, slot: int) -> bytes:
        info = ctypes.create_string_buffer(512)
        rv = self.f["C_GetTokenInfo"](slot, info)
        assert rv == 0, hex(rv)
        return info.raw[:32].rstrip()


class ModuleCall:
    """A module call on a daemon thread, so that a hang fails the test instead of hanging it."""

    def __init__(self, f: Callable[[], int]) -> None:
        self.rv: int | None = None
        self.thread = threading.Thread(target=self._run, args=(f,), daemon=True)
        self.thread.start()

    def _run(self, f: Callable[[], int]) -> None:
        self.rv = f()

    def result(self, timeout: float = 5.0) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the call did not return"
        assert self.rv is not None
        return self.rv


# --- TLS servers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerCredentials:
    """A TLS server's key and certificate (issued by the demo CA) and the CA file."""

    key: Path
    cert: Path
    ca: Path


def server_credentials(directory: Path) -> ServerCredentials:
    """An EC P-256 server certificate for 127.0.0.1 issued by the demo CA."""
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = demo_files("demo-rsa")
    ca_key = serialization.load_pem_private_key(files["ca_key"].read_bytes(), None)
    ca = x509.load_pem_x509_certificate(files["ca"].read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_path, cert_path = directory / "server-key.pem", directory / "server-cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ServerCredentials(key_path, cert_path, files["ca"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Background:
    """A background process (a TLS server, sshd, ssh-agent) and its output file."""

    proc: subprocess.Popen[bytes]
    output: Path
    port: int = 0

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)


def wait_for_text(
    output: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 10.0
) -> None:
    """Wait until the process wrote ``text`` (for servers that accept only one connection:
    probing the port would use it up)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in output.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {output.read_text()[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"no {text!r} after {timeout} s: {output.read_text()[-2000:]}")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def background(
    argv: Sequence[str],
    output: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int = 0,
    ready: str | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> Iterator[Background]:
    """Start ``argv`` in its own process group; wait for ``ready`` in its output, or for
    ``port`` to accept connections; always stop it (SIGTERM, then SIGKILL) at the end."""
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    try:
        if ready is not None:
            wait_for_text(output, ready, proc)
        elif port:
            wait_for_port(port, proc)
        yield Background(proc, output, port)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
