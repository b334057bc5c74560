"""The session's login state (one LoginState), the one way of every private key operation
(Session.perform through the applet), keep_pin=False, and PIN flags that follow wrong PINs.

Counted APDU by APDU on the in-process emulated card."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from opcard_support import PW1, PW3, Rig, digest, verify_digest

from apdu.openpgp.applet import OpenPgpApplet
from opcard.errors import NotLoggedInError, WrongPinError
from opcard.pkcs11 import TokenFlag
from opcard.session import LoginState

VERIFY, PSO, INTERNAL_AUTHENTICATE, GET_DATA = 0x20, 0x2A, 0x88, 0xCA
WRONG = "654321"


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, raw.hex(), raw.hex().upper(), repr(raw)]


def test_login_state_is_one_object_and_shows_no_pin(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        state = s.login_state
        assert isinstance(state, LoginState)
        assert (state.user, state.signing, state.admin) == (False, False, False)
        s.login(PW1)
        s.login_admin(PW3)
        assert (state.user, state.signing, state.admin) == (True, False, True)
        s.digest_signer("sig")  # PW1 as 81, made when first needed
        assert (state.user, state.signing, state.admin) == (True, True, True)
        assert s.user_logged_in and s.so_logged_in
        shown = f"{state!r} {state} {s!r} {s}"
        assert "verified=user+signing+admin" in shown and "pins_kept=user+admin" in shown
        for secret in (PW1, PW3):
            for form in _forms(secret):
                assert form not in shown
        s.logout()
        assert (state.user, state.signing, state.admin) == (False, False, False)
        assert "pins_kept=none" in repr(state)


def test_a_refused_pin_is_forgotten_with_what_it_verified(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login(PW1)
        s.login_admin(PW3)
        with pytest.raises(WrongPinError):
            s.login(WRONG)
        state = s.login_state
        assert (state.user, state.signing, state.admin) == (False, False, True)
        assert "pins_kept=admin" in repr(state)


def test_keep_pin_false_keeps_nothing(rig: Callable[..., Rig], profile: str) -> None:
    """Without a kept PIN, PW1 81 is verified at login (no try used); a card that forgot the
    verification makes the session say "log in again" — no PIN is sent."""
    r = rig(profile, "demo-ecc")
    with r.card.session() as s:
        r.card.prepare_pin()  # the KDF-DO, read before the first PIN
        start = len(r.sent)
        s.login(PW1, keep_pin=False)
        assert r.ins_since(start) == [VERIFY, VERIFY]
        assert [c[3] for c in r.sent[start:]] == [0x82, 0x81]
        assert "pins_kept=none" in repr(s.login_state) and r.tries()[0] == 3
        for slot, op in (("sig", PSO), ("aut", INTERNAL_AUTHENTICATE)):
            d = digest("sha256", slot.encode())
            start = len(r.sent)
            verify_digest(r.demo[slot].public, s.sign_digest(slot, d, "sha256"), "sha256", d)
            assert r.ins_since(start) == [op]
        r.transport.reset()  # the card forgets every verification
        start = len(r.sent)
        with pytest.raises(NotLoggedInError):
            s.sign_digest("aut", digest("sha256", b"x"), "sha256")
        assert VERIFY not in r.ins_since(start)
        s.login(PW1, keep_pin=False)  # logging in again is the way back
        s.sign_digest("aut", digest("sha256", b"x"), "sha256")


def test_keep_pin_false_and_a_single_use_pw1(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc", pw1_single_use=True)
    with r.card.session() as s:
        s.login(PW1, keep_pin=False)
        signer = s.digest_signer("sig")
        signer.sign_digest(digest("sha256", b"1"), "sha256")
        with r.count() as n, pytest.raises(NotLoggedInError, match="log in again"):
            signer.sign_digest(digest("sha256", b"2"), "sha256")
        assert n[0] == 0


def test_token_flags_follow_wrong_pins_without_refresh(rig: Callable[..., Rig]) -> None:
    """A wrong PIN changes the tries left: token_info() reads C4 again (one GET DATA) instead
    of showing the flags of before; an accepted PIN after that resets them."""
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        assert not s.token_info().flags & TokenFlag.USER_PIN_FINAL_TRY
        for left in (2, 1):
            with pytest.raises(WrongPinError):
                s.login(WRONG)
            start = len(r.sent)
            flags = s.token_info().flags
            assert r.ins_since(start) == [GET_DATA] and r.sent[start][2:4] == b"\x00\xc4"
            assert bool(flags & TokenFlag.USER_PIN_FINAL_TRY) is (left == 1)
            assert r.card.pw_status().retries_pw1 == left  # type: ignore[union-attr]
        with r.count() as n:
            s.token_info()
        assert n[0] == 0  # read once per change
        s.login(PW1)
        assert not s.token_info().flags & TokenFlag.USER_PIN_FINAL_TRY
        assert r.card.pw_status().retries_pw1 == 3  # type: ignore[union-attr]
        with r.count() as n:
            s.login(PW1)
            s.token_info()
        assert n[0] == 1  # an accepted PIN with nothing refused before: the VERIFY only


def test_every_private_key_operation_goes_through_the_applet(
    rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session.sign / sign_digest / decrypt / derive, the DigestSigner and the cryptography
    keys all send their command through OpenPgpApplet.sign / internal_authenticate /
    decipher (one way to sign)."""
    calls: list[str] = []
    for name in ("sign", "internal_authenticate", "decipher"):
        original = getattr(OpenPgpApplet, name)

        def spy(
            self: OpenPgpApplet, data: bytes, _name: str = name, _f: object = original
        ) -> bytes:
            calls.append(_name)
            return _f(self, data)  # type: ignore[operator,no-any-return]

        monkeypatch.setattr(OpenPgpApplet, name, spy)
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login(PW1)
        d = digest("sha256", b"m")
        s.sign_digest("sig", d, "sha256")
        s.sign("aut", d)
        s.digest_signer("aut").sign_digest(d, "sha256")
        s.private_key("sig").to_cryptography().sign(b"m", ec.ECDSA(hashes.SHA256()))
        peer = ec.generate_private_key(ec.SECP256R1())
        point = peer.public_key().public_numbers()
        raw = b"\x04" + point.x.to_bytes(32, "big") + point.y.to_bytes(32, "big")
        s.derive("dec", raw)
    assert calls == ["sign", "internal_authenticate", "internal_authenticate", "sign", "decipher"]
    r = rig("extended", "demo-rsa")
    calls.clear()
    with r.card.session() as s:
        s.login(PW1)
        public = r.demo["dec"].public
        cryptogram = public.encrypt(b"secret", padding.PKCS1v15())  # type: ignore[union-attr]
        assert s.decrypt("dec", cryptogram) == b"secret"
    assert calls == ["decipher"]


