"""``opcard serve --confirm``: every private-key use of a covered connection runs a
confirmation command first (ssh-agent ``-c`` style), in process with the emulated card.

A refusal (exit 1, or no answer within the timeout) answers CKR_FUNCTION_REJECTED and sends no
APDU; exit 0 lets the operation through (the signature verifies); a size query asks nothing;
with ``forwarded`` a local connection (this Python process) is not asked; the prompt carries a
hostile cardholder name escaped; a pending prompt does not hold up other connections. The
forwarded case itself (the peer is ssh) is tested through a real ``ssh -R`` in
test_serve_remote.py."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from serve_support import (
    PW1,
    EmulatedCard,
    RawClient,
    RpcError,
    ay,
    byte_array,
    emulated_card,
    private_dir,
    template,
    u32,
    u64,
)

import opcard
from opcard.cli.app import cli
from opcard.cli.backend import ReaderEntry, use_backend
from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass, ReturnValue
from opcard.serve.confirm import (
    Confirmation,
    ConfirmWhen,
    KeyUse,
    PeerProcess,
    peer_process,
    prompt_text,
)
from opcard.serve.server import Server
from opcard.serve.slots import Registry
from opcard.text import is_unsafe

SIG_INPUT = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(b"m").digest()
#: A cardholder name (ISO 8859-1 on the card) with an OSC title sequence, a newline and a C1
#: CSI: the token label a hostile card shows.
HOSTILE_NAME = b"Mallory\x1b]0;owned\x07\nYes\x9b2J"


@dataclass
class Asker:
    """A confirmation command: records each prompt (and the OPCARD_CONFIRM_* environment),
    answers with the exit status in its ``answer`` file."""

    directory: Path

    @property
    def script(self) -> Path:
        return self.directory / "confirm.sh"

    def __post_init__(self) -> None:
        self.script.write_text(
            "#!/bin/sh\n"
            "for last; do :; done\n"  # the prompt: the last argument
            f'printf "%s\\n" "$last" >> {self.directory}/prompts\n'
            f'printf "%s\\n" "$*" >> {self.directory}/argv\n'
            f'printf "%s %s %s %s %s\\n" "$SSH_ASKPASS_PROMPT" "$OPCARD_CONFIRM_OPERATION" '
            f'"$OPCARD_CONFIRM_KEY" "$OPCARD_CONFIRM_SERIAL" "$OPCARD_CONFIRM_FORWARDED" '
            f">> {self.directory}/env\n"
            f"exit $(cat {self.directory}/answer)\n"
        )
        self.script.chmod(0o700)
        self.answer(1)

    def answer(self, status: int) -> None:
        (self.directory / "answer").write_text(f"{status}\n")

    def prompts(self) -> list[str]:
        path = self.directory / "prompts"
        return path.read_text().splitlines() if path.exists() else []

    def env(self) -> list[str]:
        path = self.directory / "env"
        return path.read_text().splitlines() if path.exists() else []


@dataclass
class Confirmed:
    server: Server
    card: EmulatedCard
    asker: Asker

    def connect(self, version: int = 0) -> RawClient:
        c = RawClient(self.server.path, version)
        c.initialize()
        return c


@contextlib.contextmanager
def confirmed(
    when: ConfirmWhen,
    variant: str = "demo-rsa",
    *,
    command: list[str] | None = None,
    timeout: float = 10.0,
    name: bytes | None = None,
) -> Iterator[Confirmed]:
    directory = private_dir("opcard-confirm-")
    asker = Asker(directory)
    card = emulated_card(variant)
    if name is not None:  # the cardholder name (the token label), as the card stores it
        card.emu.state.name = name
        card.reinsert()
    registry = Registry()
    registry.attach(card.card).login_operator(PW1)
    policy = Confirmation(when, tuple(command or [str(asker.script)]), timeout)
    server = Server(registry, directory / "pkcs11", confirmation=policy)
    server.start()
    try:
        yield Confirmed(server, card, asker)
    finally:
        server.stop()
        registry.close()
        shutil.rmtree(directory, ignore_errors=True)


def key_handle(c: RawClient, session: int, slot_id: int) -> int:
    found = c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY, A.ID: bytes((slot_id,))})
    assert len(found) == 1, found
    return found[0]


def rv_of(f: Callable[[], object]) -> int:
    with pytest.raises(RpcError) as e:
        f()
    return e.value.rv


def sign_init(c: RawClient, session: int, key: int, mechanism: int = M.RSA_PKCS) -> None:
    c.call(42, u64(session) + c.mechanism(mechanism) + u64(key)).end()


def test_refused_then_allowed_signature() -> None:
    with confirmed(ConfirmWhen.ALL) as t, t.connect() as c:
        session = c.open(t.server.registry.slots()[0].slot_id)
        aut = key_handle(c, session, 3)
        sign_init(c, session, aut)
        before = len(t.card.sent)
        # a size query is answered from the key size: nothing asked, nothing sent
        assert c.call(43, u64(session) + ay(SIG_INPUT) + u32(0)).ay() == (None, 256)
        assert t.asker.prompts() == []
        rv = rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)))
        assert rv == ReturnValue.FUNCTION_REJECTED
        assert len(t.card.sent) == before  # no APDU for the refused signature
        assert len(t.asker.prompts()) == 1
        # the refusal ended the operation, as any C_Sign error does
        rv = rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)))
        assert rv == ReturnValue.OPERATION_NOT_INITIALIZED

        t.asker.answer(0)
        sign_init(c, session, aut)
        signature, _ = c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)).ay()
        assert signature is not None
        assert [apdu[1] for apdu in t.card.sent[before:]] == [0x88]  # INTERNAL AUTHENTICATE
        t.card.demo["aut"].public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
        prompts = t.asker.prompts()
        assert len(prompts) == 2
        assert "a signature with the Authentication key (AUT)" in prompts[1]
        assert 'of card "Jane Doe" (serial ' in prompts[1]
        assert f"pid {os.getpid()}" in prompts[1] and "forwarded" not in prompts[1]
        serial = t.card.card.serial
        assert t.asker.env() == [f"confirm sign AUT {serial} 0"] * 2

        # multi-part: asked at C_SignFinal, once
        t.asker.answer(1)
        sign_init(c, session, key_handle(c, session, 1), M.SHA256_RSA_PKCS)
        c.call(44, u64(session) + ay(b"part one, ")).end()
        c.call(44, u64(session) + ay(b"part two")).end()
        before = len(t.card.sent)
        rv = rv_of(lambda: c.call(45, u64(session) + u32(512)))
        assert rv == ReturnValue.FUNCTION_REJECTED
        assert len(t.card.sent) == before
        assert "a signature with the Signature key (SIG)" in t.asker.prompts()[-1]


def test_decryption_and_derivation_are_confirmed() -> None:
    with confirmed(ConfirmWhen.ALL) as t, t.connect() as c:
        session = c.open(t.server.registry.slots()[0].slot_id)
        secret = b"session key"
        cryptogram = t.card.demo["dec"].public.encrypt(secret, padding.PKCS1v15())
        dec = key_handle(c, session, 2)
        c.call(33, u64(session) + c.mechanism(M.RSA_PKCS) + u64(dec)).end()
        before = len(t.card.sent)
        rv = rv_of(lambda: c.call(34, u64(session) + ay(cryptogram) + u32(256)))
        assert rv == ReturnValue.FUNCTION_REJECTED
        assert len(t.card.sent) == before
        assert "a decryption with the Encryption key (DEC)" in t.asker.prompts()[-1]
        t.asker.answer(0)
        c.call(33, u64(session) + c.mechanism(M.RSA_PKCS) + u64(dec)).end()
        plain, _ = c.call(34, u64(session) + ay(cryptogram) + u32(256)).ay()
        assert plain == secret

    with confirmed(ConfirmWhen.ALL, "demo-ecc") as t, t.connect(1) as c:
        slot_id = t.server.registry.slots()[0].slot_id
        c.call(6, u64(slot_id))  # C_GetTokenInfo, as clients do first: reads the name
        session = c.open(slot_id)
        peer = ec.generate_private_key(ec.SECP256R1())
        point = peer.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        mechanism = u32(M.ECDH1_DERIVE) + u64(1) + byte_array(None) + byte_array(point)
        wanted = template({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: 0x10, A.TOKEN: 0})
        dec = key_handle(c, session, 2)
        before = len(t.card.sent)
        rv = rv_of(lambda: c.call(62, u64(session) + mechanism + u64(dec) + wanted))
        assert rv == ReturnValue.FUNCTION_REJECTED
        assert [apdu[:4].hex() for apdu in t.card.sent[before:]] == []
        assert "an ECDH key agreement with the Encryption key (DEC)" in t.asker.prompts()[-1]
        t.asker.answer(0)
        handle = c.call(62, u64(session) + mechanism + u64(dec) + wanted).ulong()
        attrs, _ = c.attributes(session, handle, [(A.VALUE, 64)])
        assert attrs == [(A.VALUE, 32, peer.exchange(ec.ECDH(), t.card.demo["dec"].public))]


def test_forwarded_policy_does_not_ask_a_local_connection() -> None:
    with confirmed(ConfirmWhen.FORWARDED) as t, t.connect() as c:
        session = c.open(t.server.registry.slots()[0].slot_id)
        aut = key_handle(c, session, 3)
        assert c.sign(session, aut, M.RSA_PKCS, SIG_INPUT, 256)  # the asker would say no
        assert t.asker.prompts() == []


def test_prompt_escapes_a_hostile_cardholder_name() -> None:
    with confirmed(ConfirmWhen.ALL, name=HOSTILE_NAME) as t, t.connect() as c:
        session = c.open(t.server.registry.slots()[0].slot_id)
        aut = key_handle(c, session, 3)
        sign_init(c, session, aut)
        rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)))
        (prompt,) = t.asker.prompts()  # one line: no raw newline from the name
    assert not [ch for ch in prompt if is_unsafe(ch)], prompt
    assert "Mallory\\x1b]0;owned\\x07" in prompt and "\\x9b2J" in prompt


def test_prompt_text_escapes_every_part() -> None:
    use = KeyUse("sign", "AUT", "Authentication\x00key", "Eve\r\n", "1234\x1b5678")
    peer = PeerProcess(42, "/usr/bin/ssh\n", "ssh -R /x:/y\x1b[2J host\tname")
    text = prompt_text(use, peer, forwarded=True)
    assert not [ch for ch in text if is_unsafe(ch)], text
    assert "a forwarded connection (pid 42, /usr/bin/ssh\\x0a: ssh -R /x:/y\\x1b[2J" in text
    long = PeerProcess(7, "/usr/bin/ssh", "ssh " + "A" * 500)
    assert len(long.describe()) < 200


def test_peer_process_and_forwarded() -> None:
    me = peer_process(os.getpid())
    assert me.exe is not None and Path(me.exe).samefile(os.path.realpath("/proc/self/exe"))
    assert not me.forwarded
    for exe in ("/usr/bin/ssh", "/usr/sbin/sshd", "/usr/lib/openssh/sshd-session"):
        assert PeerProcess(1, exe, "").forwarded
    assert not PeerProcess(1, "/usr/bin/socat", "").forwarded
    assert not PeerProcess(1, None, "").forwarded  # gone: not taken for ssh
    with pytest.raises(ValueError, match="command"):
        Confirmation(ConfirmWhen.ALL)


def test_no_answer_refuses_and_does_not_hold_up_others(tmp_path: Path) -> None:
    """A prompt nobody answers is refused at the timeout (its process group killed); another
    connection's calls that need the card are answered meanwhile."""
    sleeper = tmp_path / "sleeper.sh"
    sleeper.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\nsleep 30\n")
    sleeper.chmod(0o700)
    with confirmed(ConfirmWhen.ALL, command=[str(sleeper)], timeout=1.5) as t:
        slot_id = t.server.registry.slots()[0].slot_id
        with t.connect() as a, t.connect() as b:
            session = a.open(slot_id)
            sign_init(a, session, key_handle(a, session, 3))
            a.send_frame(u32(43) + byte_array(b"uayfy") + u64(session) + ay(SIG_INPUT) + u32(256))
            deadline = time.monotonic() + 5
            while not (tmp_path / "pid").exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            start = time.monotonic()
            other = b.open(slot_id)
            assert len(b.find(other, {A.CLASS: ObjectClass.CERTIFICATE})) == 3
            assert time.monotonic() - start < 1.0  # not behind the pending prompt
            _code, body = a.read_frame()
            waited = time.monotonic() - start
            assert body[:4] == u32(0)  # an error reply …
            assert body[-8:] == u64(ReturnValue.FUNCTION_REJECTED)  # … CKR_FUNCTION_REJECTED
            assert 0.5 < waited < 4.0
            pid = int((tmp_path / "pid").read_text())
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
            )


