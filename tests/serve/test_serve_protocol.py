"""The p11-kit RPC protocol as ``opcard serve`` speaks it, checked byte by byte with a raw
client of our own (serve_support.RawClient): versions, frames, the PKCS#11 semantics of each
call, logins, card removal, several cards, and the robustness of the daemon."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from serve_support import (
    PW1,
    RawClient,
    RpcError,
    Served,
    ay,
    byte_array,
    captured_log,
    template,
    u32,
    u64,
)

from opcard.pkcs11 import Attribute as A
from opcard.pkcs11 import Mechanism as M
from opcard.pkcs11 import ObjectClass, ReturnValue, SessionState, SlotFlag
from opcard.serve.errors import SocketError
from opcard.serve.server import Server, prepare_directory

SIG_INPUT = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(b"m").digest()


def connect(s: Served, version: int = 0) -> RawClient:
    c = RawClient(s.path, version)
    c.initialize()
    return c


def rv_of(f: Callable[[], object]) -> int:
    with pytest.raises(RpcError) as e:
        f()
    return e.value.rv


def closed(c: RawClient) -> bool:
    """The server closed the connection (EOF, or a reset when it left our bytes unread)."""
    try:
        return c.sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


PROTECTED_AUTHENTICATION_PATH = 0x100


def token_flags(c: RawClient, slot: int) -> int:
    r = c.call(6, u64(slot))
    for _ in range(4):
        r.string()
    return r.ulong()


def key_handle(c: RawClient, session: int, cls: ObjectClass, slot_id: int) -> int:
    found = c.find(session, {A.CLASS: cls, A.ID: bytes((slot_id,))})
    assert len(found) == 1, found
    return found[0]


# --- versions and frames ------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "answered"), [(0, 0), (1, 1), (2, 2), (3, 2), (255, 2)])
def test_version_negotiation(served: Callable[..., Served], offered: int, answered: int) -> None:
    s = served()
    with RawClient(s.path, offered) as c:
        assert c.version == answered
        c.initialize()
        r = c.call(3)
        assert r.version() == (2, 40)
        assert r.string().rstrip() == b"opcard"


def test_replies_echo_the_message_code_and_pipelined_calls(served: Callable[..., Served]) -> None:
    s = served()
    with connect(s) as c:
        body = u32(4) + byte_array(b"yfu") + b"\x01" + u32(8)  # C_GetSlotList
        c.send_frame(body, code=0x7777)
        c.send_frame(body, code=0x1234)  # before reading the first reply
        assert c.read_frame()[0] == 0x7777
        assert c.read_frame()[0] == 0x1234


def test_unknown_and_unsupported_calls_answer_function_not_supported(
    served: Callable[..., Served],
) -> None:
    s = served()
    with connect(s) as c:
        for call, sig, args in [
            (200, "u", u64(1)),  # no such call
            (0x7FFFFFFF, "", b""),
            (29, "uMu", u64(1) + u32(1) + byte_array(None) + u64(1)),  # C_EncryptInit
            (66, "uuayay", u64(1) + u64(1) + ay(b"") + ay(b"")),  # C_LoginUser (3.0)
            (88, "uays", u64(1) + ay(b"") + byte_array(b"x" * 32)),  # C_InitToken2
        ]:
            with pytest.raises(RpcError) as e:
                c.raw_call(call, sig, args)
            assert e.value.rv == ReturnValue.FUNCTION_NOT_SUPPORTED
        assert c.slots() == [s.slot.slot_id]  # the connection goes on


def test_calls_before_initialize_and_handshake(served: Callable[..., Served]) -> None:
    s = served()
    with RawClient(s.path) as c:
        assert rv_of(lambda: c.call(3)) == ReturnValue.CRYPTOKI_NOT_INITIALIZED
        bad = ay(b"PRIVATE-SOMETHING-ELSE") + b"\x00" + ay(b"\x00")
        assert rv_of(lambda: c.call(1, bad)) == ReturnValue.GENERAL_ERROR
        c.initialize()
        assert rv_of(c.initialize) == ReturnValue.CRYPTOKI_ALREADY_INITIALIZED
        c.call(2).end()  # C_Finalize
        assert rv_of(lambda: c.call(3)) == ReturnValue.CRYPTOKI_NOT_INITIALIZED


MALFORMED = {
    "wrong signature": u32(4) + byte_array(b"u") + u64(1),
    "no signature": u32(4) + u32(0xFFFFFFFF),
    "truncated arguments": u32(10) + byte_array(b"uu") + u64(1),
    "trailing bytes": u32(3) + byte_array(b"") + b"\x00",
    "error id as request": u32(0) + byte_array(b"u") + u64(0),
    "short call id": b"\x00\x00",
    "array longer than the body": u32(26) + byte_array(b"uaA") + u64(1) + u32(0x10000000),
    "byte array past the end": u32(18)
    + byte_array(b"uuay")
    + u64(1)
    + u64(1)
    + b"\x01"
    + u32(1000)
    + b"123456",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frames_close_that_connection_only(
    served: Callable[..., Served], case: str
) -> None:
    s = served()
    with connect(s) as good, connect(s) as bad:
        bad.send_frame(MALFORMED[case])
        assert closed(bad)
        assert good.slots() == [s.slot.slot_id]
    with connect(s) as after:  # and new clients are served
        assert after.slots() == [s.slot.slot_id]


def test_truncated_and_oversized_frames(served: Callable[..., Served]) -> None:
    s = served()
    with connect(s) as good:
        with connect(s) as c:  # header promises more than comes, then EOF
            c.sock.sendall(struct.pack(">III", 1, 6, 100) + b"client" + b"\x00" * 10)
            c.sock.shutdown(socket.SHUT_WR)
            assert closed(c)
        with connect(s) as c:  # absurd length: refused at once, nothing is allocated
            c.sock.sendall(struct.pack(">III", 1, 0, 0xFFFFFFF0))
            assert closed(c)
        with connect(s) as c:  # half a header, then EOF
            c.sock.sendall(b"\x00\x00\x00")
            c.sock.shutdown(socket.SHUT_WR)
            assert closed(c)
        with RawClient(s.path, 0) as c:  # garbage from the first byte on
            c.sock.sendall(b"\xff" * 64)
            assert closed(c)
        assert good.slots() == [s.slot.slot_id]


# --- slots, tokens, sessions ----------------------------------------------------------------


def test_slot_and_token_info(served: Callable[..., Served]) -> None:
    s = served("demo-ecc")
    with connect(s) as c:
        slot = s.slot.slot_id
        assert slot == (0xFF00 << 32) | 0x10000001  # manufacturer and serial: stable
        r = c.call(4, b"\x01" + u32(0))  # size query
        assert r.au() == (None, 1)
        r = c.call(5, u64(slot))
        assert r.string().rstrip() == b"Emulated reader 0"
        assert r.string().rstrip() == b"opcard"
        assert r.ulong() & SlotFlag.TOKEN_PRESENT
        r = c.call(6, u64(slot))
        fields = [r.string() for _ in range(4)]
        assert [len(f) for f in fields] == [32, 32, 16, 16]
        assert [f.rstrip() for f in fields] == [
            b"Jane Doe",
            b"unmanaged S/N range",
            b"OpenPGP card 3.4",
            b"10000001",
        ]
        flags = r.ulong()
        assert flags & 0x4 and flags & 0x400  # login required, token initialised
        for _ in range(10):  # sessions, PIN lengths, memory
            r.ulong()
        # hardwareVersion: the OpenPGP spec version; firmwareVersion: unknown on this card
        assert (r.version(), r.version()) == ((3, 4), (0, 0))
        assert rv_of(lambda: c.call(6, u64(slot + 1))) == ReturnValue.SLOT_ID_INVALID
        session = c.open(slot)
        r = c.call(13, u64(session))
        assert (r.ulong(), r.ulong(), r.ulong(), r.ulong()) == (
            slot,
            SessionState.RO_PUBLIC_SESSION,
            0x4,
            0,
        )
        assert rv_of(lambda: c.call(10, u64(slot) + u64(0))) == (
            ReturnValue.SESSION_PARALLEL_NOT_SUPPORTED
        )
        c.call(11, u64(session)).end()
        assert rv_of(lambda: c.call(13, u64(session))) == ReturnValue.SESSION_HANDLE_INVALID


def test_token_firmware_version_where_the_card_tells(served: Callable[..., Served]) -> None:
    """A YubiKey tells its firmware (Yubico GET VERSION): CK_TOKEN_INFO.firmwareVersion."""
    s = served("demo-rsa", profile="yubikey5")
    with connect(s) as c:
        r = c.call(6, u64(s.slot.slot_id))
        for _ in range(4):
            r.string()
        for _ in range(11):  # flags, sessions, PIN lengths, memory
            r.ulong()
        assert (r.version(), r.version()) == ((3, 4), (5, 7))


def test_mechanisms(served: Callable[..., Served]) -> None:
    s = served("demo-rsa")
    with connect(s, 2) as c:
        mechanisms, n = c.call(7, u64(s.slot.slot_id) + u32(64)).au()
        assert mechanisms is not None and M.RSA_PKCS in mechanisms
        assert M.SHA256_RSA_PKCS in mechanisms and M.RSA_PKCS_PSS not in mechanisms
        assert c.call(7, u64(s.slot.slot_id) + u32(1)).au() == (None, n)  # too small
        r = c.call(8, u64(s.slot.slot_id) + u64(M.RSA_PKCS))
        low, high, flags = r.ulong(), r.ulong(), r.ulong()
        assert (low, high) == (2048, 2048)
        assert flags & 0x800 and flags & 0x200 and flags & 0x1  # sign, decrypt, hardware
        for m in (M.RSA_PKCS_PSS, M.ECDSA):
            assert rv_of(lambda m=m: c.call(8, u64(s.slot.slot_id) + u64(m))) == (
                ReturnValue.MECHANISM_INVALID
            )


# --- attributes -----------------------------------------------------------------------------


def test_get_attribute_value(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", login=True)
    der = s.card.demo["aut"].cert_der
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        cert = key_handle(c, session, ObjectClass.CERTIFICATE, 3)
        key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
        attrs, rv = c.attributes(session, cert, [(A.VALUE, 0), (A.CLASS, 0), (A.PRIVATE, 0)])
        assert rv == ReturnValue.OK
        assert attrs == [(A.VALUE, len(der), None), (A.CLASS, 8, 0), (A.PRIVATE, 1, 0)]
        attrs, rv = c.attributes(session, cert, [(A.VALUE, len(der)), (A.ID, 1), (A.LABEL, 64)])
        assert rv == ReturnValue.OK
        assert attrs == [
            (A.VALUE, len(der), der), (A.ID, 1, b"\x03"),
            (A.LABEL, 26, b"Authentication certificate"),
        ]  # fmt: skip
        attrs, rv = c.attributes(session, cert, [(A.VALUE, 10), (A.ID, 1)])
        assert rv == ReturnValue.BUFFER_TOO_SMALL
        assert attrs == [(A.VALUE, None, None), (A.ID, 1, b"\x03")]
        attrs, rv = c.attributes(session, cert, [(A.MODULUS, 256), (0x7FFF0001, 8)])
        assert rv == ReturnValue.ATTRIBUTE_TYPE_INVALID
        assert attrs == [(A.MODULUS, None, None), (0x7FFF0001, None, None)]
        attrs, rv = c.attributes(
            session, key, [(A.PRIVATE_EXPONENT, 512), (A.SENSITIVE, 1), (A.MODULUS, 256)]
        )
        assert rv == ReturnValue.ATTRIBUTE_SENSITIVE
        n = s.card.demo["aut"].public.public_numbers().n
        assert attrs == [
            (A.PRIVATE_EXPONENT, None, None), (A.SENSITIVE, 1, 1),
            (A.MODULUS, 256, n.to_bytes(256, "big")),
        ]  # fmt: skip
        # CKA_DESTROYABLE travels as a byte array (p11-kit does not list it as a CK_BBOOL)
        attrs, rv = c.attributes(session, key, [(A.DESTROYABLE, 1)])
        assert attrs == [(A.DESTROYABLE, 1, b"\x00")] and rv == ReturnValue.OK
        assert rv_of(lambda: c.attributes(session, 0x12345, [(A.CLASS, 8)])) == (
            ReturnValue.OBJECT_HANDLE_INVALID
        )


def test_always_authenticate_is_served_false(served: Callable[..., Served]) -> None:
    """A card whose C4 says PW1 is valid for one signature: the daemon re-verifies itself
    (it holds the PIN), so clients are not told to ask the user before each signature."""
    s = served("demo-ecc", login=True, pw1_single_use=True)
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        sig = key_handle(c, session, ObjectClass.PRIVATE_KEY, 1)
        attrs, _ = c.attributes(session, sig, [(A.ALWAYS_AUTHENTICATE, 1)])
        assert attrs == [(A.ALWAYS_AUTHENTICATE, 1, 0)]
        public = s.card.demo["sig"].public
        for i in range(2):  # twice: the second signature needs PW1 verified again
            digest = hashlib.sha256(b"message %d" % i).digest()
            raw = c.sign(session, sig, M.ECDSA, digest, capacity=64)
            der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
            public.verify(der, b"message %d" % i, ec.ECDSA(hashes.SHA256()))


def test_find_objects(served: Callable[..., Served]) -> None:
    s = served("demo-rsa")
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        assert len(c.find(session, {A.CLASS: ObjectClass.CERTIFICATE})) == 3
        assert c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY}) == []  # before login
        assert len(c.find(session, {A.ID: b"\x02"})) == 2  # public key and certificate
        assert c.find(session, {A.LABEL: b"Signature key", A.CLASS: ObjectClass.PUBLIC_KEY})
        assert c.find(session, {0x7FFF0001: b"x"}) == []  # unknown attribute: nothing
        c.call(26, u64(session) + template({A.CLASS: ObjectClass.CERTIFICATE})).end()
        assert rv_of(lambda: c.call(26, u64(session) + template({}))) == (
            ReturnValue.OPERATION_ACTIVE
        )
        first, _ = c.call(27, u64(session) + u32(2)).au()
        rest, _ = c.call(27, u64(session) + u32(2)).au()
        assert first is not None and rest is not None and (len(first), len(rest)) == (2, 1)
        c.call(28, u64(session)).end()
        assert rv_of(lambda: c.call(27, u64(session) + u32(2))) == (
            ReturnValue.OPERATION_NOT_INITIALIZED
        )


# --- logins ---------------------------------------------------------------------------------


def test_login_is_shared_and_never_an_oracle(served: Callable[..., Served]) -> None:
    s = served("demo-rsa")
    state = s.card.emu.state
    with connect(s) as a, connect(s) as b:
        sa, sb = a.open(s.slot.slot_id), b.open(s.slot.slot_id, rw=True)
        assert rv_of(lambda: a.login(sa, b"999999")) == ReturnValue.PIN_INCORRECT
        assert state.pw1_tries == 2
        assert rv_of(lambda: a.login(sa, b"12")) == ReturnValue.PIN_LEN_RANGE
        assert state.pw1_tries == 2  # refused before the card
        assert rv_of(lambda: a.login(sa, None)) == ReturnValue.ARGUMENTS_BAD
        assert not token_flags(a, s.slot.slot_id) & PROTECTED_AUTHENTICATION_PATH
        a.login(sa, PW1.encode())
        assert state.pw1_tries == 3
        # the daemon holds the PIN: the token now says it authenticates by itself ("PIN pad")
        # and a login without PIN succeeds, as with a reader's keypad
        assert token_flags(b, s.slot.slot_id) & PROTECTED_AUTHENTICATION_PATH
        b.login(sb, None)
        r = b.call(13, u64(sb))
        r.ulong()
        assert r.ulong() == SessionState.RW_USER_FUNCTIONS  # the other client is in too
        assert len(b.find(sb, {A.CLASS: ObjectClass.PRIVATE_KEY})) == 3
        # a second login is answered without looking at the PIN: no oracle, no try used
        assert rv_of(lambda: b.login(sb, b"000000")) == ReturnValue.USER_ALREADY_LOGGED_IN
        assert state.pw1_tries == 3
        assert rv_of(lambda: b.login(sb, PW1.encode(), user=0)) == ReturnValue.USER_TYPE_INVALID
        assert rv_of(lambda: b.login(sb, None, user=2)) == ReturnValue.OPERATION_NOT_INITIALIZED
        b.call(19, u64(sb)).end()  # C_Logout: the card's login ends, for everyone
        r = a.call(13, u64(sa))
        r.ulong()
        assert r.ulong() == SessionState.RO_PUBLIC_SESSION
        assert a.find(sa, {A.CLASS: ObjectClass.PRIVATE_KEY}) == []
        assert rv_of(lambda: a.call(19, u64(sa))) == ReturnValue.USER_NOT_LOGGED_IN


def test_operator_login_survives_client_logout(served: Callable[..., Served]) -> None:
    s = served("demo-ecc", login=True)
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        c.call(19, u64(session)).end()
        assert len(c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY})) == 3


def test_pins_never_reach_the_log_or_a_reply(served: Callable[..., Served]) -> None:
    s = served("demo-rsa")
    replies: list[bytes] = []
    with captured_log() as log, connect(s) as c:
        original = c.read_frame

        def keep() -> tuple[int, bytes]:
            code, body = original()
            replies.append(body)
            return code, body

        c.read_frame = keep  # type: ignore[method-assign]
        session = c.open(s.slot.slot_id)
        assert rv_of(lambda: c.login(session, b"271828")) == ReturnValue.PIN_INCORRECT
        c.login(session, PW1.encode())
    text = "\n".join(log)
    assert "C_Login" in text  # the calls are logged, at debug level …
    for pin in ("271828", PW1):  # … but never a PIN
        assert pin not in text
        assert all(pin.encode() not in body for body in replies)


# --- signing, decrypting, deriving ----------------------------------------------------------


def test_sign_size_query_does_not_touch_the_card(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", login=True)
    public = s.card.demo["aut"].public
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
        c.call(42, u64(session) + c.mechanism(M.RSA_PKCS) + u64(key)).end()
        before = len(s.card.sent)
        assert c.call(43, u64(session) + ay(SIG_INPUT) + u32(0)).ay() == (None, 256)
        assert c.call(43, u64(session) + ay(SIG_INPUT) + u32(100)).ay() == (None, 256)
        assert len(s.card.sent) == before  # no APDU for either
        signature, _ = c.call(43, u64(session) + ay(SIG_INPUT) + u32(256)).ay()
        assert signature is not None
        assert [apdu[1] for apdu in s.card.sent[before:]] == [0x88]  # one APDU
        public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
        assert rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256))) == (
            ReturnValue.OPERATION_NOT_INITIALIZED
        )


@pytest.mark.parametrize("version", [0, 2])
def test_multi_part_signatures(served: Callable[..., Served], version: int) -> None:
    s = served("demo-rsa", "demo-ecc", login=True)
    message = b"a message in three parts"
    with connect(s, version) as c:
        rsa_slot, ec_slot = (x.slot_id for x in s.registry.slots())
        for slot, mechanism in [(rsa_slot, M.SHA256_RSA_PKCS), (ec_slot, M.ECDSA_SHA384)]:
            session = c.open(slot)
            key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 1)
            c.call(42, u64(session) + c.mechanism(mechanism) + u64(key)).end()
            for part in (message[:5], message[5:11], message[11:]):
                c.call(44, u64(session) + ay(part)).end()
            size = c.call(45, u64(session) + u32(0)).ay()
            signature, length = c.call(45, u64(session) + u32(512)).ay()
            assert signature is not None and size == (None, length)
            if slot == rsa_slot:
                public = s.cards[0].demo["sig"].public
                public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                public = s.cards[1].demo["sig"].public
                r, t = int.from_bytes(signature[:32]), int.from_bytes(signature[32:])
                public.verify(encode_dss_signature(r, t), message, ec.ECDSA(hashes.SHA384()))


def test_unsupported_mechanisms_are_refused(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", login=True)
    with connect(s, 2) as c:
        session = c.open(s.slot.slot_id)
        key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
        pss = u32(M.RSA_PKCS_PSS) + b"\x01" + u64(M.SHA256) + u64(2) + u64(32)
        assert rv_of(lambda: c.call(42, u64(session) + pss + u64(key))) == (
            ReturnValue.MECHANISM_INVALID
        )
        gcm = u32(0x1087) + b"\x01" + u32(12) + b"\x00" * 40  # CKM_AES_GCM: not even parsed
        assert rv_of(lambda: c.call(42, u64(session) + gcm + u64(key))) == (
            ReturnValue.MECHANISM_INVALID
        )
        ecdsa = c.mechanism(M.ECDSA)
        assert rv_of(lambda: c.call(42, u64(session) + ecdsa + u64(key))) == (
            ReturnValue.KEY_TYPE_INCONSISTENT
        )
        dec = key_handle(c, session, ObjectClass.PRIVATE_KEY, 2)
        assert rv_of(lambda: c.call(42, u64(session) + c.mechanism(M.RSA_PKCS) + u64(dec))) == (
            ReturnValue.KEY_FUNCTION_NOT_PERMITTED
        )
        cert = key_handle(c, session, ObjectClass.CERTIFICATE, 3)
        assert rv_of(lambda: c.call(42, u64(session) + c.mechanism(M.RSA_PKCS) + u64(cert))) == (
            ReturnValue.KEY_HANDLE_INVALID
        )
        assert c.sign(session, key, M.RSA_PKCS, SIG_INPUT, 256)  # the session still works


def test_decrypt(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", login=True)
    secret = b"session key"
    cryptogram = s.card.demo["dec"].public.encrypt(secret, padding.PKCS1v15())
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        dec = key_handle(c, session, ObjectClass.PRIVATE_KEY, 2)
        c.call(33, u64(session) + c.mechanism(M.RSA_PKCS) + u64(dec)).end()
        assert c.call(34, u64(session) + ay(cryptogram) + u32(0)).ay() == (None, 256)
        before = len(s.card.sent)
        assert c.call(34, u64(session) + ay(cryptogram) + u32(4)).ay() == (None, len(secret))
        plain, _ = c.call(34, u64(session) + ay(cryptogram) + u32(len(secret))).ay()
        assert plain == secret
        assert [apdu[1] for apdu in s.card.sent[before:]] == [0x2A]  # one PSO:DECIPHER


@pytest.mark.parametrize("version", [1, 2])
def test_ecdh_derive_key(served: Callable[..., Served], version: int) -> None:
    s = served("demo-ecc", login=True)
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    expected = peer.exchange(ec.ECDH(), s.card.demo["dec"].public)
    params = u64(1) + byte_array(None) + byte_array(point)  # CKD_NULL, no shared data
    mechanism = u32(M.ECDH1_DERIVE) + (b"\x01" if version >= 2 else b"") + params
    wanted = template({A.CLASS: ObjectClass.SECRET_KEY, A.KEY_TYPE: 0x10, A.TOKEN: 0})
    with RawClient(s.path, version) as c:
        c.initialize()
        session = c.open(s.slot.slot_id)
        dec = key_handle(c, session, ObjectClass.PRIVATE_KEY, 2)
        if version >= 2:
            r = c.call(89, u64(session) + mechanism + u64(dec) + wanted)
            assert r.ulong() == ReturnValue.OK
            assert r.p.byte() == 1  # the mechanism had a parameter (nothing to update)
            handle = r.ulong()
        else:
            handle = c.call(62, u64(session) + mechanism + u64(dec) + wanted).ulong()
        attrs, rv = c.attributes(session, handle, [(A.VALUE, 64), (A.CLASS, 8), (A.TOKEN, 1)])
        assert rv == ReturnValue.OK
        assert attrs == [
            (A.VALUE, 32, expected),
            (A.CLASS, 8, ObjectClass.SECRET_KEY),
            (A.TOKEN, 1, 0),
        ]
        assert c.find(session, {A.CLASS: ObjectClass.SECRET_KEY}) == [handle]
        c.call(22, u64(session) + u64(handle)).end()  # C_DestroyObject
        assert rv_of(lambda: c.attributes(session, handle, [(A.VALUE, 64)])) == (
            ReturnValue.OBJECT_HANDLE_INVALID
        )
        # a sensitive derived key keeps its value to itself
        sensitive = template({A.CLASS: ObjectClass.SECRET_KEY, A.SENSITIVE: 1})
        call, sig_reply = (89, True) if version >= 2 else (62, False)
        r = c.call(call, u64(session) + mechanism + u64(dec) + sensitive)
        if sig_reply:
            r.ulong()
            r.p.byte()
        handle = r.ulong()
        attrs, rv = c.attributes(session, handle, [(A.VALUE, 64)])
        assert (attrs, rv) == ([(A.VALUE, None, None)], ReturnValue.ATTRIBUTE_SENSITIVE)
        # key derivation functions other than CKD_NULL are not offered
        sha1_kdf = u32(M.ECDH1_DERIVE) + (b"\x01" if version >= 2 else b"") + u64(2)
        sha1_kdf += byte_array(None) + byte_array(point)
        assert rv_of(lambda: c.call(call, u64(session) + sha1_kdf + u64(dec) + wanted)) == (
            ReturnValue.MECHANISM_PARAM_INVALID
        )


def test_generate_random(served: Callable[..., Served]) -> None:
    s = served()
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        data, n = c.call(64, u64(session) + u32(600)).ay()
        assert data is not None and n == 600 and len(set(data)) > 100
        assert c.call(64, u64(session) + u32(0)).ay() == (b"", 0)


# --- card removal, several cards, slot events -----------------------------------------------


def test_card_removal_and_reinsertion(served: Callable[..., Served]) -> None:
    s = served("demo-rsa")
    slot = s.slot.slot_id
    ec_ = s.card
    with connect(s) as c:
        session = c.open(slot)
        c.login(session, PW1.encode())
        assert rv_of(lambda: c.call(65, u64(1))) == ReturnValue.NO_EVENT
        ec_.transport.remove()
        s.registry.detach(slot)  # what the PC/SC monitor does when the reader empties
        assert c.slots(present=True) == []
        assert c.slots(present=False) == [slot]
        r = c.call(5, u64(slot))
        r.string(), r.string()
        assert not r.ulong() & SlotFlag.TOKEN_PRESENT
        assert rv_of(lambda: c.call(6, u64(slot))) == ReturnValue.TOKEN_NOT_PRESENT
        assert rv_of(lambda: c.call(13, u64(session))) == ReturnValue.DEVICE_REMOVED
        assert rv_of(lambda: c.call(13, u64(session))) == ReturnValue.SESSION_HANDLE_INVALID
        assert rv_of(lambda: c.call(10, u64(slot) + u64(4))) == ReturnValue.TOKEN_NOT_PRESENT
        assert c.call(65, u64(1)).ulong() == slot  # CKF_DONT_BLOCK: the event is reported
        s.registry.attach(ec_.reinsert())
        assert c.slots(present=True) == [slot]  # same card, same slot
        assert c.call(65, u64(1)).ulong() == slot
        session = c.open(slot)
        r = c.call(13, u64(session))
        r.ulong()
        assert r.ulong() == SessionState.RO_PUBLIC_SESSION  # the login ended with the card
        assert c.find(session, {A.CLASS: ObjectClass.PRIVATE_KEY}) == []
        c.login(session, PW1.encode())
        key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
        assert len(c.sign(session, key, M.RSA_PKCS, SIG_INPUT, 256)) == 256


def test_card_pulled_during_use_reports_device_removed(served: Callable[..., Served]) -> None:
    s = served("demo-rsa", login=True)
    lost: list[bool] = []
    s.registry.on_card_lost = lambda: lost.append(True)
    with connect(s) as c:
        session = c.open(s.slot.slot_id)
        key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
        c.call(42, u64(session) + c.mechanism(M.RSA_PKCS) + u64(key)).end()
        s.card.transport.remove()  # pulled before the monitor noticed
        assert rv_of(lambda: c.call(43, u64(session) + ay(SIG_INPUT) + u32(256))) == (
            ReturnValue.DEVICE_REMOVED
        )
        assert lost == [True]  # the monitor was asked to look at the readers


def test_two_cards_two_slots(served: Callable[..., Served], p11_client: str) -> None:
    s = served("demo-rsa", "demo-ecc", login=True)
    ids = [x.slot_id for x in s.registry.slots()]
    assert ids == [(0xFF00 << 32) | 0x10000001, (0xFF00 << 32) | 0x10000002]
    with connect(s) as c:
        assert c.slots() == ids
        for slot_id, card in zip(ids, s.cards, strict=True):
            session = c.open(slot_id)
            key = key_handle(c, session, ObjectClass.PRIVATE_KEY, 3)
            public = card.demo["aut"].public
            if card.variant == "demo-rsa":
                signature = c.sign(session, key, M.RSA_PKCS, SIG_INPUT, 256)
                public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
            else:
                raw = c.sign(session, key, M.ECDSA, hashlib.sha256(b"m").digest(), 64)
                der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
                public.verify(der, b"m", ec.ECDSA(hashes.SHA256()))


# --- the socket and its peers ---------------------------------------------------------------


def test_socket_is_private(served: Callable[..., Served], tmp_path: object) -> None:
    s = served()
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(s.path.parent).st_mode) == 0o700
    with pytest.raises(SocketError, match="another server"):
        Server(s.registry, s.path).start()
    open_dir = s.directory / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    with pytest.raises(SocketError, match="open to other users"):
        prepare_directory(open_dir)


def test_stale_socket_is_replaced(served: Callable[..., Served]) -> None:
    s = served()
    path = s.directory / "stale"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))  # bound, never listening: what a crashed server leaves
    leftover.close()
    with Server(s.registry, path) as second, RawClient(second.path) as c:
        c.initialize()
        assert c.slots() == [s.slot.slot_id]


def _as_nobody(path: str) -> str:
    """Connect as user nobody (setpriv) and say what happened."""
    import subprocess

    from conftest import require_file, require_tool

    python = str(require_file("/usr/bin/python3"))
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({path!r})\n"
        "except OSError as e:\n"
        "    print('refused-by-os', e.errno); sys.exit()\n"
        "s.settimeout(5)\n"
        "try:\n"
        "    s.sendall(b'\\x00')\n"
        "    print('answer', s.recv(1).hex() or 'eof')\n"
        "except OSError as e:\n"
        "    print('reset', e.errno)\n"
    )
    proc = subprocess.run(
        [require_tool("setpriv"), "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
         python, "-c", script],
        capture_output=True, timeout=20, check=True,
    )  # fmt: skip
    return proc.stdout.decode().strip()


def test_other_users_are_refused(served: Callable[..., Served]) -> None:
    if os.getuid() != 0:
        from conftest import in_ci

        if in_ci():
            pytest.fail("switching to user nobody needs root (CI runs as root)")
        pytest.skip("switching to user nobody needs root")
    s = served()
    # the private directory alone keeps other users out
    assert _as_nobody(str(s.path)).startswith("refused-by-os 13")
    # and when the permissions are opened, SO_PEERCRED still refuses them
    os.chmod(s.path.parent, 0o755)
    os.chmod(s.path, 0o666)
    try:
        with connect(s) as good:
            # closed before a byte was read: EOF, or a reset / broken pipe on our side
            assert _as_nobody(str(s.path)) in ("answer eof", "reset 104", "reset 32")
            assert s.server.refused == 1
            assert good.slots() == [s.slot.slot_id]  # the others are still served
    finally:
        os.chmod(s.path.parent, 0o700)
        os.chmod(s.path, 0o600)
