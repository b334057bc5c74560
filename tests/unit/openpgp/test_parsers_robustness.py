"""Robustness: more than 100,000 random and mutated card answers through every data object
parser and through the applet (its answer handling over a real Channel), seeded.

Nothing may escape but :class:`apdu.errors.ApduError` (ValueError/TypeError/IndexError/
struct.error/RecursionError would be bugs), and whatever a parser returns must serialise and
parse back to itself. The test prints how many cases ran.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from openpgp_vectors import (
    ALL_ARD,
    HISTORICAL_BYTES,
    YK543_ALGORITHM_INFORMATION,
    YK543_CARDHOLDER,
    YK543_KDF_SHA512,
    YK543_PUBLIC_ED25519,
    YK543_PUBLIC_P256,
    YK543_PUBLIC_RSA2048,
    YK543_SST_3,
)
from parsers import PARSERS, reparse

from apdu import tlv
from apdu.channel import Channel
from apdu.errors import ApduError
from apdu.openpgp import OpenPgpApplet
from apdu.openpgp.constants import KeySlot, Pw
from apdu.transport.loopback import LoopbackTransport

SEED = 0x0C4D
PARSER_INPUTS = 25_000  # x 19 parsers
APPLET_CALLS = 20_000
TIME_LIMIT = 20.0

_SEEDS: list[bytes] = [
    *ALL_ARD.values(),
    *(raw for raw, _, _ in HISTORICAL_BYTES.values()),
    YK543_ALGORITHM_INFORMATION,
    YK543_CARDHOLDER,
    YK543_KDF_SHA512,
    YK543_PUBLIC_ED25519,
    YK543_PUBLIC_P256,
    YK543_PUBLIC_RSA2048,
    YK543_SST_3,
    bytes.fromhex("010800001100"),
    bytes.fromhex("132A8648CE3D030107FF"),
    bytes.fromhex("017F7F7F030003"),
    bytes.fromhex("7D000BFE080000FF0000"),
    bytes.fromhex("0120"),
    bytes.fromhex("0101020003008102"),
    bytes.fromhex("7F660802020BFE02020BFE"),
    bytes.fromhex("7F7403810120"),
    bytes.fromhex("D2760001240103040006238527740000"),
]
_TAGS = [
    0x4F,
    0x5F52,
    0x73,
    0x7F66,
    0x7F74,
    0xC0,
    0xC1,
    0xC4,
    0xC5,
    0xCD,
    0xDE,
    0xD6,
    0x81,
    0x82,
    0x84,
    0x86,
    0x93,
    0x5B,
    0x5F35,
    0x02,
    0x6E,
    0x65,
    0x7A,
    0xF9,
    0xFA,
    0x7F49,
    0xDA,
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip a bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # replace a byte (often a length: small values, 8x)
            i = rng.randrange(len(out))
            out[i] = rng.choice(
                [0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF, rng.randrange(256)]
            )
        elif op == 2:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3 and out:
            del out[pos : pos + rng.randint(1, 8)]
        elif op == 4:
            del out[pos:]  # truncate
        elif op == 5:
            out[pos:pos] = random_tlvs(rng, 1)
        else:
            out += rng.choice(_SEEDS)[: rng.randint(0, 20)]
    return bytes(out)


def random_tlvs(rng: random.Random, depth: int) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 4)):
        tag = rng.choice(_TAGS)
        if depth and tlv.Tlv(tag, b"").constructed and rng.random() < 0.5:
            value = random_tlvs(rng, depth - 1)
        else:
            value = rng.randbytes(rng.choice([0, 1, 2, 4, 7, 8, 10, 16, 20, 60, 80]))
        parts.append(tlv.build(tag, value))
    return b"".join(parts)


def next_input(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.45:
        return mutate(rng, rng.choice(_SEEDS))
    if kind < 0.75:
        return random_tlvs(rng, 2)
    return rng.randbytes(rng.choice([0, 1, 2, 3, 5, 7, 10, 16, 60, 120, 300]))


def run_parsers(rng: random.Random) -> tuple[int, int]:
    calls = accepted = 0
    for _ in range(PARSER_INPUTS):
        data = next_input(rng)
        for name, parse in PARSERS.items():
            calls += 1
            try:
                value = parse(data)
            except ApduError:
                continue
            accepted += 1
            again = reparse(name, value)
            assert again == value, (name, data.hex())
    return calls, accepted


def run_applet(rng: random.Random) -> tuple[int, int]:
    """Applet methods whose answers come from a card answering garbage with random SWs."""

    def card(apdu: bytes) -> bytes:
        if rng.random() < 0.15:
            return rng.randbytes(rng.randint(0, 3))  # too short, or only a status word
        sw = rng.choice(
            [b"\x90\x00"] * 6
            + [
                b"\x61\x10",
                b"\x6c\x05",
                b"\x63\xc2",
                b"\x6a\x80",
                b"\x6a\x88",
                b"\x69\x82",
                b"\x69\x83",
                b"\x6d\x00",
                b"\x62\x85",
                rng.randbytes(2),
            ]
        )
        return next_input(rng) + sw

    channel = Channel(LoopbackTransport(card, b"\x3b\x00"), max_get_response=8)
    applet = OpenPgpApplet(channel)
    calls: list[Callable[[], object]] = [
        applet.get_application_related_data,
        applet.get_pw_status,
        applet.get_cardholder_data,
        applet.get_security_support_template,
        applet.get_algorithm_information,
        lambda: applet.get_kdf(adopt=True),
        lambda: applet.pin_status(rng.choice(list(Pw))),
        lambda: applet.get_certificate(rng.choice(list(KeySlot))),
        lambda: applet.read_public_key(rng.choice(list(KeySlot))),
        lambda: applet.verify(Pw.PW1, "123456"),
        lambda: applet.sign(b"\x01" * 32),
        applet.factory_reset,
        applet.start,
    ]
    succeeded = 0
    for _ in range(APPLET_CALLS):
        try:
            rng.choice(calls)()
            succeeded += 1
        except ApduError:
            pass
        finally:
            applet.kdf = None  # a random KDF-DO would make every later PIN slow to derive
    return APPLET_CALLS, succeeded


def test_robustness() -> None:
    rng = random.Random(SEED)
    start = time.perf_counter()
    calls, accepted = run_parsers(rng)
    applet_calls, applet_ok = run_applet(rng)
    elapsed = time.perf_counter() - start
    total = calls + applet_calls
    print(
        f"\nrobustness: {total} cases ({PARSER_INPUTS} inputs x {len(PARSERS)} parsers = "
        f"{calls} parser calls, {accepted} accepted and round-tripped; {applet_calls} applet "
        f"calls on a garbage card, {applet_ok} returned a value) in {elapsed:.1f} s"
    )
    assert total >= 100_000
    assert accepted > calls // 10 and applet_ok > applet_calls // 20  # not all rejected
    assert elapsed < TIME_LIMIT