# --- the command line ---------------------------------------------------------------------


class LoggedCard:
    """A backend with one emulated card whose APDUs are kept (``sent``)."""

    def __init__(self) -> None:
        self.card = emulated_card("demo-rsa")

    def open_card(self, *, serial: str | None, reader: str | None) -> opcard.Card:
        return self.card.card

    def readers(self) -> list[ReaderEntry]:
        return []


def serve_cli(
    args: list[str], env: dict[str, str | None] | None = None, input: str | None = None
) -> Result:
    env = {"SSH_ASKPASS": None, **(env or {})}
    return CliRunner().invoke(cli, ["serve", *args], env=env, input=input)


def test_cli_confirm_needs_a_command(tmp_path: Path) -> None:
    socket_path = str(tmp_path / "sock" / "pkcs11")
    with use_backend(LoggedCard()):
        result = serve_cli(
            ["--socket", socket_path, "--confirm", "forwarded"], {"PATH": str(tmp_path)}
        )
        assert result.exit_code == 2, result.output
        assert "--confirm forwarded needs a command to ask" in result.output
        result = serve_cli(["--socket", socket_path, "--confirm-command", "/bin/true"])
        assert result.exit_code == 2, result.output
        assert "--confirm-command needs --confirm forwarded or all" in result.output
        result = serve_cli(
            ["--socket", socket_path, "--confirm", "all", "--confirm-command", "/no/such ask"]
        )
        assert result.exit_code == 2, result.output
        assert "'/no/such' is not an executable program" in result.output
    assert not (tmp_path / "sock").exists()


