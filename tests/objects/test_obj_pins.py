"""PINs, the C4 policy and the fast signature path, counted APDU by APDU.

- a wrong PIN raises opcard.WrongPinError with the tries left and uses exactly one try;
- a malformed PIN is refused before anything is sent;
- PINs never appear in a repr, an exception message or the traffic log;
- after login a signature costs one APDU (the fast path), two on the SIG key when C4 says PW1
  is valid for one signature (the session verifies again with the PIN it holds), and the
  session never sends a PIN again after a failed attempt;
- a card reset in the middle of a session: the session re-verifies after the 6982;
- change PIN, reset code, unblock, KDF.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from opcard_support import PW1, PW3, Rig, digest, verify_digest

import opcard
from apdu.log import TRAFFIC
from opcard import Mechanism
from opcard.errors import (
    NotLoggedInError,
    PinBlockedError,
    PinFormatError,
    WrongPinError,
)
from opcard.pkcs11 import ReturnValue, TokenFlag

# INS bytes
VERIFY, PSO, INTERNAL_AUTHENTICATE, SELECT = 0x20, 0x2A, 0x88, 0xA4
GET_DATA = 0xCA
READ_PUBLIC_KEY = 0x47

WRONG = "654321"
NEW_PIN = "314159"
RESET_CODE = "87654321"
NEW_ADMIN = "27182818"
SECRETS = (PW1, PW3, WRONG, NEW_PIN, RESET_CODE, NEW_ADMIN)


def signable_rig(rig: Callable[..., Rig], profile: str, variant: str) -> Rig:
    if variant == "demo-25519":
        pytest.skip("Ed25519 signs messages, not digests (no digest fast path)")
    return rig(profile, variant)


# --- login and wrong PINs ---------------------------------------------------------------------


def test_wrong_user_pin_burns_exactly_one_try(card_rig: Rig) -> None:
    with card_rig.card.session() as s:
        assert s.pin_status() == {"user": 3, "reset_code": 0, "admin": 3}
        start = len(card_rig.sent)
        with pytest.raises(WrongPinError) as info:
            s.login(WRONG)
        # the first PIN of the card session reads the KDF-DO, then one VERIFY, no retry
        assert card_rig.sent[start][:4] == bytes.fromhex("00CA00F9")
        assert card_rig.ins_since(start + 1) == [VERIFY]
        assert info.value.retries == 2
        assert isinstance(info.value, opcard.WrongPinError)
        assert info.value.return_value is ReturnValue.PIN_INCORRECT
        assert card_rig.tries()[0] == 2
        assert s.pin_status()["user"] == 2
        assert not s.user_logged_in
        with pytest.raises(NotLoggedInError):
            s.sign("aut", b"\x00" * 32)
        s.login(PW1)  # a right PIN resets the counter
        assert card_rig.tries()[0] == 3
        assert s.user_logged_in


def test_wrong_admin_pin_burns_exactly_one_try(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        assert r.card.kdf() is None  # GET DATA F9, once per card session
        start = len(r.sent)
        with pytest.raises(WrongPinError) as info:
            s.login_admin("87654321")
        assert r.ins_since(start) == [VERIFY]
        assert info.value.retries == 2
        assert r.tries() == (3, 0, 2)
        assert s.pin_status()["admin"] == 2
        assert not s.so_logged_in
        with pytest.raises(NotLoggedInError):
            s.set_data(0x5F50, b"https://example.org")
        assert r.emu.state.url == b"https://example.invalid/opcard-demo.asc"


def test_pin_blocked_and_token_flags(rig: Callable[..., Rig]) -> None:
    r = rig("short", "demo-ecc")
    with r.card.session() as s:
        assert not s.token_info().flags & TokenFlag.USER_PIN_FINAL_TRY
        r.card.prepare_pin()
        for left in (2, 1, 0):
            with pytest.raises(WrongPinError) as info:
                s.login(WRONG)
            assert info.value.retries == left
            flags = s.token_info().flags  # C4 read again after the refusal: no refresh()
            assert bool(flags & TokenFlag.USER_PIN_FINAL_TRY) is (left == 1)
            assert bool(flags & TokenFlag.USER_PIN_LOCKED) is (left == 0)
        assert info.value.return_value is ReturnValue.PIN_LOCKED
        start = len(r.sent)
        with pytest.raises(PinBlockedError, match="unblock"):
            s.login(PW1)  # right PIN, blocked counter
        assert r.ins_since(start) == [VERIFY]
        assert r.tries()[0] == 0


@pytest.mark.parametrize(
    ("pin", "admin"), [("12345", False), ("", False), ("1234567", True), ("x" * 128, False)]
)
def test_malformed_pin_refused_before_any_apdu(
    rig: Callable[..., Rig], pin: str, admin: bool
) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        before = r.apdus, r.tries()
        with pytest.raises(PinFormatError) as info:
            s.login_admin(pin) if admin else s.login(pin)
        assert isinstance(info.value, ValueError)
        assert (r.apdus, r.tries()) == before
        if pin:
            assert pin not in str(info.value)
        with pytest.raises(PinFormatError):
            s.change_pin(PW1, "123")
        with pytest.raises(PinFormatError):
            s.unblock_pin(NEW_PIN, reset_code="1234")
        assert (r.apdus, r.tries()) == before


# --- secrets stay secret ----------------------------------------------------------------------


def _secret_forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, raw.hex(), raw.hex().upper(), repr(raw)]


def test_pins_never_in_reprs_messages_or_traffic(
    rig: Callable[..., Rig], profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(profile, "demo-rsa")
    messages: list[str] = []
    with caplog.at_level(TRAFFIC, logger="apdu.traffic"):
        s = r.card.session()
        s.login(PW1)
        s.login_admin(PW3)
        messages.append(repr(s))
        messages.append(str(s))
        for attempt in (lambda: s.login(WRONG), lambda: s.login_admin("00000000")):
            with pytest.raises(WrongPinError) as info:
                attempt()
            messages += [str(info.value), repr(info.value), str(info.value.__cause__)]
        with pytest.raises(PinFormatError) as short:
            s.login("12345")
        messages.append(str(short.value))
        s.login(PW1)
        s.login_admin(PW3)
        s.sign("sig", b"x", Mechanism.SHA256_RSA_PKCS)
        s.set_reset_code(RESET_CODE)
        s.change_pin(PW1, NEW_PIN)
        s.unblock_pin(PW1, reset_code=RESET_CODE)
        s.login_admin(PW3)
        s.change_pin(PW3, NEW_ADMIN, admin=True)
        s.change_pin(NEW_ADMIN, PW3, admin=True)
        s.login_admin(PW3)
        imported = ec.generate_private_key(ec.SECP256R1())
        s.import_key("aut", imported)
        messages.append(repr(s))
        s.close()
    traffic = [rec.getMessage() for rec in caplog.records if rec.name == "apdu.traffic"]
    scalar = imported.private_numbers().private_value.to_bytes(32, "big").hex()
    assert any(line.startswith("> 00db3fff") or line.startswith("> 10db3fff") for line in traffic)
    assert all(scalar[:16] not in line.lower() for line in traffic)  # key import redacted
    assert r.emu.state.keys[2] is not None
    assert r.emu.state.keys[2].private.private_numbers().private_value == (  # type: ignore[union-attr]
        imported.private_numbers().private_value
    )
    assert any("redacted" in line for line in traffic)
    assert any(line.startswith("> 002a9e9a") for line in traffic)  # the log is not empty
    text = "\n".join(traffic + messages)
    for secret in SECRETS:
        for form in _secret_forms(secret):
            assert form not in text, f"{form!r} leaked"
    # the card really got them (the test can fail): PW1 ends as it began, the RC is set
    assert r.emu.state.pw1 == PW1.encode() and r.emu.state.rc == RESET_CODE.encode()


def test_exception_messages_hold_no_pin(rig: Callable[..., Rig]) -> None:
    r = rig("short", "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_reset_code(RESET_CODE)
        errors: list[BaseException] = []
        for call in (
            lambda: s.change_pin(WRONG, NEW_PIN),
            lambda: s.unblock_pin(NEW_PIN, reset_code="11111111"),
            lambda: s.change_pin("99999999", NEW_ADMIN, admin=True),
        ):
            with pytest.raises(WrongPinError) as info:
                call()
            errors.append(info.value)
        text = " ".join(f"{e} {e!r} {e.__cause__} {e.__cause__!r}" for e in errors)
        for secret in (WRONG, NEW_PIN, "11111111", "99999999", NEW_ADMIN):
            for form in _secret_forms(secret):
                assert form not in text
        assert r.tries() == (2, 2, 2)  # each burnt one try of its own PIN


# --- the fast path ----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_fast_path_one_apdu_per_signature(
    rig: Callable[..., Rig], profile: str, variant: str
) -> None:
    r = signable_rig(rig, profile, variant)
    public = r.demo["aut"].public
    with r.card.session() as s:
        s.login(PW1)
        signer = s.digest_signer("aut")
        start = len(r.sent)
        with r.count() as n:
            for i in range(25):
                d = digest("sha256", i.to_bytes(4, "big"))
                verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
        assert n[0] == 25
        assert r.ins_since(start) == [INTERNAL_AUTHENTICATE] * 25
        # the session's own sign path costs the same once the public key is known
        start = len(r.sent)
        s.sign_digest("aut", digest("sha384", b"x"), "sha384")
        assert r.ins_since(start) == [INTERNAL_AUTHENTICATE]


@pytest.mark.parametrize("variant", ["demo-rsa", "demo-ecc"])
def test_sig_key_follows_c4(rig: Callable[..., Rig], variant: str) -> None:
    """SIG key: one APDU per PSO:CDS when PW1 stays valid (C4 01); with the policy "PW1 valid
    for one signature" (C4 00) the session sends VERIFY before each PSO:CDS by itself."""
    for single_use in (False, True):
        r = rig("extended", variant, pw1_single_use=single_use)
        public = r.demo["sig"].public
        with r.card.session() as s:
            s.login(PW1)
            start = len(r.sent)
            signer = s.digest_signer("sig")
            assert r.ins_since(start) == [VERIFY]  # PW1 as 81, once; the key type comes from 6E
            start = len(r.sent)
            for i in range(10):
                d = digest("sha256", bytes([i]))
                verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
            expected = [PSO] + ([VERIFY, PSO] if single_use else [PSO]) * 9
            assert r.ins_since(start) == expected
            # the general path too
            start = len(r.sent)
            for i in range(3):
                s.sign_digest("sig", digest("sha256", bytes([i])), "sha256")
            assert r.ins_since(start) == ([VERIFY, PSO] if single_use else [PSO]) * 3
        assert r.emu.state.sig_counter == 13


