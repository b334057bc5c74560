"""Test-only emulated cards with features taken away, as real card families lack them.

The tests of "the driver asks the card" (issue #10) need cards that lack one thing at a time.
:func:`limited` derives such a profile from a generic one with the emulator's own
:class:`fixtures.profiles.Profile` fields (the card-family profiles use the same fields):
``algorithm_info=False`` (no FA), ``version=0x0201, cert_slots=1`` (spec 2.1: one 7F21, no
SELECT DATA / GET NEXT DATA), ``kdf=False``, ``uif=False`` (with ``general_feature_do=None``:
no button either), ``private_dos=False``, ``attributes_changeable=False``, ``slot_algorithms``
(what PUT DATA C1-C3 accepts per slot; others answer ``unsupported_attributes_sw``, 6A80),
``rsa_e_bits`` / ``rsa_e_bits_accepted`` (YubiKey 4: 17 bits only).

The one thing no profile field models is a card without the digital signature counter (7A):
:class:`LimitedCard` answers 6A88 to GET DATA 7A and 93 when ``counter=False``.

Import as ``from tests.limited_card import LimitedCard, limited``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fixtures.card import CardError, OpenPGPCard
from fixtures.card_crypto import AlgoId
from fixtures.profiles import PROFILES, Profile, ecc_attrs, rsa_attrs

__all__ = ["ATTRIBUTE_TAGS", "LimitedCard", "attribute_writes", "limited", "rsa_and_p256"]

#: PUT DATA P1P2 of the algorithm attributes → slot name
ATTRIBUTE_TAGS = {0x00C1: "sig", 0x00C2: "dec", 0x00C3: "aut"}

_RSA = tuple(rsa_attrs(bits) for bits in (2048, 3072, 4096))
#: A card that takes RSA 2048-4096 and NIST P-256 (ECDSA for SIG/AUT, ECDH for DEC), nothing
#: else (per slot: SIG, DEC, AUT).
RSA_AND_P256 = (
    (*_RSA, ecc_attrs(AlgoId.Ecdsa, "nistp256")),
    (*_RSA, ecc_attrs(AlgoId.Ecdh, "nistp256")),
    (*_RSA, ecc_attrs(AlgoId.Ecdsa, "nistp256")),
)
rsa_and_p256 = RSA_AND_P256


def limited(base: str = "extended", **fields: Any) -> Profile:
    """The generic profile ``base`` with ``fields`` changed (a "limited" card)."""
    return dataclasses.replace(
        PROFILES[base], name=f"limited-{base}", description="test card", **fields
    )


def attribute_writes(sent: list[bytes]) -> list[tuple[str, bytes]]:
    """(slot, data) of every PUT DATA C1/C2/C3 among the command APDUs ``sent`` (short
    APDUs with Lc, as opcard sends them)."""
    out = []
    for apdu in sent:
        if apdu[1] == 0xDA and (apdu[2] << 8 | apdu[3]) in ATTRIBUTE_TAGS:
            out.append((ATTRIBUTE_TAGS[apdu[2] << 8 | apdu[3]], apdu[5 : 5 + apdu[4]]))
    return out


class LimitedCard(OpenPGPCard):
    """The emulator with a :func:`limited` profile; ``counter=False``: no signature counter
    (GET DATA 7A and 93 answer the profile's absent-DO status word)."""

    def __init__(
        self, profile: Profile | str = "extended", *, counter: bool = True, **kw: Any
    ) -> None:
        super().__init__(profile, **kw)
        self.counter = counter

    def _read_do(self, tag: int) -> bytes:
        if tag in (0x007A, 0x0093) and not self.counter:
            raise CardError(self.profile.absent_do_sw)
        return super()._read_do(tag)
