"""VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, reset code, retry counters."""

from __future__ import annotations

from card_apdus import PW1, PW3, Driver, apdu


def tries(d: Driver) -> tuple[int, int, int]:
    c4 = d.get(0x00C4).data
    return c4[4], c4[5], c4[6]


def test_verify_status_query_and_drop(fresh: Driver) -> None:
    for ref in (0x81, 0x82, 0x83):
        assert fresh.verify(ref, b"").sw == 0x63C3
    assert fresh.verify(0x81, PW1).sw == 0x9000
    assert fresh.verify(0x81, b"").sw == 0x9000
    assert fresh.verify(0x82, b"").sw == 0x63C3  # 81 and 82 are separate access states
    assert fresh.verify(0x82, PW1).sw == 0x9000
    assert fresh.verify(0x83, PW3).sw == 0x9000
    assert fresh.send(0x20, 0xFF, 0x82).sw == 0x9000
    assert fresh.verify(0x82, b"").sw == 0x63C3
    assert fresh.verify(0x81, b"").sw == 0x9000
    assert fresh.send(0x20, 0xFF, 0x83).sw == 0x9000
    assert fresh.verify(0x83, b"").sw == 0x63C3
    assert fresh.send(0x20, 0x01, 0x81, PW1).sw == 0x6B00
    assert fresh.send(0x20, 0x00, 0x84, PW1).sw == 0x6B00


def test_wrong_pin_counts_down_blocks_and_correct_pin_resets(fresh: Driver) -> None:
    assert fresh.verify(0x82, b"654321").sw == 0x63C2
    assert tries(fresh) == (2, 0, 3)
    assert fresh.verify(0x82, PW1).sw == 0x9000
    assert tries(fresh) == (3, 0, 3)
    assert fresh.verify(0x81, b"000000").sw == 0x63C2
    assert fresh.verify(0x82, b"000000").sw == 0x63C1
    assert fresh.verify(0x82, b"").sw == 0x63C1
    assert fresh.verify(0x81, b"000000").sw == 0x63C0
    assert tries(fresh) == (0, 0, 3)
    # blocked: even the right PIN is refused
    assert fresh.verify(0x82, PW1).sw == 0x6983
    assert fresh.verify(0x81, PW1).sw == 0x6983
    assert fresh.verify(0x82, b"").sw == 0x63C0
    # a failed VERIFY also cleared an earlier verification
    assert fresh.send(0x88, 0, 0, b"x" * 20, le=0).sw == 0x6982


def test_wrong_pw3_blocks(fresh: Driver) -> None:
    for expected in (0x63C2, 0x63C1, 0x63C0):
        assert fresh.verify(0x83, b"87654321").sw == expected
    assert fresh.verify(0x83, PW3).sw == 0x6983
    assert tries(fresh) == (3, 0, 0)


def test_failed_verify_drops_existing_verification(fresh: Driver) -> None:
    fresh.admin()
    assert fresh.verify(0x83, b"wrongwrong").sw == 0x63C2
    assert fresh.verify(0x83, b"").sw == 0x63C2
    assert fresh.put(0x005B, b"X").sw == 0x6982


def test_change_reference_data(fresh: Driver) -> None:
    assert fresh.send(0x24, 0, 0x81, PW1 + b"abcdefg").sw == 0x9000
    assert fresh.verify(0x82, PW1).sw == 0x63C2
    assert fresh.verify(0x82, b"abcdefg").sw == 0x9000
    # wrong old PIN counts
    assert fresh.send(0x24, 0, 0x81, b"zzzzzzz" + b"1234567").sw == 0x63C2
    # new PIN too short: 6700, nothing changes, counter reset by the right old PIN
    assert fresh.send(0x24, 0, 0x81, b"abcdefg" + b"12345").sw == 0x6700
    assert tries(fresh)[0] == 3
    assert fresh.verify(0x82, b"abcdefg").sw == 0x9000
    # PW3
    assert fresh.send(0x24, 0, 0x83, PW3 + b"1234567").sw == 0x6700  # admin PIN min 8
    assert fresh.send(0x24, 0, 0x83, PW3 + b"adminadmin").sw == 0x9000
    assert fresh.verify(0x83, PW3).sw == 0x63C2
    assert fresh.verify(0x83, b"adminadmin").sw == 0x9000
    assert fresh.send(0x24, 0, 0x82, PW1 + PW1).sw == 0x6B00
    assert fresh.send(0x24, 1, 0x81, PW1 + PW1).sw == 0x6B00


