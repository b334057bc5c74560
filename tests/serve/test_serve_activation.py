"""``opcard serve`` started by socket activation (systemd's ``LISTEN_FDS`` protocol), as
``systemd-socket-activate`` does it (no running systemd needed): the daemon is started by the
first client's connection and serves it and the next ones (p11tool through p11-kit's client
module, certificates byte-identical); the socket stays in place when it stops (it belongs to
whoever created it). In process: ``LISTEN_*`` meant for another process are ignored, and the
variables are removed once read."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require_tool
from serve_support import demo, private_dir, run

from opcard.serve.activation import listen_sockets

READER = "Virtual PCD 00 00"


def test_listen_variables_for_another_process_are_ignored_and_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDNAMES", "opcard")
    assert listen_sockets() is None
    assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(os.environ)
    assert listen_sockets() is None  # not activated at all


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    directory = private_dir()
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.pcsc
def test_systemd_socket_activate_starts_the_daemon(
    emulator: Callable[..., Any], p11_client: str, socket_dir: Path, tmp_path: Path
) -> None:
    emulator(profile="extended", personalize="demo-ecc")
    path = socket_dir / "pkcs11"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    passed = [f"--setenv={key}" for key in ("PYTHONPATH", "PCSCLITE_CSOCK_NAME", "HOME")]
    passed = [p for p in passed if p.split("=", 1)[1] in env]
    log = tmp_path / "daemon.log"
    with open(log, "wb") as err:
        activator = subprocess.Popen(
            [
                require_tool("systemd-socket-activate"), f"--listen={path}", *passed,
                sys.executable, "-m", "opcard.cli", "serve", "--reader", READER,
                "--log-level", "debug",
            ],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert activator.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.02)
        assert "serving on" not in log.read_text()  # nothing started before a client
        client_env = dict(env, P11_KIT_SERVER_ADDRESS=f"unix:path={path}")
        client_env.pop("GNUTLS_PIN", None)
        p11tool = require_tool("p11tool")
        listing = run([p11tool, "--provider", p11_client, "--list-tokens"], client_env)
        assert "Label: Jane Doe" in listing.stdout.decode(), (listing.stdout, log.read_text())
        material = demo("demo-ecc")
        for key, key_id in (("sig", "01"), ("dec", "02"), ("aut", "03")):
            der = run(
                [
                    p11tool, "--provider", p11_client, "--export", "--outder",
                    f"pkcs11:token=Jane%20Doe;id=%{key_id};type=cert",
                ],
                client_env,
            ).stdout  # fmt: skip
            assert der == material[key].cert_der, key
        text = log.read_text()
        assert f"serving on {path}" in text, text
        assert text.count("serving on") == 1, text  # one daemon served every client
    finally:
        if activator.poll() is None:
            os.killpg(activator.pid, signal.SIGTERM)
            try:
                activator.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(activator.pid, signal.SIGKILL)
                activator.wait()
    text = log.read_text()
    assert f"stopped serving on {path}" in text, text
    assert path.exists()  # the activator's socket, not ours to remove
