"""One pure builder per OpenPGP card command (§7.2), returning an :class:`apdu.Command`.

Builders never send and never choose a framing: ``le=0`` means "as many bytes as the card
has" and :mod:`apdu.channel` picks short or extended lengths, chaining and GET RESPONSE.
Commands that carry a PIN or private key material are marked ``sensitive`` so that their
payload never reaches a log.

Every builder's docstring starts with the section of the specification it implements.
"""

from __future__ import annotations

from apdu import tlv
from apdu.command import Command
from apdu.openpgp.constants import (
    OPENPGP_AID_PREFIX,
    Do,
    Ins,
    KeySlot,
    Pw,
)

__all__ = [
    "SELECT_DATA_CERTIFICATE",
    "activate_file",
    "change_reference_data",
    "decipher_input_ecdh",
    "decipher_input_rsa",
    "generate_asymmetric_key_pair",
    "get_challenge",
    "get_data",
    "get_next_data",
    "get_response",
    "import_key",
    "internal_authenticate",
    "manage_security_environment",
    "pso_compute_digital_signature",
    "pso_decipher",
    "put_data",
    "put_data_odd",
    "read_public_key",
    "reset_retry_counter_after_pw3",
    "reset_retry_counter_with_code",
    "select",
    "select_data",
    "terminate_df",
    "verify",
    "verify_reset",
    "verify_status",
    "yubico_get_version",
]

_CLA = 0x00
#: SELECT DATA command data for the cardholder certificate: 60 { 5C (tag list) 7F21 }.
SELECT_DATA_CERTIFICATE = tlv.build(0x60, tlv.build(0x5C, b"\x7f\x21"))
_P1_SELECT_BY_NAME = 0x04
_P2_SELECT_DATA = 0x04
_P1P2_PSO_CDS = (0x9E, 0x9A)
_P1P2_PSO_DECIPHER = (0x80, 0x86)
_P1_GENERATE = 0x80
_P1_READ_PUBLIC_KEY = 0x81
_P1_VERIFY_RESET = 0xFF
_P1_RRC_WITH_CODE = 0x00
_P1_RRC_AFTER_PW3 = 0x02
_P1P2_PUT_DATA_ODD = (0x3F, 0xFF)
_P1_MSE_SET = 0x41
_TAG_KEY_REFERENCE = 0x83
_TAG_CIPHER_DO = 0xA6
_PADDING_INDICATOR_RSA = b"\x00"


def _tag_p1p2(tag: int) -> tuple[int, int]:
    if not 0 <= tag <= 0xFFFF:
        raise ValueError(f"data object tag {tag:#x} does not fit P1-P2")
    return tag >> 8, tag & 0xFF


def _pin(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{what} must be bytes (encode or derive it first)")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return bytes(value)


def select(aid: bytes = OPENPGP_AID_PREFIX) -> Command:
    """7.2.1 SELECT — select the OpenPGP application by (partial) AID, no answer expected.

    A terminated card answers 6285 (or 6A82 on some cards); it then needs ACTIVATE FILE.
    """
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"AID must be 5 to 16 bytes, got {len(aid)}")
    return Command(_CLA, Ins.SELECT, _P1_SELECT_BY_NAME, 0x00, bytes(aid))


def verify(pw: Pw, pin: bytes) -> Command:
    """7.2.2 VERIFY — present a PIN (already encoded, or KDF-derived) for ``pw``."""
    return Command(_CLA, Ins.VERIFY, 0x00, Pw(pw), _pin(pin, "PIN"), sensitive=True)


def verify_status(pw: Pw) -> Command:
    """7.2.2 VERIFY (empty data) — ask whether ``pw`` is verified (9000) or how many tries
    are left (63Cx), without using one."""
    return Command(_CLA, Ins.VERIFY, 0x00, Pw(pw))


def verify_reset(pw: Pw) -> Command:
    """7.2.2 VERIFY with P1=FF — drop the verification of ``pw`` (v3.0 and later)."""
    return Command(_CLA, Ins.VERIFY, _P1_VERIFY_RESET, Pw(pw))


def change_reference_data(pw: Pw, old: bytes, new: bytes) -> Command:
    """7.2.3 CHANGE REFERENCE DATA — replace PW1 (81) or PW3 (83): data is old ‖ new."""
    pw = Pw(pw)
    if pw is Pw.PW1_OTHER:
        raise ValueError("CHANGE REFERENCE DATA takes PW1 as 81 (82 is the same PIN)")
    data = _pin(old, "old PIN") + _pin(new, "new PIN")
    return Command(_CLA, Ins.CHANGE_REFERENCE_DATA, 0x00, pw, data, sensitive=True)