def _change_pin_behind_the_back(r: Rig, new: bytes) -> None:
    """Another application changes PW1 (CHANGE REFERENCE DATA straight to the card)."""
    data = PW1.encode() + new
    answer = r.emu.transmit(bytes((0x00, 0x24, 0x00, 0x81, len(data))) + data)
    assert answer[-2:] == b"\x90\x00"


def test_single_use_never_reverifies_after_a_failure(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc", pw1_single_use=True)
    with r.card.session() as s:
        s.login(PW1)
        signer = s.digest_signer("sig")
        signer.sign_digest(digest("sha256", b"1"), "sha256")
        s.private_key("aut").attributes()  # its public key is read: no I/O left below
        _change_pin_behind_the_back(r, NEW_PIN.encode())
        start = len(r.sent)
        with pytest.raises(WrongPinError) as info:
            signer.sign_digest(digest("sha256", b"2"), "sha256")
        assert r.ins_since(start) == [VERIFY]  # the held PIN, once; no PSO:CDS
        assert info.value.retries == 2 and r.tries()[0] == 2
        assert not s.user_logged_in
        for attempt in (
            lambda: signer.sign_digest(digest("sha256", b"3"), "sha256"),
            lambda: s.sign_digest("sig", digest("sha256", b"3"), "sha256"),
            lambda: s.sign_digest("aut", digest("sha256", b"3"), "sha256"),
        ):
            with r.count() as n, pytest.raises(NotLoggedInError):
                attempt()
            assert n[0] == 0
        assert r.tries()[0] == 2  # never sent again


def test_reverify_after_6982_only_with_the_held_pin(rig: Callable[..., Rig]) -> None:
    """Another process drops PW1 (VERIFY FF): the session verifies again once and signs; when
    the PIN changed meanwhile, the one VERIFY fails and nothing is sent any more."""
    r = rig("extended", "demo-ecc")
    public = r.demo["aut"].public
    with r.card.session() as s:
        s.login(PW1)
        signer = s.digest_signer("aut")
        assert r.emu.transmit(bytes.fromhex("0020FF82"))[-2:] == b"\x90\x00"
        start = len(r.sent)
        d = digest("sha256", b"after reset")
        verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
        # C4 first: the retry counter is where it was at the login
        assert r.ins_since(start) == [
            INTERNAL_AUTHENTICATE,
            GET_DATA,
            VERIFY,
            INTERNAL_AUTHENTICATE,
        ]
        start = len(r.sent)
        signer.sign_digest(d, "sha256")
        assert r.ins_since(start) == [INTERNAL_AUTHENTICATE]
        # now the PIN changes and the verification is dropped
        _change_pin_behind_the_back(r, NEW_PIN.encode())
        assert r.emu.transmit(bytes.fromhex("0020FF82"))[-2:] == b"\x90\x00"
        start = len(r.sent)
        with pytest.raises(WrongPinError):
            signer.sign_digest(d, "sha256")
        assert r.ins_since(start) == [INTERNAL_AUTHENTICATE, GET_DATA, VERIFY]
        with r.count() as n, pytest.raises(NotLoggedInError):
            signer.sign_digest(d, "sha256")
        assert n[0] == 0
        assert r.tries()[0] == 2


def test_a_changed_pin_costs_one_try_not_one_per_session(rig: Callable[..., Rig]) -> None:
    """Several sessions (on-demand serve processes, each its own) keep the user PIN; it is
    changed elsewhere and the card forgets the verification: the first session's VERIFY with
    the old PIN is refused (one try), the others see the counter went down and send nothing."""
    r = rig("extended", "demo-ecc")
    sessions = [r.card.session() for _ in range(3)]
    signers = []
    for s in sessions:
        s.login(PW1)
        signers.append(s.digest_signer("aut"))
    _change_pin_behind_the_back(r, NEW_PIN.encode())
    assert r.emu.transmit(bytes.fromhex("0020FF82"))[-2:] == b"\x90\x00"
    d = digest("sha256", b"after the change")
    with pytest.raises(WrongPinError):
        signers[0].sign_digest(d, "sha256")
    for s, signer in zip(sessions[1:], signers[1:], strict=True):
        start = len(r.sent)
        with pytest.raises(NotLoggedInError, match="went down from 3 to 2") as info:
            signer.sign_digest(d, "sha256")
        assert r.ins_since(start) == [INTERNAL_AUTHENTICATE, GET_DATA]  # no VERIFY
        assert "no try used" in str(info.value) and PW1 not in str(info.value)
        assert not s.user_logged_in
    assert r.tries()[0] == 2
    # a new login with the new PIN works, and its baseline is the counter now
    sessions[1].login(NEW_PIN)
    public = r.demo["aut"].public
    verify_digest(public, sessions[1].sign_digest("aut", d, "sha256"), "sha256", d)
    for s in sessions:
        s.close()


def test_card_reset_mid_session(rig: Callable[..., Rig], profile: str) -> None:
    """The card is reset (another process, or removed and re-inserted): the next signature
    reconnects, re-selects, meets 6982 and verifies again with the held PIN."""
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        s.login(PW1)
        for slot in ("aut", "sig"):
            signer = s.digest_signer(slot)
            public = r.demo[slot].public
            d = digest("sha256", slot.encode())
            verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
            r.transport.reset()
            start = len(r.sent)
            verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
            op = INTERNAL_AUTHENTICATE if slot == "aut" else PSO
            single_use = slot == "sig" and r.emu.state.pw1_single_use
            if single_use:  # the session verifies before each PSO:CDS anyway
                assert r.ins_since(start) == [SELECT, VERIFY, op]
            else:  # C4 read before the held PIN goes again (its retry counter unchanged)
                assert r.ins_since(start) == [SELECT, op, GET_DATA, VERIFY, op]
            start = len(r.sent)
            verify_digest(public, signer.sign_digest(d, "sha256"), "sha256", d)
            assert r.ins_since(start) == ([VERIFY, op] if single_use else [op])
        # removed and re-inserted: the same
        r.transport.remove()
        r.transport.insert()
        d = digest("sha256", b"back")
        verify_digest(r.demo["aut"].public, s.sign_digest("aut", d, "sha256"), "sha256", d)


def test_logout_and_session_end(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    s = r.card.session()
    s.login(PW1)
    s.sign_digest("aut", digest("sha256", b"x"), "sha256")
    start = len(r.sent)
    s.logout()
    assert r.ins_since(start) == [VERIFY, VERIFY]  # VERIFY P1=FF for 81 and 82
    assert [c[2] for c in r.sent[start:]] == [0xFF, 0xFF]
    with r.count() as n, pytest.raises(NotLoggedInError):
        s.sign_digest("aut", digest("sha256", b"x"), "sha256")
    assert n[0] == 0
    # the card forgot too: a raw INTERNAL AUTHENTICATE is refused
    answer = r.emu.transmit(bytes((0, 0x88, 0, 0, 32)) + bytes(32) + b"\x00")
    assert answer[-2:] == b"\x69\x82"
    with r.card.session() as s2:
        s2.login(PW1)
    answer = r.emu.transmit(bytes((0, 0x88, 0, 0, 32)) + bytes(32) + b"\x00")
    assert answer[-2:] == b"\x69\x82"  # leaving the session logged out


# --- PIN management ---------------------------------------------------------------------------


def test_change_user_and_admin_pin(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        s.change_pin(PW1, NEW_PIN)
        assert r.emu.state.pw1 == NEW_PIN.encode()
        with pytest.raises(WrongPinError):
            s.login(PW1)
        s.login(NEW_PIN)
        assert r.tries()[0] == 3
        with pytest.raises(WrongPinError) as info:
            s.change_pin(WRONG, PW1)
        assert info.value.retries == 2
        s.change_pin(NEW_PIN, PW1)
        s.login(PW1)
        s.change_pin(PW3, NEW_ADMIN, admin=True)
        s.login_admin(NEW_ADMIN)
        s.change_pin(NEW_ADMIN, PW3, admin=True)
        s.login_admin(PW3)
        assert r.emu.state.pw3 == PW3.encode()


def test_reset_code_and_unblock(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3)
        s.set_reset_code(RESET_CODE)
        assert s.pin_status()["reset_code"] == 3
        for _ in range(3):
            with pytest.raises(WrongPinError):
                s.login(WRONG)
        with pytest.raises(PinBlockedError):
            s.login(PW1)
        # a wrong reset code burns one reset-code try
        with pytest.raises(WrongPinError) as info:
            s.unblock_pin(NEW_PIN, reset_code="11111111")
        assert info.value.retries == 2 and r.tries() == (0, 2, 3)
        s.unblock_pin(NEW_PIN, reset_code=RESET_CODE)
        assert r.tries()[0] == 3
        s.login(NEW_PIN)
        # unblock with the admin PIN (no reset code)
        for _ in range(3):
            with pytest.raises(WrongPinError):
                s.login(WRONG)
        s.login_admin(PW3)
        s.unblock_pin(PW1)
        s.login(PW1)
        s.set_reset_code(None)
        assert s.pin_status()["reset_code"] == 0
        # without the admin PIN and without a code: refused before sending
        s.logout()
        with r.count() as n, pytest.raises(NotLoggedInError):
            s.unblock_pin(PW1)
        assert n[0] == 0


def test_kdf(rig: Callable[..., Rig], profile: str) -> None:
    r = rig(profile, "demo-ecc")
    public = r.demo["aut"].public
    with r.card.session() as s:
        s.login_admin(PW3)
        s.enable_kdf()
        assert not s.so_logged_in and not s.user_logged_in
        assert r.emu.state.kdf[:3] == bytes.fromhex("810103")
        start = len(r.sent)
        s.login(PW1)
        verify = r.sent[start]
        assert verify[1] == VERIFY and verify[4] == 32  # SHA-256 of the salted PIN
        assert PW1.encode() not in verify
        d = digest("sha256", b"kdf")
        verify_digest(public, s.sign_digest("aut", d, "sha256"), "sha256", d)
        s.change_pin(PW1, NEW_PIN)
        with pytest.raises(WrongPinError) as info:
            s.login(WRONG)
        assert info.value.retries == 2
        s.login(NEW_PIN)
    # a new card session on the same card adopts the KDF-DO
    other = r.reopen()
    with other.session() as s2:
        s2.login(NEW_PIN)
        verify_digest(public, s2.sign_digest("aut", d, "sha256"), "sha256", d)
        s2.login_admin(PW3)
        s2.disable_kdf()
        s2.login(PW1)
        assert r.emu.state.pw1 == PW1.encode()
    other.close()
