"""The card on this machine, the application on another: ``opcard serve``'s socket forwarded
with ``ssh -R REMOTE_SOCKET:LOCAL_SOCKET`` (docs/serve.md, *Over ssh*).

One set-up for the module: the emulated ECDSA card logged in behind an ``opcard serve``
server (in this process, so that its APDUs are counted) with ``--confirm forwarded`` and a
confirmation command of the test's own; a network namespace of the test's own with two
``sshd`` on its 127.0.0.1 (the "remote machine"); a user account made for the test (the
remote user, home in a temporary directory); and one ``ssh -N -R`` from this side (as root,
like the card's owner) into the first sshd as that user, forwarding the daemon's socket to a
socket in the remote user's home. Then, as the remote user inside the namespace, with no PIN
anywhere on that side: p11tool through p11-kit-client.so lists and exports the three
certificates byte-identical; ``ssh -I p11-kit-proxy.so`` — the token found through a module
file ``remote: unix:path=…`` in the remote user's p11-kit configuration — logs into the
second sshd with the card's AUT key; gnutls-cli completes TLS client authentication against
gnutls-serv. Every signature from the far side is confirmed (the daemon sees the local ssh
process as the peer): refused, it sends no APDU; allowed, the signature verifies; a local
connection is not asked.

Needs root (a network namespace, a user account): in CI it fails without, elsewhere it
skips."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import in_ci, require_file, require_tool
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from serve_support import (
    P11_CLIENT,
    PW1,
    SLOT_ID,
    SLOTS,
    Background,
    EmulatedCard,
    RawClient,
    background,
    captured_log,
    emulated_card,
    server_credentials,
)

from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass
from opcard.serve.confirm import Confirmation, ConfirmWhen
from opcard.serve.server import Server
from opcard.serve.slots import Registry
from opcard.text import is_unsafe

PROXY = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
TOKEN_URI = "pkcs11:token=Jane%20Doe"
INTERNAL_AUTHENTICATE = 0x88
#: Ports on the namespace's own 127.0.0.1 (nothing else listens there).
FORWARD_SSHD_PORT, LOGIN_SSHD_PORT, TLS_PORT = 2201, 2202, 4433


def require_root() -> None:
    if os.geteuid() == 0:
        return
    what = (
        "the ssh-forwarding tests need root: they create a network namespace (ip netns add) "
        "and a user account (useradd)"
    )
    if in_ci():
        pytest.fail(f"{what} — run the suite as root in CI", pytrace=False)
    pytest.skip(what)


def run_checked(argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(list(argv), capture_output=True, timeout=30)
    assert proc.returncode == 0, (
        f"{argv} exited {proc.returncode}\nstdout:\n{proc.stdout.decode(errors='replace')}"
        f"\nstderr:\n{proc.stderr.decode(errors='replace')}"
    )
    return proc


@dataclass
class Remote:
    """Everything the module's tests share."""

    card: EmulatedCard
    server: Server
    base: Path
    namespace: str
    user: str
    uid: int
    gid: int
    home: Path
    #: The forwarded socket on the far side (in the remote user's home).
    socket: Path
    forward: Background
    login_sshd: Background
    log: list[str]

    @property
    def prompts(self) -> list[str]:
        path = self.base / "prompts"
        return path.read_text().splitlines() if path.exists() else []

    def answer(self, status: int) -> None:
        (self.base / "answer").write_text(f"{status}\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
        env.update(extra)
        return env

    def argv(self, argv: Sequence[str], env: dict[str, str]) -> list[str]:
        """``argv`` as the remote user, inside the namespace, with exactly ``env``."""
        return [
            "ip", "netns", "exec", self.namespace,
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
            "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv,
        ]  # fmt: skip

    def run(
        self, argv: Sequence[str], env: dict[str, str], *, check: bool = True, input: bytes = b""
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            self.argv(argv, env), capture_output=True, timeout=60, input=input, cwd=self.home
        )
        if check:
            assert proc.returncode == 0, (
                f"{argv[0]} exited {proc.returncode}\nstdout:\n"
                f"{proc.stdout.decode(errors='replace')}\nstderr:\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def client_env(self, **extra: str) -> dict[str, str]:
        """p11-kit-client.so pointed at the forwarded socket by the variable."""
        return self.env(P11_KIT_SERVER_ADDRESS=f"unix:path={self.socket}", **extra)


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def sshd_config(base: Path, name: str, port: int, authorized: Path, user: str) -> Path:
    host_key = base / f"{name}_host_key"
    run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    return write(
        base / f"{name}_config",
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nAllowUsers {user}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nAllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n"
        f"PidFile {base / (name + '.pid')}\nLogLevel VERBOSE\n",
    )


@contextlib.contextmanager
def namespace(name: str) -> Iterator[str]:
    run_checked(["ip", "netns", "add", name])
    try:
        run_checked(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def user_account(name: str, home: Path) -> Iterator[tuple[int, int]]:
    # '*': no password, but not a locked account ('!'), which sshd refuses without PAM
    run_checked(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", "-p", "*", "-U", name])
    try:
        import pwd

        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        # its processes (sshd's sessions) end with the ssh connections, stopped before this
        for _ in range(50):  # userdel refuses while a process of the user lives
            if subprocess.run(["userdel", "-r", name], capture_output=True).returncode in (0, 6):
                break
            time.sleep(0.1)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    require_root()
    for tool in ("ip", "setpriv", "useradd", "userdel", "sshd", "ssh", "ssh-keygen"):
        require_tool(tool)
    for tool in ("p11tool", "gnutls-cli", "gnutls-serv", "pkcs11-tool"):
        require_tool(tool)
    require_file(P11_CLIENT)
    require_file(PROXY)
    tag = f"{os.getpid() % 100000}"
    base = Path(tempfile.mkdtemp(prefix="opcard-remote-"))
    base.chmod(0o755)  # the remote user reads the keys and the CA here
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, True)
        log = stack.enter_context(captured_log())
        # the near side: the card, logged in, behind the daemon; confirmations asked
        card = emulated_card("demo-ecc")
        registry = Registry()
        stack.callback(registry.close)
        registry.attach(card.card).login_operator(PW1)
        asker = write(
            base / "confirm.sh",
            f'#!/bin/sh\nprintf "%s\\n" "$1" >> {base}/prompts\nexit $(cat {base}/answer)\n',
            0o700,
        )
        write(base / "answer", "0\n")
        local = base / "near"
        local.mkdir(mode=0o700)
        server = Server(
            registry,
            local / "pkcs11",
            confirmation=Confirmation(ConfirmWhen.FORWARDED, (str(asker),), 10.0),
        )
        server.start()
        stack.callback(server.stop)
        # the far side: a namespace of our own, a user of our own
        ns = stack.enter_context(namespace(f"opcard-remote-{tag}"))
        user = f"opcrmt{tag}"
        home = base / "home"
        uid, gid = stack.enter_context(user_account(user, home))
        client_key = base / "client_key"
        run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)])
        forward_keys = write(base / "forward_keys", (base / "client_key.pub").read_text())
        card_keys = write(base / "card_keys", card.demo["aut"].openssh + "\n")
        sshd = require_tool("sshd")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for name, port, keys in (
            ("forward", FORWARD_SSHD_PORT, forward_keys),
            ("login", LOGIN_SSHD_PORT, card_keys),
        ):
            config = sshd_config(base, name, port, keys, user)
            server_bg = stack.enter_context(
                background(
                    ["ip", "netns", "exec", ns, sshd, "-D", "-e", "-f", str(config)],
                    base / f"{name}_sshd.out",
                    ready=f"Server listening on 127.0.0.1 port {port}",
                )
            )
            if name == "login":
                login_sshd = server_bg
        remote_socket = home / "opcard.sock"
        # as the card's owner (root here), from this side: ip netns exec execs ssh itself,
        # so the process connecting to the daemon's socket is this ssh
        forward = stack.enter_context(
            background(
                [
                    "ip", "netns", "exec", ns, require_tool("ssh"), "-F", "/dev/null", "-N",
                    "-i", str(client_key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                    "-o", f"UserKnownHostsFile={base / 'known_hosts'}",
                    "-o", "ExitOnForwardFailure=yes",
                    "-R", f"{remote_socket}:{server.path}",
                    "-p", str(FORWARD_SSHD_PORT), f"{user}@127.0.0.1",
                ],
                base / "forward.out",
            )
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not remote_socket.exists():
            assert forward.proc.poll() is None, forward.text()
            assert time.monotonic() < deadline, f"no {remote_socket}: {forward.text()}"
            time.sleep(0.02)
        yield Remote(
            card, server, base, ns, user, uid, gid, home, remote_socket, forward, login_sshd, log
        )


def test_forwarded_socket_belongs_to_the_remote_user(remote: Remote) -> None:
    info = remote.socket.lstat()
    assert info.st_uid == remote.uid
    assert info.st_mode & 0o077 == 0  # sshd's StreamLocalBindMask: 0600


def test_p11tool_lists_and_exports_the_certificates(remote: Remote) -> None:
    env = remote.client_env()
    listing = remote.run(["p11tool", "--provider", P11_CLIENT, "--list-all-certs"], env)
    text = listing.stdout.decode()
    assert text.count("Type: X.509 Certificate") == 3, text
    for slot in SLOTS:
        uri = f"{TOKEN_URI};id=%{SLOT_ID[slot]:02x};type=cert"
        der = remote.run(["p11tool", "--provider", P11_CLIENT, "--export", uri, "--outder"], env)
        assert der.stdout == remote.card.demo[slot].cert_der, slot
    # the daemon saw the local ssh process as the peer of the forwarded connections
    assert any("(forwarded, ssh)" in line for line in remote.log), remote.log[-20:]


def test_ssh_login_with_the_card_through_a_module_file(remote: Remote) -> None:
    """p11-kit-proxy.so finds the token from the remote user's module file (no variable);
    the remote side has no PIN: the daemon's login serves it."""
    modules = remote.home / ".config" / "pkcs11" / "modules"
    remote.run(["mkdir", "-p", str(modules)], remote.env())
    remote.run(
        ["sh", "-c", f"echo 'remote: unix:path={remote.socket}' > {modules}/opcard.module"],
        remote.env(),
    )
    # OpenSC's system-wide module off for this user: the card only through the forward
    remote.run(
        [
            "sh", "-c",
            "printf 'module: opensc-pkcs11.so\\nenable-in: opcard-test-nothing\\n' > "
            f"{modules}/opensc-pkcs11.module",
        ],
        remote.env(),
    )  # fmt: skip
    remote.answer(0)
    prompts = len(remote.prompts)
    before = len(remote.card.sent)
    out = remote.run(
        [
            "ssh", "-F", "/dev/null", "-I", PROXY, "-p", str(LOGIN_SSHD_PORT),
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={remote.home / 'known_hosts'}",
            "-o", "IdentityAgent=none", "-o", "PreferredAuthentications=publickey",
            f"{remote.user}@127.0.0.1", "echo opcard-remote-login-ok",
        ],
        remote.env(),
    )  # fmt: skip
    assert out.stdout.decode().strip() == "opcard-remote-login-ok"
    log = remote.login_sshd.text()
    assert f"Accepted publickey for {remote.user}" in log and "ECDSA" in log, log
    assert INTERNAL_AUTHENTICATE in [apdu[1] for apdu in remote.card.sent[before:]]
    asked = remote.prompts[prompts:]
    assert len(asked) == 1, asked
    assert "a signature with the Authentication key (AUT)" in asked[0]
    assert f"a forwarded connection (pid {remote.forward.proc.pid}, " in asked[0]
    assert "ssh -F /dev/null -N" in asked[0]  # the forwarding ssh's command line


def test_gnutls_client_authentication(remote: Remote) -> None:
    creds = server_credentials(remote.base)
    ca = remote.base / "ca.pem"
    shutil.copyfile(creds.ca, ca)
    ca.chmod(0o644)
    serv = [
        "ip", "netns", "exec", remote.namespace, require_tool("gnutls-serv"),
        "--port", str(TLS_PORT), "--echo", "--require-client-cert", "--verify-client-cert",
        "--x509cafile", str(ca), "--x509certfile", str(creds.cert),
        "--x509keyfile", str(creds.key),
    ]  # fmt: skip
    remote.answer(0)
    with background(serv, remote.base / "gnutls-serv.out", ready="Echo Server") as server:
        argv = [
            "gnutls-cli", "--provider", P11_CLIENT, "--x509cafile", str(ca),
            "--x509certfile", f"{TOKEN_URI};id=%03;type=cert",
            "--x509keyfile", f"{TOKEN_URI};id=%03;type=private",
            "-p", str(TLS_PORT), "127.0.0.1",
        ]  # fmt: skip
        proc = remote.run(argv, remote.client_env(), input=b"hello from the far side\n")
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert "Successfully sent 1 certificate(s) to server" in out, out
    assert "Handshake was completed" in out, out
    assert "(TLS1.3-X.509)" in out, out
    assert "hello from the far side" in out, out
    log = server.text()
    assert "Client Signature: ECDSA" in log, log
    assert "The certificate is trusted" in log, log


def sign_remotely(remote: Remote, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """pkcs11-tool on the far side signs SHA-256(data) with the AUT key (CKM_ECDSA)."""
    (remote.base / "data").write_bytes(hashlib.sha256(data).digest())
    (remote.base / "data").chmod(0o644)
    out = remote.home / "signature"
    return remote.run(
        [
            "pkcs11-tool", "--module", P11_CLIENT, "--sign", "--id", "03",
            "--mechanism", "ECDSA", "--input-file", str(remote.base / "data"),
            "--output-file", str(out),
        ],
        remote.client_env(),
        check=False,
    )  # fmt: skip


def test_confirmation_of_a_forwarded_signature(remote: Remote) -> None:
    data = b"signed on the far side"
    remote.answer(1)
    prompts = len(remote.prompts)
    before = len(remote.card.sent)
    refused = sign_remotely(remote, data)
    assert refused.returncode != 0
    # CKR_FUNCTION_REJECTED, which OpenSC's pkcs11-tool prints as a number
    assert b"rv = unknown PKCS11 error (0x200)" in refused.stderr, refused.stderr
    # no APDU at all: neither the signature nor anything else
    assert remote.card.sent[before:] == []
    # pkcs11-tool tries C_Sign, then again with C_SignUpdate/C_SignFinal: both were asked
    assert len(remote.prompts) == prompts + 2

    remote.answer(0)
    before = len(remote.card.sent)
    allowed = sign_remotely(remote, data)
    assert allowed.returncode == 0, allowed.stderr.decode(errors="replace")
    assert [a[1] for a in remote.card.sent[before:]] == [INTERNAL_AUTHENTICATE]
    assert len(remote.prompts) == prompts + 3
    raw = (remote.home / "signature").read_bytes()
    signature = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    remote.card.demo["aut"].public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    assert f"a forwarded connection (pid {remote.forward.proc.pid}, " in remote.prompts[-1]
    for prompt in remote.prompts[prompts:]:
        assert not [ch for ch in prompt if is_unsafe(ch)], prompt


def test_a_local_connection_is_not_asked(remote: Remote) -> None:
    remote.answer(1)  # would refuse
    prompts = len(remote.prompts)
    digest = hashlib.sha256(b"local").digest()
    with RawClient(remote.server.path) as c:
        c.initialize()
        session = c.open(remote.server.registry.slots()[0].slot_id)
        (key,) = c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: b"\x03"})
        raw = c.sign(session, key, M.ECDSA, digest, 64)
    signature = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    remote.card.demo["aut"].public.verify(signature, b"local", ec.ECDSA(hashes.SHA256()))
    assert len(remote.prompts) == prompts
