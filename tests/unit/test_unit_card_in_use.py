"""CardInUseError (a card held exclusively by another program): its message, its place among
opcard's exceptions, the command line's exit code for it, and the serve registry's slot for a
held reader (in process: an emulated card over the loopback transport)."""

from __future__ import annotations

import pickle

import opcard
import opcard.errors
from apdu.errors import CardRemovedError, SharingViolationError
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from opcard.card import Card, CardScan, scdaemon_running
from opcard.errors import (
    CARD_IN_USE_REMEDY,
    CardError,
    CardInUseError,
    NoCardError,
    translate_error,
)
from opcard.exitcodes import ExitCode, classify
from opcard.pkcs11.rv import ReturnValue
from opcard.serve.slots import Registry, held_slot_id, slot_id_of

READER = "Virtual PCD 00 00"


def test_message_names_the_reader_and_what_to_do() -> None:
    e = CardInUseError([READER])
    assert str(e) == (
        "the card in 'Virtual PCD 00 00' is in exclusive use by another program (GnuPG's "
        "scdaemon holds cards this way): run 'gpgconf --kill scdaemon' (GnuPG lets go until it "
        "needs the card again), or put 'pcsc-shared' and 'disable-ccid' in "
        "~/.gnupg/scdaemon.conf so that GnuPG shares the card"
    )
    assert e.problem + ": " + e.remedy == str(e)
    assert e.remedy == CARD_IN_USE_REMEDY
    assert e.readers == [READER]
    running = CardInUseError([READER], scdaemon_running=True)
    assert "(GnuPG's scdaemon holds cards this way, and one is running for this user)" in str(
        running
    )
    two = CardInUseError(["A", "B"], scdaemon_running=False)
    assert two.problem == (
        "the cards in 'A' and 'B' are in exclusive use by other programs (GnuPG's scdaemon "
        "holds cards this way)"
    )
    wanted = CardInUseError([READER], wanted="the card with serial 0C0FFEE1")
    assert wanted.problem.startswith(
        "the card with serial 0C0FFEE1 is not among the cards opcard can use; the card in "
        "'Virtual PCD 00 00' is in exclusive use"
    )


def test_place_among_the_exceptions() -> None:
    e = CardInUseError([READER], scdaemon_running=True, wanted="x")
    assert isinstance(e, NoCardError) and isinstance(e, CardError)
    assert e.return_value is ReturnValue.TOKEN_NOT_PRESENT
    assert opcard.CardInUseError is CardInUseError
    assert "CardInUseError" in opcard.__all__ and "CardInUseError" in opcard.errors.__all__
    copy = pickle.loads(pickle.dumps(e))
    assert type(copy) is CardInUseError and str(copy) == str(e)
    assert (copy.readers, copy.scdaemon_running, copy.wanted) == ([READER], True, "x")


def test_the_command_line_exits_12() -> None:
    e = CardInUseError([READER])
    assert classify(e) == (ExitCode.CardInUse, e.problem, CARD_IN_USE_REMEDY)
    # a sharing violation during a command (the card opened, then taken), translated by opcard
    cause = SharingViolationError(f"another program holds the card in {READER!r} exclusively")
    wrapped = translate_error(cause, "reading the cardholder certificates")
    assert isinstance(wrapped, CardInUseError)
    code, message, hint = classify(wrapped)
    assert (code, message, hint) == (
        ExitCode.CardInUse,
        f"reading the cardholder certificates: {cause}",
        CARD_IN_USE_REMEDY,
    )
    assert pickle.loads(pickle.dumps(wrapped)).problem == message
    # other transport errors stay card errors
    other = translate_error(CardRemovedError("gone"), "x")
    assert isinstance(other, CardError) and not isinstance(other, NoCardError)
    assert classify(other)[0] is ExitCode.CardError
    assert classify(NoCardError("none"))[0] is ExitCode.NoCard


def test_scan_names_held_readers_for_the_error() -> None:
    scan = CardScan((), (READER,))
    error = scan.in_use_error()
    assert error.readers == [READER]
    assert error.scdaemon_running is scdaemon_running()
    assert scdaemon_running() in (True, False)  # /proc is there on Linux


def test_held_slot_ids_never_meet_card_slot_ids() -> None:
    largest_card_slot = (0xFFFF << 32) | 0xFFFFFFFF
    for reader in (READER, "Virtual PCD 00 01", "", "Yubico YubiKey OTP+FIDO+CCID 00 00"):
        assert held_slot_id(reader) > largest_card_slot
        assert held_slot_id(reader) < 1 << 64  # a CK_ULONG
    assert held_slot_id(READER) == held_slot_id(READER)
    assert held_slot_id(READER) != held_slot_id("Virtual PCD 00 01")


def _card(serial: int) -> Card:
    emu = OpenPGPCard("extended", serial=serial)
    personalize(emu, "demo-ecc")
    emu.power_on()
    return Card(LoopbackTransport(emu.transmit, emu.atr, READER, on_power=emu.reset))


def test_registry_keeps_the_held_readers_slot_for_the_card() -> None:
    registry = Registry()
    with registry.subscribe() as events:
        slot = registry.hold(READER)
        assert slot.slot_id == held_slot_id(READER)
        assert slot.held and not slot.present
        assert slot.description == f"{READER} (card in use by another program)"
        assert registry.hold(READER) is slot  # once
        assert events.pop() == slot.slot_id and events.pop() is None
        card = _card(0x0C0FFEE1)
        attached = registry.attach(card, READER, into=held_slot_id(READER))
        assert attached is slot and slot.present and not slot.held
        assert slot.description == READER
        assert events.pop() == slot.slot_id
        registry.release_hold(slot.slot_id)  # the card is in it: it stays
        assert registry.slots() == [slot]
        registry.detach(slot.slot_id)
        # held again, then free: the same card comes back into the same slot
        assert registry.hold(READER) is slot and slot.held
        again = registry.attach(_card(0x0C0FFEE1), READER, into=held_slot_id(READER))
        assert again is slot
        registry.detach(slot.slot_id)
        registry.release_hold(slot.slot_id)
        assert registry.slots() == [slot] and not slot.held
        # a card that has a slot of its own goes there; the held reader's slot goes away
        other = registry.hold("Virtual PCD 00 01")
        own = registry.attach(_card(0x0C0FFEE2), "Virtual PCD 00 01")
        registry.detach(own.slot_id)
        back = registry.attach(_card(0x0C0FFEE2), "Virtual PCD 00 01", into=other.slot_id)
        assert back is own and back.slot_id == slot_id_of(back.card)  # type: ignore[arg-type]
        registry.release_hold(other.slot_id)
        assert other not in registry.slots()
    registry.close()


def test_unused_held_slot_goes_when_the_card_goes() -> None:
    registry = Registry()
    slot = registry.hold(READER)
    registry.release_hold(slot.slot_id)
    assert registry.slots() == []
    assert registry.get(slot.slot_id) is None