def reset_retry_counter_with_code(reset_code: bytes, new_pin: bytes) -> Command:
    """7.2.4 RESET RETRY COUNTER (P1=00) — set a new PW1 with the reset code: RC ‖ new."""
    data = _pin(reset_code, "reset code") + _pin(new_pin, "new PIN")
    return Command(_CLA, Ins.RESET_RETRY_COUNTER, _P1_RRC_WITH_CODE, Pw.PW1, data, sensitive=True)


def reset_retry_counter_after_pw3(new_pin: bytes) -> Command:
    """7.2.4 RESET RETRY COUNTER (P1=02) — set a new PW1 after PW3 was verified."""
    return Command(
        _CLA,
        Ins.RESET_RETRY_COUNTER,
        _P1_RRC_AFTER_PW3,
        Pw.PW1,
        _pin(new_pin, "new PIN"),
        sensitive=True,
    )


def select_data(occurrence: int, *, length_byte: bool = False) -> Command:
    """7.2.5 SELECT DATA — make occurrence ``occurrence`` of 7F21 the current certificate.

    Occurrence 0 is the AUT certificate, 1 DEC, 2 SIG (:attr:`KeySlot.certificate_occurrence`).
    ``length_byte`` prepends the extra length byte 06 that YubiKey firmware 5.2.0-5.4.3
    requires (see :mod:`apdu.openpgp.quirks`); it violates the spec, so it is off by default.
    """
    if not 0 <= occurrence <= 0xFF:
        raise ValueError(f"occurrence must be a byte, got {occurrence}")
    data = SELECT_DATA_CERTIFICATE
    if length_byte:
        data = bytes((len(data),)) + data
    return Command(_CLA, Ins.SELECT_DATA, occurrence, _P2_SELECT_DATA, data)


def get_data(tag: int) -> Command:
    """7.2.6 GET DATA — read the data object ``tag`` (P1-P2 = tag)."""
    p1, p2 = _tag_p1p2(tag)
    return Command(_CLA, Ins.GET_DATA, p1, p2, le=0)


def get_next_data(tag: int = Do.CARDHOLDER_CERTIFICATE) -> Command:
    """7.2.7 GET NEXT DATA — read the next occurrence of ``tag`` (7F21)."""
    p1, p2 = _tag_p1p2(tag)
    return Command(_CLA, Ins.GET_NEXT_DATA, p1, p2, le=0)


def put_data(tag: int, value: bytes, *, sensitive: bool | None = None) -> Command:
    """7.2.8 PUT DATA (even INS DA) — write the simple data object ``tag``.

    The reset code (D3) is sensitive by default; pass ``sensitive=True`` for any other value
    that must stay out of logs (e.g. the AES key D5).
    """
    p1, p2 = _tag_p1p2(tag)
    if sensitive is None:
        sensitive = tag in (Do.RESETTING_CODE, Do.AES_KEY)
    return Command(_CLA, Ins.PUT_DATA, p1, p2, bytes(value), sensitive=sensitive)


def put_data_odd(data: bytes, *, sensitive: bool = True) -> Command:
    """7.2.8 PUT DATA (odd INS DB, P1-P2 3FFF) — write an extended header list (key import)."""
    p1, p2 = _P1P2_PUT_DATA_ODD
    return Command(_CLA, Ins.PUT_DATA_ODD, p1, p2, bytes(data), sensitive=sensitive)


def import_key(template: bytes) -> Command:
    """7.2.8 PUT DATA (odd) — import a private key: ``template`` is the 4D extended header
    list built by :mod:`apdu.openpgp.keys`. Always sensitive."""
    if not template or template[0] != Do.EXTENDED_HEADER_LIST:
        raise ValueError("a key import template starts with the extended header list tag 4D")
    return put_data_odd(template, sensitive=True)


def generate_asymmetric_key_pair(slot: KeySlot) -> Command:
    """7.2.9 GENERATE ASYMMETRIC KEY PAIR (P1=80) — generate a key in ``slot``; the answer
    is its public key template 7F49."""
    return Command(_CLA, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, _P1_GENERATE, 0x00, _crt(slot), le=0)


def read_public_key(slot: KeySlot) -> Command:
    """7.2.9 GENERATE ASYMMETRIC KEY PAIR (P1=81) — read the public key of ``slot``."""
    return Command(
        _CLA, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, _P1_READ_PUBLIC_KEY, 0x00, _crt(slot), le=0
    )


def _crt(slot: KeySlot) -> bytes:
    return tlv.build(KeySlot(slot).crt)


