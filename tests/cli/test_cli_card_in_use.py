"""The command line when another program holds the card, in process (no pcscd): a backend that
reports a held reader, and a card whose transport answers with a PC/SC sharing violation in
the middle of a command. Both end with exit code 12 and the two lines that say what to do.
(tests/pcsc/test_card_in_use.py and tests/thirdparty/test_beside_gnupg.py do it for real.)
"""

from __future__ import annotations

import json
from typing import Any

from apdu.errors import SharingViolationError
from apdu.transport.loopback import LoopbackTransport
from opcard.card import Card
from opcard.cli.backend import ReaderEntry
from opcard.errors import CARD_IN_USE_REMEDY, CardInUseError
from opcard.exitcodes import EXIT_CODE_DESCRIPTIONS, ExitCode

HELD = "Loopback 01"
ATR = bytes.fromhex("3BDA18FF81B1FE751F030031F573C78A40009000B0")
GET_DATA_CERT = bytes.fromhex("00CA7F21")


class HeldBackend:
    """One reader whose card another program holds exclusively (as PcscBackend reports it)."""

    def open_card(self, *, serial: str | None, reader: str | None) -> Card:
        raise CardInUseError([HELD], scdaemon_running=False)

    def readers(self) -> list[ReaderEntry]:
        return [ReaderEntry("Loopback 00", None), ReaderEntry(HELD, ATR, None, exclusive=True)]


def test_exit_code_12_is_documented_in_the_table() -> None:
    assert ExitCode.CardInUse == 12
    assert "scdaemon" in EXIT_CODE_DESCRIPTIONS[ExitCode.CardInUse]


def test_commands_say_the_card_is_held_and_exit_12(run: Any) -> None:
    from opcard.cli.backend import use_backend

    with use_backend(HeldBackend()):
        for argv in (("status",), ("cert", "export"), ("--serial", "0C0FFEE1", "status")):
            result = run(*argv)
            assert result.exit_code == 12, (argv, result.output)
            assert result.stdout == ""
            assert result.stderr.splitlines() == [
                f"opcard: error: the card in '{HELD}' is in exclusive use by another program "
                "(GnuPG's scdaemon holds cards this way)",
                f"opcard: {CARD_IN_USE_REMEDY}",
            ], argv
        listing = run("list")
        assert listing.exit_code == 0
        assert listing.stdout.splitlines() == [
            "Loopback 00: empty",
            f"{HELD}: card in exclusive use by another program (e.g. GnuPG's scdaemon)",
        ]
        assert listing.stderr == f"opcard: to use a card in exclusive use: {CARD_IN_USE_REMEDY}\n"
        doc = json.loads(run("list", "--json").stdout)
        assert [r["in_use_by_another_program"] for r in doc["readers"]] == [False, True]
        assert doc["readers"][1]["atr"] == ATR.hex().upper()


def test_a_sharing_violation_during_a_command_exits_12(
    run: Any, cli_cards: Any, backend: Any
) -> None:
    """The card was opened, then another program took it (the connection reports
    SCARD_E_SHARING_VIOLATION): the command's error names it and says what to do."""
    cli_cards()
    opened = backend._open

    def open_then_taken(reader: str, card: Any) -> Card:
        result: Card = opened(reader, card)
        transport = result.channel.transport
        assert isinstance(transport, LoopbackTransport)
        inner = transport.transmit

        def transmit(apdu: bytes) -> bytes:
            if apdu[:4] == GET_DATA_CERT:
                raise SharingViolationError(
                    f"another program holds the card in {reader!r} exclusively "
                    "(SCardTransmit: SCARD_E_SHARING_VIOLATION)"
                )
            return inner(apdu)

        transport.transmit = transmit  # type: ignore[method-assign]
        return result

    backend._open = open_then_taken
    result = run("cert", "export", "--slot", "aut")
    assert result.exit_code == ExitCode.CardInUse, result.output
    first, second = result.stderr.splitlines()
    assert "another program holds the card in 'Loopback 00' exclusively" in first
    assert second == f"opcard: {CARD_IN_USE_REMEDY}"
