"""Known deviations of real OpenPGP cards from the specification, in one place.

Each quirk is a documented constant or function naming the cards it serves and where it was
observed. The applet (:mod:`apdu.openpgp.applet`) and the parsers call these instead of
scattering card-specific conditions. ``docs/openpgp.md`` has the table.
"""

from __future__ import annotations

from apdu.errors import (
    CardStatusError,
    NotFoundError,
    Sw,
    WrongDataError,
    WrongLengthError,
    WrongParametersError,
)
from apdu.openpgp.constants import YUBICO, AlgorithmId, Curve, KeySlot, LifeCycle
from apdu.openpgp.objects import (
    Aid,
    AlgorithmAttributes,
    AlgorithmInformation,
    EcAttributes,
    RsaAttributes,
)

__all__ = [
    "CERTIFICATE_SIZE_LIMITS",
    "EMPTY_VERIFY_UNSUPPORTED_SW",
    "FA_LENGTH_OVERSHOOT",
    "LIFE_CYCLE_MANAGED",
    "SELECT_DATA_RETRY_ERRORS",
    "WRONG_PIN_SECURITY_STATUS_SW",
    "YUBIKEY_SELECT_DATA_LENGTH_BYTE",
    "certificate_absent",
    "fix_x25519_under_eddsa",
    "in_card_format",
    "keep_exponent_length",
    "select_data_needs_length_byte",
]

#: Empty VERIFY (status query, §7.2.2) answered 6A80 instead of 9000/63Cx: YubiKey 5 firmware
#: (seen on 5.4.3; OpenSC PR #3397 "SC_CARD_FLAG_NO_ISO7816_PIN_INFO", log of
#: ``00 20 00 82`` → ``6A 80``). Fallback: read the retry counter from C4; whether the PIN is
#: verified stays unknown.
EMPTY_VERIFY_UNSUPPORTED_SW = frozenset(
    {Sw.WRONG_DATA, Sw.INS_NOT_SUPPORTED, Sw.WRONG_PARAMETERS, Sw.WRONG_LENGTH}
)

#: A wrong PIN answered 6982 (security status not satisfied) instead of 63Cx: YubiKey
#: (yubikey-manager ``_verify``/``_change`` map 6982 to "invalid PIN" and re-read C4). The
#: applet raises WrongPinError with the counter read from C4.
WRONG_PIN_SECURITY_STATUS_SW = Sw.SECURITY_STATUS_NOT_SATISFIED

#: YubiKey firmware 5.2.0 to 5.4.3 wants SELECT DATA with an extra length byte 06 before the
#: spec's data ``60 04 5C 02 7F 21`` and refuses the spec's form (yubikey-manager issue #403,
#: ``_select_certificate``: ``version <= (5, 4, 3)``; OpenSC PR #2969/#3332; trace of a
#: 5.4.3 in cunicu/go-openpgp-card ``mockdata/TestCardholderCertificate``:
#: ``00 A5 02 04 07 06 60 04 5C 02 7F 21 00`` → 9000). The firmware version is only known
#: through Yubico's GET VERSION (F1), which this driver does not send by default.
YUBIKEY_SELECT_DATA_LENGTH_BYTE = ((5, 2, 0), (5, 4, 3))

#: Errors after which SELECT DATA is retried once with the length byte (the only way to learn
#: the quirk without GET VERSION): the spec form refused as wrong data/length/parameters.
SELECT_DATA_RETRY_ERRORS: tuple[type[CardStatusError], ...] = (
    WrongDataError,
    WrongLengthError,
    WrongParametersError,
    NotFoundError,
)

#: Life cycle status bytes (the third-last historical byte) that declare the specification's
#: life cycle management — TERMINATE DF after PW3 or with PW1 and PW3 blocked, then ACTIVATE
#: FILE: 03 (terminated, seen only in the ATR) and 05 (operational). GnuPG's factory-reset
#: refuses a card that declares anything else ("This command is not supported by this card",
#: g10/card-util.c). Gnuk sends 00 and has no TERMINATE DF; the Ledger app 7F and terminates
#: only after PW3; the YubiKey NEO 00 and terminates only with both PINs blocked (6985).
LIFE_CYCLE_MANAGED = frozenset({LifeCycle.INITIALISATION, LifeCycle.OPERATIONAL})

# A fourth GET NEXT DATA (there are three certificate occurrences) answers 6A80 (YubiKey
# 5.4.3 trace, go-openpgp-card ``mockdata/TestCardholderCertificates``): nothing to work
# around, the driver never sends one, and one sent anyway raises WrongDataError.

