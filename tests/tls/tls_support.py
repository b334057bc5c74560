"""Helpers of the TLS tests: certificates, real TLS servers on loopback, emulated cards.

- :class:`Pki`: the demo CA (fixtures/demo) issues a server certificate for localhost /
  127.0.0.1; a second, unrelated CA ("other CA") issues its own server certificate and
  stands for a CA nobody here trusts.
- :class:`OpenSslServer`: ``openssl s_server`` on 127.0.0.1 (a free port, found by binding
  port 0), its output in a file; stopped (process group killed) by the fixture even when the
  test fails.
- :class:`GnutlsServer`: ``gnutls-serv`` always listens on every address; to keep it on
  loopback only it runs in a network namespace of its own (``unshare --net``, root), and
  the test connects from a thread that joined that namespace (``setns``: a socket stays in
  the namespace it was made in) and hands the socket to :meth:`opcard.tls.TlsClient.wrap_socket`.
- :class:`CardRig`: an emulated card (``fixtures.card.OpenPGPCard``) behind a
  :class:`~apdu.transport.loopback.LoopbackTransport` that records every command APDU.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import opcard
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
DEMO_CA = DEMO / "ca.pem"
PW1 = "123456"
PW3 = "12345678"

INS_VERIFY = 0x20
INS_INTERNAL_AUTHENTICATE = 0x88
INS_PSO = 0x2A


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue(
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    subject_key: ec.EllipticCurvePublicKey,
    common_name: str,
    *,
    ca: bool = False,
    names: Sequence[str] = (),
    client: bool = False,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    authority_key_id: bool = True,
) -> x509.Certificate:
    """A certificate for ``subject_key`` (self-signed when ``issuer_cert`` is None)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "opcard tls tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start = not_before or _now() - datetime.timedelta(minutes=5)
    end = not_after or _now() + datetime.timedelta(days=2)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False)
    )
    issuer_public = issuer_cert.public_key() if issuer_cert else subject_key
    assert isinstance(issuer_public, ec.EllipticCurvePublicKey)
    if authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        ).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            alt: list[x509.GeneralName] = []
            for name in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    alt.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class ServerCredentials:
    cert: Path
    key: Path
    certificate: x509.Certificate


