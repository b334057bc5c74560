"""The applet's decisions against scripted cards: quirks, fallbacks, bounds, error context.

A scripted card answers from a table (APDU hex → response hex) and records what it got, so
each test states the exact APDU sequence the applet must send.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from openpgp_vectors import NEO_ARD, NITROKEY_PRO_ARD, YK543_ARD, YK543_KDF_SHA512

from apdu.channel import Channel, Framing
from apdu.errors import (
    CardStatusError,
    InsNotSupportedError,
    PinBlockedError,
    SecurityStatusNotSatisfiedError,
    WrongDataError,
    WrongPinError,
)
from apdu.openpgp import OpenPgpApplet, PinState
from apdu.openpgp.constants import KeySlot, Pw, Secret
from apdu.openpgp.kdf import derive_pin
from apdu.openpgp.objects import ApplicationRelatedData, HistoricalBytes, KdfDo
from apdu.transport.loopback import LoopbackTransport

Answer = str | Callable[[bytes], str]


class ScriptedCard:
    """Answers APDUs from ``script`` (hex → hex, or hex → list of hex answered in turn)."""

    def __init__(self, script: dict[str, str | list[str]]) -> None:
        self.script = {k.upper(): v for k, v in script.items()}
        self.seen: list[str] = []

    def __call__(self, apdu: bytes) -> bytes:
        key = apdu.hex().upper()
        self.seen.append(key)
        answer = self.script.get(key)
        if answer is None:
            return bytes.fromhex("6D00")
        if isinstance(answer, list):
            value = answer.pop(0) if len(answer) > 1 else answer[0]
        else:
            value = answer
        return bytes.fromhex(value)


def applet_for(
    script: dict[str, str | list[str]], **kwargs: object
) -> tuple[OpenPgpApplet, ScriptedCard]:
    card = ScriptedCard(script)
    channel = Channel(LoopbackTransport(card, bytes.fromhex("3B00")))
    return OpenPgpApplet(channel, **kwargs), card  # type: ignore[arg-type]


C4 = "00CA00C400"


# --- PIN status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sw", "state"),
    [
        ("9000", PinState(True, None)),
        ("63C2", PinState(False, 2)),
        ("63C0", PinState(False, 0)),
        ("6983", PinState(False, 0)),
    ],
)
def test_pin_status_from_empty_verify(sw: str, state: PinState) -> None:
    applet, card = applet_for({"00200081": sw})
    assert applet.pin_status(Pw.PW1) == state
    assert card.seen == ["00200081"]
    assert state.blocked is (state.retries == 0)


def test_pin_status_yubikey_6a80_falls_back_to_c4() -> None:
    applet, card = applet_for({"00200082": "6A80", C4: "017F7F7F0200039000"})
    assert applet.pin_status(Pw.PW1_OTHER) == PinState(None, 2)
    assert card.seen == ["00200082", C4]
    applet, card = applet_for({"00200083": "6A80", C4: "017F7F7F0200019000"})
    assert applet.pin_status(Pw.PW3) == PinState(None, 1)


def test_pin_status_other_errors_raise_with_context() -> None:
    applet, _ = applet_for({"00200081": "6F00"})
    with pytest.raises(CardStatusError, match=r"VERIFY PW1 \(status\)"):
        applet.pin_status(Pw.PW1)


# --- VERIFY ----------------------------------------------------------------------------------


def test_verify_wrong_pin_63cx() -> None:
    applet, card = applet_for({"0020008106363534333231": "63C1"})
    with pytest.raises(WrongPinError) as info:
        applet.verify(Pw.PW1, "654321")
    assert info.value.retries == 1 and info.value.sw == 0x63C1
    text = str(info.value) + repr(info.value) + repr(info.value.__cause__)
    assert "VERIFY PW1" in text
    for leak in ("654321", "363534333231"):
        assert leak not in text
    assert card.seen == ["0020008106363534333231"]  # one APDU, never retried


def test_verify_wrong_pin_yubikey_6982_reads_counter() -> None:
    applet, card = applet_for({"0020008306" + "31" * 6: "6982", C4: "017F7F7F0300029000"})
    with pytest.raises(WrongPinError) as info:
        applet.verify(Pw.PW3, "111111")
    assert info.value.retries == 2 and info.value.sw == 0x6982
    assert card.seen == ["0020008306313131313131", C4]


def test_verify_blocked() -> None:
    applet, _ = applet_for({"0020008106313233343536": "6983"})
    with pytest.raises(PinBlockedError, match="VERIFY PW1"):
        applet.verify(Pw.PW1, b"123456")


def test_verify_with_kdf_sends_the_derived_pin() -> None:
    kdf = KdfDo.parse(YK543_KDF_SHA512)
    derived = derive_pin(kdf, Secret.PW1, "123456")
    applet, card = applet_for({"0020008240" + derived.hex(): "9000"}, kdf=kdf)
    applet.verify(Pw.PW1_OTHER, "123456")
    assert card.seen == ["0020008240" + derived.hex().upper()]


def test_change_pin_and_reset_retry_counter_with_kdf() -> None:
    salts = "8101038201088304000004008408" + "01" * 8 + "8508" + "02" * 8
    salts += "8608" + "03" * 8
    kdf = KdfDo.parse(bytes.fromhex(salts))
    old = derive_pin(kdf, Secret.PW3, "12345678").hex().upper()
    new = derive_pin(kdf, Secret.PW3, "87654321").hex().upper()
    rc = derive_pin(kdf, Secret.RESET_CODE, "abcdefgh").hex().upper()
    pw1 = derive_pin(kdf, Secret.PW1, "123456").hex().upper()
    applet, card = applet_for(
        {
            "0024008340" + old + new: "9000",
            "002C008140" + rc + pw1: "9000",
            "002C028120" + pw1: "9000",
            "00DA00D320" + rc: "9000",
        },
        kdf=kdf,
    )
    applet.change_pin(Pw.PW3, "12345678", "87654321")
    applet.reset_retry_counter("123456", reset_code="abcdefgh")
    applet.reset_retry_counter("123456")
    applet.set_reset_code("abcdefgh")
    assert len(card.seen) == 4 and all(not s.startswith("6D") for s in card.seen)
    assert len({old, new, rc, pw1}) == 4  # three salts, four different values


def test_reset_retry_counter_without_pw3_is_not_a_wrong_pin() -> None:
    applet, card = applet_for({"002C028106363534333231": "6982"})
    with pytest.raises(SecurityStatusNotSatisfiedError, match="after PW3"):
        applet.reset_retry_counter("654321")
    assert card.seen == ["002C028106363534333231"]  # no C4 read: nothing was guessed


def test_wrong_reset_code_6982_reads_counter() -> None:
    applet, card = applet_for(
        {"002C00810E" + "31" * 8 + "363534333231": "6982", C4: "017F7F7F0301039000"}
    )
    with pytest.raises(WrongPinError) as info:
        applet.reset_retry_counter("654321", reset_code="11111111")
    assert info.value.retries == 1
    assert card.seen[-1] == C4


def test_change_pin_82_is_sent_as_81() -> None:
    applet, card = applet_for({"002400810C" + "313233343536" + "363534333231": "9000"})
    applet.change_pin(Pw.PW1_OTHER, "123456", "654321")
    assert card.seen == ["002400810C313233343536363534333231"]


# --- certificates and SELECT DATA ------------------------------------------------------------

STD_SELECT = {0: "00A500040660045C027F21", 1: "00A501040660045C027F21", 2: "00A502040660045C027F21"}
YK_SELECT = {k: v[:8] + "0706" + v[10:] for k, v in STD_SELECT.items()}
GET_CERT = "00CA7F2100"


def test_certificate_standard_card() -> None:
    applet, card = applet_for(
        {STD_SELECT[2]: "9000", GET_CERT: "30820102" + "9000", STD_SELECT[0]: "9000"}
    )
    assert applet.get_certificate(KeySlot.SIG) == bytes.fromhex("30820102")
    assert card.seen == [STD_SELECT[2], GET_CERT, STD_SELECT[0]]  # curDO reset to AUT
    assert applet.select_data_length_byte is False


def test_certificate_yubikey_learns_the_length_byte() -> None:
    script: dict[str, str | list[str]] = {k: "6A80" for k in STD_SELECT.values()}
    script.update({k: "9000" for k in YK_SELECT.values()})
    script[GET_CERT] = "30030201019000"
    applet, card = applet_for(script)
    assert applet.get_certificate(KeySlot.DEC) == bytes.fromhex("3003020101")
    assert card.seen == [STD_SELECT[1], YK_SELECT[1], GET_CERT, YK_SELECT[0]]
    assert applet.select_data_length_byte is True
    card.seen.clear()
    assert applet.get_certificate(KeySlot.AUT) == bytes.fromhex("3003020101")
    assert card.seen == [YK_SELECT[0], GET_CERT]  # known now, no reset needed for AUT


def test_certificate_select_refused_both_ways() -> None:
    applet, card = applet_for({STD_SELECT[2]: "6A80", YK_SELECT[2]: "6A80"})
    with pytest.raises(WrongDataError, match=r"SELECT DATA 7F21 \(SIG certificate\)"):
        applet.select_certificate(KeySlot.SIG)
    assert applet.select_data_length_byte is None
    assert card.seen == [STD_SELECT[2], YK_SELECT[2]]


@pytest.mark.parametrize("answer", ["9000", "6A88", "6A82"])
def test_empty_certificate(answer: str) -> None:
    applet, _ = applet_for({STD_SELECT[0]: "9000", GET_CERT: answer})
    assert applet.get_certificate(KeySlot.AUT) == b""


def test_certificate_read_error_has_context() -> None:
    applet, _ = applet_for({STD_SELECT[0]: "9000", GET_CERT: "6982"})
    with pytest.raises(SecurityStatusNotSatisfiedError, match=r"GET DATA 7F21 \(AUT"):
        applet.get_certificate(KeySlot.AUT)


def test_put_certificate_limit_checked_before_io() -> None:
    applet, card = applet_for({})
    with pytest.raises(ValueError, match="1216"):
        applet.put_certificate(KeySlot.SIG, bytes(1217), max_length=1216)
    assert card.seen == []


def test_put_certificate() -> None:
    applet, card = applet_for(
        {STD_SELECT[2]: "9000", "00DA7F2103010203": "9000", STD_SELECT[0]: "9000"}
    )
    applet.put_certificate(KeySlot.SIG, b"\x01\x02\x03", max_length=2048)
    assert card.seen == [STD_SELECT[2], "00DA7F2103010203", STD_SELECT[0]]


# --- factory reset ---------------------------------------------------------------------------


HIST_LCS_05 = "0031C573C00140059000"  # historical bytes, life cycle status 05 (operational)


def test_factory_reset_sequence() -> None:
    """No admin PIN: TERMINATE DF is tried as it is; the card wants PW3 (6982) and declares the
    spec's life cycle (LCS 05), so both PINs are blocked and TERMINATE DF sent again."""
    wrong81 = "0020008108" + "00" * 8
    wrong83 = "0020008308" + "00" * 8
    applet, card = applet_for(
        {
            "00E60000": ["6982", "9000"],
            "00CA5F5200": HIST_LCS_05 + "9000",
            "00CA00F900": "6A88",
            C4: "017F7F7F0300039000",
            wrong81: ["63C2", "63C1", "63C0"],
            wrong83: ["63C2", "63C1", "6983"],
            "00440000": "9000",
            "00A4040006D27600012401": "9000",
        },
        kdf=KdfDo.parse(YK543_KDF_SHA512),
    )
    applet.factory_reset()
    assert card.seen == [
        "00E60000",
        "00CA5F5200",
        "00CA00F900",
        C4,
        *[wrong81] * 3,
        *[wrong83] * 3,
        "00E60000",
        "00440000",
        "00A4040006D27600012401",
    ]
    assert applet.kdf is None