def pso_compute_digital_signature(data: bytes) -> Command:
    """7.2.10 PSO: COMPUTE DIGITAL SIGNATURE — sign with the SIG key.

    ``data`` is a DigestInfo for RSA (the card adds PKCS#1 v1.5 padding), the hash for ECDSA,
    the whole message for EdDSA.
    """
    if not data:
        raise ValueError("nothing to sign")
    p1, p2 = _P1P2_PSO_CDS
    return Command(_CLA, Ins.PERFORM_SECURITY_OPERATION, p1, p2, bytes(data), le=0)


def pso_decipher(data: bytes) -> Command:
    """7.2.11 PSO: DECIPHER — decipher with the DEC key (or the AUT key after MSE).

    ``data`` is the full command data: :func:`decipher_input_rsa` or
    :func:`decipher_input_ecdh` build it.
    """
    if not data:
        raise ValueError("nothing to decipher")
    p1, p2 = _P1P2_PSO_DECIPHER
    return Command(_CLA, Ins.PERFORM_SECURITY_OPERATION, p1, p2, bytes(data), le=0)


def decipher_input_rsa(cryptogram: bytes) -> bytes:
    """7.2.11 PSO: DECIPHER data for RSA: padding indicator 00 ‖ cryptogram."""
    if not cryptogram:
        raise ValueError("empty cryptogram")
    return _PADDING_INDICATOR_RSA + bytes(cryptogram)


def decipher_input_ecdh(point: bytes) -> bytes:
    """7.2.11 PSO: DECIPHER data for ECDH: A6 { 7F49 { 86 public point of the peer } }.

    The point is an uncompressed point (04 ‖ X ‖ Y) or, for X25519, the 32-byte u value.
    """
    if not point:
        raise ValueError("empty public point")
    return tlv.build(_TAG_CIPHER_DO, tlv.build(Do.PUBLIC_KEY, tlv.build(0x86, point)))


def internal_authenticate(data: bytes) -> Command:
    """7.2.13 INTERNAL AUTHENTICATE — sign ``data`` with the AUT key (needs PW1 as 82).

    RSA: the card pads ``data`` with PKCS#1 type 1 (≤ 40 % of the modulus); ECDSA: the hash;
    EdDSA: the message.
    """
    if not data:
        raise ValueError("nothing to authenticate")
    return Command(_CLA, Ins.INTERNAL_AUTHENTICATE, 0x00, 0x00, bytes(data), le=0)


def get_response(length: int) -> Command:
    """7.2.14 GET RESPONSE — fetch ``length`` more bytes after 61xx (the session does this)."""
    return Command(_CLA, Ins.GET_RESPONSE, 0x00, 0x00, le=length)


def get_challenge(length: int) -> Command:
    """7.2.15 GET CHALLENGE — ``length`` random bytes from the card."""
    if length <= 0:
        raise ValueError("challenge length must be positive")
    return Command(_CLA, Ins.GET_CHALLENGE, 0x00, 0x00, le=length)


def terminate_df() -> Command:
    """7.2.16 TERMINATE DF — start a factory reset (needs PW3 verified or blocked)."""
    return Command(_CLA, Ins.TERMINATE_DF, 0x00, 0x00)


def activate_file() -> Command:
    """7.2.17 ACTIVATE FILE — finish a factory reset: the card returns to factory state."""
    return Command(_CLA, Ins.ACTIVATE_FILE, 0x00, 0x00)


def manage_security_environment(template: KeySlot, key: KeySlot) -> Command:
    """7.2.18 MANAGE SECURITY ENVIRONMENT — use ``key``'s private key for the operation of
    ``template``: DEC (PSO:DECIPHER, P2=B8) or AUT (INTERNAL AUTHENTICATE, P2=A4).

    Only the DEC and AUT keys can be swapped; data is 83 01 key reference.
    """
    template, key = KeySlot(template), KeySlot(key)
    if template is KeySlot.SIG or key is KeySlot.SIG:
        raise ValueError("MSE only redirects the DEC and AUT keys")
    data = tlv.build(_TAG_KEY_REFERENCE, bytes((key.value,)))
    return Command(_CLA, Ins.MANAGE_SECURITY_ENVIRONMENT, _P1_MSE_SET, template.crt, data)


def yubico_get_version() -> Command:
    """Yubico vendor command GET VERSION (INS F1, not in the spec): firmware major.minor.patch.

    Other cards answer 6D00; this driver never sends it unless asked.
    """
    return Command(_CLA, Ins.YUBICO_GET_VERSION, 0x00, 0x00, le=0)