def test_keep_pin_false_for_the_admin_pin(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        s.login_admin(PW3, keep_pin=False)
        assert s.so_logged_in and "pins_kept=none" in repr(s.login_state)
        s.set_data("url", b"https://example.org/key")
        assert r.emu.transmit(bytes.fromhex("0020FF83"))[-2:] == b"\x90\x00"  # dropped
        start = len(r.sent)
        with pytest.raises(NotLoggedInError):
            s.set_data("url", b"https://example.org/other")
        assert VERIFY not in r.ins_since(start) and r.tries()[2] == 3
        assert r.emu.state.url == b"https://example.org/key"


def test_token_flags_after_a_wrong_old_pin_in_change_pin(rig: Callable[..., Rig]) -> None:
    """A wrong old PIN in change_pin uses a try like a wrong VERIFY: the flags show it, and
    the right PIN afterwards clears them again — no refresh() needed."""
    r = rig("extended", "demo-ecc")
    with r.card.session() as s:
        for _ in range(2):
            with pytest.raises(WrongPinError):
                s.change_pin(WRONG, "314159")
        assert s.token_info().flags & TokenFlag.USER_PIN_FINAL_TRY
        s.login(PW1)
        assert not s.token_info().flags & TokenFlag.USER_PIN_FINAL_TRY
