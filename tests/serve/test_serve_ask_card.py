"""``opcard serve`` with the spec 2 card families (issue #10): exactly one certificate, the AUT
one, and no command the card cannot know — over the real RPC socket, in process."""

from __future__ import annotations

import shutil

import pytest
from serve_support import PW1, RawClient, demo, private_dir

import opcard
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from fixtures.profiles import PROFILES, personalizations
from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import ObjectClass
from opcard.serve.server import Server
from opcard.serve.slots import Registry

INS_SELECT_DATA, INS_GET_NEXT_DATA = 0xA5, 0xCC


SPEC2 = sorted(n for n, p in PROFILES.items() if p.family and p.version < 0x0300)


@pytest.mark.parametrize("name", SPEC2)
def test_v2_card_serves_one_certificate(name: str) -> None:
    emu = OpenPGPCard(name)
    variant = personalizations(name)[0]
    personalize(emu, variant)
    emu.power_on()
    assert emu.profile.cert_slots == 1
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return emu.transmit(apdu)

    card = opcard.Card(LoopbackTransport(transmit, emu.atr, "Emulated reader 0"))
    directory = private_dir()
    registry = Registry()
    slot = registry.attach(card)
    slot.login_operator(PW1)
    server = Server(registry, directory / "pkcs11")
    server.start()
    try:
        with RawClient(server.path) as c:
            c.initialize()
            session = c.open(slot.slot_id)
            certificates = c.find(session, {A.CLASS: ObjectClass.CERTIFICATE})
            assert len(certificates) == 1
            attrs, rv = c.attributes(session, certificates[0], [(A.ID, 16), (A.VALUE, 4096)])
            assert rv == 0
            values = {kind: value for kind, _, value in attrs}
            assert values[A.ID] == b"\x03"
            assert values[A.VALUE] == demo(variant)["aut"].cert_der
            assert c.find(session, {A.CLASS: ObjectClass.CERTIFICATE, A.ID: b"\x01"}) == []
            assert len(c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY})) == 3
    finally:
        server.stop()
        registry.close()
        shutil.rmtree(directory, ignore_errors=True)
    ins = {apdu[1] for apdu in sent}
    assert INS_SELECT_DATA not in ins and INS_GET_NEXT_DATA not in ins
