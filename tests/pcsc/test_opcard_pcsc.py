"""opcard's object layer through pcscd + vpcd + the emulated card: finding and opening cards
(by reader, by serial, the only one, several), a card restarted in the middle of a session, a
card that moves to the other reader, and the one-APDU signature path counted in the
emulator's own APDU log.

Fails (never skips) in CI when pcscd / vpcd / pyscard are missing (the ``emulator`` fixture).
Tests that need the readers to themselves skip outside CI when another process's card sits
in a reader (a shared development machine), and fail in CI.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from conftest import DEFAULT_PORT, in_ci, reader_for_port
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

import opcard
from apdu.openpgp.constants import KeySlot
from opcard.errors import NoCardError, SeveralCardsError

pytestmark = pytest.mark.pcsc

PW1 = "123456"
OTHER_PORT = DEFAULT_PORT + 1
INTERNAL_AUTHENTICATE = "88"


def commands(emu: Any) -> list[str]:
    """The command APDUs the emulator received, as upper-case hex."""
    return [e.text for e in emu.log_entries() if e.direction == ">"]


def ins_list(texts: list[str]) -> list[str]:
    return [t[2:4].upper() for t in texts]


def require_alone(*ours: Any) -> None:
    """Skip (outside CI) or fail (in CI) when a card we did not start is in a reader."""
    readers = {emu.reader for emu in ours}
    foreign = [c for c in opcard.list_cards() if c.reader not in readers]
    if foreign:
        what = f"another card is present: {', '.join(map(str, foreign))}"
        if in_ci():
            pytest.fail(what)
        pytest.skip(what)


def verify_p256(card: opcard.Card, signature: bytes, digest: bytes) -> None:
    public = card.public_key(KeySlot.AUT)
    assert public is not None
    key = public.to_cryptography()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    half = len(signature) // 2
    der = encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )
    from cryptography.hazmat.primitives import hashes

    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_open_card_by_reader_serial_and_alone(emulator: Any) -> None:
    emu = emulator(profile="extended", personalize="demo-ecc", serial=0x12345678)
    with opcard.open_card(reader=emu.reader) as card:
        assert card.serial == "12345678"
        assert card.channel.transport.name == emu.reader
        with card.session() as s:
            assert s.token_info().label == "Jane Doe"
            assert len(s.objects()) == 15
    found = [c for c in opcard.list_cards() if c.reader == emu.reader]
    assert [(c.serial, c.aid.version) for c in found] == [("12345678", (3, 4))]
    assert "12345678" in str(found[0]) and emu.reader in str(found[0])
    for serial in ("12345678", 0x12345678, "D276000124010304FF00123456780000"):
        with opcard.open_card(serial=serial) as card:
            assert card.channel.transport.name == emu.reader
    with pytest.raises(NoCardError, match="87654321"):
        opcard.open_card(serial="87654321")
    with pytest.raises(NoCardError, match="12345678"):
        opcard.open_card(reader=emu.reader, serial="00000001")
    with pytest.raises(ValueError):
        opcard.open_card(serial="not hex")
    require_alone(emu)
    with opcard.open_card() as card:
        assert card.serial == "12345678"
    emu.stop()
    with pytest.raises(NoCardError):
        opcard.open_card(reader=emu.reader)
    require_alone()
    with pytest.raises(NoCardError, match="no OpenPGP card"):
        opcard.open_card()


def test_two_cards_need_a_choice(emulator: Any) -> None:
    first = emulator(profile="extended", personalize="demo-ecc", serial=0x11111111)
    second = emulator(profile="short", personalize="demo-rsa", serial=0x22222222, port=OTHER_PORT)
    assert second.reader == reader_for_port(OTHER_PORT)
    require_alone(first, second)
    with pytest.raises(SeveralCardsError) as info:
        opcard.open_card()
    message = str(info.value)
    for emu, serial in ((first, "11111111"), (second, "22222222")):
        assert serial in message and emu.reader in message
    assert sorted(c.serial for c in info.value.cards) == ["11111111", "22222222"]  # type: ignore[attr-defined]
    assert "choose one by serial or reader" in message
    with opcard.open_card(serial="22222222") as card:
        assert card.channel.transport.name == second.reader
        assert not card.channel.framing.extended  # the short profile
    with opcard.open_card(reader=first.reader) as card:
        assert card.serial == "11111111"


def test_card_restarted_mid_session(emulator: Any) -> None:
    """The emulator restarts (pcscd sees the card removed and inserted): the session goes on,
    re-selecting and verifying again with the PIN it holds after the card's 6982."""
    emu = emulator(profile="extended", personalize="demo-ecc")
    with opcard.open_card(reader=emu.reader) as card, card.session() as s:
        s.login(PW1)
        signer = s.digest_signer("aut")
        digest = hashlib.sha256(b"before").digest()
        verify_p256(card, signer.sign_digest(digest, "sha256"), digest)
        emu.restart()
        before = len(commands(emu))
        digest = hashlib.sha256(b"after").digest()
        verify_p256(card, signer.sign_digest(digest, "sha256"), digest)
        after = ins_list(commands(emu)[before:])
        # SELECT, INTERNAL AUTHENTICATE (6982: the fresh card forgot PW1), GET DATA C4 (tries
        # as at the login), VERIFY, again
        assert after == ["A4", INTERNAL_AUTHENTICATE, "CA", "20", INTERNAL_AUTHENTICATE]
        before = len(commands(emu))
        signer.sign_digest(digest, "sha256")
        assert ins_list(commands(emu)[before:]) == [INTERNAL_AUTHENTICATE]


def test_card_moves_to_the_other_reader(emulator: Any) -> None:
    """A card opened by serial is the same token in another reader: the session follows it."""
    first = emulator(profile="extended", personalize="demo-ecc", serial=0x33333333)
    require_alone(first)
    card = opcard.open_card(serial="33333333")
    try:
        with card.session() as s:
            s.login(PW1)
            signer = s.digest_signer("aut")
            digest = hashlib.sha256(b"here").digest()
            verify_p256(card, signer.sign_digest(digest, "sha256"), digest)
            first.stop()
            moved = emulator(
                profile="extended", personalize="demo-ecc", serial=0x33333333, port=OTHER_PORT
            )
            verify_p256(card, signer.sign_digest(digest, "sha256"), digest)
            assert card.channel.transport.name == moved.reader
    finally:
        card.close()


@pytest.mark.parametrize("personalisation", ["demo-ecc", "demo-rsa"])
def test_fast_path_one_apdu_per_signature_through_pcscd(
    emulator: Any, personalisation: str
) -> None:
    emu = emulator(profile="extended", personalize=personalisation)
    with opcard.open_card(reader=emu.reader) as card, card.session() as s:
        s.login(PW1)
        signer = s.digest_signer("aut")
        before_card, before_us = len(commands(emu)), card.channel.apdu_count
        for i in range(50):
            signer.sign_digest(hashlib.sha256(i.to_bytes(2, "big")).digest(), "sha256")
        sent = commands(emu)[before_card:]
        assert card.channel.apdu_count - before_us == 50
        assert ins_list(sent) == [INTERNAL_AUTHENTICATE] * 50
