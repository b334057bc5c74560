"""The quirk helpers, on real cards' data."""

from __future__ import annotations

import pytest
from openpgp_vectors import NITROKEY_PRO_ARD, YK543_ALGORITHM_INFORMATION, YK543_ARD

from apdu.errors import NotFoundError, WrongDataError
from apdu.openpgp import quirks
from apdu.openpgp.constants import AlgorithmId, Curve, KeySlot, RsaImportFormat
from apdu.openpgp.objects import (
    AlgorithmInformation,
    ApplicationRelatedData,
    EcAttributes,
    RsaAttributes,
)


def test_select_data_length_byte_decision() -> None:
    yk = ApplicationRelatedData.parse(YK543_ARD).aid
    nk = ApplicationRelatedData.parse(NITROKEY_PRO_ARD).aid
    assert quirks.select_data_needs_length_byte(yk, (5, 4, 3)) is True
    assert quirks.select_data_needs_length_byte(yk, (5, 2, 0)) is True
    assert quirks.select_data_needs_length_byte(yk, (5, 4, 4)) is False
    assert quirks.select_data_needs_length_byte(yk, (5, 7, 1)) is False
    assert quirks.select_data_needs_length_byte(yk, None) is None
    assert quirks.select_data_needs_length_byte(nk, None) is False


def test_fix_x25519_under_eddsa() -> None:
    info = AlgorithmInformation.parse(YK543_ALGORITHM_INFORMATION)
    bad = EcAttributes(AlgorithmId.EDDSA, Curve.X25519.oid)
    assert bad in info.for_slot(KeySlot.SIG) and bad in info.for_slot(KeySlot.DEC)
    fixed = quirks.fix_x25519_under_eddsa(info)
    good = EcAttributes(AlgorithmId.ECDH, Curve.X25519.oid)
    assert bad not in fixed.for_slot(KeySlot.SIG)
    assert bad not in fixed.for_slot(KeySlot.DEC)
    assert good in fixed.for_slot(KeySlot.DEC)
    assert good not in fixed.for_slot(KeySlot.AUT)
    assert len(fixed.entries) == len(info.entries) - 3  # SIG, AUT, ATT lose their entry
    assert quirks.fix_x25519_under_eddsa(fixed) == fixed


def test_keep_exponent_length() -> None:
    current = RsaAttributes(2048, 17, RsaImportFormat.CRT_WITH_MODULUS)
    assert quirks.keep_exponent_length(4096, current) == RsaAttributes(
        4096, 17, RsaImportFormat.CRT_WITH_MODULUS
    )
    ecc = EcAttributes(AlgorithmId.ECDSA, Curve.NIST_P256.oid)
    assert quirks.keep_exponent_length(3072, ecc) == RsaAttributes(3072)
    assert quirks.keep_exponent_length(3072, None) == RsaAttributes(3072, 32)


def test_certificate_absent() -> None:
    assert quirks.certificate_absent(NotFoundError(0x6A88))
    assert quirks.certificate_absent(NotFoundError(0x6A82))
    assert not quirks.certificate_absent(WrongDataError(0x6A80))


def test_fa_overshoot_constant_matches_the_vector() -> None:
    declared = int.from_bytes(YK543_ALGORITHM_INFORMATION[2:4], "big")
    assert declared - (len(YK543_ALGORITHM_INFORMATION) - 4) == quirks.FA_LENGTH_OVERSHOOT


# --- in_card_format: attributes for a card without FA, in the card's own format ---------------


@pytest.mark.parametrize(
    ("current", "wanted", "written"),
    [
        # RSA to RSA: only n changes; e length and import format stay (YubiKey 4: 17 bits)
        ("010800001100", "010C00002000", "010C00001100"),
        ("010800002003", "011000002000", "011000002003"),
        ("0108000020", "010C00002000", "010C000020"),  # no import format byte: none written
        # ECC to RSA: GnuPG's 01 ‖ n ‖ 0020 ‖ 00
        ("132A8648CE3D030107", "010C00002000", "010C00002000"),
        # RSA to ECC: algorithm ‖ OID, no import byte
        ("010800001100", "132A8648CE3D030107", "132A8648CE3D030107"),
        # ECC to ECC: an import format byte the card uses is kept (SmartPGP: FF)
        ("132A8648CE3D030107FF", "132B81040022", "132B81040022FF"),
        ("132A8648CE3D030107", "162B06010401DA470F01", "162B06010401DA470F01"),
        # nothing known about the slot: the wanted form
        (None, "011000002000", "011000002000"),
    ],
)
def test_in_card_format(current: str | None, wanted: str, written: str) -> None:
    from apdu.openpgp.objects import parse_algorithm_attributes

    cur = None if current is None else parse_algorithm_attributes(bytes.fromhex(current))
    out = quirks.in_card_format(parse_algorithm_attributes(bytes.fromhex(wanted)), cur)
    assert bytes(out).hex().upper() == written
