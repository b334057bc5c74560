"""OpenSSH through ``opcard serve``: ``ssh-keygen -D`` lists the card's public keys, a private
``ssh-agent`` loads them with ``ssh-add -s`` and proves they sign (``ssh-add -T``), and
``ssh -I`` logs into an ``sshd`` on 127.0.0.1 that has the card's AUT key in its
authorized_keys."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_tool
from serve_support import PW1, SLOTS, Background, Served, background, free_port, run

INTERNAL_AUTHENTICATE = 0x88


def askpass(directory: Path) -> dict[str, str]:
    """SSH_ASKPASS answering every prompt with the user PIN (forced, no terminal needed)."""
    script = directory / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho {PW1}\n")
    script.chmod(0o700)
    return {"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}


def wait_for_path(path: Path, process: Background, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.proc.poll() is None, process.text()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def key_blobs(text: str) -> set[str]:
    """``type base64`` of every OpenSSH public key line."""
    return {" ".join(line.split()[:2]) for line in text.splitlines() if line.strip()}


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_ssh_keygen_lists_the_card_keys(
    served: Callable[..., Served], p11_client: str, variant: str
) -> None:
    s = served(variant)
    out = run([require_tool("ssh-keygen"), "-D", p11_client], s.env()).stdout.decode()
    assert key_blobs(out) == {key_blobs(s.card.demo[slot].openssh).pop() for slot in SLOTS}
    assert "Authentication key" in out  # OpenSSH shows the labels as comments


def test_ssh_agent_loads_and_signs(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    s = served("demo-ecc")
    agent_socket = tmp_path / "agent.sock"
    env = s.env(**askpass(tmp_path))
    with background(
        [require_tool("ssh-agent"), "-D", "-a", str(agent_socket)],
        tmp_path / "agent.out",
        env=env,
    ) as agent:
        wait_for_path(agent_socket, agent)
        env["SSH_AUTH_SOCK"] = str(agent_socket)
        ssh_add = require_tool("ssh-add")
        run([ssh_add, "-s", p11_client], env)
        listed = run([ssh_add, "-L"], env).stdout.decode()
        assert key_blobs(listed) == {key_blobs(s.card.demo[x].openssh).pop() for x in SLOTS}
        aut = tmp_path / "aut.pub"
        aut.write_text(s.card.demo["aut"].openssh + "\n")
        before = len(s.card.sent)
        run([ssh_add, "-T", str(aut)], env)  # sign and verify with the agent's card key
        assert INTERNAL_AUTHENTICATE in [apdu[1] for apdu in s.card.sent[before:]]
        run([ssh_add, "-e", p11_client], env)
        assert run([ssh_add, "-L"], env, check=False).returncode != 0  # no keys any more


def test_ssh_login_into_sshd(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    sshd = require_tool("sshd")
    s = served("demo-ecc")
    host_key = tmp_path / "host_ed25519"
    run(
        [require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        os.environ,
    )
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(s.card.demo["aut"].openssh + "\n")
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"PidFile {tmp_path / 'sshd.pid'}\nLogLevel VERBOSE\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    before = len(s.card.sent)
    with background(
        [sshd, "-D", "-e", "-f", str(config)], tmp_path / "sshd.out", port=port
    ) as server:
        env = s.env(**askpass(tmp_path))
        proc = run(
            [
                require_tool("ssh"), "-F", "/dev/null", "-I", p11_client, "-p", str(port),
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
                "-o", "IdentityAgent=none", "-o", "PreferredAuthentications=publickey",
                "-o", "PasswordAuthentication=no",
                f"{os.environ.get('USER', 'root')}@127.0.0.1", "echo opcard-ssh-login-ok",
            ],
            env,
        )  # fmt: skip
        assert proc.stdout.decode().strip() == "opcard-ssh-login-ok"
    log = server.text()
    assert "Accepted publickey" in log and "ECDSA" in log, log
    # the AUT key signed the session on the card (INTERNAL AUTHENTICATE)
    assert INTERNAL_AUTHENTICATE in [apdu[1] for apdu in s.card.sent[before:]]
