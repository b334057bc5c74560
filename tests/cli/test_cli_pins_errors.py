"""PIN handling (prompt, file, environment, --pin with a warning), the PIN commands, and every
error case with its exit code and message (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opcard.exitcodes import EXIT_CODE_DESCRIPTIONS, ExitCode

WARNING = (
    "opcard: warning: the user PIN on the command line is visible to other users and stays in the "
    "shell history; use --pin-file FILE or $OPCARD_PIN\n"
)


# --- where PINs come from --------------------------------------------------------------------


def test_pin_prompt_hides_the_pin(run, card) -> None:
    result = run("pin", "verify", input="123456\n")
    assert result.exit_code == 0
    assert result.stdout == "user PIN correct\n"
    assert result.stderr == "User PIN: \n"  # nothing echoed


def test_pin_from_file(run, card, tmp_path: Path) -> None:
    path = tmp_path / "pin"
    path.write_text("123456\n")
    result = run("pin", "verify", "--pin-file", str(path))
    assert result.exit_code == 0 and result.stderr == ""
    stdin = run("pin", "verify", "--pin-file", "-", input="123456\n")
    assert stdin.exit_code == 0 and stdin.stderr == ""


def test_pin_from_environment(run, card) -> None:
    assert run("pin", "verify", env={"OPCARD_PIN": "123456"}).stderr == ""
    admin = run("pin", "verify", "--admin", env={"OPCARD_ADMIN_PIN": "12345678"})
    assert admin.stdout == "admin PIN correct\n"


def test_pin_on_the_command_line_warns(run, card) -> None:
    result = run("pin", "verify", "--pin", "123456")
    assert result.exit_code == 0
    assert result.stderr == WARNING


def test_pin_and_pin_file_together_is_a_usage_error(run, card, tmp_path: Path) -> None:
    path = tmp_path / "pin"
    path.write_text("123456")
    result = run("pin", "verify", "--pin", "123456", "--pin-file", str(path))
    assert result.exit_code == ExitCode.Usage
    assert "give --pin or --pin-file, not both" in result.stderr


def test_missing_pin_file(run, card, tmp_path: Path) -> None:
    result = run("pin", "verify", "--pin-file", str(tmp_path / "nope"))
    assert result.exit_code == ExitCode.Usage
    assert "cannot read" in result.stderr


def test_apdu_log_redacts_pins(run, card) -> None:
    result = run("-v", "pin", "verify", env={"OPCARD_PIN": "123456"})
    assert result.exit_code == 0
    log = result.stderr
    assert "apdu.traffic: > 00a4040006 d27600012401" in log
    verify = [line for line in log.splitlines() if line.startswith("apdu.traffic: > 00200082")]
    assert verify == ["apdu.traffic: > 0020008206 <6 bytes redacted>"]
    assert "313233343536" not in log and "123456" not in log
    # the handler is removed afterwards: nothing is logged by the next command
    assert "apdu.traffic" not in run("pin", "status").stderr


# --- PIN commands ----------------------------------------------------------------------------


def test_pin_status(run, card) -> None:
    card.state.pw1_tries = 2
    result = run("pin", "status")
    assert result.stdout.splitlines() == [
        "user PIN ..: 2 tries left",
        "reset code : 0 tries left",
        "admin PIN .: 3 tries left",
        "signature PIN: valid for several signatures",
    ]
    doc = json.loads(run("pin", "status", "--json").stdout)
    assert doc["tries_left"] == {"user": 2, "reset_code": 0, "admin": 3}


def test_pin_change(run, card) -> None:
    result = run("pin", "change", input="123456\n654321\n654321\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "user PIN changed\n"
    assert card.state.pw1 == b"654321"
    assert "654321" not in result.stderr
    admin = run(
        "pin",
        "change",
        "--admin",
        env={"OPCARD_ADMIN_PIN": "12345678", "OPCARD_NEW_PIN": "87654321"},
    )
    assert admin.exit_code == 0 and card.state.pw3 == b"87654321"


def test_pin_change_confirmation_mismatch(run, card) -> None:
    result = run("pin", "change", input="123456\n654321\n111111\n654321\n654321\n")
    assert result.exit_code == 0
    assert "Error: The two entered values do not match." in result.stderr
    assert card.state.pw1 == b"654321"


def test_pin_change_too_short_is_refused_before_the_card(run, card) -> None:
    result = run("pin", "change", env={"OPCARD_PIN": "123456", "OPCARD_NEW_PIN": "123"})
    assert result.exit_code == ExitCode.BadInput == 11
    assert "at least 6 characters; nothing was sent to the card" in result.stderr
    assert card.state.pw1 == b"123456"


def test_pin_unblock_with_reset_code_and_with_admin_pin(run, card) -> None:
    result = run(
        "pin", "set-reset-code", env={"OPCARD_ADMIN_PIN": "12345678", "OPCARD_NEW_PIN": "resetcode"}
    )
    assert result.exit_code == 0 and result.stdout == "reset code set\n"
    assert card.state.rc == b"resetcode" and card.state.rc_tries == 3
    card.state.pw1_tries = 0  # blocked
    assert run("pin", "verify", env={"OPCARD_PIN": "123456"}).exit_code == ExitCode.PinBlocked
    unblock = run(
        "pin", "unblock", env={"OPCARD_RESET_CODE": "resetcode", "OPCARD_NEW_PIN": "111111"}
    )
    assert unblock.exit_code == 0, unblock.stderr
    assert card.state.pw1 == b"111111" and card.state.pw1_tries == 3
    card.state.pw1_tries = 0
    by_admin = run(
        "pin",
        "unblock",
        "--admin",
        env={"OPCARD_ADMIN_PIN": "12345678", "OPCARD_NEW_PIN": "222222"},
    )
    assert by_admin.exit_code == 0 and card.state.pw1 == b"222222"
    cleared = run("pin", "set-reset-code", "--clear", env={"OPCARD_ADMIN_PIN": "12345678"})
    assert cleared.stdout == "reset code removed\n" and card.state.rc_tries == 0


# --- error cases -----------------------------------------------------------------------------


def test_exit_codes_are_distinct_and_described() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert set(EXIT_CODE_DESCRIPTIONS) == set(ExitCode)


def test_no_card(run, backend) -> None:
    result = run("status")
    assert result.exit_code == ExitCode.NoCard == 3
    assert result.stderr.splitlines() == [
        "opcard: error: no OpenPGP card is present (is the card inserted and pcscd running?)",
        "opcard: insert the card, check 'opcard list', or choose another with --serial / --reader",
    ]
    assert "Traceback" not in result.stderr


def test_no_card_with_that_serial_or_reader(run, card) -> None:
    result = run("--serial", "DEADBEEF", "status")
    assert result.exit_code == ExitCode.NoCard
    assert "no OpenPGP card with serial DEADBEEF is present" in result.stderr
    assert run("--reader", "Nowhere", "status").exit_code == ExitCode.NoCard


def test_several_cards(run, cli_cards) -> None:
    cli_cards("demo", reader="Reader A", serial=0x0000000A)
    cli_cards("demo-ecc", reader="Reader B", serial=0x0000000B)
    result = run("cert", "export")
    assert result.exit_code == ExitCode.SeveralCards == 4
    assert result.stderr.splitlines() == [
        "opcard: error: 2 OpenPGP cards are present:",
        "  Reader A: OpenPGP card 3.4 by unmanaged S/N range, serial 0000000A",
        "  Reader B: OpenPGP card 3.4 by unmanaged S/N range, serial 0000000B",
        "opcard: choose one with --serial SERIAL or --reader NAME",
    ]
    chosen = run("--serial", "0000000b", "status", "--json")
    assert json.loads(chosen.stdout)["serial"] == "0000000B"
    by_reader = run("--reader", "Reader A", "status", "--json")
    assert json.loads(by_reader.stdout)["serial"] == "0000000A"
    from_env = run("status", "--json", env={"OPCARD_SERIAL": "0000000A"})
    assert json.loads(from_env.stdout)["serial"] == "0000000A"


def test_wrong_pin_then_blocked(run, card) -> None:
    first = run("sign", "-", input=b"data", env={"OPCARD_PIN": "000000"})
    assert first.exit_code == ExitCode.WrongPin == 5
    assert first.stdout == ""
    assert first.stderr.splitlines() == [
        "opcard: error: wrong user PIN: 2 tries left",
        "opcard: check the user PIN; when no tries are left it is blocked",
    ]
    second = run("pin", "verify", env={"OPCARD_PIN": "000000"})
    assert second.stderr.splitlines()[0] == "opcard: error: wrong user PIN: 1 try left"
    third = run("pin", "verify", env={"OPCARD_PIN": "000000"})
    assert third.exit_code == ExitCode.WrongPin
    assert third.stderr.splitlines() == [
        "opcard: error: wrong user PIN: no tries left, the user PIN is now blocked",
        "opcard: unblock it with 'opcard pin unblock' (reset code or admin PIN)",
    ]
    blocked = run("sign", "-", input=b"data", env={"OPCARD_PIN": "123456"})
    assert blocked.exit_code == ExitCode.PinBlocked == 6
    assert blocked.stderr.splitlines() == [
        "opcard: error: the user PIN is blocked",
        "opcard: unblock it with 'opcard pin unblock' (reset code or admin PIN)",
    ]


def test_wrong_and_blocked_admin_pin(run, card) -> None:
    for left in (2, 1):
        result = run("cert", "delete", "--slot", "sig", env={"OPCARD_ADMIN_PIN": "00000000"})
        assert result.exit_code == ExitCode.WrongPin
        assert result.stderr.startswith(f"opcard: error: wrong admin PIN: {left} tr")
    last = run("cert", "delete", "--slot", "sig", env={"OPCARD_ADMIN_PIN": "00000000"})
    assert last.stderr.splitlines()[1] == (
        "opcard: only a factory reset ('opcard reset') makes the card usable again"
    )
    blocked = run("cert", "delete", "--slot", "sig", env={"OPCARD_ADMIN_PIN": "12345678"})
    assert blocked.exit_code == ExitCode.PinBlocked
    assert blocked.stderr.splitlines() == [
        "opcard: error: the admin PIN is blocked",
        "opcard: the admin PIN cannot be unblocked: 'opcard reset' erases the card",
    ]
    assert card.state.certs[2] != b""


def test_wrong_reset_code(run, card) -> None:
    card.state.rc, card.state.rc_tries = b"resetcode", 3
    result = run(
        "pin", "unblock", env={"OPCARD_RESET_CODE": "wrongcode", "OPCARD_NEW_PIN": "111111"}
    )
    assert result.exit_code == ExitCode.WrongPin
    assert result.stderr.startswith("opcard: error: wrong reset code: 2 tries left")


def test_card_error(run, card) -> None:
    card.state.terminated = True  # the application answers 6285 to SELECT
    result = run("status")
    assert result.exit_code == ExitCode.CardError == 9
    assert result.stderr == (
        "opcard: error: opening the OpenPGP application on 'Loopback 00': SELECT OpenPGP "
        "application: selected file in termination state (SW=6285)\n"
    )


def test_debug_shows_the_traceback(run, backend) -> None:
    quiet = run("status")
    loud = run("--debug", "status")
    assert quiet.exit_code == loud.exit_code == ExitCode.NoCard
    assert "Traceback" not in quiet.stderr
    assert loud.stderr.startswith("Traceback (most recent call last):")
    assert "opcard.errors.NoCardError: no OpenPGP card is present" in loud.stderr
    assert loud.stderr.endswith(quiet.stderr)


def test_internal_errors_are_one_line_without_debug(run, card, monkeypatch) -> None:
    from opcard.cli.run import status

    def broken(_card: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(status, "card_status", broken)
    result = run("status")
    assert result.exit_code == ExitCode.Error
    assert result.stderr.splitlines() == [
        "opcard: error: internal error: ZeroDivisionError: boom",
        "opcard: run again with --debug for the traceback, and report it",
    ]


def test_usage_errors(run, card) -> None:
    assert run("cert", "export", "--slot", "xyz").exit_code == ExitCode.Usage
    assert run("nonsense").exit_code == ExitCode.Usage
    assert run("key", "generate", "--slot", "sig").exit_code == ExitCode.Usage  # no --algo
    # --slot is required where it has no default (click 8.5 took default=None for a value)
    for command in (("cert", "delete"), ("key", "generate", "--algo", "rsa2048")):
        result = run(*command)
        assert result.exit_code == ExitCode.Usage, result.output
        assert "Missing option '--slot'" in result.stderr


@pytest.mark.parametrize("command", [("status",), ("cert", "export"), ("pin", "status")])
def test_help_needs_no_card(run, backend, command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.stdout


def test_interrupt(run, card, monkeypatch) -> None:
    from opcard.cli.run import status

    def interrupted(_card: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(status, "card_status", interrupted)
    result = run("status")
    assert result.exit_code == ExitCode.Interrupted == 130
    assert result.stderr == "opcard: error: interrupted\n"


def test_admin_pin_on_the_command_line_warns(run, card) -> None:
    result = run("cert", "delete", "--slot", "dec", "--admin-pin", "12345678")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        "opcard: warning: the admin PIN on the command line is visible to other users and stays "
        "in the shell history; use --admin-pin-file FILE or $OPCARD_ADMIN_PIN"
    )
    assert card.state.certs[1] == b""