def test_reset_code_and_unblock(fresh: Driver) -> None:
    # no reset code yet: P1=00 is blocked
    assert fresh.send(0x2C, 0x00, 0x81, b"whatever" + b"111111").sw == 0x6983
    assert fresh.put(0x00D3, b"resetcode").sw == 0x6982
    fresh.admin()
    assert fresh.put(0x00D3, b"short").sw == 0x6700
    assert fresh.put(0x00D3, b"resetcode").sw == 0x9000
    assert tries(fresh) == (3, 3, 3)
    fresh.select()
    for _ in range(3):
        fresh.verify(0x82, b"999999")
    assert fresh.verify(0x82, PW1).sw == 0x6983
    # wrong reset code counts down the reset code's counter
    assert fresh.send(0x2C, 0x00, 0x81, b"resetcodX" + b"222222").sw == 0x63C2
    assert tries(fresh) == (0, 2, 3)
    # new PIN too short
    assert fresh.send(0x2C, 0x00, 0x81, b"resetcode" + b"22222").sw == 0x6700
    assert fresh.send(0x2C, 0x00, 0x81, b"resetcode" + b"222222").sw == 0x9000
    assert tries(fresh) == (3, 3, 3)
    assert fresh.verify(0x82, b"222222").sw == 0x9000
    # P1=02 needs PW3
    assert fresh.send(0x2C, 0x02, 0x81, b"333333").sw == 0x6982
    fresh.admin()
    assert fresh.send(0x2C, 0x02, 0x81, b"333333").sw == 0x9000
    assert fresh.verify(0x81, b"333333").sw == 0x9000
    assert fresh.send(0x2C, 0x02, 0x82, b"333333").sw == 0x6B00
    assert fresh.send(0x2C, 0x01, 0x81, b"333333").sw == 0x6B00
    # delete the reset code
    assert fresh.put(0x00D3, b"").sw == 0x9000
    assert tries(fresh)[1] == 0
    assert fresh.send(0x2C, 0x00, 0x81, b"resetcode" + b"444444").sw == 0x6983


def test_reset_code_blocks(fresh: Driver) -> None:
    fresh.admin()
    fresh.put(0x00D3, b"resetcode")
    for expected in (0x63C2, 0x63C1, 0x63C0):
        assert fresh.send(0x2C, 0x00, 0x81, b"resetcodX" + b"222222").sw == expected
    assert fresh.send(0x2C, 0x00, 0x81, b"resetcode" + b"222222").sw == 0x6983


def test_pw1_single_use_and_multi_use(make: object) -> None:
    for single in (True, False):
        d = make("extended", "demo-ecc", pw1_single_use=single)  # type: ignore[operator]
        assert d.get(0x00C4).data[0] == (0x00 if single else 0x01)
        d.verify(0x81, PW1)
        assert d.send(0x2A, 0x9E, 0x9A, bytes(32), le=0).sw == 0x9000
        second = d.send(0x2A, 0x9E, 0x9A, bytes(32), le=0).sw
        assert second == (0x6982 if single else 0x9000)
        # 82 is never consumed by a signature
        d.verify(0x82, PW1)
        assert d.send(0x88, 0, 0, bytes(32), le=0).ok
        assert d.send(0x88, 0, 0, bytes(32), le=0).ok


def test_put_c4_changes_pw1_validity(fresh: Driver) -> None:
    assert fresh.put(0x00C4, b"\x00").sw == 0x6982
    fresh.admin()
    assert fresh.put(0x00C4, b"\x00").sw == 0x9000
    assert fresh.get(0x00C4).data[0] == 0x00
    assert fresh.put(0x00C4, b"\x01").sw == 0x9000
    assert fresh.get(0x00C4).data[0] == 0x01
    assert fresh.put(0x00C4, b"\x02").sw == 0x6A80
    assert fresh.put(0x00C4, b"\x01\x7f\x7f\x7f").sw == 0x6700


def test_verify_pin_too_long_is_refused_without_counting(fresh: Driver) -> None:
    assert fresh.raw(apdu(0x20, 0, 0x82, b"1" * 200, extended=True)).sw == 0x6700
    assert tries(fresh)[0] == 3
