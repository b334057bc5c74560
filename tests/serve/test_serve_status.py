"""``opcard serve --status``: a daemon serving (in process, two emulated cards) is found and
its cards named (asked again, without an APDU); no socket, a stale socket and a socket that
does not speak the protocol each give exit 1 and say so."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from serve_support import Served, private_dir

from opcard.cli.app import cli


def status(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", "--status", "--socket", str(path)])
    return result.exit_code, result.output


def test_status_names_the_served_cards_without_an_apdu(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", "demo-ecc")
    status(s.path)  # the first C_GetTokenInfo reads what the daemon then keeps
    before = s.apdus()
    code, out = status(s.path)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"serving on {s.path}: 2 card(s)"
    assert lines[1] == f"P11_KIT_SERVER_ADDRESS={s.address}"
    assert sorted(lines[2:]) == [
        "  Jane Doe: card 10000001 (OpenPGP card 3.4, unmanaged S/N range), slot 0xff0010000001",
        "  Jane Doe: card 10000002 (OpenPGP card 3.4, unmanaged S/N range), slot 0xff0010000002",
    ]
    assert s.apdus() == before


def test_status_without_a_daemon(tmp_path: Path) -> None:
    code, out = status(tmp_path / "pkcs11")
    assert code == 1
    assert f"no daemon is serving on {tmp_path / 'pkcs11'} (no socket there)" in out
    assert "start one with 'opcard serve'" in out


def test_status_on_a_stale_socket_and_on_a_stranger() -> None:
    directory = private_dir()
    path = directory / "pkcs11"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the socket file stays, nobody listens
    code, out = status(path)
    assert code == 1 and f"no daemon is serving on {path} (Connection refused)" in out, out
    path.unlink()

    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stranger.bind(str(path))
    stranger.listen(1)

    def answer_nonsense() -> None:
        conn, _ = stranger.accept()
        with conn, contextlib.suppress(OSError):  # the client may hang up first
            conn.recv(1)
            conn.sendall(b"\x00")  # a version byte, then nonsense for C_Initialize
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.recv(4096)  # until the client gives up

    thread = threading.Thread(target=answer_nonsense, daemon=True)
    thread.start()
    try:
        code, out = status(path)
    finally:
        thread.join(5)
        stranger.close()
    assert code == 1, out
    assert "not p11-kit's RPC" in out, out
