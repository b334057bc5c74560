"""TERMINATE DF / ACTIVATE FILE, power and reset, state file persistence."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

from card_apdus import AID_PREFIX, PW1, PW3, Driver, apdu, fpr_list

from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize


def test_terminate_needs_pw3_or_both_blocked(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-rsa")
    assert d.send(0xE6, 0, 0).sw == 0x6982
    # PW1 blocked alone is not enough
    for _ in range(3):
        d.verify(0x82, b"000000")
    assert d.send(0xE6, 0, 0).sw == 0x6982
    for _ in range(3):
        d.verify(0x83, b"00000000")
    assert d.send(0xE6, 1, 0).sw == 0x6B00
    assert d.send(0xE6, 0, 0).sw == 0x9000


def test_factory_reset_gnupg_sequence(make: Callable[..., Driver], profile: str) -> None:
    """What gpg --card-edit factory-reset sends (g10/card-util.c)."""
    d = make(profile, "demo-ecc")
    d.card.state.pw1_single_use = not d.card.state.pw1_single_use
    assert d.select().sw == 0x9000
    for _ in range(4):
        d.raw(apdu(0x20, 0, 0x81, b"\x40" * 8))
    for _ in range(4):
        d.raw(apdu(0x20, 0, 0x83, b"\x40" * 8))
    assert d.raw(apdu(0xE6, 0, 0)).sw == 0x9000
    # terminated: SELECT answers 6285, other commands are refused, ATR shows LCS 03
    assert d.card.atr[-4] == 0x03
    assert d.raw(apdu(0xCA, 0, 0x6E, le=0)).sw == 0x6985
    assert d.raw(apdu(0xA4, 4, 0, AID_PREFIX)).sw == 0x6285
    assert d.raw(apdu(0x20, 0, 0x83, PW3)).sw == 0x6985
    # survives a power cycle
    d.card.power_off()
    d.card.power_on()
    assert d.raw(apdu(0xA4, 4, 0, AID_PREFIX)).sw == 0x6285
    assert d.raw(apdu(0x44, 0, 0)).sw == 0x9000
    assert d.card.atr[-4] == 0x05
    # factory state
    assert d.get(0x00C4).data == bytes(
        [0x00 if d.card.profile.pw1_single_use else 0x01, 0x7F, 0x7F, 0x7F, 3, 0, 3]
    )
    assert d.get(0x00C5).data == fpr_list(d, [], 20)
    assert d.get(0x00C1).data == bytes.fromhex("010800002000")
    assert d.get(0x00DE).data == bytes.fromhex("010002000300")
    assert d.get(0x005E).data == b""
    assert d.get(0x7F21).data == b""
    assert d.get(0x0093).data == bytes(3)
    assert d.get(0x5F52).data[-3] == 0x05
    assert d.verify(0x82, PW1).sw == 0x9000
    assert d.verify(0x83, PW3).sw == 0x9000
    assert d.send(0x47, 0x81, 0, b"\xb6\x00", le=0).sw == 0x6A88


def test_activate_on_operational_card_does_nothing(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-rsa")
    assert d.send(0x44, 0, 0).sw == 0x9000
    assert d.get(0x005E).data == b"jdoe"


def test_terminate_after_pw3(fresh: Driver) -> None:
    fresh.admin()
    assert fresh.send(0xE6, 0, 0).sw == 0x9000
    assert fresh.send(0x44, 0, 0).sw == 0x9000
    assert fresh.select().sw == 0x9000


def test_power_cycle_clears_volatile_state(make: Callable[..., Driver]) -> None:
    d = make("extended", "demo-rsa")
    d.user()
    d.admin()
    d.send(0xA5, 0x02, 0x04, bytes.fromhex("60045C027F21"))
    d.raw(apdu(0xCA, 0, 0xC4, le=1))  # pending GET RESPONSE data
    for action in (d.card.power_off, d.card.reset):
        action()
        d.card.power_on()
        assert d.raw(apdu(0xC0, 0, 0, le=6)).sw == 0x6985
        assert d.raw(apdu(0xCA, 0, 0x6E, le=0)).sw == 0x6D00  # not selected
        d.select()
        for ref in (0x81, 0x82, 0x83):
            assert d.verify(ref, b"").sw == 0x63C3
        assert d.get(0x7F21).data == d.card.state.certs[0]
        d.user()


def test_state_file_persistence(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "card.json"
    card = OpenPGPCard("short", state_file=path)
    assert card.is_fresh
    personalize(card, "demo-25519")
    assert path.exists()
    d = Driver(card)
    d.select()
    d.verify(0x81, PW1)
    sig = d.send(0x2A, 0x9E, 0x9A, b"persist", le=0).data
    assert d.verify(0x83, b"wrongwrong").sw == 0x63C2
    d.admin()
    d.put(0x005E, b"persisted login")
    d.send(0xA5, 0x01, 0x04, bytes.fromhex("60045C027F21"))
    d.put(0x7F21, b"dec cert")
    # no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert "313233343536" in doc["pw1"]  # the file holds the PIN (a test card), not the log

    card2 = OpenPGPCard("short", state_file=path)
    assert not card2.is_fresh
    d2 = Driver(card2)
    d2.select()
    assert d2.get(0x005E).data == b"persisted login"
    assert d2.get(0x0093).data == b"\x00\x00\x01"
    assert d2.get(0x00C4).data[6] == 3  # correct PW3 afterwards reset the counter
    assert (
        d2.get(0x00C5).data
        == card.state.fingerprints[0] + card.state.fingerprints[1] + card.state.fingerprints[2]
    )
    d2.send(0xA5, 0x01, 0x04, bytes.fromhex("60045C027F21"))
    assert d2.get(0x7F21).data == b"dec cert"
    d2.verify(0x81, PW1)
    assert d2.send(0x2A, 0x9E, 0x9A, b"persist", le=0).data == sig  # same Ed25519 key
    # a wrong PIN is persisted too
    d2.verify(0x82, b"000000")
    card3 = OpenPGPCard("short", state_file=path)
    d3 = Driver(card3)
    d3.select()
    assert d3.get(0x00C4).data[4] == 2


def test_state_file_keeps_generated_keys(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s" / "card.json"
    card = OpenPGPCard("extended", state_file=path)
    d = Driver(card)
    d.select()
    d.admin()
    d.put(0x00C2, bytes.fromhex("122B060104019755010501"))
    pub = d.send(0x47, 0x80, 0, b"\xb8\x00", le=0).data
    d2 = Driver(OpenPGPCard("extended", state_file=path))
    d2.select()
    assert d2.send(0x47, 0x81, 0, b"\xb8\x00", le=0).data == pub
    assert d2.get(0x00DE).data[3] == 0x01


def test_corrupt_state_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    import pytest

    path = tmp_path / "card.json"
    for content in ("not json", "{}", json.dumps({"version": 99})):
        path.write_text(content)
        with pytest.raises(ValueError, match="cannot load the card state"):
            OpenPGPCard("extended", state_file=path)