def test_factory_reset_with_kdf_uses_the_derived_length() -> None:
    wrong81 = "0020008140" + "00" * 64
    wrong83 = "0020008340" + "00" * 64
    applet, card = applet_for(
        {
            "00E60000": ["6982", "9000"],
            "00CA00F900": YK543_KDF_SHA512.hex() + "9000",
            C4: "017F7F7F0100019000",
            wrong81: "63C0",
            wrong83: "63C0",
            "00440000": "9000",
            "00A4040006D27600012401": "9000",
        }
    )
    applet.factory_reset(life_cycle=0x05)
    assert card.seen[3:5] == [wrong81, wrong83]


def test_factory_reset_with_the_admin_pin_blocks_nothing() -> None:
    verify83 = "0020008308" + b"12345678".hex().upper()
    applet, card = applet_for(
        {
            verify83: "9000",
            "00E60000": "9000",
            "00440000": "9000",
            "00A4040006D27600012401": "9000",
        }
    )
    applet.factory_reset(admin_pin="12345678")
    assert card.seen == [verify83, "00E60000", "00440000", "00A4040006D27600012401"]


def test_factory_reset_without_terminate_df_changes_nothing() -> None:
    """Gnuk: TERMINATE DF unknown (6D00): refused before any PIN is blocked."""
    applet, card = applet_for({"00E60000": "6D00"})
    with pytest.raises(InsNotSupportedError):
        applet.factory_reset(life_cycle=0x00)
    assert card.seen == ["00E60000"]


