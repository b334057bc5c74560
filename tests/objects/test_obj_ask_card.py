"""The driver asks the card (issue #10): algorithms on cards without FA, spec 2 cards with one
certificate, and features a card lacks — through the API, over the in-process emulator.

The cards are emulated cards with a profile derived from the generic one
(``tests.limited_card.limited``: the emulator's own Profile fields, as the card-family
profiles use them) that lacks one thing at a time: no FA, spec 2.1, no UIF/KDF/private
DOs/signature counter, a narrower set of accepted algorithm attributes. The family profiles
themselves are checked at the end. Bytes on the wire are checked where they matter: which
commands were sent, and which were not.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from opcard_support import PW1, PW3, Rig, demo, make_rig

import opcard
from apdu.openpgp.constants import Do, KeySlot, UifMode
from apdu.transport.loopback import LoopbackTransport
from fixtures.card_state import AUT, DEC, SIG
from fixtures.personalize import personalize
from fixtures.profiles import PROFILES
from opcard.card import CardFeatures
from opcard.errors import (
    AlgorithmRefusedError,
    NotLoggedInError,
    NotSupportedByCardError,
    UnsupportedKeyError,
)
from opcard.pkcs11 import Attribute, ObjectClass
from opcard.publickeys import parse_algorithm
from tests.limited_card import RSA_AND_P256, LimitedCard, attribute_writes, limited

P256_OID = bytes.fromhex("2A8648CE3D030107")
ED25519_OID = bytes.fromhex("2B06010401DA470F01")

GET_DATA_FA = bytes.fromhex("00CA00FA")
INS_SELECT_DATA, INS_GET_NEXT_DATA = 0xA5, 0xCC
INS_GENERATE, INS_PUT_DATA, INS_PUT_DATA_ODD, INS_VERIFY = 0x47, 0xDA, 0xDB, 0x20


def limited_rig(
    variant: str = "demo-rsa", *, base: str = "extended", counter: bool = True, **fields: Any
) -> Rig:
    emu = LimitedCard(limited(base, **fields), counter=counter)
    personalize(emu, variant)
    emu.power_on()
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return emu.transmit(apdu)

    transport = LoopbackTransport(transmit, emu.atr, on_power=emu.reset)
    return Rig(emu, transport, opcard.Card(transport), variant, "limited", sent)


def card_state(rig: Rig) -> tuple[Any, ...]:
    """What a user sees of the keys, read back through a fresh card session: C1-C3, the
    public keys (READ PUBLIC KEY), fingerprints and generation times."""
    card = rig.reopen()
    ard = card.application_data()
    return tuple(
        (
            bytes(ard.attributes(slot)),  # type: ignore[arg-type]
            bytes(card.applet.read_public_key(slot)),
            ard.fingerprint(slot),
            ard.generation_time(slot),
        )
        for slot in KeySlot
    )


def commands(rig: Rig, start: int = 0) -> list[bytes]:
    return rig.sent[start:]


# --- algorithm choice: a card without FA is asked -----------------------------------------------


def test_no_fa_token_info_says_the_card_does_not_say() -> None:
    r = limited_rig(algorithm_info=False, slot_algorithms=RSA_AND_P256)
    info = r.card.token_info()
    assert info.algorithms is None
    assert info.supports(KeySlot.AUT, parse_algorithm("ed25519")) is None
    assert r.card.features().algorithm_information is False
    # the FA card lists its algorithms
    full = make_rig("extended", "demo-rsa").card.token_info()
    assert full.algorithms is not None
    assert full.supports(KeySlot.AUT, parse_algorithm("nistp256")) is True
    assert full.supports(KeySlot.DEC, parse_algorithm("ed25519")) is False


def test_no_fa_generate_accepted_key_signs() -> None:
    r = limited_rig(algorithm_info=False, slot_algorithms=RSA_AND_P256)
    with r.card.session() as s:
        s.login_admin(PW3)
        public = s.generate_key(KeySlot.AUT, "nistp256", created=1_750_000_000)
        s.login(PW1)
        signature = s.sign_digest(KeySlot.AUT, bytes(32), "sha256")
    # the card was asked with GnuPG's form of the attributes: 13 ‖ OID, no import byte
    assert attribute_writes(r.sent) == [("aut", b"\x13" + P256_OID)]
    assert r.emu.state.attrs[AUT] == b"\x13" + P256_OID
    key = public.to_cryptography()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, bytes(32), ec.ECDSA(Prehashed(hashes.SHA256())))
    fresh = r.reopen()
    assert fresh.public_key(KeySlot.AUT).point == public.point  # type: ignore[union-attr]
    assert fresh.application_data().generation_time(KeySlot.AUT) == 1_750_000_000


@pytest.mark.parametrize("operation", ["generate", "import"])
def test_no_fa_refusal_is_the_cards_and_nothing_changes(operation: str) -> None:
    r = limited_rig(algorithm_info=False, slot_algorithms=RSA_AND_P256)
    before = card_state(r)
    tries = r.tries()
    with r.card.session() as s:
        s.login_admin(PW3)
        start = len(r.sent)
        with pytest.raises(AlgorithmRefusedError) as e:
            if operation == "generate":
                s.generate_key(KeySlot.AUT, "ed25519")
            else:
                s.import_key(KeySlot.AUT, ed25519.Ed25519PrivateKey.generate())
        after_refusal = commands(r, start)
    assert str(e.value) == (
        "the card refused ed25519 for the AUT slot (SW 6A80): it may not support this "
        "algorithm; nothing on the card was changed"
    )
    assert e.value.sw == 0x6A80
    assert isinstance(e.value, opcard.CardError)
    # the one write sent is the refused PUT DATA C3: no GENERATE, no key import, nothing else
    writes = [c for c in after_refusal if c[1] in (INS_PUT_DATA, INS_PUT_DATA_ODD, INS_GENERATE)]
    assert writes == [bytes.fromhex("00DA00C30A16") + ED25519_OID]
    assert card_state(r) == before
    assert r.tries() == tries


def test_no_fa_refusal_is_not_a_guess_on_a_spec_33_card() -> None:
    """Below 3.4 FA is never asked for; nistp256 goes to the card, which takes it."""
    r = limited_rig(version=0x0303, slot_algorithms=RSA_AND_P256)
    assert r.card.token_info().algorithms is None
    with r.card.session() as s:
        s.login_admin(PW3)
        s.generate_key(KeySlot.SIG, "nistp256")
    assert GET_DATA_FA not in [c[:4] for c in r.sent]
    assert r.emu.state.attrs[SIG] == b"\x13" + P256_OID


def test_no_fa_rsa_keeps_the_cards_17_bit_exponent_format() -> None:
    """A YubiKey-4-like card declares e as 17 bits and refuses 32: the new size is written in
    the card's own format (GnuPG's change_rsa_keyattr), and an imported key fits it."""

    r = limited_rig(algorithm_info=False, rsa_e_bits=17, rsa_e_bits_accepted=(17,))
    assert bytes(r.card.application_data().attributes_sig) == bytes.fromhex("010800001100")  # type: ignore[arg-type]
    private = rsa.generate_private_key(65537, 3072)
    digest = hashlib.sha256(b"e17").digest()
    with r.card.session() as s:
        s.login_admin(PW3)
        s.import_key(KeySlot.SIG, private, created=1_750_000_000)
        s.login(PW1)
        signature = s.sign_digest(KeySlot.SIG, digest, "sha256")
    assert attribute_writes(r.sent) == [("sig", bytes.fromhex("010C00001100"))]
    assert r.emu.state.attrs[SIG] == bytes.fromhex("010C00001100")
    private.public_key().verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def test_no_fa_card_that_cannot_change_algorithms_refuses_before_any_pin() -> None:
    r = limited_rig(algorithm_info=False, attributes_changeable=False)
    with r.card.session() as s:
        start = len(r.sent)
        with pytest.raises(NotSupportedByCardError) as e:
            s.generate_key(KeySlot.AUT, "nistp256")
        assert r.sent[start:] == []  # no PIN, no write: 6E was read already
    assert e.value.feature == "algorithm_attributes_changeable"
    assert "the AUT slot takes rsa2048, not nistp256" in str(e.value)
    with r.card.session() as s:  # the algorithm it holds: generated as usual
        s.login_admin(PW3)
        s.generate_key(KeySlot.AUT, "rsa2048")


def test_fa_card_refuses_an_unlisted_algorithm_before_any_pin(monkeypatch) -> None:
    from opcard.card import Card

    r = make_rig("extended", "demo-rsa")
    real = Card.listed_attributes
    monkeypatch.setattr(
        Card,
        "listed_attributes",
        lambda self, slot, alg: None if alg.name == "nistp384" else real(self, slot, alg),
    )
    with r.card.session() as s:
        start = len(r.sent)
        with pytest.raises(UnsupportedKeyError, match="does not support nistp384 in the SIG"):
            s.generate_key(KeySlot.SIG, "nistp384")
        assert INS_VERIFY not in r.ins_since(start)


def test_fa_card_gets_its_own_listed_attributes() -> None:
    r = make_rig("extended", "demo-rsa")
    listed = r.card.listed_attributes(KeySlot.DEC, parse_algorithm("cv25519"))
    assert listed is not None and bytes(listed)[0] == 0x12
    with r.card.session() as s:
        s.login_admin(PW3)
        s.generate_key(KeySlot.DEC, "cv25519")
    assert r.emu.state.attrs[DEC] == bytes(listed)


# --- spec 2 cards: one certificate, for AUT ----------------------------------------------------


def v2_rig(**fields: Any) -> Rig:
    return limited_rig("demo-rsa", version=0x0201, cert_slots=1, algorithm_info=False, **fields)


def test_v2_card_one_certificate_no_select_data() -> None:
    r = v2_rig()
    aut = demo("demo-rsa")["aut"].cert_der
    assert r.card.certificate_slots() == (KeySlot.AUT,)
    assert r.card.certificates() == {KeySlot.AUT: aut}
    assert r.card.certificate(KeySlot.AUT) == aut
    with pytest.raises(NotSupportedByCardError) as e:
        r.card.certificate(KeySlot.SIG)
    assert str(e.value) == (
        "this card (OpenPGP card 2.1) holds one certificate, for the AUT key; it has no "
        "certificate slot for SIG"
    )
    with r.card.session() as s:
        certs = list(s.find_objects(object_class=ObjectClass.CERTIFICATE))
        assert [(c[Attribute.ID], c[Attribute.VALUE]) for c in certs] == [(b"\x03", aut)]
        assert len(s.objects()) == 3 * 2 + 1 + 6  # keys, the certificate, data objects
        sig_key = s.get_key(KeySlot.SIG)
        assert sig_key.get(Attribute.SUBJECT) is None
        assert len(list(s.find_objects({Attribute.ID: b"\x01"}))) == 2  # private, public
        r.card.token_info()
        r.card.features()
    ins = {c[1] for c in r.sent}
    assert INS_SELECT_DATA not in ins and INS_GET_NEXT_DATA not in ins
    assert GET_DATA_FA not in [c[:4] for c in r.sent]


def test_v2_card_writes_only_the_aut_certificate() -> None:
    r = v2_rig()
    new = demo("demo-ecc")["aut"].cert_der
    with r.card.session() as s:
        for call in (
            lambda: s.store_certificate(KeySlot.SIG, new),
            lambda: s.delete_certificate(KeySlot.DEC),
        ):
            start = len(r.sent)
            with pytest.raises(NotSupportedByCardError, match="no certificate slot for"):
                call()
            assert r.sent[start:] == []  # refused before the PIN and before any command
        s.login_admin(PW3)
        s.store_certificate(KeySlot.AUT, new)
    assert r.emu.state.certs[0] == new
    assert r.reopen().certificate(KeySlot.AUT) == new
    ins = {c[1] for c in r.sent}
    assert INS_SELECT_DATA not in ins and INS_GET_NEXT_DATA not in ins


# --- features a card lacks ---------------------------------------------------------------------


def bare_rig() -> Rig:
    return limited_rig(
        version=0x0303,
        counter=False,
        uif=False,
        general_feature_do=None,
        kdf=False,
        private_dos=False,
        algorithm_info=False,
    )


def test_features_of_a_full_card() -> None:
    r = make_rig("extended", "demo-rsa")
    assert r.card.features() == CardFeatures(
        version=(3, 4),
        algorithm_information=True,
        algorithm_attributes_changeable=True,
        key_import=True,
        kdf=True,
        touch=(KeySlot.SIG, KeySlot.DEC, KeySlot.AUT),
        attestation=False,
        reset_code=True,
        private_dos=True,
        signature_counter=True,
        certificate_slots=(KeySlot.SIG, KeySlot.DEC, KeySlot.AUT),
    )
    assert r.card.features().missing == ("attestation",)


def test_status_reads_the_signature_counter_once() -> None:
    """features() then signature_counter(), as `opcard status` does: one GET DATA 7A; after a
    signature the counter is read again and has moved by one."""
    get_7a = bytes.fromhex("00CA007A")
    r = make_rig("extended", "demo-ecc")
    start = len(r.sent)
    assert r.card.features().signature_counter
    before = r.card.signature_counter()
    assert [c[:4] for c in r.sent[start:]].count(get_7a) == 1
    with r.card.session() as s:
        s.login(PW1)
        s.digest_signer("sig").sign_digest_der(hashlib.sha256(b"x").digest(), "sha256")
    start = len(r.sent)
    assert r.card.signature_counter() == (before or 0) + 1
    assert [c[:4] for c in r.sent[start:]].count(get_7a) == 1


def test_features_a_card_lacks() -> None:
    r = bare_rig()
    features = r.card.features()
    assert features.missing == (
        "algorithm_information",
        "kdf",
        "touch",
        "attestation",
        "private_dos",
        "signature_counter",
    )
    assert features.reset_code and features.key_import
    assert GET_DATA_FA not in [c[:4] for c in r.sent]  # 3.3: FA never asked for
    with r.card.session() as s:
        assert all(o[Attribute.LABEL] not in ("Private DO 1",) for o in s.objects())
    v1 = limited_rig(version=0x0101, reset_code=False, cert_slots=1, algorithm_info=False)
    assert not v1.card.supports("reset_code") and v1.card.certificate_slots() == ()


@pytest.mark.parametrize(
    ("call", "feature", "message"),
    [
        (lambda s: s.enable_kdf(), "kdf", "the PIN KDF (KDF-DO) is not supported by this card"),
        (lambda s: s.disable_kdf(), "kdf", "the PIN KDF (KDF-DO) is not supported by this card"),
        (
            lambda s: s.set_touch(KeySlot.AUT, UifMode.ENABLED),
            "touch",
            "touch (UIF) is not supported by this card for the AUT key",
        ),
        (
            lambda s: s.set_data(Do.PRIVATE_USE_1, b"x"),
            "private_dos",
            "private DO 1 is not supported by this card",
        ),
        (
            lambda s: s.set_data(Do.PRIVATE_USE_4, b"x"),
            "private_dos",
            "private DO 4 is not supported by this card",
        ),
    ],
)
def test_absent_feature_refused_before_any_pin(call, feature: str, message: str) -> None:
    r = bare_rig()
    with r.card.session() as s:
        start = len(r.sent)
        with pytest.raises(NotSupportedByCardError) as e:
            call(s)
        # no PIN, no write: at most the one read the answer needs (touch: 7F74, which this
        # card keeps neither in 6E nor anywhere: 6A88)
        assert [c[:4].hex().upper() for c in r.sent[start:]] == (
            ["00CA7F74"] if feature == "touch" else []
        )
    assert (e.value.feature, str(e.value)) == (feature, message)
    assert r.tries() == (3, 0, 3)


def test_reset_code_refused_on_a_card_without_one() -> None:
    r = limited_rig(version=0x0101, reset_code=False, cert_slots=1, algorithm_info=False)
    with r.card.session() as s:
        start = len(r.sent)
        with pytest.raises(NotSupportedByCardError, match="the reset code is not supported"):
            s.set_reset_code("12345678")
        with pytest.raises(NotSupportedByCardError, match="the reset code is not supported"):
            s.unblock_pin("654321", reset_code="12345678")
        assert r.sent[start:] == []


def test_present_features_still_work_after_the_checks() -> None:
    r = make_rig("extended", "demo-rsa")
    with r.card.session() as s:
        with pytest.raises(NotLoggedInError):  # the check passes; the PIN is what is missing
            s.set_touch(KeySlot.AUT, UifMode.ENABLED)
        s.login_admin(PW3)
        s.set_touch(KeySlot.AUT, UifMode.ENABLED)
        s.set_reset_code("87654321")
    assert r.emu.state.uif[AUT][0] == 0x01


def test_mechanisms_follow_the_current_keys_without_fa() -> None:
    """C_GetMechanismList lists what the current keys do; a card without FA does not change
    that (serve asks the keys, not the card's list)."""
    from opcard.serve.functions import Client

    lists = []
    for r in (limited_rig(algorithm_info=False), make_rig("extended", "demo-rsa")):
        with r.card.session() as s:
            lists.append(sorted(Client._mechanisms(None, s)))  # type: ignore[arg-type]
    assert lists[0] == lists[1] and lists[0]


# --- the card-family profiles (fixtures/profiles.py) ---------------------------------------------

FAMILIES = sorted(name for name, p in PROFILES.items() if p.family)


def family_rig(name: str) -> Rig:
    from fixtures.card import OpenPGPCard
    from fixtures.profiles import personalizations

    emu = OpenPGPCard(name)
    variant = personalizations(name)[0]
    personalize(emu, variant)
    emu.power_on()
    sent: list[bytes] = []

    def transmit(apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return emu.transmit(apdu)

    transport = LoopbackTransport(transmit, emu.atr, on_power=emu.reset)
    return Rig(emu, transport, opcard.Card(transport), variant, name, sent)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_features_match_the_profile(name: str) -> None:
    """What opcard reads from each family's answers agrees with what the profile models."""
    p = PROFILES[name]
    r = family_rig(name)
    f = r.card.features()
    assert f.version == (p.version >> 8, p.version & 0xFF)
    assert f.algorithm_information == (p.algorithm_info and p.version >= 0x0304)
    assert (r.card.token_info().algorithms is None) == (not f.algorithm_information)
    assert f.algorithm_attributes_changeable == p.attributes_changeable
    assert f.kdf == p.kdf
    assert bool(f.touch) == p.uif
    assert f.attestation == p.attestation
    assert f.reset_code == p.reset_code
    assert f.private_dos == p.private_dos
    assert len(f.certificate_slots) == p.cert_slots
    ins = {c[1] for c in r.sent}
    if p.cert_slots == 1:
        r.card.certificates()
        assert {c[1] for c in r.sent} & {INS_SELECT_DATA, INS_GET_NEXT_DATA} == set()
    if p.version < 0x0304:
        assert GET_DATA_FA not in [c[:4] for c in r.sent]
    assert ins  # the card was asked


def _algorithms_listed(name: str, slot: int) -> set[str]:
    from apdu.openpgp.objects import parse_algorithm_attributes
    from opcard.publickeys import algorithm_of

    out = set()
    for raw in PROFILES[name].algorithms(slot):
        algorithm = algorithm_of(parse_algorithm_attributes(raw))
        if algorithm is not None:
            out.add(algorithm.name)
    return out


CANDIDATES = ("nistp256", "ed25519", "secp256k1", "brainpoolP256r1", "nistp384", "rsa3072")


@pytest.mark.parametrize(
    "name",
    [n for n in FAMILIES if not PROFILES[n].algorithm_info and PROFILES[n].attributes_changeable],
)
def test_family_without_fa_is_asked(name: str) -> None:
    """On each family without FA: an algorithm the family takes is generated and signs; one it
    does not take is refused by the card itself (its status word), nothing changed."""
    p = PROFILES[name]
    r = family_rig(name)
    listed = _algorithms_listed(name, AUT)
    current = r.card.algorithm(KeySlot.AUT)
    assert current is not None
    accepted = next(a for a in CANDIDATES if a in listed and a != current.name)
    refused = next((a for a in CANDIDATES if a not in listed), None)
    with r.card.session() as s:
        s.login_admin(PW3)
        public = s.generate_key(KeySlot.AUT, accepted).to_cryptography()
        s.login(PW1)
        key = s.private_key(KeySlot.AUT).to_cryptography()
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(key.sign(b"family"), b"family")  # type: ignore[call-arg]
        elif isinstance(public, ec.EllipticCurvePublicKey):
            signature = key.sign(b"family", ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
            public.verify(signature, b"family", ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            signature = key.sign(b"family", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
            public.verify(signature, b"family", padding.PKCS1v15(), hashes.SHA256())
    if refused is None:
        return
    before = card_state(r)
    with r.card.session() as s:
        s.login_admin(PW3)
        with pytest.raises(AlgorithmRefusedError) as e:
            s.generate_key(KeySlot.AUT, refused)
    assert e.value.sw == p.unsupported_attributes_sw
    assert f"the card refused {refused} for the AUT slot (SW {e.value.sw:04X})" in str(e.value)
    assert card_state(r) == before


# --- factory reset: only where the card says it will terminate -----------------------------------


def test_factory_reset_refused_by_a_card_without_terminate_df() -> None:
    r = family_rig("gnuk12")  # no TERMINATE DF (6D00)
    before, tries = card_state(r), r.tries()
    with r.card.session() as s, pytest.raises(NotSupportedByCardError) as e:
        s.factory_reset()
    assert str(e.value) == (
        "a factory reset (TERMINATE DF) is not supported by this card; nothing on the card "
        "was changed"
    )
    assert (card_state(r), r.tries()) == (before, tries)


def test_factory_reset_of_a_card_that_terminates_only_after_pw3() -> None:
    r = family_rig("ledger")  # life cycle byte 7F; TERMINATE DF only after PW3
    before, tries = card_state(r), r.tries()
    with r.card.session() as s:
        with pytest.raises(NotLoggedInError, match="reset only after the admin PIN"):
            s.factory_reset()
        assert (card_state(r), r.tries()) == (before, tries)  # no PIN blocked
        s.login_admin(PW3)
        s.factory_reset()  # the PIN the session holds: VERIFY PW3, TERMINATE DF
    assert r.emu.state.keys == [None, None, None]
    assert r.tries() == (3, 0, 3)
    assert [c[1] for c in r.sent].count(INS_VERIFY) == 2  # the login and the reset's VERIFY


@pytest.mark.parametrize("name", ["yubikey-neo", "yubikey5"])
def test_factory_reset_without_the_admin_pin_blocks_where_the_card_allows(name: str) -> None:
    r = family_rig(name)  # NEO: 6985, both PINs blocked first; YubiKey 5: LCS 05
    with r.card.session() as s:
        s.factory_reset()
    assert r.emu.state.keys == [None, None, None]
    assert r.tries()[0] == r.tries()[2] == PROFILES[name].pin_retries


def test_key_import_refused_where_c0_says_no() -> None:
    r = limited_rig(ext_caps_flags=0x7D & ~0x20)  # C0 without "key import"
    assert not r.card.supports("key_import")
    with r.card.session() as s:
        start = len(r.sent)
        with pytest.raises(NotSupportedByCardError, match="key import is not supported"):
            s.import_key(KeySlot.AUT, ec.generate_private_key(ec.SECP256R1()))
        assert r.sent[start:] == []