#: FA algorithm information declared 2 bytes longer than sent: YubiKey 5.4.3 (declares 01E2,
#: sends 01E0 — go-openpgp-card ``mockdata/TestSupportedAlgorithms``; GnuPG logs "Yubikey
#: bug: length %zu != %zu"; OpenSC "known Yubikey 5 issue"). :class:`AlgorithmInformation`
#: accepts a declared length larger than the data.
FA_LENGTH_OVERSHOOT = 2

#: Cardholder certificate size limits (C0 bytes 5-6) of real cards, for docs and tests:
#: YubiKey NEO and 4: 1216 (04C0); YubiKey 5, Nitrokey Pro 2, Nitrokey 3: 2048 (0800).
CERTIFICATE_SIZE_LIMITS: dict[str, int] = {
    "YubiKey NEO": 0x04C0,
    "YubiKey 4": 0x04C0,
    "YubiKey 5": 0x0800,
    "Nitrokey Pro": 0x0800,
}


def select_data_needs_length_byte(aid: Aid, firmware: tuple[int, int, int] | None) -> bool | None:
    """Whether SELECT DATA needs the YubiKey length byte: True/False when it is known, None
    when only trying can tell (a Yubico card whose firmware version is unknown)."""
    if aid.manufacturer != YUBICO:
        return False
    if firmware is None:
        return None
    low, high = YUBIKEY_SELECT_DATA_LENGTH_BYTE
    return low <= firmware <= high


def certificate_absent(err: CardStatusError) -> bool:
    """An empty certificate occurrence reads as 9000 with no data on most cards, but as
    6A88 / 6A82 on others (Nitrokey 3 / opcard-rs, Gnuk): all mean "no certificate"."""
    return isinstance(err, NotFoundError)


def fix_x25519_under_eddsa(info: AlgorithmInformation) -> AlgorithmInformation:
    """YubiKey < 5.6.1 lists X25519 as EdDSA (16 ‖ cv25519 OID) in every slot of FA
    (yubikey-manager ``get_algorithm_information``; OpenSC ``_pgp_handle_curve25519``).
    X25519 is an ECDH curve: rewrite those entries as 12 ‖ cv25519 and drop them from the
    signing slots, keeping the DEC slot's (and adding it there when absent)."""
    entries: list[tuple[int, AlgorithmAttributes]] = []
    dec_tag = KeySlot.DEC.attributes_tag
    for tag, attrs in info.entries:
        if (
            isinstance(attrs, EcAttributes)
            and attrs.algorithm == AlgorithmId.EDDSA
            and attrs.curve is Curve.X25519
        ):
            if tag == dec_tag:
                attrs = EcAttributes(AlgorithmId.ECDH, attrs.oid, attrs.import_format)
                if (tag, attrs) in entries:
                    continue
            else:
                continue
        entries.append((tag, attrs))
    return AlgorithmInformation(tuple(entries))


def keep_exponent_length(n_bits: int, current: AlgorithmAttributes | None) -> RsaAttributes:
    """RSA attributes for a new modulus size that keep the card's declared exponent length
    and import format: YubiKey 4 refuses e declared as 32 bits and wants 17 (OpenSC issue
    #1949, fixed "the way gpg does": reuse the current attributes' values)."""
    if isinstance(current, RsaAttributes):
        return RsaAttributes(n_bits, current.e_bits, current.import_format)
    return RsaAttributes(n_bits)


def in_card_format(
    wanted: AlgorithmAttributes, current: AlgorithmAttributes | None
) -> AlgorithmAttributes:
    """``wanted`` written in the format the card itself uses in its current attributes, for
    a card that does not list its algorithms (no FA), as GnuPG does (``change_rsa_keyattr``:
    RSA to RSA changes only the modulus size and keeps the exponent length — 17 bits on
    YubiKey 4 and NEO, 32 on most others — and the import format byte; ``change_keyattr``:
    otherwise RSA is ``01 ‖ n ‖ 0020 ‖ 00`` and ECC ``algorithm ‖ OID``). An ECC slot whose
    current attributes end with an import format byte keeps that byte for the new curve."""
    if isinstance(wanted, RsaAttributes):
        if isinstance(current, RsaAttributes):
            return keep_exponent_length(wanted.n_bits, current)
        return wanted
    if (
        isinstance(wanted, EcAttributes)
        and isinstance(current, EcAttributes)
        and current.import_format is not None
    ):
        return EcAttributes(wanted.algorithm, wanted.oid, current.import_format)
    return wanted