def test_factory_reset_needs_pw3_where_the_life_cycle_is_not_declared() -> None:
    """The Ledger app (LCS 7F) terminates only after PW3: no PIN is blocked without it."""
    applet, card = applet_for({"00E60000": "6982", "00CA5F5200": "0031C573C0018000007F9000"})
    with pytest.raises(SecurityStatusNotSatisfiedError):
        applet.factory_reset()
    assert card.seen == ["00E60000", "00CA5F5200"]


def test_factory_reset_blocks_where_the_card_wants_it() -> None:
    """YubiKey NEO: 6985 (both PINs must be blocked), whatever its life cycle byte says."""
    wrong81 = "0020008108" + "00" * 8
    wrong83 = "0020008308" + "00" * 8
    applet, card = applet_for(
        {
            "00E60000": ["6985", "9000"],
            "00CA00F900": "6A88",
            C4: "017F7F7F0100019000",
            wrong81: "6983",
            wrong83: "6983",
            "00440000": "9000",
            "00A4040006D27600012401": "9000",
        }
    )
    applet.factory_reset(life_cycle=0x00)
    assert card.seen.count("00E60000") == 2 and wrong83 in card.seen


def test_factory_reset_is_bounded() -> None:
    wrong = "0020008108" + "00" * 8
    applet, card = applet_for(
        {"00CA00F900": "6A88", C4: "017F7F7F0500059000", wrong: "63C5", "00E60000": "6985"}
    )
    with pytest.raises(CardStatusError):
        applet.factory_reset()
    assert card.seen.count(wrong) == 6  # retries + 1, then it moves on