@dataclass
class Pki:
    """Certificates and keys of the TLS tests, written into ``directory``."""

    directory: Path
    demo_ca: x509.Certificate
    demo_ca_key: ec.EllipticCurvePrivateKey
    other_ca_file: Path
    other_ca: x509.Certificate
    other_ca_key: ec.EllipticCurvePrivateKey
    server: ServerCredentials  # demo CA, localhost + 127.0.0.1
    other_server: ServerCredentials  # other CA, localhost + 127.0.0.1
    sni_default: ServerCredentials  # demo CA, default.invalid only
    demo_ca_file: Path = DEMO_CA

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca = x509.load_pem_x509_certificate(DEMO_CA.read_bytes())
        ca_key = serialization.load_pem_private_key((DEMO / "ca-key.pem").read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = issue(None, other_key, other_key.public_key(), "other CA", ca=True)
        other_file = directory / "other-ca.pem"
        other_file.write_bytes(_pem(other))

        def server(
            name: str,
            issuer: x509.Certificate,
            key: ec.EllipticCurvePrivateKey,
            names: Sequence[str],
        ) -> ServerCredentials:
            server_key = ec.generate_private_key(ec.SECP256R1())
            cert = issue(issuer, key, server_key.public_key(), names[0], names=names)
            cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
            cert_path.write_bytes(_pem(cert))
            key_path.write_bytes(_key_pem(server_key))
            return ServerCredentials(cert_path, key_path, cert)

        return cls(
            directory=directory,
            demo_ca=ca,
            demo_ca_key=ca_key,
            other_ca_file=other_file,
            other_ca=other,
            other_ca_key=other_key,
            server=server("server", ca, ca_key, ["localhost", "127.0.0.1"]),
            other_server=server("other-server", other, other_key, ["localhost", "127.0.0.1"]),
            sni_default=server("default", ca, ca_key, ["default.invalid"]),
        )


def apdu_data(command: bytes) -> bytes:
    """The data field of a command APDU (short or extended)."""
    if len(command) <= 5:
        return b""
    if command[4] != 0:
        return command[5 : 5 + command[4]]
    length = int.from_bytes(command[5:7], "big")
    return command[7 : 7 + length]


def free_port() -> int:
    """A TCP port nothing listens on now (bind port 0 on 127.0.0.1, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- servers ---------------------------------------------------------------------------------


class _Process:
    """A server process with its output in a file; :meth:`stop` kills its process group."""

    name = "server"

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,  # s_server exits at end of input: keep it open
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains ``text`` (AssertionError with the log after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log:
                return log
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {text!r} not in its output:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        self.process = None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


class OpenSslServer(_Process):
    """``openssl s_server`` on 127.0.0.1:``port``, requiring a client certificate that
    verifies (``-Verify 1 -verify_return_error``: without the latter s_server only logs a
    verification failure and goes on)."""

    name = "openssl s_server"

    def __init__(
        self,
        openssl: str,
        log: Path,
        *,
        cert: Path,
        key: Path,
        cafile: Path,
        mode: str = "-www",
        extra: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        argv = [
            openssl, "s_server", "-accept", f"127.0.0.1:{self.port}",
            "-Verify", "1", "-verify_return_error", "-CAfile", str(cafile),
            "-cert", str(cert), "-key", str(key),
        ]  # fmt: skip
        argv += [mode] if mode else []
        argv += list(extra)
        super().__init__(argv, log)

    def start(self) -> OpenSslServer:
        self._spawn()
        self.wait_for("ACCEPT")
        return self


CLONE_NEWNET = 0x40000000


class GnutlsServer(_Process):
    """``gnutls-serv`` requiring and verifying client certificates, in a network namespace of
    its own (it listens on every address: there, only its own loopback exists)."""

    name = "gnutls-serv"

    def __init__(
        self,
        unshare: str,
        gnutls_serv: str,
        log: Path,
        *,
        cert: Path,
        key: Path,
        cafile: Path,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        serve = [
            gnutls_serv, "--require-client-cert", "--verify-client-cert",
            "--x509cafile", str(cafile), "--x509certfile", str(cert),
            "--x509keyfile", str(key), "-p", str(self.port), *extra,
        ]  # fmt: skip
        script = 'ip link set lo up && exec "$@"'
        super().__init__([unshare, "--net", "sh", "-c", script, "sh", *serve], log)

    def start(self) -> GnutlsServer:
        self._spawn()
        self.wait_for("listening")
        return self

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """A TCP connection to the server, made inside its network namespace."""
        assert self.process is not None
        pid = self.process.pid
        result: dict[str, socket.socket | BaseException] = {}

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        errno = ctypes.get_errno()
                        raise OSError(errno, f"setns: {os.strerror(errno)}")
                finally:
                    os.close(fd)
                result["socket"] = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=timeout
                )
            except BaseException as e:  # handed to the test's thread
                result["error"] = e

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        sock = result["socket"]
        assert isinstance(sock, socket.socket)
        return sock


# --- emulated cards --------------------------------------------------------------------------


@dataclass
class CardRig:
    """An emulated card, the commands it received, and the opcard.Card on it."""

    emu: OpenPGPCard
    card: opcard.Card
    commands: list[bytes] = field(default_factory=list)

    def since(self, mark: int) -> list[bytes]:
        return self.commands[mark:]

    def mark(self) -> int:
        return len(self.commands)

    def pin_retries(self) -> int:
        """PW1 tries left, read on a fresh connection to the same emulated card."""
        with opcard.Card(LoopbackTransport(self.emu.transmit, self.emu.atr)) as card:
            return card.session().pin_status()["user"]

    def verifies(self, mark: int = 0) -> list[bytes]:
        """VERIFY commands (with a PIN: not the status query, not the logout) since ``mark``."""
        return [c for c in self.since(mark) if c[1] == INS_VERIFY and c[2] == 0x00 and len(c) > 5]


def make_card(variant: str = "demo-ecc", profile: str = "extended") -> CardRig:
    emu = OpenPGPCard(profile)
    personalize(emu, variant)
    emu.power_on()
    rig = CardRig(emu, None)  # type: ignore[arg-type]

    def transmit(apdu: bytes) -> bytes:
        rig.commands.append(bytes(apdu))
        return emu.transmit(apdu)

    rig.card = opcard.Card(LoopbackTransport(transmit, emu.atr, on_power=emu.reset))
    return rig


def install_p384(rig: CardRig, pki: Pki, slot: str = "aut") -> x509.Certificate:
    """Put a P-384 key and a demo-CA certificate for it into ``slot``."""
    key = ec.generate_private_key(ec.SECP384R1())
    cert = issue(
        pki.demo_ca, pki.demo_ca_key, key.public_key(), "opcard tls P-384 client", client=True
    )
    with rig.card.session() as session:
        session.login_admin(PW3)
        session.import_key(slot, key)
        session.store_certificate(slot, cert.public_bytes(serialization.Encoding.DER))
    return cert


def install_client_certificate(rig: CardRig, pki: Pki, slot: str) -> x509.Certificate:
    """A demo-CA certificate allowing TLS client authentication for the (ECC) key in
    ``slot``, stored in that slot."""
    from apdu.openpgp.constants import KeySlot

    public = rig.card.public_key(KeySlot[slot.upper()])
    assert public is not None
    key = public.to_cryptography()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    cert = issue(pki.demo_ca, pki.demo_ca_key, key, f"opcard tls {slot} client", client=True)
    with rig.card.session() as session:
        session.login_admin(PW3)
        session.store_certificate(slot, cert.public_bytes(serialization.Encoding.DER))
    return cert


def slot_certificate(rig: CardRig, slot: str = "aut") -> x509.Certificate:
    from apdu.openpgp.constants import KeySlot

    return x509.load_der_x509_certificate(rig.card.certificate(KeySlot[slot.upper()]))


def openssl_subject(cert: x509.Certificate) -> str:
    """The subject as ``openssl s_server`` prints it: ``O = …, CN = …``."""
    parts = []
    for rdn in cert.subject.rdns:
        for attribute in rdn:
            short = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O"}[attribute.oid]
            value = attribute.value
            parts.append(f"{short} = {value if isinstance(value, str) else value.decode()}")
    return ", ".join(parts)


def gnutls_subject(cert: x509.Certificate) -> str:
    """The subject as gnutls-serv prints it: ``CN=…,O=…`` (RFC 4514 order)."""
    return cert.subject.rfc4514_string()
