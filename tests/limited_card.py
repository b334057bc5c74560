"""A test-only emulated card with features taken away, as real card families lack them.

Until ``fixtures/`` has the card-family profiles, the tests of "the driver asks the card"
(issue #10) build the cards they need here: a subclass of ``fixtures.card.OpenPGPCard`` that

- reports another spec version in its AID (2.1: one 7F21, SELECT DATA and GET NEXT DATA
  unknown, answered 6D00; C0 in the v2 layout with max command/response lengths);
- answers 6A88 to GET DATA FA (no algorithm information), 7A/93 (no signature counter) and
  D6-D8 (no UIF, which then also leave 6E);
- declares other C0 flags (no KDF, no private DOs: 0101-0104 answer 6A88);
- accepts only some algorithm attributes in PUT DATA C1-C3 (others: ``refuse_sw``, 6A80 by
  default), and can declare RSA attributes with a 17-bit exponent and refuse 32 (as the
  YubiKey 4 does, OpenSC issue #1949);
- records the attributes written (``attribute_writes``).

It changes only answers, never the emulator's own code. Import it as
``from tests.limited_card import LimitedCard``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fixtures.ber import parse_tlvs, tlv
from fixtures.card import CardError, Command, Ins, OpenPGPCard, Sw
from fixtures.card_state import AUT, DEC, SIG
from fixtures.profiles import PROFILES, Profile

__all__ = ["ATTRIBUTE_TAGS", "LimitedCard", "rsa_e17"]

ATTRIBUTE_TAGS = {0xC1: SIG, 0xC2: DEC, 0xC3: AUT}
_UIF_TAGS = (0xD6, 0xD7, 0xD8)
_PRIVATE_DOS = (0x0101, 0x0102, 0x0103, 0x0104)
#: C0 bits (spec 3.4 §4.4.3.7)
KDF, PRIVATE_DOS, ALGORITHM_CHANGE = 0x01, 0x08, 0x04


def rsa_e17(attributes: bytes) -> bytes:
    """RSA attributes ``01 ‖ n ‖ e bits ‖ fmt`` with the exponent length set to 17."""
    assert attributes[0] == 0x01
    return attributes[:3] + b"\x00\x11" + attributes[5:]


class LimitedCard(OpenPGPCard):
    def __init__(
        self,
        profile: Profile | str = "extended",
        *,
        version: int | None = None,
        fa: bool = True,
        counter: bool = True,
        uif: bool = True,
        c0_clear: int = 0,
        accepts: Callable[[int, bytes], bool] | None = None,
        refuse_sw: int = Sw.WrongData,
        **kw: object,
    ) -> None:
        base = PROFILES[profile] if isinstance(profile, str) else profile
        if version is not None:
            base = dataclasses.replace(base, version=version)
        super().__init__(base, **kw)  # type: ignore[arg-type]
        self.fa = fa
        self.counter = counter
        self.uif = uif
        self.c0_clear = c0_clear
        self.accepts = accepts
        self.refuse_sw = refuse_sw
        #: (slot tag, attribute bytes) of every PUT DATA C1-C3 the card accepted or refused
        self.attribute_writes: list[tuple[int, bytes, bool]] = []
        if self.v2:  # spec 2: one certificate, no SELECT DATA / GET NEXT DATA
            self._handlers[Ins.SelectData] = self._unknown
            self._handlers[Ins.GetNextData] = self._unknown

    @property
    def v2(self) -> bool:
        return self.profile.version < 0x0300

    def _unknown(self, cmd: Command) -> bytes:
        raise CardError(Sw.InsNotSupported)

    def _ext_caps(self) -> bytes:
        caps = bytearray(super()._ext_caps())
        caps[0] &= ~self.c0_clear & 0xFF
        if self.v2:  # v2 layout: bytes 7-10 are the max command and response lengths
            p = self.profile
            caps[6:10] = p.max_command_len.to_bytes(2, "big") + p.max_response_len.to_bytes(
                2, "big"
            )
        return bytes(caps)

    def _discretionary(self) -> bytes:
        data = super()._discretionary()
        if self.uif:
            return data
        return b"".join(tlv(t, v) for t, v in parse_tlvs(data) if t not in _UIF_TAGS)

    def _read_do(self, tag: int) -> bytes:
        if tag == 0xFA and not self.fa:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag in (0x7A, 0x93) and not self.counter:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag in _UIF_TAGS and not self.uif:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag in _PRIVATE_DOS and self.c0_clear & PRIVATE_DOS:
            raise CardError(Sw.ReferencedDataNotFound)
        return super()._read_do(tag)

    def _put_data(self, cmd: Command) -> bytes:
        tag = cmd.p1 << 8 | cmd.p2
        if tag in _UIF_TAGS and not self.uif:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag in _PRIVATE_DOS and self.c0_clear & PRIVATE_DOS:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag == 0xF9 and self.c0_clear & KDF:
            raise CardError(Sw.ReferencedDataNotFound)
        if tag in ATTRIBUTE_TAGS and self.accepts is not None:
            self._require_pw3()
            if not self.accepts(ATTRIBUTE_TAGS[tag], bytes(cmd.data)):
                self.attribute_writes.append((tag, bytes(cmd.data), False))
                raise CardError(self.refuse_sw)
        result = super()._put_data(cmd)
        if tag in ATTRIBUTE_TAGS:
            self.attribute_writes.append((tag, bytes(cmd.data), True))
        return result

    def _require_pw3(self) -> None:
        from fixtures.card import Pw

        self._require(Pw.Pw3)
