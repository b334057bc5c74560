"""Robustness: random and mutated card answers never raise anything outside ApduError.

At least 100,000 answers go through :class:`apdu.channel.Channel` (with a transport that plays
them back: mutations of real answers — bit flips, truncations, extensions, splices, random
status words including 61xx and 6Cxx storms — and plain random bytes), and at least 100,000
payloads through the BER-TLV parser. A seeded ``random.Random`` keeps every run identical; the
counts are printed (``pytest -s``). Each failure names the seed and the case.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apdu import tlv
from apdu.channel import MAX_GET_RESPONSE, Channel, Framing
from apdu.command import Command, Response
from apdu.errors import ApduError, error_for_status

SEED = 20261126
ANSWERS = 100_000
PAYLOADS = 100_000


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _real_answers() -> list[bytes]:
    """Answers of the kind OpenPGP cards give (structure as documented by the spec/recordings)."""
    rng = random.Random(1)
    modulus = bytes([0xC1]) + rng.randbytes(255)
    cert = h("3082 02F0 3082 01D8 A003 020102 0214") + rng.randbytes(700)
    app_data = h(
        "6E 81 DC 4F 10 D2760001240103040006123456780000 5F52 08 0031C573C0014005"
        "7F66 08 0202080002020800 73 81 B7"
        "C0 0A 7D000BFE080000FF0000 C1 06 010800001100 C2 06 010800001100"
        "C3 09 2B06010401DA470F01 C4 07 FF202020030003"
        "C5 3C" + "11" * 60 + "C6 3C" + "00" * 60 + "CD 0C" + "5F000000" * 3 + "DE 06 010102010301"
    )
    return [
        h("9000"),
        h("6982"),
        h("6983"),
        h("63C2"),
        h("6A88"),
        h("6A82"),
        h("6985"),
        h("6700"),
        h("6D00"),
        h("6100"),
        h("6110"),
        h("6C10"),
        app_data + h("9000"),
        app_data[:100] + h("6100"),
        h("C4 07 FF202020030003 9000"),
        h("7F49 82 0109 81 82 0100") + modulus + h("82 03 010001 9000"),
        h("7F49 43 86 41 04") + rng.randbytes(64) + h("9000"),
        h("7F49 22 86 20") + rng.randbytes(32) + h("9000"),
        cert[:256] + h("6100"),
        cert[256:512] + h("61C6"),
        cert + h("9000"),
        rng.randbytes(256) + h("9000"),  # a signature
        rng.randbytes(64) + h("9000"),
        h("65 15 5B 0B 446F653C3C4A6F686E2020 5F2D 02 656E 5F35 01 31 9000"),
        h("7A 05 93 03 000005 9000"),
        h("5F50 0F 68747470733A2F2F6578616D706C65 9000"),
        h("FA 0E C1 06 010800001100 C1 04 132A8648 9000"),
        h("F9 05 81 01 00 82 00 9000"),
        h("D6 02 0020 9000"),
        h("0102 6A80"),
    ]


REAL = _real_answers()


def mutate(rng: random.Random, answer: bytes) -> bytes:
    """One mutation of a card answer (or a fresh random one)."""
    op = rng.randrange(9)
    if op == 0:  # flip a few bits
        out = bytearray(answer)
        for _ in range(rng.randint(1, 3)):
            if out:
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if op == 1:  # truncate anywhere, including to 0 and 1 byte
        return answer[: rng.randrange(len(answer) + 1)]
    if op == 2:  # extend with garbage
        return answer + rng.randbytes(rng.randint(1, 300))
    if op == 3:  # another status word, weighted to the ones the channel acts on
        kind = rng.randrange(6)
        sw1 = (0x61, 0x6C, 0x90, 0x63, 0x6A, rng.randrange(256))[kind]
        sw2 = 0x00 if kind == 2 else rng.randrange(256)
        return answer[:-2] + bytes((sw1, sw2))
    if op == 4:  # plain random bytes
        return rng.randbytes(rng.randint(0, 600))
    if op == 5:  # splice two answers
        other = rng.choice(REAL)
        return answer[: rng.randrange(len(answer) + 1)] + other[rng.randrange(len(other) + 1) :]
    if op == 6:  # length bytes lie: change one byte to a long-form length prefix
        out = bytearray(answer)
        if out:
            out[rng.randrange(len(out))] = rng.choice((0x80, 0x81, 0x82, 0x83, 0x84, 0xFF))
        return bytes(out)
    return answer  # unchanged real answer (ops 7, 8)


class Feed:
    """A transport answering each APDU with the next answer of a generator."""

    name = "feed"
    atr = b"\x3b"

    def __init__(self, answers: Iterator[bytes]) -> None:
        self.answers = answers
        self.count = 0

    def transmit(self, apdu: bytes) -> bytes:
        self.count += 1
        return next(self.answers)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def reconnect(self) -> None:
        pass

    def close(self) -> None:
        pass


def answer_stream(rng: random.Random) -> Iterator[bytes]:
    """Mutated answers, with occasional storms of 61xx or 6Cxx."""
    while True:
        if rng.random() < 0.002:  # storm: hundreds of chaining answers in a row
            sw1 = rng.choice((0x61, 0x6C))
            for _ in range(rng.randint(50, MAX_GET_RESPONSE + 20)):
                yield rng.randbytes(rng.randint(0, 40)) + bytes((sw1, rng.randrange(256)))
            continue
        yield mutate(rng, rng.choice(REAL))


COMMANDS = [
    Command(0x00, 0xA4, 0x04, 0x00, h("D27600012401")),
    Command(0x00, 0xCA, 0x00, 0x6E, le=0),
    Command(0x00, 0xCA, 0x7F, 0x21, le=0),
    Command(0x00, 0xCA, 0x00, 0xC4, le=7),
    Command(0x00, 0x20, 0x00, 0x81, b"123456", sensitive=True),
    Command(0x00, 0x2A, 0x9E, 0x9A, bytes(51), le=0),
    Command(0x00, 0x47, 0x81, 0x00, h("B600"), le=0),
    Command(0x00, 0xDA, 0x7F, 0x21, bytes(700)),  # chained
    Command(0x00, 0xDB, 0x3F, 0xFF, bytes(1200), sensitive=True),  # key import
    Command(0x00, 0xCA, 0x00, 0x6E, le=65536),
]
FRAMINGS = [
    Framing(),
    Framing(max_command=100, max_response=128),
    Framing(extended=True, max_command=2048, max_response=2048),
    Framing(extended=True, max_command=65535, max_response=65536),
]


def test_channel_survives_random_answers() -> None:
    rng = random.Random(SEED)
    feed = Feed(answer_stream(rng))
    channels = [Channel(feed, f) for f in FRAMINGS]
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    case = 0
    while feed.count < ANSWERS:
        case += 1
        ch = rng.choice(channels)
        cmd = rng.choice(COMMANDS)
        before = ch.apdu_count
        try:
            if rng.random() < 0.5:
                data = ch.send(cmd)
                kind = "ok"
                assert len(data) <= ch.max_response_total
            else:
                r = ch.send_raw(cmd)
                kind = "raw"
                assert isinstance(r, Response)
        except ApduError as e:
            kind = type(e).__name__
        except Exception as e:
            raise AssertionError(f"seed {SEED}, case {case}: {cmd!r} raised {e!r}") from e
        sent = ch.apdu_count - before
        blocks = -(-len(cmd.data) // ch.framing.command_block) if cmd.data else 1
        assert sent <= blocks + 1 + 2 * (MAX_GET_RESPONSE + 1), (case, sent)
        outcomes[kind] = outcomes.get(kind, 0) + 1
    elapsed = time.perf_counter() - started
    print(
        f"\nrobustness: {feed.count} card answers through Channel in {case} commands "
        f"({elapsed:.1f} s, seed {SEED}); outcomes: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1]))
    )
    assert feed.count >= ANSWERS
    # the mutations really exercise the error paths, not only the happy one
    for kind in ("ok", "ChainingError", "MalformedResponseError", "WrongPinError"):
        assert outcomes.get(kind, 0) > 0, (kind, outcomes)


def _tlv_work(data: bytes) -> None:
    items = tlv.parse(data)
    for item in items:
        if item.constructed:
            for child in item.children:
                assert child.tag >= 0
    for tag in (0xC4, 0x7F66, 0x4F, 0x81):
        tlv.find(data, tag)
    list(tlv.find_all(data, 0x5F52))


def test_tlv_parser_survives_random_payloads() -> None:
    rng = random.Random(SEED + 1)
    stream = answer_stream(rng)
    errors = 0
    started = time.perf_counter()
    checks: list[Callable[[bytes], object]] = [
        _tlv_work,
        Response.from_bytes,
        lambda raw: error_for_status((raw[-2] << 8 | raw[-1]) if len(raw) >= 2 else 0, raw),
    ]
    for n in range(PAYLOADS):
        raw = next(stream)
        payload = raw[:-2] if n % 3 else raw
        for check in checks:
            try:
                check(payload)
            except ApduError:
                errors += 1
            except Exception as e:
                raise AssertionError(f"seed {SEED + 1}, payload {n}: {payload.hex()}: {e!r}") from e
    elapsed = time.perf_counter() - started
    print(
        f"\nrobustness: {PAYLOADS} payloads through the TLV parser ({elapsed:.1f} s, "
        f"{errors} ApduError raised, seed {SEED + 1})"
    )
    assert errors > 0