# --- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ard", "framing"),
    [
        (YK543_ARD, Framing(extended=True, chaining=True, max_command=3070, max_response=3070)),
        (NEO_ARD, Framing(extended=False, chaining=True, max_command=255, max_response=256)),
        (
            NITROKEY_PRO_ARD,
            Framing(extended=True, chaining=False, max_command=2048, max_response=2048),
        ),
    ],
)
def test_configure_framing_from_real_cards(ard: bytes, framing: Framing) -> None:
    applet, _ = applet_for({})
    assert applet.configure(ApplicationRelatedData.parse(ard)) == framing
    assert applet.channel.framing == framing


def test_configure_framing_without_capabilities_keeps_framing() -> None:
    applet, _ = applet_for({})
    before = applet.channel.framing
    assert applet.configure_framing(None) == before
    assert applet.configure_framing(HistoricalBytes.parse(b"\x00\x05\x90\x00")) == before
    assert applet.configure_framing(HistoricalBytes.parse(b"\x00\x73\x00\x00\x40\x05\x90\x00"))
    assert applet.channel.framing == Framing(True, False, 65535, 65536)


def test_start_selects_reads_and_configures() -> None:
    applet, card = applet_for(
        {"00A4040006D27600012401": "9000", "00CA006E00": YK543_ARD.hex() + "9000"}
    )
    ard = applet.start()
    assert ard.aid.serial_hex == "23852774"
    assert card.seen == ["00A4040006D27600012401", "00CA006E00"]
    assert applet.channel.framing.extended


def test_errors_name_the_object() -> None:
    applet, _ = applet_for({"00CA010400": "6982"})
    with pytest.raises(SecurityStatusNotSatisfiedError, match="GET DATA 104"):
        applet.get_data(0x0104)


def test_reconnect_reselects() -> None:
    applet, _ = applet_for({})
    assert applet.channel.on_reconnect == applet.select