def test_cli_confirm_all_asks_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``opcard serve --confirm all --confirm-command '…'`` (in a thread): a signature is
    refused by the command, with no APDU; the command got its words and the prompt."""
    asker = Asker(tmp_path)
    stop = threading.Event()
    monkeypatch.setattr("opcard.cli.serve._wait_for_a_signal", lambda: stop.wait(30))
    directory = private_dir("opcard-confirm-cli-")
    socket_path = directory / "pkcs11"
    backend = LoggedCard()
    results: list[Result] = []
    with use_backend(backend):
        thread = threading.Thread(
            target=lambda: results.append(
                serve_cli(
                    [
                        "--socket", str(socket_path), "--pin-file", "-", "--confirm", "all",
                        "--confirm-command", f"{asker.script} --ignored-word",
                        "--confirm-timeout", "5",
                    ],
                    {"OPCARD_PIN": None},
                    f"{PW1}\n",
                )
            ),
            daemon=True,
        )  # fmt: skip
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not socket_path.exists():
                assert thread.is_alive(), results[0].output if results else "?"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with RawClient(socket_path) as c:
                c.initialize()
                (slot,) = c.slots()
                session = c.open(slot)
                sign_init(c, session, key_handle(c, session, 3))
                before = len(backend.card.sent)
                rv = rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)))
                assert rv == ReturnValue.FUNCTION_REJECTED
                assert len(backend.card.sent) == before
        finally:
            stop.set()
            thread.join(15)
            shutil.rmtree(directory, ignore_errors=True)
    assert results and results[0].exit_code == 0, results[0].output if results else "?"
    (prompt,) = asker.prompts()
    assert (tmp_path / "argv").read_text() == f"--ignored-word {prompt}\n"
    assert prompt.startswith("opcard: allow a signature with the Authentication key (AUT)")
    # the start-up line says it
    assert f"every private-key use of all connections asks {asker.script} (5 s" in (
        results[0].output
    )


def test_the_prompt_shown_in_the_docs() -> None:
    """docs/serve.md (*Confirming each use*) shows a prompt: it is the one the daemon makes."""
    from conftest import REPO

    use = KeyUse("sign", "AUT", "Authentication key", "Jane Doe", "10000001")
    command = "ssh -R /home/jane/.opcard.sock:/run/user/1000/opcard/pkcs11 jane@server.example"
    text = prompt_text(use, PeerProcess(4242, "/usr/bin/ssh", command), forwarded=True)
    assert f"\n{text}\n" in (REPO / "docs" / "serve.md").read_text()


def test_stopping_the_server_ends_a_pending_prompt(tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper.sh"
    sleeper.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\nexec sleep 30\n")
    sleeper.chmod(0o700)
    with confirmed(ConfirmWhen.ALL, command=[str(sleeper)], timeout=30) as t:
        slot_id = t.server.registry.slots()[0].slot_id
        c = t.connect()
        session = c.open(slot_id)
        sign_init(c, session, key_handle(c, session, 3))
        c.send_frame(u32(43) + byte_array(b"uayfy") + u64(session) + ay(SIG_INPUT) + u32(256))
        deadline = time.monotonic() + 5
        while not (tmp_path / "pid").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pid = int((tmp_path / "pid").read_text())
        before = len(t.card.sent)
        start = time.monotonic()
        t.server.stop()
        assert time.monotonic() - start < 3.0  # not the prompt's 30 s
        assert not Path(f"/proc/{pid}").exists()  # killed (and reaped)
        assert len(t.card.sent) == before
        c.close()
