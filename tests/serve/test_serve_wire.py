"""Pure pieces of the wire format (no socket): fixed-width text fields, attribute value
encodings as p11-kit's client decodes them, mechanism encodings per protocol version."""

from __future__ import annotations

import pytest

from opcard.pkcs11 import Attribute, Mechanism
from opcard.serve.errors import FrameError, Pkcs11Error
from opcard.serve.wire import (
    EcdhParameters,
    Reader,
    check_arguments,
    encode_size,
    encode_value,
    space_padded,
)


def test_space_padded_cuts_utf8_at_a_character_boundary() -> None:
    assert space_padded("Jane Doe", 12) == b"Jane Doe    "
    name = "Jürgen " + "x" * 24  # 32 characters, 33 UTF-8 bytes
    field = space_padded(name, 32)
    assert len(field) == 32 and field.decode("utf-8").startswith("Jürgen")
    field = space_padded("a" * 31 + "ü", 32)  # the two-byte ü would straddle the end
    assert field == b"a" * 31 + b" "


@pytest.mark.parametrize(
    ("attribute", "value", "length", "encoded"),
    [
        (Attribute.SIGN, 1, 1, b"\x01"),
        (Attribute.CLASS, 3, 8, bytes(7) + b"\x03"),
        (Attribute.ID, b"\x03", 1, b"\x00\x00\x00\x01\x03"),
        (Attribute.START_DATE, b"", 0, b"\xff\xff\xff\xff"),
        (Attribute.DESTROYABLE, b"\x00", 1, b"\x00\x00\x00\x01\x00"),  # a byte array to p11-kit
        (Attribute.ALLOWED_MECHANISMS, (1, 2), 16, b"\x00\x00\x00\x02" + bytes(7) + b"\x01"
         + bytes(7) + b"\x02"),
    ],
)  # fmt: skip
def test_encode_value(attribute: int, value: object, length: int, encoded: bytes) -> None:
    assert encode_value(attribute, value) == (length, encoded)  # type: ignore[arg-type]


def test_size_answers_carry_no_value() -> None:
    assert encode_size(Attribute.VALUE, 600) == b"\xff\xff\xff\xff"
    assert encode_size(Attribute.SIGN, 1) == b"\x00"
    assert encode_size(Attribute.CLASS, 8) == bytes(8)


def test_mechanism_encodings_by_version() -> None:
    rsa = int(Mechanism.RSA_PKCS).to_bytes(4, "big")
    assert Reader(rsa + b"\xff\xff\xff\xff").mechanism(0).parameter is None
    assert Reader(rsa).mechanism(2).parameter is None  # version 2: the type only
    ecdh = int(Mechanism.ECDH1_DERIVE).to_bytes(4, "big")
    params = bytes(7) + b"\x01" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x02\x04\x05"
    assert Reader(ecdh + params).mechanism(1).parameter == EcdhParameters(1, None, b"\x04\x05")
    assert Reader(ecdh + b"\x01" + params).mechanism(2).parameter == EcdhParameters(
        1, None, b"\x04\x05"
    )
    assert Reader(ecdh + b"\x00").mechanism(2).parameter is None  # present byte 0: none
    with pytest.raises(Pkcs11Error):  # AES-GCM: not read at all
        Reader((0x1087).to_bytes(4, "big") + b"\x01junk").mechanism(2)


def test_check_arguments() -> None:
    check_arguments(Reader(bytes(16)), "uu", 0)
    with pytest.raises(FrameError):
        check_arguments(Reader(bytes(15)), "uu", 0)
    with pytest.raises(FrameError):
        check_arguments(Reader(bytes(17)), "uu", 0)
    # an attribute template claiming more entries than the body holds
    with pytest.raises(FrameError):
        check_arguments(Reader(bytes(8) + b"\x7f\xff\xff\xff"), "uaA", 0)
